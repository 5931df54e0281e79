"""Export a DAP pseudo-box file (``.dapbox``) to COCO detection JSON.

For looking at the boxes with COCO tools (pycocotools, FiftyOne, mmdet's
browse_dataset) or training any COCO-reading detector on them::

    python tools/dataset_converters/export_pseudo_boxes_to_coco.py \\
        work_dirs/cam_boxes/in1k_train.dapbox in1k_pseudo_boxes.json \\
        --score-thr 0.1 --skip-failed

What is written
    images       ``id`` = dataset index + 1, ``file_name`` = the image key
                 (path relative to the data prefix), ``width``, ``height``.
                 Failed images are kept without annotations and carry
                 ``"dap_failed": reason`` unless ``--skip-failed``.
    annotations  ``id`` (1, 2, ... in file order), ``image_id``,
                 ``category_id``, ``bbox`` = [x, y, w, h] in original
                 pixels, ``area`` = w * h, ``iscrowd`` = 0, and the DAP
                 ``score`` and ``threshold`` (null when unknown).
    categories   one per class: ``id`` = the 0-based class index exactly as
                 stored in the box file (no +1 shift: DAP's 22K labels went
                 wrong with such a shift), ``name`` from the file's class
                 names or ``class_<id>``.
    info         box-file format, version and image-list fingerprint.

The JSON is written in chunks (14M images do not have to fit in memory as
Python objects) to a temp file that replaces ``OUT.json`` at the end.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Iterator, Optional

import numpy as np
from mmengine.logging import MMLogger
from mmengine.utils import ProgressBar

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, REPO)

from projects.dap.dap.datasets.box_file import PseudoBoxFile  # noqa: E402

CHUNK = 100_000  # images per JSON chunk


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export DAP pseudo boxes to COCO detection JSON')
    parser.add_argument('box_file', help='pseudo-box file (.dapbox dir)')
    parser.add_argument('out', help='output COCO JSON file')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.0,
        help='keep boxes with score >= this (DAP scores are box area / area '
        'of the image\'s first box, in (0, 1] for the kept boxes)')
    parser.add_argument(
        '--skip-failed',
        action='store_true',
        help='leave out images whose box generation failed')
    return parser.parse_args(argv)


def _json_items(items: list) -> str:
    """``items`` as JSON array elements, without the brackets."""
    return json.dumps(items, ensure_ascii=False, allow_nan=False)[1:-1]


def image_chunks(bf: PseudoBoxFile, keep: np.ndarray,
                 bar: ProgressBar) -> Iterator[str]:
    """JSON text of the ``images`` entries, chunk by chunk."""
    reasons = dict(zip(bf.failed_indices.tolist(), bf.failed_reasons.tolist()))
    for start in range(0, bf.num_images, CHUNK):
        idx = np.flatnonzero(keep[start:start + CHUNK]) + start
        sizes = np.asarray(bf.sizes[idx]).tolist()
        items = []
        for i, key, (w, h) in zip(idx.tolist(), bf.keys[idx].tolist(), sizes):
            item = dict(
                id=i + 1, file_name=key.decode('utf-8'), width=w, height=h)
            if i in reasons:
                item['dap_failed'] = reasons[i].decode('utf-8')
            items.append(item)
        bar.update(1)
        if items:
            yield _json_items(items)


def annotation_chunks(bf: PseudoBoxFile, keep: np.ndarray, score_thr: float,
                      bar: ProgressBar, counts: dict) -> Iterator[str]:
    """JSON text of the ``annotations`` entries, chunk by chunk; counts
    them in ``counts['annotations']``."""
    next_id = 1
    for start in range(0, bf.num_images, CHUNK):
        stop = min(start + CHUNK, bf.num_images)
        first, last = int(bf.offsets[start]), int(bf.offsets[stop])
        per_image = np.diff(np.asarray(bf.offsets[start:stop + 1]))
        image = np.repeat(np.arange(start, stop), per_image)
        boxes = np.asarray(bf.boxes[first:last], np.float64)
        scores = np.asarray(bf.scores[first:last])
        mask = (scores >= score_thr) & keep[image]
        image, boxes = image[mask], boxes[mask]
        thresholds = np.asarray(bf.thresholds[first:last])[mask]
        wh = boxes[:, 2:] - boxes[:, :2]
        labels = np.asarray(bf.labels[image]).tolist()
        items = [
            dict(
                id=next_id + j,
                image_id=i + 1,
                category_id=c,
                bbox=[x, y, w, h],
                area=w * h,
                iscrowd=0,
                score=s,
                threshold=None if t != t else t)
            for j, (i, c, (x, y), (w, h), s, t) in enumerate(
                zip(image.tolist(), labels, boxes[:, :2].tolist(), wh.tolist(),
                    scores[mask].tolist(), thresholds.tolist()))
        ]
        next_id += len(items)
        counts['annotations'] = next_id - 1
        bar.update(1)
        if items:
            yield _json_items(items)


def write_array(f, name: str, chunks: Iterator[str]) -> None:
    f.write(f'"{name}": [')
    for n, text in enumerate(chunks):
        f.write((', ' if n else '') + text)
    f.write(']')


def export(box_file: str,
           out: str,
           score_thr: float = 0.0,
           skip_failed: bool = False) -> dict:
    """Write the COCO JSON; returns counts for the log."""
    logger = MMLogger.get_current_instance()
    bf = PseudoBoxFile.open(box_file)
    keep = np.ones(bf.num_images, bool)
    if skip_failed:
        keep[np.asarray(bf.failed_indices)] = False
    names = bf.classes or [f'class_{c}' for c in range(bf.num_classes)]
    categories = [dict(id=c, name=name) for c, name in enumerate(names)]
    info = dict(
        description=f'DAP pseudo boxes exported from {box_file}',
        dap_format=bf.meta['format'],
        dap_version=bf.meta['version'],
        image_list_fingerprint=bf.fingerprint,
        score_thr=score_thr)
    num_chunks = (bf.num_images + CHUNK - 1) // CHUNK
    logger.info(f'exporting {bf} to {out}')
    counts = dict(
        images=int(keep.sum()),
        annotations=0,
        failed=len(bf.failed_indices),
        skipped_failed=int((~keep).sum()))
    bar = ProgressBar(2 * num_chunks)
    tmp = f'{out}.tmp-{os.getpid()}'
    try:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write('{"info": ' + json.dumps(info) + ', ')
            write_array(f, 'images', image_chunks(bf, keep, bar))
            f.write(', ')
            write_array(f, 'annotations',
                        annotation_chunks(bf, keep, score_thr, bar, counts))
            f.write(', "categories": ' +
                    json.dumps(categories, ensure_ascii=False) + '}\n')
        os.replace(tmp, out)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    print()
    logger.info(f'wrote {out}: {counts}')
    return counts


def main(argv: Optional[list] = None) -> None:
    args = parse_args(argv)
    MMLogger.get_instance('dap_export', log_level='INFO')
    export(args.box_file, args.out, args.score_thr, args.skip_failed)


if __name__ == '__main__':
    main()
