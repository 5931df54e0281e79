"""Image loading for CAM-box generation that never stops the run.

A pass over ImageNet-22K meets every kind of broken file: zero-byte and
truncated JPEGs, CMYK and grayscale JPEGs, PNGs named ``.JPEG``, files that
vanished since the list was made.  The stock ``LoadImageFromFile`` raises on
most of them, which kills a many-hour multi-rank run.
:class:`LoadImageForCAM` decodes by content with PIL (the decoder of the
original, torchvision's default loader), converts every mode to RGB, and
turns any failure into a ``load_error`` reason: the image is recorded as
failed in the box file and the run goes on.
"""
import io
import math
from typing import Optional, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from PIL import Image, ImageOps

from mmpretrain.registry import TRANSFORMS

# EXIF orientations that swap width and height (transpose / rotate 90).
_SWAP_ORIENTATIONS = (5, 6, 7, 8)
_EXIF_ORIENTATION_TAG = 0x0112


def _exif_orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block is ignored, like libjpeg does
        return 1


def decode_image(data: bytes,
                 draft_short_side: Optional[int] = None,
                 exif_orientation: bool = True
                 ) -> Tuple[np.ndarray, Tuple[int, int]]:
    """Decode image bytes to RGB ``uint8`` (H, W, 3) by content.

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
        orientation = _exif_orientation(img) if exif_orientation else 1
        if draft_short_side and img.format == 'JPEG' and \
                min(width, height) >= 2 * draft_short_side:
            ratio = draft_short_side / min(width, height)
            img.draft('RGB', (math.ceil(width * ratio),
                              math.ceil(height * ratio)))
        img.load()  # truncated data raises here (LOAD_TRUNCATED_IMAGES off)
        if orientation != 1:
            img = ImageOps.exif_transpose(img)
            if orientation in _SWAP_ORIENTATIONS:
                width, height = height, width
        rgb = img if img.mode == 'RGB' else img.convert('RGB')
        arr = np.array(rgb)  # writable (torch.from_numpy warns otherwise)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.size == 0:
        raise ValueError(f'decoded to an array of shape {arr.shape}')
    return arr, (height, width)


@TRANSFORMS.register_module()
class LoadImageForCAM(BaseTransform):
    """Load an RGB image for CAM boxes; failures become a reason, not a crash.

    Required keys: ``img_path``.

    Added keys: ``img`` (RGB uint8 H x W x 3; a 1 x 1 black image when the
    load failed), ``img_shape``, ``ori_shape`` ((h, w) of the full-size
    image, (0, 0) if unknown) and ``load_error`` (``None`` or the reason).

    Args:
        draft_short_side: decode big JPEGs at a reduced size (PIL draft
            mode) that keeps the short side >= this value; set it to the
            largest CAM scale (576) to save decoding time.  ``None`` (the
            default, like the original) always decodes at full size.
            Draft decoding changes pixel values a little, so it is part of
            the generation config.
        exif_orientation: apply the EXIF orientation tag, as mmcv/OpenCV
            decoding does when the detector is trained on these boxes (the
            box file's sizes must match the images step 3 decodes).
        backend_args: mmengine file backend arguments.
    """

    def __init__(self,
                 draft_short_side: Optional[int] = None,
                 exif_orientation: bool = True,
                 backend_args: Optional[dict] = None) -> None:
        if draft_short_side is not None and int(draft_short_side) < 1:
            raise ValueError(f'draft_short_side must be a positive int or '
                             f'None, got {draft_short_side!r}')
        self.draft_short_side = (None if draft_short_side is None else
                                 int(draft_short_side))
        self.exif_orientation = bool(exif_orientation)
        self.backend_args = backend_args

    def _fail(self, results: dict, reason: str,
              ori_shape: Tuple[int, int] = (0, 0)) -> dict:
        results['img'] = np.zeros((1, 1, 3), np.uint8)
        results['img_shape'] = (1, 1)
        results['ori_shape'] = tuple(ori_shape)
        results['load_error'] = reason
        return results

    def transform(self, results: dict) -> dict:
        path = results['img_path']
        try:
            data = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError:
            return self._fail(results, 'file not found')
        except Exception as e:  # permissions, network backends, ...
            return self._fail(results,
                              f'cannot read file: {type(e).__name__}: {e}')
        try:
            img, ori_hw = decode_image(data, self.draft_short_side,
                                       self.exif_orientation)
        except Exception as e:  # PIL raises many types on bad data
            if not data:
                return self._fail(results, 'empty file (0 bytes)')
            header_hw = (0, 0)
            try:  # the header may still tell the size (e.g. truncated)
                with Image.open(io.BytesIO(data)) as probe:
                    header_hw = (probe.size[1], probe.size[0])
            except Exception:
                pass
            return self._fail(
                results, f'cannot decode image: {type(e).__name__}: {e}',
                header_hw)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = ori_hw
        results['load_error'] = None
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'draft_short_side={self.draft_short_side}, '
                f'exif_orientation={self.exif_orientation})')
