"""openmim: the model index loads with its loader, and ``mim train mmdet``
trains a shrunk DAP config through mmdet's own train script."""
import glob
import os
import os.path as osp
import re
import sys

import pytest
import yaml
from conftest import REPO, run_tool
from test_imagenet_pseudo_box import make_imagenet

DEMO_DAP = osp.join(REPO, 'configs', 'demo',
                    'dap_faster-rcnn_r18-w32_fpn_mini-imagenet.py')


def test_model_index_loads_with_modelindex():
    modelindex = pytest.importorskip('modelindex')
    index = modelindex.load(osp.join(REPO, 'model-index.yml'))
    models = index.models
    with open(osp.join(REPO, 'projects', 'dap', 'metafile.yml')) as f:
        raw = yaml.safe_load(f)['Models']
    assert [m.name for m in models] == [m['Name'] for m in raw]
    assert [c.name for c in index.collections] == ['DAP']
    for model in models:
        # Config paths are relative to the repository root
        assert osp.isfile(osp.join(REPO, model.config)), model.config
        assert model.in_collection == 'DAP'
        for result in model.results or []:
            assert set(result.metrics) <= {'box AP', 'AP50'}, model.name
            assert result.dataset.startswith(('COCO', 'PASCAL VOC 2007'))
    assert sum(len(m.results or []) for m in models) == 8 + 8 * 5


def _mim():
    pytest.importorskip('mim')
    path = osp.join(osp.dirname(sys.executable), 'mim')
    if not osp.exists(path):
        pytest.skip('no mim executable next to this python')
    return path


def test_mim_train_mmdet_runs_a_dap_config(tmp_path):
    mim = _mim()
    classes = ('ellipse', 'rectangle', 'triangle', 'diamond', 'cross', 'star',
               'ring', 'hexagon')
    data = tmp_path / 'mini_imagenet'
    make_imagenet(
        str(data),
        wnids=classes,
        per_class=1,
        box_file='pseudo_boxes/boxes.dapbox')
    work = tmp_path / 'work'
    # PYTHONPATH: this checkout's projects (mim runs mmdet's train.py with
    # the environment as it is; custom_imports does the rest)
    proc = run_tool([
        mim, 'train', 'mmdet', DEMO_DAP, '--gpus', '0', '--work-dir', work,
        '--cfg-options', f'train_dataloader.dataset.data_root={data}/',
        'train_dataloader.dataset.box_file=pseudo_boxes/boxes.dapbox',
        'train_dataloader.dataset.ann_file=meta/train.txt',
        'train_dataloader.batch_size=2', 'model.backbone.init_cfg=None',
        'train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1'
    ],
                    cwd=tmp_path,
                    env={
                        'PYTHONPATH':
                        os.pathsep.join(
                            [REPO, os.environ.get('PYTHONPATH', '')])
                    })
    import mmdet
    script = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
    # mim ran mmdet's own train script on the DAP config
    assert re.search(
        rf'Training command is \S+ {re.escape(script)} '
        rf'{re.escape(DEMO_DAP)} --launcher none', proc.stdout)
    assert (work / 'iter_2.pth').exists()
    dumped = open(glob.glob(str(work / '*.py'))[0]).read()
    assert "type='ImageNetPseudoBoxDataset'" in dumped
    assert "type='LoadImageRandomChoiceResize'" in dumped
    # iterations 1 and 2 logged with losses of the pseudo-box detector
    assert 'Iter(train) [2/2]' in proc.stdout and 'loss_rpn_cls' in \
        proc.stdout
