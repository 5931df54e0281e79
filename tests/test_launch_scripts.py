"""The launch scripts run from a plain checkout, without the editable install.

The tools and project are copied to a fresh folder (a checkout that was never
installed), and every run uses ``tests/helpers/hide_editable_install``: its
``sitecustomize`` removes the editable install's finder and path entries, so
``projects`` can only come from what the script puts on ``PYTHONPATH``.
"""
import os
import os.path as osp
import shutil
import stat
import subprocess
import sys

import pytest
from conftest import REPO, free_port, run_tool

HIDE = osp.join(REPO, 'tests', 'helpers', 'hide_editable_install')


@pytest.fixture(scope='module')
def checkout(tmp_path_factory):
    root = tmp_path_factory.mktemp('plain') / 'dap'
    skip = shutil.ignore_patterns('__pycache__', '*.pyc')
    for part in ('projects', 'tools', 'configs'):
        shutil.copytree(osp.join(REPO, part), root / part, ignore=skip)
    return root


def _env(**extra):
    env = {'PYTHONPATH': HIDE, 'PORT': str(free_port())}
    env.update(extra)
    return env


def test_hiding_works_projects_is_not_importable_by_itself(shapes_workspace):
    proc = run_tool([sys.executable, '-c', 'import projects.dap.dap'],
                    cwd=shapes_workspace,
                    env=_env(),
                    check=False)
    assert proc.returncode != 0
    assert "No module named 'projects'" in proc.stdout


def test_dist_train_and_test_from_a_plain_checkout(checkout, shapes_workspace,
                                                   tmp_path):
    config = checkout / 'configs' / 'quickstart' / \
        'faster-rcnn_r50_fpn_20i_shapes-coco.py'
    work = tmp_path / 'work'
    run_tool([
        'bash', checkout / 'tools' / 'dist_train.sh', config, '1',
        '--work-dir', work, '--cfg-options', 'train_cfg.max_iters=1',
        'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=1'
    ],
             cwd=shapes_workspace,
             env=_env())
    assert (work / 'iter_1.pth').exists()
    proc = run_tool([
        'bash', checkout / 'tools' / 'dist_test.sh', config,
        work / 'iter_1.pth', '1', '--work-dir', tmp_path / 'ev', '--out',
        tmp_path / 'res.pkl'
    ],
                    cwd=shapes_workspace,
                    env=_env())
    assert 'coco/bbox_mAP_50' in proc.stdout
    assert (tmp_path / 'res.pkl').exists()


def test_box_generation_launcher_imports_from_the_checkout(checkout, tmp_path):
    proc = run_tool([
        'bash', checkout / 'tools' / 'dist_generate_pseudo_boxes.sh',
        'any_config.py', '1', '--help'
    ],
                    cwd=tmp_path,
                    env=_env())
    assert '--checkpoint' in proc.stdout


def test_slurm_train_passes_the_checkout_on(checkout, shapes_workspace,
                                            tmp_path):
    """A stand-in ``srun`` (one task) runs what the script asks for."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    srun = bin_dir / 'srun'
    srun.write_text('#!/usr/bin/env bash\n'
                    'echo "srun $*" > "$SRUN_LOG"\n'
                    'while [ "$1" != python ]; do shift; done\n'
                    'export SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_LOCALID=0 '
                    'MASTER_ADDR=127.0.0.1\n'
                    'exec "$@"\n')
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / 'srun.log'
    proc = run_tool([
        'bash', checkout / 'tools' / 'slurm_train.sh', 'part', 'job',
        checkout / 'configs' / 'quickstart' /
        'faster-rcnn_r50_fpn_20i_shapes-coco.py', tmp_path / 'work',
        '--cfg-options', 'train_cfg.max_iters=1', 'train_cfg.val_interval=100',
        'default_hooks.checkpoint.interval=1'
    ],
                    cwd=shapes_workspace,
                    env=_env(
                        PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
                        GPUS='1',
                        GPUS_PER_NODE='1',
                        SRUN_LOG=str(log),
                        MASTER_PORT=str(free_port())))
    assert 'srun -p part --job-name=job --gres=gpu:1 --ntasks=1' in \
        log.read_text()
    assert (tmp_path / 'work' / 'iter_1.pth').exists(), proc.stdout[-2000:]


def test_without_the_scripts_path_the_tools_fail(checkout, tmp_path):
    """The plain-checkout runs above work because of the scripts alone."""
    proc = subprocess.run(
        [sys.executable,
         str(checkout / 'tools' / 'train.py'), '--help'],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=HIDE),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True)
    assert proc.returncode != 0
    assert "No module named 'projects'" in proc.stdout
