"""Benchmark: batched CAM box fitting vs the original and per-image loops.

Generates smooth random CAMs on 576-scale grids (18 x 18..40 and 18..40 x
18, min-max normalised) and runs, in one process, per-image loops
implementing the same algorithm -- (a0) the original's own code path
(``tests/helpers/original_dap.py``: ``compute_cam_box`` + maskrcnn-benchmark's
``boxlist_nms``, on a subset), with ``scipy.ndimage.label`` + numpy
moments (a1) the tests' literal reference (``tests/helpers/box_fitting.py``,
imported: one ``labels == i`` mask per component) and (a2) the same with
the rectangles from ``ndimage.find_objects`` -- and (b)
:func:`fit_cam_boxes`; checks that all agree and prints per-image
times and the ratios.  Times are CPU time of this process
(``time.process_time``, best of ``--repeat``), which is less sensitive to
other processes sharing the machine; wall times are printed too.

    python benchmarks/bench_box_fitting.py [--num 2000] [--repeat 3]
"""
import argparse
import os.path as osp
import sys
import time

import numpy as np
from scipy import ndimage

REPO = osp.join(osp.dirname(osp.abspath(__file__)), '..')
sys.path[:0] = [REPO, osp.join(REPO, 'tests')]
# the tests' reference, importable after the sys.path line above
# isort: off
from helpers.box_fitting import reference_fit  # noqa: E402
from helpers.original_dap import (  # noqa: E402
    original_boxlist_nms, original_compute_cam_box)
from projects.dap.dap.models.box_fitting import fit_cam_boxes  # noqa: E402
# isort: on


def make_cams(num, seed):
    rng = np.random.default_rng(seed)
    cams = []
    for _ in range(num):
        long_side = int(rng.integers(18, 41))
        shape = (18, long_side) if rng.random() < 0.7 else (long_side, 18)
        field = ndimage.gaussian_filter(
            rng.standard_normal(shape), rng.uniform(1.0, 4.0))
        field -= field.min()
        cams.append(field / field.max())
    return cams


def best_time(fn, repeat):
    cpu, wall = [], []
    for _ in range(repeat):
        t0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        cpu.append(time.process_time() - t0)
        wall.append(time.perf_counter() - w0)
    return out, min(cpu), min(wall)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num', type=int, default=2000)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument(
        '--num-original',
        type=int,
        default=300,
        help='CAMs for the (slow) original code path')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    cams = make_cams(args.num, args.seed)
    print(f'{args.num} CAMs, shapes 18x18..18x40 and 18..40x18 '
          f'({np.mean([c.size for c in cams]):.0f} cells on average)')

    lit, lit_cpu, lit_wall = best_time(
        lambda: [reference_fit(c) for c in cams], args.repeat)
    ref, ref_cpu, ref_wall = best_time(
        lambda: [reference_fit(c, find_objects=True) for c in cams],
        args.repeat)
    got, cpu, wall = best_time(lambda: fit_cam_boxes(cams), args.repeat)
    worst = 0.0
    for want, res in zip(lit + ref, got + got):
        boxes, scores, ths = want
        assert boxes.shape == res.boxes.shape, 'different box counts'
        assert np.array_equal(ths, res.thresholds), 'different thresholds'
        worst = max(worst,
                    np.abs(boxes - res.boxes).max(),
                    np.abs(scores - res.scores).max())
    # (a0) the original's own code path (compute_cam_box + boxlist_nms, in
    # pixels; a cell is 32 px since every grid's short side is 18 = 576/32)
    few = cams[:args.num_original]
    sizes = [(c.shape[1] * 32, c.shape[0] * 32) for c in few]
    orig, orig_cpu, orig_wall = best_time(
        lambda: [
            original_boxlist_nms(*original_compute_cam_box(c, wh), 0.8)
            for c, wh in zip(few, sizes)
        ], 1)
    px, px_cpu, px_wall = best_time(
        lambda: fit_cam_boxes(few, image_hw=[(h, w) for w, h in sizes]),
        args.repeat)
    worst_px = 0.0
    for (boxes, _), res in zip(orig, px):
        assert tuple(boxes.shape) == res.boxes.shape, 'different box counts'
        worst_px = max(worst_px, np.abs(boxes.numpy() - res.boxes).max())
    print(f'(a0) the original code path on {len(few)} CAMs (pixels): same '
          f'boxes, max abs difference {worst_px:.1e} px; '
          f'{orig_cpu / len(few) * 1e3:.3f} ms/image CPU vs batched '
          f'{px_cpu / len(few) * 1e3:.4f}: speed-up '
          f'{orig_cpu / px_cpu:.0f}x CPU, {orig_wall / px_wall:.0f}x wall')
    per_img = cpu / args.num * 1e3
    print(f'outputs equal: yes ({sum(len(r.boxes) for r in got)} boxes, '
          f'max abs difference {worst:.1e})')
    for name, c, w in (('(a1) literal scipy loop', lit_cpu, lit_wall),
                       ('(a2) find_objects loop ', ref_cpu,
                        ref_wall), ('(b) batched            ', cpu, wall)):
        print(f'{name}: {c / args.num * 1e3:.4f} ms/image CPU, '
              f'{w / args.num * 1e3:.4f} wall')
    for name, c, w in (('(a1)/(b)', lit_cpu, lit_wall), ('(a2)/(b)', ref_cpu,
                                                         ref_wall)):
        ratio = c / cpu
        print(f'speed-up {name}: {ratio:.1f}x CPU, {w / wall:.1f}x wall; '
              f'target >= 10x: {"met" if ratio >= 10 else "NOT met"}')
    print(f'target < 0.2 ms/image: {"met" if per_img < 0.2 else "NOT met"}')


if __name__ == '__main__':
    main()
