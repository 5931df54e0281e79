"""tools/train.py, tools/test.py, resume and launchers, run as users do.

The quick-start config (Faster R-CNN R50-FPN inheriting mmdet's bases) trains
on generated shapes data; every run is a subprocess.
"""
import json
import os
import os.path as osp
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import QUICKSTART, REPO, free_port, run_tool

TRAIN = osp.join(REPO, 'tools', 'train.py')
TEST = osp.join(REPO, 'tools', 'test.py')
HELPERS = osp.join(REPO, 'tests', 'helpers')


def _scalars(work_dir):
    """Rows of the last run's scalars.json (one JSON object per line)."""
    runs = sorted(d for d in os.listdir(work_dir) if d[:8].isdigit())
    path = osp.join(work_dir, runs[-1], 'vis_data', 'scalars.json')
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_train_then_test_with_cfg_options(shapes_workspace, tmp_path):
    work = tmp_path / 'work'
    proc = run_tool([
        TRAIN, QUICKSTART, '--work-dir', work, '--cfg-options',
        'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
        'optim_wrapper.optimizer.lr=0.0123', 'param_scheduler=[]',
        'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=4',
        f'val_evaluator.outfile_prefix={tmp_path / "val"}'
    ],
                    cwd=shapes_workspace)
    assert (work / 'iter_4.pth').exists(), proc.stdout[-3000:]
    rows = [r for r in _scalars(work) if 'loss' in r]
    # every iteration logged, with the overridden LR (no scheduler)
    assert [r['iter'] for r in rows] == [1, 2, 3, 4]
    assert all(abs(r['lr'] - 0.0123) < 1e-9 for r in rows)
    assert all(r['loss'] == r['loss'] for r in rows)  # not NaN
    # validation ran at the end of training: its numbers are pycocotools'
    # on its predictions (computed here)
    val_ann = shapes_workspace / 'data/shapes_coco/annotations/val.json'
    val = tmp_path / 'val.bbox.json'
    assert _printed_coco(proc.stdout) == _pycocotools_coco(val_ann, val)

    proc = run_tool([
        TEST, QUICKSTART, work / 'iter_4.pth', '--work-dir', tmp_path / 'eval',
        '--cfg-options', f'test_evaluator.outfile_prefix={tmp_path / "test"}'
    ],
                    cwd=shapes_workspace)
    assert 'Load checkpoint from' in proc.stdout
    # the saved weights are the trained ones: the same predictions
    validated = json.loads(val.read_text())
    tested = json.loads((tmp_path / 'test.bbox.json').read_text())
    assert len(validated) > 0
    ids = [p['image_id'] for p in validated]
    assert [p['image_id'] for p in tested] == ids
    np.testing.assert_allclose([p['bbox'] + [p['score']] for p in tested],
                               [p['bbox'] + [p['score']] for p in validated],
                               atol=1e-3)
    assert _printed_coco(proc.stdout) == _pycocotools_coco(
        val_ann, tmp_path / 'test.bbox.json')


def _printed_coco(stdout):
    """The last ``coco/bbox_*`` numbers a tool printed."""
    found = dict(re.findall(r'coco/(bbox_mAP\w*): (-?\d+\.\d+)', stdout))
    assert len(found) == 6, stdout[-3000:]
    return {name: float(value) for name, value in found.items()}


def _pycocotools_coco(ann_file, results_json):
    """COCO box AP of a results file, computed here with pycocotools
    (rounded to 3 decimals as mmdet reports it)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gt = COCO(str(ann_file))
    evaluation = COCOeval(gt, gt.loadRes(str(results_json)), 'bbox')
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    names = [
        'bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m',
        'bbox_mAP_l'
    ]
    return {n: round(float(v), 3) for n, v in zip(names, evaluation.stats)}


@pytest.fixture
def ground_truth_config(tmp_path):
    """The quick-start data and evaluator with a model that predicts the
    ground truth (tests/helpers/gt_detector.py), and its checkpoint."""
    path = tmp_path / 'gt_config.py'
    path.write_text(
        f'_base_ = [{QUICKSTART!r}]\n'
        "custom_imports = dict(imports=['projects.dap.dap', 'gt_detector'], "
        'allow_failed_imports=False)\n'
        "model = dict(_delete_=True, type='GroundTruthDetector', "
        "data_preprocessor=dict(type='DetDataPreprocessor'))\n")
    torch.save({'state_dict': {'unused': torch.zeros(1)}}, tmp_path / 'gt.pth')
    return path, tmp_path / 'gt.pth'


PERFECT = {'bbox_mAP': 1.0, 'bbox_mAP_50': 1.0, 'bbox_mAP_75': 1.0}


def test_test_tool_scores_ground_truth_as_perfect(shapes_workspace, tmp_path,
                                                  ground_truth_config):
    """A known answer: the ground truth as predictions has COCO mAP 1."""
    config, ckpt = ground_truth_config
    proc = run_tool([TEST, config, ckpt, '--work-dir', tmp_path / 'eval'],
                    cwd=shapes_workspace,
                    env={'PYTHONPATH': HELPERS})
    assert PERFECT.items() <= _printed_coco(proc.stdout).items()


def _wait_for_checkpoint(work, name, proc, timeout=400):
    marker = work / 'last_checkpoint'
    start = time.time()
    while time.time() - start < timeout:
        if marker.exists() and marker.read_text().strip().endswith(name):
            return
        if proc.poll() is not None:
            pytest.fail('training ended before it could be interrupted:\n' +
                        proc.stdout.read()[-3000:])
        time.sleep(0.2)
    pytest.fail(f'{name} never appeared')


def test_resume_after_kill_continues_from_saved_iteration(
        shapes_workspace, tmp_path):
    work = tmp_path / 'work'
    opts = [
        '--cfg-options', 'train_cfg.max_iters=6', 'train_cfg.val_interval=100',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1'
    ]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.Popen(
        [sys.executable, TRAIN, QUICKSTART, '--work-dir',
         str(work)] + opts,
        cwd=shapes_workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True)
    try:
        _wait_for_checkpoint(work, 'iter_2.pth', proc)
    finally:
        proc.send_signal(signal.SIGKILL)  # interrupted, no clean shutdown
        proc.wait()
    # keep only what the killed run had finished writing at iteration 2
    for extra in ('iter_4.pth', 'iter_6.pth'):
        if (work / extra).exists():
            (work / extra).unlink()
    (work / 'last_checkpoint').write_text(str(work / 'iter_2.pth'))

    out = run_tool(
        [TRAIN, QUICKSTART, '--work-dir', work, '--resume'] + opts,
        cwd=shapes_workspace).stdout
    assert 'resumed epoch: 0, iter: 2' in out
    rows = [r for r in _scalars(work) if 'loss' in r]
    assert [r['iter'] for r in rows] == [3, 4, 5, 6]

    from projects.dap.dap.utils import load_checkpoint_safely
    final = load_checkpoint_safely(work / 'iter_6.pth')
    assert final['meta']['iter'] == 6
    assert final['optimizer']['state'], 'optimizer state was not saved'


RESUME_CHECK = """
import sys
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from projects.dap.dap.utils import load_checkpoint_safely

config, ckpt, work, data = sys.argv[1:]
cfg = Config.fromfile(config)
cfg.work_dir = work
cfg.resume = True
cfg.load_from = ckpt
for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
    cfg[key].dataset.data_root = data + '/'
cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = (
    data + '/annotations/val.json')
runner = Runner.from_cfg(cfg)
runner.load_or_resume()
saved = load_checkpoint_safely(ckpt)
assert runner.iter == 2, runner.iter
state = runner.optim_wrapper.optimizer.state_dict()['state']
assert state.keys() == saved['optimizer']['state'].keys()
assert len(state) > 100, len(state)
for key, value in saved['optimizer']['state'].items():
    torch.testing.assert_close(state[key]['momentum_buffer'],
                               value['momentum_buffer'])
assert runner.message_hub.get_scalar('train/lr').current() == \\
    saved['message_hub']['log_scalars']['train/lr'].current()
print('RESUMED-STATE-OK', len(state))
"""


def test_resume_restores_optimizer_state(shapes_workspace, tmp_path):
    """The resumed optimizer equals the checkpoint's exactly.

    Checked in a fresh interpreter: a Runner sets process-wide state
    (default registry scope) that would leak into later tests.
    """
    work = tmp_path / 'work'
    run_tool([
        TRAIN, QUICKSTART, '--work-dir', work, '--cfg-options',
        'train_cfg.max_iters=2', 'train_cfg.val_interval=100',
        'default_hooks.checkpoint.interval=2'
    ],
             cwd=shapes_workspace)
    out = run_tool([
        sys.executable, '-c', RESUME_CHECK, QUICKSTART, work / 'iter_2.pth',
        work / 'resumed', shapes_workspace / 'data' / 'shapes_coco'
    ]).stdout
    assert 'RESUMED-STATE-OK' in out


class _Call:
    """Pickles as ``func(*args)``: a crafted checkpoint's payload."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _crafted(marker):
    """Payloads that would create ``marker`` (or reach code) if loaded."""
    import builtins
    import subprocess

    from mmengine.logging import HistoryBuffer
    touch = f"open({str(marker)!r}, 'w').close()"
    return {
        'eval':
        _Call(builtins.eval, touch),
        'exec':
        _Call(builtins.exec, touch),
        'subprocess.call':
        _Call(subprocess.call, ['touch', str(marker)]),
        'os.system':
        _Call(os.system, f'touch {marker}'),
        # getattr(getattr(HistoryBuffer, 'mean'), '__globals__'): an allowed
        # first step, then a way out to the module's globals
        'getattr chain':
        _Call(getattr, _Call(getattr, HistoryBuffer, 'mean'), '__globals__'),
    }


@pytest.mark.parametrize(
    'registered', [False, True],
    ids=['alone', 'after-other-libraries-registered'])
def test_safe_loading_refuses_crafted_checkpoints(tmp_path, registered):
    """Every payload is refused, by our loader and by mmengine's (which is
    ours for local files), even when other code allow-listed the real
    getattr, eval, exec, subprocess.call and os.system in torch's global
    registry; that registry is left as it was."""
    import builtins
    import pickle
    import subprocess

    from mmengine.runner import CheckpointLoader

    from projects.dap.dap.utils import load_checkpoint_safely
    serialization = torch.serialization
    before = serialization.get_safe_globals()
    marker = tmp_path / 'pwned'
    others = [
        builtins.getattr, builtins.eval, builtins.exec, subprocess.call,
        os.system
    ]
    try:
        if registered:
            serialization.add_safe_globals(others)
        expected = set(serialization.get_safe_globals())
        for name, payload in _crafted(marker).items():
            path = tmp_path / f'{name}.pth'
            torch.save({'state_dict': {}, 'x': payload}, path)
            for load in (load_checkpoint_safely,
                         CheckpointLoader.load_checkpoint):
                with pytest.raises(pickle.UnpicklingError):
                    load(str(path))
                assert not marker.exists(), (name, load)
                assert set(serialization.get_safe_globals()) == expected
    finally:
        serialization.clear_safe_globals()
        serialization.add_safe_globals(before)


def test_safe_loading_ignores_torch_force_no_weights_only(
        tmp_path, monkeypatch):
    """``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (set for some other tool)
    switches torch's default to full unpickling; our loads pass
    ``weights_only=True`` explicitly, so they stay safe.  mmengine's own
    local loader (torch's default) would run the payload here, so this
    also shows that mmengine's local loader is ours once
    :func:`register_checkpoint_loader` ran."""
    import pickle

    from mmengine.runner import CheckpointLoader
    from mmengine.runner.checkpoint import load_from_local

    from projects.dap.dap.utils import load_checkpoint_safely
    from projects.dap.dap.utils.checkpoint import (load_local_checkpoint,
                                                   register_checkpoint_loader)
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    marker = tmp_path / 'pwned'
    path = tmp_path / 'eval.pth'
    torch.save({'x': _crafted(marker)['eval']}, path)
    try:
        # mmengine's loader back in place, then ours registered (twice:
        # registering again must replace, not fail)
        CheckpointLoader.register_scheme('', load_from_local, force=True)
        register_checkpoint_loader()
        register_checkpoint_loader()
        for load in (load_checkpoint_safely, CheckpointLoader.load_checkpoint):
            with pytest.raises(pickle.UnpicklingError):
                load(str(path))
            assert not marker.exists(), load
    finally:
        CheckpointLoader.register_scheme('', load_local_checkpoint, force=True)


def _retag_storages(path, location):
    """Rewrite a CPU checkpoint as if saved on ``location`` (e.g. a GPU)."""
    import io
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(path) as src, \
            zipfile.ZipFile(buf, 'w', zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith('/data.pkl'):
                cpu = b'X\x03\x00\x00\x00cpu'
                assert cpu in data
                data = data.replace(
                    cpu, b'X' + len(location).to_bytes(4, 'little') +
                    location.encode())
            dst.writestr(info.filename, data)
    path.write_bytes(buf.getvalue())


def test_gpu_checkpoints_load_on_cpu_and_map_location_is_passed(tmp_path):
    """A checkpoint saved on a GPU loads on a CPU-only machine (default
    ``map_location='cpu'``); a given ``map_location`` reaches torch, also
    through mmengine's loader; a missing file names itself."""
    from mmengine.runner import CheckpointLoader

    from projects.dap.dap.utils import load_checkpoint_safely
    if torch.cuda.is_available():
        pytest.skip('needs a machine without CUDA')
    path = tmp_path / 'gpu.pth'
    torch.save({'w': torch.arange(3.0)}, path)
    _retag_storages(path, 'cuda:0')
    with pytest.raises(RuntimeError, match='CUDA'):
        torch.load(path, weights_only=True)
    assert load_checkpoint_safely(path)['w'].tolist() == [0.0, 1.0, 2.0]

    seen = []

    def to_cpu(storage, location):
        seen.append(location)
        return storage

    for load in (load_checkpoint_safely, CheckpointLoader.load_checkpoint):
        seen.clear()
        loaded = load(str(path), map_location=to_cpu)
        assert loaded['w'].tolist() == [0.0, 1.0, 2.0] and seen == ['cuda:0']
    missing = str(tmp_path / 'missing.pth')
    with pytest.raises(FileNotFoundError, match='missing.pth can not be'):
        CheckpointLoader.load_checkpoint(missing)


def test_allow_list_is_exactly_what_mmengine_checkpoints_need():
    """Exact contents: no entry can slip in unnoticed."""
    import numpy.dtypes
    from mmengine.logging import HistoryBuffer

    from projects.dap.dap.utils import safe_checkpoint_globals
    from projects.dap.dap.utils.checkpoint import _history_buffer_getattr
    names = {}
    for entry in safe_checkpoint_globals():
        obj, name = entry if isinstance(
            entry, tuple) else (entry,
                                f'{entry.__module__}.{entry.__qualname__}')
        assert name not in names, name
        names[name] = obj
    dtypes = {
        f'numpy.dtypes.{getattr(numpy.dtypes, n).__qualname__}'
        for n in dir(numpy.dtypes) if n.endswith('DType')
    }
    assert set(names) - dtypes == {
        'mmengine.logging.history_buffer.HistoryBuffer', 'numpy.ndarray',
        'numpy.dtype', 'numpy.core.multiarray._reconstruct',
        'numpy.core.multiarray.scalar', 'builtins.getattr',
        '__builtin__.getattr', 'builtins.bytes', '__builtin__.bytes'
    }
    assert dtypes <= set(names)
    assert names['builtins.getattr'] is _history_buffer_getattr
    assert names['__builtin__.getattr'] is _history_buffer_getattr
    assert names['builtins.bytes'] is bytes
    assert names['mmengine.logging.history_buffer.HistoryBuffer'] is \
        HistoryBuffer


@pytest.fixture
def probe_config(tmp_path):
    """The quick-start config plus a hook recording, on each rank, the world
    size, the images trained on and the weights (tests/helpers)."""
    path = tmp_path / 'probe_config.py'
    path.write_text(
        f'_base_ = [{QUICKSTART!r}]\n'
        "custom_imports = dict(imports=['projects.dap.dap', 'world_probe'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='WorldSizeProbeHook')]\n")
    return path


def test_safe_loading_limits_getattr_to_history_buffer_methods(tmp_path):
    """The ``getattr`` stand-in resolves statistics methods, nothing else."""
    import pickle

    from mmengine.logging import HistoryBuffer

    from projects.dap.dap.utils import load_checkpoint_safely

    class Sneaky:  # pickles as getattr(HistoryBuffer, '__init__')

        def __reduce__(self):
            return (getattr, (HistoryBuffer, '__init__'))

    path = tmp_path / 'sneaky.pth'
    torch.save({'x': Sneaky()}, path)
    with pytest.raises(
            pickle.UnpicklingError,
            match=r"refusing getattr\(<class 'mmengine.*HistoryBuffer'>, "
            r"'__init__'\).*only the HistoryBuffer statistics methods "
            r"\['current', 'max', 'mean', 'min'\]"):
        load_checkpoint_safely(path)

    buffer = HistoryBuffer()
    buffer.update(3.0)
    buffer.update(5.0)
    torch.save({
        'hub': buffer,
        'arr': np.arange(3),
        'f': np.float64(2.5)
    }, tmp_path / 'ok.pth')
    loaded = load_checkpoint_safely(tmp_path / 'ok.pth')
    assert loaded['hub'].mean() == 4.0 and loaded['hub'].current() == 5.0
    assert loaded['arr'].tolist() == [0, 1, 2] and loaded['f'] == 2.5

    # an empty buffer (e.g. a metric never updated) holds empty arrays
    torch.save({
        'hub': HistoryBuffer(),
        'boxes': np.zeros((0, 4))
    }, tmp_path / 'empty.pth')
    loaded = load_checkpoint_safely(tmp_path / 'empty.pth')
    assert len(loaded['hub'].data[0]) == 0
    assert loaded['boxes'].shape == (0, 4)


def _check_two_ranks(work, iters=2):
    """Both ranks in a world of 2, each iteration on different images, from
    the same initial weights to the same final ones (DDP averaged the
    gradients), which training changed and the checkpoint holds."""
    from helpers.world_probe import state_digest

    from projects.dap.dap.utils import load_checkpoint_safely
    probes = [
        json.loads((work / f'probe_rank{r}.json').read_text())
        for r in range(2)
    ]
    assert [p['world'] for p in probes] == [2, 2]
    rank0, rank1 = (p['img_ids'] for p in probes)
    assert len(rank0) == len(rank1) == iters
    for ids0, ids1 in zip(rank0, rank1):
        assert ids0 and ids1 and not set(ids0) & set(ids1), (rank0, rank1)
    assert probes[0]['initial'] == probes[1]['initial']
    assert probes[0]['final'] == probes[1]['final'] != probes[0]['initial']
    saved = load_checkpoint_safely(work / f'iter_{iters}.pth')['state_dict']
    assert state_digest(saved) == probes[0]['final']


@pytest.mark.skipif(shutil.which('mpirun') is None, reason='no MPI')
def test_mpirun_two_ranks(shapes_workspace, tmp_path, probe_config):
    work = tmp_path / 'work'
    # no MASTER_ADDR/MASTER_PORT: the ranks agree on them through mpi4py
    proc = run_tool([
        'mpirun', '-n', '2', '--oversubscribe', '--allow-run-as-root',
        sys.executable, TRAIN, probe_config, '--launcher', 'mpi', '--work-dir',
        work, '--cfg-options', 'train_cfg.max_iters=2',
        'train_cfg.val_interval=2'
    ],
                    cwd=shapes_workspace,
                    env={'PYTHONPATH': HELPERS})
    _check_two_ranks(work)
    assert 'coco/bbox_mAP' in proc.stdout


def test_dist_train_sh_two_processes(shapes_workspace, tmp_path, probe_config,
                                     ground_truth_config):
    work = tmp_path / 'work'
    proc = run_tool([
        'bash',
        osp.join(REPO, 'tools',
                 'dist_train.sh'), probe_config, '2', '--work-dir', work,
        '--cfg-options', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2'
    ],
                    cwd=shapes_workspace,
                    env={
                        'PORT': str(free_port()),
                        'PYTHONPATH': HELPERS
                    })
    _check_two_ranks(work)
    assert 'coco/bbox_mAP' in proc.stdout

    # dist_test.sh on 2 processes gathers every image's results once (on
    # CPU): the ground truth as predictions scores exactly 1
    config, ckpt = ground_truth_config
    proc = run_tool([
        'bash',
        osp.join(REPO, 'tools', 'dist_test.sh'), config, ckpt, '2',
        '--work-dir', tmp_path / 'eval'
    ],
                    cwd=shapes_workspace,
                    env={
                        'PORT': str(free_port()),
                        'PYTHONPATH': HELPERS
                    })
    assert PERFECT.items() <= _printed_coco(proc.stdout).items()
