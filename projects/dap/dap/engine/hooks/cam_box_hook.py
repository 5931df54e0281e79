"""Write CAM pseudo boxes of a ``Runner.test`` run to shards, then merge.

Box generation (DAP step 2) is an mmengine test run: the dataset is an
mmpretrain ImageNet list, the model a
:class:`~projects.dap.dap.models.CAMBoxGenerator` whose ``test_step``
returns each image's boxes.  This hook owns the files:

* ``before_test``: describe the run (generation config, checkpoint sha256,
  image-list fingerprint, classes), open this rank's
  :class:`~projects.dap.dap.datasets.ShardWriter` (which refuses a shard
  dir of another run), and tell the
  :class:`~projects.dap.dap.datasets.ResumableSampler` which images are
  done, so a rerun computes only the rest;
* ``after_test_iter``: buffer every image's boxes (or failure reason);
  shards are written atomically every ``flush_every`` images;
* ``after_test``: flush, wait for all ranks, and on rank 0 merge the
  shards into the box file.
"""
import json
import os.path as osp
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dist import (barrier, broadcast_object_list, get_dist_info,
                           is_main_process)
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from ...datasets.box_file import (BoxFileError, PseudoBoxFile, ShardWriter,
                                  describe_changes, image_list_fingerprint,
                                  merge_shards)
from ...utils.plain_data import plain_data
from ...utils.progress_log import ProgressLog
from ...utils.shared_storage import SharedStorageError, check_shared_storage
from .cam_box_progress import GenerationProgress

DEFAULT_OUT = 'pseudo_boxes.dapbox'
DEFAULT_SHARD_DIR = 'cam_box_shards'


class CAMBoxRunError(RuntimeError):
    """The run cannot start (mismatched inputs); nothing was computed."""


def image_key(img_path: str, prefix: Optional[str]) -> str:
    """The image's key in the box file: its path relative to the data
    prefix, exactly as in the dataset's list (absolute paths stay)."""
    img_path = str(img_path)
    if prefix:
        prefix = str(prefix)
        if img_path.startswith(prefix):
            rest = img_path[len(prefix):]
            if prefix.endswith(('/', '\\')) or rest[:1] in ('/', '\\'):
                return rest.lstrip('/\\')
    return img_path


def _dataset_prefix(dataset: Any) -> Optional[str]:
    prefix = getattr(dataset, 'data_prefix', None)
    if isinstance(prefix, dict):
        return prefix.get('img_path') or prefix.get('img') or None
    return prefix or None


def dataset_image_list(
    dataset: Any,
    num_classes: int,
    progress: Optional[Callable[[int, int], None]] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """(keys as utf-8 ``S`` array, labels) of the whole dataset in order.

    Labels outside ``[0, num_classes)`` (and missing labels) become -1:
    those images are recorded as failed with label -1, so the box file's
    fingerprint is computed from these labels.  Datasets with an
    ``image_list_fingerprint(num_classes)`` method (``IndexedImageNet``)
    give the fingerprint without this in-memory list.
    """
    prefix = _dataset_prefix(dataset)
    n = len(dataset)
    labels = np.full(n, -1, dtype=np.int64)
    chunks: List[np.ndarray] = []
    chunk = 1 << 16
    for start in range(0, n, chunk):
        keys = []
        for i in range(start, min(n, start + chunk)):
            info = dataset.get_data_info(i)
            keys.append(image_key(info['img_path'], prefix).encode('utf-8'))
            label = info.get('gt_label', -1)
            label = int(np.asarray(label).reshape(-1)[0]) if np.size(
                label) == 1 else -1
            labels[i] = label if 0 <= label < num_classes else -1
        chunks.append(np.array(keys, dtype=bytes))
        if progress is not None:
            progress(min(n, start + chunk), n)
    keys = np.concatenate(chunks) if chunks else np.zeros(0, 'S1')
    return keys, labels


def check_class_order(dataset_classes: List[str], num_classes: int,
                      classifier_classes: Optional[List[str]]) -> None:
    """Refuse a dataset whose classes are not the classifier's, in order.

    Label ``i`` of the image list picks the classifier's output ``i``: a
    classifier trained with another class order would silently give CAMs of
    the wrong class.  The order is checked when the classifier's checkpoint
    records its classes (mmpretrain's ``meta.dataset_meta.classes``).
    """
    if len(dataset_classes) != num_classes:
        raise CAMBoxRunError(
            f'the dataset has {len(dataset_classes)} classes but the '
            f'classifier has {num_classes}: boxes would be computed '
            'for the wrong classes. Use the classifier trained on '
            'this label set (or set the dataset classes).')
    if classifier_classes is None:
        return
    if len(classifier_classes) != num_classes:
        raise CAMBoxRunError(
            f'the classifier\'s checkpoint names {len(classifier_classes)} '
            f'classes (meta.dataset_meta.classes) but its head has '
            f'{num_classes}: it cannot say which output is which class')
    for i, (ours,
            theirs) in enumerate(zip(dataset_classes, classifier_classes)):
        if ours != theirs:
            raise CAMBoxRunError(
                f'class {i} of the dataset is {ours!r} but the classifier '
                f'was trained with {theirs!r} as class {i} (its checkpoint\'s '
                'meta.dataset_meta.classes): CAMs would be computed for the '
                'wrong classes. Use the classifier trained on this class '
                'order, or give the dataset the classifier\'s classes.')


@HOOKS.register_module()
class CAMBoxHook(Hook):
    """Store the boxes of a CAM-box test run in resumable shards.

    Args:
        out_file: the merged box file (a ``.dapbox`` directory; relative
            paths are relative to the current directory, like
            ``data_root``).  Default ``{work_dir}/pseudo_boxes.dapbox``.
        shard_dir: where ranks write shards; default
            ``{work_dir}/cam_box_shards``.  Keep it to resume a run.
        flush_every: images per shard (a killed run loses at most this many
            images per rank).
        check_classes: refuse to start when the dataset names classes and
            their number differs from the classifier's.
        progress_interval_s: seconds between progress lines (images done
            over all ranks and ETA, logged by rank 0).
    """

    priority = 'NORMAL'

    def __init__(self,
                 out_file: Optional[str] = None,
                 shard_dir: Optional[str] = None,
                 flush_every: int = 1000,
                 check_classes: bool = True,
                 progress_interval_s: float = 60.) -> None:
        if int(flush_every) < 1:
            raise ValueError(f'flush_every must be >= 1, got {flush_every}')
        self.out_file = out_file
        self.shard_dir = shard_dir
        self.flush_every = int(flush_every)
        self.check_classes = check_classes
        self.progress_interval_s = float(progress_interval_s)
        self._progress: Optional[GenerationProgress] = None
        self._writer: Optional[ShardWriter] = None
        self._skip_merge = False

    # ------------------------------------------------------------- set-up
    def _paths(self, runner) -> Tuple[str, str]:
        out = osp.abspath(self.out_file) if self.out_file else osp.join(
            runner.work_dir, DEFAULT_OUT)
        shards = osp.abspath(self.shard_dir) if self.shard_dir else osp.join(
            runner.work_dir, DEFAULT_SHARD_DIR)
        return out, shards

    def _run_meta(self, runner, model, dataset) -> Dict[str, Any]:
        num_classes = int(model.num_classes)
        classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
        if classes is not None:
            classes = [str(c) for c in classes]
            if self.check_classes:
                check_class_order(classes, num_classes,
                                  getattr(model, 'classes', None))
        fingerprint = None
        if is_main_process():
            print_log(
                f'fingerprinting the image list ({len(dataset)} images)',
                logger='current')
            progress = ProgressLog('fingerprinting the image list')
            if hasattr(dataset, 'image_list_fingerprint'):
                fingerprint = dataset.image_list_fingerprint(
                    num_classes, progress=progress)
            else:
                keys, labels = dataset_image_list(dataset, num_classes,
                                                  progress)
                fingerprint = image_list_fingerprint(keys, labels)
                del keys, labels
        holder = [fingerprint]
        broadcast_object_list(holder, src=0)
        pipeline = [
            plain_data(t) for t in runner.cfg.get('test_dataloader', {}).get(
                'dataset', {}).get('pipeline', [])
        ]
        gen_cfg = dict(model.generation_config(), pipeline=pipeline)
        return {
            'generation_config': plain_data(gen_cfg),
            'checkpoint_sha256': model.checkpoint_sha256,
            'image_list_fingerprint': holder[0],
            'num_images': len(dataset),
            'num_classes': num_classes,
            'classes': classes,
        }

    def _check_existing_output(self, out_file: str,
                               run_meta: Dict[str, Any]) -> bool:
        """True when ``out_file`` already holds this run's boxes."""
        if not osp.exists(out_file):
            return False
        try:
            old = PseudoBoxFile.open(out_file, check_offsets=False)
        except BoxFileError as e:
            raise CAMBoxRunError(
                f'{out_file} exists but is not a valid box file ({e}); '
                'delete it or choose another --out') from e
        diffs: List[str] = []
        for name in ('generation_config', 'checkpoint_sha256',
                     'image_list_fingerprint', 'num_classes'):
            diffs += describe_changes(old.meta.get(name), run_meta[name], name)
        if diffs:
            shown = '; '.join(diffs[:5]) + ('; ...' if len(diffs) > 5 else '')
            raise CAMBoxRunError(
                f'{out_file} already holds pseudo boxes made with another '
                f'generation config, checkpoint or image list ({shown}); '
                'refusing to overwrite them. Choose another --out (or '
                'delete the old file).')
        return True

    def before_test(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if not hasattr(model, 'generation_config'):
            raise CAMBoxRunError(
                'CAMBoxHook needs a CAMBoxGenerator model, got '
                f'{type(model).__name__}')
        loader = runner.test_loop.dataloader
        dataset = loader.dataset
        out_file, shard_dir = self._paths(runner)
        self._out_file, self._shard_dir = out_file, shard_dir
        try:  # resume and merge need it: fail now, not at the merge
            check_shared_storage({
                'work_dir': runner.work_dir,
                'shard_dir': shard_dir,
                'output folder': osp.dirname(out_file)
            })
        except SharedStorageError as e:
            raise CAMBoxRunError(str(e)) from None
        self._prefix = _dataset_prefix(dataset)
        self._num_classes = int(model.num_classes)
        self._num_images = len(dataset)

        run_meta = self._run_meta(runner, model, dataset)
        # plain JSON values, compared as the shard writer compares them
        run_meta = json.loads(json.dumps(plain_data(run_meta)))
        complete = self._check_existing_output(out_file, run_meta)

        rank, world = get_dist_info()
        self._writer = ShardWriter(
            shard_dir, rank, run_meta, flush_every=self.flush_every)
        done = self._writer.done_indices()
        self._skip_merge = False
        if complete and len(done) < self._num_images:
            # the box file is final; its shards may have been cleaned up
            done = np.arange(self._num_images)
            self._skip_merge = True
        sampler = loader.sampler
        if hasattr(sampler, 'set_done'):
            sampler.set_done(done)
            remaining = self._num_images - len(done)
        else:
            remaining = self._num_images
            if len(done):
                print_log(
                    f'{len(done)} images are done in {shard_dir}, but the '
                    f'sampler ({type(sampler).__name__}) cannot skip them; '
                    'use ResumableSampler to resume',
                    logger='current',
                    level=30)
        print_log(
            f'CAM boxes: {self._num_images} images, {len(done)} already '
            f'done, {remaining} to compute; shards in {shard_dir}, box file '
            f'{out_file}; {torch.get_num_threads()} torch threads per process '
            '(boxes are bit-identical between runs with the same count)',
            logger='current')
        self._progress = GenerationProgress(
            osp.join(shard_dir, 'progress'),
            rank, world, self._num_images, self._num_images - remaining,
            len(sampler), self.progress_interval_s)
        # Nobody may write a shard before every rank has read the done set.
        barrier()

    # ------------------------------------------------------------ per iter
    def after_test_iter(self,
                        runner,
                        batch_idx: int,
                        data_batch: Any = None,
                        outputs: Optional[Sequence] = None) -> None:
        writer = self._writer
        for sample in outputs or ():
            index = int(sample.sample_idx)
            key = image_key(sample.img_path, self._prefix)
            h, w = (int(v) for v in sample.get('ori_shape', (0, 0)))
            label = int(sample.gt_label[0]) if 'gt_label' in sample and len(
                sample.gt_label) == 1 else -1
            in_range = 0 <= label < self._num_classes
            error = sample.get('cam_error')
            if error is not None:
                writer.add_failed(
                    index,
                    key,
                    error,
                    size=(w, h) if w > 0 and h > 0 else None,
                    label=label if in_range else None)
            else:
                writer.add(index, key, (w, h), label, sample.pred_boxes,
                           sample.pred_scores, sample.pred_thresholds)
        self._progress.update(len(outputs or ()))

    # ---------------------------------------------------------------- end
    def after_test(self, runner) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        self._progress.finish()
        barrier()
        if not is_main_process():
            return
        self._progress.log()
        if self._skip_merge:
            print_log(
                f'{self._out_file} is complete; nothing to do',
                logger='current')
            return
        meta = {'generator': 'DAP step 2 (CAM pseudo boxes)'}
        boxes = merge_shards(
            self._shard_dir,
            self._out_file,
            self._num_images,
            meta=meta,
            overwrite=True)
        failed = boxes.failed
        print_log(
            f'wrote {boxes.path}: {boxes.num_images} images, '
            f'{boxes.num_boxes} boxes, {len(failed)} failed',
            logger='current')
        for index, key, reason in failed[:20]:
            print_log(
                f'  failed image {index} ({key}): {reason}',
                logger='current',
                level=30)
        if len(failed) > 20:
            print_log(
                f'  ... and {len(failed) - 20} more (see '
                'PseudoBoxFile.failed)',
                logger='current',
                level=30)
