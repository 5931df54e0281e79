"""Make deterministic k-shot splits of VOC07 trainval and COCO train2017.

DAP's low-data transfer fine-tunes on k = 5, 10, 20, 50, 100 images per class.
The authors' split files were not released, so this tool defines the splits;
what "k images per class" means and how a split is chosen is documented in
``projects/dap/dap/fewshot/splits.py``.  ``tools/fewshot_sweep.py`` makes the
splits it needs itself, with the same code.

Outputs, beside the source (``--out-dir`` elsewhere), in each dataset's own
format
    VOC: ``ImageSets/Main/{split}_{k}shot_seed{s}.txt`` (sorted image ids).
    COCO: ``{stem}_{k}shot_seed{s}.json`` with the chosen images, all their
    annotations (crowd ones too) and every category.

Examples (default k = 5 10 20 50 100, seeds 0 1 2)::

    python tools/dataset_converters/make_fewshot_splits.py voc \\
        data/VOCdevkit/VOC2007
    python tools/dataset_converters/make_fewshot_splits.py coco \\
        data/coco/annotations/instances_train2017.json
"""
import argparse
import json
import sys

from projects.dap.dap.fewshot.splits import (DEFAULT_SEEDS, DEFAULT_SHOTS,
                                             VOC_CLASSES, make_coco_splits,
                                             make_voc_splits, select_fewshot,
                                             write_atomic)

__all__ = ['main', 'parse_args', 'select_fewshot', 'VOC_CLASSES']


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Deterministic k-shot splits of VOC07 / COCO')
    parser.add_argument('format', choices=['voc', 'coco'])
    parser.add_argument(
        'source',
        help='VOC: a year folder (data/VOCdevkit/VOC2007); COCO: an '
        'instances json (data/coco/annotations/instances_train2017.json)')
    parser.add_argument(
        '--shots', type=int, nargs='+', default=list(DEFAULT_SHOTS))
    parser.add_argument(
        '--seeds', type=int, nargs='+', default=list(DEFAULT_SEEDS))
    parser.add_argument(
        '--split', default='trainval', help='VOC image set to sample from')
    parser.add_argument(
        '--classes',
        nargs='+',
        default=None,
        help='VOC class names (default: the 20 VOC classes)')
    parser.add_argument(
        '--out-dir',
        help='write the split files here instead of beside the source (a '
        'read-only dataset copy); configs then read them with '
        '--cfg-options fewshot.split_dir=DIR')
    parser.add_argument('--report', help='also write the reports as json')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.format == 'voc':
            reports = make_voc_splits(args.source, args.shots, args.seeds,
                                      args.split,
                                      tuple(args.classes
                                            or VOC_CLASSES), args.out_dir)
        else:
            if args.classes:
                raise ValueError('--classes is for VOC; COCO classes come '
                                 'from the json categories')
            reports = make_coco_splits(args.source, args.shots, args.seeds,
                                       args.out_dir)
    except (OSError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    for rep in reports:
        print(f'{rep["file"]}: k={rep["shot"]} seed={rep["seed"]}: '
              f'{rep["text"]}')
    if args.report:
        write_atomic(
            args.report,
            json.dumps([{
                k: v
                for k, v in r.items() if k != 'text'
            } for r in reports],
                       indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
