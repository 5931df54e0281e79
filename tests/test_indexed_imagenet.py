"""Step 2's image list with flat memory: IndexedImageNet / IndexedImageNet21k.

Checks: the same samples as mmpretrain's ImageNet / ImageNet21k (annotation
file and class folders), the vectorised parser equals the line-by-line one,
the streamed fingerprint equals the hook's in-memory path, a killed index
build leaves nothing half-built, a changed list is re-indexed, bad lines are
errors naming the line, and the shared-storage check on two gloo ranks.
"""
import os
import os.path as osp
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO, free_port

HELPERS = osp.join(REPO, 'tests', 'helpers')

# keys with spaces, non-ASCII characters, several extensions
ODD_KEYS = ['n0/a b.JPEG', 'n1/ünïcödé_日本.JPEG', 'n1/x.png', 'n2/sub/y.jpeg']


def _list_lines(n=40, classes=5):
    lines = [
        f'n{i % classes}/img_{i:03d}.JPEG {i % classes}' for i in range(n)
    ]
    for j, key in enumerate(ODD_KEYS):
        lines.insert(3 * j + 1, f'{key} {j % classes}')
    return lines


def _write(path, lines, newline='\n', final=True):
    os.makedirs(osp.dirname(path), exist_ok=True)
    text = newline.join(lines) + (newline if final else '')
    with open(path, 'wb') as f:
        f.write(text.encode('utf-8'))


def _samples(ds):
    return [ds.get_data_info(i) for i in range(len(ds))]


@pytest.mark.parametrize('newline', ['\n', '\r\n'])
def test_same_samples_as_mmpretrain(tmp_path, newline):
    from mmpretrain.datasets import ImageNet, ImageNet21k

    from projects.dap.dap.datasets import IndexedImageNet, IndexedImageNet21k
    root = str(tmp_path)
    lines = _list_lines()
    _write(osp.join(root, 'meta', 'train.txt'), lines, newline, final=False)
    ref = ImageNet21k(data_root=root, split='train')
    ds = IndexedImageNet21k(data_root=root, split='train')
    assert _samples(ds) == _samples(ref) and len(ds) == len(lines)
    assert ds.metainfo == ref.metainfo
    assert ds.get_data_info(-1) == ref.get_data_info(-1)
    np.testing.assert_array_equal(ds.get_gt_labels(), ref.get_gt_labels())
    assert osp.isdir(osp.join(root, 'meta', 'train.txt.dapindex'))
    # 1K: mmpretrain's 1000 class names, explicit data_prefix / ann_file
    kw = dict(data_root=root, ann_file='meta/train.txt', data_prefix='train')
    assert _samples(IndexedImageNet(**kw)) == _samples(ImageNet(**kw))
    assert len(IndexedImageNet(**kw).metainfo['classes']) == 1000
    # indices, subsets and pickling (dataloader workers)
    sub = IndexedImageNet21k(data_root=root, split='train', indices=[5, 2, 9])
    assert _samples(sub) == [
        dict(ref.get_data_info(i), sample_idx=j)
        for j, i in enumerate([5, 2, 9])
    ]
    first = ds.get_subset(7)
    assert _samples(first) == _samples(ref.get_subset(7))
    assert len(ds) == len(lines)
    clone = pickle.loads(pickle.dumps(ds))
    assert _samples(clone) == _samples(ds)


def test_class_folders_same_as_mmpretrain(tmp_path):
    from mmpretrain.datasets import ImageNet21k

    from projects.dap.dap.datasets import IndexedImageNet21k
    root = tmp_path / 'train'
    for key in [
            'b/2.JPEG', 'b/1.jpg', 'a/é z.png', 'a/sub/3.JPEG', 'a/notes.txt',
            'c/4.JPEG'
    ]:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(b'')
    ref = ImageNet21k(data_prefix=str(root))
    ds = IndexedImageNet21k(data_prefix=str(root), index_dir=str(tmp_path))
    assert _samples(ds) == _samples(ref) and len(ds) == 5
    assert ds.metainfo['classes'] == ('a', 'b', 'c')
    folder_index = osp.dirname(ds._index.path)
    assert osp.isdir(folder_index)
    del ds
    assert not osp.exists(folder_index)  # a scan's index is not kept


def test_vectorised_parser_equals_line_by_line(tmp_path, monkeypatch):
    from projects.dap.dap.datasets import image_list
    rng = np.random.default_rng(0)
    lines = []
    for i in range(3000):
        key = f'n{i % 97:08d}/' + ''.join(
            rng.choice(list('abc XYZ_-.éü日'), size=rng.integers(1, 12)))
        lines.append(f'{key}.JPEG {int(rng.integers(0, 21841))}')
    text = ''.join(line + ('\r\n' if i % 3 else '\n')
                   for i, line in enumerate(lines))
    ann = tmp_path / 'train.txt'
    ann.write_bytes(text.encode('utf-8'))
    for block in (4 << 20, 997):  # one block; boundaries inside lines
        monkeypatch.setattr(image_list, 'READ_BLOCK', block)
        fast = list(image_list.read_ann_blocks(str(ann)))
        slow = list(image_list.read_ann_blocks(str(ann), vectorised=False))
        assert len(fast) == len(slow)
        for f, s in zip(fast, slow):
            assert f[0] == s[0]
            for a, b in zip(f[1:], s[1:]):
                np.testing.assert_array_equal(a, b)
        keys = b''.join(f[0] for f in fast).split(b'\n')[:-1]
        assert [k.decode()
                for k in keys] == [line.rsplit(' ', 1)[0] for line in lines]
        labels = np.concatenate([f[2] for f in fast])
        assert labels.tolist() == [int(x.rsplit(' ', 1)[1]) for x in lines]


def test_fingerprint_equals_hook_in_memory_path(tmp_path):
    from mmpretrain.datasets import ImageNet21k

    from projects.dap.dap.datasets import IndexedImageNet21k
    from projects.dap.dap.datasets.box_file import image_list_fingerprint
    from projects.dap.dap.engine.hooks.cam_box_hook import dataset_image_list
    root = str(tmp_path)
    lines = _list_lines() + ['n0/neg.JPEG -1', 'n0/big.JPEG 99']
    _write(osp.join(root, 'meta', 'train.txt'), lines)
    for indices in (None, 11, [3, 4, 5, 6], [9, 1, 30]):
        kw = dict(data_root=root, split='train', indices=indices)
        ref, ds = ImageNet21k(**kw), IndexedImageNet21k(**kw)
        for num_classes in (3, 5):
            keys, labels = dataset_image_list(ref, num_classes)
            calls = []
            got = ds.image_list_fingerprint(
                num_classes, progress=lambda d, t: calls.append((d, t)))
            assert got == image_list_fingerprint(keys, labels)
            assert calls[-1][0] == calls[-1][1]
    # labels count: with another class count, another fingerprint
    ds = IndexedImageNet21k(data_root=root, split='train')
    assert ds.image_list_fingerprint(3) != ds.image_list_fingerprint(5)


def test_index_reused_rebuilt_when_list_changes(tmp_path):
    from projects.dap.dap.datasets import IndexedImageNet21k
    root = str(tmp_path)
    ann = osp.join(root, 'meta', 'train.txt')
    lines = _list_lines()
    _write(ann, lines)
    IndexedImageNet21k(data_root=root, split='train')
    keys_bin = osp.join(ann + '.dapindex', 'keys.bin')
    inode = os.stat(keys_bin).st_ino
    ds = IndexedImageNet21k(data_root=root, split='train')
    assert os.stat(keys_bin).st_ino == inode  # reopened, not rebuilt
    # same size, another label: the index follows the file
    _write(ann, lines[:-1] + [lines[-1][:-1] + '3'])
    ds = IndexedImageNet21k(data_root=root, split='train')
    assert ds.get_data_info(len(lines) - 1)['gt_label'] == 3
    assert os.stat(keys_bin).st_ino != inode
    assert sorted(os.listdir(
        osp.dirname(ann))) == ['train.txt', 'train.txt.dapindex']


_KILLED_BUILD = """
import os, sys, time
from projects.dap.dap.datasets import image_list
image_list.READ_BLOCK = 4096
calls = []
def progress(done, total):
    calls.append(done)
    if len(calls) == 3:
        open(sys.argv[2], 'w').close()
        time.sleep(120)
image_list.build_ann_index(sys.argv[1], sys.argv[1] + '.dapindex', progress)
"""


def test_killed_index_build_then_rerun_gives_the_same_index(tmp_path):
    from projects.dap.dap.datasets import image_list
    ann = tmp_path / 'meta' / 'train.txt'
    _write(
        str(ann), [f'n{i % 7}/img_{i:05d}.JPEG {i % 7}' for i in range(2000)])
    marker = tmp_path / 'building'
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen(
        [sys.executable, '-c', _KILLED_BUILD,
         str(ann), str(marker)],
        env=env,
        start_new_session=True)
    try:
        deadline = time.time() + 120
        while not marker.exists() and time.time() < deadline and \
                proc.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), 'the build did not start'
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    final = str(ann) + '.dapindex'
    assert not osp.exists(final)  # nothing half-built where readers look
    leftovers = [n for n in os.listdir(ann.parent) if '.tmp-' in n]
    assert len(leftovers) == 1
    index = image_list.build_ann_index(str(ann), final)
    assert [n for n in os.listdir(ann.parent) if '.tmp-' in n] == []
    clean = image_list.build_ann_index(str(ann), str(tmp_path / 'clean'))
    for name in ('keys.bin', 'key_offsets.i8', 'labels.i8', 'meta.json'):
        with open(osp.join(final, name), 'rb') as a, \
                open(osp.join(clean.path, name), 'rb') as b:
            assert a.read() == b.read(), name
    assert index.num_images == 2000
    assert index.key(1999) == b'n4/img_01999.JPEG' and index.label(1999) == 4


@pytest.mark.parametrize('line, message', [
    (b'n0/no_label.JPEG', r'train.txt:3: expected "<relative path> <label>"'),
    (b'n0/x.JPEG three', r"train.txt:3: label b'three' is not an integer"),
    (b'n0/x.JPEG 1.5', r"train.txt:3: label b'1.5' is not an integer"),
    (b'n0/\xff\xfe.JPEG 1', r'train.txt:3: the path is not valid UTF-8'),
    (b'n0/a\rb.JPEG 1', r'train.txt:3: a carriage return or NUL'),
    (b'/abs/x.JPEG 1', r'train.txt:3: .* is an absolute path'),
])
def test_bad_lines_are_errors_naming_the_line(tmp_path, line, message):
    from projects.dap.dap.datasets import ImageListError, IndexedImageNet21k
    ann = tmp_path / 'meta' / 'train.txt'
    ann.parent.mkdir()
    ann.write_bytes(b'n0/a.JPEG 0\nn1/b.JPEG 1\n' + line + b'\nn2/c.JPEG 2\n')
    with pytest.raises(ImageListError, match=message):
        IndexedImageNet21k(data_root=str(tmp_path), split='train')
    assert not (tmp_path / 'meta' / 'train.txt.dapindex').exists()


def test_blank_lines_skipped_missing_list_is_an_error(tmp_path):
    from projects.dap.dap.datasets import ImageListError, IndexedImageNet21k
    ann = tmp_path / 'meta' / 'train.txt'
    ann.parent.mkdir()
    ann.write_bytes(b'n0/a.JPEG 0\n\n  \nn1/b.JPEG 1')
    ds = IndexedImageNet21k(data_root=str(tmp_path), split='train')
    assert [s['gt_label'] for s in _samples(ds)] == [0, 1]
    with pytest.raises(ImageListError, match='does not exist'):
        IndexedImageNet21k(data_root=str(tmp_path), ann_file='meta/val.txt')


def _probe(folder_pattern, world=2):
    env = dict(
        os.environ,
        PYTHONPATH=REPO,
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(free_port()),
        WORLD_SIZE=str(world))
    procs = [
        subprocess.Popen([
            sys.executable,
            osp.join(HELPERS, 'shared_storage_probe.py'), folder_pattern
        ],
                         env=dict(env, RANK=str(r)),
                         stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT,
                         text=True) for r in range(world)
    ]
    return [(p.wait(timeout=300), p.stdout.read()) for p in procs]


def test_shared_storage_check_two_ranks(tmp_path):
    import socket
    host = socket.gethostname()
    shared = tmp_path / 'shared'
    for code, out in _probe(str(shared)):
        assert code == 0 and 'shared' in out, out
    assert os.listdir(shared) == []  # tokens cleaned up
    for code, out in _probe(str(tmp_path / 'local_{rank}')):
        assert code == 3, out
        assert 'do not share storage' in out
        assert f'rank 0 ({host}) does not see the files of rank(s) 1 ' \
            f'({host})' in out
        assert f'rank 1 ({host}) does not see the files of rank(s) 0 ' \
            f'({host})' in out


def test_progress_over_ranks_and_eta(tmp_path, monkeypatch):
    import json

    from projects.dap.dap.engine.hooks import cam_box_progress
    from projects.dap.dap.engine.hooks.cam_box_progress import \
        GenerationProgress
    lines = []
    monkeypatch.setattr(cam_box_progress, 'print_log',
                        lambda msg, **kwargs: lines.append(msg))
    prog = GenerationProgress(
        str(tmp_path),
        0,
        2,
        num_images=1000,
        done_before=100,
        todo=450,
        interval_s=3600)
    prog.update(50)
    prog.start -= 10.  # 50 images in 10 s on rank 0: 80 s left
    prog.log()
    assert 'ETA unknown until rank(s) [1] report' in lines[-1]
    with open(tmp_path / 'rank-00001.json', 'w') as f:
        json.dump(
            dict(
                token=prog.token,
                rank=1,
                host='nodeB',
                done=90,
                todo=450,
                elapsed=10.), f)  # 40 s left
    prog.log()
    assert 'CAM boxes: 240 / 1,000 images done (24.0%; 100 by earlier ' \
        'runs), 14.0 images/s on 2 of 2 ranks, ETA 0:01:20 (slowest: ' \
        'rank 0' in lines[-1]
    with open(tmp_path / 'rank-00001.json', 'w') as f:  # an older run
        json.dump(
            dict(
                token='other',
                rank=1,
                host='nodeB',
                done=90,
                todo=450,
                elapsed=10.), f)
    prog.log()
    assert '150 / 1,000' in lines[-1] and 'ETA unknown' in lines[-1]
