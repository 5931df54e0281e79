"""A test-only hook: sleeps after every test iteration, so that a run can be
killed while it is still going."""
import time

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SlowTestIterHook(Hook):

    def __init__(self, seconds: float = 0.5) -> None:
        self.seconds = seconds

    def after_test_iter(self,
                        runner,
                        batch_idx,
                        data_batch=None,
                        outputs=None) -> None:
        time.sleep(self.seconds)
