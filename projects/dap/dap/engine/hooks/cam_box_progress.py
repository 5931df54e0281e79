"""Progress of a multi-rank CAM-box run, over all ranks, with an ETA.

mmengine's logger shows rank 0's own iterations; at 14M images over many
nodes what matters is how many images all ranks have finished (including a
resumed run's earlier work) and when the slowest rank will be done.  Every
rank writes its count to a small JSON file (atomically, at most every
``interval_s``) in a folder all ranks share (checked at the start, see
``utils.shared_storage``); rank 0 reads them and logs the total.
"""
import datetime
import json
import os
import os.path as osp
import socket
import time
import uuid
from typing import Dict, List, Optional

from mmengine.dist import broadcast_object_list
from mmengine.logging import print_log


def _eta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(round(seconds))))


class GenerationProgress:
    """Counts this rank's images; rank 0 logs all ranks' total and ETA.

    Args:
        folder: where the per-rank files go (shared by all ranks).
        rank, world_size: this process's place in the run.
        num_images: images in the whole list.
        done_before: images finished by earlier runs (skipped now).
        todo: images this rank computes in this run.
        interval_s: seconds between updates (0: every image).
    """

    def __init__(self,
                 folder: str,
                 rank: int,
                 world_size: int,
                 num_images: int,
                 done_before: int,
                 todo: int,
                 interval_s: float = 60.) -> None:
        holder = [uuid.uuid4().hex if rank == 0 else None]
        broadcast_object_list(holder, src=0)  # one token per run
        self.token = holder[0]
        self.folder = folder
        self.rank, self.world_size = rank, world_size
        self.num_images, self.done_before = num_images, done_before
        self.todo, self.done = todo, 0
        self.interval_s = float(interval_s)
        self.host = socket.gethostname()
        self.start = time.monotonic()
        self._last = self.start
        os.makedirs(folder, exist_ok=True)
        self._write()

    def _path(self, rank: int) -> str:
        return osp.join(self.folder, f'rank-{rank:05d}.json')

    def _write(self) -> None:
        state = dict(
            token=self.token,
            rank=self.rank,
            host=self.host,
            done=self.done,
            todo=self.todo,
            elapsed=time.monotonic() - self.start)
        path = self._path(self.rank)
        tmp = f'{path}.tmp-{os.getpid()}'
        with open(tmp, 'w') as f:
            json.dump(state, f)
        os.replace(tmp, path)

    def _read_all(self) -> List[Optional[Dict]]:
        states: List[Optional[Dict]] = []
        for r in range(self.world_size):
            try:
                with open(self._path(r)) as f:
                    state = json.load(f)
                states.append(
                    state if state.get('token') == self.token else None)
            except (OSError, ValueError):
                states.append(None)
        return states

    def update(self, num: int) -> None:
        """``num`` more images finished by this rank."""
        self.done += num
        now = time.monotonic()
        if now - self._last < self.interval_s:
            return
        self._last = now
        self._write()
        if self.rank == 0:
            self.log()

    def finish(self) -> None:
        self._write()

    def log(self) -> None:
        """Rank 0: images done / total over all ranks, rate and ETA."""
        states = self._read_all()
        states[self.rank] = dict(
            done=self.done,
            todo=self.todo,
            host=self.host,
            elapsed=time.monotonic() - self.start)
        reported = [s for s in states if s is not None]
        done_now = sum(s['done'] for s in reported)
        total_done = self.done_before + done_now
        rate = sum(s['done'] / s['elapsed'] for s in reported
                   if s['elapsed'] > 0)
        text = (f'CAM boxes: {total_done:,} / {self.num_images:,} images '
                f'done ({100 * total_done / max(self.num_images, 1):.1f}%; '
                f'{self.done_before:,} by earlier runs), '
                f'{rate:.1f} images/s on {len(reported)} of '
                f'{self.world_size} ranks')
        silent = [
            r for r, s in enumerate(states)
            if s is None or (s['done'] == 0 and s['todo'] > 0)
        ]
        if silent:
            text += (f', ETA unknown until rank(s) {silent[:8]} report '
                     'progress')
        else:
            left = [
                ((s['todo'] - s['done']) * s['elapsed'] / max(s['done'], 1), r)
                for r, s in enumerate(states)
            ]
            eta, slowest = max(left)
            text += (f', ETA {_eta(eta)} (slowest: rank {slowest} on '
                     f'{states[slowest]["host"]})')
        print_log(text, logger='current')
