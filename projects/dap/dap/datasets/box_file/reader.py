"""Opening a pseudo-box file: validated, memory-mapped, pickle-free.

Nothing but :class:`PseudoBoxFile` reads the members, so the layout of
``format.py`` is known here alone: a dataset that reads rows by itself
(``os.pread``) asks :meth:`PseudoBoxFile.member_file` where they lie.
"""
import json
import mmap
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Type

import numpy as np

from .format import (CHUNK_ROWS, FORMAT_NAME, FORMAT_VERSION, MEMBERS,
                     META_FILE, STATUS_FAILED, BoxFileError, PathLike,
                     check_values, first_decrease, image_list_fingerprint)


class MemberFile(NamedTuple):
    """Where a member's data lies: ``length`` C-order rows of ``dtype`` and
    ``row_shape``, from byte ``offset`` of the file ``path``."""
    path: str
    offset: int
    dtype: np.dtype
    row_shape: Tuple[int, ...]
    length: int


def _read_npy_header(path: Path
                     ) -> Tuple[Tuple[int, ...], bool, np.dtype, int]:
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
              shape: Tuple[int, ...]) -> Tuple[np.ndarray, MemberFile]:
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
        raise BoxFileError(f'{path} has dtype {got_dtype}, expected {dtype}')
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
        arr = np.load(path, mmap_mode='r', allow_pickle=False)
    except (ValueError, OSError) as e:
        raise BoxFileError(f'cannot memory-map {path}: {e}') from e
    return arr, MemberFile(
        str(path), offset, got_dtype, tuple(shape[1:]), shape[0])


def _require(meta: Dict, name: str, types: Tuple[type, ...],
             path: Path) -> Any:
    if name not in meta:
        raise BoxFileError(f'{path}: meta.json lacks "{name}"')
    value = meta[name]
    if not isinstance(value, types) or isinstance(value, bool):
        raise BoxFileError(
            f'{path}: meta.json "{name}" has type {type(value).__name__}')
    return value


def _read_meta(path: Path) -> Dict:
    """meta.json of the box file ``path``, format and version checked."""
    if not path.is_dir():
        what = 'is not a directory' if path.exists() else 'does not exist'
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
    return meta


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

    def __init__(self, path: Path, meta: Dict, arrays: Dict[str, np.ndarray],
                 files: Dict[str, MemberFile]) -> None:
        self.path = path
        self.meta = meta
        self._files = files
        for name, arr in arrays.items():
            setattr(self, name, arr)

    @classmethod
    def open(cls: Type['PseudoBoxFile'],
             path: PathLike,
             check_offsets: bool = True) -> 'PseudoBoxFile':
        """Open and validate a box file without reading its box arrays.

        Checks meta.json (format, version, counts), every member's dtype,
        shape and size, the status array and failures; with
        ``check_offsets`` also that ``box_offsets`` never decreases (a
        chunked scan of N int64). Anything wrong raises
        :class:`BoxFileError` naming the file and the problem.
        """
        path = Path(path)
        meta = _read_meta(path)
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
        missing = [
            fname for fname, _, _ in MEMBERS.values()
            if not (path / fname).is_file()
        ]
        if missing:
            raise BoxFileError(f'{path} is incomplete: missing member(s) '
                               f'{", ".join(missing)}')
        arrays, files = {}, {}
        for name, (fname, dtype, shape) in MEMBERS.items():
            arrays[name], files[name] = _open_npy(
                path / fname, dtype, tuple(dims.get(s, s) for s in shape))
        self = cls(path, meta, arrays, files)
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
            bad = first_decrease(off)
            if bad >= 0:
                raise BoxFileError(
                    f'{self.path}: box_offsets.npy is not monotone: '
                    f'offsets[{bad}]={int(off[bad])} > '
                    f'offsets[{bad + 1}]={int(off[bad + 1])}')
        failed = np.asarray(self.failed_indices)
        num_failed = 0
        for start in range(0, n, CHUNK_ROWS):
            st = np.asarray(self.status[start:start + CHUNK_ROWS])
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

    # ------------------------------------------------- reading the files
    def member_file(self, name: str) -> MemberFile:
        """Where the rows of array ``name`` (e.g. ``'boxes'``) lie on disk,
        for readers that ``os.pread`` rows instead of touching the map (a
        touched page stays resident in every process that mapped it)."""
        if name not in self._files:
            raise BoxFileError(f'{name!r} is not a member of a box file; '
                               f'members: {", ".join(self._files)}')
        return self._files[name]

    def release_pages(self) -> None:
        """Drop this process's mapped pages of every member (the data stays
        in the page cache): opening touched some, reads that go through
        :meth:`member_file` never map more."""
        for name in self._files:
            handle = getattr(self, name).base
            if isinstance(handle, mmap.mmap) and hasattr(handle, 'madvise'):
                try:
                    handle.madvise(mmap.MADV_DONTNEED)
                except (OSError, ValueError):  # pragma: no cover
                    pass

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
        if list_fp != self.meta['image_list_fingerprint'] or (self.meta.get(
                'image_keys_fingerprint', keys_fp) != keys_fp):
            raise BoxFileError(
                f'{self.path}: keys/labels do not match the fingerprints '
                'stored in meta.json (the arrays were modified)')
        check_values(
            self.sizes,
            self.labels,
            self.offsets,
            self.status,
            self.boxes,
            self.scores,
            self.thresholds,
            self.num_classes,
            where=str(self.path))
        bad = first_decrease(self.offsets)
        if bad >= 0:
            raise BoxFileError(f'{self.path}: box_offsets.npy decreases at '
                               f'{bad}')

    # ---------------------------------------------------------- pickling
    def __getstate__(self) -> Dict:
        return {'path': str(self.path)}

    def __setstate__(self, state: Dict) -> None:
        other = type(self).open(state['path'], check_offsets=False)
        self.__dict__.update(other.__dict__)
