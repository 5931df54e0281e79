"""LoadImageRandomChoiceResize against the stock mmdet pipeline.

The stock pair (``LoadImageFromFile`` + ``RandomChoiceResize``) is the
reference: with the same random draws, every output size, scale factor,
flip and box must be identical; pixels differ only by the decoder's
rounding when the JPEG was decoded at reduced size.
"""
import copy
import io
import os.path as osp

import cv2
import numpy as np
import pytest
from mmcv.transforms import Compose
from mmengine.registry import init_default_scope
from PIL import Image

from projects.dap.dap.datasets import (LoadImageRandomChoiceResize,
                                       decode_resized, reduction_factor,
                                       target_size)

DAP_SCALES = [(1333, 96), (1333, 160), (1333, 320), (1333, 640)]


def smooth_image(w, h, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / w * 200, y / h * 200, (x + y) / (w + h) * 255], -1)
    cv2.circle(img, (w // 3, h // 2), min(w, h) // 4, (30, 220, 90), -1)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_jpeg(path, w, h, seed=0):
    cv2.imwrite(
        str(path), smooth_image(w, h, seed), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return str(path)


def info(path, w, h, box=(10.5, 12.25, 40., 47.5)):
    return dict(
        img_path=str(path),
        width=w,
        height=h,
        instances=[dict(bbox=list(box), bbox_label=0, ignore_flag=0)])


def pipelines(scales=DAP_SCALES, flip=0.5, **kwargs):
    init_default_scope('mmdet')
    ann = dict(type='LoadAnnotations', with_bbox=True)
    flip = dict(type='RandomFlip', prob=flip)
    stock = Compose([
        dict(type='LoadImageFromFile'), ann,
        dict(type='RandomChoiceResize', scales=scales, keep_ratio=True), flip
    ])
    ours = Compose([
        ann,
        dict(
            type='LoadImageRandomChoiceResize',
            scales=scales,
            keep_ratio=True,
            **kwargs), flip
    ])
    return stock, ours


def run_both(stock, ours, data, seed):
    np.random.seed(seed)
    a = stock(copy.deepcopy(data))
    np.random.seed(seed)
    b = ours(copy.deepcopy(data))
    return a, b


def assert_same_geometry(a, b):
    assert a['img'].shape == b['img'].shape
    assert a['img_shape'] == b['img_shape']
    assert a['ori_shape'] == b['ori_shape']
    assert a['scale_factor'] == b['scale_factor']
    assert a['scale'] == b['scale'] and a['scale_idx'] == b['scale_idx']
    assert a['flip'] == b['flip']
    assert a['keep_ratio'] == b['keep_ratio']
    np.testing.assert_array_equal(a['homography_matrix'],
                                  b['homography_matrix'])
    np.testing.assert_array_equal(a['gt_bboxes'].tensor.numpy(),
                                  b['gt_bboxes'].tensor.numpy())


def test_sizes_and_reduction_by_hand():
    # 500x375 at short side 96: factor min(1333/500, 96/375) = 0.256
    assert target_size(500, 375, (1333, 96)) == (128, 96)
    assert target_size(375, 500, (1333, 160)) == (160, 213)  # 213.33
    # long side limit: min(1333/2000, 640/300) = 0.6665
    assert target_size(2000, 300, (1333, 640)) == (1333, 200)
    assert target_size(500, 375, (64, 48), keep_ratio=False) == (64, 48)
    # reductions keep the decoded image >= the target (PIL draft's rule)
    assert reduction_factor(500, 375, 128, 96) == 2  # 500//128 = 3
    assert reduction_factor(1000, 750, 128, 96) == 4  # 7
    assert reduction_factor(2000, 1500, 128, 96) == 8  # 15
    assert reduction_factor(500, 375, 427, 320) == 1
    assert reduction_factor(500, 375, 853, 640) == 1


@pytest.mark.parametrize('backend', ['turbojpeg', 'cv2', 'pillow'])
def test_same_sizes_boxes_and_meta_as_stock(tmp_path, backend):
    sizes = [(500, 375), (375, 500), (1000, 750), (2000, 1400), (97, 61)]
    stock, ours = pipelines(decode_backend=backend)
    factors = set()
    for n, (w, h) in enumerate(sizes):
        path = write_jpeg(tmp_path / f'{n}.JPEG', w, h, seed=n)
        for seed in range(8):
            a, b = run_both(stock, ours, info(path, w, h), seed)
            assert_same_geometry(a, b)
            factors.add(b['decode_factor'])
            scale = min(1333 / max(w, h), b['scale'][1] / min(w, h))
            assert b['img_shape'] == (int(h * scale + 0.5),
                                      int(w * scale + 0.5))
            # same picture, up to the decoder's rounding
            diff = np.abs(a['img'].astype(np.float32) - b['img'])
            assert diff.mean() < 6, (w, h, b['decode_factor'])
            if b['decode_factor'] == 1:  # full decode: exactly stock
                assert diff.max() == 0
            elif backend == 'turbojpeg':  # libjpeg-turbo: cv2's pixels
                f = b['decode_factor']
                ref = cv2.imdecode(
                    np.fromfile(path, np.uint8),
                    getattr(cv2, f'IMREAD_REDUCED_COLOR_{f}'))
                ref = cv2.resize(
                    ref, b['img_shape'][::-1], interpolation=cv2.INTER_LINEAR)
                if b['flip']:
                    ref = ref[:, ::-1]
                np.testing.assert_array_equal(b['img'], ref)
    assert factors >= {1, 2, 4, 8}


def test_full_decode_mode_is_exactly_stock(tmp_path):
    path = write_jpeg(tmp_path / 'a.JPEG', 600, 450)
    stock, ours = pipelines(reduced_decode=False)
    for seed in range(4):
        a, b = run_both(stock, ours, info(path, 600, 450), seed)
        assert_same_geometry(a, b)
        np.testing.assert_array_equal(a['img'], b['img'])


def test_png_named_jpeg_grayscale_and_cmyk(tmp_path):
    stock, ours = pipelines(scales=[(1333, 96)], flip=0.)
    img = smooth_image(400, 300)
    png = tmp_path / 'really_a_png.JPEG'
    cv2.imwrite(str(png) + '.png', img)
    (tmp_path /
     'really_a_png.JPEG').write_bytes(open(str(png) + '.png', 'rb').read())
    a, b = run_both(stock, ours, info(png, 400, 300), 0)
    assert_same_geometry(a, b)
    assert b['decode_factor'] == 1  # detected by content, decoded fully
    np.testing.assert_array_equal(a['img'], b['img'])

    gray = tmp_path / 'gray.JPEG'
    Image.fromarray(img[..., 0]).save(gray, quality=90)
    cmyk = tmp_path / 'cmyk.JPEG'
    Image.fromarray(img[..., ::-1]).convert('CMYK').save(cmyk, quality=90)
    for path in (gray, cmyk):
        for backend in ('turbojpeg', 'cv2', 'pillow'):
            stock, ours = pipelines(
                scales=[(1333, 96)], flip=0., decode_backend=backend)
            a, b = run_both(stock, ours, info(path, 400, 300), 0)
            assert_same_geometry(a, b)
            assert b['img'].shape == (96, 128, 3)
            assert b['decode_factor'] == 2
            assert np.abs(a['img'].astype(float) - b['img']).mean() < 6
    b = ours(info(gray, 400, 300))
    assert (b['img'][..., 0] == b['img'][..., 2]).all()


@pytest.mark.parametrize('backend', ['turbojpeg', 'cv2', 'pillow'])
def test_exif_rotated_jpeg_matches_stock(tmp_path, backend):
    raw = Image.fromarray(smooth_image(640, 400)[..., ::-1])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: the image is 400 wide, 640 high
    path = tmp_path / 'rotated.JPEG'
    raw.save(path, quality=90, exif=exif.tobytes())
    stock, ours = pipelines(
        scales=[(1333, 96)], flip=0., decode_backend=backend)
    data = info(path, 400, 640)
    a, b = run_both(stock, ours, data, 0)
    assert a['ori_shape'] == (640, 400)
    assert_same_geometry(a, b)
    assert b['decode_factor'] == 4  # 400 // 96 = 4
    assert np.abs(a['img'].astype(float) - b['img']).mean() < 6
    # without the dataset's size the header is read instead
    del data['width'], data['height']
    np.random.seed(0)
    c = ours(copy.deepcopy(data))
    assert_same_geometry(a, c)


def test_bad_files_and_wrong_sizes(tmp_path):
    _, ours = pipelines(scales=[(1333, 96)], flip=0.)
    junk = tmp_path / 'junk.JPEG'
    junk.write_bytes(b'\xff\xd8\xff\xe0 this is not a jpeg at all')
    with pytest.raises(OSError, match='junk.JPEG'):
        ours(info(junk, 100, 100))
    with pytest.raises(FileNotFoundError):
        ours(info(tmp_path / 'missing.JPEG', 100, 100))
    path = write_jpeg(tmp_path / 'a.JPEG', 500, 375)
    with pytest.raises(ValueError, match='dataset says 400x375'):
        ours(info(path, 400, 375))
    # a truncated JPEG is refused, at reduced size too (the stock loader
    # refuses it with an AssertionError)
    data = open(path, 'rb').read()
    cut = tmp_path / 'cut.JPEG'
    cut.write_bytes(data[:len(data) * 2 // 3])
    for backend in ('turbojpeg', 'cv2', 'pillow'):
        _, ours = pipelines(
            scales=[(1333, 96)], flip=0., decode_backend=backend)
        with pytest.raises(OSError, match='cannot decode image .*cut.JPEG'):
            ours(info(cut, 500, 375))


def test_decode_resized_and_options():
    ok, buf = cv2.imencode('.jpg', smooth_image(320, 240))
    img, size, factor = decode_resized(buf.tobytes(), (1333, 60))
    assert size == (240, 320) and factor == 4 and img.shape == (60, 80, 3)
    rgb, _, _ = decode_resized(buf.tobytes(), (1333, 60), channel_order='rgb')
    np.testing.assert_array_equal(rgb, img[..., ::-1])
    fixed, _, factor = decode_resized(
        buf.tobytes(), (100, 50), keep_ratio=False)
    assert fixed.shape == (50, 100, 3) and factor == 2
    with pytest.raises(ValueError, match='backend'):
        decode_resized(buf.tobytes(), 60, backend='turbo')
    # numpy boxes (LoadAnnotations(box_type=None)) are rescaled too
    t = LoadImageRandomChoiceResize(scales=(1333, 60))
    assert t.scales == [(1333, 60)]
    pil = Image.open(io.BytesIO(buf.tobytes()))
    assert pil.size == (320, 240)
    with pytest.raises(ValueError, match='channel_order'):
        LoadImageRandomChoiceResize(scales=[(1, 1)], channel_order='bgra')
    with pytest.raises(ValueError, match='decode_backend must be one of'):
        LoadImageRandomChoiceResize(scales=[(1, 1)], decode_backend='turbo')


def test_numpy_boxes_are_rescaled_and_clipped(tmp_path):
    path = write_jpeg(tmp_path / 'a.JPEG', 320, 240)
    t = LoadImageRandomChoiceResize(scales=[(1333, 60)])
    out = t(
        dict(
            img_path=path,
            gt_bboxes=np.array([[10., 20., 330., 100.]], np.float32)))
    assert out['scale_factor'] == (0.25, 0.25)
    np.testing.assert_allclose(out['gt_bboxes'], [[2.5, 5., 80., 25.]])
    assert osp.basename(out['img_path']) == 'a.JPEG'


def test_turbojpeg_path_is_taken_for_plain_jpegs_only(tmp_path, monkeypatch):
    """The fast path must really run for ordinary JPEGs (a silent fallback
    to cv2 would lose the speed), and must not run where TurboJPEG would
    differ from the stock loader (EXIF orientation, CMYK)."""
    from projects.dap.dap.datasets import image_decoding
    calls = []
    real = image_decoding.simplejpeg.decode_jpeg

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(image_decoding.simplejpeg, 'decode_jpeg', counting)
    plain = write_jpeg(tmp_path / 'plain.JPEG', 500, 375)
    img, size, factor = decode_resized(
        open(plain, 'rb').read(), (1333, 96), backend='turbojpeg')
    assert (size, factor, img.shape) == ((375, 500), 2, (96, 128, 3))
    assert calls == [dict(min_height=188, min_width=250)]
    decode_resized(open(plain, 'rb').read(), (1333, 640), backend='turbojpeg')
    assert calls[-1] == dict(min_height=0, min_width=0)  # full size

    raw = Image.fromarray(smooth_image(64, 48))
    exif = Image.Exif()
    exif[0x0112] = 1
    tagged = io.BytesIO()
    raw.save(tagged, 'JPEG', quality=90, exif=exif.tobytes())
    assert image_decoding._has_exif(tagged.getvalue())
    assert not image_decoding._has_exif(open(plain, 'rb').read())
    cmyk = io.BytesIO()
    raw.convert('CMYK').save(cmyk, 'JPEG', quality=90)
    n = len(calls)
    for data in (tagged.getvalue(), cmyk.getvalue()):
        img, size, _ = decode_resized(data, (1333, 24), backend='turbojpeg')
        assert size == (48, 64) and img.shape == (24, 32, 3)
    assert len(calls) == n
    assert image_decoding.resolve_backend('auto') == 'turbojpeg'


def _segments(jpeg: bytes) -> list:
    """(marker, whole segment bytes) of a JPEG header, up to the scan."""
    pos, out = 2, []
    while jpeg[pos + 1] != 0xDA:
        length = int.from_bytes(jpeg[pos + 2:pos + 4], 'big')
        out.append((jpeg[pos + 1], jpeg[pos:pos + 2 + length]))
        pos += 2 + length
    return out, jpeg[pos:]


def test_exif_after_other_header_segments_still_goes_to_cv2(tmp_path):
    """An Exif block behind a DQT (legal, seen in odd encoders) must still
    be found, or a rotated image would decode unrotated, at the wrong
    size for its boxes."""
    from projects.dap.dap.datasets import image_decoding
    raw = Image.fromarray(smooth_image(640, 400)[..., ::-1])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: 400 wide, 640 high
    buf = io.BytesIO()
    raw.save(buf, 'JPEG', quality=90, exif=exif.tobytes())
    segments, scan = _segments(buf.getvalue())
    app1 = [seg for marker, seg in segments if marker == 0xE1]
    rest = [seg for marker, seg in segments if marker != 0xE1]
    dqt = next(i for i, seg in enumerate(rest) if seg[1] == 0xDB)
    moved = b''.join([b'\xff\xd8'] + rest[:dqt + 1] + app1 +
                     rest[dqt + 1:]) + scan
    assert moved.index(b'Exif') > moved.index(b'\xff\xdb')
    assert image_decoding._has_exif(moved)
    path = tmp_path / 'late_exif.JPEG'
    path.write_bytes(moved)
    stock, ours = pipelines(
        scales=[(1333, 96)], flip=0., decode_backend='turbojpeg')
    a, b = run_both(stock, ours, info(path, 400, 640), 0)
    assert a['ori_shape'] == (640, 400)
    assert_same_geometry(a, b)
    # a header that cannot be walked errs towards cv2 only if it has Exif
    assert not image_decoding._has_exif(b'\xff\xd8\x00junk')
    assert image_decoding._has_exif(b'\xff\xd8\x00junk Exif\0\0')
