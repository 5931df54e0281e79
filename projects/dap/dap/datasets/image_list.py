"""mmpretrain's ImageNet image list, read in blocks, and an index on disk.

The list is what mmpretrain's ``ImageNet`` / ``ImageNet21k`` read: an
annotation file of ``<relative path> <label>`` lines (``meta/train.txt``),
or, without one, the class folders ``<prefix>/<class>/**`` in sorted order.
ImageNet-22K has 14M lines; mmpretrain keeps one dict per image in every
rank (~13 GB).  Here the list is parsed once into an index directory of
flat files that every rank reads with ``os.pread``:

    train.txt.dapindex/
      meta.json         format, count, the source file's size / mtime /
                        head and tail sha256 (a changed list is re-indexed)
      keys.bin          every key followed by b'\\n' (utf-8, as in the list)
      key_offsets.i8    <i8 (N+1): key i is keys.bin[off[i]:off[i+1] - 1]
      labels.i8         <i8 (N,): the label as written (not range-checked)

``keys.bin`` is exactly the key part of :func:`image_list_fingerprint`'s
input, so the fingerprint of 14M images is a streamed sha256 of it.  The
index is written to a temporary directory and renamed into place: a killed
build leaves no index (the next run builds it again) and readers never see
a partial one.  Both datasets of DAP (step 2's :class:`IndexedImageNet`,
step 3's ``ImageNetPseudoBoxDataset``) parse lines with the code here.
"""
import copy
import hashlib
import json
import os
import os.path as osp
import re
import shutil
import socket
import tempfile
import time
import uuid
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.fileio import get_file_backend

from .box_file import ImageListHasher

# mmpretrain's ImageNet.IMG_EXTENSIONS: the files its folder scan keeps.
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif')
READ_BLOCK = 4 << 20  # bytes of the annotation file parsed at a time
INDEX_FORMAT = 'dap-image-list-index'
INDEX_VERSION = 1
INDEX_SUFFIX = '.dapindex'
_PROBE_BYTES = 1 << 20  # head / tail of the list hashed to detect changes
_LABEL_RE = re.compile(rb'[+-]?[0-9]+')
_WHITESPACE = b' \t\r\n\x0b\x0c'


class RowDataset:
    """What mmengine's ``BaseDataset`` assumes, for a dataset whose samples
    are rows of on-disk arrays instead of a data list (which would not fit
    for ImageNet-22K).  The dataset sets ``_length`` (its rows) and
    ``_subset = None`` in ``full_init``; mmengine's ``indices`` then keep
    some rows (``_subset``: their positions) and :meth:`_position` maps a
    dataset index to its row."""

    def __len__(self) -> int:
        if not self._fully_initialized:
            self.full_init()
        return self._length

    def load_data_list(self):
        raise NotImplementedError(
            f'{type(self).__name__} keeps no data list (it would not fit '
            'for ImageNet-22K); use len() and get_data_info(i)')

    def get_subset_(self, indices: Union[int, Sequence[int]]) -> None:
        if not self._fully_initialized:
            self.full_init()
        self._apply_indices(indices)

    def get_subset(self, indices: Union[int, Sequence[int]]):
        if not self._fully_initialized:
            self.full_init()
        other = copy.copy(self)
        other._metainfo = copy.deepcopy(self._metainfo)
        other._apply_indices(indices)
        return other

    def _apply_indices(self, indices: Union[int, Sequence[int]]) -> None:
        """mmengine's ``indices``: an int (first / last n) or positions."""
        current = (
            np.arange(self._length, dtype=np.int64)
            if self._subset is None else self._subset)
        self._subset = subset_positions(current, indices)
        self._length = len(self._subset)

    def _position(self, idx: int) -> int:
        """The row of dataset index ``idx`` (negative: from the end)."""
        idx = int(idx)
        if idx < 0:
            idx += self._length
        if not 0 <= idx < self._length:
            raise IndexError(f'index {idx} out of range for '
                             f'{self._length} images')
        return idx if self._subset is None else int(self._subset[idx])


class ImageListError(ValueError):
    """The image list (annotation file / class folders) is malformed."""


class ImageListNotFound(ImageListError, FileNotFoundError):
    """The annotation file or image folder does not exist."""


# --------------------------------------------------------------- parsing
def parse_lines(lines: Sequence[bytes], first_line: int,
                ann_file: str) -> Tuple[List[bytes], np.ndarray, np.ndarray]:
    """mmpretrain's ``line.strip().rsplit(' ', 1)`` on lines (no b'\\n').

    Returns (keys, labels, line numbers).  Blank lines are skipped;
    anything mmpretrain would read differently or fail on is an error
    naming the line.
    """
    keys, labels, numbers = [], [], []
    for number, raw in enumerate(lines, first_line):
        line = raw.strip(_WHITESPACE)
        if not line:
            continue
        where = f'{ann_file}:{number}'
        if b'\r' in line or b'\0' in line:
            raise ImageListError(
                f'{where}: a carriage return or NUL inside the line '
                f'{line[:200]!r} (mmpretrain would split it there)')
        parts = line.rsplit(b' ', 1)
        if len(parts) != 2 or not parts[0].strip(_WHITESPACE):
            raise ImageListError(
                f'{where}: expected "<relative path> <label>", got '
                f'{line[:200]!r}')
        if not _LABEL_RE.fullmatch(parts[1]) or len(parts[1]) > 18:
            raise ImageListError(
                f'{where}: label {parts[1][:50]!r} is not an integer')
        try:
            parts[0].decode('utf-8')
        except UnicodeDecodeError as e:
            raise ImageListError(
                f'{where}: the path is not valid UTF-8 ({e.reason} at byte '
                f'{e.start}): {parts[0][:200]!r}') from None
        keys.append(parts[0])
        labels.append(int(parts[1]))
        numbers.append(number)
    return (keys, np.array(labels,
                           dtype=np.int64), np.array(numbers, dtype=np.int64))


def _segment_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Positions of the concatenated ranges [start, start + length)."""
    total = int(lengths.sum())
    first = np.cumsum(lengths) - lengths
    return np.repeat(starts - first, lengths) + np.arange(
        total, dtype=np.int64)


def _parse_clean_block(buf: bytes
                       ) -> Optional[Tuple[bytes, np.ndarray, np.ndarray]]:
    """Vectorised parse of complete lines ``key label\\n`` (CRLF allowed).

    Returns (keys blob, key lengths, labels), or None when the block has
    anything unusual (blank lines, other whitespace at the ends, a label
    that is not 1-9 digits, NUL, stray CR, invalid UTF-8, a key starting
    with a path separator): :func:`parse_lines` then reads it line by line.
    """
    a = np.frombuffer(buf, np.uint8)
    ends = np.flatnonzero(a == 10)
    if not len(ends) or ends[-1] != len(a) - 1:
        return None
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    crlf = (ends > starts) & (a[ends - 1] == 13)
    if int(np.count_nonzero(a == 13)) != int(np.count_nonzero(crlf)) or \
            np.count_nonzero(a == 0):
        return None
    ends = ends - crlf
    if (ends <= starts).any():
        return None  # blank line
    edge = np.concatenate([a[starts], a[ends - 1]])
    if np.isin(edge, np.frombuffer(_WHITESPACE, np.uint8)).any() or \
            np.isin(a[starts], (47, 92)).any():
        return None
    if (a >= 128).any():
        try:
            buf.decode('utf-8')
        except UnicodeDecodeError:
            return None
    spaces = np.flatnonzero(a == 32)
    last = np.searchsorted(spaces, ends) - 1
    if (last < 0).any():
        return None
    space = spaces[last]
    label_len = ends - space - 1
    if (space <= starts).any() or (label_len < 1).any() or \
            (label_len > 9).any():
        return None
    pos = _segment_positions(space + 1, label_len)
    digits = a[pos].astype(np.int64) - 48
    if ((digits < 0) | (digits > 9)).any():
        return None
    weights = 10**(np.repeat(ends, label_len) - pos - 1)
    labels = np.add.reduceat(digits * weights,
                             np.cumsum(label_len) - label_len)
    # keys: each line's bytes before its last space, then b'\n'
    out = a.copy()
    out[space] = 10
    delta = np.zeros(len(a) + 1, np.int8)
    delta[space + 1] = 1
    delta[np.flatnonzero(a == 10) + 1] = -1
    drop = np.cumsum(delta[:-1], dtype=np.int8).astype(bool)
    return out[~drop].tobytes(), space - starts, labels


def read_ann_blocks(
    ann_file: str,
    vectorised: bool = True
) -> Iterator[Tuple[bytes, np.ndarray, np.ndarray, np.ndarray]]:
    """(keys blob, key lengths, labels, line numbers) per block of lines.

    The keys blob holds each key followed by ``b'\\n'``.  Lines are parsed
    like mmpretrain's ``CustomDataset`` (see :func:`parse_lines`); clean
    blocks take a vectorised path with the same result.
    """
    if not osp.isfile(ann_file):
        raise ImageListNotFound(
            f'image list {ann_file} does not exist (mmpretrain format: one '
            '"relative/path.JPEG label" per line; or set ann_file="" to scan '
            'class folders)')
    line_no, rest = 1, b''
    with open(ann_file, 'rb') as f:
        while True:
            block = f.read(READ_BLOCK)
            if not block and not rest:
                break
            data = rest + block
            if not block:  # last line without a newline
                data += b'\n'
            cut = data.rfind(b'\n') + 1
            if cut == 0:
                rest = data
                continue
            data, rest = data[:cut], data[cut:]
            count = data.count(b'\n')
            clean = _parse_clean_block(data) if vectorised else None
            if clean is not None:
                blob, lengths, labels = clean
                numbers = np.arange(line_no, line_no + count, dtype=np.int64)
            else:
                keys, labels, numbers = parse_lines(
                    data.split(b'\n')[:-1], line_no, ann_file)
                for key, number in zip(keys, numbers):
                    if key[:1] in (b'/', b'\\'):
                        raise ImageListError(
                            f'{ann_file}:{number}: {key[:200]!r} is an '
                            'absolute path; image keys are paths relative '
                            'to data_prefix')
                blob = b''.join(k + b'\n' for k in keys)
                lengths = np.fromiter(map(len, keys), np.int64, len(keys))
            line_no += count
            yield blob, lengths, labels, numbers


def find_class_folders(root: str) -> List[str]:
    """Class folders under ``root`` in sorted order (mmpretrain's
    ``find_folders``)."""
    if not osp.isdir(root):
        raise ImageListNotFound(
            f'image folder {root} does not exist (expected <class>/<image> '
            'folders, or give an ann_file)')
    backend = get_file_backend(root, enable_singleton=True)
    folders = sorted(
        backend.list_dir_or_file(
            root, list_dir=True, list_file=False, recursive=False))
    if not folders:
        raise ImageListError(f'no class folders under {root}')
    return folders


def scan_class_folders(
    root: str,
    folders: Sequence[str],
    extensions: Sequence[str] = IMG_EXTENSIONS
) -> Iterator[Tuple[int, List[bytes]]]:
    """(label, utf-8 keys) per class folder, in mmpretrain's order
    (``get_samples``: files sorted, recursive, filtered by extension)."""
    backend = get_file_backend(root, enable_singleton=True)
    extensions = tuple(e.lower() for e in extensions)
    for label, folder in enumerate(folders):
        files = backend.list_dir_or_file(
            backend.join_path(root, folder),
            list_dir=False,
            list_file=True,
            recursive=True)
        yield label, [
            backend.join_path(folder, f).encode('utf-8') for f in sorted(files)
            if f.lower().endswith(extensions)
        ]


# ------------------------------------------------------------- row reads
class FileRows:
    """Rows of a flat array in a file, read with ``os.pread``.

    A memory-mapped page stays in the process's resident set once touched,
    so over a pass every rank and worker would map the whole file; reads
    through the page cache share it and keep the resident set flat.  The
    descriptor is opened lazily and not pickled (dataloader workers open
    their own).
    """

    def __init__(self, path: str, offset: int, dtype: np.dtype,
                 row_shape: Tuple[int, ...], length: int) -> None:
        self.path = path
        self.offset = int(offset)
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(row_shape)
        self.row_bytes = self.dtype.itemsize * int(np.prod(row_shape))
        self.length = int(length)
        self._fd: Optional[int] = None
        self._pid = 0

    def read_bytes(self, start: int, stop: int) -> bytes:
        """Bytes [start, stop) of the data (after ``offset``)."""
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        size = stop - start
        data = os.pread(self._fd, size, self.offset + start)
        if len(data) != size:
            raise ImageListError(f'{self.path} is shorter than expected '
                                 '(truncated while in use?)')
        return data

    def rows(self, start: int, stop: int) -> np.ndarray:
        if not 0 <= start <= stop <= self.length:
            raise IndexError(f'{self.path}: rows {start}:{stop} outside '
                             f'[0, {self.length}]')
        data = self.read_bytes(start * self.row_bytes, stop * self.row_bytes)
        return np.frombuffer(data, self.dtype).reshape((stop - start, ) +
                                                       self.row_shape)

    def __getstate__(self) -> dict:
        return dict(self.__dict__, _fd=None, _pid=0)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


def subset_positions(current: np.ndarray,
                     indices: Union[int, Sequence[int]]) -> np.ndarray:
    """mmengine's ``indices``: an int (first / last n) or positions."""
    if isinstance(indices, int):
        return current[:indices] if indices >= 0 else current[indices:]
    pos = np.asarray(indices, dtype=np.int64).reshape(-1)
    if pos.size and (pos.min() < -len(current) or pos.max() >= len(current)):
        raise IndexError(f'indices out of range for {len(current)} images')
    return current[pos]


# ----------------------------------------------------------------- index
def _source_stat(path: str) -> dict:
    """What identifies the content of the list file (cheaply)."""
    st = os.stat(path)
    with open(path, 'rb') as f:
        head = hashlib.sha256(f.read(_PROBE_BYTES)).hexdigest()
        f.seek(max(0, st.st_size - _PROBE_BYTES))
        tail = hashlib.sha256(f.read(_PROBE_BYTES)).hexdigest()
    return dict(
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        head_sha256=head,
        tail_sha256=tail)


class _IndexWriter:
    """Appends blocks to a temporary index directory, renames it at the
    end (a killed build leaves only a ``.tmp-`` directory)."""

    def __init__(self, final: str) -> None:
        self.final = final
        parent = osp.dirname(osp.abspath(final))
        os.makedirs(parent, exist_ok=True)
        _remove_dead_builds(final)
        self.tmp = (f'{final}.tmp-{socket.gethostname()}-{os.getpid()}-'
                    f'{uuid.uuid4().hex[:8]}')
        os.mkdir(self.tmp)
        self._keys = open(osp.join(self.tmp, 'keys.bin'), 'wb')
        self._offsets = open(osp.join(self.tmp, 'key_offsets.i8'), 'wb')
        self._labels = open(osp.join(self.tmp, 'labels.i8'), 'wb')
        self._offsets.write(np.zeros(1, '<i8').tobytes())
        self.count = 0
        self.key_bytes = 0

    def add(self, blob: bytes, lengths: np.ndarray,
            labels: np.ndarray) -> None:
        self._keys.write(blob)
        offsets = self.key_bytes + np.cumsum(lengths.astype(np.int64) + 1)
        self._offsets.write(offsets.astype('<i8').tobytes())
        self._labels.write(np.asarray(labels).astype('<i8').tobytes())
        self.count += len(lengths)
        self.key_bytes += len(blob)

    def finish(self, meta: dict) -> None:
        for f in (self._keys, self._offsets, self._labels):
            f.flush()
            os.fsync(f.fileno())
            f.close()
        meta = dict(
            meta,
            format=INDEX_FORMAT,
            version=INDEX_VERSION,
            num_images=self.count,
            key_bytes=self.key_bytes)
        with open(osp.join(self.tmp, 'meta.json'), 'w') as f:
            json.dump(meta, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        if osp.exists(self.final):  # stale (or built meanwhile): replace
            trash = f'{self.final}.old-{uuid.uuid4().hex[:8]}'
            try:
                os.rename(self.final, trash)
            except FileNotFoundError:
                trash = None
            os.rename(self.tmp, self.final)
            if trash:
                shutil.rmtree(trash, ignore_errors=True)
        else:
            try:
                os.rename(self.tmp, self.final)
            except OSError:  # another process renamed its build first
                shutil.rmtree(self.tmp, ignore_errors=True)

    def abort(self) -> None:
        for f in (self._keys, self._offsets, self._labels):
            f.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _remove_dead_builds(final: str) -> None:
    """Delete temporary directories of killed builds on this host."""
    parent, name = osp.split(osp.abspath(final))
    pattern = re.compile(re.escape(name) + r'\.tmp-(.+)-(\d+)-[0-9a-f]{8}$')
    for entry in os.listdir(parent):
        m = pattern.match(entry)
        if not m or m.group(1) != socket.gethostname():
            continue
        try:
            os.kill(int(m.group(2)), 0)
        except ProcessLookupError:
            shutil.rmtree(osp.join(parent, entry), ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass


class ImageListIndex:
    """An opened index directory (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path
        with open(osp.join(path, 'meta.json')) as f:
            self.meta = json.load(f)
        if self.meta.get('format') != INDEX_FORMAT or \
                self.meta.get('version') != INDEX_VERSION:
            raise ImageListError(f'{path} is not a version {INDEX_VERSION} '
                                 'image list index')
        n = self.num_images = int(self.meta['num_images'])
        key_bytes = int(self.meta['key_bytes'])
        sizes = {
            'keys.bin': key_bytes,
            'key_offsets.i8': 8 * (n + 1),
            'labels.i8': 8 * n
        }
        for name, size in sizes.items():
            actual = os.stat(osp.join(path, name)).st_size
            if actual != size:
                raise ImageListError(
                    f'{path}/{name} has {actual} bytes, expected {size}')
        self.keys = FileRows(
            osp.join(path, 'keys.bin'), 0, np.uint8, (), key_bytes)
        self.offsets = FileRows(
            osp.join(path, 'key_offsets.i8'), 0, '<i8', (), n + 1)
        self.labels = FileRows(osp.join(path, 'labels.i8'), 0, '<i8', (), n)
        if int(self.offsets.rows(n, n + 1)[0]) != key_bytes:
            raise ImageListError(f'{path}: key offsets do not end at the '
                                 'size of keys.bin')

    def key(self, i: int) -> bytes:
        start, stop = (int(v) for v in self.offsets.rows(i, i + 2))
        return self.keys.read_bytes(start, stop - 1)

    def label(self, i: int) -> int:
        return int(self.labels.rows(i, i + 1)[0])

    def key_blocks(self,
                   start: int,
                   stop: int,
                   block: int = 1 << 20) -> Iterator[Tuple[int, bytes]]:
        """(count, keys blob with b'\\n' after each key) for [start, stop)."""
        for first in range(start, stop, block):
            last = min(stop, first + block)
            lo, hi = (
                int(self.offsets.rows(i, i + 1)[0]) for i in (first, last))
            yield last - first, self.keys.read_bytes(lo, hi)

    def fingerprint(self,
                    num_classes: int,
                    positions: Optional[np.ndarray] = None,
                    progress: Optional[Callable[[int, int], None]] = None,
                    block: int = 1 << 20) -> str:
        """:func:`image_list_fingerprint` of (keys, labels) with labels
        outside ``[0, num_classes)`` as -1 (how the hook stores them).

        ``positions``: a subset of rows (default all), in this order.
        """
        total = self.num_images if positions is None else len(positions)
        hasher = ImageListHasher(total)
        done = 0
        for first in range(0, total, block):
            last = min(total, first + block)
            if positions is None:
                (count, blob), = self.key_blocks(first, last, last - first)
            else:
                rows = positions[first:last]
                if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and \
                        (np.diff(rows) == 1).all():
                    (count, blob), = self.key_blocks(
                        int(rows[0]),
                        int(rows[-1]) + 1, len(rows))
                else:
                    count = len(rows)
                    blob = b''.join(self.key(int(i)) + b'\n' for i in rows)
            hasher.update_keys(blob, count)
            done += count
            if progress is not None:
                progress(done, 2 * total)
        for first in range(0, total, block):
            last = min(total, first + block)
            if positions is None:
                labels = self.labels.rows(first, last)
            else:
                labels = np.array(
                    [self.label(int(i)) for i in positions[first:last]],
                    np.int64)
            labels = np.where((labels >= 0) & (labels < num_classes), labels,
                              -1)
            hasher.update_labels(labels)
            if progress is not None:
                progress(total + last, 2 * total)
        return hasher.hexdigest()


def default_index_path(ann_file: str, index_dir: Optional[str]) -> str:
    """``<ann_file>.dapindex`` next to the list, or in ``index_dir``."""
    ann_file = osp.abspath(ann_file)
    if index_dir is None:
        return ann_file + INDEX_SUFFIX
    tag = hashlib.sha256(ann_file.encode('utf-8')).hexdigest()[:12]
    return osp.join(index_dir, f'{osp.basename(ann_file)}-{tag}'
                    f'{INDEX_SUFFIX}')


def open_index_if_current(path: str,
                          ann_file: str) -> Optional[ImageListIndex]:
    """The index at ``path`` if it exists and was built from this version
    of ``ann_file``; else None."""
    if not osp.isfile(osp.join(path, 'meta.json')):
        return None
    try:
        index = ImageListIndex(path)
    except (ImageListError, OSError, ValueError, KeyError):
        return None
    if index.meta.get('source') != _source_stat(ann_file):
        return None
    return index


def build_ann_index(ann_file: str,
                    path: str,
                    progress: Optional[Callable[[int, int], None]] = None
                    ) -> ImageListIndex:
    """Parse ``ann_file`` into an index at ``path`` (atomically)."""
    if not osp.isfile(ann_file):
        raise ImageListNotFound(
            f'image list {ann_file} does not exist (mmpretrain format: one '
            '"relative/path.JPEG label" per line; or set ann_file="" to scan '
            'class folders)')
    source = _source_stat(ann_file)
    writer = _IndexWriter(path)
    try:
        for blob, lengths, labels, _ in read_ann_blocks(ann_file):
            writer.add(blob, lengths, labels)
            if progress is not None:
                progress(writer.count, -1)
        if _source_stat(ann_file) != source:
            raise ImageListError(f'{ann_file} changed while it was indexed')
        writer.finish(dict(source=source, ann_file=osp.abspath(ann_file)))
    except BaseException:
        writer.abort()
        raise
    return ImageListIndex(path)


def build_folder_index(root: str, folders: Sequence[str],
                       extensions: Sequence[str], index_dir: Optional[str]
                       ) -> Tuple[ImageListIndex, List[str]]:
    """Scan class folders into a fresh index in a temporary directory
    (folder contents cannot be checked for changes cheaply, so this index
    is never reused).  Returns (index, empty class folders)."""
    parent = tempfile.mkdtemp(prefix='dap-folder-index-', dir=index_dir)
    path = osp.join(parent, 'folders' + INDEX_SUFFIX)
    writer = _IndexWriter(path)
    empty = []
    try:
        for label, keys in scan_class_folders(root, folders, extensions):
            if not keys:
                empty.append(folders[label])
                continue
            writer.add(b''.join(k + b'\n' for k in keys),
                       np.fromiter(map(len, keys), np.int64, len(keys)),
                       np.full(len(keys), label, np.int64))
        writer.finish(
            dict(source=dict(folders=osp.abspath(root), built=time.time())))
    except BaseException:
        writer.abort()
        shutil.rmtree(parent, ignore_errors=True)
        raise
    return ImageListIndex(path), empty
