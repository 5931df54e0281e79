"""Benchmark: whole CAM-box generation vs the bare classifier forward.

Generates ImageNet-sized JPEGs (500 x 375, 375 x 500, 500 x 333) in an
ImageNet layout (class folders + meta/train.txt), saves a random-init
ResNet-50 classifier, and measures in one process:

* ``forward``: only the classifier's backbone forwards that generation
  needs -- every image at every scale (288, 576) with its flip, grouped
  exactly as the generator groups them (``max_batch``) -- on inputs
  decoded, resized, normalised and padded beforehand (not timed);
* ``generation``: ``Runner.test`` of ``configs/cam_boxes`` (R50) over the
  same images with the same scales, flip and batch size -- decoding,
  resizing, CAMs, box fitting, shards, merge and mmengine's loop and hooks
  included (building the Runner, i.e. loading the checkpoint, excluded).

Everything beyond the forward should cost <= 5%: target ratio
``forward / generation >= 0.95``.  Runs alternate (forward, generation,
forward, generation, ...) and the ratio is of the sums.  Times are CPU time
of this process (``time.process_time``; data loading runs in-process with
``num_workers=0`` so it is counted), which is robust to other processes
sharing the machine; wall-clock ratios are printed too.

    python benchmarks/bench_generation_throughput.py [--num 8] [--repeat 2]
"""
import argparse
import io
import os
import os.path as osp
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

REPO = osp.join(osp.dirname(osp.abspath(__file__)), '..')
sys.path.insert(0, REPO)
CONFIG = osp.join(REPO, 'configs', 'cam_boxes',
                  'cam-boxes_resnet50_8xb32_in1k.py')
SIZES = ((500, 375), (375, 500), (500, 333))


def make_data(root: str, num: int) -> None:
    rng = np.random.default_rng(0)
    lines = []
    for i in range(num):
        w, h = SIZES[i % len(SIZES)]
        label = i % 1000
        arr = np.zeros((h, w, 3), np.uint8) + rng.integers(0, 80, 3, np.uint8)
        y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
        arr[y:y + h // 2, x:x + w // 2] = rng.integers(120, 255, 3, np.uint8)
        arr += rng.integers(0, 40, (h, w, 3), np.uint8)
        key = f'n{label:08d}/img_{i:05d}.JPEG'
        os.makedirs(osp.join(root, 'train', osp.dirname(key)), exist_ok=True)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format='JPEG', quality=90)
        with open(osp.join(root, 'train', key), 'wb') as f:
            f.write(buf.getvalue())
        lines.append(f'{key} {label}')
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    with open(osp.join(root, 'meta', 'train.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def build_cfg(data_root: str, ckpt: str, work_dir: str, batch_size: int):
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIG)
    cfg.model.checkpoint = ckpt
    cfg.test_dataloader.batch_size = batch_size
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    cfg.test_dataloader.dataset.data_root = data_root
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.default_hooks.logger.interval = 1000
    cfg.log_level = 'WARNING'
    cfg.work_dir = work_dir
    cfg.custom_hooks = [
        dict(
            type='CAMBoxHook',
            out_file=osp.join(work_dir, 'pseudo_boxes.dapbox'))
    ]
    cfg.experiment_name = osp.basename(work_dir)  # one Runner per run
    return cfg


def timed(fn):
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    out = fn()
    return (time.process_time() - t_cpu, time.perf_counter() - t_wall, out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num', type=int, default=8, help='images')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--repeat', type=int, default=2)
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch threads (default: torch default)')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    from mmpretrain.models import ImageClassifier

    import projects.dap.dap  # noqa: F401 (registers modules)
    from projects.dap.dap.datasets.box_file import PseudoBoxFile
    from projects.dap.dap.datasets.image_decoding import decode_image

    tmp = tempfile.mkdtemp(prefix='bench_generation_')
    data_root = osp.join(tmp, 'imagenet')
    make_data(data_root, args.num)
    torch.manual_seed(0)
    clf = ImageClassifier(
        backbone=dict(type='ResNet', depth=50, out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=2048))
    ckpt = osp.join(tmp, 'resnet50_random.pth')
    torch.save({'state_dict': clf.state_dict()}, ckpt)

    # the generator the Runner uses, for the bare-forward inputs
    init_default_scope('mmpretrain')
    cfg0 = build_cfg(data_root, ckpt, osp.join(tmp, 'wd_probe'),
                     args.batch_size)
    runner0 = Runner.from_cfg(cfg0)
    model = runner0.model
    extractor = model.cam_extractor
    keys = [
        line.split()[0]
        for line in open(osp.join(data_root, 'meta', 'train.txt'))
    ]
    prepared = []
    for key in keys:
        with open(osp.join(data_root, 'train', key), 'rb') as f:
            img, _ = decode_image(f.read())
        prepared.append(torch.from_numpy(img.transpose(2, 0, 1).copy()))
    groups = []  # exactly the forwards CAMExtractor makes, per batch
    for start in range(0, len(prepared), args.batch_size):
        batch = prepared[start:start + args.batch_size]
        for scale in model.scales:
            inputs = [
                extractor.preprocess(*extractor._to_chw(img, i), scale)
                for i, img in enumerate(batch)
            ]
            by_shape = {}
            for x in inputs:
                by_shape.setdefault(tuple(x.shape), []).append(x)
            for members in by_shape.values():
                for s in range(0, len(members), model.max_batch):
                    groups.append(torch.stack(members[s:s + model.max_batch]))
    del runner0

    @torch.no_grad()
    def forward():
        for batch in groups:
            if model.flip:
                batch = torch.cat([batch, batch.flip(-1)])
            model.classifier.extract_feat(batch, stage='backbone')

    forward()  # warm-up
    fwd_cpu = fwd_wall = gen_cpu = gen_wall = 0.0
    for r in range(args.repeat):
        c, w, _ = timed(forward)
        fwd_cpu, fwd_wall = fwd_cpu + c, fwd_wall + w
        cfg = build_cfg(data_root, ckpt, osp.join(tmp, f'wd_{r}'),
                        args.batch_size)
        runner = Runner.from_cfg(cfg)
        c, w, _ = timed(runner.test)
        gen_cpu, gen_wall = gen_cpu + c, gen_wall + w
        boxes = PseudoBoxFile.open(
            osp.join(tmp, f'wd_{r}', 'pseudo_boxes.dapbox'))
        assert boxes.num_images == args.num and not len(boxes.failed)
        del runner
    n = args.num * args.repeat
    print(f'{args.num} images of ~500x375, ResNet-50 (random init), scales '
          f'{tuple(model.scales)}, flip={model.flip}, batch size '
          f'{args.batch_size}, max_batch={model.max_batch}, '
          f'{torch.get_num_threads()} torch threads, {args.repeat} repeats')
    print(f'bare forward : {1000 * fwd_cpu / n:9.1f} ms CPU/image '
          f'({1000 * fwd_wall / n:.1f} ms wall)')
    print(f'generation   : {1000 * gen_cpu / n:9.1f} ms CPU/image '
          f'({1000 * gen_wall / n:.1f} ms wall)')
    print(f'overhead beyond the forward: '
          f'{1000 * (gen_cpu - fwd_cpu) / n:.1f} ms CPU/image')
    print(f'throughput ratio generation/forward: {fwd_cpu / gen_cpu:.3f} '
          f'(CPU time; wall {fwd_wall / gen_wall:.3f}); target >= 0.95')


if __name__ == '__main__':
    main()
