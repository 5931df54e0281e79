"""Check that all ranks of a run see the same folders (shared storage).

Box generation resumes from, and merges, the shards every rank writes: a
multi-node run whose work dir or output folder is node-local would go
through the whole pass and fail only at rank 0's final merge.  Every rank
writes a token into each folder, and all must see all tokens, before any
image is processed.
"""
import os
import os.path as osp
import socket
import time
import uuid
from typing import Dict, List, Tuple

from mmengine.dist import (all_gather_object, barrier, broadcast_object_list,
                           get_dist_info)


class SharedStorageError(RuntimeError):
    """Some ranks do not see the files other ranks wrote."""


def _ranks_text(ranks: List[int], hosts: List[str]) -> str:
    shown = ', '.join(f'{r} ({hosts[r]})' for r in ranks[:8])
    return shown + (f' and {len(ranks) - 8} more' if len(ranks) > 8 else '')


def check_shared_storage(folders: Dict[str, str], wait_s: float = 10.) -> None:
    """Raise :class:`SharedStorageError` on every rank unless every rank
    sees the token files of all ranks in each of ``folders``
    (name -> path; created if missing).  A no-op without distribution.

    ``wait_s``: how long a rank looks for missing tokens (network file
    systems may show new files with a delay).
    """
    rank, world = get_dist_info()
    if world < 2:
        return
    holder = [uuid.uuid4().hex if rank == 0 else None]
    broadcast_object_list(holder, src=0)
    token = holder[0]
    host = socket.gethostname()
    dirs = {}
    for name, folder in folders.items():
        path = osp.join(osp.abspath(folder), f'.dap-shared-check-{token}')
        os.makedirs(path, exist_ok=True)
        with open(osp.join(path, f'rank-{rank:05d}'), 'w') as f:
            f.write(f'{token} {host}\n')
            f.flush()
            os.fsync(f.fileno())
        dirs[name] = path
    barrier()

    def unseen(path: str) -> List[int]:
        missing = []
        for r in range(world):
            try:
                with open(osp.join(path, f'rank-{r:05d}')) as f:
                    ok = f.read().startswith(token)
            except OSError:
                ok = False
            if not ok:
                missing.append(r)
        return missing

    deadline = time.time() + wait_s
    missing = {name: unseen(path) for name, path in dirs.items()}
    while any(missing.values()) and time.time() < deadline:
        time.sleep(0.5)
        missing = {name: unseen(path) for name, path in dirs.items()}
    reports: List[Tuple[int, str, Dict[str, List[int]]]] = \
        all_gather_object((rank, host, missing))
    for path in dirs.values():
        try:
            os.remove(osp.join(path, f'rank-{rank:05d}'))
        except OSError:
            pass
    barrier()
    for path in dirs.values():
        try:
            os.rmdir(path)
        except OSError:  # not empty yet (another rank), or already gone
            pass

    hosts = [''] * world
    for r, h, _ in reports:
        hosts[r] = h
    problems = []
    for name, folder in folders.items():
        for r, _, miss in sorted(reports):
            if miss[name]:
                problems.append(
                    f'{name} {folder}: rank {r} ({hosts[r]}) does not see '
                    f'the files of rank(s) {_ranks_text(miss[name], hosts)}')
    if problems:
        shown = '\n  '.join(problems[:20])
        more = f'\n  ... {len(problems) - 20} more' \
            if len(problems) > 20 else ''
        raise SharedStorageError(
            'the ranks of this run do not share storage: resuming and '
            'merging need every rank to see the same folders. Put the work '
            'dir and the output on a file system all nodes mount (or run on '
            f'one node).\n  {shown}{more}')
