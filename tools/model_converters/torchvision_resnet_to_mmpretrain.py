"""Convert a torchvision ResNet checkpoint to an mmpretrain ImageClassifier.

DAP's step 2 used torchvision classifiers (ResNet-101 for ImageNet-1K, a
21841-class ResNet-50 for ImageNet-22K). mmpretrain's ``ResNet`` uses the
same module names below the backbone (``conv1``, ``bn1``,
``layerX.Y.convZ`` / ``bnZ``, ``downsample.0`` / ``.1``), so the mapping
is::

    conv1.* bn1.* layerX.*   ->  backbone.conv1.* backbone.bn1.* ...
    fc.weight, fc.bias       ->  head.fc.weight, head.fc.bias

for ``ImageClassifier(backbone=ResNet(depth=D), neck=GlobalAveragePooling,
head=LinearClsHead(num_classes=C, in_channels=2048 or 512))``. Also:

* accepted inputs: a bare state dict, ``{'state_dict': ...}`` or
  ``{'model': ...}`` (the original DAP 22K classifier), ``module.``
  prefixes (DataParallel) are removed;
* old torchvision files lack ``num_batches_tracked``; it is added as 0 so
  that the result loads with ``strict=True``;
* any key that is not part of a torchvision ResNet is an error (nothing is
  dropped silently); depth is inferred from the blocks (18/34/50/101/152).

Usage::

    python tools/model_converters/torchvision_resnet_to_mmpretrain.py \\
        resnet101-63fe2227.pth resnet101_in1k_mmpretrain.pth \\
        --num-classes 1000

The output is ``{'state_dict': ..., 'meta': {...}}`` and loads with
``torch.load(weights_only=True)``; the input is read the same safe way.
"""
import argparse
import os
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, REPO)

from projects.dap.dap.datasets.box_file import file_sha256  # noqa: E402
from projects.dap.dap.utils import load_checkpoint_safely  # noqa: E402

BN = r'(weight|bias|running_mean|running_var|num_batches_tracked)'
KEY_RE = re.compile(rf'^(conv1\.weight|bn1\.{BN}'
                    rf'|layer[1-4]\.\d+\.(conv[1-3]\.weight|bn[1-3]\.{BN}'
                    rf'|downsample\.0\.weight|downsample\.1\.{BN})'
                    r'|fc\.(weight|bias))$')
# blocks per stage -> depth, for (Bottleneck?, blocks)
DEPTHS = {
    (False, (2, 2, 2, 2)): 18,
    (False, (3, 4, 6, 3)): 34,
    (True, (3, 4, 6, 3)): 50,
    (True, (3, 4, 23, 3)): 101,
    (True, (3, 8, 36, 3)): 152,
}


def unwrap(checkpoint: object) -> Dict[str, torch.Tensor]:
    """The tensor dict of a checkpoint, without ``module.`` prefixes."""
    if isinstance(checkpoint, dict):
        for wrapper in ('state_dict', 'model'):
            if isinstance(checkpoint.get(wrapper), dict):
                checkpoint = checkpoint[wrapper]
                break
    if not isinstance(checkpoint, dict) or not checkpoint or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ValueError('expected a state dict of tensors (optionally '
                         'under "state_dict" or "model")')
    return {
        (k[len('module.'):] if k.startswith('module.') else k): v
        for k, v in checkpoint.items()
    }


def convert(
    state_dict: Dict[str, torch.Tensor],
    num_classes: Optional[int] = None
) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """(mmpretrain state dict, info) from a torchvision ResNet state dict."""
    unknown = sorted(k for k in state_dict if not KEY_RE.match(k))
    if unknown:
        raise ValueError(
            f'{len(unknown)} keys are not part of a torchvision ResNet, e.g. '
            f'{unknown[:5]}; is this a torchvision ResNet checkpoint?')
    for required in ('conv1.weight', 'fc.weight', 'fc.bias'):
        if required not in state_dict:
            raise ValueError(f'missing {required!r}')
    blocks = tuple(
        len({
            k.split('.')[1]
            for k in state_dict if k.startswith(f'layer{i}.')
        }) for i in range(1, 5))
    bottleneck = 'layer1.0.conv3.weight' in state_dict
    depth = DEPTHS.get((bottleneck, blocks))
    if depth is None:
        raise ValueError(
            f'unknown ResNet layout: {"Bottleneck" if bottleneck else "Basic"}'
            f'Block with {blocks} blocks per stage')
    classes, in_channels = state_dict['fc.weight'].shape
    if num_classes is not None and num_classes != classes:
        raise ValueError(
            f'the checkpoint\'s fc has {classes} classes, --num-classes says '
            f'{num_classes}')
    out = OrderedDict()
    added = []
    for key, value in state_dict.items():
        if key.startswith('fc.'):
            out['head.' + key] = value
            continue
        out['backbone.' + key] = value
        if key.endswith('.running_var'):
            tracked = key[:-len('running_var')] + 'num_batches_tracked'
            if tracked not in state_dict:  # torchvision < 0.4 files
                out['backbone.' + tracked] = torch.tensor(0, dtype=torch.long)
                added.append(tracked)
    info = dict(
        depth=depth,
        num_classes=int(classes),
        in_channels=int(in_channels),
        added_num_batches_tracked=len(added))
    return out, info


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(
        description='Convert a torchvision ResNet checkpoint to mmpretrain')
    parser.add_argument('src', help='torchvision checkpoint (.pth)')
    parser.add_argument('dst', help='output mmpretrain checkpoint (.pth)')
    parser.add_argument(
        '--num-classes', type=int, help='expected number of classes (checked)')
    args = parser.parse_args(argv)
    try:
        state_dict = unwrap(load_checkpoint_safely(args.src))
        converted, info = convert(state_dict, args.num_classes)
    except ValueError as e:
        sys.exit(f'error: {args.src}: {e}')
    meta = dict(
        info,
        source='torchvision ResNet',
        source_file=osp.basename(args.src),
        source_sha256=file_sha256(args.src),
        mmpretrain_model=dict(
            type='ImageClassifier',
            backbone=dict(type='ResNet', depth=info['depth']),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead',
                num_classes=info['num_classes'],
                in_channels=info['in_channels'])))
    tmp = f'{args.dst}.tmp-{os.getpid()}'
    try:
        torch.save(dict(state_dict=converted, meta=meta), tmp)
        os.replace(tmp, args.dst)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    print(
        f'converted {len(state_dict)} tensors of a ResNet-{info["depth"]} '
        f'with {info["num_classes"]} classes to {args.dst}' +
        (f' (added {len(converted) - len(state_dict)} '
         'num_batches_tracked)' if info['added_num_batches_tracked'] else ''))


if __name__ == '__main__':
    main()
