"""mmpretrain's ImageNet / ImageNet21k with flat memory per rank (step 2).

Box generation (step 2) is the one stage that reads all 14M images of
ImageNet-22K, on every rank.  mmpretrain's datasets hold one dict per image
in each rank (~13 GB for 22K), so these subclasses keep nothing per image in
Python: the list is parsed once into an index on disk
(:mod:`.image_list`), shared by all ranks and runs, and each sample is read
from it when it is asked for.  Samples (``img_path``, ``gt_label``,
``sample_idx``), their order, the classes and the ``split`` / ``data_root``
/ ``data_prefix`` / ``ann_file`` / ``indices`` arguments are mmpretrain's.
"""
import logging
import os
import os.path as osp
import shutil
import time
import weakref
from typing import Callable, Optional

import numpy as np
from mmengine.dist import barrier, broadcast_object_list, get_dist_info
from mmengine.fileio import get_file_backend
from mmengine.logging import print_log
from mmpretrain.datasets import ImageNet, ImageNet21k
from mmpretrain.registry import DATASETS

from ..utils.progress_log import ProgressLog
from .image_list import (ImageListError, ImageListIndex, RowDataset,
                         build_ann_index, build_folder_index,
                         default_index_path, find_class_folders,
                         open_index_if_current)


def _cache_index_dir() -> str:
    base = os.environ.get('XDG_CACHE_HOME') or osp.join(
        osp.expanduser('~'), '.cache')
    return osp.join(base, 'dap', 'image_lists')


class _IndexedImageList(RowDataset):
    """What the two registered classes add to mmpretrain's datasets.

    Args:
        index_dir: where the index of ``ann_file`` is kept.  Default: next
            to the list (``meta/train.txt.dapindex``), or, when that folder
            is not writable, ``~/.cache/dap/image_lists`` (a warning says
            so).  Put it on storage all ranks share so it is built once;
            a rank that cannot see it builds its own copy.
        **kwargs: mmpretrain's ``ImageNet`` / ``ImageNet21k`` arguments.
            ``filter_cfg`` is not supported.
    """

    def __init__(self,
                 *args,
                 index_dir: Optional[str] = None,
                 lazy_init: bool = False,
                 **kwargs) -> None:
        if kwargs.get('filter_cfg') is not None:
            raise ValueError(f'{type(self).__name__} does not take '
                             'filter_cfg (it would need a pass over every '
                             'image)')
        self.index_dir = index_dir
        self._index: Optional[ImageListIndex] = None
        self._subset: Optional[np.ndarray] = None
        self._length = 0
        super().__init__(*args, lazy_init=True, **kwargs)
        if not lazy_init:
            self.full_init()

    # ------------------------------------------------------------ set-up
    def full_init(self) -> None:
        """Open (building once if needed) the index of the image list."""
        if self._fully_initialized:
            return
        if self.ann_file:
            index = self._ann_index()
        else:
            index = self._folder_index()
        self._index = index
        self._length = index.num_images
        self._subset = None
        if self._indices is not None:
            self._apply_indices(self._indices)
        self._fully_initialized = True

    def _open_or_build(self, path: str) -> ImageListIndex:
        index = open_index_if_current(path, self.ann_file)
        if index is not None:
            return index
        print_log(
            f'{type(self).__name__}: indexing {self.ann_file} into '
            f'{path} (once; reused while the list is unchanged)',
            logger='current')
        start = time.time()
        index = build_ann_index(
            self.ann_file,
            path,
            progress=ProgressLog(
                f'indexing {osp.basename(self.ann_file)} (lines)'))
        print_log(
            f'indexed {index.num_images:,} images in '
            f'{time.time() - start:.1f} s',
            logger='current')
        return index

    def _index_path(self) -> str:
        path = default_index_path(self.ann_file, self.index_dir)
        if self.index_dir is None and \
                not os.access(osp.dirname(path), os.W_OK) and \
                open_index_if_current(path, self.ann_file) is None:
            fallback = default_index_path(self.ann_file, _cache_index_dir())
            print_log(
                f'{type(self).__name__}: {osp.dirname(path)} is not '
                f'writable; the index of {self.ann_file} goes to {fallback} '
                '(set index_dir to a folder all ranks share)',
                logger='current',
                level=logging.WARNING)
            return fallback
        return path

    def _ann_index(self) -> ImageListIndex:
        """Rank 0 builds, then the first rank of every node (if it does not
        see rank 0's index), then everyone opens."""
        path = self._index_path()
        rank, world = get_dist_info()
        if world > 1:
            error = [None]
            if rank == 0:
                try:
                    self._open_or_build(path)
                except ImageListError as e:  # every rank stops with it
                    error = [str(e)]
            broadcast_object_list(error, src=0)
            if error[0] is not None:
                raise ImageListError(error[0])
            if rank != 0 and int(os.environ.get('LOCAL_RANK', 0)) == 0:
                self._open_or_build(path)
            barrier()
        return self._open_or_build(path)

    def _folder_index(self) -> ImageListIndex:
        root = self.img_prefix
        folders = find_class_folders(root)
        if self.CLASSES is not None and len(self.CLASSES) != len(folders):
            raise ImageListError(
                f'{root} has {len(folders)} class folders but the dataset '
                f'has {len(self.CLASSES)} classes')
        index, empty = build_folder_index(root, folders, self.extensions,
                                          self.index_dir)
        weakref.finalize(index, _remove_tree, osp.dirname(index.path))
        if index.num_images == 0:
            raise ImageListError(
                f'found no files with extensions {self.extensions} in the '
                f'class folders of {root}')
        if empty:
            print_log(
                f'no image in the class folders {", ".join(empty)}',
                logger='current',
                level=logging.WARNING)
        if self.CLASSES is None:
            self._metainfo['classes'] = tuple(folders)
        return index

    # --------------------------------------------------------- per image
    def get_data_info(self, idx: int) -> dict:
        """mmpretrain's sample: ``img_path``, ``gt_label``, ``sample_idx``."""
        if not self._fully_initialized:
            self.full_init()
        row = self._position(idx)
        key = self._index.key(row).decode('utf-8')
        backend = get_file_backend(self.img_prefix, enable_singleton=True)
        return dict(
            img_path=backend.join_path(self.img_prefix, key),
            gt_label=self._index.label(row),
            sample_idx=int(idx) if idx >= 0 else self._length + int(idx))

    def get_gt_labels(self) -> np.ndarray:
        if not self._fully_initialized:
            self.full_init()
        labels = self._index.labels.rows(0, self._index.num_images)
        return labels if self._subset is None else labels[self._subset]

    def image_list_fingerprint(self,
                               num_classes: int,
                               progress: Optional[Callable[[int, int],
                                                           None]] = None
                               ) -> str:
        """``box_file.image_list_fingerprint`` of the image keys (paths
        relative to the image prefix) and labels (-1 outside
        ``[0, num_classes)``), streamed from the index: what
        ``CAMBoxHook`` computes from ``get_data_info``, in flat memory."""
        if not self._fully_initialized:
            self.full_init()
        return self._index.fingerprint(num_classes, self._subset, progress)


def _remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


@DATASETS.register_module()
class IndexedImageNet(_IndexedImageList, ImageNet):
    """mmpretrain's ``ImageNet`` (1000 classes) with the image list in an
    on-disk index: the same samples, flat memory per rank."""


@DATASETS.register_module()
class IndexedImageNet21k(_IndexedImageList, ImageNet21k):
    """mmpretrain's ``ImageNet21k`` with the image list in an on-disk
    index: the same samples, flat memory per rank."""
