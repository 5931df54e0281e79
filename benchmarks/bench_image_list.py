"""Step 2's image list at ImageNet-22K scale: IndexedImageNet21k vs mmpretrain.

Generates a ``meta/train.txt`` in the ImageNet-22K layout
(``n<wnid>/n<wnid>_<i>.JPEG <label>``, 21841 classes, by default
14,197,122 lines) under a temporary folder and measures, each in a fresh
process (so imports and caches do not mix):

* building ``IndexedImageNet21k`` (the index is built once), reopening it,
  and the image-list fingerprint the generation hook computes (streamed);
* mmpretrain's ``ImageNet21k`` plus the hook's in-memory fingerprint path
  on the first ``--mmpretrain-lines`` lines (14M would need ~13 GB), with a
  linear extrapolation to the full list.

Memory: the process's resident set just before the step and its peak
during it (``VmHWM`` reset through ``/proc/self/clear_refs``), so the
increase is what the dataset itself needs on top of torch / mmpretrain.
Everything generated is deleted at the end (``--keep`` keeps it)::

    python benchmarks/bench_image_list.py [--lines 14197122]
"""
import argparse
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
NUM_CLASSES = 21841

CHILD = r'''
import json, os, sys, time
import projects.dap.dap  # noqa (registers; imports torch and mmpretrain)

def rss():
    out = {}
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(('VmRSS', 'VmHWM')):
                name, value = line.split(':')
                out[name] = int(value.split()[0]) / 1024
    return out

def reset_peak():
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')

def measure(fn):
    before = rss()['VmRSS']
    reset_peak()
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    return value, dict(seconds=seconds, rss_before_mb=before,
                       peak_mb=rss()['VmHWM'])

mode, root, num_classes = sys.argv[1], sys.argv[2], int(sys.argv[3])
result = {}
if mode == 'indexed':
    from projects.dap.dap.datasets import IndexedImageNet21k
    ds, result['construct'] = measure(
        lambda: IndexedImageNet21k(data_root=root, split='train'))
    result['num_images'] = len(ds)
    _, result['fingerprint'] = measure(
        lambda: ds.image_list_fingerprint(num_classes))
else:
    from mmpretrain.datasets import ImageNet21k
    from projects.dap.dap.datasets.box_file import image_list_fingerprint
    from projects.dap.dap.engine.hooks.cam_box_hook import dataset_image_list
    ds, result['construct'] = measure(
        lambda: ImageNet21k(data_root=root, split='train'))
    result['num_images'] = len(ds)
    _, result['fingerprint'] = measure(
        lambda: image_list_fingerprint(*dataset_image_list(ds, num_classes)))
print('RESULT ' + json.dumps(result))
'''


def write_list(path: str, num_lines: int) -> None:
    """22K layout: classes in sorted folder order, ~650 images each."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    per, extra = divmod(num_lines, NUM_CLASSES)
    with open(path, 'w', buffering=8 << 20) as f:
        for c in range(NUM_CLASSES):
            wnid = f'n{c:08d}'
            n = per + (c < extra)
            f.write(''.join(f'{wnid}/{wnid}_{i}.JPEG {c}\n' for i in range(n)))


def run_child(mode: str, root: str) -> dict:
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, '-c', CHILD, mode, root,
         str(NUM_CLASSES)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True)
    for line in proc.stdout.splitlines():
        if line.startswith('RESULT '):
            return json.loads(line[len('RESULT '):])
    raise RuntimeError(f'{mode} run failed:\n{proc.stdout[-4000:]}')


def show(name: str, m: dict) -> None:
    print(f'  {name:<24} {m["seconds"]:7.2f} s   peak RSS '
          f'{m["peak_mb"]:7.0f} MB (+{m["peak_mb"] - m["rss_before_mb"]:.0f}'
          f' MB over {m["rss_before_mb"]:.0f} MB before)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--lines', type=int, default=14_197_122)
    parser.add_argument(
        '--mmpretrain-lines',
        type=int,
        default=1_000_000,
        help='list size for mmpretrain (it needs ~0.9 GB '
        'per million lines)')
    parser.add_argument('--tmp', default=None, help='folder for the lists')
    parser.add_argument('--keep', action='store_true')
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix='bench_image_list_', dir=args.tmp)
    try:
        big, small = osp.join(tmp, 'big'), osp.join(tmp, 'small')
        start = time.perf_counter()
        write_list(osp.join(big, 'meta', 'train.txt'), args.lines)
        size = os.path.getsize(osp.join(big, 'meta', 'train.txt'))
        print(f'generated {args.lines:,} lines ({size / 2**20:.0f} MB) in '
              f'{time.perf_counter() - start:.0f} s')
        os.makedirs(osp.join(small, 'meta'))
        with open(osp.join(big, 'meta', 'train.txt')) as src, \
                open(osp.join(small, 'meta', 'train.txt'), 'w') as dst:
            for _ in range(args.mmpretrain_lines):
                dst.write(src.readline())

        first = run_child('indexed', big)
        second = run_child('indexed', big)
        index_dir = osp.join(big, 'meta', 'train.txt.dapindex')
        index_mb = sum(
            osp.getsize(osp.join(index_dir, n))
            for n in os.listdir(index_dir)) / 2**20
        ref = run_child('mmpretrain', small)
        assert first['num_images'] == args.lines
        assert ref['num_images'] == args.mmpretrain_lines

        print(f'\nIndexedImageNet21k, {args.lines:,} lines '
              f'(index on disk: {index_mb:.0f} MB)')
        show('construct + build index', first['construct'])
        show('reopen (index exists)', second['construct'])
        show('fingerprint (streamed)', second['fingerprint'])
        print(f'\nmmpretrain ImageNet21k, {args.mmpretrain_lines:,} lines '
              '(all 14M would not fit next to the other jobs here)')
        show('construct', ref['construct'])
        show('hook fingerprint path', ref['fingerprint'])

        scale = args.lines / args.mmpretrain_lines
        ref_mb = (ref['construct']['peak_mb'] -
                  ref['construct']['rss_before_mb']) * scale
        new_mb = first['construct']['peak_mb'] - \
            first['construct']['rss_before_mb']
        print(f'\nextrapolated to {args.lines:,} lines: mmpretrain '
              f'+{ref_mb:,.0f} MB and '
              f'{ref["construct"]["seconds"] * scale:.0f} s per rank to '
              f'construct, IndexedImageNet21k +{new_mb:.0f} MB '
              f'(ratio {ref_mb / max(new_mb, 1):.0f}x), '
              f'{first["construct"]["seconds"]:.1f} s once then '
              f'{second["construct"]["seconds"]:.2f} s')
        print(f'targets at {args.lines:,} lines: peak RSS increase < 200 MB: '
              f'{"met" if new_mb < 200 else "MISSED"}; build < 30 s: '
              f'{"met" if first["construct"]["seconds"] < 30 else "MISSED"};'
              f' reopen < 2 s: '
              f'{"met" if second["construct"]["seconds"] < 2 else "MISSED"}')
    finally:
        if args.keep:
            print(f'kept {tmp}')
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
