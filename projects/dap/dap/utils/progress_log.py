"""A progress line in the log at most every few seconds (for passes over
millions of items, where a bar would flood the log files of many ranks)."""
import time

from mmengine.logging import print_log


class ProgressLog:
    """Call with (done, total); logs ``what: done / total (p%), t s`` at
    most every ``interval_s`` seconds (``total`` <= 0: unknown)."""

    def __init__(self, what: str, interval_s: float = 10.) -> None:
        self.what, self.interval_s = what, interval_s
        self.start = self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < self.interval_s:
            return
        self.last = now
        of = f' / {total:,} ({100 * done / max(total, 1):.0f}%)' \
            if total > 0 else ''
        print_log(
            f'{self.what}: {done:,}{of}, {now - self.start:.0f} s',
            logger='current')
