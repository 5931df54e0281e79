"""image_list in-process: the vectorised parser, the index on disk and its
messages, on tiny hand-written lists (expected values worked out by hand)."""
import hashlib
import json
import os
import os.path as osp
import pickle
import socket
import subprocess
import sys

import numpy as np
import pytest

from projects.dap.dap import image_list_fingerprint
from projects.dap.dap.datasets import image_list as il

MISSING = ('does not exist (mmpretrain format: one "relative/path.JPEG '
           'label" per line; or set ann_file="" to scan class folders)')


def _error(cls, fn):
    with pytest.raises(cls) as err:
        fn()
    return str(err.value)


def test_vectorised_block_parse_exact_and_what_it_leaves_to_lines():
    # keys end before each line's last space; CRLF allowed; labels of one
    # and two digits, 0 among them
    blob, lengths, labels = il._parse_clean_block(
        b'a/x.JPEG 7\nb c.png 10\r\n')
    assert blob == b'a/x.JPEG\nb c.png\n'
    assert lengths.tolist() == [8, 7] and labels.tolist() == [7, 10]
    # anything unusual goes to parse_lines (None): no final newline, a
    # leading tab, NUL, no label
    for block in (b'a 1', b'a 1\nb 2', b'\ta 1\n', b'a\x00b 1\n', b'a\n'):
        assert il._parse_clean_block(block) is None, block
    # a control byte that is not NUL is part of the key
    assert il._parse_clean_block(b'a\x01b 1\n')[0] == b'a\x01b\n'


def test_dead_builds_of_this_host_are_removed(tmp_path):
    done = subprocess.Popen([sys.executable, '-c', ''])
    done.wait()  # its pid is free now
    host = socket.gethostname()
    final = str(tmp_path / 'train.txt.dapindex')
    dead = f'train.txt.dapindex.tmp-{host}-{done.pid}-0123abcd'
    alive = f'train.txt.dapindex.tmp-{host}-{os.getpid()}-0123abcd'
    other = f'train.txt.dapindex.tmp-elsewhere-{done.pid}-0123abcd'
    for name in (dead, alive, other):
        os.mkdir(tmp_path / name)
    il._remove_dead_builds(final)
    assert sorted(os.listdir(tmp_path)) == sorted([alive, other])


def test_index_meta_progress_and_exact_files(tmp_path):
    ann = tmp_path / 'train.txt'
    text = b'a/1.JPEG 3\nb/22.JPEG 0\n'
    ann.write_bytes(text)
    calls = []
    index = il.build_ann_index(
        str(ann), str(tmp_path / 'idx'), lambda *a: calls.append(a))
    assert calls == [(2, -1)]
    sha = hashlib.sha256(text).hexdigest()
    st = os.stat(ann)
    assert index.meta == dict(
        source=dict(
            size=len(text),
            mtime_ns=st.st_mtime_ns,
            head_sha256=sha,
            tail_sha256=sha),
        ann_file=str(ann),
        format='dap-image-list-index',
        version=1,
        num_images=2,
        key_bytes=19)
    assert (tmp_path / 'idx' / 'keys.bin').read_bytes() == \
        b'a/1.JPEG\nb/22.JPEG\n'
    assert [index.key(i) for i in range(2)] == [b'a/1.JPEG', b'b/22.JPEG']
    assert [index.label(i) for i in range(2)] == [3, 0]
    assert _error(
        il.ImageListNotFound, lambda: il.build_ann_index(
            str(tmp_path / 'no.txt'), str(tmp_path / 'i2'))) == (
                f'image list {tmp_path / "no.txt"} {MISSING}')
    assert _error(
        il.ImageListNotFound,
        lambda: list(il.read_ann_blocks(str(tmp_path / 'no.txt')))) == (
            f'image list {tmp_path / "no.txt"} {MISSING}')


def test_fingerprint_of_positions_and_its_progress(tmp_path):
    ann = tmp_path / 'train.txt'
    keys = [f'k{i}.JPEG' for i in range(5)]
    ann.write_text(''.join(f'{k} {i % 2}\n' for i, k in enumerate(keys)))
    index = il.build_ann_index(str(ann), str(tmp_path / 'idx'))
    # one row, and rows out of order, as the hook stores such a subset
    assert index.fingerprint(2,
                             np.array([3
                                       ])) == image_list_fingerprint([keys[3]],
                                                                     [1])
    assert index.fingerprint(2, np.array([4, 0])) == image_list_fingerprint(
        [keys[4], keys[0]], [0, 0])
    # blocks of 2 of 5 images: keys 2, 4, 5 of 10 steps, then labels
    calls = []
    fp = index.fingerprint(2, progress=lambda *a: calls.append(a), block=2)
    assert fp == image_list_fingerprint(keys, [0, 1, 0, 1, 0])
    assert calls == [(2, 10), (4, 10), (5, 10), (7, 10), (9, 10), (10, 10)]


def test_an_absolute_key_error_shows_200_bytes(tmp_path):
    ann = tmp_path / 'train.txt'
    key = b'/' + b'a' * 300
    ann.write_bytes(key + b' 1\n')
    assert _error(il.ImageListError,
                  lambda: list(il.read_ann_blocks(str(ann)))) == (
                      f'{ann}:1: {key[:200]!r} is an absolute path; image '
                      'keys are paths relative to data_prefix')


def test_default_index_path(tmp_path):
    ann = str(tmp_path / 'meta' / 'train.txt')
    assert il.default_index_path(ann, None) == ann + '.dapindex'
    tag = hashlib.sha256(ann.encode('utf-8')).hexdigest()[:12]
    assert il.default_index_path(ann,
                                 '/idx') == (f'/idx/train.txt-{tag}.dapindex')


def test_class_folders_and_their_index(tmp_path):
    root = tmp_path / 'train'
    for name in ('b/2.JPEG', 'a/1.jpg', 'c/notes.txt'):
        os.makedirs(osp.dirname(root / name), exist_ok=True)
        (root / name).write_bytes(b'')
    (root / 'README.txt').write_bytes(b'')  # a file is not a class
    folders = il.find_class_folders(str(root))
    assert folders == ['a', 'b', 'c']
    index_dir = tmp_path / 'indices'
    index_dir.mkdir()
    index, empty = il.build_folder_index(
        str(root), folders, il.IMG_EXTENSIONS, str(index_dir))
    assert empty == ['c']
    assert osp.basename(index.path) == 'folders.dapindex'
    assert osp.dirname(osp.dirname(index.path)) == str(index_dir)
    assert [(index.key(i), index.label(i))
            for i in range(2)] == [(b'a/1.jpg', 0), (b'b/2.JPEG', 1)]
    assert sorted(index.meta['source']) == ['built', 'folders']
    assert index.meta['source']['folders'] == str(root)
    assert isinstance(index.meta['source']['built'], float)
    missing = str(tmp_path / 'nothing')
    assert _error(il.ImageListNotFound,
                  lambda: il.find_class_folders(missing)) == (
                      f'image folder {missing} does not exist (expected '
                      '<class>/<image> folders, or give an ann_file)')


def test_subset_positions():
    current = np.arange(10, 13)
    assert il.subset_positions(current, [-3, 2]).tolist() == [10, 12]
    assert il.subset_positions(current, []).tolist() == []
    assert il.subset_positions(current, 2).tolist() == [10, 11]
    assert il.subset_positions(current, -1).tolist() == [12]
    assert _error(IndexError, lambda: il.subset_positions(current, [-4])
                  ) == 'indices out of range for 3 images'


def test_file_rows_reopen_after_close_and_truncation(tmp_path):
    path = str(tmp_path / 'a.i8')
    np.arange(3, dtype='<i8').tofile(path)
    rows = il.FileRows(path, 8, '<i8', (), 2)
    assert rows.rows(0, 2).tolist() == [1, 2]
    rows.close()
    assert rows.rows(1, 2).tolist() == [2]  # opened again
    clone = pickle.loads(pickle.dumps(rows))
    assert clone.rows(0, 1).tolist() == [1]
    short = il.FileRows(path, 8, '<i8', (), 3)
    assert _error(il.ImageListError, lambda: short.rows(0, 3)) == (
        f'{path} is shorter than expected (truncated while in use?)')


def test_index_of_another_format_is_refused(tmp_path):
    path = tmp_path / 'x.dapindex'
    path.mkdir()
    (path / 'meta.json').write_text(json.dumps(dict(format='other')))
    assert _error(il.ImageListError, lambda: il.ImageListIndex(str(path))) == (
        f'{path} is not a version 1 image list index')
