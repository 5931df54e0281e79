"""Load + random-choice resize in one step, decoding JPEGs at reduced size.

DAP trains at a random short side in (96, 160, 320, 640) from full-size
ImageNet JPEGs.  The stock pipeline (``LoadImageFromFile`` then
``RandomChoiceResize``) decodes every JPEG at full size and then shrinks it.
libjpeg can decode at 1/2, 1/4 or 1/8 size directly in the DCT domain
(``cv2.IMREAD_REDUCED_COLOR_*``, PIL's ``Image.draft``), skipping most of
the inverse DCT, chroma upsampling, colour conversion and the later shrink
(not the entropy decoding), but only a transform that knows the target
size before decoding can use it.  The default decoder is libjpeg-turbo's
TurboJPEG API (``simplejpeg``): the same library and pixels as cv2's
decode, without the ~0.3 ms per 500x375 image that ``cv2.imdecode`` adds
around it, which also speeds up the scales where no reduction fits.  So
:class:`LoadImageRandomChoiceResize` draws the scale first, decodes at the
smallest reduced size that is still at least the target size, and resizes
to exactly the size the stock pipeline would produce.  ``ori_shape``,
``scale_factor`` and the boxes are computed from the *original* image size,
so everything after it sees the same keys as after the stock pair.

What it buys depends on the JPEGs: entropy decoding cannot be skipped and
is most of a high-quality JPEG's decode; see
``benchmarks/bench_reduced_decode.py`` for the measured ratios and the
bound they cannot pass.
"""
import io
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmengine import fileio
from PIL import Image, ImageOps

from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import BaseBoxes

Scale = Union[int, Tuple[int, int]]

# EXIF orientations that swap width and height (transpose / rotate 90).
_SWAP_ORIENTATIONS = (5, 6, 7, 8)
_EXIF_ORIENTATION_TAG = 0x0112
_REDUCTIONS = (8, 4, 2)
_CV2_REDUCED = {
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8
}
_JPEG_MAGIC = b'\xff\xd8\xff'
_BACKENDS = ('auto', 'turbojpeg', 'cv2', 'pillow')

try:  # libjpeg-turbo's TurboJPEG API (the same library cv2 bundles)
    import simplejpeg
except ImportError:  # pragma: no cover - it is in requirements/runtime.txt
    simplejpeg = None


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


def target_size(width: int, height: int, scale: Scale,
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


def _exif_orientation(img: Image.Image) -> int:
    if 'exif' not in img.info:
        return 1
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block is ignored, like libjpeg does
        return 1


def decode_resized(img_bytes: bytes,
                   scale: Scale,
                   keep_ratio: bool = True,
                   reduced: bool = True,
                   interpolation: str = 'bilinear',
                   channel_order: str = 'bgr',
                   backend: str = 'auto',
                   size_hint: Optional[Tuple[int, int]] = None,
                   name: str = '<bytes>'
                   ) -> Tuple[np.ndarray, Tuple[int, int], int]:
    """Decode ``img_bytes`` and resize it as mmcv's ``Resize`` would.

    Returns ``(image, (orig_w, orig_h), factor)``: the resized HxWx3 uint8
    image, the original size after EXIF orientation (what ``cv2`` decodes)
    and the JPEG reduction used (1 = full decode).  JPEGs are recognised by
    content, not by name, and decoded at reduced size by libjpeg (``cv2``'s
    ``IMREAD_REDUCED_COLOR_*`` or PIL's ``draft``, per ``backend``).  Other
    formats, and JPEGs the reduced path cannot read, are decoded at full
    size by ``mmcv.imfrombytes`` exactly like ``LoadImageFromFile``.  A file
    nothing can decode raises ``OSError`` naming ``name``.

    ``size_hint`` (w, h after EXIF orientation, e.g. from the dataset) lets
    the cv2 backend skip reading the header; a wrong hint is detected (the
    decoded size differs) and the image is decoded at full size instead.
    """
    backend = resolve_backend(backend)
    if backend == 'turbojpeg':
        out = _decode_jpeg_turbo(img_bytes, scale, keep_ratio, reduced,
                                 interpolation, channel_order)
        if out is not None:
            return out
        backend = 'cv2'  # EXIF-rotated, CMYK, corrupt: as the stock loader
    if reduced:
        out = _decode_jpeg_reduced(img_bytes, scale, keep_ratio,
                                   interpolation, channel_order, backend,
                                   size_hint)
        if out is not None:
            return out
    full = _decode_full(img_bytes, channel_order, name)
    h, w = full.shape[:2]
    out_w, out_h = target_size(w, h, scale, keep_ratio)
    if (out_w, out_h) != (w, h):
        full = mmcv.imresize(full, (out_w, out_h),
                             interpolation=interpolation, backend='cv2')
    return full, (w, h), 1


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
                       channel_order: str
                       ) -> Optional[Tuple[np.ndarray, Tuple[int, int],
                                           int]]:
    """TurboJPEG decode (at 1/2, 1/4, 1/8 size when the target allows),
    bit-identical to cv2's decode of the same size; None hands the image
    to the cv2 path (not a JPEG, an EXIF block that may rotate it, CMYK,
    or a decoder error)."""
    if img_bytes[:3] != _JPEG_MAGIC or _has_exif(img_bytes):
        return None
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(
            img_bytes)
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
            img_bytes, 'BGR' if channel_order == 'bgr' else 'RGB',
            min_height=expected[0] if factor > 1 else 0,
            min_width=expected[1] if factor > 1 else 0)
    except ValueError:  # truncated / corrupt: let cv2 (like stock) try
        return None
    if arr.shape[:2] != expected:
        return None
    if arr.shape[:2] != (out_h, out_w):
        arr = mmcv.imresize(arr, (out_w, out_h),
                            interpolation=interpolation, backend='cv2')
    return arr, (width, height), factor


def _decode_jpeg_reduced(img_bytes: bytes, scale: Scale, keep_ratio: bool,
                         interpolation: str, channel_order: str,
                         backend: str, size_hint: Optional[Tuple[int, int]]
                         ) -> Optional[Tuple[np.ndarray, Tuple[int, int],
                                             int]]:
    """Reduced-size JPEG decode; None when the bytes are not a JPEG, no
    reduction is possible, or the decoder fails (the caller then decodes
    at full size, as the stock pipeline would)."""
    if img_bytes[:3] != _JPEG_MAGIC:
        return None
    if backend == 'cv2' and size_hint is not None:
        # cv2 applies EXIF orientation itself; work in oriented sizes
        width, height = (int(v) for v in size_hint)
        out_w, out_h = target_size(width, height, scale, keep_ratio)
        factor = reduction_factor(width, height, out_w, out_h)
    else:
        try:  # header only: size and EXIF orientation
            pil = Image.open(io.BytesIO(img_bytes))
            raw_w, raw_h = pil.size
            orientation = _exif_orientation(pil)
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
            if orientation != 1:
                pil = ImageOps.exif_transpose(pil)
            arr = np.asarray(pil)
            order = 'rgb'
    except Exception:  # truncated / corrupt: let cv2 (like stock) try
        return None
    expected = (-(-height // factor), -(-width // factor))
    if arr is None or arr.ndim != 3 or arr.shape[:2] != expected:
        return None
    if arr.shape[:2] != (out_h, out_w):
        arr = mmcv.imresize(arr, (out_w, out_h),
                            interpolation=interpolation, backend='cv2')
    if order != channel_order:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)  # same as BGR2RGB
    elif not arr.flags.writeable:
        arr = arr.copy()
    return arr, (width, height), factor


def _decode_full(img_bytes: bytes, channel_order: str,
                 name: str) -> np.ndarray:
    """Full-size decode exactly as ``LoadImageFromFile`` (cv2), with PIL as
    a second chance for formats cv2 cannot read."""
    img = None
    try:
        img = mmcv.imfrombytes(img_bytes, flag='color',
                               channel_order=channel_order, backend='cv2')
    except Exception:
        img = None
    if img is not None:
        return img
    try:
        pil = ImageOps.exif_transpose(Image.open(io.BytesIO(img_bytes)))
        arr = np.array(pil.convert('RGB'))
    except Exception as e:
        raise OSError(f'cannot decode image {name}: {e}') from e
    if channel_order == 'bgr':
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    return arr


@TRANSFORMS.register_module()
class LoadImageRandomChoiceResize(BaseTransform):
    """``LoadImageFromFile`` + ``RandomChoiceResize`` with reduced decoding.

    Picks one of ``scales`` at random (the same ``np.random.randint`` call
    as mmcv's ``RandomChoiceResize``), decodes the image at the smallest
    JPEG reduction (1/2, 1/4, 1/8) that is still at least the output size,
    then resizes it to exactly the stock output size.  Put it *after*
    ``LoadAnnotations``: boxes in original pixels are rescaled here with the
    scale factor relative to the original image, as ``Resize`` does.

    Required keys: ``img_path``; ``gt_bboxes`` (optional); ``width`` and
    ``height`` (optional, checked against the decoded size).

    Added / modified keys: ``img``, ``img_shape``, ``ori_shape``, ``scale``,
    ``scale_idx``, ``scale_factor`` (w, h; output / original),
    ``keep_ratio``, ``homography_matrix``, ``gt_bboxes``,
    ``decode_factor`` (the JPEG reduction used, 1 = full decode).

    Args:
        scales: candidate scales as for ``RandomChoiceResize`` / ``Resize``
            (with ``keep_ratio``: (long side limit, short side)).
        keep_ratio: keep the aspect ratio (mmcv ``imrescale`` rule).
        clip_object_border: clip boxes to the image, as ``Resize``.
        interpolation: cv2 interpolation of the final resize.
        reduced_decode: False decodes every image at full size (then this
            is exactly the stock pair; useful for comparisons).
        channel_order: 'bgr' like ``LoadImageFromFile``, or 'rgb'.
        decode_backend: JPEG decoding by 'turbojpeg' (libjpeg-turbo's
            TurboJPEG API through simplejpeg: the fastest, pixels identical
            to cv2's; EXIF-tagged and CMYK JPEGs go to cv2), 'cv2' (the
            stock loader's decoder, ``IMREAD_REDUCED_COLOR_*``), 'pillow'
            (``Image.draft``) or 'auto' (turbojpeg when installed).
        check_size: raise if the dataset's ``width``/``height`` differ from
            the image's (its boxes would then be wrong).
        backend_args: mmengine file backend arguments.
    """

    def __init__(self,
                 scales: Sequence[Scale],
                 keep_ratio: bool = True,
                 clip_object_border: bool = True,
                 interpolation: str = 'bilinear',
                 reduced_decode: bool = True,
                 channel_order: str = 'bgr',
                 decode_backend: str = 'auto',
                 check_size: bool = True,
                 backend_args: Optional[dict] = None) -> None:
        super().__init__()
        if isinstance(scales, (int, tuple)) and not (
                isinstance(scales, tuple) and scales
                and isinstance(scales[0], (list, tuple))):
            scales = [scales]
        self.scales: List[Scale] = [
            s if isinstance(s, int) else tuple(int(v) for v in s)
            for s in scales
        ]
        if not self.scales:
            raise ValueError('scales must not be empty')
        for s in self.scales:
            if not isinstance(s, int) and len(s) != 2:
                raise ValueError(f'each scale must be an int or (w, h), '
                                 f'got {s}')
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError(f'channel_order must be bgr or rgb, got '
                             f'{channel_order!r}')
        self.decode_backend = resolve_backend(decode_backend,
                                              'decode_backend')
        self.keep_ratio = keep_ratio
        self.clip_object_border = clip_object_border
        self.interpolation = interpolation
        self.reduced_decode = reduced_decode
        self.channel_order = channel_order
        self.check_size = check_size
        self.backend_args = backend_args

    @cache_randomness
    def _random_select(self) -> Tuple[Scale, int]:
        scale_idx = np.random.randint(len(self.scales))
        return self.scales[scale_idx], scale_idx

    def transform(self, results: dict) -> dict:
        scale, scale_idx = self._random_select()
        filename = results['img_path']
        img_bytes = fileio.get(filename, backend_args=self.backend_args)
        size_hint = None
        if 'width' in results and 'height' in results:
            size_hint = (results['width'], results['height'])
        img, (width, height), factor = decode_resized(
            img_bytes, scale, self.keep_ratio, self.reduced_decode,
            self.interpolation, self.channel_order, self.decode_backend,
            size_hint, name=str(filename))
        if self.check_size and 'width' in results and 'height' in results \
                and (results['width'], results['height']) != (width, height):
            raise ValueError(
                f'{filename} is {width}x{height} but the dataset says '
                f'{results["width"]}x{results["height"]}: its boxes were '
                'made for another image')
        out_h, out_w = img.shape[:2]
        w_scale, h_scale = out_w / width, out_h / height
        results['img'] = img
        results['ori_shape'] = (height, width)
        results['img_shape'] = (out_h, out_w)
        results['scale'] = scale
        results['scale_idx'] = scale_idx
        results['scale_factor'] = (w_scale, h_scale)
        results['keep_ratio'] = self.keep_ratio
        results['decode_factor'] = factor
        self._resize_bboxes(results)
        matrix = np.array([[w_scale, 0, 0], [0, h_scale, 0], [0, 0, 1]],
                          dtype=np.float32)
        if results.get('homography_matrix') is None:
            results['homography_matrix'] = matrix
        else:
            results['homography_matrix'] = matrix @ \
                results['homography_matrix']
        return results

    def _resize_bboxes(self, results: dict) -> None:
        for key in ('gt_masks', 'gt_seg_map'):
            if results.get(key) is not None:
                raise NotImplementedError(
                    f'{type(self).__name__} resizes boxes only, got {key}')
        boxes = results.get('gt_bboxes')
        if boxes is None:
            return
        if isinstance(boxes, BaseBoxes):
            boxes.rescale_(results['scale_factor'])
            if self.clip_object_border:
                boxes.clip_(results['img_shape'])
        else:
            w_scale, h_scale = results['scale_factor']
            boxes = np.asarray(boxes, dtype=np.float32) * np.array(
                [w_scale, h_scale, w_scale, h_scale], dtype=np.float32)
            if self.clip_object_border:
                h, w = results['img_shape']
                boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
                boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
            results['gt_bboxes'] = boxes

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scales={self.scales}, '
                f'keep_ratio={self.keep_ratio}, '
                f'reduced_decode={self.reduced_decode}, '
                f'decode_backend={self.decode_backend}, '
                f'interpolation={self.interpolation}, '
                f'channel_order={self.channel_order})')
