"""Generate the tiny COCO-format shapes set used by the quick-start config.

    python tools/misc/make_shapes_coco.py data/shapes_coco --num-train 16
"""
import argparse

from projects.dap.dap.demo.synthetic import SHAPES, make_coco_detection_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='output folder, e.g. data/shapes_coco')
    parser.add_argument('--num-train', type=int, default=16)
    parser.add_argument('--num-val', type=int, default=8)
    parser.add_argument(
        '--num-classes',
        type=int,
        default=3,
        choices=range(1,
                      len(SHAPES) + 1))
    parser.add_argument('--width', type=int, default=128)
    parser.add_argument('--height', type=int, default=96)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    classes = SHAPES[:args.num_classes]
    size = (args.width, args.height)
    for split, num, seed in (('train', args.num_train, args.seed),
                             ('val', args.num_val, args.seed + 1)):
        ann = make_coco_detection_set(
            args.root, split, num, classes, size, seed=seed)
        print(f'wrote {num} {split} images and {ann}')


if __name__ == '__main__':
    main()
