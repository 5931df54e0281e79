"""The decoding both DAP steps share: one EXIF rule (OpenCV's, which step
3's stock loader uses) and one size convention ((h, w) shapes)."""
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from projects.dap.dap.datasets.image_decoding import (decode_image,
                                                      decode_resized,
                                                      read_exif_orientation)

BACKENDS = ('turbojpeg', 'cv2', 'pillow')
XMP_ROTATE_90 = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.'
    b'org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.'
    b'adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')


def corner_image(w=48, h=32):
    """RGB image whose four corners differ, so every transposition shows."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:h // 2, :w // 2] = (255, 0, 0)
    img[:h // 2, w // 2:] = (0, 255, 0)
    img[h // 2:, :w // 2] = (0, 0, 255)
    img[h // 2:, w // 2:] = (255, 255, 0)
    return img


def encoded(img, fmt, orientation=None, **kwargs):
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
        kwargs['exif'] = exif.tobytes()
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, fmt, **kwargs)
    return buf.getvalue()


def cv2_decode(data):
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


@pytest.mark.parametrize('orientation', range(1, 9))
def test_every_orientation_is_undone_like_opencv(orientation):
    """Lossless PNG with an EXIF orientation: step 2's pixels are exactly
    the stock loader's (cv2), in RGB."""
    data = encoded(corner_image(), 'PNG', orientation)
    want = cv2_decode(data)[..., ::-1]
    img, shape = decode_image(data)
    np.testing.assert_array_equal(img, want)
    assert shape == want.shape[:2] == ((48, 32) if orientation >= 5 else
                                       (32, 48))
    raw, shape = decode_image(data, exif_orientation=False)
    np.testing.assert_array_equal(raw, corner_image())
    assert shape == (32, 48)


@pytest.mark.parametrize('fmt,kwargs,rotated', [
    ('JPEG', dict(orientation=6), True),
    ('PNG', dict(orientation=6), True),
    ('TIFF', dict(orientation=6), True),
    ('WEBP', dict(orientation=6, lossless=True), False),
    ('JPEG', dict(xmp=XMP_ROTATE_90), False),
    ('JPEG', dict(orientation=6, xmp=XMP_ROTATE_90), True),
])
def test_both_steps_orient_as_the_stock_loader(fmt, kwargs, rotated):
    """Where OpenCV applies the orientation (the EXIF of a JPEG, PNG or
    TIFF) both steps do; where it does not (XMP, WebP) neither does, so
    the box file's sizes are the sizes step 3 decodes."""
    data = encoded(corner_image(64, 40), fmt, **kwargs)
    want = (64, 40) if rotated else (40, 64)
    assert cv2_decode(data).shape[:2] == want  # the stock loader's rule
    img, shape = decode_image(data)
    assert shape == img.shape[:2] == want
    for backend in BACKENDS:
        for reduced in (True, False):
            out, shape, _ = decode_resized(
                data, (1333, 10), reduced=reduced, backend=backend)
            assert shape == want, (backend, reduced)
            # short side 10, long side rounded as mmcv's rescale_size
            assert out.shape[:2] == ((16, 10) if rotated else (10, 16))


def test_shapes_are_h_w_in_both_steps():
    data = encoded(corner_image(48, 32), 'JPEG', quality=95)
    img, shape = decode_image(data)
    assert shape == (32, 48) and img.shape == (32, 48, 3)
    out, shape, factor = decode_resized(data, (1333, 16))
    assert shape == (32, 48) and factor == 2 and out.shape == (16, 24, 3)
    # the hint is a shape too: a right one decodes reduced, a transposed
    # one is detected (wrong decoded size) and decoded at full size
    for hint, want_factor in (((32, 48), 2), ((48, 32), 1)):
        out, shape, factor = decode_resized(
            data, (1333, 16), backend='cv2', shape_hint=hint)
        assert (shape, factor) == ((32, 48), want_factor)
        assert out.shape == (16, 24, 3)


def test_orientation_of_broken_or_missing_exif_is_1():
    assert read_exif_orientation(
        Image.open(io.BytesIO(encoded(corner_image(), 'PNG')))) == 1
    jpeg = Image.open(io.BytesIO(encoded(corner_image(), 'JPEG', 8)))
    assert read_exif_orientation(jpeg) == 8
    jpeg.info['exif'] = b'Exif\0\0garbage'
    assert read_exif_orientation(jpeg) == 1
    img, shape = decode_image(encoded(corner_image(), 'JPEG', 8))
    assert shape == (48, 32)
