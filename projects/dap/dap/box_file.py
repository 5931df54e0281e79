"""The DAP pseudo-box file: the one module that writes, merges and opens it.

Step 2 (CAM boxes) writes it, step 3 (detector pre-training) reads it. For
ImageNet-22K it describes 14M images, so the format is a directory of plain
``.npy`` arrays that are memory-mapped (nothing is read until it is used),
and it holds no pickled objects (opening a file never runs code).

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
must stay small because every open reads it. Use
:attr:`PseudoBoxFile.failed` to get ``(index, key, reason)`` tuples.

Multi-rank generation writes per-rank shards with :class:`ShardWriter` and
joins them with :func:`merge_shards`; both are restartable: a killed run is
resumed by skipping :meth:`ShardWriter.done_indices`, and the merged file is
byte-identical to that of an uninterrupted run.
"""
import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import (Any, Dict, Iterable, List, Optional, Sequence, Tuple,
                    Union)

import numpy as np

FORMAT_NAME = 'dap-pseudo-boxes'
FORMAT_VERSION = 1
SHARD_FORMAT_NAME = 'dap-pseudo-box-shard'
SHARD_FORMAT_VERSION = 1

PathLike = Union[str, os.PathLike]

META_FILE = 'meta.json'
RUN_FILE = 'run.json'
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
_CHUNK = 1 << 20  # rows per chunk when scanning big arrays
_SHARD_RE = re.compile(r'^shard-r(\d{5})-(\d{6})\.npz$')


class BoxFileError(ValueError):
    """A pseudo-box file, shard or its input is malformed or mismatched."""


# --------------------------------------------------------------------------
# fingerprints


def _key_bytes(chunk: Any) -> List[bytes]:
    """utf-8 encoded keys of a chunk of str / bytes / numpy strings."""
    if isinstance(chunk, np.ndarray) and chunk.dtype.kind == 'S':
        return chunk.tolist()
    if isinstance(chunk, np.ndarray):
        chunk = chunk.tolist()
    return [k if isinstance(k, bytes) else str(k).encode('utf-8')
            for k in chunk]


def _check_key_block(block: bytes, count: int, first: int) -> None:
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
        self._digest = hashlib.sha256(
            b'dap-image-list/1 n=%d labels=%d\n' %
            (self.num_images, self.with_labels))

    def update_keys(self, block: bytes, count: int) -> None:
        """``count`` utf-8 keys, each followed by ``b'\\n'``."""
        if self.num_labels:
            raise BoxFileError('all keys must come before the labels')
        _check_key_block(block, count, self.num_keys)
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
        expected = (self.num_images, self.num_images if self.with_labels
                    else 0)
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
    for start in range(0, n, _CHUNK):
        block = b'\n'.join(_key_bytes(keys[start:start + _CHUNK])) + b'\n'
        hasher.update_keys(block, min(_CHUNK, n - start))
    if labels is not None:
        for start in range(0, n, _CHUNK):
            hasher.update_labels(np.asarray(labels[start:start + _CHUNK]))
    return hasher.hexdigest()


def file_sha256(path: PathLike) -> str:
    """sha256 hex of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------
# small helpers


def _canonical_json(obj: Any, what: str) -> str:
    """Deterministic JSON text (sorted keys, strict, trailing newline)."""
    try:
        return json.dumps(
            obj, sort_keys=True, indent=2, ensure_ascii=False,
            allow_nan=False) + '\n'
    except (TypeError, ValueError) as e:
        raise BoxFileError(f'{what} is not plain JSON data: {e}') from e


def _encode_keys(keys: Any) -> np.ndarray:
    """Image keys as a fixed-width utf-8 ``S`` array, checked."""
    n = len(keys)
    if isinstance(keys, np.ndarray) and keys.dtype.kind == 'S':
        arr = np.asarray(keys).reshape(n)
    else:
        parts = [
            np.array(_key_bytes(keys[s:s + _CHUNK]), dtype=bytes)
            for s in range(0, n, _CHUNK)
        ]
        arr = np.concatenate(parts) if parts else np.zeros(0, 'S1')
    width = 1
    for start in range(0, n, _CHUNK):
        chunk = arr[start:start + _CHUNK].tolist()
        _check_key_block(b'\n'.join(chunk) + b'\n', len(chunk), start)
        lengths = list(map(len, chunk))
        if 0 in lengths:
            raise BoxFileError(
                f'image {start + lengths.index(0)} has an empty key')
        width = max(width, max(lengths))
    # canonical width (the longest key) keeps equal key lists byte-equal
    return arr if arr.dtype.itemsize == width else arr.astype(f'S{width}')


def _encode_reasons(reasons: Iterable[str]) -> np.ndarray:
    """Failure reasons as utf-8 ``S`` (cut at MAX_REASON_BYTES)."""
    out = []
    for r in reasons:
        b = (r if isinstance(r, bytes) else str(r).encode('utf-8'))
        b = b.replace(b'\0', b' ')[:MAX_REASON_BYTES]
        out.append(b.decode('utf-8', 'ignore').encode('utf-8') or b'?')
    return np.array(out, dtype=bytes) if out else np.zeros(0, 'S1')


def _as_array(value: Any, name: str, kinds: str, dtype: Any,
              shape: Tuple[int, ...]) -> np.ndarray:
    """``value`` as a C-contiguous ``dtype`` array of ``shape``, checked."""
    arr = np.asarray(value)
    if arr.size == 0 and arr.ndim == 1 and len(shape) > 1:
        arr = arr.reshape((0, ) + shape[1:])
    if arr.size and arr.dtype.kind not in kinds:
        raise BoxFileError(
            f'{name} must have a numeric dtype of kind {kinds!r}, '
            f'got {arr.dtype}')
    if arr.shape != tuple(shape):
        raise BoxFileError(f'{name} has shape {arr.shape}, expected {shape}')
    return np.ascontiguousarray(arr, dtype=dtype)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without dir fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------
# reading


def _read_npy_header(path: Path) -> Tuple[Tuple[int, ...], bool, np.dtype,
                                          int]:
    """(shape, fortran_order, dtype, data offset) of an .npy file."""
    try:
        with open(path, 'rb') as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = \
                    np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = \
                    np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f'unsupported .npy version {version}')
            return shape, fortran, dtype, f.tell()
    except (ValueError, OSError, SyntaxError) as e:
        raise BoxFileError(f'{path} is not a readable .npy file: {e}') from e


def _open_npy(path: Path, dtype: Optional[np.dtype],
              shape: Tuple[int, ...]) -> np.ndarray:
    """Memory-map one member after checking its header and size."""
    if not path.is_file():
        raise BoxFileError(f'missing member {path.name} in {path.parent}')
    got_shape, fortran, got_dtype, offset = _read_npy_header(path)
    if got_dtype.hasobject:
        raise BoxFileError(
            f'{path} holds Python objects (dtype {got_dtype}); reading it '
            'needs pickle, which can run arbitrary code, so box files are '
            'pickle-free and this member is refused')
    if dtype is None:
        if got_dtype.kind != 'S':
            raise BoxFileError(
                f'{path} has dtype {got_dtype}, expected fixed-width utf-8 '
                'bytes (numpy S)')
    elif got_dtype != dtype:
        raise BoxFileError(
            f'{path} has dtype {got_dtype}, expected {dtype}')
    if tuple(got_shape) != tuple(shape):
        raise BoxFileError(
            f'{path} has shape {tuple(got_shape)}, expected {tuple(shape)} '
            'from meta.json (num_images / num_boxes / num_failed)')
    expected = offset + int(np.prod(shape, dtype=np.int64)) * \
        got_dtype.itemsize
    actual = path.stat().st_size
    if actual != expected:
        raise BoxFileError(
            f'{path} has {actual} bytes, expected {expected}: the file is '
            f'{"truncated" if actual < expected else "padded"}')
    try:
        return np.load(path, mmap_mode='r', allow_pickle=False)
    except (ValueError, OSError) as e:
        raise BoxFileError(f'cannot memory-map {path}: {e}') from e


def _first_decrease(offsets: np.ndarray) -> int:
    """Index i with offsets[i+1] < offsets[i], or -1; chunked scan."""
    n = len(offsets)
    for start in range(0, max(n - 1, 0), _CHUNK):
        seg = np.asarray(offsets[start:start + _CHUNK + 1])
        bad = np.flatnonzero(np.diff(seg) < 0)
        if bad.size:
            return start + int(bad[0])
    return -1


def _require(meta: Dict, name: str, types: Tuple[type, ...],
             path: Path) -> Any:
    if name not in meta:
        raise BoxFileError(f'{path}: meta.json lacks "{name}"')
    value = meta[name]
    if not isinstance(value, types) or isinstance(value, bool):
        raise BoxFileError(
            f'{path}: meta.json "{name}" has type {type(value).__name__}')
    return value


class PseudoBoxFile:
    """A pseudo-box file opened read-only with memory-mapped arrays.

    Open it with :meth:`open`. Arrays (``keys``, ``sizes``, ``labels``,
    ``offsets``, ``status``, ``boxes``, ``scores``, ``thresholds``) are
    ``np.memmap``; pickling the object (e.g. for spawned dataloader
    workers) sends only the path and the worker maps the file again.
    """

    keys: np.ndarray
    sizes: np.ndarray
    labels: np.ndarray
    offsets: np.ndarray
    status: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    thresholds: np.ndarray
    failed_indices: np.ndarray
    failed_reasons: np.ndarray

    def __init__(self, path: Path, meta: Dict,
                 arrays: Dict[str, np.ndarray]) -> None:
        self.path = path
        self.meta = meta
        for name, arr in arrays.items():
            setattr(self, name, arr)

    @classmethod
    def open(cls, path: PathLike,
             check_offsets: bool = True) -> 'PseudoBoxFile':
        """Open and validate a box file without reading its box arrays.

        Checks meta.json (format, version, counts), every member's dtype,
        shape and size, the status array and failures; with
        ``check_offsets`` also that ``box_offsets`` never decreases (a
        chunked scan of N int64). Anything wrong raises
        :class:`BoxFileError` naming the file and the problem.
        """
        path = Path(path)
        if not path.is_dir():
            what = 'is not a directory' if path.exists() else \
                'does not exist'
            raise BoxFileError(
                f'pseudo-box file {path} {what}; a box file is a directory '
                f'(suffix .dapbox) holding {META_FILE} and .npy arrays')
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise BoxFileError(f'missing member {META_FILE} in {path}')
        try:
            meta = json.loads(meta_path.read_text(encoding='utf-8'))
        except (ValueError, UnicodeDecodeError) as e:
            raise BoxFileError(f'{meta_path} is not valid JSON: {e}') from e
        if not isinstance(meta, dict) or meta.get('format') != FORMAT_NAME:
            fmt = meta.get('format') if isinstance(meta, dict) else None
            raise BoxFileError(
                f'{path} is not a pseudo-box file: format is {fmt!r}, '
                f'expected {FORMAT_NAME!r}')
        version = meta.get('version')
        if version != FORMAT_VERSION:
            hint = ' (written by a newer version of this code; upgrade)' \
                if isinstance(version, int) and version > FORMAT_VERSION \
                else ''
            raise BoxFileError(
                f'{path} has format version {version!r}; this code reads '
                f'version {FORMAT_VERSION}{hint}')
        dims = {}
        for sym, name in (('N', 'num_images'), ('M', 'num_boxes'),
                          ('F', 'num_failed')):
            dims[sym] = _require(meta, name, (int, ), path)
            if dims[sym] < 0:
                raise BoxFileError(f'{path}: meta.json "{name}" < 0')
        dims['N+1'] = dims['N'] + 1
        num_classes = _require(meta, 'num_classes', (int, ), path)
        classes = meta.get('classes')
        if classes is not None and (not isinstance(classes, list)
                                    or len(classes) != num_classes):
            raise BoxFileError(
                f'{path}: meta.json "classes" must be null or a list of '
                f'num_classes={num_classes} names')
        _require(meta, 'image_list_fingerprint', (str, ), path)
        arrays = {}
        missing = [
            fname for fname, _, _ in MEMBERS.values()
            if not (path / fname).is_file()
        ]
        if missing:
            raise BoxFileError(
                f'{path} is incomplete: missing member(s) '
                f'{", ".join(missing)}')
        for name, (fname, dtype, shape) in MEMBERS.items():
            arrays[name] = _open_npy(path / fname, dtype,
                                     tuple(dims.get(s, s) for s in shape))
        self = cls(path, meta, arrays)
        self._validate(check_offsets)
        return self

    def _validate(self, check_offsets: bool) -> None:
        """Cheap structural checks (offsets ends, status, failures)."""
        n, m = self.num_images, self.num_boxes
        off = self.offsets
        if int(off[0]) != 0 or int(off[-1]) != m:
            raise BoxFileError(
                f'{self.path}: box_offsets.npy must start at 0 and end at '
                f'num_boxes={m}, got {int(off[0])} and {int(off[-1])}')
        if check_offsets:
            bad = _first_decrease(off)
            if bad >= 0:
                raise BoxFileError(
                    f'{self.path}: box_offsets.npy is not monotone: '
                    f'offsets[{bad}]={int(off[bad])} > '
                    f'offsets[{bad + 1}]={int(off[bad + 1])}')
        failed = np.asarray(self.failed_indices)
        num_failed = 0
        for start in range(0, n, _CHUNK):
            st = np.asarray(self.status[start:start + _CHUNK])
            if st.size and st.max() > STATUS_FAILED:
                raise BoxFileError(
                    f'{self.path}: image_status.npy holds values other than '
                    '0 (ok) and 1 (failed)')
            num_failed += int(np.count_nonzero(st))
        if num_failed != len(failed):
            raise BoxFileError(
                f'{self.path}: {num_failed} images have status failed but '
                f'failed_indices.npy lists {len(failed)}')
        if len(failed):
            if (np.diff(failed) <= 0).any() or failed[0] < 0 or \
                    failed[-1] >= n:
                raise BoxFileError(
                    f'{self.path}: failed_indices.npy must be sorted, unique '
                    'image indices')
            if (self.status[failed] != STATUS_FAILED).any():
                raise BoxFileError(
                    f'{self.path}: failed_indices.npy and image_status.npy '
                    'disagree')
            if (off[failed + 1] != off[failed]).any():
                raise BoxFileError(
                    f'{self.path}: failed images must have no boxes')

    # ---------------------------------------------------------- metadata
    @property
    def num_images(self) -> int:
        return int(self.meta['num_images'])

    @property
    def num_boxes(self) -> int:
        return int(self.meta['num_boxes'])

    @property
    def num_classes(self) -> int:
        return int(self.meta['num_classes'])

    @property
    def classes(self) -> Optional[List[str]]:
        return self.meta.get('classes')

    @property
    def fingerprint(self) -> str:
        """``image_list_fingerprint(keys, labels)`` of the image list."""
        return self.meta['image_list_fingerprint']

    @property
    def generation_config(self) -> Dict:
        return self.meta.get('generation_config') or {}

    @property
    def checkpoint_sha256(self) -> Optional[str]:
        return self.meta.get('checkpoint_sha256')

    def __len__(self) -> int:
        return self.num_images

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({str(self.path)!r}, '
                f'num_images={self.num_images}, num_boxes={self.num_boxes}, '
                f'num_failed={len(self.failed_indices)})')

    # -------------------------------------------------------- per image
    def key(self, i: int) -> str:
        """The image key (path relative to the data prefix) of image i."""
        return bytes(self.keys[i]).decode('utf-8')

    def boxes_of(self, i: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copies of image i's boxes (k, 4), scores (k,), thresholds (k,)."""
        start, stop = int(self.offsets[i]), int(self.offsets[i + 1])
        return (np.array(self.boxes[start:stop]),
                np.array(self.scores[start:stop]),
                np.array(self.thresholds[start:stop]))

    def is_failed(self, i: int) -> bool:
        return bool(self.status[i] == STATUS_FAILED)

    @property
    def failed(self) -> List[Tuple[int, str, str]]:
        """``(index, key, reason)`` of every failed image."""
        return [(int(i), self.key(int(i)), bytes(r).decode('utf-8'))
                for i, r in zip(self.failed_indices, self.failed_reasons)]

    # ------------------------------------------------------------ checks
    def check_matches(self,
                      fingerprint: Optional[str] = None,
                      num_images: Optional[int] = None,
                      num_classes: Optional[int] = None) -> None:
        """Raise :class:`BoxFileError` if the file does not fit a dataset.

        ``fingerprint`` may be :func:`image_list_fingerprint` of the
        dataset's keys with labels (checks both) or of its keys alone.
        """
        problems = []
        if num_images is not None and int(num_images) != self.num_images:
            problems.append(f'it has {self.num_images} images, the dataset '
                            f'{num_images}')
        if num_classes is not None and int(num_classes) != self.num_classes:
            problems.append(f'it has {self.num_classes} classes, the model/'
                            f'dataset {num_classes}')
        if fingerprint is not None and fingerprint not in (
                self.meta['image_list_fingerprint'],
                self.meta.get('image_keys_fingerprint')):
            problems.append(
                'its image list fingerprint differs from the dataset\'s '
                '(other images, another order or other labels)')
        if problems:
            raise BoxFileError(
                f'pseudo-box file {self.path} does not match: ' +
                '; '.join(problems) + '. Regenerate the boxes for this '
                'image list or point the config at the right box file.')

    def verify(self) -> None:
        """Full scan: recompute fingerprints, check values (slow on 14M)."""
        keys_fp = image_list_fingerprint(self.keys)
        list_fp = image_list_fingerprint(self.keys, self.labels)
        if list_fp != self.meta['image_list_fingerprint'] or (
                self.meta.get('image_keys_fingerprint', keys_fp) != keys_fp):
            raise BoxFileError(
                f'{self.path}: keys/labels do not match the fingerprints '
                'stored in meta.json (the arrays were modified)')
        _check_values(self.sizes, self.labels, self.offsets, self.status,
                      self.boxes, self.scores, self.thresholds,
                      self.num_classes, where=str(self.path))
        bad = _first_decrease(self.offsets)
        if bad >= 0:
            raise BoxFileError(f'{self.path}: box_offsets.npy decreases at '
                               f'{bad}')

    # ---------------------------------------------------------- pickling
    def __getstate__(self) -> Dict:
        return {'path': str(self.path)}

    def __setstate__(self, state: Dict) -> None:
        other = type(self).open(state['path'], check_offsets=False)
        self.__dict__.update(other.__dict__)


# --------------------------------------------------------------------------
# writing


def _check_values(sizes: np.ndarray, labels: np.ndarray, offsets: np.ndarray,
                  status: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
                  thresholds: np.ndarray, num_classes: int,
                  where: str) -> None:
    """Value checks shared by writing and :meth:`PseudoBoxFile.verify`."""
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
    for start in range(0, len(boxes), _CHUNK):
        b = np.asarray(boxes[start:start + _CHUNK])
        s = np.asarray(scores[start:start + _CHUNK])
        t = np.asarray(thresholds[start:start + _CHUNK])
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


def _build_meta(meta: Dict, n: int, m: int, num_failed: int,
                list_fp: str, keys_fp: str) -> Dict:
    """The meta.json object: caller's meta + counts and fingerprints."""
    if not isinstance(meta, dict):
        raise BoxFileError(f'meta must be a dict, got {type(meta).__name__}')
    out = json.loads(_canonical_json(meta, 'meta'))
    if 'failed' in out:
        raise BoxFileError(
            'pass failures with failed=..., not inside meta: they are '
            'stored as failed_indices.npy / failed_reasons.npy')
    computed = {
        'format': FORMAT_NAME,
        'version': FORMAT_VERSION,
        'num_images': n,
        'num_boxes': m,
        'num_failed': num_failed,
        'image_keys_fingerprint': keys_fp,
    }
    for name, value in computed.items():
        if name in out and out[name] != value:
            raise BoxFileError(
                f'meta["{name}"]={out[name]!r} contradicts the data being '
                f'written ({value!r})')
    given_fp = out.get('image_list_fingerprint')
    if given_fp is not None and given_fp not in (list_fp, keys_fp):
        raise BoxFileError(
            'meta["image_list_fingerprint"] does not match the keys and '
            'labels being written: the boxes were made for another image '
            'list (or another order)')
    out.update(computed, image_list_fingerprint=list_fp)
    classes = out.get('classes')
    if classes is not None:
        if not isinstance(classes, list) or not all(
                isinstance(c, str) for c in classes):
            raise BoxFileError('meta["classes"] must be a list of names')
        if out.setdefault('num_classes', len(classes)) != len(classes):
            raise BoxFileError(
                f'meta["num_classes"]={out["num_classes"]} but '
                f'{len(classes)} class names')
    out['classes'] = classes
    num_classes = out.get('num_classes')
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or \
            num_classes < 1:
        raise BoxFileError(
            'meta needs "num_classes" (a positive int) or "classes"')
    config = out.setdefault('generation_config', {})
    if not isinstance(config, dict):
        raise BoxFileError('meta["generation_config"] must be a dict')
    sha = out.setdefault('checkpoint_sha256', None)
    if sha is not None and not re.fullmatch(r'[0-9a-f]{64}', str(sha)):
        raise BoxFileError(
            f'meta["checkpoint_sha256"] must be null or 64 lowercase hex '
            f'digits, got {sha!r}')
    return out


def _normalise_failed(failed: Any, keys: np.ndarray,
                      status: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(sorted indices, reasons) from the public ``failed`` forms."""
    indices = np.flatnonzero(status == STATUS_FAILED).astype(np.int64)
    if failed is None:
        return indices, _encode_reasons(['unknown'] * len(indices))
    reasons = {}
    items = failed.items() if isinstance(failed, dict) else failed
    for item in items:
        if isinstance(item, dict):
            index, key, reason = (item.get('index'), item.get('key'),
                                  item.get('reason', 'unknown'))
        elif isinstance(failed, dict):
            (index, reason), key = item, None
        else:
            index, key, reason = item
        index = int(index)
        if not 0 <= index < len(keys):
            raise BoxFileError(f'failed index {index} out of range')
        if key is not None and _key_bytes([key])[0] != keys[index]:
            raise BoxFileError(
                f'failed entry {index} has key {key!r} but image {index} is '
                f'{bytes(keys[index]).decode("utf-8")!r}')
        reasons[index] = reason
    if set(reasons) != set(indices.tolist()):
        extra = sorted(set(reasons) - set(indices.tolist()))[:5]
        lacking = sorted(set(indices.tolist()) - set(reasons))[:5]
        raise BoxFileError(
            'failed list and status disagree: listed but not status 1: '
            f'{extra}; status 1 but not listed: {lacking}')
    return indices, _encode_reasons(reasons[i] for i in indices.tolist())


def _write_dir(path: Path, arrays: Dict[str, np.ndarray], meta_text: str,
               overwrite: bool) -> None:
    """Write members into a temp dir beside ``path``, then rename it."""
    if path.exists() and not overwrite:
        raise BoxFileError(
            f'{path} already exists; remove it or pass overwrite=True')
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = f'{os.getpid()}-{uuid.uuid4().hex[:8]}'
    tmp = path.with_name(f'.{path.name}.tmp-{tag}')
    old = path.with_name(f'.{path.name}.old-{tag}')
    tmp.mkdir()
    try:
        for name, (fname, _, _) in MEMBERS.items():
            with open(tmp / fname, 'wb') as f:
                np.lib.format.write_array(f, arrays[name], allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
        with open(tmp / META_FILE, 'w', encoding='utf-8') as f:
            f.write(meta_text)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        if path.exists():
            os.rename(path, old)
        os.rename(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)


def write_box_file_arrays(path: PathLike,
                          keys: Any,
                          sizes: Any,
                          labels: Any,
                          offsets: Any,
                          boxes: Any,
                          scores: Any,
                          thresholds: Any,
                          status: Any,
                          meta: Dict,
                          failed: Any = None,
                          overwrite: bool = False) -> None:
    """Write a box file from concatenated (CSR) arrays; fully vectorised.

    Args:
        path: the box-file directory to create (suffix ``.dapbox``).
        keys: N image keys (list of str or numpy ``S``/``U`` array).
        sizes: (N, 2) int (width, height). labels: (N,) int 0-based.
        offsets: (N + 1,) int, boxes of image i are rows
            ``offsets[i]:offsets[i + 1]``.
        boxes, scores, thresholds: (M, 4), (M,), (M,) float.
        status: (N,) 0 ok / 1 failed, or None for all ok.
        meta: ``num_classes`` and/or ``classes``, ``generation_config``,
            ``checkpoint_sha256``, optionally ``image_list_fingerprint``
            (checked against the data), and any extra JSON fields.
        failed: None (reason "unknown"), ``[(index, key, reason), ...]``,
            ``[{"index", "key", "reason"}, ...]`` or ``{index: reason}``;
            must list exactly the images with status 1.
        overwrite: replace an existing box file (atomically).
    """
    keys = _encode_keys(keys)
    n = len(keys)
    offsets = _as_array(offsets, 'offsets', 'iu', '<i8', (n + 1, ))
    if offsets[0] != 0 or (np.diff(offsets) < 0).any():
        raise BoxFileError('offsets must start at 0 and never decrease')
    m = int(offsets[-1])
    arrays = {
        'keys': keys,
        'sizes': _as_array(sizes, 'sizes', 'iu', '<i4', (n, 2)),
        'labels': _as_array(labels, 'labels', 'iu', '<i8', (n, )),
        'offsets': offsets,
        'status': _as_array(
            np.zeros(n, np.uint8) if status is None else status, 'status',
            'iub', 'u1', (n, )),
        'boxes': _as_array(boxes, 'boxes', 'iuf', '<f4', (m, 4)),
        'scores': _as_array(scores, 'scores', 'iuf', '<f4', (m, )),
        'thresholds': _as_array(thresholds, 'thresholds', 'iuf', '<f4',
                                (m, )),
    }
    arrays['failed_indices'], arrays['failed_reasons'] = _normalise_failed(
        failed, keys, arrays['status'])
    _write_checked(Path(path), arrays, meta, overwrite)


def _write_checked(path: Path, arrays: Dict[str, np.ndarray], meta: Dict,
                   overwrite: bool) -> None:
    """Value checks, meta.json, atomic write (arrays already typed)."""
    keys, labels = arrays['keys'], arrays['labels']
    meta_obj = _build_meta(meta, len(keys), len(arrays['boxes']),
                           len(arrays['failed_indices']),
                           image_list_fingerprint(keys, labels),
                           image_list_fingerprint(keys))
    _check_values(arrays['sizes'], labels, arrays['offsets'],
                  arrays['status'], arrays['boxes'], arrays['scores'],
                  arrays['thresholds'], meta_obj['num_classes'],
                  where='box file data')
    _write_dir(path, arrays, _canonical_json(meta_obj, 'meta'), overwrite)


def _stack_per_image(values: Sequence[Any], n: int, name: str,
                     width: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Concatenate per-image arrays; returns (rows, counts)."""
    if len(values) != n:
        raise BoxFileError(f'{name}: {len(values)} entries for {n} images')
    shape = (-1, width) if width else (-1, )
    parts = [np.asarray(v, dtype=np.float32).reshape(shape) for v in values]
    counts = np.fromiter((len(p) for p in parts), np.int64, count=n)
    empty = np.zeros((0, width) if width else 0, np.float32)
    return (np.concatenate(parts) if parts else empty), counts


def write_box_file(path: PathLike,
                   keys: Any,
                   sizes: Any,
                   labels: Any,
                   boxes_per_image: Sequence[Any],
                   scores_per_image: Sequence[Any],
                   thresholds_per_image: Sequence[Any],
                   status: Any,
                   meta: Dict,
                   failed: Any = None,
                   overwrite: bool = False) -> None:
    """Write a box file from per-image lists of (k, 4) / (k,) arrays.

    A thin wrapper of :func:`write_box_file_arrays` (see its arguments);
    written atomically: into a temp dir beside ``path``, then renamed.
    """
    n = len(keys)
    boxes, counts = _stack_per_image(boxes_per_image, n, 'boxes', 4)
    scores, s_counts = _stack_per_image(scores_per_image, n, 'scores')
    thresholds, t_counts = _stack_per_image(thresholds_per_image, n,
                                            'thresholds')
    bad = np.flatnonzero((counts != s_counts) | (counts != t_counts))
    if bad.size:
        i = int(bad[0])
        raise BoxFileError(
            f'image {i} has {counts[i]} boxes, {s_counts[i]} scores and '
            f'{t_counts[i]} thresholds')
    offsets = np.concatenate([[0], np.cumsum(counts)])
    write_box_file_arrays(path, keys, sizes, labels, offsets, boxes, scores,
                          thresholds, status, meta, failed, overwrite)


# --------------------------------------------------------------------------
# shards


def _run_meta_digest(run_meta: Dict) -> str:
    return hashlib.sha256(
        _canonical_json(run_meta, 'run_meta').encode('utf-8')).hexdigest()


def _describe_diff(old: Dict, new: Dict) -> str:
    names = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))

    def short(v: Any) -> str:
        text = json.dumps(v, sort_keys=True)
        return text if len(text) <= 120 else text[:117] + '...'

    return '; '.join(f'{k}: existing {short(old.get(k))}, new '
                     f'{short(new.get(k))}' for k in names)


def _read_run_json(shard_dir: Path) -> Optional[Dict]:
    path = shard_dir / RUN_FILE
    if not path.exists():
        return None
    try:
        run = json.loads(path.read_text(encoding='utf-8'))
        assert run['format'] == SHARD_FORMAT_NAME
        assert isinstance(run['run_meta'], dict)
    except (ValueError, KeyError, TypeError, AssertionError) as e:
        raise BoxFileError(
            f'{path} is not a valid shard run file ({e!r}); use a new work '
            'dir or delete it together with the shards') from e
    if run.get('version') != SHARD_FORMAT_VERSION:
        raise BoxFileError(
            f'{path} has shard format version {run.get("version")!r}, this '
            f'code writes {SHARD_FORMAT_VERSION}; finish the run with the '
            'code that started it or start over in a new work dir')
    return run['run_meta']


def _claim_run(shard_dir: Path, run_meta: Dict) -> None:
    """Create run.json, or check that an existing one has this run_meta."""
    path = shard_dir / RUN_FILE
    if not path.exists():
        text = _canonical_json({
            'format': SHARD_FORMAT_NAME,
            'version': SHARD_FORMAT_VERSION,
            'run_meta': run_meta
        }, 'run_meta')
        tmp = path.with_name(f'.{RUN_FILE}.tmp-{os.getpid()}-'
                             f'{uuid.uuid4().hex[:8]}')
        tmp.write_text(text, encoding='utf-8')
        try:  # link: exclusive and atomic, so ranks starting together agree
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:  # pragma: no cover - file systems without links
            if not path.exists():
                os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    existing = _read_run_json(shard_dir)
    if existing != run_meta:
        raise BoxFileError(
            f'{shard_dir} already holds pseudo-box shards of another run '
            f'({_describe_diff(existing, run_meta)}). Shards made with '
            'another generation config, checkpoint or image list must not '
            'be mixed: use a new work dir, or delete '
            f'{shard_dir}/shard-*.npz and {path.name} to start over.')


def _shard_paths(shard_dir: Path) -> List[Path]:
    """All finished shard files (temp files of killed writers excluded)."""
    if not shard_dir.is_dir():
        return []
    return sorted(p for p in shard_dir.iterdir() if _SHARD_RE.match(p.name))


_SHARD_FIELDS = {
    # name: (dtype, None for fixed-width bytes; number of dimensions)
    'indices': (np.dtype('<i8'), 1),
    'keys': (None, 1),
    'sizes': (np.dtype('<i4'), 2),
    'labels': (np.dtype('<i8'), 1),
    'status': (np.dtype('u1'), 1),
    'counts': (np.dtype('<i8'), 1),
    'reasons': (None, 1),
    'boxes': (np.dtype('<f4'), 2),
    'scores': (np.dtype('<f4'), 1),
    'thresholds': (np.dtype('<f4'), 1),
}


def _empty_shard() -> Dict[str, np.ndarray]:
    """Zero-row arrays of every shard field (merging no shards)."""
    return {
        name: np.zeros((0, ) + ((2, ) if name == 'sizes' else (4, )
                                if name == 'boxes' else ()),
                       dtype if dtype is not None else 'S1')
        for name, (dtype, _) in _SHARD_FIELDS.items()
    }


def _read_shard(path: Path, digest: Optional[str],
                fields: Sequence[str] = tuple(_SHARD_FIELDS)
                ) -> Dict[str, np.ndarray]:
    """Load and check one shard (plain arrays only, never pickle)."""
    hint = ('delete it (its images will be computed again on the next run)'
            ' or move it away')
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz['format']) != SHARD_FORMAT_NAME or \
                    int(npz['version']) != SHARD_FORMAT_VERSION:
                raise BoxFileError(
                    f'shard {path} has format {npz["format"]} version '
                    f'{npz["version"]}, expected {SHARD_FORMAT_NAME} '
                    f'{SHARD_FORMAT_VERSION}')
            if digest is not None and str(npz['run_digest']) != digest:
                raise BoxFileError(
                    f'shard {path} belongs to another run (its run meta '
                    f'differs from {RUN_FILE}); {hint}')
            out = {name: npz[name] for name in fields}
    except BoxFileError:
        raise
    except Exception as e:  # zip / npy errors of a damaged file
        raise BoxFileError(f'shard {path} is unreadable ({e}); {hint}') from e
    for name, arr in out.items():
        dtype, ndim = _SHARD_FIELDS[name]
        if (arr.dtype.kind != 'S' if dtype is None else
                arr.dtype != dtype) or arr.ndim != ndim:
            raise BoxFileError(
                f'shard {path}: {name} has dtype {arr.dtype} and {arr.ndim} '
                f'dims; {hint}')
    if len(fields) == len(_SHARD_FIELDS):
        n, m = len(out['indices']), len(out['boxes'])
        per_image = ('keys', 'sizes', 'labels', 'status', 'counts', 'reasons')
        consistent = (
            all(len(out[k]) == n for k in per_image)
            and out['sizes'].shape[1:] == (2, )
            and out['boxes'].shape[1:] == (4, )
            and len(out['scores']) == m and len(out['thresholds']) == m
            and int(out['counts'].sum()) == m
            and not (out['counts'] < 0).any())
        if not consistent:
            raise BoxFileError(f'shard {path} has inconsistent array '
                               f'lengths; {hint}')
    return out


class ShardWriter:
    """Per-rank, restartable writer of pseudo-box shards.

    Results are buffered and written every ``flush_every`` images as one
    ``shard-r{rank:05d}-{seq:06d}.npz`` (temp file + ``os.replace``, so a
    killed process leaves either a whole shard or an ignored temp file).
    ``run_meta`` (generation config, image-list fingerprint, checkpoint
    sha256, num_images, ...) is stored in ``shard_dir/run.json``; a writer
    with a different ``run_meta`` is refused, the same one resumes.
    """

    def __init__(self,
                 shard_dir: PathLike,
                 rank: int,
                 run_meta: Dict,
                 flush_every: int = 1000) -> None:
        if not 0 <= int(rank) < 100000:
            raise BoxFileError(f'rank must be in [0, 100000), got {rank}')
        if int(flush_every) < 1:
            raise BoxFileError('flush_every must be >= 1')
        if not isinstance(run_meta, dict):
            raise BoxFileError('run_meta must be a dict')
        self.shard_dir = Path(shard_dir)
        self.rank = int(rank)
        self.flush_every = int(flush_every)
        self.run_meta = json.loads(_canonical_json(run_meta, 'run_meta'))
        self.num_images = self.run_meta.get('num_images')
        self.num_classes = self.run_meta.get('num_classes')
        self._digest = _run_meta_digest(self.run_meta)
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        _claim_run(self.shard_dir, self.run_meta)
        seqs = [
            int(m.group(2)) for m in map(_SHARD_RE.match,
                                         (p.name for p in
                                          _shard_paths(self.shard_dir)))
            if int(m.group(1)) == self.rank
        ]
        self._seq = max(seqs, default=-1) + 1
        self._pending: List[Tuple] = []
        self._closed = False

    # ------------------------------------------------------------ state
    def done_indices(self) -> np.ndarray:
        """Sorted dataset indices finished by any rank (flushed shards and
        this writer's buffer), so a rerun with another world size skips
        them too."""
        parts = [
            _read_shard(p, self._digest, ('indices', ))['indices']
            for p in _shard_paths(self.shard_dir)
        ]
        parts.append(np.array([r[0] for r in self._pending], np.int64))
        return np.unique(np.concatenate(parts).astype(np.int64))

    # ------------------------------------------------------------ adding
    def _check_open(self) -> None:
        if self._closed:
            raise BoxFileError('ShardWriter is closed')

    def _check_index(self, index: int, key: str) -> Tuple[int, bytes]:
        index = int(index)
        if index < 0 or (self.num_images is not None
                         and index >= self.num_images):
            raise BoxFileError(
                f'index {index} outside [0, num_images={self.num_images})')
        key_b = _key_bytes([key])[0]
        if not key_b or b'\n' in key_b or b'\0' in key_b:
            raise BoxFileError(f'image {index}: invalid key {key!r}')
        return index, key_b

    def add(self, index: int, key: str, size: Tuple[int, int], label: int,
            boxes: Any, scores: Any, thresholds: Any) -> None:
        """Buffer one finished image: boxes (k, 4) xyxy original pixels,
        scores (k,), thresholds (k,); size is (width, height)."""
        self._check_open()
        index, key_b = self._check_index(index, key)
        w, h = (int(v) for v in size)
        label = int(label)
        boxes = np.asarray(boxes, dtype=np.float32)
        boxes = boxes.reshape(0, 4) if boxes.size == 0 else boxes
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        thresholds = np.asarray(thresholds, dtype=np.float32).reshape(-1)
        k = len(boxes)
        if boxes.shape != (k, 4) or scores.shape != (k, ) or \
                thresholds.shape != (k, ):
            raise BoxFileError(
                f'image {index}: boxes {boxes.shape}, scores {scores.shape}, '
                f'thresholds {thresholds.shape}; expected (k, 4), (k,), (k,)')
        if w <= 0 or h <= 0:
            raise BoxFileError(f'image {index}: size (w, h)={(w, h)}')
        if label < 0 or (self.num_classes is not None
                         and label >= self.num_classes):
            raise BoxFileError(f'image {index}: label {label} out of range')
        if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
            raise BoxFileError(f'image {index}: non-finite boxes or scores')
        self._pending.append((index, key_b, w, h, label, STATUS_OK, b'',
                              boxes, scores, thresholds))
        self._maybe_flush()

    def add_failed(self,
                   index: int,
                   key: str,
                   reason: str,
                   size: Optional[Tuple[int, int]] = None,
                   label: Optional[int] = None) -> None:
        """Buffer an image that could not be processed (e.g. unreadable)."""
        self._check_open()
        index, key_b = self._check_index(index, key)
        w, h = (0, 0) if size is None else (int(v) for v in size)
        self._pending.append(
            (index, key_b, w, h, -1 if label is None else int(label),
             STATUS_FAILED, _encode_reasons([reason])[0],
             np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
             np.zeros(0, np.float32)))
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write the buffered images as one shard (atomic)."""
        if not self._pending:
            return
        rows = self._pending
        arrays = {
            'format': np.array(SHARD_FORMAT_NAME),
            'version': np.array(SHARD_FORMAT_VERSION, np.int64),
            'run_digest': np.array(self._digest),
            'indices': np.array([r[0] for r in rows], np.int64),
            'keys': np.array([r[1] for r in rows], dtype=bytes),
            'sizes': np.array([(r[2], r[3]) for r in rows], np.int32),
            'labels': np.array([r[4] for r in rows], np.int64),
            'status': np.array([r[5] for r in rows], np.uint8),
            'reasons': np.array([r[6] for r in rows], dtype=bytes),
            'counts': np.array([len(r[7]) for r in rows], np.int64),
            'boxes': np.concatenate([r[7] for r in rows]),
            'scores': np.concatenate([r[8] for r in rows]),
            'thresholds': np.concatenate([r[9] for r in rows]),
        }
        if arrays['reasons'].dtype.itemsize == 0:  # all empty strings
            arrays['reasons'] = arrays['reasons'].astype('S1')
        while True:
            name = f'shard-r{self.rank:05d}-{self._seq:06d}.npz'
            final = self.shard_dir / name
            if not final.exists():
                break
            self._seq += 1
        tmp = self.shard_dir / (f'.{name}.tmp-{os.getpid()}-'
                                f'{uuid.uuid4().hex[:8]}')
        try:
            with open(tmp, 'wb') as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()
        _fsync_dir(self.shard_dir)
        self._seq += 1
        self._pending = []

    def close(self) -> None:
        """Flush what is buffered; the writer accepts nothing afterwards."""
        if not self._closed:
            self.flush()
            self._closed = True

    def __enter__(self) -> 'ShardWriter':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _segment_rows(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Row indices of the concatenated segments [start, start + count)."""
    counts = counts.astype(np.int64)
    total = int(counts.sum())
    seg_first = np.cumsum(counts) - counts
    return np.repeat(starts.astype(np.int64) - seg_first, counts) + \
        np.arange(total, dtype=np.int64)


def _merged_meta(run_meta: Optional[Dict], meta: Optional[Dict]) -> Dict:
    """meta for the merged file: run.json fields, then the caller's."""
    out = dict(meta or {})
    for name in ('generation_config', 'checkpoint_sha256',
                 'image_list_fingerprint', 'num_classes', 'classes'):
        if run_meta is None or name not in run_meta:
            continue
        if name in out and json.loads(_canonical_json(
                out[name], name)) != run_meta[name]:
            raise BoxFileError(
                f'meta["{name}"] differs from the value the shards were '
                f'made with ({RUN_FILE}): {_describe_diff(run_meta, out)}')
        out[name] = run_meta[name]
    return out


def merge_shards(shard_dir: PathLike,
                 out_path: PathLike,
                 num_images: int,
                 keys: Optional[Sequence[str]] = None,
                 meta: Optional[Dict] = None,
                 overwrite: bool = False) -> PseudoBoxFile:
    """Merge all shards into one box file ordered by dataset index.

    Every index in ``[0, num_images)`` must appear; identical duplicates
    (an image done twice, e.g. by overlapping runs) are kept once,
    conflicting ones are an error. ``keys`` (the ordered image list), when
    given, must match the shards' keys. ``meta`` is completed with the
    fields of ``run.json`` (generation_config, checkpoint_sha256,
    image_list_fingerprint, num_classes, classes; conflicts are errors).
    Vectorised over boxes; memory ~ 3x the merged arrays.
    """
    shard_dir = Path(shard_dir)
    n = int(num_images)
    run_meta = _read_run_json(shard_dir)
    paths = _shard_paths(shard_dir)
    if run_meta is None and paths:
        raise BoxFileError(f'{shard_dir} has shards but no {RUN_FILE}')
    if run_meta is not None and run_meta.get('num_images', n) != n:
        raise BoxFileError(
            f'shards in {shard_dir} were made for '
            f'{run_meta["num_images"]} images, merge asked for {n}')
    if keys is not None and len(keys) != n:
        raise BoxFileError(f'{len(keys)} keys given for {n} images')
    digest = None if run_meta is None else _run_meta_digest(run_meta)
    shards = [_read_shard(p, digest) for p in paths]
    fields = {
        name: np.concatenate([s[name] for s in shards or [_empty_shard()]])
        for name in _SHARD_FIELDS
    }
    shard_of_row = np.repeat(np.arange(len(shards)),
                             [len(s['indices']) for s in shards])
    idx, counts = fields['indices'], fields['counts']
    out_of_range = np.flatnonzero((idx < 0) | (idx >= n))
    if out_of_range.size:
        row = int(out_of_range[0])
        raise BoxFileError(
            f'shard {paths[shard_of_row[row]]} holds index {idx[row]}, '
            f'outside [0, {n}): it was made for another image list')
    starts = np.cumsum(counts) - counts
    order = np.argsort(idx, kind='stable')
    sorted_idx = idx[order]
    first = np.ones(len(idx), bool)
    first[1:] = sorted_idx[1:] != sorted_idx[:-1]
    _check_duplicates(fields, starts, order, first, shard_of_row, paths)
    rows = order[first]
    if len(rows) != n:
        missing = np.setdiff1d(np.arange(n), idx[rows])
        examples = ', '.join(
            str(i) if keys is None else f'{i} ({keys[i]})'
            for i in missing[:5].tolist())
        raise BoxFileError(
            f'{len(missing)} of {n} images have no result in {shard_dir} '
            f'(e.g. {examples}); rerun the generation (it resumes and '
            'computes only the missing images) before merging')
    merged_keys = fields['keys'][rows]
    if keys is not None:
        expected = _encode_keys(keys)
        bad = np.flatnonzero(merged_keys != expected)
        if bad.size:
            i = int(bad[0])
            raise BoxFileError(
                f'{bad.size} shard keys differ from the image list, e.g. '
                f'index {i}: shard {bytes(merged_keys[i])!r}, list '
                f'{bytes(expected[i])!r}; the shards were made for another '
                'image list or order')
    box_rows = _segment_rows(starts[rows], counts[rows])
    status = fields['status'][rows]
    failed_rows = rows[status == STATUS_FAILED]
    arrays = {
        'keys': _encode_keys(merged_keys),
        'sizes': np.ascontiguousarray(fields['sizes'][rows], '<i4'),
        'labels': np.ascontiguousarray(fields['labels'][rows], '<i8'),
        'offsets': np.concatenate([[0], np.cumsum(counts[rows])]).astype(
            '<i8'),
        'status': np.ascontiguousarray(status, 'u1'),
        'boxes': np.ascontiguousarray(fields['boxes'][box_rows], '<f4'),
        'scores': np.ascontiguousarray(fields['scores'][box_rows], '<f4'),
        'thresholds': np.ascontiguousarray(fields['thresholds'][box_rows],
                                           '<f4'),
        'failed_indices': idx[failed_rows].astype('<i8'),
        'failed_reasons': _encode_reasons(
            fields['reasons'][failed_rows].tolist()),
    }
    out_path = Path(out_path)
    _write_checked(out_path, arrays, _merged_meta(run_meta, meta), overwrite)
    return PseudoBoxFile.open(out_path)


def _check_duplicates(fields: Dict[str, np.ndarray], starts: np.ndarray,
                      order: np.ndarray, first: np.ndarray,
                      shard_of_row: np.ndarray, paths: List[Path]) -> None:
    """Duplicates of an index must equal its first occurrence bit-exactly."""
    if first.all():
        return
    positions = np.arange(len(order))
    group_first = np.maximum.accumulate(np.where(first, positions, 0))
    dup = order[~first]
    ref = order[group_first[~first]]
    differs = np.zeros(len(dup), bool)
    for name in ('keys', 'sizes', 'labels', 'status', 'reasons', 'counts'):
        a, b = fields[name][dup], fields[name][ref]
        differs |= (a != b).reshape(len(dup), -1).any(1)
    same_count = ~differs
    counts = fields['counts']
    for name in ('boxes', 'scores', 'thresholds'):
        values = fields[name].view(np.uint32)  # bitwise, NaN == NaN
        a = values[_segment_rows(starts[dup[same_count]],
                                 counts[dup[same_count]])]
        b = values[_segment_rows(starts[ref[same_count]],
                                 counts[ref[same_count]])]
        pair = np.repeat(np.flatnonzero(same_count), counts[dup[same_count]])
        bad = (a != b).reshape(len(a), -1).any(1)
        differs[pair[bad]] = True
    if differs.any():
        bad = np.flatnonzero(differs)
        examples = '; '.join(
            f'index {fields["indices"][dup[i]]} in '
            f'{paths[shard_of_row[dup[i]]].name} and '
            f'{paths[shard_of_row[ref[i]]].name}' for i in bad[:5])
        raise BoxFileError(
            f'{bad.size} images have conflicting results in different '
            f'shards ({examples}). Two runs with different settings wrote '
            'into the same work dir; delete the shards of one of them.')
