"""Deterministic k-shot splits of VOC07 trainval and COCO train2017.

DAP's low-data transfer fine-tunes on k = 5, 10, 20, 50, 100 images per class.
The authors' split files were not released, so this tool defines the splits.

What "k images per class" means here
    An image *contains* class c when it has at least one object of c that
    training uses: VOC objects not marked ``difficult``, COCO annotations
    with ``iscrowd == 0``.  For a split S, n_c(S) is the number of images in
    S that contain c; an image with several classes counts once for each.
    The goal is n_c(S) == k for every class.

How a split is chosen (greedy, for one ``seed``)
    1. Classes are visited rarest first (fewest images containing them; ties
       by class index), because rare classes have the fewest choices.
    2. Each class's candidate images are sorted by image id and permuted by
       ``numpy.random.RandomState([seed, class_index])``.  The permutation
       depends only on (seed, class), not on k, dict order or platform, so
       a split is reproducible and splits of one seed mostly nest.
    3. For class c with n_c < k the candidates are scanned in that order and
       an image is taken when it pushes no class above k, until n_c == k.
    4. If c still has fewer than k images, the remaining candidates are
       taken one at a time, fewest classes pushed above k first (ties: the
       permuted order): c reaches k at the price of other classes.
    5. Clean-up: a chosen image whose classes all have n > k is dropped
       (latest first).
    A class ends with n_c < k only when fewer than k images contain it, and
    with n_c > k only when multi-class images forced it; both are reported.

Outputs, in each dataset's own format
    VOC: ``ImageSets/Main/{split}_{k}shot_seed{s}.txt`` (sorted image ids).
    COCO: ``{stem}_{k}shot_seed{s}.json`` with the chosen images, all their
    annotations (crowd ones too) and every category.

Defaults (the one place they are set): k = ``DEFAULT_SHOTS``, seeds
``DEFAULT_SEEDS``; ``tools/dataset_converters/make_fewshot_splits.py`` and
``tools/fewshot_sweep.py`` use them.
"""
import json
import os
import os.path as osp
import tempfile
import xml.etree.ElementTree as ET
from typing import Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np

VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
               'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse',
               'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
               'tvmonitor')
DEFAULT_SHOTS = (5, 10, 20, 50, 100)
DEFAULT_SEEDS = (0, 1, 2)


def _id_key(image_id: Hashable) -> Tuple[str, str]:
    """Sort key for ids of any type, numbers in numeric order."""
    if isinstance(image_id, (int, np.integer)):
        return ('0', f'{int(image_id):020d}')
    return ('1', str(image_id))


def select_fewshot(image_classes: Dict[Hashable, Sequence[int]],
                   num_classes: int, shot: int, seed: int) -> dict:
    """Choose images so that each class is contained in ``shot`` of them.

    Args:
        image_classes: image id -> indices of the classes it contains
            (duplicates are ignored; images without classes are never
            chosen).
        num_classes: number of classes (indices ``0 .. num_classes - 1``).
        shot: k, the wanted number of images per class.
        seed: split seed (0 <= seed < 2**32).

    Returns:
        dict with ``images`` (chosen ids, sorted), ``counts`` (n_c per
        class), ``available`` (images containing each class in the input),
        ``under`` and ``over`` (class indices with n_c < k or n_c > k).
    """
    if shot < 1:
        raise ValueError(f'shot must be >= 1, got {shot}')
    if not 0 <= seed < 2**32:
        raise ValueError(f'seed must be in [0, 2**32), got {seed}')
    classes_of: Dict[Hashable, Tuple[int, ...]] = {}
    candidates: List[List[Hashable]] = [[] for _ in range(num_classes)]
    for image_id in sorted(image_classes, key=_id_key):
        cls = tuple(sorted(set(int(c) for c in image_classes[image_id])))
        if not cls:
            continue
        if cls[0] < 0 or cls[-1] >= num_classes:
            raise ValueError(f'image {image_id!r} has class indices {cls} '
                             f'outside [0, {num_classes})')
        classes_of[image_id] = cls
        for c in cls:
            candidates[c].append(image_id)
    available = [len(ids) for ids in candidates]

    counts = [0] * num_classes
    chosen: List[Hashable] = []
    chosen_set = set()

    def take(image_id: Hashable) -> None:
        chosen.append(image_id)
        chosen_set.add(image_id)
        for c in classes_of[image_id]:
            counts[c] += 1

    order = sorted(range(num_classes), key=lambda c: (available[c], c))
    for c in order:
        if counts[c] >= shot or not candidates[c]:
            continue
        perm = np.random.RandomState([seed, c]).permutation(len(candidates[c]))
        ranked = [candidates[c][i] for i in perm]
        # pass 1: images that push no class above k
        for image_id in ranked:
            if counts[c] >= shot:
                break
            if image_id in chosen_set:
                continue
            if all(counts[o] < shot for o in classes_of[image_id]):
                take(image_id)
        # pass 2: reach k anyway, pushing as few classes above k as possible
        rest = [i for i in ranked if i not in chosen_set]
        while counts[c] < shot and rest:
            excess = [
                sum(counts[o] >= shot for o in classes_of[i] if o != c)
                for i in rest
            ]
            best = int(np.argmin(excess))  # first minimum: permuted order
            take(rest.pop(best))
    # clean-up: drop images that only add to classes already above k
    for image_id in reversed(list(chosen)):
        if all(counts[o] > shot for o in classes_of[image_id]):
            chosen.remove(image_id)
            chosen_set.discard(image_id)
            for o in classes_of[image_id]:
                counts[o] -= 1
    return dict(
        images=sorted(chosen, key=_id_key),
        counts=counts,
        available=available,
        under=[c for c in range(num_classes) if counts[c] < shot],
        over=[c for c in range(num_classes) if counts[c] > shot])


def describe(result: dict, class_names: Sequence[str], shot: int) -> str:
    """A human-readable report of one split."""
    lines = [
        f'{len(result["images"])} images; '
        f'{num_classes_exact(result, shot)}/{len(class_names)} classes '
        f'have exactly {shot} images'
    ]
    for c in result['under']:
        lines.append(f'  under k: {class_names[c]}: {result["counts"][c]} '
                     f'(only {result["available"][c]} images contain it)')
    for c in result['over']:
        lines.append(f'  over k: {class_names[c]}: {result["counts"][c]} '
                     '(forced by images with several classes)')
    return '\n'.join(lines)


def num_classes_exact(result: dict, shot: int) -> int:
    return sum(n == shot for n in result['counts'])


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file (no half files)."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp_')
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


# ----------------------------------------------------------------- VOC


def read_voc(voc_root: str,
             split: str = 'trainval',
             classes: Sequence[str] = VOC_CLASSES) -> Dict[str, List[int]]:
    """Image id -> classes (non-difficult objects) of a VOC year folder."""
    list_file = osp.join(voc_root, 'ImageSets', 'Main', f'{split}.txt')
    if not osp.isfile(list_file):
        raise FileNotFoundError(
            f'{list_file} not found: VOC_ROOT must be a VOC year folder such '
            f'as data/VOCdevkit/VOC2007 with ImageSets/Main/{split}.txt')
    with open(list_file) as f:
        ids = [line.strip() for line in f if line.strip()]
    if len(set(ids)) != len(ids):
        raise ValueError(f'{list_file} lists some image ids twice')
    index = {name: i for i, name in enumerate(classes)}
    result: Dict[str, List[int]] = {}
    unknown = set()
    for image_id in ids:
        xml_path = osp.join(voc_root, 'Annotations', f'{image_id}.xml')
        try:
            root = ET.parse(xml_path).getroot()
        except FileNotFoundError:
            raise FileNotFoundError(
                f'annotation {xml_path} of image {image_id} is missing')
        except ET.ParseError as e:
            raise ValueError(f'cannot parse {xml_path}: {e}') from None
        found = []
        for obj in root.findall('object'):
            name_node = obj.find('name')
            if name_node is None or not (name_node.text or '').strip():
                raise ValueError(f'{xml_path}: an object has no <name>')
            name = name_node.text.strip()
            if name not in index:
                unknown.add(name)
                continue
            difficult = obj.find('difficult')
            if difficult is not None and int(difficult.text or 0):
                continue
            found.append(index[name])
        result[image_id] = found
    if unknown:
        raise ValueError(
            f'objects of classes {sorted(unknown)} are not in the class list '
            f'({len(classes)} classes); pass --classes for a custom dataset')
    return result


# ---------------------------------------------------------------- COCO


def read_coco(ann_file: str) -> Tuple[dict, Dict[int, List[int]], list]:
    """The COCO json, image id -> class indices, and sorted categories."""
    with open(ann_file) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{ann_file} is not valid JSON: {e}') from None
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(data.get(key), list):
            raise ValueError(f'{ann_file} has no "{key}" list; is it a COCO '
                             'instances file?')
    categories = sorted(data['categories'], key=lambda c: c['id'])
    cat_index = {cat['id']: i for i, cat in enumerate(categories)}
    if len(cat_index) != len(categories):
        raise ValueError(f'{ann_file}: duplicate category ids')
    image_classes: Dict[int, List[int]] = {}
    for img in data['images']:
        if img['id'] in image_classes:
            raise ValueError(f'{ann_file}: duplicate image id {img["id"]}')
        image_classes[img['id']] = []
    for ann in data['annotations']:
        if ann['image_id'] not in image_classes:
            raise ValueError(f'{ann_file}: annotation {ann.get("id")} refers '
                             f'to unknown image {ann["image_id"]}')
        if ann['category_id'] not in cat_index:
            raise ValueError(f'{ann_file}: annotation {ann.get("id")} has '
                             f'unknown category {ann["category_id"]}')
        if ann.get('iscrowd', 0):
            continue
        image_classes[ann['image_id']].append(cat_index[ann['category_id']])
    return data, image_classes, categories


# ------------------------------------------------------------ the files


def split_file(source: str,
               shot: int,
               seed: int,
               split_dir: Optional[str] = None) -> str:
    """The k-shot split file made from ``source`` (the one naming rule).

    ``source`` is the full training list: a VOC ImageSets list
    (``.../ImageSets/Main/trainval.txt`` -> ``trainval_{k}shot_seed{s}.txt``)
    or a COCO instances json (``instances_train2017.json`` ->
    ``instances_train2017_{k}shot_seed{s}.json``).  The split lies beside
    its source, or in ``split_dir`` (absolute) when given, e.g. for a
    read-only dataset copy.
    """
    stem, ext = osp.splitext(source)
    if ext not in ('.txt', '.json'):
        raise ValueError(f'{source}: a split source is a VOC ImageSets list '
                         '(.txt) or a COCO instances json (.json)')
    if split_dir:
        stem = osp.join(osp.abspath(split_dir), osp.basename(stem))
    return f'{stem}_{int(shot)}shot_seed{int(seed)}{ext}'


def voc_root_of(list_file: str) -> Tuple[str, str]:
    """(VOC year folder, image set) of ``<year>/ImageSets/Main/<set>.txt``."""
    main_dir = osp.dirname(osp.abspath(list_file))
    if osp.basename(main_dir) != 'Main' or osp.basename(
            osp.dirname(main_dir)) != 'ImageSets':
        raise ValueError(f'{list_file}: a VOC split source must be a list in '
                         '<VOC year>/ImageSets/Main/')
    return (osp.dirname(osp.dirname(main_dir)),
            osp.splitext(osp.basename(list_file))[0])


def make_splits(source: str,
                pairs: Sequence[Tuple[int, int]],
                classes: Optional[Sequence[str]] = None,
                split_dir: Optional[str] = None) -> List[dict]:
    """Write the split files of ``pairs`` ((k, seed), ...) of ``source``.

    ``source`` and ``split_dir`` as in :func:`split_file`; the annotations
    are read once.
    VOC needs the class names (default: the 20 VOC classes); COCO takes
    them from the json.  Returns one report per split.
    """
    pairs = [(int(k), int(s)) for k, s in pairs]
    reports = []
    if source.endswith('.txt'):
        voc_root, split = voc_root_of(source)
        classes = tuple(classes or VOC_CLASSES)
        image_classes = read_voc(voc_root, split, classes)
        for shot, seed in pairs:
            result = select_fewshot(image_classes, len(classes), shot, seed)
            path = split_file(source, shot, seed, split_dir)
            write_atomic(path, ''.join(f'{i}\n' for i in result['images']))
            reports.append(_report(result, classes, shot, seed, path))
        return reports
    if classes:
        raise ValueError('class names are for VOC; COCO classes come from '
                         'the json categories')
    data, image_classes, categories = read_coco(source)
    names = [cat['name'] for cat in categories]
    images_by_id = {img['id']: img for img in data['images']}
    anns_by_image: Dict[int, list] = {}
    for ann in data['annotations']:
        anns_by_image.setdefault(ann['image_id'], []).append(ann)
    for shot, seed in pairs:
        result = select_fewshot(image_classes, len(names), shot, seed)
        anns = [a for i in result['images'] for a in anns_by_image[i]]
        anns.sort(key=lambda a: _id_key(a.get('id', 0)))
        out = {
            k: v
            for k, v in data.items()
            if k not in ('images', 'annotations', 'categories')
        }
        out['images'] = [images_by_id[i] for i in result['images']]
        out['annotations'] = anns
        out['categories'] = data['categories']
        path = split_file(source, shot, seed, split_dir)
        write_atomic(path, json.dumps(out))
        reports.append(_report(result, names, shot, seed, path))
    return reports


def make_missing_splits(source: str,
                        shots: Sequence[int],
                        seeds: Sequence[int],
                        classes: Optional[Sequence[str]] = None,
                        split_dir: Optional[str] = None) -> List[dict]:
    """:func:`make_splits` for the (k, seed) whose file does not exist."""
    missing = [(k, s) for k in shots for s in seeds
               if not osp.isfile(split_file(source, k, s, split_dir))]
    return make_splits(source, missing, classes, split_dir) if missing else []


def _grid(shots: Sequence[int], seeds: Sequence[int]) -> List[Tuple[int, int]]:
    return [(k, s) for k in shots for s in seeds]


def make_voc_splits(voc_root: str,
                    shots: Sequence[int],
                    seeds: Sequence[int],
                    split: str = 'trainval',
                    classes: Sequence[str] = VOC_CLASSES,
                    split_dir: Optional[str] = None) -> List[dict]:
    """One ImageSets list per (k, seed) beside ``{split}.txt`` (or in
    ``split_dir``)."""
    source = osp.join(voc_root, 'ImageSets', 'Main', f'{split}.txt')
    return make_splits(source, _grid(shots, seeds), classes, split_dir)


def make_coco_splits(ann_file: str,
                     shots: Sequence[int],
                     seeds: Sequence[int],
                     split_dir: Optional[str] = None) -> List[dict]:
    """One COCO json per (k, seed) beside ``ann_file`` (or in
    ``split_dir``)."""
    return make_splits(ann_file, _grid(shots, seeds), split_dir=split_dir)


def _report(result: dict, names: Sequence[str], shot: int, seed: int,
            path: str) -> dict:
    return dict(
        file=path,
        shot=shot,
        seed=seed,
        num_images=len(result['images']),
        counts={
            names[c]: n
            for c, n in enumerate(result['counts'])
        },
        under={
            names[c]:
            dict(count=result['counts'][c], available=result['available'][c])
            for c in result['under']
        },
        over={names[c]: result['counts'][c]
              for c in result['over']},
        text=describe(result, names, shot))
