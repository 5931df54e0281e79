"""Images/s of DAP's multi-scale training pipeline: stock vs reduced decode.

Stock (mmdet):  LoadImageFromFile, LoadAnnotations, RandomChoiceResize,
                RandomFlip
Ours:           LoadAnnotations, LoadImageRandomChoiceResize, RandomFlip
                (default decoder: libjpeg-turbo's TurboJPEG API; also
                cv2 and pillow reduced decoding)

Both at DAP's scales (short side 96/160/320/640, long side <= 1333) on
generated photo-like JPEGs of ImageNet's typical size (500x375 and
375x500, quality 90).  Each image gets the same seed in both pipelines, so
both draw the same scale and flip; output sizes and boxes are checked to be
equal.  Ratios are measured in one run (files in the page cache, one core).

It also prints a bound no libjpeg-based loader with the stock output can
pass: per image, a 1/8-size decode (about all of it is the entropy
decoding, which no reduction skips) plus the resize from the full image
that the output size still needs at the scales where no reduction fits.

    python benchmarks/bench_reduced_decode.py [--num-images 200] [--size WxH]
"""
import argparse
import copy
import os
import os.path as osp
import tempfile
import time

import cv2
import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.registry import init_default_scope

import projects.dap.dap  # noqa: F401  (registers the transform)
from projects.dap.dap.datasets import reduction_factor, target_size
from projects.dap.dap.datasets.image_decoding import simplejpeg

SCALES = [(1333, 96), (1333, 160), (1333, 320), (1333, 640)]


def photo_like(rng: np.random.Generator, width: int,
               height: int) -> np.ndarray:
    """Smooth colour gradients, blurred shapes and sensor-like noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    c = rng.uniform(0, 255, size=(3, 3))
    img = np.stack([
        c[i, 0] + (c[i, 1] - c[i, 0]) * x / width +
        (c[i, 2] - c[i, 0]) * 0.5 * y / height for i in range(3)
    ], -1)
    for _ in range(int(rng.integers(4, 10))):
        colour = rng.uniform(0, 255, size=3).tolist()
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if rng.random() < 0.5:
            axes = (int(rng.integers(10, width // 3)),
                    int(rng.integers(10, height // 3)))
            cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360,
                        colour, -1)
        else:
            size = int(rng.integers(10, min(width, height) // 2))
            cv2.rectangle(img, centre, (centre[0] + size, centre[1] + size),
                          colour, -1)
    img = cv2.GaussianBlur(img, (0, 0), 1.5)
    img += rng.normal(0, 8, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_images(root: str, num: int, size: tuple, seed: int = 0) -> list:
    """``num`` JPEGs of ``size`` (w, h), every fourth one portrait."""
    rng = np.random.default_rng(seed)
    infos = []
    for i in range(num):
        w, h = size if i % 4 else size[::-1]
        path = osp.join(root, f'img_{w}x{h}_{i:04d}.JPEG')
        if not osp.exists(path):
            cv2.imwrite(path, photo_like(rng, w, h),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
        x1, y1 = rng.uniform(0, w / 2), rng.uniform(0, h / 2)
        box = [x1, y1, x1 + rng.uniform(8, w / 2), y1 + rng.uniform(8, h / 2)]
        infos.append(
            dict(
                img_path=path,
                width=w,
                height=h,
                instances=[dict(bbox=box, bbox_label=0, ignore_flag=0)]))
    return infos


def run(pipeline: Compose, infos: list, seed: int, keep: bool = True) -> list:
    """Each image through ``pipeline``.  Timed passes do not keep the
    outputs: holding hundreds of fresh 1-2 MB images makes every pass
    page-fault new memory (~0.5 ms per 640-px image, for both pipelines),
    which a data loader, whose batches are freed, does not pay."""
    out = []
    for i, info in enumerate(infos):
        np.random.seed(seed + i)
        res = pipeline(copy.deepcopy(info))
        if keep:
            out.append(res)
    return out


def timed(pipelines: dict, infos: list, repeats: int) -> dict:
    """Best images/s of each pipeline, passes interleaved so that load from
    other processes hits all alike; CPU time of this (single-threaded)
    process, which other processes disturb much less than wall time."""
    best = {name: 0. for name in pipelines}
    for r in range(repeats):
        names = list(pipelines) if r % 2 == 0 else list(pipelines)[::-1]
        for name in names:
            start = time.process_time()
            run(pipelines[name], infos, seed=1000 * r, keep=False)
            ips = len(infos) / max(time.process_time() - start, 1e-9)
            best[name] = max(best[name], ips)
    return best


def bare_decoders(infos: list, repeats: int) -> dict:
    """Best ms/image of the bare decoders (no file reading, no resize)."""
    bufs = [open(i['img_path'], 'rb').read() for i in infos]

    def cv2_flag(flag):
        return lambda b: cv2.imdecode(np.frombuffer(b, np.uint8), flag)

    def turbo(factor):

        def decode(b):
            h, w = simplejpeg.decode_jpeg_header(b)[:2]
            return simplejpeg.decode_jpeg(
                b,
                'BGR',
                min_height=-(-h // factor),
                min_width=-(-w // factor))

        return decode

    decoders = {
        'cv2 full': cv2_flag(cv2.IMREAD_COLOR),
        'cv2 1/2': cv2_flag(cv2.IMREAD_REDUCED_COLOR_2),
        'cv2 1/8': cv2_flag(cv2.IMREAD_REDUCED_COLOR_8),
    }
    if simplejpeg is not None:
        decoders.update({
            'turbojpeg full': turbo(1),
            'turbojpeg 1/2': turbo(2),
            'turbojpeg 1/8': turbo(8)
        })
    best = {k: 1e9 for k in decoders}
    for _ in range(repeats):
        for name, fn in decoders.items():
            start = time.process_time()
            for b in bufs:
                fn(b)
            best[name] = min(best[name],
                             (time.process_time() - start) / len(bufs))
    return {k: 1e3 * v for k, v in best.items()}


def resize_floor(infos: list, repeats: int) -> float:
    """Mean ms/image of the final resize at the scales where no JPEG
    reduction fits (a loader has to pay it whatever it decodes with)."""
    total = 0.
    for info in infos:
        w, h = info['width'], info['height']
        img = np.zeros((h, w, 3), np.uint8)
        for scale in SCALES:
            out = target_size(w, h, scale)
            if reduction_factor(w, h, *out) > 1:
                continue
            best = 1e9
            for _ in range(repeats):
                start = time.process_time()
                cv2.resize(img, out, interpolation=cv2.INTER_LINEAR)
                best = min(best, time.process_time() - start)
            total += best / len(SCALES)
    return 1e3 * total / len(infos)


def ours_pipeline(scales: list, flip: bool = True, **kwargs) -> Compose:
    """LoadAnnotations + LoadImageRandomChoiceResize (``kwargs``: e.g.
    ``decode_backend``) [+ RandomFlip]: the pipeline under test."""
    return Compose([
        dict(type='LoadAnnotations', with_bbox=True),
        dict(
            type='LoadImageRandomChoiceResize',
            scales=scales,
            keep_ratio=True,
            **kwargs)
    ] + ([dict(type='RandomFlip', prob=0.5)] if flip else []))


def per_scale(infos: list, repeats: int) -> None:
    """Where the time goes: each scale alone."""
    for scale in SCALES:
        pipes = dict(
            stock=Compose([
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True),
                dict(type='Resize', scale=scale, keep_ratio=True)
            ]),
            ours=ours_pipeline([scale], flip=False),
            ours_cv2=ours_pipeline([scale], flip=False, decode_backend='cv2'))
        ips = timed(pipes, infos, repeats)
        print(f'  scale {scale}: stock {1e3 / ips["stock"]:.3f} ms/img, '
              f'ours {1e3 / ips["ours"]:.3f} ms/img (ratio '
              f'{ips["ours"] / ips["stock"]:.2f}x), ours with cv2 '
              f'{1e3 / ips["ours_cv2"]:.3f} ms/img '
              f'({ips["ours_cv2"] / ips["stock"]:.2f}x)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-images', type=int, default=200)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument(
        '--size',
        default='500x375',
        help='image size WxH (ImageNet typical: 500x375)')
    parser.add_argument(
        '--cache-dir',
        default=osp.join(tempfile.gettempdir(), 'dap_bench_reduced_decode'))
    args = parser.parse_args()
    cv2.setNumThreads(1)  # as in dataloader workers (mmengine, torch)
    torch.set_num_threads(1)
    os.makedirs(args.cache_dir, exist_ok=True)
    init_default_scope('mmdet')
    size = tuple(int(v) for v in args.size.split('x'))
    infos = make_images(args.cache_dir, args.num_images, size)

    load = [dict(type='LoadAnnotations', with_bbox=True)]
    flip = [dict(type='RandomFlip', prob=0.5)]
    stock = Compose(
        [dict(type='LoadImageFromFile')] + load +
        [dict(type='RandomChoiceResize', scales=SCALES, keep_ratio=True)] +
        flip)
    ours = ours_pipeline(SCALES)
    ours_cv2 = ours_pipeline(SCALES, decode_backend='cv2')
    ours_pil = ours_pipeline(SCALES, decode_backend='pillow')
    pack = Compose([dict(type='PackDetInputs')])

    # same scale / flip draws -> same output sizes, boxes and meta
    a, b = run(stock, infos, 0), run(ours, infos, 0)
    max_box_diff, max_pix_diff, reduced = 0., 0., 0
    for x, y in zip(a, b):
        assert x['img'].shape == y['img'].shape, (x['img_path'])
        assert x['ori_shape'] == y['ori_shape']
        assert np.allclose(x['scale_factor'], y['scale_factor'], atol=0)
        assert x['flip'] == y['flip']
        max_box_diff = max(
            max_box_diff,
            float((x['gt_bboxes'].tensor - y['gt_bboxes'].tensor).abs().max()))
        max_pix_diff = max(
            max_pix_diff,
            float(np.abs(x['img'].astype(np.float32) - y['img']).mean()))
        reduced += y['decode_factor'] > 1

    for _ in range(2):  # warm-up: page cache, lazy imports
        run(stock, infos[:20], 0)
        run(ours, infos[:20], 0)
    pipelines = dict(
        stock=stock,
        ours=ours,
        ours_cv2=ours_cv2,
        ours_pillow=ours_pil,
        stock_pack=Compose(stock.transforms + pack.transforms),
        ours_pack=Compose(ours.transforms + pack.transforms))
    ips = timed(pipelines, infos, args.repeats)
    print(f'{len(infos)} JPEGs {size[0]}x{size[1]} (1/4 portrait) q90, '
          f'scales {SCALES}')
    print(f'same output sizes, scale factors and flips: yes; '
          f'max box difference {max_box_diff:.2e} px; mean |pixel diff| '
          f'<= {max_pix_diff:.2f} (0-255); decoded at reduced size: '
          f'{reduced}/{len(infos)}')
    print('images/s (CPU time, one thread, best of '
          f'{args.repeats} interleaved passes):')
    print(f'  stock  LoadImageFromFile + RandomChoiceResize  '
          f'{ips["stock"]:7.1f}')
    print(f'  ours   LoadImageRandomChoiceResize (default: '
          f'{ours.transforms[1].decode_backend}) '
          f'{ips["ours"]:7.1f}   ratio {ips["ours"] / ips["stock"]:.2f}x')
    print(f'  ours   LoadImageRandomChoiceResize (cv2)       '
          f'{ips["ours_cv2"]:7.1f}   ratio '
          f'{ips["ours_cv2"] / ips["stock"]:.2f}x')
    print(f'  ours   LoadImageRandomChoiceResize (pillow)    '
          f'{ips["ours_pillow"]:7.1f}   ratio '
          f'{ips["ours_pillow"] / ips["stock"]:.2f}x')
    print(f'  + PackDetInputs: stock {ips["stock_pack"]:.1f}, ours '
          f'{ips["ours_pack"]:.1f}, ratio '
          f'{ips["ours_pack"] / ips["stock_pack"]:.2f}x')
    bare = bare_decoders(infos, args.repeats)
    print('bare decoders, ms/image: ' + ', '.join(f'{k} {v:.3f}'
                                                  for k, v in bare.items()))
    floor = min(v for k, v in bare.items() if k.endswith('1/8'))
    resize = resize_floor(infos, args.repeats)
    print(f'bound: 1/8-size decode {floor:.3f} ms (~ the entropy decoding) '
          f'+ unavoidable resize {resize:.3f} ms per image -> no '
          f'libjpeg-based loader with the stock output passes '
          f'{1e3 / (floor + resize) / ips["stock"]:.2f}x the stock '
          'images/s here')
    per_scale(infos, args.repeats)


if __name__ == '__main__':
    main()
