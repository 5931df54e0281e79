"""Look at pseudo boxes: images with boxes (and CAM heat maps), statistics.

::

    python tools/analysis_tools/browse_pseudo_boxes.py BOXFILE \\
        --data-root data/imagenet/train --out-dir work_dirs/browse \\
        [--num 20] [--random --seed 0] \\
        [--config CAM_BOXES_CONFIG --checkpoint CKPT]

Writes one PNG per image (``{index:08d}_{key}.png``: the image, the boxes
with their scores and CAM thresholds, and with ``--config/--checkpoint``
the fused GT-class CAM as a heat map), ``box_stats.png`` (boxes per image,
box size relative to the image, aspect ratio; histograms over the whole
file, computed in chunks) and ``box_stats.json``.
"""
import argparse
import json
import os
import os.path as osp
import re
import sys
from typing import Dict, List, Optional

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import patheffects  # noqa: E402

from projects.dap.dap.datasets import BoxFileError, PseudoBoxFile  # noqa

_CHUNK = 1 << 20
SIZE_EDGES = np.linspace(0.0, 1.0, 41)
ASPECT_EDGES = np.linspace(-4.0, 4.0, 33)
# bright colours that stay visible over the jet heat map (black outline)
BOX_COLORS = ('#ffffff', '#ff40ff', '#40ff40', '#ffff40', '#40ffff', '#ff8040',
              '#c0c0ff', '#ff4040')


def box_statistics(box_file: PseudoBoxFile) -> Dict[str, np.ndarray]:
    """Histograms over all images (chunked: a 14M-image file is fine).

    ``per_image``: counts of images with k boxes (k = 0..max); ``size``:
    sqrt(box area / image area) over ``SIZE_EDGES``; ``aspect``:
    log2(width / height) over ``ASPECT_EDGES`` (clipped to the edges).
    """
    n = box_file.num_images
    counts = np.diff(np.asarray(box_file.offsets, np.int64))
    ok = np.asarray(box_file.status) == 0
    per_image = np.bincount(counts[ok]) if ok.any() else np.zeros(1, int)
    size_hist = np.zeros(len(SIZE_EDGES) - 1, np.int64)
    aspect_hist = np.zeros(len(ASPECT_EDGES) - 1, np.int64)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        b0, b1 = int(box_file.offsets[start]), int(box_file.offsets[stop])
        boxes = np.asarray(box_file.boxes[b0:b1], np.float64)
        sizes = np.asarray(box_file.sizes[start:stop], np.float64)
        img_of_box = np.repeat(np.arange(stop - start), counts[start:stop])
        w = boxes[:, 2] - boxes[:, 0]
        h = boxes[:, 3] - boxes[:, 1]
        area = sizes[img_of_box, 0] * sizes[img_of_box, 1]
        rel = np.sqrt(np.clip(w * h / np.maximum(area, 1), 0, 1))
        size_hist += np.histogram(rel, SIZE_EDGES)[0]
        with np.errstate(divide='ignore', invalid='ignore'):
            aspect = np.log2(np.maximum(w, 1e-6) / np.maximum(h, 1e-6))
        aspect = np.clip(aspect, ASPECT_EDGES[0], ASPECT_EDGES[-1])
        aspect_hist += np.histogram(aspect, ASPECT_EDGES)[0]
    return {'per_image': per_image, 'size': size_hist, 'aspect': aspect_hist}


def plot_statistics(stats: Dict[str, np.ndarray], path: str,
                    title: str) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    k = np.arange(len(stats['per_image']))
    axes[0].bar(k, stats['per_image'], color='tab:blue')
    axes[0].set_xlabel('boxes per image')
    axes[0].set_ylabel('images')
    axes[0].set_xticks(k)
    for ax, name, edges, label in ((axes[1], 'size', SIZE_EDGES,
                                    'sqrt(box area / image area)'),
                                   (axes[2], 'aspect', ASPECT_EDGES,
                                    'log2(box width / height)')):
        ax.bar(
            edges[:-1],
            stats[name],
            width=np.diff(edges),
            align='edge',
            color='tab:orange',
            edgecolor='white')
        ax.set_xlabel(label)
        ax.set_ylabel('boxes')
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _safe_name(key: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', key)[-80:]


def cam_on_image(cam: np.ndarray, width: int, height: int, stride: int,
                 fusion_scale: int) -> np.ndarray:
    """The fused CAM as an (height, width) map over the original image.

    CAM cell (i, j) covers original pixels [c*j, c*(j+1)) x [c*i, ...),
    c = stride * min(W, H) / fusion_scale (reference step 9), nearest.
    """
    cell = stride * min(width, height) / fusion_scale
    ys = np.minimum((np.arange(height) + 0.5) / cell, cam.shape[0] - 1)
    xs = np.minimum((np.arange(width) + 0.5) / cell, cam.shape[1] - 1)
    return cam[ys.astype(np.int64)[:, None], xs.astype(np.int64)[None, :]]


def draw_image(img: np.ndarray,
               boxes: np.ndarray,
               scores: np.ndarray,
               thresholds: np.ndarray,
               title: str,
               path: str,
               cam: Optional[np.ndarray] = None) -> None:
    h, w = img.shape[:2]
    fig = plt.figure(figsize=(8, 8 * h / max(w, 1) + 0.6))
    ax = fig.add_axes([0, 0, 1, 1 - 0.6 / (8 * h / max(w, 1) + 0.6)])
    ax.imshow(img)
    if cam is not None:
        ax.imshow(cam, cmap='jet', alpha=0.45, vmin=0, vmax=1)
    outline = [patheffects.withStroke(linewidth=4.5, foreground='black')]
    for i, (box, score, thr) in enumerate(zip(boxes, scores, thresholds)):
        x1, y1, x2, y2 = (float(v) for v in box)
        color = BOX_COLORS[i % len(BOX_COLORS)]
        rect = plt.Rectangle((x1, y1),
                             x2 - x1,
                             y2 - y1,
                             fill=False,
                             edgecolor=color,
                             linewidth=2.5)
        rect.set_path_effects(outline)
        ax.add_patch(rect)
        text = f'{score:.2f}' + (''
                                 if np.isnan(thr) or thr < 0 else f' @{thr:g}')
        ax.text(
            x1 + 2,
            y1 + 2,
            text,
            color='black',
            fontsize=9,
            va='top',
            bbox=dict(facecolor=color, alpha=0.85, pad=1, edgecolor='none'))
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.axis('off')
    fig.suptitle(title, fontsize=10, y=0.995, va='top')
    fig.savefig(path, dpi=80)
    plt.close(fig)


class _CAMSource:
    """Builds the generation model from a config to draw its CAMs."""

    def __init__(self,
                 config: str,
                 checkpoint: str,
                 cfg_options: Optional[dict] = None) -> None:
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from mmengine.utils import import_modules_from_strings
        cfg = Config.fromfile(config)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        if cfg.get('custom_imports'):
            import_modules_from_strings(**cfg.custom_imports)
        init_default_scope(cfg.get('default_scope', 'mmpretrain'))
        from mmpretrain.registry import MODELS
        cfg.model.checkpoint = checkpoint
        self.model = MODELS.build(cfg.model).eval()
        pipeline = cfg.test_dataloader.dataset.get('pipeline', [])
        load = [t for t in pipeline if t.get('type') == 'LoadImageForCAM']
        self.exif = bool(load[0].get('exif_orientation', True)) if load \
            else True

    def cam(self, img: np.ndarray, label: int) -> np.ndarray:
        import torch
        tensor = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        cam = self.model.compute_cams([tensor], [label])[0]
        h, w = img.shape[:2]
        return cam_on_image(cam.float().cpu().numpy(), w, h, self.model.stride,
                            self.model.fusion_scale)


def _pick(box_file: PseudoBoxFile, num: int, random: bool,
          seed: int) -> List[int]:
    ok = np.flatnonzero(np.asarray(box_file.status) == 0)
    if random:
        rng = np.random.default_rng(seed)
        return sorted(
            rng.choice(ok, min(num, len(ok)), replace=False).tolist())
    return ok[:num].tolist()


def parse_args(argv=None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Browse pseudo boxes')
    parser.add_argument('box_file', help='a .dapbox pseudo-box file')
    parser.add_argument(
        '--data-root',
        required=True,
        help='folder the box-file keys are relative to')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument(
        '--num', type=int, default=20, help='number of images to draw')
    parser.add_argument(
        '--random',
        action='store_true',
        help='draw a random sample instead of the first')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--config', help='cam_boxes config (heat maps)')
    parser.add_argument('--checkpoint', help='classifier (heat maps)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    if bool(args.config) != bool(args.checkpoint):
        parser.error('--config and --checkpoint go together')
    return args


def main(argv=None) -> int:
    from projects.dap.dap.datasets.image_decoding import decode_image
    args = parse_args(argv)
    try:
        box_file = PseudoBoxFile.open(args.box_file)
    except BoxFileError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    os.makedirs(args.out_dir, exist_ok=True)
    cams = _CAMSource(args.config, args.checkpoint, args.cfg_options) \
        if args.config else None
    classes = box_file.classes
    written = []
    for i in _pick(box_file, args.num, args.random, args.seed):
        key = box_file.key(i)
        path = osp.join(args.data_root, key)
        try:
            with open(path, 'rb') as f:
                img, (h, w) = decode_image(
                    f.read(), exif_orientation=cams.exif if cams else True)
        except Exception as e:  # noqa: BLE001 - report and go on
            print(f'skipping {key}: {type(e).__name__}: {e}', file=sys.stderr)
            continue
        if (w, h) != tuple(int(v) for v in box_file.sizes[i]) or \
                img.shape[:2] != (h, w):
            print(
                f'skipping {key}: image is {w}x{h}, the box file says '
                f'{tuple(box_file.sizes[i])}',
                file=sys.stderr)
            continue
        boxes, scores, thresholds = box_file.boxes_of(i)
        label = int(box_file.labels[i])
        name = classes[label] if classes else str(label)
        cam = cams.cam(img, label) if cams else None
        out = osp.join(args.out_dir, f'{i:08d}_{_safe_name(key)}.png')
        draw_image(
            img, boxes, scores, thresholds,
            f'{key}  class {label} ({name[:40]})  '
            f'{len(boxes)} boxes', out, cam)
        written.append(out)
    stats = box_statistics(box_file)
    plot_statistics(
        stats, osp.join(args.out_dir, 'box_stats.png'),
        f'{osp.basename(str(box_file.path))}: '
        f'{box_file.num_images} images, {box_file.num_boxes} '
        f'boxes, {len(box_file.failed_indices)} failed')
    ok = int((np.asarray(box_file.status) == 0).sum())
    summary = {
        'num_images': box_file.num_images,
        'num_failed': int(len(box_file.failed_indices)),
        'num_boxes': box_file.num_boxes,
        'boxes_per_image': box_file.num_boxes / ok if ok else 0.0,
        'images_with_k_boxes': stats['per_image'].tolist(),
        'size_edges': SIZE_EDGES.tolist(),
        'size_hist': stats['size'].tolist(),
        'aspect_log2_edges': ASPECT_EDGES.tolist(),
        'aspect_hist': stats['aspect'].tolist(),
        'drawn': [osp.basename(p) for p in written],
    }
    with open(osp.join(args.out_dir, 'box_stats.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print(f'wrote {len(written)} images, box_stats.png and box_stats.json '
          f'to {args.out_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
