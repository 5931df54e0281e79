"""ImageNet images with the CAM pseudo boxes of step 2, as an mmdet dataset.

ImageNet-22K has 14M images.  mmengine's ``BaseDataset`` builds one Python
dict per image and pickles them all up front, in every rank (mmdet #11318:
tens of GB of host RAM).  This dataset keeps nothing per image in Python:
the arrays of the pseudo-box file *are* the image list (after checking that
the file was made for this list), and every sample is read from them when
it is asked for.  Rows are read with ``os.pread`` rather than through the
memory map: a mapped page stays in the process's resident set once touched
(with the kernel's fault-around, 64 KB per touch), so over an epoch every
worker would map the whole file; read through the page cache, the file is
shared by all ranks and workers and the resident set stays flat.
"""
import copy
import hashlib
import logging
import mmap
import os
import os.path as osp
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.fileio import get_file_backend
from mmengine.logging import print_log
from mmengine.utils import is_abs

from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS

from ..box_file import BoxFileError, PseudoBoxFile

# mmpretrain's ImageNet.IMG_EXTENSIONS: the files its folder scan keeps.
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif')
_READ_BLOCK = 4 << 20  # bytes read at a time from an annotation file


class _ImageListDigest:
    """``box_file.image_list_fingerprint(keys, labels)`` computed while the
    list streams by, so a 14M-image list is never held in memory at once.

    The digest header holds the image count, which a stream only knows at
    its end; ``num_images`` is the box file's count, and a list of another
    length is reported as such (its digest is then meaningless).
    """

    def __init__(self, num_images: int, num_classes: int) -> None:
        self.num_images = num_images
        self.num_classes = num_classes
        self.count = 0
        self._label_dtype = np.min_scalar_type(max(num_classes - 1, 0))
        self._labels: List[np.ndarray] = []
        self._digest = hashlib.sha256(b'dap-image-list/1 n=%d labels=1\n' %
                                      num_images)

    def add(self, keys: List[bytes], labels: np.ndarray, where: str) -> None:
        if not keys:
            return
        labels = np.asarray(labels, dtype=np.int64)
        bad = np.flatnonzero((labels < 0) | (labels >= self.num_classes))
        if bad.size:
            raise BoxFileError(
                f'{where}: image {keys[bad[0]].decode("utf-8", "replace")!r}'
                f' has label {labels[bad[0]]}, outside the pseudo-box file\'s'
                f' {self.num_classes} classes')
        self.count += len(keys)
        if self.count <= self.num_images:
            self._digest.update(b'\n'.join(keys) + b'\n')
            self._labels.append(labels.astype(self._label_dtype))

    def hexdigest(self) -> Optional[str]:
        """The fingerprint, or None when the count differs from the file."""
        if self.count != self.num_images:
            return None
        for chunk in self._labels:
            self._digest.update(chunk.astype('<i8').tobytes())
        self._labels = []
        return self._digest.hexdigest()


class _RowReader:
    """Reads rows of the box file's ``.npy`` members with ``os.pread``.

    Members that are not plain file-backed memory maps (never the case for
    :meth:`PseudoBoxFile.open`) are read through the array instead.
    """

    MEMBERS = ('keys', 'sizes', 'labels', 'offsets', 'boxes', 'scores')

    def __init__(self, box: PseudoBoxFile) -> None:
        self._box = box
        self._layout = {}
        for name in self.MEMBERS:
            arr = getattr(box, name)
            if isinstance(arr, np.memmap) and arr.filename and \
                    arr.flags.c_contiguous:
                row_shape = arr.shape[1:]
                row_bytes = arr.dtype.itemsize * int(np.prod(row_shape))
                self._layout[name] = (arr.filename, int(arr.offset),
                                      arr.dtype, row_shape, row_bytes,
                                      len(arr))
        self._fds = {}

    def rows(self, name: str, start: int, stop: int) -> np.ndarray:
        layout = self._layout.get(name)
        if layout is None:
            return np.array(getattr(self._box, name)[start:stop])
        path, offset, dtype, row_shape, row_bytes, length = layout
        if not 0 <= start <= stop <= length:
            raise BoxFileError(f'{path}: rows {start}:{stop} outside '
                               f'[0, {length}]')
        fd = self._fds.get(name)
        if fd is None:
            fd = self._fds[name] = os.open(path, os.O_RDONLY)
        size = (stop - start) * row_bytes
        data = os.pread(fd, size, offset + start * row_bytes)
        if len(data) != size:
            raise BoxFileError(f'{path} is shorter than its header says '
                               '(truncated while in use?)')
        return np.frombuffer(data, dtype).reshape((stop - start, ) +
                                                  row_shape)

    def __getstate__(self) -> dict:  # file descriptors stay behind
        return dict(self.__dict__, _fds={})

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


def _release_mapped_pages(box: PseudoBoxFile) -> None:
    """Unmap the pages that opening / validating touched (they stay in the
    page cache); reads go through :class:`_RowReader` from then on."""
    for name in _RowReader.MEMBERS + ('status', 'thresholds'):
        handle = getattr(getattr(box, name, None), '_mmap', None)
        if handle is not None and hasattr(handle, 'madvise'):
            try:
                handle.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):  # pragma: no cover
                pass


def _parse_ann_lines(lines: List[bytes], first_line: int,
                     ann_file: str) -> Tuple[List[bytes], np.ndarray]:
    """mmpretrain's ``line.strip().rsplit(' ', 1)`` on a block of lines;
    blank lines are skipped."""
    keys, labels = [], []
    for number, line in enumerate(lines, first_line):
        line = line.strip()
        if not line:
            continue
        parts = line.rsplit(b' ', 1)
        if len(parts) != 2 or not parts[0]:
            raise ValueError(
                f'{ann_file}:{number}: expected "<relative path> <label>", '
                f'got {line[:200]!r}')
        keys.append(parts[0])
        labels.append(parts[1])
    try:
        label_arr = np.array(labels, dtype=bytes).astype(np.int64)
    except ValueError:
        for number, line in enumerate(lines, first_line):
            parts = line.strip().rsplit(b' ', 1)
            if len(parts) == 2:
                try:
                    int(parts[1])
                except ValueError:
                    raise ValueError(
                        f'{ann_file}:{number}: label {parts[1][:50]!r} is '
                        'not an integer') from None
        raise
    return keys, label_arr.reshape(-1)


@DATASETS.register_module()
class ImageNetPseudoBoxDataset(BaseDetDataset):
    """ImageNet (1K or 22K) with pseudo boxes from a ``.dapbox`` file.

    The image list is read as mmpretrain's ``ImageNet`` / ``CustomDataset``
    reads it: from ``ann_file`` (lines ``relative/path.JPEG label``,
    relative to ``data_prefix['img']``) or, when ``ann_file`` is empty,
    from the class folders ``<img prefix>/<wnid>/*.JPEG`` with classes in
    sorted folder order.  The box file must have been made for exactly this
    list (same keys, order and labels: its fingerprint), the same image
    count and class count; otherwise a ``BoxFileError`` is raised before
    training starts.

    Each sample has one instance per pseudo box: ``bbox`` in original
    pixels (x1, y1, x2, y2), ``bbox_label`` = the image's 0-based class
    (0 for every box with ``class_agnostic``), ``ignore_flag`` 0.  Images
    that failed in step 2 are not part of the dataset (their count is
    logged).  A training sample left without boxes (none in the file, or
    all removed by ``min_box_size``) makes ``__getitem__`` draw another
    image, as mmengine does for a pipeline returning None.

    Args:
        box_file: the pseudo-box file (relative paths are joined with
            ``data_root``, like ``ann_file``).
        class_agnostic: label every box 0 with one class ``'object'``.
        max_boxes_per_image: keep at most this many boxes per image (the
            highest scores; None keeps all).
        min_box_size: drop boxes whose width or height (original pixels) is
            smaller.
        verify_image_list: read the image list and compare its fingerprint
            with the box file's (a streaming pass over the list: about a
            second per million images).  False trusts the box file (a
            warning is logged).
        **kwargs: ``ann_file``, ``data_root``, ``data_prefix``,
            ``metainfo``, ``pipeline``, ``indices``, ``test_mode``,
            ``lazy_init``, ... as for mmdet's ``BaseDetDataset``.
            ``filter_cfg`` is not supported (use the options above).
    """

    METAINFO = dict(classes=None)

    def __init__(self,
                 *args,
                 box_file: str,
                 class_agnostic: bool = False,
                 max_boxes_per_image: Optional[int] = None,
                 min_box_size: float = 0.,
                 verify_image_list: bool = True,
                 lazy_init: bool = False,
                 **kwargs) -> None:
        if kwargs.get('filter_cfg') is not None:
            raise ValueError(
                f'{type(self).__name__} does not take filter_cfg (it would '
                'need a pass over every image); use min_box_size and '
                'max_boxes_per_image, empty images are redrawn')
        if max_boxes_per_image is not None and int(max_boxes_per_image) < 1:
            raise ValueError('max_boxes_per_image must be >= 1 or None')
        if min_box_size < 0:
            raise ValueError('min_box_size must be >= 0')
        prefix = kwargs.get('data_prefix', dict(img=''))
        if isinstance(prefix, str):  # mmpretrain style data_prefix='train'
            kwargs['data_prefix'] = dict(img=prefix)
        self.box_file = box_file
        self.class_agnostic = class_agnostic
        self.max_boxes_per_image = (None if max_boxes_per_image is None else
                                    int(max_boxes_per_image))
        self.min_box_size = float(min_box_size)
        self.verify_image_list = verify_image_list
        self._box: Optional[PseudoBoxFile] = None
        self._rows: Optional[_RowReader] = None
        self._skip = np.zeros(0, np.int64)
        self._subset: Optional[np.ndarray] = None
        self._length = 0
        self._warned_empty = False
        super().__init__(*args, lazy_init=True, **kwargs)
        if self.box_file and not is_abs(self.box_file) and self.data_root:
            self.box_file = osp.join(self.data_root, self.box_file)
        if 'img' not in self.data_prefix:
            raise ValueError('data_prefix needs an "img" entry (the folder '
                             'the image keys are relative to)')
        if not lazy_init:
            self.full_init()

    # ------------------------------------------------------------ set-up
    def full_init(self) -> None:
        """Open the box file, check it against the image list, index it."""
        if self._fully_initialized:
            return
        box = PseudoBoxFile.open(self.box_file, check_offsets=False)
        folder_classes = None
        if self.verify_image_list:
            folder_classes = self._check_image_list(box)
        else:
            print_log(
                f'{type(self).__name__}: verify_image_list=False, the image '
                f'list is not compared with {self.box_file}; its '
                f'{box.num_images} keys are used as the list',
                logger='current', level=logging.WARNING)
        self._set_classes(box, folder_classes)
        failed = np.asarray(box.failed_indices, dtype=np.int64)
        # the i-th usable image is i + #(failed f_m with f_m - m <= i)
        self._skip = failed - np.arange(len(failed), dtype=np.int64)
        self._box = box
        self._rows = _RowReader(box)
        _release_mapped_pages(box)
        self._length = box.num_images - len(failed)
        self._subset = None
        if self._indices is not None:
            self._apply_indices(self._indices)
        print_log(
            f'{type(self).__name__}: {self._length} images, '
            f'{box.num_boxes} pseudo boxes from {self.box_file}; '
            f'{len(failed)} of {box.num_images} images failed in step 2 and '
            'are skipped', logger='current')
        self._fully_initialized = True

    def _set_classes(self, box: PseudoBoxFile,
                     folder_classes: Optional[List[str]]) -> None:
        given = self._metainfo.get('classes')
        if self.class_agnostic:
            classes = tuple(given) if given is not None else ('object', )
            expected = 1
        else:
            classes = given or box.classes or folder_classes or \
                [str(i) for i in range(box.num_classes)]
            classes = tuple(classes)
            expected = box.num_classes
        if len(classes) != expected:
            raise BoxFileError(
                f'metainfo has {len(classes)} classes, but the pseudo-box '
                f'file {self.box_file} has {box.num_classes}'
                + (' (class_agnostic needs exactly one)'
                   if self.class_agnostic else ''))
        self._metainfo['classes'] = classes

    def _check_image_list(self, box: PseudoBoxFile) -> Optional[List[str]]:
        """Stream the image list, raise if the box file is not for it."""
        digest = _ImageListDigest(box.num_images, box.num_classes)
        folder_classes = None
        if self.ann_file:
            source = f'annotation file {self.ann_file}'
            for keys, labels in self._read_ann_file():
                digest.add(keys, labels, self.ann_file)
        else:
            source = f'class folders under {self.data_prefix["img"]}'
            folder_classes = self._find_folders()
            for label, keys in self._scan_folders(folder_classes):
                digest.add(keys, np.full(len(keys), label), source)
            if len(folder_classes) != box.num_classes:
                raise BoxFileError(
                    f'{source} hold {len(folder_classes)} classes but the '
                    f'pseudo-box file {self.box_file} has '
                    f'{box.num_classes}')
        if digest.count == 0:
            raise BoxFileError(f'the image list ({source}) is empty')
        try:
            box.check_matches(
                fingerprint=digest.hexdigest() or 'count differs',
                num_images=digest.count)
        except BoxFileError as e:
            raise BoxFileError(f'image list from {source}: {e}') from None
        return folder_classes

    def _read_ann_file(self) -> Iterator[Tuple[List[bytes], np.ndarray]]:
        """(keys, labels) blocks of an mmpretrain annotation file."""
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'image list {self.ann_file} does not exist (mmpretrain '
                'format: one "relative/path.JPEG label" per line; or set '
                'ann_file="" to scan class folders)')
        line_no, rest = 1, b''
        with open(self.ann_file, 'rb') as f:
            while True:
                block = f.read(_READ_BLOCK)
                if not block:
                    break
                lines = (rest + block).split(b'\n')
                rest = lines.pop()
                yield _parse_ann_lines(lines, line_no, self.ann_file)
                line_no += len(lines)
        if rest:
            yield _parse_ann_lines([rest], line_no, self.ann_file)

    def _find_folders(self) -> List[str]:
        """Class folders in sorted order (mmpretrain's ``find_folders``)."""
        root = self.data_prefix['img']
        if not osp.isdir(root):
            raise FileNotFoundError(
                f'image folder {root} does not exist (expected '
                '<wnid>/<image> class folders, or give an ann_file)')
        backend = get_file_backend(root, enable_singleton=True)
        folders = sorted(
            backend.list_dir_or_file(
                root, list_dir=True, list_file=False, recursive=False))
        if not folders:
            raise BoxFileError(f'no class folders under {root}')
        return folders

    def _scan_folders(self,
                      folders: List[str]) -> Iterator[Tuple[int, List[bytes]]]:
        """(label, keys) per class folder, in mmpretrain's order."""
        root = self.data_prefix['img']
        backend = get_file_backend(root, enable_singleton=True)
        for label, folder in enumerate(folders):
            files = backend.list_dir_or_file(
                backend.join_path(root, folder),
                list_dir=False, list_file=True, recursive=True)
            yield label, [
                backend.join_path(folder, f).encode('utf-8')
                for f in sorted(files) if f.lower().endswith(IMG_EXTENSIONS)
            ]

    def _apply_indices(self, indices: Union[int, Sequence[int]]) -> None:
        """mmengine's ``indices``: an int (first / last n) or positions."""
        current = (np.arange(self._length, dtype=np.int64)
                   if self._subset is None else self._subset)
        if isinstance(indices, int):
            sub = current[:indices] if indices >= 0 else current[indices:]
        else:
            pos = np.asarray(indices, dtype=np.int64).reshape(-1)
            if pos.size and (pos.min() < -len(current)
                             or pos.max() >= len(current)):
                raise IndexError(f'indices out of range for '
                                 f'{len(current)} images')
            sub = current[pos]
        self._subset = sub
        self._length = len(sub)

    # --------------------------------------------------------- per image
    def _box_index(self, idx: int) -> int:
        """Row of dataset position ``idx`` in the box file."""
        idx = int(idx)
        if idx < 0:
            idx += self._length
        if not 0 <= idx < self._length:
            raise IndexError(f'index {idx} out of range for '
                             f'{self._length} images')
        if self._subset is not None:
            idx = int(self._subset[idx])
        if self._skip.size:
            idx += int(np.searchsorted(self._skip, idx, side='right'))
        return idx

    def get_data_info(self, idx: int) -> dict:
        """The sample at ``idx``, read from the mapped arrays."""
        if not self._fully_initialized:
            self.full_init()
        row = self._box_index(idx)
        box, rows = self._box, self._rows
        width, height = rows.rows('sizes', row, row + 1)[0].tolist()
        label = int(rows.rows('labels', row, row + 1)[0])
        start, stop = (int(v) for v in rows.rows('offsets', row, row + 2))
        key = bytes(rows.rows('keys', row, row + 1)[0]).decode('utf-8')
        if stop < start or stop > box.num_boxes:
            raise BoxFileError(
                f'{self.box_file}: bad box offsets {start}:{stop} for '
                f'image {row} ({key})')
        if not 0 <= label < box.num_classes:
            raise BoxFileError(
                f'{self.box_file}: image {row} ({key}) has label {label}, '
                f'outside [0, {box.num_classes})')
        boxes = rows.rows('boxes', start, stop).astype(np.float32)
        if self.min_box_size > 0 and len(boxes):
            keep = ((boxes[:, 2] - boxes[:, 0]) >= self.min_box_size) & \
                ((boxes[:, 3] - boxes[:, 1]) >= self.min_box_size)
            keep_rows = np.flatnonzero(keep)
        else:
            keep_rows = np.arange(len(boxes))
        if self.max_boxes_per_image is not None and \
                len(keep_rows) > self.max_boxes_per_image:
            scores = self._rows.rows('scores', start, stop)[keep_rows]
            top = np.argsort(-scores, kind='stable')
            keep_rows = np.sort(keep_rows[top[:self.max_boxes_per_image]])
        if self.class_agnostic:
            label = 0
        instances = [
            dict(bbox=b, bbox_label=label, ignore_flag=0)
            for b in boxes[keep_rows].tolist()
        ]
        return dict(
            img_path=osp.join(self.data_prefix['img'], key),
            img_id=row,
            width=width,
            height=height,
            instances=instances,
            sample_idx=int(idx) if idx >= 0 else self._length + int(idx))

    def prepare_data(self, idx: int) -> Optional[dict]:
        data_info = self.get_data_info(idx)
        if not self.test_mode and not data_info['instances']:
            if not self._warned_empty:
                print_log(
                    f'{type(self).__name__}: {data_info["img_path"]} has no '
                    'pseudo box (after min_box_size); images without boxes '
                    'are redrawn (reported once per process)',
                    logger='current', level=logging.WARNING)
                self._warned_empty = True
            return None
        return self.pipeline(data_info)

    def get_cat_ids(self, idx: int) -> List[int]:
        return [i['bbox_label'] for i in self.get_data_info(idx)['instances']]

    def __len__(self) -> int:
        if not self._fully_initialized:
            self.full_init()
        return self._length

    def __setstate__(self, state: dict) -> None:
        """Unpickled (spawned worker): the box file was opened again, so
        drop the pages its validation mapped."""
        self.__dict__.update(state)
        if self._box is not None:
            _release_mapped_pages(self._box)

    # ------------------------------------------- what BaseDataset assumes
    def load_data_list(self) -> List[dict]:
        raise NotImplementedError(
            f'{type(self).__name__} keeps no data list (it would not fit '
            'for ImageNet-22K); use len() and get_data_info(i)')

    def get_subset_(self, indices: Union[int, Sequence[int]]) -> None:
        if not self._fully_initialized:
            self.full_init()
        self._apply_indices(indices)

    def get_subset(self, indices: Union[int, Sequence[int]]
                   ) -> 'ImageNetPseudoBoxDataset':
        if not self._fully_initialized:
            self.full_init()
        other = copy.copy(self)
        other._metainfo = copy.deepcopy(self._metainfo)
        other._apply_indices(indices)
        return other
