"""An mmpretrain model whose ``test_step`` returns CAM pseudo boxes.

Wraps an ``ImageClassifier`` (ResNet backbone + linear head) so that box
generation is a plain ``Runner.test`` run: the data pipeline decodes the
original images (:class:`~projects.dap.dap.datasets.LoadImageForCAM`),
``pseudo_collate`` keeps their different sizes, and ``test_step``
computes the fused GT-class CAMs of a batch
(:class:`~projects.dap.dap.models.cam.CAMExtractor`) and fits boxes to all of
them at once
(:func:`~projects.dap.dap.models.box_fitting.fit_cam_boxes`).  Every
parameter of the original algorithm is an argument whose default is the
original value.
"""
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.model import BaseModel
from mmpretrain.registry import MODELS

from ..datasets.box_file import file_sha256
from ..utils import load_checkpoint_safely
from ..utils.plain_data import plain_data
from .box_fitting import fit_cam_boxes
from .cam import IMAGENET_MEAN, IMAGENET_STD, CAMExtractor


class CAMBoxConfigError(ValueError):
    """The classifier, its checkpoint and the settings do not fit."""


# classifier config keys that do not change the CAMs
_NOT_ARCHITECTURE = ('_scope_', 'loss', 'topk', 'cal_acc', 'init_cfg',
                     'train_cfg', 'data_preprocessor', 'pretrained')


def _strip_prefix(state: Dict[str, Any], prefix: str) -> Dict[str, Any]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def checkpoint_classes(ckpt: Any) -> Optional[List[str]]:
    """The class names an mmpretrain checkpoint was trained with
    (``meta.dataset_meta.classes``), or None when it does not say."""
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    dataset_meta = meta.get('dataset_meta') if isinstance(meta, dict) else None
    classes = (
        dataset_meta.get('classes')
        if isinstance(dataset_meta, dict) else None)
    return None if classes is None else [str(c) for c in classes]


def load_classifier_weights(classifier: torch.nn.Module,
                            checkpoint: str) -> Optional[List[str]]:
    """Load an mmpretrain classifier checkpoint, checking the head first;
    return the checkpoint's class names (None when it has none).

    Uses ``weights_only`` loading.  A head whose class count differs from
    the config, or any missing / unexpected weight, is a
    :class:`CAMBoxConfigError` naming the problem (random weights would
    silently give meaningless boxes).
    """
    if not osp.isfile(checkpoint):
        raise CAMBoxConfigError(f'classifier checkpoint {checkpoint} does '
                                'not exist')
    ckpt = load_checkpoint_safely(checkpoint)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise CAMBoxConfigError(f'{checkpoint} holds no state dict')
    state = _strip_prefix(state, 'module.')
    own = classifier.state_dict()
    fc_key = 'head.fc.weight'
    if fc_key not in state:
        raise CAMBoxConfigError(
            f'{checkpoint} has no classifier head ({fc_key}); CAM boxes need '
            'the linear head of an ImageNet classifier (convert torchvision '
            'checkpoints with tools/model_converters first)')
    got, want = tuple(state[fc_key].shape), tuple(own[fc_key].shape)
    if got != want:
        raise CAMBoxConfigError(
            f'{checkpoint} has a {got[0]}-class head ({fc_key} {got}) but '
            f'the config\'s classifier has {want[0]} classes '
            f'({fc_key} {want}); set model.classifier.head.num_classes='
            f'{got[0]} or use the checkpoint trained on this label set')
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        k for k in set(own) & set(state)
        if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or mismatched:

        def few(names: List[str]) -> str:
            return ', '.join(names[:5]) + (' ...' if len(names) > 5 else '')

        raise CAMBoxConfigError(
            f'{checkpoint} does not fit the configured classifier: missing '
            f'[{few(missing)}], unexpected [{few(unexpected)}], other shape '
            f'[{few(mismatched)}]; check model.classifier (depth, widths)')
    classifier.load_state_dict(state, strict=True)
    return checkpoint_classes(ckpt)


@MODELS.register_module()
class CAMBoxGenerator(BaseModel):
    """Computes DAP pseudo boxes (reference step 2) in ``test_step``.

    Args:
        classifier: config of an mmpretrain ``ImageClassifier`` with a
            ``LinearClsHead`` (``head.fc``).
        checkpoint: its weights (mmpretrain format), loaded with
            ``weights_only``; the sha256 goes into the box file.
        scales: short sides of the CAM scales (288, 576).
        flip: average each scale's CAM with its horizontal flip.
        stride: the backbone's output stride (cell size in pixels).
        fusion_scale: the scale whose grid the CAMs are fused on (and the
            boxes scaled from); default the largest scale (576).
        mean, std: RGB normalisation (ImageNet, 0-255 range).
        thresholds, bias, max_per_threshold, min_area_ratio, nms_iou: box
            fitting, see :func:`~projects.dap.dap.models.fit_cam_boxes`.
        max_batch: images of the same padded size per forward. 1 (the
            original's batch size) makes every image's boxes bit-identical
            whatever else is in the batch, on any number of ranks; larger
            is faster on GPUs but the kernels may change the last bits, so
            it is part of the generation config.
        data_preprocessor: moves the uint8 images to the device; keep the
            default (images of different sizes stay a list).
    """

    def __init__(self,
                 classifier: dict,
                 checkpoint: Optional[str] = None,
                 scales: Sequence[int] = (288, 576),
                 flip: bool = True,
                 stride: int = 32,
                 fusion_scale: Optional[int] = None,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD,
                 thresholds: Sequence[float] = (0.2, 0.3, 0.4, 0.5),
                 bias: float = 0.22,
                 max_per_threshold: int = 4,
                 min_area_ratio: float = 0.5,
                 nms_iou: Optional[float] = 0.8,
                 max_batch: int = 1,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.classifier = MODELS.build(classifier)
        self._classifier_cfg = classifier
        try:  # the extractor checks the classifier and the CAM settings
            self.cam_extractor = CAMExtractor(
                self.classifier,
                scales=scales,
                flip=flip,
                stride=stride,
                fusion_scale=fusion_scale,
                mean=mean,
                std=std,
                max_batch=max_batch)
        except ValueError as e:
            raise CAMBoxConfigError(str(e)) from None
        extractor = self.cam_extractor
        self.num_classes = int(extractor.fc.out_features)
        self.scales, self.flip = extractor.scales, extractor.flip
        self.stride, self.fusion_scale = (extractor.stride,
                                          extractor.fusion_scale)
        self.mean, self.std = extractor.mean, extractor.std
        self.max_batch = extractor.max_batch
        self.fit_cfg = dict(
            thresholds=tuple(float(t) for t in thresholds),
            bias=float(bias),
            max_per_threshold=int(max_per_threshold),
            min_area_ratio=float(min_area_ratio),
            nms_iou=None if nms_iou is None else float(nms_iou))
        self.checkpoint = checkpoint
        self.checkpoint_sha256: Optional[str] = None
        # the class order the classifier was trained with, when its
        # checkpoint records it (CAMBoxHook compares it with the dataset's)
        self.classes: Optional[List[str]] = None
        if checkpoint is not None:
            self.classes = load_classifier_weights(self.classifier, checkpoint)
            self.checkpoint_sha256 = file_sha256(checkpoint)
        self.classifier.eval()

    def generation_config(self) -> Dict[str, Any]:
        """Everything that decides the boxes (stored in the box file)."""
        return dict(
            classifier=plain_data(
                self._classifier_cfg, drop=_NOT_ARCHITECTURE),
            scales=list(self.scales),
            flip=self.flip,
            stride=self.stride,
            fusion_scale=self.fusion_scale,
            mean=list(self.mean),
            std=list(self.std),
            max_batch=self.max_batch,
            **self.fit_cfg)

    def train(self, mode: bool = True) -> 'CAMBoxGenerator':
        """The classifier always stays in eval mode (frozen BN)."""
        super().train(mode)
        self.classifier.eval()
        return self

    # --------------------------------------------------------------- CAMs
    @torch.no_grad()
    def compute_cams(self, images: Sequence[torch.Tensor],
                     labels: Sequence[int]) -> List[torch.Tensor]:
        """Fused GT-class CAMs (2-D, on the fusion-scale grid) of RGB uint8
        (3, H, W) images."""
        if not len(images):
            return []
        return list(self.cam_extractor(list(images), list(labels)))

    def _check_sample(self, sample: Any) -> Tuple[Optional[str], int]:
        """(failure reason or None, label) of one packed sample."""
        error = sample.get('load_error')
        if error:
            return str(error), -1
        if 'gt_label' not in sample or len(sample.gt_label) != 1:
            return 'the image has no (single) class label', -1
        label = int(sample.gt_label[0])
        if not 0 <= label < self.num_classes:
            return (f'label {label} is outside the classifier\'s classes '
                    f'[0, {self.num_classes})'), label
        return None, label

    @torch.no_grad()
    def predict(self, inputs: Sequence[torch.Tensor],
                data_samples: Sequence[Any]) -> List[Any]:
        """Boxes of every image, in original-image pixels.

        Sets on each data sample ``pred_boxes`` (k, 4) xyxy float32,
        ``pred_scores`` (k,), ``pred_thresholds`` (k,) or, for an image
        that cannot be used, ``cam_error`` (the reason).
        """
        todo, images, labels, image_hw = [], [], [], []
        for i, sample in enumerate(data_samples):
            error, label = self._check_sample(sample)
            if error is not None:
                sample.set_field(error, 'cam_error', field_type='metainfo')
                continue
            todo.append(i)
            images.append(inputs[i])
            labels.append(label)
            image_hw.append(tuple(int(v) for v in sample.ori_shape))
        cams = self.compute_cams(images, labels)
        if not todo:
            return list(data_samples)
        results = fit_cam_boxes([cam.float().cpu().numpy() for cam in cams],
                                image_hw=np.asarray(image_hw, dtype=np.int64),
                                cam_scale=self.fusion_scale,
                                stride=self.stride,
                                **self.fit_cfg)
        for i, res in zip(todo, results):
            sample = data_samples[i]
            sample.set_field(res.boxes.astype(np.float32), 'pred_boxes')
            sample.set_field(res.scores.astype(np.float32), 'pred_scores')
            sample.set_field(
                res.thresholds.astype(np.float32), 'pred_thresholds')
        return list(data_samples)

    # ------------------------------------------------------------ mmengine
    def forward(self,
                inputs: Sequence[torch.Tensor],
                data_samples: Optional[Sequence[Any]] = None,
                mode: str = 'predict') -> Any:
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            labels = [int(s.gt_label[0]) for s in data_samples]
            return self.compute_cams(inputs, labels)
        raise NotImplementedError(
            f'CAMBoxGenerator only generates boxes (mode={mode!r}); train '
            'the classifier with its own config')

    def test_step(self, data: Any) -> List[Any]:
        data = self.data_preprocessor(data, False)
        return self.predict(data['inputs'], data['data_samples'])

    def val_step(self, data: Any) -> List[Any]:
        return self.test_step(data)
