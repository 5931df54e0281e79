"""Score a pseudo-box file against ground-truth boxes.

Weakly-supervised localisation practice (the CAM is of the GT class, so
these are "GT-known" numbers)::

    python tools/analysis_tools/eval_pseudo_boxes.py BOXFILE GT \\
        [--out res.json] [--plot curves.png]

``GT`` is a COCO JSON file (``images[].file_name``, ``annotations[].bbox``
x, y, w, h) or a folder of VOC / ImageNet XML files (searched
recursively; ``<filename>`` and ``<object><bndbox>``).  Images are matched
by key: the box file key, the key without extension, its base name or its
base name without extension (aliases that would match several GT images are
not used).  Coordinates are compared as given (x2 = x + w for COCO), IoU
without the "+1" convention.

Metrics over the matched images (failed images count as misses):

* ``gt_known_acc@0.5``: share of images whose top box (highest score) has
  IoU >= 0.5 with at least one GT box of the image;
* ``top1_acc@{0.3,0.5,0.7}`` and ``maxboxacc_v2_style``: their mean, the
  MaxBoxAccV2 recipe applied to the top box (the box file has fixed boxes,
  so there is no CAM threshold to maximise over);
* ``recall@0.5``: share of GT boxes covered (IoU >= 0.5) by any box;
* ``precision@0.5``: share of boxes with IoU >= 0.5 with any GT box;
* ``boxes_per_image``: mean number of boxes per (non-failed) image.

``--plot`` draws the top-box accuracy and the recall against the IoU
threshold (0.05 ... 0.95) and the histogram of boxes per image.
"""
import argparse
import json
import os
import os.path as osp
import sys
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from projects.dap.dap.datasets.box_file import BoxFileError, PseudoBoxFile
from projects.dap.dap.evaluation.box_iou import box_iou

IOU_THRS = (0.3, 0.5, 0.7)
CURVE_THRS = tuple(round(0.05 * i, 2) for i in range(1, 20))


# ------------------------------------------------------------------ GT
def load_coco_gt(path: str) -> Dict[str, np.ndarray]:
    with open(path, encoding='utf-8') as f:
        coco = json.load(f)
    try:
        names = {img['id']: str(img['file_name']) for img in coco['images']}
        boxes: Dict[str, List] = {name: [] for name in names.values()}
        for ann in coco.get('annotations', []):
            x, y, w, h = (float(v) for v in ann['bbox'])
            boxes[names[ann['image_id']]].append([x, y, x + w, y + h])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f'{path} is not a COCO detection file: {e!r}') \
            from e
    return {
        k: np.asarray(v, np.float64).reshape(-1, 4)
        for k, v in boxes.items()
    }


def load_voc_gt(folder: str) -> Dict[str, np.ndarray]:
    out: Dict[str, np.ndarray] = {}
    for root, _, files in os.walk(folder):
        for fname in sorted(files):
            if not fname.lower().endswith('.xml'):
                continue
            path = osp.join(root, fname)
            tree = ET.parse(path).getroot()
            rel = osp.relpath(path, folder)[:-4].replace(os.sep, '/')
            name = tree.findtext('filename')
            boxes = []
            for obj in tree.iter('object'):
                bb = obj.find('bndbox')
                if bb is None:
                    continue
                boxes.append([
                    float(bb.findtext(t))
                    for t in ('xmin', 'ymin', 'xmax', 'ymax')
                ])
            arr = np.asarray(boxes, np.float64).reshape(-1, 4)
            # the folder layout (e.g. n01440764/n01440764_10026) is the
            # most specific name; <filename> may lack the extension
            key = rel if '/' in rel or not name else name.strip()
            out[key] = arr
    if not out:
        raise ValueError(f'no .xml files found under {folder}')
    return out


def load_gt(path: str) -> Dict[str, np.ndarray]:
    if osp.isdir(path):
        return load_voc_gt(path)
    if path.lower().endswith('.json'):
        return load_coco_gt(path)
    raise ValueError(f'GT must be a COCO .json file or a folder of VOC XML '
                     f'files, got {path}')


def _aliases(name: str) -> List[str]:
    name = name.replace('\\', '/')
    base = name.rsplit('/', 1)[-1]
    return list(
        dict.fromkeys(
            [name, osp.splitext(name)[0], base,
             osp.splitext(base)[0]]))


class GTIndex:
    """Finds the GT entry of a box-file key through unambiguous aliases."""

    def __init__(self, gt: Dict[str, np.ndarray]) -> None:
        self.gt = gt
        self._by_alias: Dict[str, Optional[str]] = {}
        for name in gt:
            for alias in _aliases(name):
                prev = self._by_alias.get(alias, name)
                self._by_alias[alias] = name if prev == name else None

    def find(self, key: str) -> Optional[str]:
        for alias in _aliases(key):
            name = self._by_alias.get(alias)
            if name is not None:
                return name
        return None


# ------------------------------------------------------------- metrics
def match_images(box_file: PseudoBoxFile, gt: Dict[str, np.ndarray]):
    """Per matched image: (GT boxes, IoU of its top box or None when it has
    none or failed, best IoU of each GT box with any box, number of boxes or
    None when failed).  Also returns the GT names used."""
    index = GTIndex(gt)
    rows = []
    used = set()
    for i in range(box_file.num_images):
        name = index.find(box_file.key(i))
        if name is None:
            continue
        used.add(name)
        gt_boxes = gt[name]
        if box_file.is_failed(i):
            rows.append(
                (gt_boxes, None, np.zeros(len(gt_boxes)), None, np.zeros(0)))
            continue
        boxes, scores, _ = box_file.boxes_of(i)
        if not len(boxes) or not len(gt_boxes):
            rows.append((gt_boxes, None, np.zeros(len(gt_boxes)), len(boxes),
                         np.zeros(len(boxes))))
            continue
        iou = box_iou(boxes, gt_boxes)
        top = int(np.argmax(scores))
        rows.append((gt_boxes, float(iou[top].max()), iou.max(axis=0),
                     len(boxes), iou.max(axis=1)))
    return rows, used


def evaluate(box_file: PseudoBoxFile,
             gt: Dict[str, np.ndarray],
             iou_thrs: Sequence[float] = IOU_THRS) -> Dict[str, float]:
    """The metrics of the module docstring (plain dict)."""
    rows, used = match_images(box_file, gt)
    if not rows:
        raise ValueError(
            'no image of the box file matches a GT image (keys are matched '
            'by path, path without extension, base name or base name '
            'without extension)')
    matched = len(rows)
    top_hits = np.zeros(len(iou_thrs))
    failed = num_gt = gt_covered = num_pred = pred_correct = ok_images = 0
    for gt_boxes, top_iou, gt_best, num_boxes, box_best in rows:
        num_gt += len(gt_boxes)
        if num_boxes is None:
            failed += 1
            continue
        ok_images += 1
        num_pred += num_boxes
        if top_iou is not None:
            top_hits += np.asarray([top_iou >= t for t in iou_thrs],
                                   np.float64)
        gt_covered += int((gt_best >= 0.5).sum())
        pred_correct += int((box_best >= 0.5).sum())
    acc = top_hits / matched
    res = {
        'num_images':
        box_file.num_images,
        'num_matched':
        matched,
        'num_failed':
        failed,
        'num_gt_unmatched':
        len(gt) - len(used),
        'num_gt_boxes':
        num_gt,
        'num_boxes':
        num_pred,
        'gt_known_acc@0.5':
        float(acc[list(iou_thrs).index(0.5)])
        if 0.5 in iou_thrs else float('nan'),
    }
    for t, a in zip(iou_thrs, acc):
        res[f'top1_acc@{t:g}'] = float(a)
    res['maxboxacc_v2_style'] = float(acc.mean())
    res['recall@0.5'] = gt_covered / num_gt if num_gt else 0.0
    res['precision@0.5'] = pred_correct / num_pred if num_pred else 0.0
    res['boxes_per_image'] = num_pred / ok_images if ok_images else 0.0
    return res


def curves(box_file: PseudoBoxFile,
           gt: Dict[str, np.ndarray],
           thresholds: Sequence[float] = CURVE_THRS) -> Dict[str, list]:
    """What the plot shows, over the matched images.

    ``top1_acc[j]``: share of images whose top box has IoU >= thresholds[j]
    with a GT box (failed images count as misses); ``recall[j]``: share of
    GT boxes covered by any box at that IoU; ``images_with_k_boxes[k]``:
    non-failed images with k boxes.
    """
    rows, _ = match_images(box_file, gt)
    if not rows:
        raise ValueError('no image of the box file matches a GT image')
    thr = np.asarray(thresholds, np.float64)
    top = np.asarray([-1.0 if r[1] is None else r[1] for r in rows])
    gt_best = np.concatenate([r[2] for r in rows] + [np.zeros(0)])
    counts = [r[3] for r in rows if r[3] is not None]
    return {
        'iou_thresholds':
        thr.tolist(),
        'top1_acc': [float((top >= t).mean()) for t in thr],
        'recall':
        [float((gt_best >= t).mean()) if len(gt_best) else 0.0 for t in thr],
        'images_with_k_boxes':
        np.bincount(np.asarray(counts, np.int64), minlength=1).tolist(),
    }


def plot_curves(data: Dict[str, list], path: str, title: str) -> None:
    """Accuracy / recall against the IoU threshold, boxes-per-image bars."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    thr = data['iou_thresholds']
    left.plot(
        thr, [100 * v for v in data['top1_acc']],
        'o-',
        label='top box (GT-known accuracy)')
    left.plot(
        thr, [100 * v for v in data['recall']],
        's--',
        label='recall of GT boxes (any box)')
    left.set_xlabel('IoU threshold')
    left.set_ylabel('%')
    left.set_ylim(0, 100)
    left.grid(alpha=0.3)
    left.legend()
    k = np.arange(len(data['images_with_k_boxes']))
    right.bar(k, data['images_with_k_boxes'], color='tab:orange')
    right.set_xticks(k)
    right.set_xlabel('boxes per image')
    right.set_ylabel('images')
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def format_table(res: Dict[str, float]) -> str:
    rows: List[Tuple[str, str]] = []
    for k, v in res.items():
        if isinstance(v, float):
            text = f'{100 * v:.2f}' if ('acc' in k or '@' in k) else \
                f'{v:.3f}'
        else:
            text = str(v)
        rows.append((k, text))
    width = max(len(k) for k, _ in rows)
    vwidth = max(len(v) for _, v in rows)
    line = '+' + '-' * (width + 2) + '+' + '-' * (vwidth + 2) + '+'
    body = [f'| {k:<{width}} | {v:>{vwidth}} |' for k, v in rows]
    return '\n'.join(
        [line, f'| {"metric":<{width}} | {"value":>{vwidth}} |', line] + body +
        [line])


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Score pseudo boxes against ground-truth boxes')
    parser.add_argument('box_file', help='a .dapbox pseudo-box file')
    parser.add_argument('gt', help='COCO JSON file or folder of VOC XMLs')
    parser.add_argument('--out', help='write the metrics as JSON here')
    parser.add_argument(
        '--plot',
        help='write a PNG here: accuracy and recall against the IoU '
        'threshold, boxes per image; the numbers go next to it (.json)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        box_file = PseudoBoxFile.open(args.box_file)
        gt = load_gt(args.gt)
        res = evaluate(box_file, gt)
        curve = curves(box_file, gt) if args.plot else None
    except (BoxFileError, ValueError, OSError, ET.ParseError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(format_table(res))
    print('(accuracies, recall and precision in %; failed images count as '
          'misses)')
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump(res, f, indent=2, sort_keys=True)
            f.write('\n')
    if args.plot:
        os.makedirs(osp.dirname(osp.abspath(args.plot)), exist_ok=True)
        plot_curves(
            curve, args.plot, f'{osp.basename(args.box_file.rstrip("/"))}: '
            f'{res["num_matched"]} images with GT, '
            f'{res["num_failed"]} failed')
        with open(
                osp.splitext(args.plot)[0] + '.json', 'w',
                encoding='utf-8') as f:
            json.dump(curve, f, indent=2)
            f.write('\n')
        print(f'wrote {args.plot}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
