"""A test-time sampler that skips finished images, for resumable runs.

Box generation over 14M images must survive being killed.  Finished images
are in the run's shards; :class:`ResumableSampler` is told which indices
are done (by :class:`~projects.dap.dap.engine.CAMBoxHook` before the first
batch) and splits only the rest across ranks, deterministically and
without padding (every image is computed exactly once).
"""
from typing import Iterator, Optional, Sequence

import numpy as np
from mmengine.dist import get_dist_info
from mmengine.registry import DATA_SAMPLERS
from torch.utils.data import Sampler


@DATA_SAMPLERS.register_module()
class ResumableSampler(Sampler):
    """Indices not yet done, rank ``r`` of ``w`` taking ``r, r + w, ...``.

    The interleaved split (the original 22K run's ``chunk r, r + size``)
    keeps every rank's share even on a partially finished run and does not
    depend on the batch size.  Order within a rank is ascending.

    Args:
        dataset: the dataset to sample from.
        seed: unused (accepted because mmengine passes it to samplers).
        done_indices: indices to skip; usually set later with
            :meth:`set_done`.
    """

    def __init__(self,
                 dataset,
                 seed: Optional[int] = None,
                 done_indices: Optional[Sequence[int]] = None) -> None:
        self.dataset = dataset
        self.rank, self.world_size = get_dist_info()
        self._todo: Optional[np.ndarray] = None
        self.set_done(done_indices)

    def set_done(self, done_indices: Optional[Sequence[int]]) -> None:
        """Skip ``done_indices`` from now on (must match on every rank)."""
        n = len(self.dataset)
        todo = np.ones(n, dtype=bool)
        if done_indices is not None and len(done_indices):
            done = np.asarray(done_indices, dtype=np.int64)
            done = done[(done >= 0) & (done < n)]
            todo[done] = False
        self._todo = np.flatnonzero(todo)[self.rank::self.world_size]

    @property
    def num_remaining(self) -> int:
        """Images this rank will still process."""
        return int(self._todo.size)

    def __iter__(self) -> Iterator[int]:
        return iter(self._todo.tolist())

    def __len__(self) -> int:
        return int(self._todo.size)

    def set_epoch(self, epoch: int) -> None:
        """No shuffling, nothing to do (kept for mmengine's hooks)."""
