"""Look at what a config trains on: images after its pipeline, with boxes.

As mmdet's ``tools/analysis_tools/browse_dataset.py``, for every DAP config:
step 3's ``ImageNetPseudoBoxDataset`` (the pseudo boxes, labelled with the
image's class, after ``LoadImageRandomChoiceResize`` and the flip), the
fine-tuning sets (VOC / COCO, k-shot splits) and the demo's mini benchmark::

    python tools/analysis_tools/browse_dataset.py CONFIG \\
        --output-dir work_dirs/browse [--num 20] [--random] [--seed 0] \\
        [--phase train] [--show [--show-interval 2]] \\
        [--cfg-options KEY=VALUE ...]

One PNG per image (``<index>_<image name>.png``, index in the dataset),
painted by the config's visualizer (mmdet's ``DetLocalVisualizer``) with the
ground-truth boxes as the model receives them.  ``--seed`` also seeds the
pipeline's random choices, so a run can be repeated exactly.
"""
import argparse
import os
import os.path as osp
import re
import sys
from typing import List

import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Browse a dataset after its pipeline')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--output-dir', help='write the painted images here')
    parser.add_argument(
        '--show', action='store_true', help='show the images in a window')
    parser.add_argument(
        '--show-interval',
        type=float,
        default=2,
        help='seconds each image is shown with --show')
    parser.add_argument(
        '--phase',
        default='train',
        choices=('train', 'val', 'test'),
        help='which dataloader of the config')
    parser.add_argument(
        '--num', type=int, default=20, help='number of images (0: all)')
    parser.add_argument(
        '--random',
        action='store_true',
        help='a random sample instead of the first images')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seeds the sample and the pipeline')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings')
    args = parser.parse_args(argv)
    if not args.output_dir and not args.show:
        parser.error('nothing to do: give --output-dir and/or --show')
    if args.num < 0:
        parser.error('--num must be >= 0')
    return args


def pick_indices(size: int, num: int, random: bool, seed: int) -> List[int]:
    """The first ``num`` indices, or ``num`` random ones (sorted)."""
    num = size if num == 0 else min(num, size)
    if random:
        rng = np.random.default_rng(seed)
        return sorted(rng.choice(size, num, replace=False).tolist())
    return list(range(num))


def _safe_name(path: str) -> str:
    stem = osp.splitext(osp.basename(path))[0]
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', stem)[-80:]


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmdet.registry import DATASETS, VISUALIZERS
    from mmdet.structures.bbox import BaseBoxes
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import set_random_seed
    from mmengine.utils import ProgressBar

    cfg = Config.fromfile(args.config)  # runs the config's custom_imports
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    loader = f'{args.phase}_dataloader'
    if not cfg.get(loader):
        print(f'error: the config has no {loader}', file=sys.stderr)
        return 1
    try:
        dataset = DATASETS.build(cfg[loader].dataset)
    except (OSError, ValueError, KeyError) as e:  # missing data, bad cfg
        print(
            f'error: cannot build the {args.phase} dataset: {e}',
            file=sys.stderr)
        return 1
    visualizer = VISUALIZERS.build(cfg.visualizer)
    meta = dict(dataset.metainfo)
    if meta.get('palette') is None:  # e.g. 1000 ImageNet classes
        meta['palette'] = 'random'
    visualizer.dataset_meta = meta
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)

    indices = pick_indices(len(dataset), args.num, args.random, args.seed)
    set_random_seed(args.seed)
    progress = ProgressBar(len(indices))
    for index in indices:
        item = dataset[index]
        sample = item['data_samples']
        gt = sample.gt_instances
        if isinstance(gt.get('bboxes'), BaseBoxes):
            gt.bboxes = gt.bboxes.tensor
        sample = sample.numpy()
        img = item['inputs'].permute(1, 2, 0).numpy()[..., ::-1]  # to RGB
        name = f'{index:08d}_{_safe_name(sample.img_path)}'
        out_file = osp.join(args.output_dir, name + '.png') \
            if args.output_dir else None
        visualizer.add_datasample(
            name,
            np.ascontiguousarray(img),
            sample,
            draw_pred=False,
            show=args.show,
            wait_time=args.show_interval,
            out_file=out_file)
        progress.update()
    if args.output_dir:
        print(f'\nwrote {len(indices)} images to {args.output_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
