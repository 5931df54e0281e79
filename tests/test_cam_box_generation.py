"""DAP step 2 end to end: tools/generate_pseudo_boxes.py as a user runs it.

Generated ImageNet-style data (class folders + meta/train.txt, including
every kind of bad input) and a random-init ResNet-18 classifier saved to a
tmp dir; small CAM scales (64, 128) keep it fast.  Checks: a valid box file
with the right metadata, parity with per-image CAMs + box fitting,
2 ranks (torchrun, mpirun and the Slurm script) == 1 rank, the configs'
``IndexedImageNet`` == mmpretrain's ``ImageNet`` (same box file),
kill-and-resume == uninterrupted, refusal of mismatched reruns, clear
errors before the run.
"""
import io
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import REPO, free_port, run_tool
from PIL import Image

TOOL = osp.join(REPO, 'tools', 'generate_pseudo_boxes.py')
DIST = osp.join(REPO, 'tools', 'dist_generate_pseudo_boxes.sh')
SLURM = osp.join(REPO, 'tools', 'slurm_generate_pseudo_boxes.sh')
BASE_CFG = osp.join(REPO, 'configs', 'cam_boxes',
                    'cam-boxes_resnet50_8xb32_in1k.py')
HELPERS = osp.join(REPO, 'tests', 'helpers')
CLASSES = ['c0', 'c1', 'c2']
MEMBERS = ('keys', 'sizes', 'labels', 'offsets', 'status', 'boxes', 'scores',
           'thresholds', 'failed_indices', 'failed_reasons')

# key -> expected failure reason fragment (None: must succeed)
BAD = {
    'c0/truncated.JPEG': 'cannot decode image',
    'c0/zero.JPEG': 'empty file (0 bytes)',
    'c1/cmyk.JPEG': None,
    'c1/gray.JPEG': None,
    'c2/png_named.JPEG': None,
    'c2/missing.JPEG': 'file not found',
    'c2/label_out_of_range.JPEG': 'label 7 is outside',
    'c1/exif_rotated.JPEG': None,
}


def _image(rng, w, h):
    arr = np.zeros((h, w, 3), np.uint8) + rng.integers(0, 60, 3, np.uint8)
    x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
    arr[y0:y0 + h // 2, x0:x0 + w // 2] = rng.integers(120, 255, 3, np.uint8)
    arr += rng.integers(0, 30, (h, w, 3), np.uint8)
    return Image.fromarray(arr)


def _jpeg_bytes(img, **kwargs):
    buf = io.BytesIO()
    img.save(buf, format='JPEG', quality=90, **kwargs)
    return buf.getvalue()


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """Data root, checkpoints and configs in a tmp dir."""
    root = tmp_path_factory.mktemp('cam_boxes')
    data = root / 'imagenet'
    rng = np.random.default_rng(0)
    lines, sizes = [], {}
    for c in range(3):
        (data / 'train' / f'c{c}').mkdir(parents=True)
        for i in range(3):
            w, h = (int(v) for v in rng.integers(64, 161, 2))
            key = f'c{c}/img_{i}.JPEG'
            (data / 'train' / key).write_bytes(_jpeg_bytes(_image(rng, w, h)))
            lines.append(f'{key} {c}')
            sizes[key] = (w, h)
    good = _jpeg_bytes(_image(rng, 120, 90))
    files = {
        'c0/truncated.JPEG': good[:len(good) // 2],
        'c0/zero.JPEG': b'',
        'c1/cmyk.JPEG': _jpeg_bytes(_image(rng, 100, 80).convert('CMYK')),
        'c1/gray.JPEG': _jpeg_bytes(_image(rng, 90, 110).convert('L')),
        'c2/label_out_of_range.JPEG': good,
    }
    png = io.BytesIO()
    _image(rng, 130, 70).save(png, format='PNG')
    files['c2/png_named.JPEG'] = png.getvalue()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: decoded image is 70 x 140 (w x h)
    files['c1/exif_rotated.JPEG'] = _jpeg_bytes(
        _image(rng, 140, 70), exif=exif)
    for key, blob in files.items():
        (data / 'train' / key).write_bytes(blob)
    sizes.update({
        'c1/cmyk.JPEG': (100, 80),
        'c1/gray.JPEG': (90, 110),
        'c2/png_named.JPEG': (130, 70),
        'c1/exif_rotated.JPEG': (70, 140)
    })
    for key in BAD:
        label = 7 if 'out_of_range' in key else int(key[1])
        lines.insert(
            len(lines) // 2 if 'c1' in key else len(lines), f'{key} {label}')
    (data / 'meta').mkdir()
    (data / 'meta' / 'train.txt').write_text('\n'.join(lines) + '\n')

    from mmengine.registry import DefaultScope
    from mmpretrain.models import ImageClassifier

    def classifier(num_classes, seed):
        torch.manual_seed(seed)
        # mmpretrain's registries, whatever scope an earlier test left set
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            return ImageClassifier(
                backbone=dict(type='ResNet', depth=18, out_indices=(3, )),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(
                    type='LinearClsHead',
                    num_classes=num_classes,
                    in_channels=512))

    ckpt = root / 'resnet18_3cls.pth'
    torch.save({'state_dict': classifier(3, 0).state_dict(), 'meta': {}}, ckpt)
    wrong = root / 'resnet18_5cls.pth'
    torch.save({'state_dict': classifier(5, 1).state_dict()}, wrong)

    def config(name, extra=''):
        path = root / name
        path.write_text(f"""
_base_ = [{BASE_CFG!r}]
model = dict(
    classifier=dict(backbone=dict(depth=18),
                    head=dict(num_classes=3, in_channels=512)),
    scales=(64, 128), fusion_scale=128)
test_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={str(data)!r}, classes={CLASSES!r}))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
custom_hooks = [dict(type='CAMBoxHook', flush_every=2)]
default_hooks = dict(logger=dict(interval=1))
{extra}
""")
        return path

    return dict(
        root=root,
        data=data,
        ckpt=ckpt,
        wrong_ckpt=wrong,
        sizes=sizes,
        keys=[line.rsplit(' ', 1)[0] for line in lines],
        labels=[int(line.rsplit(' ', 1)[1]) for line in lines],
        cfg=config('cfg.py'),
        cfg_bias=config('cfg_bias.py', 'model.update(bias=0.3)'),
        # mmpretrain's own dataset: the path before IndexedImageNet
        cfg_mmpretrain=config(
            'cfg_mmpretrain.py',
            "test_dataloader['dataset']['type'] = 'ImageNet'"),
        cfg_4cls=config(
            'cfg_4cls.py',
            "test_dataloader['dataset']['classes'] = ['a', 'b', 'c', 'd']"),
        cfg_slow=config(
            'cfg_slow.py', """
custom_imports = dict(imports=['projects.dap.dap', 'slow_test_iter'],
                      allow_failed_imports=False)
test_dataloader['batch_size'] = 2
custom_hooks = [dict(type='CAMBoxHook', flush_every=1),
                dict(type='SlowTestIterHook', seconds=0.4)]
"""))


def _generate(ws, work_dir, cfg=None, extra=(), check=True, env=None):
    return run_tool([
        TOOL, cfg or ws['cfg'], '--checkpoint', ws['ckpt'], '--work-dir',
        work_dir, *extra
    ],
                    check=check,
                    env=env)


@pytest.fixture(scope='module')
def base_run(workspace):
    work_dir = workspace['root'] / 'wd_base'
    proc = _generate(workspace, work_dir)
    return dict(
        work_dir=work_dir,
        out=work_dir / 'pseudo_boxes.dapbox',
        log=proc.stdout)


def _assert_same_box_files(a, b):
    from projects.dap.dap.datasets.box_file import PseudoBoxFile
    fa, fb = PseudoBoxFile.open(a), PseudoBoxFile.open(b)
    for name in MEMBERS:
        x, y = np.asarray(getattr(fa, name)), np.asarray(getattr(fb, name))
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y), name
    assert (a / 'meta.json').read_bytes() == (b / 'meta.json').read_bytes()


def test_box_file_is_valid_and_bad_inputs_are_recorded(workspace, base_run):
    from projects.dap.dap.datasets.box_file import (PseudoBoxFile, file_sha256,
                                                    image_list_fingerprint)
    boxes = PseudoBoxFile.open(base_run['out'])
    boxes.verify()
    keys = workspace['keys']
    assert [boxes.key(i) for i in range(len(boxes))] == keys
    failed = {key: reason for _, key, reason in boxes.failed}
    assert set(failed) == {k for k, v in BAD.items() if v is not None}
    for key, fragment in BAD.items():
        if fragment is not None:
            assert fragment in failed[key], (key, failed[key])
    for i, key in enumerate(keys):
        if key in failed:
            assert boxes.is_failed(i)
            continue
        b, s, t = boxes.boxes_of(i)
        w, h = workspace['sizes'][key]
        assert tuple(boxes.sizes[i]) == (w, h), key
        assert boxes.labels[i] == workspace['labels'][i]
        assert 1 <= len(b) <= 16 and (s > 0).all() and (np.diff(s) <= 0).all()
        assert (b[:, 0] >= 0).all() and (b[:, 2] <= w - 1).all()
        assert (b[:, 1] >= 0).all() and (b[:, 3] <= h - 1).all()
        assert np.isclose(t[:, None], [0.2, 0.3, 0.4, 0.5, -1]).any(1).all()
    # the failed image with a valid label keeps it; out-of-range -> -1
    assert boxes.labels[keys.index('c2/label_out_of_range.JPEG')] == -1
    assert boxes.labels[keys.index('c0/truncated.JPEG')] == 0

    meta = boxes.meta
    gen = meta['generation_config']
    assert gen['scales'] == [64, 128] and gen['fusion_scale'] == 128
    # every other parameter keeps the original value
    assert gen['flip'] is True and gen['stride'] == 32
    assert gen['thresholds'] == [0.2, 0.3, 0.4, 0.5]
    assert gen['bias'] == 0.22 and gen['max_per_threshold'] == 4
    assert gen['min_area_ratio'] == 0.5 and gen['nms_iou'] == 0.8
    assert gen['mean'] == [123.675, 116.28, 103.53]
    assert gen['classifier']['backbone']['depth'] == 18
    assert meta['checkpoint_sha256'] == file_sha256(workspace['ckpt'])
    assert meta['classes'] == CLASSES and meta['num_classes'] == 3
    labels = [lb if 0 <= lb < 3 else -1 for lb in workspace['labels']]
    assert meta['image_list_fingerprint'] == image_list_fingerprint(
        keys, labels)
    log = base_run['log']
    assert 'wrote' in log and f'{len(failed)} failed' in log
    assert 'Epoch(test)' in log  # mmengine logger with progress / eta
    # progress over all ranks (rank 0 logs it; here at the end)
    assert f'CAM boxes: {len(keys)} / {len(keys)} images done (100.0%; 0 ' \
        'by earlier runs)' in log
    assert '1 torch threads per process' in log  # OMP_NUM_THREADS=1


def test_indexed_dataset_gives_mmpretrains_box_file(workspace, base_run):
    """The configs' IndexedImageNet and mmpretrain's ImageNet: the same
    fingerprint and the same box file, byte for byte."""
    from mmengine.config import Config
    assert Config.fromfile(
        workspace['cfg']).test_dataloader.dataset.type == 'IndexedImageNet'
    work_dir = workspace['root'] / 'wd_mmpretrain'
    _generate(workspace, work_dir, cfg=workspace['cfg_mmpretrain'])
    _assert_same_box_files(base_run['out'], work_dir / 'pseudo_boxes.dapbox')


def test_glue_matches_per_image_cams_and_fit(workspace, base_run):
    """Batched generation == CAM of one image at a time + fitting."""
    from helpers.box_fitting import fit_one
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import projects.dap.dap  # noqa: F401 (registers the modules)
    from projects.dap.dap.datasets.box_file import PseudoBoxFile
    from projects.dap.dap.datasets.image_decoding import decode_image

    init_default_scope('mmpretrain')
    cfg = Config.fromfile(workspace['cfg'])
    cfg.model.checkpoint = str(workspace['ckpt'])
    model = MODELS.build(cfg.model)
    boxes = PseudoBoxFile.open(base_run['out'])
    checked = 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the tool ran (OMP_NUM_THREADS=1)
    try:
        for i in range(len(boxes)):
            if boxes.is_failed(i):
                continue
            data = (workspace['data'] / 'train' / boxes.key(i)).read_bytes()
            img, (h, w) = decode_image(data)
            tensor = torch.from_numpy(img.transpose(2, 0, 1).copy())
            cam = model.compute_cams([tensor], [int(boxes.labels[i])])[0]
            ref = fit_one(
                cam.float().numpy(), image_hw=(h, w), cam_scale=128, stride=32)
            b, s, t = boxes.boxes_of(i)
            np.testing.assert_array_equal(b, ref.boxes.astype(np.float32))
            np.testing.assert_array_equal(s, ref.scores.astype(np.float32))
            np.testing.assert_array_equal(t, ref.thresholds.astype(np.float32))
            checked += 1
    finally:
        torch.set_num_threads(threads)
    assert checked == len(boxes) - len(boxes.failed_indices) >= 10


def _env():
    return {
        'PATH':
        osp.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', ''),
        'OMP_NUM_THREADS':
        '1'
    }


def test_two_ranks_torchrun_equal_one_rank(workspace, base_run):
    work_dir = workspace['root'] / 'wd_torchrun'
    env = dict(_env(), PORT=str(free_port()))
    run_tool([
        'bash', DIST, workspace['cfg'], '2', '--checkpoint', workspace['ckpt'],
        '--work-dir', work_dir
    ],
             env=env)
    shards = os.listdir(work_dir / 'cam_box_shards')
    assert any('-r00000-' in s for s in shards)
    assert any('-r00001-' in s for s in shards)
    _assert_same_box_files(base_run['out'], work_dir / 'pseudo_boxes.dapbox')


def test_two_ranks_malformed_list_stop_both_before_the_run(workspace):
    """Rank 0 indexes the list; its error stops every rank (no hang)."""
    bad = workspace['root'] / 'bad_meta' / 'train.txt'
    bad.parent.mkdir()
    bad.write_text('c0/img_0.JPEG 0\nc0/img_1.JPEG\n')
    work_dir = workspace['root'] / 'wd_bad_list'
    env = dict(_env(), PORT=str(free_port()))
    proc = run_tool([
        'bash', DIST, workspace['cfg'], '2', '--checkpoint', workspace['ckpt'],
        '--work-dir', work_dir, '--cfg-options',
        f'test_dataloader.dataset.ann_file={bad}'
    ],
                    env=env,
                    check=False,
                    timeout=300)
    assert proc.returncode != 0
    assert proc.stdout.count(f'error: {bad}:2: expected "<relative path> '
                             '<label>"') == 2, proc.stdout[-3000:]
    assert not (work_dir / 'cam_box_shards').exists()


@pytest.mark.skipif(shutil.which('mpirun') is None, reason='no MPI')
def test_two_ranks_mpirun_equal_one_rank(workspace, base_run):
    work_dir = workspace['root'] / 'wd_mpi'
    env = dict(_env(), MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()))
    run_tool([
        'mpirun', '-n', '2', '--oversubscribe', '--allow-run-as-root', '-x',
        'PATH', '-x', 'OMP_NUM_THREADS', '-x', 'MASTER_ADDR', '-x',
        'MASTER_PORT', sys.executable, TOOL, workspace['cfg'], '--checkpoint',
        workspace['ckpt'], '--work-dir', work_dir, '--launcher', 'mpi'
    ],
             env=env)
    shards = os.listdir(work_dir / 'cam_box_shards')
    assert any('-r00001-' in s for s in shards)
    _assert_same_box_files(base_run['out'], work_dir / 'pseudo_boxes.dapbox')


FAKE_SRUN = r'''#!/usr/bin/env bash
# srun stand-in: records its arguments, runs the command as --ntasks tasks
echo "$@" > "$SRUN_LOG"
ntasks=1
while [ $# -gt 0 ]; do
    case "$1" in
        --ntasks=*) ntasks=${1#--ntasks=} ;;
        -p) shift ;;
        -*) ;;
        *) break ;;
    esac
    shift
done
pids=()
for ((i = 0; i < ntasks; i++)); do
    SLURM_PROCID=$i SLURM_NTASKS=$ntasks SLURM_LOCALID=$i "$@" &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
'''


def test_two_ranks_slurm_script_equal_one_rank(workspace, base_run):
    work_dir = workspace['root'] / 'wd_slurm'
    bin_dir = workspace['root'] / 'fake_slurm'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(FAKE_SRUN)
    (bin_dir / 'srun').chmod(0o755)
    env = dict(
        _env(),
        PATH=f'{bin_dir}{os.pathsep}{_env()["PATH"]}',
        SRUN_LOG=str(workspace['root'] / 'srun_args.txt'),
        GPUS='2',
        GPUS_PER_NODE='2',
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(free_port()))
    run_tool([
        'bash', SLURM, 'part', 'dap_boxes', workspace['cfg'], work_dir,
        '--checkpoint', workspace['ckpt']
    ],
             env=env)
    args = (workspace['root'] / 'srun_args.txt').read_text()
    assert args.startswith('-p part --job-name=dap_boxes --gres=gpu:2 '
                           '--ntasks=2 --ntasks-per-node=2')
    assert f'--work-dir={work_dir} --launcher slurm' in args
    shards = os.listdir(work_dir / 'cam_box_shards')
    assert any('-r00001-' in s for s in shards)
    _assert_same_box_files(base_run['out'], work_dir / 'pseudo_boxes.dapbox')


def test_kill_and_resume_equals_uninterrupted(workspace, base_run):
    work_dir = workspace['root'] / 'wd_kill'
    shard_dir = work_dir / 'cam_box_shards'
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        PYTHONPATH=os.pathsep.join(
            [HELPERS] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
    proc = subprocess.Popen([
        sys.executable, TOOL,
        str(workspace['cfg_slow']), '--checkpoint',
        str(workspace['ckpt']), '--work-dir',
        str(work_dir)
    ],
                            env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if shard_dir.is_dir() and sum(
                    n.startswith('shard-')
                    for n in os.listdir(shard_dir)) >= 3:
                break
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, 'the run ended before the kill'
    assert not (work_dir / 'pseudo_boxes.dapbox').exists()
    num_done = sum(n.startswith('shard-') for n in os.listdir(shard_dir))
    assert 3 <= num_done < len(workspace['keys'])

    log = _generate(workspace, work_dir).stdout
    assert f'{num_done} already done' in log
    _assert_same_box_files(base_run['out'], work_dir / 'pseudo_boxes.dapbox')


def test_reruns_resume_or_refuse(workspace, base_run):
    work_dir, out = base_run['work_dir'], base_run['out']
    before = (out / 'meta.json').read_bytes()
    # same config: nothing left to compute, same file
    log = _generate(workspace, work_dir).stdout
    n = len(workspace['keys'])
    assert f'{n} already done, 0 to compute' in log
    assert (out / 'meta.json').read_bytes() == before
    # another generation config in the same work dir: refused, nothing lost
    proc = _generate(
        workspace, work_dir, cfg=workspace['cfg_bias'], check=False)
    assert proc.returncode == 1 and 'refusing' in proc.stdout
    assert 'generation_config.bias: existing 0.22, new 0.3' in proc.stdout
    # ... also when only the shards of the other run are there
    proc = _generate(
        workspace,
        work_dir,
        cfg=workspace['cfg_bias'],
        check=False,
        extra=['--out', work_dir / 'new.dapbox'])
    assert proc.returncode == 1
    assert 'shards of another run' in proc.stdout and 'bias' in proc.stdout
    assert not (work_dir / 'new.dapbox').exists()
    # another image list written to an existing box file: refused
    proc = _generate(
        workspace,
        workspace['root'] / 'wd_subset',
        check=False,
        extra=[
            '--out', out, '--cfg-options', 'test_dataloader.dataset.indices=5'
        ])
    assert proc.returncode == 1
    assert 'image_list_fingerprint' in proc.stdout and 'refusing' in \
        proc.stdout
    assert (out / 'meta.json').read_bytes() == before


def test_mismatched_head_or_classes_fail_before_the_run(workspace):
    work_dir = workspace['root'] / 'wd_wrong_head'
    proc = run_tool([
        TOOL, workspace['cfg'], '--checkpoint', workspace['wrong_ckpt'],
        '--work-dir', work_dir
    ],
                    check=False)
    assert proc.returncode == 1
    assert '5-class head' in proc.stdout and 'has 3 classes' in proc.stdout
    assert not (work_dir / 'cam_box_shards').exists()

    work_dir = workspace['root'] / 'wd_4cls'
    proc = _generate(
        workspace, work_dir, cfg=workspace['cfg_4cls'], check=False)
    assert proc.returncode == 1
    assert 'dataset has 4 classes but the classifier has 3' in proc.stdout
    assert not (work_dir / 'cam_box_shards').exists()


def test_classifier_trained_with_another_class_order_is_refused(workspace):
    """A checkpoint that records its classes (mmpretrain's
    meta.dataset_meta.classes) in another order than the dataset's is
    refused before the first shard, naming the first differing index."""
    state = torch.load(workspace['ckpt'], weights_only=True)['state_dict']
    swapped = workspace['root'] / 'resnet18_swapped.pth'
    torch.save(
        {
            'state_dict': state,
            'meta': {
                'dataset_meta': {
                    'classes': ['c0', 'c2', 'c1']
                }
            }
        }, swapped)
    work_dir = workspace['root'] / 'wd_swapped'
    proc = run_tool([
        TOOL, workspace['cfg'], '--checkpoint', swapped, '--work-dir', work_dir
    ],
                    check=False)
    assert proc.returncode == 1
    assert ("class 1 of the dataset is 'c1' but the classifier was trained "
            "with 'c2' as class 1") in proc.stdout
    assert not (work_dir / 'cam_box_shards').exists()


def test_generator_settings_are_the_extractors():
    """CAMBoxGenerator checks and normalises its CAM settings through
    CAMExtractor (one place), reporting them as CAMBoxConfigError."""
    from mmengine.registry import DefaultScope

    import projects.dap.dap  # noqa: F401 (registers the modules)
    from projects.dap.dap.models import CAMBoxConfigError, CAMBoxGenerator
    classifier = dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet', depth=18, out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=3,
            in_channels=512,
            loss=dict(type='CrossEntropyLoss'),
            topk=(1, )),
        data_preprocessor=dict(mean=[1, 2, 3], std=[4, 5, 6]))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        gen = CAMBoxGenerator(
            classifier, scales=[64.0, 32], stride=32.0, flip=0, max_batch=2.0)
        cfg = gen.generation_config()
        assert gen.scales == (64, 32) and gen.fusion_scale == 64
        assert gen.stride == 32
        assert gen.num_classes == 3 and gen.flip is False
        assert gen.max_batch == gen.cam_extractor.max_batch == 2
        # ImageNet's statistics by default, not the classifier's
        assert cfg['mean'] == [123.675, 116.28, 103.53]
        assert cfg['std'] == [58.395, 57.12, 57.375]
        assert cfg['classifier'] == dict(
            type='ImageClassifier',
            backbone=dict(type='ResNet', depth=18, out_indices=[3]),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=3, in_channels=512))
        for kwargs, message in [
            (dict(scales=()), r'^scales must be positive, got \(\)$'),
            (dict(scales=(64, ), fusion_scale=32),
             r'^fusion_scale 32 is not one of the scales \(64,\)$'),
            (dict(stride=0), r'^stride must be positive'),
            (dict(mean=(1, 2)), r'^need 3 means and 3 positive stds'),
            (dict(std=(1, 0, 3)), r'^need 3 means and 3 positive stds'),
            (dict(max_batch=0), r'^max_batch must be >= 1'),
            (dict(
                classifier=dict(
                    classifier,
                    head=dict(
                        type='VisionTransformerClsHead',
                        num_classes=3,
                        in_channels=512))),
             r'^the classifier needs a linear head'),
        ]:
            with pytest.raises(CAMBoxConfigError, match=message):
                CAMBoxGenerator(**dict(dict(classifier=classifier), **kwargs))


def test_check_class_order():
    from projects.dap.dap.engine.hooks.cam_box_hook import (CAMBoxRunError,
                                                            check_class_order)
    check_class_order(['a', 'b'], 2, ['a', 'b'])  # same order
    check_class_order(['a', 'b'], 2, None)  # checkpoint does not say
    with pytest.raises(CAMBoxRunError, match="class 0 of the dataset is 'a'"):
        check_class_order(['a', 'b'], 2, ['b', 'a'])
    with pytest.raises(CAMBoxRunError, match='has 3 classes'):
        check_class_order(['a', 'b', 'c'], 2, ['a', 'b'])


def test_load_image_for_cam_decodes_by_content_and_drafts(tmp_path):
    from projects.dap.dap.datasets.cam_transforms import LoadImageForCAM
    rng = np.random.default_rng(1)
    big = tmp_path / 'big.JPEG'
    big.write_bytes(_jpeg_bytes(_image(rng, 1400, 1200)))
    full = LoadImageForCAM()(dict(img_path=str(big)))
    assert full['load_error'] is None
    assert full['img'].shape == (1200, 1400, 3)
    assert full['ori_shape'] == (1200, 1400)
    # short side 1200 >= 2 * 576: decoded at 1/2 size, original size kept
    draft = LoadImageForCAM(draft_short_side=576)(dict(img_path=str(big)))
    assert draft['img'].shape == (600, 700, 3)
    assert draft['ori_shape'] == (1200, 1400)
    assert draft['img'].dtype == np.uint8 and draft['img'].flags.writeable
    # too small for a reduction: full decode
    small = tmp_path / 'small.JPEG'
    small.write_bytes(_jpeg_bytes(_image(rng, 700, 500)))
    out = LoadImageForCAM(draft_short_side=576)(dict(img_path=str(small)))
    assert out['img'].shape == (500, 700, 3)
    # not an image at all
    text = tmp_path / 'text.JPEG'
    text.write_bytes(b'hello, not an image')
    out = LoadImageForCAM()(dict(img_path=str(text)))
    assert out['load_error'].startswith('cannot decode image')
    assert out['img'].shape == (1, 1, 3) and out['ori_shape'] == (0, 0)


def test_resumable_sampler_splits_what_is_left():
    from projects.dap.dap.datasets.samplers import ResumableSampler
    dataset = list(range(10))
    shards = []
    for rank in range(3):
        sampler = ResumableSampler(dataset)
        sampler.rank, sampler.world_size = rank, 3
        sampler.set_done([0, 4, 5, 9, 42])
        shards.append(list(sampler))
        assert len(sampler) == len(shards[-1])
    # left: 1 2 3 6 7 8, interleaved over 3 ranks
    assert shards == [[1, 6], [2, 7], [3, 8]]
    sampler = ResumableSampler(dataset)
    assert list(sampler) == list(range(10))
    sampler.set_done(range(10))
    assert list(sampler) == [] and len(sampler) == 0
