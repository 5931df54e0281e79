"""Image loading for CAM-box generation that never stops the run.

A pass over ImageNet-22K meets every kind of broken file: zero-byte and
truncated JPEGs, CMYK and grayscale JPEGs, PNGs named ``.JPEG``, files that
vanished since the list was made.  The stock ``LoadImageFromFile`` raises on
most of them, which kills a many-hour multi-rank run.
:class:`LoadImageForCAM` decodes with
:func:`~projects.dap.dap.datasets.image_decoding.decode_image` (PIL, by
content, like the original's torchvision loader; every mode to RGB; EXIF
orientation by step 3's rule) and turns any failure into a ``load_error``
reason: the image is recorded as failed in the box file and the run goes
on.
"""
import io
from typing import Optional, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmpretrain.registry import TRANSFORMS
from PIL import Image

from .image_decoding import decode_image


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

    def _fail(self,
              results: dict,
              reason: str,
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
            return self._fail(results,
                              f'cannot decode image: {type(e).__name__}: {e}',
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
