"""Load + random-choice resize in one step, decoding JPEGs at reduced size.

DAP trains at a random short side in (96, 160, 320, 640) from full-size
ImageNet JPEGs.  The stock pipeline (``LoadImageFromFile`` then
``RandomChoiceResize``) decodes every JPEG at full size and then shrinks it;
libjpeg can decode at 1/2, 1/4 or 1/8 size directly, but only a transform
that knows the target size before decoding can use it.  So
:class:`LoadImageRandomChoiceResize` draws the scale first and decodes with
:func:`~projects.dap.dap.datasets.image_decoding.decode_resized`.
``ori_shape``, ``scale_factor`` and the boxes are computed from the
*original* image size, so everything after it sees the same keys as after
the stock pair.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import BaseBoxes
from mmengine import fileio

from .image_decoding import Scale, decode_resized, resolve_backend


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
        one_scale = isinstance(scales, (int, tuple)) and not (isinstance(
            scales, tuple) and scales and isinstance(scales[0], (list, tuple)))
        if one_scale:
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
        self.decode_backend = resolve_backend(decode_backend, 'decode_backend')
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
        shape_hint = None
        if 'width' in results and 'height' in results:
            shape_hint = (results['height'], results['width'])
        img, (height, width), factor = decode_resized(
            img_bytes,
            scale,
            self.keep_ratio,
            self.reduced_decode,
            self.interpolation,
            self.channel_order,
            self.decode_backend,
            shape_hint,
            name=str(filename))
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
            boxes = np.asarray(
                boxes, dtype=np.float32) * np.array(
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
