"""A test-only hook: every rank writes what it believes the world size is."""
import os.path as osp

from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class WorldSizeProbeHook(Hook):

    def before_train(self, runner) -> None:
        rank, world = get_dist_info()
        with open(osp.join(runner.work_dir, f'probe_rank{rank}.txt'),
                  'w') as f:
            f.write(f'{world}\n')
