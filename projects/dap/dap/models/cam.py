"""Class activation maps of the ground-truth class (DAP step 2, points 1-7).

For every image and every scale ``S`` (288 and 576 in the original):

1. resize the shorter side to ``S`` keeping the aspect ratio; the long side
   becomes ``int(S * long / short)`` like torchvision's ``Resize(S)`` on a
   PIL image, with antialiased bilinear interpolation (``F.interpolate(...,
   antialias=True)``, torch's counterpart of PIL's bilinear resize); a
   ``uint8`` image is rounded back to integers after resizing, as PIL does;
2. normalise with the classifier's mean / std (0-255 range), zero-pad right
   and bottom to a multiple of the stride (32);
3. run the image and its horizontal flip, flip the second feature map back
   and average (the padded input tensor is flipped, so every cell of the
   flipped-back map lines up with the same pixels; flipping before padding
   would shift the content by the padding width);
4. CAM of the GT class ``c``: ``conv1x1(feat, fc.weight[c]) + fc.bias[c]``;
5. min-max normalise each scale's map to [0, 1] over the whole padded map;
6. nearest-upsample every other scale onto the grid of ``fusion_scale``
   (576) and average.

Batching: the extra padding needed to stack images of different sizes would
change the features near their borders (receptive field), and even a
different batch size changes the last bits of a convolution.  So images are
grouped by their padded size and run ``max_batch`` at a time (with their
flips in the same forward); with the default ``max_batch=1`` every image's
CAM is bit-identical to running it alone, like the original's batch size 1.
This module knows nothing of mmengine: any ``nn.Module`` with
``extract_feat(x, stage='backbone')`` and ``head.fc`` (mmpretrain's
``ImageClassifier`` + ``LinearClsHead``) works.
"""
from collections import defaultdict
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

ImageLike = Union[torch.Tensor, np.ndarray]

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def compute_cam(features: torch.Tensor, fc_weight: torch.Tensor,
                fc_bias: Optional[torch.Tensor],
                labels: Union[Sequence[int], torch.Tensor]) -> torch.Tensor:
    """CAM of one class per image: ``sum_k W[c, k] feat[k] + b[c]``.

    Args:
        features: (N, K, H, W) last-stage features.
        fc_weight: (num_classes, K) linear head weight; ``fc_bias``
            (num_classes,) or None.
        labels: N class indices, one per image.

    Returns:
        (N, H, W) maps.
    """
    labels = torch.as_tensor(
        labels, dtype=torch.long, device=fc_weight.device).reshape(-1)
    if features.dim() != 4 or labels.numel() != features.shape[0]:
        raise ValueError(f'need (N, K, H, W) features and N labels, got '
                         f'{tuple(features.shape)} and {labels.numel()}')
    if fc_weight.shape[1] != features.shape[1]:
        raise ValueError(f'the head takes {fc_weight.shape[1]} channels but '
                         f'the features have {features.shape[1]}')
    cam = torch.einsum('nkhw,nk->nhw', features, fc_weight[labels])
    if fc_bias is not None:
        cam = cam + fc_bias[labels][:, None, None]
    return cam


def normalize_cam(cam: torch.Tensor,
                  valid_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Min-max normalise each map of ``cam`` (..., H, W) to [0, 1].

    ``valid_mask`` (broadcastable, True = part of the map) excludes cells,
    e.g. padding added only to stack a batch; they come out as 0.  A
    constant map (the original divided by zero) becomes all zeros: with
    another scale it then only halves that scale's map, on its own it
    leaves no cell above any threshold, so box fitting returns the
    whole-map box.
    """
    cam = cam.float()
    if valid_mask is None:
        valid_mask = torch.ones_like(cam, dtype=torch.bool)
    valid_mask = valid_mask.to(torch.bool).expand_as(cam)
    lo = cam.masked_fill(~valid_mask, float('inf')).amin((-2, -1), True)
    hi = cam.masked_fill(~valid_mask, float('-inf')).amax((-2, -1), True)
    span = hi - lo
    out = (cam - lo) / torch.where(span > 0, span, torch.ones_like(span))
    return out.masked_fill(~valid_mask | ~(span > 0), 0.0)


def fuse_cams(*cams: torch.Tensor, onto: int = -1) -> torch.Tensor:
    """Nearest-resize every map onto the grid of ``cams[onto]`` (default the
    last), average.

    Works on (H, W) or (N, H, W) maps; torch ``F.interpolate(mode='nearest')``
    semantics (source index ``floor(dst * in / out)``), as in the original.
    ``fuse_cams(cam_288, cam_576)`` is the original's two-scale fusion; the
    extractor fuses its scales with this function.
    """
    if not cams:
        raise ValueError('fuse_cams needs at least one map')
    squeeze = cams[0].dim() == 2
    maps = [c[None] if squeeze else c for c in cams]
    grid = maps[onto].float()
    total = grid.clone()
    for i, cam in enumerate(maps):
        if i != onto % len(maps):
            total += F.interpolate(
                cam[:, None].float(), size=grid.shape[-2:], mode='nearest')[:,
                                                                            0]
    fused = total / len(maps)
    return fused[0] if squeeze else fused


def resized_size(height: int, width: int, short_side: int) -> Tuple[int, int]:
    """(h, w) after ``Resize(short_side)``: the long side is
    ``int(short_side * long / short)`` (torchvision's rounding)."""
    if height <= width:
        return short_side, int(short_side * width / height)
    return int(short_side * height / width), short_side


class CAMExtractor:
    """Fused GT-class CAMs of a list of images of any sizes.

    Args:
        classifier: an mmpretrain ``ImageClassifier`` (ResNet backbone whose
            ``out_indices`` include the last stage, ``LinearClsHead``), in
            eval mode; anything with ``extract_feat(x, stage='backbone')``
            returning a tuple whose last item is the stride-``stride``
            feature map, and ``head.fc`` (an ``nn.Linear``).
        scales: short sides the CAM is computed at.
        flip: also run the horizontal flip and average.
        stride: output stride of the last stage (cell size in pixels).
        fusion_scale: the scale whose grid the maps are fused on; default
            the largest.
        mean, std: RGB normalisation in the 0-255 range; default the
            classifier's ``data_preprocessor`` values, else ImageNet's.
        max_batch: at most this many images of the same padded size per
            forward.  1 (default) makes every CAM bit-identical to running
            its image alone; larger is faster on a GPU but the backend's
            kernels may then change the last bits.

    Call with a list of images — ``torch.Tensor`` (3, H, W) or
    ``np.ndarray`` (H, W, 3), RGB, ``uint8`` or float in 0-255, original
    size — and their class indices; returns a list of 2-D float32 maps in
    [0, 1] on the ``fusion_scale`` grid (``ceil(resized / stride)`` cells),
    on the classifier's device.
    """

    def __init__(self,
                 classifier: torch.nn.Module,
                 scales: Sequence[int] = (288, 576),
                 flip: bool = True,
                 stride: int = 32,
                 fusion_scale: Optional[int] = None,
                 mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None,
                 max_batch: int = 1) -> None:
        fc = getattr(getattr(classifier, 'head', None), 'fc', None)
        if not isinstance(fc, torch.nn.Linear):
            raise ValueError('the classifier needs a linear head `head.fc` '
                             '(mmpretrain LinearClsHead)')
        if not hasattr(classifier, 'extract_feat'):
            raise ValueError('the classifier needs extract_feat(x, '
                             "stage='backbone') (mmpretrain ImageClassifier)")
        self.classifier = classifier
        self.fc = fc
        self.scales = tuple(int(s) for s in scales)
        if not self.scales or min(self.scales) < 1:
            raise ValueError(f'scales must be positive, got {scales!r}')
        self.flip = bool(flip)
        self.stride = int(stride)
        if self.stride < 1:
            raise ValueError(f'stride must be positive, got {stride!r}')
        self.fusion_scale = (
            max(self.scales) if fusion_scale is None else int(fusion_scale))
        if self.fusion_scale not in self.scales:
            raise ValueError(f'fusion_scale {fusion_scale} is not one of the '
                             f'scales {self.scales}')
        preproc = getattr(classifier, 'data_preprocessor', None)
        if mean is None:
            mean = _preprocessor_stat(preproc, 'mean', IMAGENET_MEAN)
        if std is None:
            std = _preprocessor_stat(preproc, 'std', IMAGENET_STD)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f'need 3 means and 3 positive stds, got '
                             f'{mean!r}, {std!r}')
        if int(max_batch) < 1:
            raise ValueError(f'max_batch must be >= 1, got {max_batch!r}')
        self.max_batch = int(max_batch)

    @property
    def device(self) -> torch.device:
        return self.fc.weight.device

    def _to_chw(self, image: ImageLike,
                index: int) -> Tuple[torch.Tensor, bool]:
        """(3, H, W) float tensor on the device, and whether it was uint8."""
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f'image {index}: a numpy image must be '
                                 f'(H, W, 3) RGB, got {image.shape}')
            image = torch.from_numpy(np.ascontiguousarray(image)).permute(
                2, 0, 1)
        elif not isinstance(image, torch.Tensor):
            raise ValueError(f'image {index}: expected a tensor or array, got '
                             f'{type(image).__name__}')
        if image.dim() != 3 or image.shape[0] != 3 or image.numel() == 0:
            raise ValueError(f'image {index}: a tensor image must be (3, H, '
                             f'W) RGB, got {tuple(image.shape)}')
        is_uint8 = image.dtype == torch.uint8
        if not (is_uint8 or image.is_floating_point()):
            raise ValueError(f'image {index}: dtype {image.dtype} is neither '
                             'uint8 nor float')
        image = image.to(self.device, torch.float32)
        if not torch.isfinite(image).all():
            raise ValueError(f'image {index} holds NaN or inf values')
        return image, is_uint8

    def preprocess(self, image: torch.Tensor, is_uint8: bool,
                   short_side: int) -> torch.Tensor:
        """Resize, normalise, zero-pad one (3, H, W) float image."""
        h, w = image.shape[-2:]
        size = resized_size(h, w, short_side)
        if size != (h, w):
            image = F.interpolate(
                image[None],
                size=size,
                mode='bilinear',
                align_corners=False,
                antialias=True)[0]
            if is_uint8:
                image = image.round().clamp(0, 255)
        mean = image.new_tensor(self.mean)[:, None, None]
        std = image.new_tensor(self.std)[:, None, None]
        image = (image - mean) / std
        pad_h = -size[0] % self.stride
        pad_w = -size[1] % self.stride
        return F.pad(image, (0, pad_w, 0, pad_h))

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        """Last-stage features of a padded batch, flip-averaged."""
        num = batch.shape[0]
        if self.flip:
            batch = torch.cat([batch, batch.flip(-1)])
        # no_grad inside, not as a decorator: mutmut skips decorated code
        with torch.no_grad():
            feats = self.classifier.extract_feat(batch, stage='backbone')
        feat = feats[-1] if isinstance(feats, (tuple, list)) else feats
        want = (batch.shape[-2] // self.stride, batch.shape[-1] // self.stride)
        if feat.dim() != 4 or tuple(feat.shape[-2:]) != want:
            raise ValueError(
                f'the backbone gave features of shape {tuple(feat.shape)} '
                f'for a {tuple(batch.shape[-2:])} input; expected a '
                f'{want} map (stride {self.stride}, last stage in '
                'out_indices)')
        if self.flip:
            feat = (feat[:num] + feat[num:].flip(-1)) / 2
        return feat

    def __call__(self, images: Sequence[ImageLike],
                 labels: Sequence[int]) -> List[torch.Tensor]:
        images = list(images)
        labels = [int(v) for v in labels]
        if len(images) != len(labels):
            raise ValueError(f'{len(images)} images but {len(labels)} labels')
        num_classes = self.fc.out_features
        for i, label in enumerate(labels):
            if not 0 <= label < num_classes:
                raise ValueError(f'image {i}: label {label} is outside the '
                                 f'classifier\'s classes [0, {num_classes})')
        prepared = [self._to_chw(img, i) for i, img in enumerate(images)]
        per_scale = {}
        with torch.no_grad():  # the head's weights require grad
            for scale in self.scales:
                inputs = [
                    self.preprocess(img, u8, scale) for img, u8 in prepared
                ]
                per_scale[scale] = self._scale_cams(inputs, labels)
        onto = self.scales.index(self.fusion_scale)
        return [
            fuse_cams(*(per_scale[s][i] for s in self.scales), onto=onto)
            for i in range(len(images))
        ]

    def _scale_cams(self, inputs: List[torch.Tensor],
                    labels: List[int]) -> List[torch.Tensor]:
        """Normalised CAMs of one scale, forwarding same-size groups."""
        groups = defaultdict(list)
        for i, x in enumerate(inputs):
            groups[tuple(x.shape)].append(i)
        cams: List[Optional[torch.Tensor]] = [None] * len(inputs)
        for members in groups.values():
            for start in range(0, len(members), self.max_batch):
                idx = members[start:start + self.max_batch]
                feat = self.features(torch.stack([inputs[i] for i in idx]))
                cam = compute_cam(feat, self.fc.weight, self.fc.bias,
                                  [labels[i] for i in idx])
                for i, c in zip(idx, normalize_cam(cam)):
                    cams[i] = c
        return cams


def _preprocessor_stat(preproc, name: str,
                       default: Sequence[float]) -> Sequence[float]:
    value = getattr(preproc, name, None)
    if value is None:
        return default
    return torch.as_tensor(value).flatten().tolist()
