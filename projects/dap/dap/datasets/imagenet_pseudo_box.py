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
import logging
import os.path as osp
from typing import List, Optional

import numpy as np
from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS
from mmengine.logging import print_log
from mmengine.utils import is_abs

from .box_file import BoxFileError, ImageListHasher, PseudoBoxFile
from .image_list import (FileRows, RowDataset, find_class_folders,
                         read_ann_blocks, scan_class_folders)


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
        self._hasher = ImageListHasher(num_images)

    def add(self, blob: bytes, labels: np.ndarray, where: str) -> None:
        """``blob``: the keys of ``labels``, each followed by b'\\n'."""
        labels = np.asarray(labels, dtype=np.int64)
        if not len(labels):
            return
        bad = np.flatnonzero((labels < 0) | (labels >= self.num_classes))
        if bad.size:
            key = blob.split(b'\n')[bad[0]].decode('utf-8', 'replace')
            raise BoxFileError(
                f'{where}: image {key!r} has label {labels[bad[0]]}, outside'
                f' the pseudo-box file\'s {self.num_classes} classes')
        self.count += len(labels)
        if self.count <= self.num_images:
            self._hasher.update_keys(blob, len(labels))
            self._labels.append(labels.astype(self._label_dtype))

    def hexdigest(self) -> Optional[str]:
        """The fingerprint, or None when the count differs from the file."""
        if self.count != self.num_images:
            return None
        for chunk in self._labels:
            self._hasher.update_labels(chunk)
        self._labels = []
        return self._hasher.hexdigest()


class _RowReader:
    """Rows of the box file's arrays, read with ``os.pread`` at the places
    :meth:`PseudoBoxFile.member_file` names (:class:`~.image_list.FileRows`,
    see there why not through the map)."""

    MEMBERS = ('keys', 'sizes', 'labels', 'offsets', 'boxes', 'scores')

    def __init__(self, box: PseudoBoxFile) -> None:
        self._files = {
            name: FileRows(*box.member_file(name))
            for name in self.MEMBERS
        }

    def rows(self, name: str, start: int, stop: int) -> np.ndarray:
        try:
            return self._files[name].rows(start, stop)
        except (IndexError, ValueError) as e:
            raise BoxFileError(str(e)) from None


@DATASETS.register_module()
class ImageNetPseudoBoxDataset(RowDataset, BaseDetDataset):
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
                logger='current',
                level=logging.WARNING)
        self._set_classes(box, folder_classes)
        failed = np.asarray(box.failed_indices, dtype=np.int64)
        # the i-th usable image is i + #(failed f_m with f_m - m <= i)
        self._skip = failed - np.arange(len(failed), dtype=np.int64)
        self._box = box
        self._rows = _RowReader(box)
        # opening touched some mapped pages; reads go through _rows now
        box.release_pages()
        self._length = box.num_images - len(failed)
        self._subset = None
        if self._indices is not None:
            self._apply_indices(self._indices)
        print_log(
            f'{type(self).__name__}: {self._length} images, '
            f'{box.num_boxes} pseudo boxes from {self.box_file}; '
            f'{len(failed)} of {box.num_images} images failed in step 2 and '
            'are skipped',
            logger='current')
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
                f'file {self.box_file} has {box.num_classes}' +
                (' (class_agnostic needs exactly one)' if self.
                 class_agnostic else ''))
        self._metainfo['classes'] = classes

    def _check_image_list(self, box: PseudoBoxFile) -> Optional[List[str]]:
        """Stream the image list, raise if the box file is not for it."""
        digest = _ImageListDigest(box.num_images, box.num_classes)
        folder_classes = None
        if self.ann_file:
            source = f'annotation file {self.ann_file}'
            for blob, _, labels, _ in read_ann_blocks(self.ann_file):
                digest.add(blob, labels, self.ann_file)
        else:
            root = self.data_prefix['img']
            source = f'class folders under {root}'
            folder_classes = find_class_folders(root)
            for label, keys in scan_class_folders(root, folder_classes):
                digest.add(b''.join(k + b'\n' for k in keys),
                           np.full(len(keys), label), source)
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

    # --------------------------------------------------------- per image
    def _box_index(self, idx: int) -> int:
        """Row of dataset position ``idx`` in the box file (the failed
        images, which the dataset's rows leave out, skipped)."""
        idx = self._position(idx)
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
                    logger='current',
                    level=logging.WARNING)
                self._warned_empty = True
            return None
        return self.pipeline(data_info)

    def get_cat_ids(self, idx: int) -> List[int]:
        return [i['bbox_label'] for i in self.get_data_info(idx)['instances']]

    def __setstate__(self, state: dict) -> None:
        """Unpickled (spawned worker): the box file was opened again, so
        drop the pages its validation mapped."""
        self.__dict__.update(state)
        if self._box is not None:
            self._box.release_pages()
