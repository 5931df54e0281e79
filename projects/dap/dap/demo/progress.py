"""A run's progress as a small JSON file, and a bar that shows it.

The demo (``tools/run_dap_demo.py``) runs each step's tool as a subprocess;
:class:`ProgressFileHook` (in the demo configs) writes the loop's position
and length to ``{work_dir}/progress.json`` and :class:`ProgressBar` follows
that file, so nothing is read back from log lines.
"""
import json
import os
import os.path as osp
import sys
import time
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

PROGRESS_FILE = 'progress.json'


def read_progress(work_dir: str) -> Optional[dict]:
    """The last state :class:`ProgressFileHook` wrote under ``work_dir``
    (None before the first iteration)."""
    try:
        with open(osp.join(work_dir, PROGRESS_FILE)) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


@HOOKS.register_module()
class ProgressFileHook(Hook):
    """After every ``interval`` train or test iterations, write ``{"done",
    "total", "loss"}`` to ``{work_dir}/progress.json`` (rank 0, atomically).

    Args:
        interval: iterations between writes (the last one is always
            written).
    """

    priority = 'VERY_LOW'

    def __init__(self, interval: int = 1) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.interval = int(interval)

    def _write(self,
               runner,
               done: int,
               total: int,
               loss: Optional[float] = None) -> None:
        if not is_main_process() or (done % self.interval and done < total):
            return
        path = osp.join(runner.work_dir, PROGRESS_FILE)
        tmp = f'{path}.tmp'
        with open(tmp, 'w') as f:
            json.dump(dict(done=done, total=total, loss=loss), f)
        os.replace(tmp, path)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        loss = (outputs or {}).get('loss')
        self._write(runner, runner.iter + 1, runner.max_iters,
                    None if loss is None else float(loss))

    def after_test_iter(self,
                        runner,
                        batch_idx: int,
                        data_batch=None,
                        outputs=None) -> None:
        self._write(runner, batch_idx + 1, len(runner.test_dataloader))


class ProgressBar:
    """A one-line progress bar (a new line every 10% when not a TTY)."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label = max(int(total), 1), label
        self.start, self.tty = time.time(), sys.stdout.isatty()
        self._last_decile = -1

    def update(self, done: int, note: str = '') -> None:
        done = min(max(done, 0), self.total)
        frac = done / self.total
        elapsed = time.time() - self.start
        eta = elapsed / frac - elapsed if frac > 0 else 0
        bar = '#' * int(30 * frac) + '.' * (30 - int(30 * frac))
        line = (f'  {self.label} [{bar}] {done}/{self.total} '
                f'{elapsed:5.0f}s elapsed, eta {eta:4.0f}s {note}')
        if self.tty:
            print('\r' + line[:150].ljust(150), end='', flush=True)
        elif int(frac * 10) != self._last_decile:
            self._last_decile = int(frac * 10)
            print(line, flush=True)

    def follow(self, work_dir: str) -> None:
        """Show what ``work_dir``'s :class:`ProgressFileHook` last wrote."""
        state = read_progress(work_dir)
        if state:
            self.total = max(int(state['total']), 1)
            loss = state.get('loss')
            self.update(state['done'],
                        '' if loss is None else f'loss {loss:.4f}')

    def close(self) -> None:
        if self.tty:
            print(flush=True)
