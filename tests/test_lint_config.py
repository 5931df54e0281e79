"""The lint hooks CI runs are the pip-installed tools, configured once."""
import os.path as osp
import shlex
import subprocess
import sys

import yaml

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_hooks():
    with open(osp.join(REPO, '.pre-commit-config.yaml')) as f:
        cfg = yaml.safe_load(f)
    return [hook for repo in cfg['repos'] for hook in repo['hooks']]


def test_every_hook_is_local_and_its_tool_is_installed():
    with open(osp.join(REPO, '.pre-commit-config.yaml')) as f:
        repos = yaml.safe_load(f)['repos']
    assert [r['repo'] for r in repos] == ['local']  # nothing to fetch
    bindir = osp.dirname(sys.executable)
    hooks = load_hooks()
    assert {'flake8', 'isort', 'yapf'} <= {h['id'] for h in hooks}
    for hook in hooks:
        assert hook['language'] == 'system', hook['id']
        exe = shlex.split(hook['entry'])[0]
        assert osp.isfile(osp.join(bindir, exe)), f'{exe} not in the venv'


def test_ci_lints_before_the_readme_test_command():
    with open(osp.join(REPO, '.ci', 'run')) as f:
        lines = [
            ln.strip() for ln in f
            if ln.strip() and not ln.lstrip().startswith('#')
        ]
    lint = lines.index('pre-commit run --all-files --show-diff-on-failure')
    assert lines.index('bash tools/install.sh') < lint
    assert lines[-1] == 'bash tools/run_tests.sh'  # README's test command


def test_flake8_reports_a_planted_violation(tmp_path):
    """flake8 reads setup.cfg's settings (79 columns) from the repo."""
    bad = tmp_path / 'bad.py'
    bad.write_text('x = 1\n' + 'y = ' + '1 + ' * 20 + '1\n')
    flake8 = osp.join(osp.dirname(sys.executable), 'flake8')
    config = osp.join(REPO, 'setup.cfg')
    proc = subprocess.run([flake8, '--config', config,
                           str(bad)],
                          stdout=subprocess.PIPE,
                          text=True)
    assert proc.returncode == 1
    assert 'E501 line too long (85 > 79 characters)' in proc.stdout
