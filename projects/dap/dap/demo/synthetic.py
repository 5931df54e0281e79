"""Small generated COCO-style shape sets for tests and the quick-start
config (nothing is downloaded; the demo's own benchmark is :mod:`.benchmark`).

Images are textured backgrounds with coloured shapes; each shape's class is
its kind (ellipse, rectangle, triangle, ...), so localisation is learnable.
Every generator is deterministic for its ``seed``.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ('ellipse', 'rectangle', 'triangle', 'diamond', 'cross')


def _background(rng: np.random.Generator, width: int,
                height: int) -> np.ndarray:
    """Smooth random colour field plus noise: clutter without objects."""
    grid = (max(2, height // 16), max(2, width // 16), 3)
    small = rng.uniform(40, 215, size=grid)
    img = Image.fromarray(small.astype(np.uint8))
    img = img.resize((width, height), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32)
    arr += rng.normal(0, 12, size=arr.shape)
    return np.clip(arr, 0, 255).astype(np.uint8)


def draw_shape(draw: ImageDraw.ImageDraw, kind: str, box: Sequence[float],
               colour: Tuple[int, int, int]) -> None:
    """Draw one object of ``kind`` filling ``box`` (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    if kind == 'ellipse':
        draw.ellipse(box, fill=colour)
    elif kind == 'rectangle':
        draw.rectangle(box, fill=colour)
    elif kind == 'triangle':
        draw.polygon([(cx, y1), (x2, y2), (x1, y2)], fill=colour)
    elif kind == 'diamond':
        draw.polygon([(cx, y1), (x2, cy), (cx, y2), (x1, cy)], fill=colour)
    elif kind == 'cross':
        w, h = (x2 - x1) / 3, (y2 - y1) / 3
        draw.rectangle((x1 + w, y1, x2 - w, y2), fill=colour)
        draw.rectangle((x1, y1 + h, x2, y2 - h), fill=colour)
    else:
        raise ValueError(f'unknown shape {kind!r}')


def render_image(rng: np.random.Generator,
                 width: int,
                 height: int,
                 num_objects: int,
                 classes: Sequence[str],
                 min_size: float = 0.2,
                 max_size: float = 0.5
                 ) -> Tuple[Image.Image, np.ndarray, np.ndarray]:
    """An image with ``num_objects`` shapes; returns (image, boxes, labels)."""
    img = Image.fromarray(_background(rng, width, height))
    draw = ImageDraw.Draw(img)
    boxes, labels = [], []
    short = min(width, height)
    for _ in range(num_objects):
        label = int(rng.integers(len(classes)))
        bw = rng.uniform(min_size, max_size) * short
        bh = bw * rng.uniform(0.6, 1.6)
        bh = min(bh, 0.9 * height)
        x1 = rng.uniform(0, width - bw)
        y1 = rng.uniform(0, height - bh)
        box = [x1, y1, x1 + bw, y1 + bh]
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        draw_shape(draw, classes[label], box, colour)
        boxes.append(box)
        labels.append(label)
    return (img, np.asarray(boxes, np.float32).reshape(-1, 4),
            np.asarray(labels, np.int64))


def make_coco_detection_set(root: str,
                            split: str = 'train',
                            num_images: int = 8,
                            classes: Sequence[str] = SHAPES[:3],
                            image_size: Tuple[int, int] = (128, 96),
                            objects_per_image: Tuple[int, int] = (1, 3),
                            seed: int = 0) -> str:
    """Write ``root/{split}/*.jpg`` and ``root/annotations/{split}.json``.

    Returns the annotation file path.  Category ids start at 1 as in COCO.
    """
    rng = np.random.default_rng(seed)
    img_dir = osp.join(root, split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    images: List[Dict] = []
    annotations: List[Dict] = []
    for i in range(num_images):
        width, height = image_size
        n = int(rng.integers(objects_per_image[0], objects_per_image[1] + 1))
        img, boxes, labels = render_image(rng, width, height, n, classes)
        name = f'{i:06d}.jpg'
        img.save(osp.join(img_dir, name), quality=92)
        images.append(
            dict(id=i + 1, file_name=name, width=width, height=height))
        for box, label in zip(boxes.tolist(), labels.tolist()):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=i + 1,
                    category_id=label + 1,
                    bbox=[box[0], box[1], w, h],
                    area=w * h,
                    iscrowd=0))
    categories = [dict(id=k + 1, name=name) for k, name in enumerate(classes)]
    ann_file = osp.join(root, 'annotations', f'{split}.json')
    with open(ann_file, 'w') as f:
        json.dump(
            dict(
                images=images, annotations=annotations, categories=categories),
            f)
    return ann_file
