"""The demo's embedded benchmark, generated deterministically from a seed.

Two sets of one visual family -- textured shapes on cluttered backgrounds:

* **mini-ImageNet** (pre-training): one labelled object per image at a
  varied position, scale and aspect, plus unlabelled distractor blobs and
  clutter.  Written in mmpretrain's ImageNet layout
  (``train/<class>/<name>.JPEG`` and ``meta/train.txt``); the true boxes are
  kept aside in ``meta/train_boxes.json`` (COCO format) and used only to
  score the pseudo boxes, never to train.
* **mini-VOC** (downstream): several objects per image, VOC XML in a
  ``VOCdevkit/VOC2007`` layout with ``trainval`` and ``test`` lists.  Its
  classes overlap those of mini-ImageNet only partly (some seen, some
  novel shapes), so what transfers is "how to localise objects of this
  family", which is what detection-aware pre-training should add on top of
  a classifier.

Why the clutter: with plain backgrounds any blob detector localises the
object and a CAM is trivially exact.  Textured backgrounds, straight-line
clutter and distractor blobs (irregular polygons with the same textures,
labelled as nothing) make a classifier attend to shape, and make the
detector learn what is an object of the family and what is not.

Every image is drawn from its own generator seeded by
``(seed, set, index)``, so a set is identical across runs and machines and
images can be regenerated independently.
"""
import json
import math
import os
import os.path as osp
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

from ..evaluation import box_iou

#: Every shape kind the renderer knows.
SHAPE_FAMILY = ('ellipse', 'rectangle', 'triangle', 'diamond', 'cross', 'star',
                'ring', 'hexagon', 'arrow', 'semicircle')
#: mini-ImageNet classes (pre-training).
PRETRAIN_CLASSES = ('ellipse', 'rectangle', 'triangle', 'diamond', 'cross',
                    'star', 'ring', 'hexagon')
#: mini-VOC classes (downstream): three seen in pre-training, two novel.
DOWNSTREAM_CLASSES = ('triangle', 'star', 'ring', 'arrow', 'semicircle')

#: Each class's characteristic texture (colours stay random), as real
#: object classes have typical surfaces as well as shapes.  Background
#: patches and distractors use every texture, so texture alone does not
#: find the object; shape and texture together do.
CLASS_TEXTURES = {
    'ellipse': 'stripes',
    'rectangle': 'dots',
    'triangle': 'checker',
    'diamond': 'solid',
    'cross': 'gradient',
    'star': 'stripes',
    'ring': 'checker',
    'hexagon': 'gradient',
    'arrow': 'dots',
    'semicircle': 'solid'
}
_SET_IDS = {
    'imagenet_train': 1,
    'voc_trainval': 2,
    'voc_test': 3,
    'imagenet_val': 4
}
_TEXTURES = ('solid', 'stripes', 'checker', 'dots', 'gradient')


def _rng(seed: int, set_name: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), _SET_IDS[set_name], int(index)])


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=3).astype(np.float32)


def make_texture(rng: np.random.Generator,
                 width: int,
                 height: int,
                 kind: Optional[str] = None) -> np.ndarray:
    """A (height, width, 3) float texture: solid, stripes, checker, ...

    ``kind`` None picks one at random; colours are always random.
    """
    if kind is None:
        kind = _TEXTURES[int(rng.integers(len(_TEXTURES)))]
    c1, c2 = _colour(rng), _colour(rng)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == 'solid':
        mix = np.zeros((height, width), np.float32)
    elif kind == 'stripes':
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(4, 10)
        proj = xx * math.cos(angle) + yy * math.sin(angle)
        mix = ((proj / period) % 1.0 < 0.5).astype(np.float32)
    elif kind == 'checker':
        cell = rng.uniform(3, 8)
        mix = ((np.floor(xx / cell) + np.floor(yy / cell)) %
               2).astype(np.float32)
    elif kind == 'dots':
        cell = rng.uniform(5, 9)
        fx, fy = (xx / cell) % 1.0 - 0.5, (yy / cell) % 1.0 - 0.5
        mix = (fx * fx + fy * fy < 0.08).astype(np.float32)
    else:  # gradient
        angle = rng.uniform(0, 2 * math.pi)
        proj = xx * math.cos(angle) + yy * math.sin(angle)
        span = max(float(proj.max() - proj.min()), 1.0)
        mix = (proj - proj.min()) / span
    tex = c1 * (1 - mix[..., None]) + c2 * mix[..., None]
    return tex + rng.normal(0, 6, size=tex.shape).astype(np.float32)


def make_background(rng: np.random.Generator, width: int,
                    height: int) -> np.ndarray:
    """Clutter without objects: colour field, textured patches, lines."""
    small = rng.uniform(
        30, 225, size=(max(2, height // 24), max(2, width // 24), 3))
    field = Image.fromarray(small.astype(np.uint8)).resize((width, height),
                                                           Image.BILINEAR)
    arr = np.asarray(field, dtype=np.float32).copy()
    # a few large textured patches (rectangles with soft contrast)
    for _ in range(int(rng.integers(1, 4))):
        pw = int(rng.integers(width // 4, width // 1.5))
        ph = int(rng.integers(height // 4, height // 1.5))
        x0 = int(rng.integers(0, width - pw + 1))
        y0 = int(rng.integers(0, height - ph + 1))
        tex = make_texture(rng, pw, ph)
        alpha = rng.uniform(0.25, 0.55)
        region = arr[y0:y0 + ph, x0:x0 + pw]
        arr[y0:y0 + ph, x0:x0 + pw] = (1 - alpha) * region + alpha * tex
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 8))):
        pts = rng.uniform(0, 1, size=4) * [width, height, width, height]
        draw.line(
            pts.tolist(),
            fill=tuple(int(c) for c in _colour(rng)),
            width=int(rng.integers(1, 3)))
    arr = np.asarray(img, dtype=np.float32)
    return arr + rng.normal(0, 8, size=arr.shape).astype(np.float32)


def _polygon(cx: float, cy: float, rx: float, ry: float,
             angles: Sequence[float],
             radii: Sequence[float]) -> List[Tuple[float, float]]:
    return [(cx + rx * r * math.cos(a), cy + ry * r * math.sin(a))
            for a, r in zip(angles, radii)]


def draw_shape_mask(kind: str, box: Sequence[float], width: int,
                    height: int) -> Image.Image:
    """An 'L' mask of one shape of ``kind`` filling ``box`` (x1, y1, x2,
    y2); the shape touches all four sides of the box."""
    mask = Image.new('L', (width, height), 0)
    draw = ImageDraw.Draw(mask)
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    if kind == 'ellipse':
        draw.ellipse(box, fill=255)
    elif kind == 'rectangle':
        draw.rectangle(box, fill=255)
    elif kind == 'triangle':
        draw.polygon([(cx, y1), (x2, y2), (x1, y2)], fill=255)
    elif kind == 'diamond':
        draw.polygon([(cx, y1), (x2, cy), (cx, y2), (x1, cy)], fill=255)
    elif kind == 'cross':
        draw.rectangle((x1 + w / 3, y1, x2 - w / 3, y2), fill=255)
        draw.rectangle((x1, y1 + h / 3, x2, y2 - h / 3), fill=255)
    elif kind == 'star':
        angles = [-math.pi / 2 + i * math.pi / 5 for i in range(10)]
        radii = [1.0 if i % 2 == 0 else 0.45 for i in range(10)]
        pts = np.asarray(_polygon(0, 0, 1, 1, angles, radii))
        lo, hi = pts.min(0), pts.max(0)
        pts = (pts - lo) / (hi - lo) * [w, h] + [x1, y1]
        draw.polygon([tuple(p) for p in pts.tolist()], fill=255)
    elif kind == 'ring':
        draw.ellipse(box, fill=255)
        draw.ellipse(
            (x1 + w * 0.28, y1 + h * 0.28, x2 - w * 0.28, y2 - h * 0.28),
            fill=0)
    elif kind == 'hexagon':
        angles = [i * math.pi / 3 for i in range(6)]
        draw.polygon(_polygon(cx, cy, w / 2, h / 2, angles, [1] * 6), fill=255)
    elif kind == 'arrow':
        draw.polygon([(x1, y1 + h * 0.35), (x1 + w * 0.55, y1 + h * 0.35),
                      (x1 + w * 0.55, y1), (x2, cy), (x1 + w * 0.55, y2),
                      (x1 + w * 0.55, y1 + h * 0.65), (x1, y1 + h * 0.65)],
                     fill=255)
    elif kind == 'semicircle':
        draw.pieslice((x1, y1, x2, y1 + 2 * h), 180, 360, fill=255)
    else:
        raise ValueError(f'unknown shape {kind!r}; known: {SHAPE_FAMILY}')
    return mask


def _distractor_mask(rng: np.random.Generator, box: Sequence[float],
                     width: int, height: int) -> Image.Image:
    """An irregular blob (random star-shaped polygon): no class."""
    x1, y1, x2, y2 = box
    n = int(rng.integers(5, 9))
    angles = np.sort(rng.uniform(0, 2 * math.pi, size=n))
    radii = rng.uniform(0.35, 1.0, size=n)
    pts = _polygon((x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2,
                   angles, radii)
    mask = Image.new('L', (width, height), 0)
    ImageDraw.Draw(mask).polygon(pts, fill=255)
    return mask


def _paste(canvas: np.ndarray,
           mask: Image.Image,
           rng: np.random.Generator,
           texture: Optional[str] = None) -> None:
    """Fill ``mask`` on ``canvas`` with a texture (in place)."""
    height, width = canvas.shape[:2]
    m = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
    tex = make_texture(rng, width, height, texture)
    canvas[...] = canvas * (1 - m) + tex * m


def _sample_box(rng: np.random.Generator, width: int, height: int,
                size_range: Tuple[float, float],
                aspect_range: Tuple[float, float]) -> List[float]:
    short = min(width, height)
    side = rng.uniform(*size_range) * short
    aspect = math.exp(
        rng.uniform(math.log(aspect_range[0]), math.log(aspect_range[1])))
    bw = min(side * math.sqrt(aspect), 0.95 * width)
    bh = min(side / math.sqrt(aspect), 0.95 * height)
    x1 = rng.uniform(0, width - bw)
    y1 = rng.uniform(0, height - bh)
    return [float(x1), float(y1), float(x1 + bw), float(y1 + bh)]


def render_scene(rng: np.random.Generator,
                 width: int,
                 height: int,
                 kinds: Sequence[str],
                 size_range: Tuple[float, float],
                 aspect_range: Tuple[float, float] = (0.6, 1.6),
                 num_distractors: int = 0,
                 distractor_size: Tuple[float, float] = (0.12, 0.3),
                 max_iou: float = 0.15) -> Tuple[Image.Image, np.ndarray]:
    """Draw the objects ``kinds`` (and distractors) on clutter.

    Returns the RGB image and the (N, 4) float32 xyxy boxes of the objects
    (pixel edges, inside the image).  Objects overlap by at most
    ``max_iou`` so that each true box is mostly visible.
    """
    canvas = make_background(rng, width, height)
    placed: List[List[float]] = []
    # distractors first: objects are drawn over them
    for _ in range(num_distractors):
        box = _sample_box(rng, width, height, distractor_size, (0.5, 2.0))
        _paste(canvas, _distractor_mask(rng, box, width, height), rng)
    for kind in kinds:
        for _ in range(50):
            box = _sample_box(rng, width, height, size_range, aspect_range)
            if all(box_iou(box, other)[0, 0] <= max_iou for other in placed):
                break
        placed.append(box)
        _paste(canvas, draw_shape_mask(kind, box, width, height), rng,
               CLASS_TEXTURES.get(kind))
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    boxes = np.asarray(placed, np.float32).reshape(-1, 4)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    return img, boxes


def _write_atomic(path: str, text: str) -> None:
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def _write_classification_split(root: str, split: str, per_class: int,
                                classes: Sequence[str], size_range: Tuple[int,
                                                                          int],
                                object_size: Tuple[float, float],
                                seed: int) -> Tuple[List[str], dict]:
    lines, images, annotations = [], [], []
    for index in range(per_class * len(classes)):
        label = index % len(classes)
        kind = classes[label]
        rng = _rng(seed, f'imagenet_{split}', index)
        width = int(rng.integers(size_range[0], size_range[1] + 1))
        height = int(rng.integers(size_range[0], size_range[1] + 1))
        img, boxes = render_scene(
            rng,
            width,
            height, [kind],
            object_size,
            num_distractors=int(rng.integers(1, 3)))
        key = f'{kind}/{kind}_{split}_{index // len(classes):05d}.JPEG'
        path = osp.join(root, split, key)
        os.makedirs(osp.dirname(path), exist_ok=True)
        img.save(path, format='JPEG', quality=90)
        lines.append(f'{key} {label}')
        images.append(
            dict(id=index + 1, file_name=key, width=width, height=height))
        x1, y1, x2, y2 = boxes[0].tolist()
        annotations.append(
            dict(
                id=index + 1,
                image_id=index + 1,
                category_id=label + 1,
                bbox=[x1, y1, x2 - x1, y2 - y1],
                area=(x2 - x1) * (y2 - y1),
                iscrowd=0))
    categories = [dict(id=k + 1, name=c) for k, c in enumerate(classes)]
    return lines, dict(
        images=images, annotations=annotations, categories=categories)


def make_mini_imagenet(root: str,
                       images_per_class: int = 120,
                       val_per_class: int = 20,
                       classes: Sequence[str] = PRETRAIN_CLASSES,
                       size_range: Tuple[int, int] = (96, 128),
                       object_size: Tuple[float, float] = (0.3, 0.75),
                       seed: int = 0) -> Dict[str, str]:
    """Write the classification set in mmpretrain's ImageNet layout.

    ``root/{train,val}/<class>/<class>_<split>_<i>.JPEG``,
    ``root/meta/{train,val}.txt`` (``<class>/<file> <label>`` lines,
    balanced classes, interleaved) and ``root/meta/{train,val}_boxes.json``:
    the hidden true boxes as COCO json whose ``file_name`` is the list key
    (category ids = class index + 1).  Returns the paths written.
    """
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    out = {}
    for split, per_class in (('train', images_per_class), ('val',
                                                           val_per_class)):
        lines, coco = _write_classification_split(root, split, per_class,
                                                  classes, size_range,
                                                  object_size, seed)
        listing = osp.join(root, 'meta', f'{split}.txt')
        _write_atomic(listing, '\n'.join(lines) + '\n')
        boxes_json = osp.join(root, 'meta', f'{split}_boxes.json')
        _write_atomic(boxes_json, json.dumps(coco))
        out[f'{split}_list'] = listing
        out[f'{split}_true_boxes'] = boxes_json
    _write_atomic(
        osp.join(root, 'meta', 'classes.txt'), '\n'.join(classes) + '\n')
    return out


def _voc_xml(name: str, width: int, height: int, boxes: np.ndarray,
             kinds: Sequence[str]) -> str:
    ann = ET.Element('annotation')
    ET.SubElement(ann, 'folder').text = 'VOC2007'
    ET.SubElement(ann, 'filename').text = f'{name}.jpg'
    size = ET.SubElement(ann, 'size')
    for tag, value in (('width', width), ('height', height), ('depth', 3)):
        ET.SubElement(size, tag).text = str(value)
    for box, kind in zip(boxes.tolist(), kinds):
        obj = ET.SubElement(ann, 'object')
        ET.SubElement(obj, 'name').text = kind
        ET.SubElement(obj, 'pose').text = 'Unspecified'
        ET.SubElement(obj, 'truncated').text = '0'
        ET.SubElement(obj, 'difficult').text = '0'
        bnd = ET.SubElement(obj, 'bndbox')
        # VOC pixel indices are 1-based and inclusive; mmdet subtracts 1
        x1, y1, x2, y2 = box
        for tag, value in (('xmin', x1 + 1), ('ymin', y1 + 1), ('xmax', x2),
                           ('ymax', y2)):
            ET.SubElement(bnd, tag).text = str(int(round(value)))
    return ET.tostring(ann, encoding='unicode')


def make_mini_voc(root: str,
                  num_trainval: int = 200,
                  num_test: int = 100,
                  classes: Sequence[str] = DOWNSTREAM_CLASSES,
                  image_size: Tuple[int, int] = (128, 128),
                  objects_per_image: Tuple[int, int] = (2, 4),
                  object_size: Tuple[float, float] = (0.2, 0.45),
                  seed: int = 0) -> Dict[str, str]:
    """Write the downstream detection set in a VOCdevkit layout.

    ``root/VOCdevkit/VOC2007/{JPEGImages,Annotations}`` and
    ``ImageSets/Main/{trainval,test}.txt``.  Classes are drawn round-robin
    over a per-image random offset so that every class has about the same
    number of objects.  Returns the year folder and the list paths.
    """
    year = osp.join(root, 'VOCdevkit', 'VOC2007')
    for sub in ('JPEGImages', 'Annotations', osp.join('ImageSets', 'Main')):
        os.makedirs(osp.join(year, sub), exist_ok=True)
    width, height = image_size
    out = dict(year_dir=year)
    counter = 0
    for split, count in (('trainval', num_trainval), ('test', num_test)):
        names = []
        set_name = f'voc_{split}'
        for index in range(count):
            rng = _rng(seed, set_name, index)
            n = int(
                rng.integers(objects_per_image[0], objects_per_image[1] + 1))
            kinds = [classes[(counter + j) % len(classes)] for j in range(n)]
            counter += n
            order = rng.permutation(n)
            kinds = [kinds[j] for j in order]
            img, boxes = render_scene(
                rng,
                width,
                height,
                kinds,
                object_size,
                num_distractors=int(rng.integers(0, 3)),
                distractor_size=(0.12, 0.25))
            name = f'{split}_{index:05d}'
            img.save(
                osp.join(year, 'JPEGImages', f'{name}.jpg'),
                format='JPEG',
                quality=90)
            _write_atomic(
                osp.join(year, 'Annotations', f'{name}.xml'),
                _voc_xml(name, width, height, boxes, kinds))
            names.append(name)
        path = osp.join(year, 'ImageSets', 'Main', f'{split}.txt')
        _write_atomic(path, '\n'.join(names) + '\n')
        out[split] = path
    return out


def read_voc_boxes(xml_path: str) -> Tuple[np.ndarray, List[str]]:
    """(boxes xyxy in 0-based pixel edges, class names) of a VOC xml."""
    root = ET.parse(xml_path).getroot()
    boxes, names = [], []
    for obj in root.findall('object'):
        bnd = obj.find('bndbox')
        x1, y1, x2, y2 = (
            float(bnd.find(t).text) for t in ('xmin', 'ymin', 'xmax', 'ymax'))
        boxes.append([x1 - 1, y1 - 1, x2, y2])
        names.append(obj.find('name').text)
    return np.asarray(boxes, np.float32).reshape(-1, 4), names


def make_demo_data(root: str,
                   seed: int = 0,
                   images_per_class: int = 120,
                   val_per_class: int = 20,
                   num_trainval: int = 200,
                   num_test: int = 100) -> Dict[str, str]:
    """Both sets under ``root`` (``mini_imagenet/`` and ``mini_voc/``)."""
    out = make_mini_imagenet(
        osp.join(root, 'mini_imagenet'),
        images_per_class=images_per_class,
        val_per_class=val_per_class,
        seed=seed)
    out.update(
        make_mini_voc(
            osp.join(root, 'mini_voc'),
            num_trainval=num_trainval,
            num_test=num_test,
            seed=seed))
    return out
