"""Import pseudo boxes saved by the original DAP code into a box file.

The authors' ``compute_box_imagenet1k.py`` saved its boxes with
``np.savez_compressed(path, boxes=np.array(boxes, dtype=object))``: a
pickled object array. Reading pickled data can run arbitrary code, so this
tool refuses such members unless ``--trust-pickle`` is given (use it only
for files you made yourself or otherwise trust)::

    python tools/dataset_converters/import_original_dap_boxes.py \\
        datasets/imagenet2012Full/train.cam3nms8xyxy.npz \\
        --image-list data/imagenet/meta/train.txt \\
        --data-root data/imagenet/train --out in1k_original.dapbox \\
        --trust-pickle

Accepted ``ORIG.npz`` layouts (anything else is an error):

(a) aligned: a member ``boxes`` with one entry per line of the image list,
    in that order: an object array of per-image arrays (the original
    layout), or a numeric (N, K, 4..6) array. A ``None`` entry marks an
    image the original failed on. An optional member ``sizes`` (N, 2) int
    holds (width, height).
(b) per key: one member per image, named by its key exactly as in the
    image list (``np.savez(path, **{key: boxes})``); images without a
    member are imported as failed. Member names that are not in the list
    are an error (wrong list).

Each per-image entry is (K, 4) x1, y1, x2, y2 in original-image pixels, or
(K, 5) with a score column, or (K, 6) with score and CAM threshold. Without
a score column the original's score is recomputed: box area / area of the
image's first box (1.0 for all boxes when that area is 0). Without a
threshold column thresholds are stored as NaN (unknown). Numeric members
load without pickle, so ``--trust-pickle`` is needed only for object
arrays. ImageNet-22K results were saved with ``torch.save`` as lists of
maskrcnn-benchmark ``BoxList``; convert those to layout (a) in the original
environment first, e.g. ``np.savez(out, boxes=np.array([b.bbox.numpy() for
b in boxlists], dtype=object))``.

Labels always come from ``--image-list`` (mmpretrain annotation format,
``relative/path.JPEG label`` per line, 0-based), never from the original
file: the original 22K run stored 0-based labels where 1-based ones were
expected, so one class collided with background.

Image sizes (needed to check that boxes fit their images) come from, in
this order: ``--data-root`` (image headers read with PIL, pixels are not
decoded), ``--sizes FILE`` (``relative/path width height`` per line) or a
``sizes`` member of a layout (a) file. Boxes that leave their image by
more than 1 px are an error: the image list is then probably not the one
the boxes were made for.
"""
import argparse
import os.path as osp
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import MMLogger
from mmengine.utils import ProgressBar

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, REPO)

from projects.dap.dap.datasets.box_file import (  # noqa: E402  # isort: skip
    BoxFileError, file_sha256, write_box_file)

CHUNK = 10_000  # images per progress-bar step


class InputError(Exception):
    """A problem with the user's input; reported without a traceback."""


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Import original DAP pseudo boxes (.npz) into a '
        'pseudo-box file (.dapbox)')
    parser.add_argument('orig', help='original DAP boxes (.npz)')
    parser.add_argument(
        '--image-list',
        required=True,
        help='mmpretrain annotation file: "relative/path label" per line, '
        'in the order the boxes were computed; labels are taken from here')
    parser.add_argument('--out', required=True, help='output .dapbox dir')
    parser.add_argument(
        '--trust-pickle',
        action='store_true',
        help='allow loading pickled object arrays (can execute code from '
        'the file; only for files you trust)')
    parser.add_argument('--data-root', help='image folder to read sizes')
    parser.add_argument(
        '--sizes', help='text file "relative/path width height" per line')
    parser.add_argument(
        '--num-classes',
        type=int,
        help='number of classes (default: largest label + 1)')
    parser.add_argument('--classes', help='class names, one per line')
    parser.add_argument(
        '--workers', type=int, default=8, help='threads reading image headers')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace an existing output')
    return parser.parse_args(argv)


def read_image_list(path: str) -> Tuple[List[str], np.ndarray]:
    """Keys and 0-based labels of an mmpretrain annotation file."""
    keys, labels = [], []
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(' ', 1)
            if len(parts) != 2 or not parts[1].lstrip('-').isdigit():
                raise InputError(
                    f'{path}:{lineno}: expected "relative/path label", got '
                    f'{line!r}')
            keys.append(parts[0].strip())
            labels.append(int(parts[1]))
    labels = np.array(labels, np.int64)
    if (labels < 0).any():
        raise InputError(f'{path}: labels must be >= 0 (0-based)')
    return keys, labels


def load_npz(path: str, trust_pickle: bool,
             logger: MMLogger) -> Dict[str, np.ndarray]:
    """All members of ``path``; pickled ones only with ``trust_pickle``."""
    if trust_pickle:
        logger.warning(
            '!!! --trust-pickle: loading pickled objects from %s. Pickle can '
            'execute arbitrary code; do this only for files you trust. !!!',
            path)
    try:
        with np.load(path, allow_pickle=trust_pickle) as npz:
            members = {}
            for name in npz.files:
                try:
                    members[name] = npz[name]
                except ValueError as e:
                    if 'allow_pickle' not in str(e):
                        raise
                    raise InputError(
                        f'{path}: member {name!r} holds pickled Python '
                        'objects (the original DAP saved object arrays). '
                        'Loading them runs pickle, which can execute '
                        'arbitrary code hidden in the file, so it is refused '
                        'by default. If you trust this file (e.g. you made '
                        'it with the original DAP code), rerun with '
                        '--trust-pickle.') from None
            return members
    except (OSError, ValueError) as e:
        raise InputError(f'cannot read {path} as .npz: {e}') from e


def per_image_entries(members: Dict[str, np.ndarray], keys: List[str],
                      orig: str) -> Tuple[str, list, Optional[np.ndarray]]:
    """(layout, N entries (None = failed), sizes or None)."""
    index = {k: i for i, k in enumerate(keys)}
    aligned = 'boxes' in members and 'boxes' not in index
    if aligned:
        extra = sorted(set(members) - {'boxes', 'sizes'})
        if extra:
            raise InputError(
                f'{orig}: unexpected members {extra[:5]} beside "boxes"')
        boxes = members['boxes']
        if boxes.ndim == 0 or len(boxes) != len(keys):
            raise InputError(
                f'{orig}: "boxes" has {len(boxes) if boxes.ndim else 0} '
                f'entries but the image list has {len(keys)} images; the '
                'aligned layout needs one entry per image, in list order')
        sizes = members.get('sizes')
        if sizes is not None and sizes.shape != (len(keys), 2):
            raise InputError(
                f'{orig}: "sizes" has shape {sizes.shape}, expected '
                f'({len(keys)}, 2) (width, height)')
        return 'aligned', list(boxes), sizes
    unknown = [name for name in members if name not in index]
    if unknown:
        raise InputError(
            f'{orig}: {len(unknown)} members are not keys of the image list '
            f'(e.g. {unknown[:3]}); neither the aligned layout (a member '
            '"boxes") nor the per-key layout fits this image list')
    entries = [None] * len(keys)
    for name, value in members.items():
        entries[index[name]] = value
    return 'per-key', entries, None


def to_columns(entry, i: int,
               key: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (k, 4), scores (k,), thresholds (k,) of one original entry."""
    try:
        arr = np.asarray(entry, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(
            f'image {i} ({key}): entry of type {type(entry).__name__} is not '
            f'a numeric (K, 4..6) array: {e}') from None
    if arr.size == 0:
        arr = arr.reshape(0, 4)
    elif arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] not in (4, 5, 6):
        raise InputError(
            f'image {i} ({key}): boxes have shape {arr.shape}, expected '
            '(K, 4) xyxy, (K, 5) + score or (K, 6) + score, threshold')
    boxes = arr[:, :4]
    if arr.shape[1] >= 5:
        scores = arr[:, 4]
    else:  # the original definition: area / area of the first box
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        first = area[0] if len(area) else 0.0
        scores = area / first if first > 0 else np.ones(len(area))
    thresholds = arr[:, 5] if arr.shape[1] == 6 else np.full(len(arr), np.nan)
    return boxes, scores, thresholds


def image_size(path: str) -> Tuple[int, int]:
    from PIL import Image
    with Image.open(path) as img:  # reads the header only
        return img.size


def read_sizes(args: argparse.Namespace, keys: List[str], needed: np.ndarray,
               npz_sizes: Optional[np.ndarray],
               logger: MMLogger) -> np.ndarray:
    """(N, 2) int (width, height); 0 where not needed (failed images)."""
    sizes = np.zeros((len(keys), 2), np.int64)
    todo = np.flatnonzero(needed)
    if args.data_root:
        logger.info(f'reading {len(todo)} image headers under '
                    f'{args.data_root}')
        bad = []

        def one(i: int) -> Optional[Tuple[int, int]]:
            try:
                return image_size(osp.join(args.data_root, keys[i]))
            except (OSError, ValueError) as e:
                bad.append(f'{keys[i]} ({e})')
                return None

        bar = ProgressBar((len(todo) + CHUNK - 1) // CHUNK)
        with ThreadPoolExecutor(max(1, args.workers)) as pool:
            for start in range(0, len(todo), CHUNK):
                part = todo[start:start + CHUNK]
                for i, wh in zip(part, pool.map(one, part.tolist())):
                    if wh is not None:
                        sizes[i] = wh
                bar.update(1)
        print()
        if bad:
            raise InputError(
                f'{len(bad)} images with boxes cannot be read under '
                f'{args.data_root}, e.g. {bad[:3]}; fix --data-root or pass '
                '--sizes')
        return sizes
    if args.sizes:
        table = {}
        with open(args.sizes, encoding='utf-8') as f:
            for lineno, line in enumerate(f, 1):
                parts = line.strip().rsplit(' ', 2)
                if len(parts) == 3 and parts[1].isdigit() and \
                        parts[2].isdigit():
                    table[parts[0]] = (int(parts[1]), int(parts[2]))
                elif line.strip():
                    raise InputError(
                        f'{args.sizes}:{lineno}: expected "relative/path '
                        f'width height", got {line.strip()!r}')
        lacking = [keys[i] for i in todo if keys[i] not in table]
        if lacking:
            raise InputError(
                f'{args.sizes} lacks {len(lacking)} images with boxes, e.g. '
                f'{lacking[:3]}')
        for i in todo:
            sizes[i] = table[keys[i]]
        return sizes
    if npz_sizes is not None:
        sizes[todo] = np.asarray(npz_sizes)[todo]
        return sizes
    raise InputError(
        'image sizes are needed (boxes are stored and checked in original '
        'pixels): pass --data-root (reads image headers) or --sizes FILE '
        '("relative/path width height" per line), or store a "sizes" (N, 2) '
        'member in the .npz')


def check_inside(boxes: Sequence[np.ndarray], sizes: np.ndarray,
                 keys: List[str]) -> None:
    """The original clipped boxes to their image: anything else means the
    image list does not match the boxes."""
    counts = np.array([len(b) for b in boxes])
    if not counts.sum():
        return
    allb = np.concatenate([b for b in boxes if len(b)])
    wh = np.repeat(sizes, counts, axis=0)
    outside = (allb[:, :2] < -1).any(1) | (allb[:, 2] > wh[:, 0] + 1) | \
        (allb[:, 3] > wh[:, 1] + 1)
    if outside.any():
        owners = np.repeat(np.arange(len(boxes)), counts)[outside]
        i = int(owners[0])
        raise InputError(
            f'{outside.sum()} boxes of {len(np.unique(owners))} images lie '
            f'outside their image, e.g. image {i} ({keys[i]}, size '
            f'{tuple(sizes[i])}): {boxes[i].tolist()}. The image list (or '
            'its order, or the sizes) is probably not the one the boxes were '
            'made for.')


def convert(args: argparse.Namespace, logger: MMLogger) -> None:
    keys, labels = read_image_list(args.image_list)
    logger.info(f'{len(keys)} images in {args.image_list}')
    members = load_npz(args.orig, args.trust_pickle, logger)
    layout, entries, npz_sizes = per_image_entries(members, keys, args.orig)
    del members
    boxes, scores, thresholds, failed = [], [], [], {}
    empty = (np.zeros((0, 4)), np.zeros(0), np.zeros(0))
    bar = ProgressBar((len(keys) + CHUNK - 1) // CHUNK)
    for i, entry in enumerate(entries):
        if entry is None:
            failed[i] = 'no boxes in the original file'
            cols = empty
        else:
            cols = to_columns(entry, i, keys[i])
        boxes.append(cols[0])
        scores.append(cols[1])
        thresholds.append(cols[2])
        if (i + 1) % CHUNK == 0 or i + 1 == len(keys):
            bar.update(1)
    print()
    status = np.zeros(len(keys), np.uint8)
    status[list(failed)] = 1
    sizes = read_sizes(args, keys, status == 0, npz_sizes, logger)
    check_inside(boxes, sizes, keys)
    classes = None
    if args.classes:
        with open(args.classes, encoding='utf-8') as f:
            classes = [line.strip() for line in f if line.strip()]
    num_classes = args.num_classes or (len(classes) if classes else None)
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if len(labels) else 1
        logger.warning(f'--num-classes not given: using largest label + 1 '
                       f'= {num_classes}')
    meta = dict(
        num_classes=num_classes,
        classes=classes,
        checkpoint_sha256=None,
        generation_config=dict(
            source='original DAP code (imported)',
            original_file=osp.basename(args.orig),
            original_sha256=file_sha256(args.orig),
            layout=layout,
            labels='from the image list (0-based), not the original file'))
    write_box_file(
        args.out,
        keys,
        sizes,
        labels,
        boxes,
        scores,
        thresholds,
        meta,
        failed=failed,
        overwrite=args.overwrite)
    logger.info(f'wrote {args.out}: {len(keys)} images, '
                f'{sum(len(b) for b in boxes)} boxes, {len(failed)} failed '
                f'(layout {layout})')


def main(argv: Optional[list] = None) -> None:
    args = parse_args(argv)
    logger = MMLogger.get_instance('dap_import', log_level='INFO')
    try:
        convert(args, logger)
    except (InputError, BoxFileError) as e:
        logger.error(str(e))
        sys.exit(1)


if __name__ == '__main__':
    main()
