"""A test-only hook: every rank writes what it believes the world size is,
the images it trained on and a digest of its weights before and after
training (``probe_rank{rank}.json``)."""
import hashlib
import json
import os.path as osp
from typing import Mapping

import torch
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


def state_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the names and exact values of a state dict."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        digest.update(name.encode())
        digest.update(
            state_dict[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@HOOKS.register_module()
class WorldSizeProbeHook(Hook):

    def _state(self, runner) -> dict:
        model = runner.model
        return (model.module
                if is_model_wrapper(model) else model).state_dict()

    def before_train(self, runner) -> None:
        self.record = dict(
            world=get_dist_info()[1],
            img_ids=[],
            initial=state_digest(self._state(runner)))

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        self.record['img_ids'].append(
            [s.img_id for s in data_batch['data_samples']])

    def after_train(self, runner) -> None:
        self.record['final'] = state_digest(self._state(runner))
        rank = get_dist_info()[0]
        with open(osp.join(runner.work_dir, f'probe_rank{rank}.json'),
                  'w') as f:
            json.dump(self.record, f)
