"""The pseudo-box file: round trip, mmap, corrupt files, shards and merge."""
import hashlib
import json
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from projects.dap.dap.datasets.box_file import (FORMAT_NAME, FORMAT_VERSION,
                                                BoxFileError, PseudoBoxFile,
                                                ShardWriter, describe_changes,
                                                file_sha256,
                                                image_list_fingerprint,
                                                merge_shards, write_box_file)

NUM_CLASSES = 3
GEN_CONFIG = {'scales': [288, 576], 'thresholds': [0.2, 0.3, 0.4, 0.5]}


def make_images(n=7, seed=0):
    """Per-image results with 0..3 boxes; image 4 failed."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        key = f'n0{i % 3}/img_{i}_ü.JPEG'
        size = (int(rng.integers(50, 300)), int(rng.integers(50, 300)))
        if i == 4:
            images.append(
                dict(
                    index=i,
                    key=key,
                    size=(0, 0),
                    label=-1,
                    failed='cannot identify image file'))
            continue
        k = i % 4
        xy = rng.uniform(0, 40, (k, 2))
        wh = rng.uniform(1, 40, (k, 2))
        boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        images.append(
            dict(
                index=i,
                key=key,
                size=size,
                label=i % NUM_CLASSES,
                boxes=boxes,
                scores=rng.uniform(0, 1, k).astype(np.float32),
                thresholds=np.array([0.2, 0.3, 0.4, 0.5][:k], np.float32)))
    return images


def empty(shape):
    return np.zeros(shape, np.float32)


def write_images(path, images, meta, **kwargs):
    write_box_file(
        path, [im['key'] for im in images], [im['size'] for im in images],
        [im['label']
         for im in images], [im.get('boxes', empty((0, 4))) for im in images],
        [im.get('scores', empty(0))
         for im in images], [im.get('thresholds', empty(0)) for im in images],
        meta,
        failed={im['index']: im['failed']
                for im in images if 'failed' in im},
        **kwargs)


def write_direct(path, images, **kwargs):
    keys = [im['key'] for im in images]
    labels = [im['label'] for im in images]
    meta = dict(
        num_classes=NUM_CLASSES,
        generation_config=GEN_CONFIG,
        checkpoint_sha256=None,
        image_list_fingerprint=image_list_fingerprint(keys, labels))
    write_images(path, images, meta, **kwargs)
    return meta


def run_meta(images):
    keys = [im['key'] for im in images]
    labels = [im['label'] for im in images]
    return dict(
        num_images=len(images),
        num_classes=NUM_CLASSES,
        generation_config=GEN_CONFIG,
        checkpoint_sha256=None,
        image_list_fingerprint=image_list_fingerprint(keys, labels))


def feed(writer, im):
    if 'failed' in im:
        writer.add_failed(im['index'], im['key'], im['failed'])
    else:
        writer.add(im['index'], im['key'], im['size'], im['label'],
                   im['boxes'], im['scores'], im['thresholds'])


def dir_bytes(path):
    path = Path(path)
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


# --------------------------------------------------------------------------
# fingerprints


def test_fingerprint_matches_hand_computed_definition():
    expected = hashlib.sha256(
        b'dap-image-list/1 n=2 labels=0\na/x.JPEG\nb/\xc3\xbc.JPEG\n'
    ).hexdigest()
    assert image_list_fingerprint(['a/x.JPEG', 'b/ü.JPEG']) == expected
    with_labels = hashlib.sha256(
        b'dap-image-list/1 n=2 labels=1\na/x.JPEG\nb/\xc3\xbc.JPEG\n' +
        np.array([3, 0], '<i8').tobytes()).hexdigest()
    assert image_list_fingerprint(['a/x.JPEG', 'b/ü.JPEG'],
                                  [3, 0]) == with_labels
    # numpy S / U arrays give the same value as a list of str
    as_bytes = np.array(['a/x.JPEG'.encode(), 'b/ü.JPEG'.encode()])
    assert image_list_fingerprint(as_bytes) == expected
    assert image_list_fingerprint(np.array(['a/x.JPEG', 'b/ü.JPEG'])) == \
        expected
    # order, labels and the label/no-label variant all change it
    assert image_list_fingerprint(['b/ü.JPEG', 'a/x.JPEG']) != expected
    assert image_list_fingerprint(['a/x.JPEG', 'b/ü.JPEG'],
                                  [3, 1]) != with_labels
    # a key with a newline would make two lists hash alike: refused
    with pytest.raises(BoxFileError, match='newline'):
        image_list_fingerprint(['a\nb'])


def test_file_sha256(tmp_path):
    path = tmp_path / 'x.bin'
    path.write_bytes(b'abc' * 1000)
    assert file_sha256(path) == hashlib.sha256(b'abc' * 1000).hexdigest()


# --------------------------------------------------------------------------
# write / open


def test_round_trip_is_exact_and_memory_mapped(tmp_path):
    images = make_images()
    meta = write_direct(tmp_path / 'b.dapbox', images)
    bf = PseudoBoxFile.open(tmp_path / 'b.dapbox')
    assert bf.num_images == 7 and len(bf) == 7
    assert bf.num_boxes == sum(len(im.get('boxes', ())) for im in images)
    assert bf.num_classes == NUM_CLASSES and bf.classes is None
    assert bf.meta['format'] == FORMAT_NAME
    assert bf.meta['version'] == FORMAT_VERSION
    assert bf.generation_config == GEN_CONFIG
    assert bf.fingerprint == meta['image_list_fingerprint']
    for name in ('keys', 'sizes', 'labels', 'offsets', 'status', 'boxes',
                 'scores', 'thresholds'):
        assert isinstance(getattr(bf, name), np.memmap), name
    assert bf.keys.dtype.kind == 'S' and bf.sizes.dtype == np.int32
    assert bf.labels.dtype == np.int64 and bf.offsets.dtype == np.int64
    assert bf.status.dtype == np.uint8 and bf.boxes.dtype == np.float32
    for im in images:
        i = im['index']
        assert bf.key(i) == im['key']
        assert tuple(bf.sizes[i]) == im['size']
        assert bf.labels[i] == im['label']
        boxes, scores, thresholds = bf.boxes_of(i)
        assert not isinstance(boxes, np.memmap)
        assert bf.is_failed(i) == ('failed' in im)
        if 'failed' in im:
            assert boxes.shape == (0, 4)
        else:
            np.testing.assert_array_equal(boxes, im['boxes'])
            np.testing.assert_array_equal(scores, im['scores'])
            np.testing.assert_array_equal(thresholds, im['thresholds'])
    assert bf.failed == [(4, images[4]['key'], 'cannot identify image file')]
    # image i has i % 4 boxes (image 4 failed: 0): offsets by hand
    np.testing.assert_array_equal(bf.offsets, [0, 0, 1, 3, 6, 6, 7, 9])
    bf.verify()
    meta_text = (tmp_path / 'b.dapbox' / 'meta.json').read_text()
    assert json.dumps(
        json.loads(meta_text), sort_keys=True, indent=2,
        ensure_ascii=False) + '\n' == meta_text


def test_writing_the_arrays_read_back_gives_the_same_bytes(tmp_path):
    images = make_images()
    write_direct(tmp_path / 'a.dapbox', images)
    bf = PseudoBoxFile.open(tmp_path / 'a.dapbox')
    cuts = bf.offsets[1:-1]  # float64 and numpy-S keys: stored canonically
    write_box_file(
        tmp_path / 'b.dapbox',
        bf.keys,
        bf.sizes,
        bf.labels,
        np.split(bf.boxes.astype(np.float64), cuts),
        np.split(bf.scores, cuts),
        np.split(bf.thresholds, cuts),
        dict(num_classes=NUM_CLASSES, generation_config=GEN_CONFIG),
        failed={4: 'cannot identify image file'})
    assert dir_bytes(tmp_path / 'a.dapbox') == dir_bytes(tmp_path / 'b.dapbox')


def test_check_matches(tmp_path):
    images = make_images()
    write_direct(tmp_path / 'b.dapbox', images)
    bf = PseudoBoxFile.open(tmp_path / 'b.dapbox')
    keys = [im['key'] for im in images]
    labels = [im['label'] for im in images]
    bf.check_matches(image_list_fingerprint(keys, labels), 7, NUM_CLASSES)
    bf.check_matches(image_list_fingerprint(keys))  # keys-only variant
    with pytest.raises(BoxFileError, match='fingerprint'):
        bf.check_matches(image_list_fingerprint(keys[::-1]))
    with pytest.raises(
            BoxFileError,
            match=r'does not match: it has 7 '
            r'images, the dataset 8\. Regenerate the boxes for '
            r'this image list or point the config at the right '
            r'box file\.$'):
        bf.check_matches(num_images=8)
    with pytest.raises(BoxFileError, match='3 classes, the model/dataset 5'):
        bf.check_matches(num_classes=5)


def test_pickle_sends_only_the_path(tmp_path):
    write_direct(tmp_path / 'b.dapbox', make_images())
    bf = PseudoBoxFile.open(tmp_path / 'b.dapbox')
    blob = pickle.dumps(bf)
    assert len(blob) < 300
    again = pickle.loads(blob)
    assert isinstance(again.boxes, np.memmap)
    np.testing.assert_array_equal(again.boxes, bf.boxes)


def test_write_is_atomic_and_does_not_clobber(tmp_path):
    images = make_images()
    write_direct(tmp_path / 'b.dapbox', images)
    before = dir_bytes(tmp_path / 'b.dapbox')
    with pytest.raises(BoxFileError, match='already exists'):
        write_direct(tmp_path / 'b.dapbox', images)
    # a write that fails validation leaves the old file and no temp dirs
    images[0]['label'] = 99
    with pytest.raises(BoxFileError, match='label 99'):
        write_direct(tmp_path / 'b.dapbox', images, overwrite=True)
    assert dir_bytes(tmp_path / 'b.dapbox') == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['b.dapbox']
    images[0]['label'] = 1
    write_direct(tmp_path / 'b.dapbox', images, overwrite=True)
    assert PseudoBoxFile.open(tmp_path / 'b.dapbox').labels[0] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ['b.dapbox']


@pytest.mark.parametrize('change, message', [
    (lambda ims: ims[1].update(boxes=np.array([[5, 0, 1, 1]], np.float32)),
     'x2 >= x1'),
    (lambda ims: ims[1].update(scores=np.array([np.nan], np.float32)),
     'scores finite'),
    (lambda ims: ims[3]['boxes'].__setitem__(1, [5, 0, 1, 1]),
     r'box file data: box 4 \(image 3\) is \[5\.0, 0\.0, 1\.0, 1\.0\]'),
    (lambda ims: ims[4].update(label=-2),
     r'image 4 has label -2, outside \[0, num_classes=3\)'),
    (lambda ims: ims[4].update(
        boxes=np.ones((1, 4), np.float32),
        scores=np.ones(1, np.float32),
        thresholds=np.ones(1, np.float32)),
     r'^box file data: failed image 4 has boxes$'),
    (lambda ims: ims[1].update(size=(0, 10)), 'positive sizes'),
    (lambda ims: ims[2].update(key='a\nb'),
     r'image keys 0\.\.6 include a key with a newline'),
    (lambda ims: ims[2].update(thresholds=np.zeros(3, np.float32)),
     '2 boxes, 2 scores and 3'),
])
def test_write_rejects_bad_values(tmp_path, change, message):
    images = make_images()
    change(images)
    with pytest.raises(BoxFileError, match=message):
        write_direct(tmp_path / 'b.dapbox', images)
    assert not (tmp_path / 'b.dapbox').exists()


def test_write_rejects_inconsistent_meta_and_failures(tmp_path):
    images = make_images()
    args = ([im['key']
             for im in images], [(5, 5)] * 7, [0] * 7, [empty(
                 (0, 4))] * 7, [empty(0)] * 7, [empty(0)] * 7)
    with pytest.raises(
            BoxFileError,
            match=r'^meta needs "num_classes" \(a '
            r'positive int\) or "classes"$'):
        write_box_file(tmp_path / 'a', *args, meta={})
    with pytest.raises(BoxFileError, match='another image list'):
        write_box_file(
            tmp_path / 'a',
            *args,
            meta=dict(num_classes=2, image_list_fingerprint='0' * 64))
    with pytest.raises(BoxFileError, match='checkpoint_sha256'):
        write_box_file(
            tmp_path / 'a',
            *args,
            meta=dict(num_classes=2, checkpoint_sha256='abc'))
    with pytest.raises(BoxFileError, match='^failed index 7 out of range$'):
        write_box_file(
            tmp_path / 'a',
            *args,
            meta=dict(num_classes=2),
            failed={
                3: 'x',
                7: 'y'
            })
    with pytest.raises(
            BoxFileError,
            match=r'^failed must be a dict \{image '
            r'index: reason\}, got list$'):
        write_box_file(
            tmp_path / 'a',
            *args,
            meta=dict(num_classes=2),
            failed=[(3, images[3]['key'], 'x')])
    with pytest.raises(
            BoxFileError,
            match=r'^sizes has shape \(6, 2\), expected \(7, 2\)$'):
        write_box_file(
            tmp_path / 'a',
            args[0],
            args[1][:6],
            *args[2:],
            meta=dict(num_classes=2))
    with pytest.raises(BoxFileError, match='^failed index 7 out of range$'):
        write_box_file(
            tmp_path / 'a',
            *args,
            meta=dict(num_classes=2),
            failed={
                0: 'x',
                7: 'y'
            })
    with pytest.raises(BoxFileError, match='^failed index -1 out of range$'):
        write_box_file(
            tmp_path / 'a',
            *args,
            meta=dict(num_classes=2),
            failed={
                -1: 'x',
                3: 'y'
            })
    with pytest.raises(
            BoxFileError,
            match='^sizes must have a numeric dtype '
            "of kind 'iu', got float64$"):
        write_box_file(
            tmp_path / 'a',
            args[0], [(5.5, 5)] * 7,
            *args[2:],
            meta=dict(num_classes=2))
    assert not (tmp_path / 'a').exists()


# --------------------------------------------------------------------------
# corrupt files


def _corrupt_missing(path):
    (path / 'scores.npy').unlink()


def _corrupt_version(path):
    meta = json.loads((path / 'meta.json').read_text())
    meta['version'] = 2
    (path / 'meta.json').write_text(json.dumps(meta))


def _corrupt_offsets(path):
    offsets = np.load(path / 'box_offsets.npy')
    offsets[2], offsets[3] = offsets[3], offsets[2]  # 1, 3 -> 3, 1
    np.save(path / 'box_offsets.npy', offsets)


def _corrupt_pickled(path):
    np.save(
        path / 'scores.npy',
        np.array([None] * 9, dtype=object),
        allow_pickle=True)


def _corrupt_dtype(path):
    np.save(path / 'image_labels.npy',
            np.load(path / 'image_labels.npy').astype(np.float64))


def _corrupt_length(path):
    np.save(path / 'image_sizes.npy', np.ones((6, 2), np.int32))


def _corrupt_truncated(path):
    data = (path / 'boxes.npy').read_bytes()
    (path / 'boxes.npy').write_bytes(data[:-8])


def _corrupt_padded(path):
    with open(path / 'boxes.npy', 'ab') as f:
        f.write(b'\0' * 16)


def _corrupt_first_offset(path):
    offsets = np.load(path / 'box_offsets.npy')
    offsets[1] = -1
    np.save(path / 'box_offsets.npy', offsets)


def _corrupt_failed_index(path):
    np.save(path / 'failed_indices.npy', np.array([3], np.int64))


def _meta_with(**changes):

    def corrupt(path):
        meta = json.loads((path / 'meta.json').read_text())
        (path / 'meta.json').write_text(json.dumps(dict(meta, **changes)))

    return corrupt


def _corrupt_format(path):
    (path / 'meta.json').write_text('{"format": "coco"}')


def _corrupt_json(path):
    (path / 'meta.json').write_text('{"format": ')


def _corrupt_status(path):
    status = np.load(path / 'image_status.npy')
    status[0] = 1
    np.save(path / 'image_status.npy', status)


@pytest.mark.parametrize('corrupt, message', [
    (_corrupt_missing, 'missing member.*scores.npy'),
    (_corrupt_version, 'version 2; this code reads version 1.*newer'),
    (_corrupt_offsets, r'not monotone: offsets\[2\]=3 > offsets\[3\]=1'),
    (_corrupt_pickled, 'Python objects.*pickle'),
    (_corrupt_dtype, 'image_labels.npy has dtype float64, expected int64'),
    (_corrupt_length, r'shape \(6, 2\), expected \(7, 2\)'),
    (_corrupt_truncated, 'truncated'),
    (_corrupt_padded, r'boxes.npy has 288 bytes, expected 272: the file is '
     'padded'),
    (_corrupt_first_offset, r'not monotone: offsets\[0\]=0 > offsets\[1\]=-1'),
    (_corrupt_failed_index,
     'failed_indices.npy and image_status.npy disagree$'),
    (_corrupt_format, "format is 'coco'"),
    (_meta_with(version=0), 'has format version 0; this code reads version '
     '1$'),
    (_meta_with(num_boxes=-1), 'meta.json "num_boxes" < 0$'),
    (_meta_with(classes=['a', 'b']), 'meta.json "classes" must be null or a '
     'list of num_classes=3 names$'),
    (_corrupt_json, 'not valid JSON'),
    (_corrupt_status, '2 images have status failed but failed_indices.npy '
     'lists 1'),
])
def test_open_refuses_corrupt_files(tmp_path, corrupt, message):
    path = tmp_path / 'b.dapbox'
    write_direct(path, make_images())
    corrupt(path)
    with pytest.raises(BoxFileError, match=message):
        PseudoBoxFile.open(path)


def test_open_refuses_non_directories(tmp_path):
    with pytest.raises(
            BoxFileError,
            match='nothing.dapbox does not exist; '
            'a box file is a directory'):
        PseudoBoxFile.open(tmp_path / 'nothing.dapbox')
    (tmp_path / 'file.npz').write_bytes(b'PK')
    with pytest.raises(BoxFileError, match='is not a directory'):
        PseudoBoxFile.open(tmp_path / 'file.npz')


def test_verify_detects_modified_arrays(tmp_path):
    path = tmp_path / 'b.dapbox'
    write_direct(path, make_images())
    labels = np.load(path / 'image_labels.npy')
    labels[0] = 2
    np.save(path / 'image_labels.npy', labels)
    bf = PseudoBoxFile.open(path)  # cheap checks pass ...
    with pytest.raises(
            BoxFileError,
            match=r'keys/labels do not match the '
            r'fingerprints stored in meta\.json \(the arrays '
            r'were modified\)$'):
        bf.verify()  # ... the full scan does not


# --------------------------------------------------------------------------
# shards


def test_two_ranks_merge_equals_direct_write(tmp_path):
    images = make_images()
    write_direct(tmp_path / 'direct.dapbox', images)
    meta = run_meta(images)
    writers = [
        ShardWriter(tmp_path / 'shards', r, meta, flush_every=2)
        for r in range(2)
    ]
    for im in reversed(images):  # arrival order must not matter
        feed(writers[im['index'] % 2], im)
    for w in writers:
        w.close()
    names = sorted(p.name for p in (tmp_path / 'shards').iterdir())
    assert names == [
        'run.json', 'shard-r00000-000000.npz', 'shard-r00000-000001.npz',
        'shard-r00001-000000.npz', 'shard-r00001-000001.npz'
    ]
    merged = merge_shards(
        tmp_path / 'shards',
        tmp_path / 'merged.dapbox',
        7,
        keys=[im['key'] for im in images])
    assert merged.num_images == 7
    assert dir_bytes(tmp_path / 'merged.dapbox') == \
        dir_bytes(tmp_path / 'direct.dapbox')


def test_killed_writer_resumes_to_a_byte_identical_file(tmp_path):
    images = make_images()
    meta = run_meta(images)
    with ShardWriter(tmp_path / 'clean', 0, meta, flush_every=3) as w:
        for im in images:
            feed(w, im)
    merge_shards(tmp_path / 'clean', tmp_path / 'clean.dapbox', 7)

    # first run, two ranks: rank 0 is killed with 1 image buffered, and
    # its half-written temp shard is left behind
    work = tmp_path / 'work'
    killed = ShardWriter(work, 0, meta, flush_every=2)
    for im in images[:3]:
        feed(killed, im)
    del killed
    (work / '.shard-r00000-000001.npz.tmp-4242').write_bytes(b'PK\x03partial')
    with ShardWriter(work, 1, meta, flush_every=2) as w:
        feed(w, images[5])
    # rerun with ONE rank: it skips what any rank finished
    resumed = ShardWriter(work, 0, meta, flush_every=2)
    done = resumed.done_indices()
    np.testing.assert_array_equal(done, [0, 1, 5])
    for im in images:
        if im['index'] not in done:
            feed(resumed, im)
    resumed.close()
    merge_shards(work, tmp_path / 'resumed.dapbox', 7)
    assert dir_bytes(tmp_path / 'resumed.dapbox') == \
        dir_bytes(tmp_path / 'clean.dapbox')


def test_identical_duplicates_are_merged_once(tmp_path):
    images = make_images()
    meta = run_meta(images)
    with ShardWriter(tmp_path / 's', 0, meta) as w:
        for im in images:
            feed(w, im)
    with ShardWriter(tmp_path / 's', 1, meta) as w:  # overlapping run
        for im in images[2:5]:
            feed(w, im)
    merge_shards(tmp_path / 's', tmp_path / 'm.dapbox', 7)
    write_direct(tmp_path / 'd.dapbox', images)
    assert dir_bytes(tmp_path / 'm.dapbox') == dir_bytes(tmp_path / 'd.dapbox')


def test_conflicting_duplicates_are_an_error(tmp_path):
    images = make_images()
    meta = run_meta(images)
    with ShardWriter(tmp_path / 's', 0, meta) as w:
        for im in images:
            feed(w, im)
    images[3]['boxes'] = images[3]['boxes'] + 1
    with ShardWriter(tmp_path / 's', 1, meta) as w:
        feed(w, images[2])  # identical: fine
        feed(w, images[3])  # different boxes: conflict
    with pytest.raises(
            BoxFileError,
            match='1 images have conflicting.*'
            'index 3 in shard-r00001-000000.npz and '
            'shard-r00000-000000.npz'):
        merge_shards(tmp_path / 's', tmp_path / 'm.dapbox', 7)
    assert not (tmp_path / 'm.dapbox').exists()


def test_different_run_meta_is_refused_and_same_resumes(tmp_path):
    images = make_images()
    meta = run_meta(images)
    ShardWriter(tmp_path / 's', 0, meta).close()
    ShardWriter(tmp_path / 's', 3, dict(meta))  # same meta: resume
    other = dict(meta, generation_config=dict(GEN_CONFIG, scales=[224]))
    with pytest.raises(BoxFileError) as info:
        ShardWriter(tmp_path / 's', 0, other)
    text = str(info.value)
    assert 'generation_config: existing' in text and '[224]' in text
    assert 'new work dir' in text and 'delete' in text
    with pytest.raises(BoxFileError, match='image_list_fingerprint'):
        ShardWriter(tmp_path / 's', 1,
                    dict(meta, image_list_fingerprint='f' * 64))
    with pytest.raises(
            BoxFileError,
            match=r'\(checkpoint_sha256: existing '
            r'null, new "0+"; num_classes: existing 3, new 4\)\. '
            'Shards made with another generation config, '
            'checkpoint or image list must not be mixed'):
        ShardWriter(tmp_path / 's', 1,
                    dict(meta, checkpoint_sha256='0' * 64, num_classes=4))


def test_missing_indices_are_reported(tmp_path):
    images = make_images()
    with ShardWriter(tmp_path / 's', 0, run_meta(images)) as w:
        for im in images:
            if im['index'] not in (1, 6):
                feed(w, im)
    with pytest.raises(
            BoxFileError,
            match=r'2 of 7 images have no result.*1 \(n01/img_1'):
        merge_shards(
            tmp_path / 's',
            tmp_path / 'm.dapbox',
            7,
            keys=[im['key'] for im in images])


def test_merge_checks_keys_range_and_damaged_shards(tmp_path):
    images = make_images()
    meta = run_meta(images)
    with ShardWriter(tmp_path / 's', 0, meta, flush_every=4) as w:
        for im in images:
            feed(w, im)
    keys = [im['key'] for im in images]
    with pytest.raises(BoxFileError, match='2 shard keys differ.*index 0'):
        merge_shards(
            tmp_path / 's',
            tmp_path / 'm',
            7,
            keys=keys[1:2] + keys[:1] + keys[2:])
    with pytest.raises(BoxFileError, match='made for 7 images'):
        merge_shards(tmp_path / 's', tmp_path / 'm', 8)
    with pytest.raises(
            BoxFileError,
            match=r'differs from the value the '
            r'shards were made with \(run.json\): '
            r'generation_config: existing \{"scales": \[288, '
            r'576\], "thresholds": \[0.2, 0.3, 0.4, 0.5\]\}, '
            r'new \{"scales": \[1\]\}; image_list_fingerprint'):
        merge_shards(
            tmp_path / 's',
            tmp_path / 'm',
            7,
            meta=dict(generation_config={'scales': [1]}))
    shard = tmp_path / 's' / 'shard-r00000-000001.npz'
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(BoxFileError, match='unreadable.*delete it'):
        merge_shards(tmp_path / 's', tmp_path / 'm', 7)


def test_writer_validates_its_input(tmp_path):
    w = ShardWriter(tmp_path / 's', 0, dict(num_images=3, num_classes=2))
    with pytest.raises(BoxFileError, match='outside'):
        w.add(3, 'k', (5, 5), 0, empty((0, 4)), empty(0), empty(0))
    with pytest.raises(BoxFileError, match='label 2 out of range'):
        w.add(0, 'k', (5, 5), 2, empty((0, 4)), empty(0), empty(0))
    with pytest.raises(BoxFileError, match=r'expected \(k, 4\)'):
        w.add(0, 'k', (5, 5), 0, np.zeros((2, 4)), np.zeros(2), np.zeros(1))
    w.close()
    with pytest.raises(BoxFileError, match='closed'):
        w.add_failed(0, 'k', 'x')
    assert not [p for p in os.listdir(tmp_path / 's') if 'shard' in p]


# --------------------------------------------------------------------------
# exact errors and edge cases (each planted bug of the mutation sample
# changes one of these results)


def test_empty_image_list_writes_and_merges_to_the_same_file(tmp_path):
    write_box_file(tmp_path / 'd.dapbox', [], [], [], [], [], [],
                   dict(num_classes=2))
    bf = PseudoBoxFile.open(tmp_path / 'd.dapbox')
    assert len(bf) == 0 and bf.num_boxes == 0
    assert bf.sizes.shape == (0, 2) and bf.boxes.shape == (0, 4)
    assert bf.scores.shape == (0, ) and bf.offsets.tolist() == [0]
    merge_shards(
        tmp_path / 'no_shards',
        tmp_path / 'm.dapbox',
        0,
        meta=dict(num_classes=2))
    assert dir_bytes(tmp_path / 'm.dapbox') == dir_bytes(tmp_path / 'd.dapbox')


@pytest.mark.parametrize('meta, message', [
    (dict(num_classes=3,
          generation_config={'a': {1, 2}}), '^meta is not plain JSON data: '),
    (dict(num_classes=3, generation_config='x'),
     r'^meta\["generation_config"\] must be a dict$'),
    (dict(classes=['a', 3, 'c']), r'^meta\["classes"\] must be a list of '
     'names$'),
    (dict(classes=['a', 'b'],
          num_classes=3), r'^meta\["num_classes"\]=3 but 2 class names$'),
    (dict(num_classes=3, failed=[]), '^pass failures with failed=...'),
    (dict(num_classes=3, num_boxes=1),
     r'^meta\["num_boxes"\]=1 contradicts the data being written \(9\)$'),
])
def test_write_rejects_bad_meta(tmp_path, meta, message):
    with pytest.raises(BoxFileError, match=message):
        write_images(tmp_path / 'b.dapbox', make_images(), meta)
    assert not (tmp_path / 'b.dapbox').exists()


def test_meta_json_is_utf8_and_classes_give_num_classes(tmp_path):
    write_images(
        tmp_path / 'b.dapbox', make_images(),
        dict(classes=['cat', 'dög', 'eel'], generation_config={'note': 'ü'}))
    bf = PseudoBoxFile.open(tmp_path / 'b.dapbox')
    assert bf.num_classes == 3 and bf.classes == ['cat', 'dög', 'eel']
    text = (tmp_path / 'b.dapbox' / 'meta.json').read_bytes()
    assert '"note": "ü"'.encode() in text and b'\\u' not in text


def test_first_image_failed_and_npy_version_2_members_open(tmp_path):
    images = make_images()
    images[0] = dict(
        index=0,
        key=images[0]['key'],
        size=(0, 0),
        label=-1,
        failed='unreadable')
    write_direct(tmp_path / 'b.dapbox', images)
    scores = np.load(tmp_path / 'b.dapbox' / 'scores.npy')
    with open(tmp_path / 'b.dapbox' / 'scores.npy', 'wb') as f:
        np.lib.format.write_array(f, scores, version=(2, 0))
    bf = PseudoBoxFile.open(tmp_path / 'b.dapbox')
    assert [f[0] for f in bf.failed] == [0, 4]
    np.testing.assert_array_equal(bf.scores, scores)


def test_verify_names_the_file_and_the_bad_box(tmp_path):
    path = tmp_path / 'b.dapbox'
    write_direct(path, make_images())
    boxes = np.load(path / 'boxes.npy')
    boxes[1, 2] = boxes[1, 0] - 1  # x2 < x1 in image 2's first box
    np.save(path / 'boxes.npy', boxes)
    bf = PseudoBoxFile.open(path)  # values are not read on open
    with pytest.raises(
            BoxFileError,
            match='^' + re.escape(str(path)) + r': box 1 \(image '
            r'2\) is'):
        bf.verify()


def test_two_conflicts_are_both_listed(tmp_path):
    images = make_images()
    meta = run_meta(images)
    with ShardWriter(tmp_path / 's', 0, meta) as w:
        for im in images:
            feed(w, im)
    with ShardWriter(tmp_path / 's', 1, meta) as w:
        for i in (2, 3):
            images[i]['boxes'] = images[i]['boxes'] + 1
            feed(w, images[i])
    with pytest.raises(
            BoxFileError,
            match=r'^2 images have conflicting '
            r'results in different shards \(index 2 in '
            r'shard-r00001-000000\.npz and shard-r00000-000000\.'
            r'npz; index 3 in shard-r00001-000000\.npz and '
            r'shard-r00000-000000\.npz\)'):
        merge_shards(tmp_path / 's', tmp_path / 'm.dapbox', 7)


def test_run_json_without_hard_links_and_long_differences(
        tmp_path, monkeypatch):
    images = make_images()
    meta = run_meta(images)

    def no_links(src, dst):
        raise PermissionError('file system without hard links')

    monkeypatch.setattr(os, 'link', no_links)
    ShardWriter(tmp_path / 's', 0, meta).close()
    assert json.loads(
        (tmp_path / 's' / 'run.json').read_text())['run_meta'] == meta
    assert sorted(os.listdir(tmp_path / 's')) == ['run.json']
    long_old = dict(meta, generation_config={'x': 'a' * 200})
    ShardWriter(tmp_path / 'l', 0, long_old).close()
    with pytest.raises(BoxFileError) as info:
        ShardWriter(tmp_path / 'l', 0,
                    dict(meta, generation_config={'x': 'b' * 200}))
    old_text = json.dumps({'x': 'a' * 200})[:117] + '...'
    new_text = json.dumps({'x': 'b' * 200})[:117] + '...'
    assert f'(generation_config: existing {old_text}, new {new_text}). ' \
        in str(info.value)


def test_merge_refuses_damaged_and_foreign_shards(tmp_path):
    images = make_images()
    with ShardWriter(tmp_path / 's', 0, run_meta(images)) as w:
        for im in images:
            feed(w, im)
    shard = tmp_path / 's' / 'shard-r00000-000000.npz'
    with np.load(shard) as npz:
        good = dict(npz)
    np.savez(shard, **dict(good, version=np.array(2)))
    with pytest.raises(
            BoxFileError,
            match='has format dap-pseudo-box-shard '
            'version 2, expected dap-pseudo-box-shard 1'):
        merge_shards(tmp_path / 's', tmp_path / 'm', 7)
    np.savez(shard, **dict(good, keys=good['keys'].astype(object)))
    with pytest.raises(BoxFileError, match='unreadable.*allow_pickle'):
        merge_shards(tmp_path / 's', tmp_path / 'm', 7)
    run = json.loads((tmp_path / 's' / 'run.json').read_text())
    (tmp_path / 's' / 'run.json').write_text(json.dumps(dict(run, version=2)))
    with pytest.raises(
            BoxFileError,
            match='has shard format version 2, '
            'this code writes 1'):
        merge_shards(tmp_path / 's', tmp_path / 'm', 7)
    assert not (tmp_path / 'm').exists()


def test_merge_reports_missing_and_out_of_range_indices(tmp_path):
    images = make_images()
    with ShardWriter(tmp_path / 's', 0, run_meta(images)) as w:
        for im in images:
            if im['index'] not in (1, 6):
                feed(w, im)
    with pytest.raises(
            BoxFileError,
            match=r'2 of 7 images have no result '
            r'in .* \(e\.g\. 1, 6\)'):
        merge_shards(tmp_path / 's', tmp_path / 'm.dapbox', 7)
    meta = dict(run_meta(images))
    del meta['num_images']
    with ShardWriter(tmp_path / 'r', 0, meta) as w:
        w.add(9, 'k', (5, 5), 0, empty((0, 4)), empty(0), empty(0))
    with pytest.raises(
            BoxFileError,
            match=r'shard-r00000-000000\.npz holds '
            r'index 9, outside \[0, 7\): it was made for another '
            'image list'):
        merge_shards(tmp_path / 'r', tmp_path / 'm.dapbox', 7)


def test_shard_writer_flushes_every_image_and_checks_sizes_and_keys(tmp_path):
    images = make_images()
    with pytest.raises(BoxFileError, match='flush_every must be >= 1'):
        ShardWriter(tmp_path / 's', 0, run_meta(images), flush_every=0)
    w = ShardWriter(tmp_path / 's', 0, run_meta(images), flush_every=1)
    for im in images[:3]:
        feed(w, im)
    assert sorted(p.name for p in (tmp_path / 's').glob('shard-*')) == [
        f'shard-r00000-00000{i}.npz' for i in range(3)
    ]
    done = w.done_indices()
    assert done.dtype == np.int64 and done.tolist() == [0, 1, 2]
    with pytest.raises(
            BoxFileError, match=r'^image 3: size \(w, h\)=\(0, '
            r'5\)$'):
        w.add(3, 'k', (0, 5), 0, empty((0, 4)), empty(0), empty(0))
    with pytest.raises(BoxFileError, match=r"^image 3: invalid key 'a\\nb'$"):
        w.add(3, 'a\nb', (5, 5), 0, empty((0, 4)), empty(0), empty(0))


def test_member_file_says_where_each_array_lies(tmp_path):
    write_direct(tmp_path / 'b.dapbox', make_images())
    bf = PseudoBoxFile.open(tmp_path / 'b.dapbox')
    for name, rows in (('boxes', bf.boxes), ('keys', bf.keys), ('offsets',
                                                                bf.offsets)):
        where = bf.member_file(name)
        assert (where.dtype, where.row_shape,
                where.length) == (rows.dtype, rows.shape[1:], len(rows))
        with open(where.path, 'rb') as f:
            f.seek(where.offset)
            data = f.read()
        np.testing.assert_array_equal(
            np.frombuffer(data, where.dtype).reshape(rows.shape), rows)
    assert bf.member_file('boxes').path == str(tmp_path / 'b.dapbox' /
                                               'boxes.npy')
    with pytest.raises(BoxFileError, match="'meta' is not a member"):
        bf.member_file('meta')
    before = np.array(bf.boxes)
    bf.release_pages()  # drops resident pages, not data
    np.testing.assert_array_equal(bf.boxes, before)


def test_describe_changes_names_every_differing_value():
    old = {'cfg': {'a': 1, 'b': {'c': [1, 2]}}, 'sha': 'x', 'same': 0}
    new = {'cfg': {'a': 1, 'b': {'c': [3]}, 'd': None}, 'sha': 'y', 'same': 0}
    assert describe_changes(old, new) == [
        'cfg.b.c: existing [1, 2], new [3]', 'sha: existing "x", new "y"'
    ]
    assert describe_changes(
        old, new, depth=1) == [
            'cfg: existing {"a": 1, "b": {"c": [1, 2]}}, new {"a": 1, "b": '
            '{"c": [3]}, "d": null}', 'sha: existing "x", new "y"'
        ]
    assert describe_changes(
        old['cfg'], new['cfg'], 'cfg',
        depth=1) == ['cfg.b: existing {"c": [1, 2]}, new {"c": [3]}']
    assert describe_changes(1, 1, 'x') == []
    at_limit = 'a' * 118  # json text of 120 characters: not shortened
    assert describe_changes({'k': at_limit}, {}, depth=1) == [
        f'k: existing "{at_limit}", new null'
    ]
    assert describe_changes({'k': 'a' * 300}, {}, depth=1) == [
        'k: existing "' + 'a' * 116 + '..., new null'
    ]


def test_the_earlier_shard_is_the_reference_of_every_conflict(tmp_path):
    images = [
        im for im in make_images(20) if 'failed' not in im and len(im['boxes'])
    ]
    meta = dict(run_meta(make_images(20)))
    for rank, shift in ((0, 0), (1, 1)):
        with ShardWriter(tmp_path / 's', rank, meta) as w:
            for im in images:
                feed(w, dict(im, boxes=im['boxes'] + shift))
    with pytest.raises(BoxFileError) as info:
        merge_shards(tmp_path / 's', tmp_path / 'm.dapbox', 20)
    text = str(info.value)
    assert text.startswith(f'{len(images)} images have conflicting')
    firsts = [im['index'] for im in images[:5]]
    assert '; '.join(f'index {i} in shard-r00001-000000.npz and '
                     'shard-r00000-000000.npz' for i in firsts) in text
