"""Run summary of CAM-box generation, as an mmengine metric.

``Runner.test`` needs an evaluator.  The boxes themselves go to the shards
(:class:`~projects.dap.dap.engine.CAMBoxHook`); this metric only counts
images, failures and boxes, summed over ranks with one ``all_reduce``
(no ``collect_results``, so no tmp dir shared between nodes is needed).
"""
from typing import Any, Dict, Optional, Sequence

import torch
from mmengine.dist import all_reduce
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS


@METRICS.register_module()
class CAMBoxMetric(BaseMetric):
    """Counts of this run: images, failed images, boxes (all ranks).

    Images skipped because an earlier run finished them are not counted.
    """

    default_prefix: Optional[str] = 'cam_boxes'

    def __init__(self, prefix: Optional[str] = None) -> None:
        super().__init__(prefix=prefix)
        self._counts = torch.zeros(3, dtype=torch.float64)

    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        for sample in data_samples:
            self._counts[0] += 1
            if sample.get('cam_error') is not None:
                self._counts[1] += 1
            else:
                self._counts[2] += len(sample.get('pred_boxes', ()))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        counts = self._counts
        ok = counts[0] - counts[1]
        return {
            'images': int(counts[0]),
            'failed': int(counts[1]),
            'boxes': int(counts[2]),
            'boxes_per_image': float(counts[2] / ok) if ok > 0 else 0.0,
        }

    def evaluate(self, size: int) -> Dict[str, Any]:
        counts = self._counts.clone()
        all_reduce(counts, op='sum')
        self._counts = counts
        metrics = self.compute_metrics([])  # the same on every rank
        if self.prefix:
            metrics = {f'{self.prefix}/{k}': v for k, v in metrics.items()}
        self._counts = torch.zeros(3, dtype=torch.float64)
        return metrics
