"""Writing a pseudo-box file: checked, canonical and atomic.

The same boxes always give a byte-identical file (canonical key width,
sorted ``meta.json`` without timestamps), and a file appears complete or
not at all (written into a temp dir beside it, then renamed).
"""
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

from .format import (CHUNK_ROWS, FORMAT_NAME, FORMAT_VERSION, MAX_REASON_BYTES,
                     MEMBERS, META_FILE, STATUS_FAILED, BoxFileError, PathLike,
                     canonical_json, check_key_block, check_values,
                     image_list_fingerprint, key_bytes)


def encode_keys(keys: Any) -> np.ndarray:
    """Image keys as a fixed-width utf-8 ``S`` array, checked."""
    n = len(keys)
    if isinstance(keys, np.ndarray) and keys.dtype.kind == 'S':
        arr = np.asarray(keys).reshape(n)
    else:
        parts = [
            np.array(key_bytes(keys[s:s + CHUNK_ROWS]), dtype=bytes)
            for s in range(0, n, CHUNK_ROWS)
        ]
        arr = np.concatenate(parts) if parts else np.zeros(0, 'S1')
    width = 1
    for start in range(0, n, CHUNK_ROWS):
        chunk = arr[start:start + CHUNK_ROWS].tolist()
        check_key_block(b'\n'.join(chunk) + b'\n', len(chunk), start)
        lengths = list(map(len, chunk))
        if 0 in lengths:
            raise BoxFileError(
                f'image {start + lengths.index(0)} has an empty key')
        width = max(width, max(lengths))
    # canonical width (the longest key) keeps equal key lists byte-equal
    return arr if arr.dtype.itemsize == width else arr.astype(f'S{width}')


def encode_reasons(reasons: Iterable[str]) -> np.ndarray:
    """Failure reasons as utf-8 ``S`` (cut at MAX_REASON_BYTES)."""
    out = []
    for r in reasons:
        b = (r if isinstance(r, bytes) else str(r).encode('utf-8'))
        b = b.replace(b'\0', b' ')[:MAX_REASON_BYTES]
        out.append(b.decode('utf-8', 'ignore').encode('utf-8') or b'?')
    return np.array(out, dtype=bytes) if out else np.zeros(0, 'S1')


def _as_array(value: Any, name: str, dtype: Any,
              shape: Tuple[int, ...]) -> np.ndarray:
    """Integer ``value`` as a C-contiguous ``dtype`` array of ``shape``."""
    arr = np.asarray(value)
    if arr.size == 0 and arr.ndim == 1 and len(shape) > 1:
        arr = arr.reshape((0, ) + shape[1:])
    if arr.size and arr.dtype.kind not in 'iu':
        raise BoxFileError(
            f"{name} must have a numeric dtype of kind 'iu', got {arr.dtype}")
    if arr.shape != tuple(shape):
        raise BoxFileError(f'{name} has shape {arr.shape}, expected {shape}')
    return np.ascontiguousarray(arr, dtype=dtype)


def fsync_dir(path: Path) -> None:
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


def _build_meta(meta: Dict, n: int, m: int, num_failed: int, list_fp: str,
                keys_fp: str) -> Dict:
    """The meta.json object: caller's meta + counts and fingerprints."""
    if not isinstance(meta, dict):
        raise BoxFileError(f'meta must be a dict, got {type(meta).__name__}')
    out = json.loads(canonical_json(meta, 'meta'))
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
            raise BoxFileError(f'meta["num_classes"]={out["num_classes"]} but '
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
        fsync_dir(tmp)
        if path.exists():
            os.rename(path, old)
        os.rename(tmp, path)
        fsync_dir(path.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)


def write_arrays(path: Path, arrays: Dict[str, np.ndarray], meta: Dict,
                 overwrite: bool) -> None:
    """Write the members (typed as ``MEMBERS`` says) after checking values
    and completing ``meta``; the core of :func:`write_box_file` and of
    :func:`~.merge.merge_shards`."""
    keys, labels = arrays['keys'], arrays['labels']
    meta_obj = _build_meta(meta, len(keys), len(arrays['boxes']),
                           len(arrays['failed_indices']),
                           image_list_fingerprint(keys, labels),
                           image_list_fingerprint(keys))
    check_values(
        arrays['sizes'],
        labels,
        arrays['offsets'],
        arrays['status'],
        arrays['boxes'],
        arrays['scores'],
        arrays['thresholds'],
        meta_obj['num_classes'],
        where='box file data')
    _write_dir(path, arrays, canonical_json(meta_obj, 'meta'), overwrite)


def _stack_per_image(values: Sequence[Any],
                     n: int,
                     name: str,
                     width: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Concatenate per-image arrays; returns (rows, counts)."""
    if len(values) != n:
        raise BoxFileError(f'{name}: {len(values)} entries for {n} images')
    shape = (-1, width) if width else (-1, )
    parts = [np.asarray(v, dtype=np.float32).reshape(shape) for v in values]
    counts = np.fromiter((len(p) for p in parts), np.int64, count=n)
    empty = np.zeros((0, width) if width else 0, np.float32)
    return (np.concatenate(parts) if parts else empty), counts


def _failed_arrays(failed: Optional[Mapping[int, str]],
                   n: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(status, sorted failed indices, their reasons) from ``failed``."""
    if failed is None:
        failed = {}
    if not isinstance(failed, Mapping):
        raise BoxFileError('failed must be a dict {image index: reason}, got '
                           f'{type(failed).__name__}')
    reasons = {int(i): r for i, r in failed.items()}
    indices = np.array(sorted(reasons), np.int64)
    if indices.size and not 0 <= indices[0] <= indices[-1] < n:
        bad = indices[0] if indices[0] < 0 else indices[-1]
        raise BoxFileError(f'failed index {bad} out of range')
    status = np.zeros(n, np.uint8)
    status[indices] = STATUS_FAILED
    return status, indices, encode_reasons(reasons[i]
                                           for i in indices.tolist())


def write_box_file(path: PathLike,
                   keys: Any,
                   sizes: Any,
                   labels: Any,
                   boxes_per_image: Sequence[Any],
                   scores_per_image: Sequence[Any],
                   thresholds_per_image: Sequence[Any],
                   meta: Dict,
                   failed: Optional[Mapping[int, str]] = None,
                   overwrite: bool = False) -> None:
    """Write a box file from per-image results.

    Args:
        path: the box-file directory to create (suffix ``.dapbox``).
        keys: N image keys (list of str or numpy ``S``/``U`` array).
        sizes: (N, 2) int (width, height). labels: (N,) int 0-based.
        boxes_per_image, scores_per_image, thresholds_per_image: N arrays
            of shape (k, 4), (k,), (k,) (float, k boxes of that image).
        meta: ``num_classes`` and/or ``classes``, ``generation_config``,
            ``checkpoint_sha256``, optionally ``image_list_fingerprint``
            (checked against the data), and any extra JSON fields.
        failed: ``{index: reason}`` of the images that could not be
            processed (no boxes; size and label may be 0 and -1).
        overwrite: replace an existing box file (atomically).
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
    keys = encode_keys(keys)
    offsets = np.zeros(n + 1, '<i8')
    np.cumsum(counts, out=offsets[1:])
    status, failed_indices, failed_reasons = _failed_arrays(failed, n)
    arrays = {
        'keys': keys,
        'sizes': _as_array(sizes, 'sizes', '<i4', (n, 2)),
        'labels': _as_array(labels, 'labels', '<i8', (n, )),
        'offsets': offsets,
        'status': status,
        'boxes': boxes,  # float32 rows from _stack_per_image
        'scores': scores,
        'thresholds': thresholds,
        'failed_indices': failed_indices,
        'failed_reasons': failed_reasons,
    }
    write_arrays(Path(path), arrays, meta, overwrite)
