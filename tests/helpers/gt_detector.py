"""A test-only detector that predicts each image's ground truth (score 1):
evaluated by ``tools/test.py`` its COCO mAP must be exactly 1 (on one
process, or gathered from several)."""
import torch
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from mmengine.structures import InstanceData


@MODELS.register_module()
class GroundTruthDetector(BaseModel):

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # DistributedDataParallel refuses a model without parameters
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode != 'predict':
            raise ValueError(f'GroundTruthDetector only predicts, not {mode}')
        for sample in data_samples:
            # mmdet's test pipelines load the annotations after Resize: the
            # boxes are in original-image pixels, as predictions must be
            gt = sample.gt_instances
            sample.pred_instances = InstanceData(
                bboxes=gt.bboxes,
                labels=gt.labels,
                scores=torch.ones(len(gt.labels)))
        return data_samples
