"""The pseudo-box file format: names, versions, layout and value rules.

Layout, format ``dap-pseudo-boxes`` version 1 (suggested suffix
``.dapbox``; N images, M boxes, F failed images)::

    boxes.dapbox/
      meta.json            see below
      image_keys.npy       |S<w> (N,)   utf-8 path relative to the data
                                        prefix, exactly as in the image list
      image_sizes.npy      <i4 (N, 2)   (width, height) of the original image
      image_labels.npy     <i8 (N,)     0-based class index
      box_offsets.npy      <i8 (N+1,)   CSR: boxes of image i are rows
                                        offsets[i]:offsets[i+1]
      image_status.npy     |u1 (N,)     0 = ok, 1 = failed (no boxes)
      boxes.npy            <f4 (M, 4)   x1, y1, x2, y2 in original pixels
      scores.npy           <f4 (M,)     area / area of the image's first box
      box_thresholds.npy   <f4 (M,)     CAM threshold that made the box
                                        (NaN: unknown, e.g. imported boxes)
      failed_indices.npy   <i8 (F,)     sorted indices with status 1
      failed_reasons.npy   |S<w> (F,)   utf-8 reason of each failure

``meta.json`` (written with sorted keys, no timestamps, so that the same
boxes give a byte-identical file)::

    {"format": "dap-pseudo-boxes", "version": 1,
     "num_images": N, "num_boxes": M, "num_failed": F,
     "num_classes": C, "classes": [names] or null,
     "generation_config": {...}, "checkpoint_sha256": hex or null,
     "image_list_fingerprint": image_list_fingerprint(keys, labels),
     "image_keys_fingerprint": image_list_fingerprint(keys), ...}

Failures are stored as the two ``failed_*`` arrays, not as a list inside
``meta.json``: a failed run can list millions of images and ``meta.json``
must stay small because every open reads it.
"""
import hashlib
import json
import os
from typing import Any, List, Optional, Sequence, Union

import numpy as np

FORMAT_NAME = 'dap-pseudo-boxes'
FORMAT_VERSION = 1

PathLike = Union[str, os.PathLike]

META_FILE = 'meta.json'
# attribute -> (file name, dtype (None: any fixed-width bytes), shape)
# shape symbols: N images, M boxes, F failed images.
MEMBERS = {
    'keys': ('image_keys.npy', None, ('N', )),
    'sizes': ('image_sizes.npy', np.dtype('<i4'), ('N', 2)),
    'labels': ('image_labels.npy', np.dtype('<i8'), ('N', )),
    'offsets': ('box_offsets.npy', np.dtype('<i8'), ('N+1', )),
    'status': ('image_status.npy', np.dtype('u1'), ('N', )),
    'boxes': ('boxes.npy', np.dtype('<f4'), ('M', 4)),
    'scores': ('scores.npy', np.dtype('<f4'), ('M', )),
    'thresholds': ('box_thresholds.npy', np.dtype('<f4'), ('M', )),
    'failed_indices': ('failed_indices.npy', np.dtype('<i8'), ('F', )),
    'failed_reasons': ('failed_reasons.npy', None, ('F', )),
}
STATUS_OK = 0
STATUS_FAILED = 1
MAX_REASON_BYTES = 1024
CHUNK_ROWS = 1 << 20  # rows per chunk when scanning big arrays


class BoxFileError(ValueError):
    """A pseudo-box file, shard or its input is malformed or mismatched."""


# --------------------------------------------------------------------------
# the image-list fingerprint


def key_bytes(chunk: Any) -> List[bytes]:
    """utf-8 encoded keys of a chunk of str / bytes / numpy strings."""
    if isinstance(chunk, np.ndarray) and chunk.dtype.kind == 'S':
        return chunk.tolist()
    if isinstance(chunk, np.ndarray):
        chunk = chunk.tolist()
    return [
        k if isinstance(k, bytes) else str(k).encode('utf-8') for k in chunk
    ]


def check_key_block(block: bytes, count: int, first: int) -> None:
    """Keys may not hold newline or NUL: both would make keys ambiguous."""
    if block.count(b'\n') != count or b'\0' in block:
        raise BoxFileError(
            f'image keys {first}..{first + count - 1} include a key with a '
            'newline or NUL character; keys must be plain relative paths')


class ImageListHasher:
    """:func:`image_list_fingerprint` fed in blocks, so a 14M-image list is
    never held in memory: all key blocks first, then (optionally) all label
    blocks.  ``num_images`` is part of the digest header, so it must be
    known up front; :meth:`hexdigest` checks the counts.
    """

    def __init__(self, num_images: int, with_labels: bool = True) -> None:
        self.num_images = int(num_images)
        self.with_labels = bool(with_labels)
        self.num_keys = 0
        self.num_labels = 0
        self._digest = hashlib.sha256(b'dap-image-list/1 n=%d labels=%d\n' %
                                      (self.num_images, self.with_labels))

    def update_keys(self, block: bytes, count: int) -> None:
        """``count`` utf-8 keys, each followed by ``b'\\n'``."""
        if self.num_labels:
            raise BoxFileError('all keys must come before the labels')
        check_key_block(block, count, self.num_keys)
        self._digest.update(block)
        self.num_keys += count

    def update_labels(self, labels: Any) -> None:
        if not self.with_labels:
            raise BoxFileError('this fingerprint has no labels')
        chunk = np.asarray(labels).reshape(-1)
        if chunk.size and chunk.dtype.kind not in 'iu':
            raise BoxFileError(
                f'labels must be integers, got dtype {chunk.dtype}')
        self._digest.update(chunk.astype('<i8').tobytes())
        self.num_labels += chunk.size

    def hexdigest(self) -> str:
        expected = (self.num_images,
                    self.num_images if self.with_labels else 0)
        if (self.num_keys, self.num_labels) != expected:
            raise BoxFileError(
                f'image list fingerprint of {self.num_images} images got '
                f'{self.num_keys} keys and {self.num_labels} labels')
        return self._digest.hexdigest()


def image_list_fingerprint(keys: Sequence[str],
                           labels: Optional[Sequence[int]] = None) -> str:
    """sha256 hex of the ordered image keys (and labels).

    Defined as sha256 over ``b'dap-image-list/1 n=<N> labels=<0|1>\\n'``,
    then every utf-8 key followed by ``b'\\n'``, then, with labels, the
    labels as little-endian int64. Keys are hashed in chunks, so 14M keys
    cost a few seconds and little memory. ``keys`` may be a list of str or
    a numpy ``S``/``U`` array (e.g. :attr:`PseudoBoxFile.keys`).
    :class:`ImageListHasher` computes it from blocks.
    """
    n = len(keys)
    if labels is not None and len(labels) != n:
        raise BoxFileError(f'{n} keys but {len(labels)} labels')
    hasher = ImageListHasher(n, with_labels=labels is not None)
    for start in range(0, n, CHUNK_ROWS):
        block = b'\n'.join(key_bytes(keys[start:start + CHUNK_ROWS])) + b'\n'
        hasher.update_keys(block, min(CHUNK_ROWS, n - start))
    if labels is not None:
        for start in range(0, n, CHUNK_ROWS):
            hasher.update_labels(np.asarray(labels[start:start + CHUNK_ROWS]))
    return hasher.hexdigest()


def file_sha256(path: PathLike) -> str:
    """sha256 hex of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------
# JSON metadata


def canonical_json(obj: Any, what: str) -> str:
    """Deterministic JSON text (sorted keys, strict, trailing newline)."""
    try:
        return json.dumps(
            obj, sort_keys=True, indent=2, ensure_ascii=False,
            allow_nan=False) + '\n'
    except (TypeError, ValueError) as e:
        raise BoxFileError(f'{what} is not plain JSON data: {e}') from e


def describe_changes(old: Any,
                     new: Any,
                     path: str = '',
                     depth: Optional[int] = None) -> List[str]:
    """``'path: existing X, new Y'`` for every differing value, descending
    into dicts on both sides (at most ``depth`` levels; None: to leaves),
    so a refused run names what changed instead of "meta differs"."""
    if isinstance(old, dict) and isinstance(new, dict) and depth != 0:
        out = []
        for k in sorted(set(old) | set(new)):
            out += describe_changes(
                old.get(k), new.get(k), f'{path}.{k}' if path else str(k),
                None if depth is None else depth - 1)
        return out
    if old == new:
        return []

    def short(v: Any) -> str:
        text = json.dumps(v, sort_keys=True)
        return text if len(text) <= 120 else text[:117] + '...'

    return [f'{path}: existing {short(old)}, new {short(new)}']


# --------------------------------------------------------------------------
# value rules (checked on writing and by PseudoBoxFile.verify)


def check_values(sizes: np.ndarray, labels: np.ndarray, offsets: np.ndarray,
                 status: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
                 thresholds: np.ndarray, num_classes: int, where: str) -> None:
    """Raise :class:`BoxFileError` at the first value the format forbids."""
    ok = np.asarray(status) == STATUS_OK
    if (~ok & (np.asarray(status) != STATUS_FAILED)).any():
        raise BoxFileError(f'{where}: status must be 0 (ok) or 1 (failed)')
    labels = np.asarray(labels)
    low = np.where(ok, 0, -1)
    bad = np.flatnonzero((labels < low) | (labels >= num_classes))
    if bad.size:
        raise BoxFileError(
            f'{where}: image {bad[0]} has label {labels[bad[0]]}, outside '
            f'[0, num_classes={num_classes}) (failed images may use -1)')
    sizes = np.asarray(sizes)
    bad = np.flatnonzero((sizes <= np.where(ok, 0, -1)[:, None]).any(1))
    if bad.size:
        raise BoxFileError(
            f'{where}: image {bad[0]} has size (w, h)={tuple(sizes[bad[0]])};'
            ' ok images need positive sizes (failed ones may use 0)')
    counts = np.diff(np.asarray(offsets))
    bad = np.flatnonzero(~ok & (counts != 0))
    if bad.size:
        raise BoxFileError(f'{where}: failed image {bad[0]} has boxes')
    for start in range(0, len(boxes), CHUNK_ROWS):
        b = np.asarray(boxes[start:start + CHUNK_ROWS])
        s = np.asarray(scores[start:start + CHUNK_ROWS])
        t = np.asarray(thresholds[start:start + CHUNK_ROWS])
        bad_rows = ~np.isfinite(b).all(1) | ~np.isfinite(s) | np.isinf(t)
        bad_rows |= (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
        bad = np.flatnonzero(bad_rows)
        if bad.size:
            row = start + int(bad[0])
            image = int(np.searchsorted(offsets, row, side='right')) - 1
            raise BoxFileError(
                f'{where}: box {row} (image {image}) is {b[bad[0]].tolist()}'
                f' with score {s[bad[0]]}: boxes must be finite xyxy with '
                'x2 >= x1, y2 >= y1, scores finite')


def first_decrease(offsets: np.ndarray) -> int:
    """Index i with offsets[i+1] < offsets[i], or -1; chunked scan."""
    n = len(offsets)
    for start in range(0, max(n - 1, 0), CHUNK_ROWS):
        seg = np.asarray(offsets[start:start + CHUNK_ROWS + 1])
        bad = np.flatnonzero(np.diff(seg) < 0)
        if bad.size:
            return start + int(bad[0])
    return -1
