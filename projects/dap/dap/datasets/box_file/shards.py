"""Per-rank pseudo-box shards: restartable multi-rank generation.

Each rank writes its results with :class:`ShardWriter` into one shard
directory; :func:`~.merge.merge_shards` joins them.  A killed run is
resumed by skipping :meth:`ShardWriter.done_indices`, and the merged file
is byte-identical to that of an uninterrupted run.  ``run.json`` holds the
run's meta, so shards of another generation config, checkpoint or image
list are never mixed.
"""
import hashlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .format import (STATUS_FAILED, STATUS_OK, BoxFileError, PathLike,
                     canonical_json, describe_changes, key_bytes)
from .writer import encode_reasons, fsync_dir

SHARD_FORMAT_NAME = 'dap-pseudo-box-shard'
SHARD_FORMAT_VERSION = 1
RUN_FILE = 'run.json'
_SHARD_RE = re.compile(r'^shard-r(\d{5})-(\d{6})\.npz$')


def run_meta_digest(run_meta: Dict) -> str:
    return hashlib.sha256(
        canonical_json(run_meta, 'run_meta').encode('utf-8')).hexdigest()


def read_run_json(shard_dir: Path) -> Optional[Dict]:
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
        text = canonical_json(
            {
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
    existing = read_run_json(shard_dir)
    if existing != run_meta:
        changes = '; '.join(describe_changes(existing, run_meta, depth=1))
        raise BoxFileError(
            f'{shard_dir} already holds pseudo-box shards of another run '
            f'({changes}). Shards made with '
            'another generation config, checkpoint or image list must not '
            'be mixed: use a new work dir, or delete '
            f'{shard_dir}/shard-*.npz and {path.name} to start over.')


def shard_paths(shard_dir: Path) -> List[Path]:
    """All finished shard files (temp files of killed writers excluded)."""
    if not shard_dir.is_dir():
        return []
    return sorted(p for p in shard_dir.iterdir() if _SHARD_RE.match(p.name))


SHARD_FIELDS = {
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


def empty_shard() -> Dict[str, np.ndarray]:
    """Zero-row arrays of every shard field (merging no shards)."""
    return {
        name:
        np.zeros((0, ) + ((2, ) if name == 'sizes' else
                          (4, ) if name == 'boxes' else ()),
                 dtype if dtype is not None else 'S1')
        for name, (dtype, _) in SHARD_FIELDS.items()
    }


def read_shard(
    path: Path,
    digest: Optional[str],
    fields: Sequence[str] = tuple(SHARD_FIELDS)
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
        dtype, ndim = SHARD_FIELDS[name]
        if (arr.dtype.kind != 'S'
                if dtype is None else arr.dtype != dtype) or arr.ndim != ndim:
            raise BoxFileError(
                f'shard {path}: {name} has dtype {arr.dtype} and {arr.ndim} '
                f'dims; {hint}')
    if len(fields) == len(SHARD_FIELDS):
        n, m = len(out['indices']), len(out['boxes'])
        per_image = ('keys', 'sizes', 'labels', 'status', 'counts', 'reasons')
        consistent = (
            all(len(out[k]) == n
                for k in per_image) and out['sizes'].shape[1:] == (2, )
            and out['boxes'].shape[1:] == (4, ) and len(out['scores']) == m
            and len(out['thresholds']) == m and int(out['counts'].sum()) == m
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
        self.run_meta = json.loads(canonical_json(run_meta, 'run_meta'))
        self.num_images = self.run_meta.get('num_images')
        self.num_classes = self.run_meta.get('num_classes')
        self._digest = run_meta_digest(self.run_meta)
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        _claim_run(self.shard_dir, self.run_meta)
        seqs = [
            int(m.group(2)) for m in map(_SHARD_RE.match, (
                p.name for p in shard_paths(self.shard_dir)))
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
            read_shard(p, self._digest, ('indices', ))['indices']
            for p in shard_paths(self.shard_dir)
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
        key_b = key_bytes([key])[0]
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
        self._pending.append((index, key_b, w, h, label, STATUS_OK, b'', boxes,
                              scores, thresholds))
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
             STATUS_FAILED, encode_reasons([reason])[0],
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
        fsync_dir(self.shard_dir)
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
