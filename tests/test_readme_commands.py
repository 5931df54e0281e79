"""The READMEs' shell blocks are copy-pasteable, and the steps line up.

Every command of the ```bash / ```shell blocks of README.md,
projects/dap/README.md and data/README.md is parsed: the tools and configs it
names exist, every ``--option`` it passes is one the tool's ``--help``
lists (each tool's ``--help`` is run, as a user would), and what step 1
writes is what steps 2 and 3 read.
"""
import functools
import os.path as osp
import re
import shlex
import sys

import pytest
from conftest import REPO, run_tool

READMES = ('README.md', osp.join('projects', 'dap',
                                 'README.md'), osp.join('data', 'README.md'))
# what the shell scripts run
SCRIPT_TOOLS = {
    'tools/dist_train.sh': ('tools/train.py', 2),
    'tools/dist_test.sh': ('tools/test.py', 3),
    'tools/dist_generate_pseudo_boxes.sh':
    ('tools/generate_pseudo_boxes.py', 2),
    'tools/slurm_train.sh': ('tools/train.py', 4),
    'tools/slurm_generate_pseudo_boxes.sh':
    ('tools/generate_pseudo_boxes.py', 4),
}
# what the README tells users to install for mmdet's analyze_logs.py
OPTIONAL_MODULES = ('seaborn', )
NOT_CHECKED = ('mkdir', 'cp', 'export', 'source', 'time', 'pip', 'python3',
               'DAP_KEEP_TORCH=1', 'MMDET_TOOLS=$(python', 'mutmut')


def shell_commands(readme):
    """(line number, command) of every command in the shell blocks."""
    lines = open(osp.join(REPO, readme), encoding='utf-8').read().split('\n')
    out, block, pending = [], False, None
    for number, line in enumerate(lines, 1):
        if line.startswith('```'):
            block = line.strip() in ('```bash', '```shell')
            continue
        if not block:
            continue
        text = line.split(
            ' # ')[0].rstrip() if not line.lstrip().startswith('#') else ''
        if pending is not None:
            pending = (pending[0], pending[1] + ' ' + text.rstrip('\\'))
        elif text:
            pending = (number, text.rstrip('\\'))
        if pending is not None and not text.endswith('\\'):
            out.append(pending)
            pending = None
    return out


ALL = [(readme, n, cmd) for readme in READMES
       for n, cmd in shell_commands(readme)]


def mmdet_tools():
    import mmdet
    return osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools')


@functools.lru_cache(maxsize=None)
def tool_help(tool):
    """The ``--help`` text of a tool, run as a user runs it."""
    if tool.startswith('mim '):
        mim = osp.join(osp.dirname(sys.executable), 'mim')
        if not osp.exists(mim):
            pytest.skip('openmim is not installed')
        proc = run_tool([mim, tool.split()[1], '--help'], cwd=REPO)
    else:
        path = tool.replace('$MMDET_TOOLS', mmdet_tools())
        if not osp.isabs(path):
            path = osp.join(REPO, path)
        assert osp.isfile(path), f'{tool} does not exist'
        proc = run_tool([path, '--help'], cwd=REPO, check=False)
        for module in OPTIONAL_MODULES:  # the README says to install it
            if f"No module named '{module}'" in proc.stdout:
                pytest.skip(f'{tool} needs {module}, not installed')
        assert proc.returncode == 0, proc.stdout[-3000:]
    assert 'usage' in proc.stdout.lower()
    return proc.stdout


def resolve(cmd):
    """(tool, its arguments) of a README command, or None if not a tool."""
    words = shlex.split(cmd, posix=True)
    while re.match(r'[A-Z_][A-Z0-9_]*=', words[0]):  # NNODES=2 bash ...
        words = words[1:]
    if words[0] == 'mpirun':
        words = words[words.index('python'):]
    if words[0] == 'bash':
        script = words[1]
        if script not in SCRIPT_TOOLS:
            return script, []
        tool, positional = SCRIPT_TOOLS[script]
        return tool, words[2:2 + positional - 1] + words[1 + positional:]
    if words[0] == 'python' and len(
            words) > 1 and not words[1].startswith('-'):
        return words[1], words[2:]
    if words[0] == 'mim':
        return f'mim {words[1]}', words[3:]
    return None


def test_readmes_have_commands():
    tools = {resolve(cmd)[0] for _, _, cmd in ALL if resolve(cmd)}
    for needed in ('tools/train.py', 'tools/test.py',
                   'tools/generate_pseudo_boxes.py',
                   'tools/analysis_tools/browse_dataset.py',
                   'tools/analysis_tools/eval_pseudo_boxes.py',
                   'tools/dataset_converters/make_fewshot_splits.py',
                   'mim train'):
        assert needed in tools


@pytest.mark.parametrize(
    'readme,line,cmd', ALL, ids=[f'{r}:{n}' for r, n, _ in ALL])
def test_readme_command_is_runnable(readme, line, cmd):
    words = cmd.split()
    if words[0] in NOT_CHECKED or cmd.startswith(NOT_CHECKED):
        return
    if words[0] == 'pre-commit':  # the lint hooks: the venv's pre-commit
        exe = osp.join(osp.dirname(sys.executable), 'pre-commit')
        assert osp.isfile(osp.join(REPO, '.pre-commit-config.yaml'))
        proc = run_tool([exe, words[1], '--help'], cwd=REPO)
        for arg in words[2:]:
            assert arg in proc.stdout, f'{readme}:{line}: {arg}'
        return
    resolved = resolve(cmd)
    assert resolved is not None, f'{readme}:{line}: not a tool: {cmd}'
    tool, args = resolved
    if tool.endswith('.sh'):  # demo.sh, run_tests.sh: no options
        assert osp.isfile(osp.join(REPO, tool)), tool
        assert not [a for a in args if a.startswith('-')], args
        return
    help_text = tool_help(tool)
    for arg in args:
        if arg.startswith('--'):
            option = arg.split('=')[0]
            assert re.search(rf'{re.escape(option)}\b', help_text), \
                f'{readme}:{line}: {tool} has no {option}'
        elif arg.startswith(('configs/', 'tools/')) and '*' not in arg:
            assert osp.exists(osp.join(REPO, arg)), \
                f'{readme}:{line}: {arg} does not exist'


def _written_and_read():
    """Paths step 1 writes / steps 2-3 read, per the READMEs' commands."""
    written, read = set(), set()
    for _, _, cmd in ALL:
        resolved = resolve(cmd)
        if not resolved:
            continue
        tool, args = resolved
        if tool.endswith('torchvision_resnet_to_mmpretrain.py'):
            written.add(args[1])
        for flag, value in zip(args, args[1:]):
            if flag == '--checkpoint':
                read.add(value)
    return written, read


def test_step_1_writes_what_steps_2_and_3_read():
    from mmengine.config import Config
    written, read = _written_and_read()
    assert written and read
    # step 2's commands read step 1's classifiers
    in1k = {p for p in read if 'in1k' in p}
    assert in1k and in1k <= written, (in1k, written)
    # step 3 (IN-1K configs) starts from the MSRA Caffe ResNets, as the
    # original, not from step 1's classifiers
    for name in ('dap_faster-rcnn_r50_fpn_1e_in1k.py',
                 'dap_faster-rcnn_r101_fpn_1e_in1k.py'):
        cfg = Config.fromfile(
            osp.join(REPO, 'configs', 'dap', name),
            import_custom_modules=False)
        assert cfg.model.backbone.init_cfg.checkpoint.startswith(
            'open-mmlab://detectron2/resnet'), name
    # and reads the box file step 2's default config writes
    cam = Config.fromfile(
        osp.join(REPO, 'configs', 'cam_boxes',
                 'cam-boxes_resnet101_8xb32_in1k.py'),
        import_custom_modules=False)
    out_files = [h.out_file for h in cam.custom_hooks if 'out_file' in h]
    dap = Config.fromfile(
        osp.join(REPO, 'configs', 'dap', 'dap_faster-rcnn_r50_fpn_1e_in1k.py'),
        import_custom_modules=False)
    data = dap.train_dataloader.dataset
    assert out_files == [osp.join(data.data_root, data.box_file)]
