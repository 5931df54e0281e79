"""Prepare a training checkpoint for the model zoo.

Keeps only ``state_dict`` and ``meta`` (optimizer, param schedulers,
message hub, EMA copy and anything else a training run stores are dropped),
so the file is small and loads with ``torch.load(weights_only=True)`` plus
the DAP allow-list.  The result is ``<OUT>-<sha256[:8]>.pth`` as in the
OpenMMLab model zoos::

    python tools/model_converters/publish_model.py \\
        work_dirs/dap_faster-rcnn_r50_fpn_1e_in1k/iter_20019.pth \\
        dap_faster-rcnn_r50_fpn_1e_in1k_20260101
"""
import argparse
import os
import os.path as osp
import sys
import tempfile
from typing import List, Tuple

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, REPO)

from projects.dap.dap.datasets.box_file import file_sha256  # noqa: E402
from projects.dap.dap.utils import load_checkpoint_safely  # noqa: E402

KEEP_KEYS = ('state_dict', 'meta')


def strip_checkpoint(checkpoint: object) -> Tuple[dict, List[str]]:
    """Return (published checkpoint, names of the dropped top-level keys).

    A bare state dict (every value a tensor) is wrapped as ``state_dict``.
    """
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise ValueError('not a checkpoint: expected a dict with a '
                         f'"state_dict", got {type(checkpoint).__name__}')
    if 'state_dict' not in checkpoint:
        if all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            return dict(state_dict=checkpoint, meta={}), []
        raise ValueError('checkpoint has no "state_dict"; keys: '
                         f'{sorted(checkpoint)}')
    state_dict = checkpoint['state_dict']
    if not isinstance(state_dict, dict) or not all(
            isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError('"state_dict" must map names to tensors')
    out = {k: checkpoint[k] for k in KEEP_KEYS if k in checkpoint}
    out.setdefault('meta', {})
    dropped = sorted(k for k in checkpoint if k not in KEEP_KEYS)
    return out, dropped


def publish(in_file: str, out_name: str) -> Tuple[str, List[str]]:
    """Write ``<out_name>-<sha256[:8]>.pth``; return (path, dropped keys)."""
    if not osp.isfile(in_file):
        raise FileNotFoundError(f'checkpoint {in_file} not found')
    try:
        checkpoint = load_checkpoint_safely(in_file)
    except Exception as e:  # pickle errors have many types
        raise ValueError(f'cannot load {in_file} with weights_only=True: '
                         f'{e}') from None
    published, dropped = strip_checkpoint(checkpoint)
    if out_name.endswith('.pth'):
        out_name = out_name[:-len('.pth')]
    folder = osp.dirname(osp.abspath(out_name))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.publish_', suffix='.pth')
    os.close(fd)
    try:
        torch.save(published, tmp)
        load_checkpoint_safely(tmp)  # the promise: it loads safely
        final = f'{out_name}-{file_sha256(tmp)[:8]}.pth'
        if osp.abspath(final) == osp.abspath(in_file):
            raise ValueError(f'{final} is the input file; choose another '
                             'output name')
        os.replace(tmp, final)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return final, dropped


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Strip a checkpoint for the model zoo')
    parser.add_argument('in_file', help='training checkpoint (.pth)')
    parser.add_argument(
        'out_name',
        help='output path without the hash, e.g. work_dirs/zoo/NAME '
        '(a trailing .pth is removed)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        final, dropped = publish(args.in_file, args.out_name)
    except (OSError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    if dropped:
        print(f'dropped: {", ".join(dropped)}')
    print(f'published: {final}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
