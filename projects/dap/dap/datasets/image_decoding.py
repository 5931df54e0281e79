"""Image decoding of both DAP steps: one EXIF rule, one size convention.

Step 2 writes each image's size into the box file and step 3 checks it
against the image it decodes, so both steps decode here:

* **EXIF orientation** (:func:`read_exif_orientation`) is applied as OpenCV's
  ``imdecode`` (step 3's stock ``LoadImageFromFile``) applies it: the
  Orientation tag of the EXIF block of a JPEG, PNG or TIFF.  An XMP
  orientation and a WebP's EXIF are ignored, as OpenCV ignores them.
* **Sizes**: an image's dimensions are a shape ``(h, w)``, like numpy's and
  mmcv's ``img_shape`` / ``ori_shape``.  Only :func:`target_size` and
  :func:`reduction_factor`, which mirror mmcv's ``Resize``, keep its
  ``(w, h)`` order of scales and sizes.

:func:`decode_image` is step 2's decoder: PIL by content (the original's
torchvision loader), every mode to RGB, optionally at a reduced JPEG size.

:func:`decode_resized` is step 3's: it decodes and resizes as
``LoadImageFromFile`` + ``Resize`` do, but knows the output size before
decoding.  libjpeg can decode at 1/2, 1/4 or 1/8 size in the DCT domain
(``cv2.IMREAD_REDUCED_COLOR_*``, PIL's ``Image.draft``, TurboJPEG's scaled
decode), skipping most of the inverse DCT, chroma upsampling, colour
conversion and the later shrink (not the entropy decoding, which is most of
a high-quality JPEG's decode).  The default decoder is libjpeg-turbo's
TurboJPEG API (``simplejpeg``): the same library and pixels as cv2's, without
the ~0.3 ms per 500x375 image that ``cv2.imdecode`` adds around it.  See
``benchmarks/bench_reduced_decode.py`` for the measured ratios.
"""
import io
import math
from typing import Optional, Tuple, Union

import cv2
import mmcv
import numpy as np
from PIL import Image

try:  # libjpeg-turbo's TurboJPEG API (the same library cv2 bundles)
    import simplejpeg
except ImportError:  # pragma: no cover - it is in requirements/runtime.txt
    simplejpeg = None

Scale = Union[int, Tuple[int, int]]
Decoded = Tuple[np.ndarray, Tuple[int, int], int]

_ORIENTATION_TAG = 0x0112
# the transposition that undoes each EXIF orientation (2-8)
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAP_ORIENTATIONS = (5, 6, 7, 8)  # transpose / rotate 90: w and h swap
_EXIF_FORMATS = ('JPEG', 'MPO', 'PNG')  # EXIF in info['exif'], as cv2 reads
_REDUCTIONS = (8, 4, 2)
_CV2_REDUCED = {
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8
}
_JPEG_MAGIC = b'\xff\xd8\xff'
_BACKENDS = ('auto', 'turbojpeg', 'cv2', 'pillow')


# ------------------------------------------------------------------ EXIF
def read_exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation (1-8) of an opened image; 1 when it has none.

    A PNG's EXIF chunk may follow the pixels: call it after ``load()``
    there.  A broken EXIF block counts as none, as libjpeg ignores it.
    """
    try:
        if img.format == 'TIFF':
            value = img.tag_v2.get(_ORIENTATION_TAG, 1)
        elif img.format in _EXIF_FORMATS and img.info.get('exif'):
            exif = Image.Exif()  # not getexif(): that also reads XMP
            exif.load(img.info['exif'])
            value = exif.get(_ORIENTATION_TAG, 1)
        else:
            return 1
        return int(value)
    except Exception:
        return 1


def apply_orientation(img: Image.Image, orientation: int) -> Image.Image:
    """``img`` as seen upright, given its EXIF ``orientation``."""
    method = _TRANSPOSE.get(orientation)
    return img if method is None else img.transpose(method)


# ---------------------------------------------------------------- step 2
def decode_image(data: bytes,
                 draft_short_side: Optional[int] = None,
                 exif_orientation: bool = True
                 ) -> Tuple[np.ndarray, Tuple[int, int]]:
    """Decode image bytes to RGB ``uint8`` (H, W, 3) by content, with PIL.

    Returns ``(image, (orig_h, orig_w))``.  With ``draft_short_side`` a
    JPEG whose short side is at least twice that is decoded at a libjpeg
    reduction (1/2, 1/4, 1/8) that keeps its short side >=
    ``draft_short_side``; ``(orig_h, orig_w)`` is always the full-size
    image's, which is what the boxes are scaled to.  Raises ``OSError`` /
    ``ValueError`` (and PIL's errors) on undecodable data.
    """
    if not data:
        raise ValueError('empty file (0 bytes)')
    with Image.open(io.BytesIO(data)) as img:
        width, height = img.size
        if draft_short_side and img.format == 'JPEG' and \
                min(width, height) >= 2 * draft_short_side:
            ratio = draft_short_side / min(width, height)
            img.draft('RGB',
                      (math.ceil(width * ratio), math.ceil(height * ratio)))
        img.load()  # truncated data raises here (LOAD_TRUNCATED_IMAGES off)
        orientation = read_exif_orientation(img) if exif_orientation else 1
        img = apply_orientation(img, orientation)
        if orientation in _SWAP_ORIENTATIONS:
            width, height = height, width
        rgb = img if img.mode == 'RGB' else img.convert('RGB')
        arr = np.array(rgb)  # writable (torch.from_numpy warns otherwise)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.size == 0:
        raise ValueError(f'decoded to an array of shape {arr.shape}')
    return arr, (height, width)


# ---------------------------------------------------------------- step 3
def resolve_backend(backend: str, arg: str = 'backend') -> str:
    """'auto' is 'turbojpeg' when simplejpeg is installed, else 'cv2';
    ``arg`` names the argument in the error for an unknown backend."""
    if backend not in _BACKENDS:
        raise ValueError(f'{arg} must be one of {_BACKENDS}, got '
                         f'{backend!r}')
    if backend == 'auto':
        return 'turbojpeg' if simplejpeg is not None else 'cv2'
    if backend == 'turbojpeg' and simplejpeg is None:
        raise ImportError('decode_backend="turbojpeg" needs simplejpeg '
                          '(pip install simplejpeg)')
    return backend


def target_size(width: int,
                height: int,
                scale: Scale,
                keep_ratio: bool = True) -> Tuple[int, int]:
    """Output (w, h) of mmcv's ``Resize`` for an image of (width, height).

    Uses mmcv's own ``rescale_size`` so the size is the stock pipeline's.
    """
    if isinstance(scale, int):
        scale = (scale, scale)
    scale = tuple(int(s) for s in scale)
    if keep_ratio:
        return tuple(mmcv.rescale_size((width, height), scale))
    return scale


def reduction_factor(width: int, height: int, out_w: int, out_h: int) -> int:
    """The largest libjpeg reduction (8, 4, 2 or 1) that keeps the decoded
    image at least (out_w, out_h) large (the rule of PIL's ``draft``)."""
    room = min(width // max(out_w, 1), height // max(out_h, 1))
    for factor in _REDUCTIONS:
        if room >= factor:
            return factor
    return 1


def decode_resized(img_bytes: bytes,
                   scale: Scale,
                   keep_ratio: bool = True,
                   reduced: bool = True,
                   interpolation: str = 'bilinear',
                   channel_order: str = 'bgr',
                   backend: str = 'auto',
                   shape_hint: Optional[Tuple[int, int]] = None,
                   name: str = '<bytes>') -> Decoded:
    """Decode ``img_bytes`` and resize it as mmcv's ``Resize`` would.

    Returns ``(image, (orig_h, orig_w), factor)``: the resized HxWx3 uint8
    image, the original shape after EXIF orientation (what ``cv2`` decodes)
    and the JPEG reduction used (1 = full decode).  JPEGs are recognised by
    content, not by name, and decoded at reduced size per ``backend``
    (TurboJPEG, ``cv2``'s ``IMREAD_REDUCED_COLOR_*`` or PIL's ``draft``).
    Other formats, and JPEGs the reduced path cannot read, are decoded at
    full size by ``mmcv.imfrombytes`` exactly like ``LoadImageFromFile``.
    A file nothing can decode raises ``OSError`` naming ``name``.

    ``shape_hint`` ((h, w) after EXIF orientation, e.g. from the dataset)
    lets the cv2 backend skip reading the header; a wrong hint is detected
    (the decoded size differs) and the image is decoded at full size.
    """
    backend = resolve_backend(backend)
    if backend == 'turbojpeg':
        out = _decode_jpeg_turbo(img_bytes, scale, keep_ratio, reduced,
                                 interpolation, channel_order)
        if out is not None:
            return out
        backend = 'cv2'  # EXIF-rotated, CMYK, corrupt: as the stock loader
    if reduced:
        out = _decode_jpeg_reduced(img_bytes, scale, keep_ratio, interpolation,
                                   channel_order, backend, shape_hint)
        if out is not None:
            return out
    full = _decode_full(img_bytes, channel_order, name)
    h, w = full.shape[:2]
    out_size = target_size(w, h, scale, keep_ratio)
    return _resized(full, out_size, interpolation), (h, w), 1


def _resized(img: np.ndarray, out_size: Tuple[int, int],
             interpolation: str) -> np.ndarray:
    """``img`` at the output size (w, h), resized only if it differs."""
    out_w, out_h = out_size
    if img.shape[:2] != (out_h, out_w):
        img = mmcv.imresize(
            img, (out_w, out_h), interpolation=interpolation, backend='cv2')
    return img


def _has_exif(img_bytes: bytes) -> bool:
    """Whether an APP1 Exif block comes before the first scan (it may hold
    an orientation, which TurboJPEG does not apply but cv2 does).  Every
    header segment is walked (DQT/DHT/SOF may precede APPn); a header that
    cannot be walked is searched as bytes, erring towards the cv2 path."""
    pos = 2
    while pos + 4 <= len(img_bytes) and img_bytes[pos] == 0xFF:
        marker = img_bytes[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the header is over
            return False
        if marker == 0xE1 and img_bytes[pos + 4:pos + 10] == b'Exif\0\0':
            return True
        pos += 2 + int.from_bytes(img_bytes[pos + 2:pos + 4], 'big')
    return b'Exif\0\0' in img_bytes[:65536]


def _decode_jpeg_turbo(img_bytes: bytes, scale: Scale, keep_ratio: bool,
                       reduced: bool, interpolation: str,
                       channel_order: str) -> Optional[Decoded]:
    """TurboJPEG decode (at 1/2, 1/4, 1/8 size when the target allows),
    bit-identical to cv2's decode of the same size; None hands the image
    to the cv2 path (not a JPEG, an EXIF block that may rotate it, CMYK,
    or a decoder error)."""
    if img_bytes[:3] != _JPEG_MAGIC or _has_exif(img_bytes):
        return None
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(img_bytes)
    except ValueError:
        return None
    if colorspace not in ('YCbCr', 'RGB', 'Gray'):
        return None  # CMYK / YCCK: cv2 converts these like the stock path
    out_w, out_h = target_size(width, height, scale, keep_ratio)
    factor = reduction_factor(width, height, out_w, out_h) if reduced else 1
    # ask for exactly the power-of-two size: libjpeg-turbo's other M/8
    # factors are plain C and slower than a full decode
    expected = (-(-height // factor), -(-width // factor))
    try:
        arr = simplejpeg.decode_jpeg(
            img_bytes,
            'BGR' if channel_order == 'bgr' else 'RGB',
            min_height=expected[0] if factor > 1 else 0,
            min_width=expected[1] if factor > 1 else 0)
    except ValueError:  # truncated / corrupt: let cv2 (like stock) try
        return None
    if arr.shape[:2] != expected:
        return None
    arr = _resized(arr, (out_w, out_h), interpolation)
    return arr, (height, width), factor


def _decode_jpeg_reduced(img_bytes: bytes, scale: Scale, keep_ratio: bool,
                         interpolation: str, channel_order: str, backend: str,
                         shape_hint: Optional[Tuple[int, int]]
                         ) -> Optional[Decoded]:
    """Reduced-size JPEG decode; None when the bytes are not a JPEG, no
    reduction is possible, or the decoder fails (the caller then decodes
    at full size, as the stock pipeline would)."""
    if img_bytes[:3] != _JPEG_MAGIC:
        return None
    if backend == 'cv2' and shape_hint is not None:
        # cv2 applies EXIF orientation itself; work in oriented sizes
        height, width = (int(v) for v in shape_hint)
        out_w, out_h = target_size(width, height, scale, keep_ratio)
        factor = reduction_factor(width, height, out_w, out_h)
    else:
        try:  # header only: size and EXIF orientation
            pil = Image.open(io.BytesIO(img_bytes))
            raw_w, raw_h = pil.size
            orientation = read_exif_orientation(pil)
        except Exception:
            return None
        swap = orientation in _SWAP_ORIENTATIONS
        width, height = (raw_h, raw_w) if swap else (raw_w, raw_h)
        out_w, out_h = target_size(width, height, scale, keep_ratio)
        raw_out = (out_h, out_w) if swap else (out_w, out_h)
        factor = reduction_factor(raw_w, raw_h, *raw_out)
    if factor == 1:
        return None
    try:
        if backend == 'cv2':  # BGR, EXIF orientation applied, like stock
            arr = cv2.imdecode(
                np.frombuffer(img_bytes, np.uint8), _CV2_REDUCED[factor])
            order = 'bgr'
        else:
            pil.draft('RGB', raw_out)
            pil = pil.convert('RGB') if pil.mode != 'RGB' else pil
            arr = np.asarray(apply_orientation(pil, orientation))
            order = 'rgb'
    except Exception:  # truncated / corrupt: let cv2 (like stock) try
        return None
    expected = (-(-height // factor), -(-width // factor))
    if arr is None or arr.ndim != 3 or arr.shape[:2] != expected:
        return None
    arr = _resized(arr, (out_w, out_h), interpolation)
    if order != channel_order:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)  # same as BGR2RGB
    elif not arr.flags.writeable:
        arr = arr.copy()
    return arr, (height, width), factor


def _decode_full(img_bytes: bytes, channel_order: str,
                 name: str) -> np.ndarray:
    """Full-size decode exactly as ``LoadImageFromFile`` (cv2), with step
    2's decoder as a second chance for formats cv2 cannot read."""
    img = None
    try:
        img = mmcv.imfrombytes(
            img_bytes,
            flag='color',
            channel_order=channel_order,
            backend='cv2')
    except Exception:
        img = None
    if img is not None:
        return img
    try:
        arr, _ = decode_image(img_bytes)
    except Exception as e:
        raise OSError(f'cannot decode image {name}: {e}') from e
    if channel_order == 'bgr':
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    return arr
