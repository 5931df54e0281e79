"""Start-up, memory and access cost of ImageNetPseudoBoxDataset: 10k vs 14M.

Generates two simulated pseudo-box files (with the box-file writer):
ImageNet-22K-sized (14,197,122 images, 21841
classes, 1-3 boxes per image, 0.01% failed) and a 10k one, plus their
mmpretrain-format image lists.  Each measurement runs in a fresh
interpreter, so resident memory is counted from a clean baseline:

* open: ``ImageNetPseudoBoxDataset(...)`` construction (box file opened
  and indexed; ``verify_image_list=False``) -- target < 2 s;
* added resident memory per process (``VmRSS`` after construction and 10k
  random accesses minus before; split into anonymous = private and file =
  mapped box-file pages, which ranks on one node share) -- target < 100 MB;
* random ``get_data_info`` cost (CPU time, best of 5 rounds, box file in
  the page cache), 10k vs 14M -- target ratio ~1;
* the image-list check (streamed fingerprint of ``meta/train.txt``):
  time and peak memory;
* for scale: what mmengine's usual one-dict-per-image ``data_list`` costs
  (measured on 10k, extrapolated).

Files are cached in ``--cache-dir`` (default /tmp/dap_bench_pseudo_box,
about 2.5 GB for 14M).

    python benchmarks/bench_pseudo_box_dataset.py [--num-images 14197122]
"""
import argparse
import gc
import json
import os
import os.path as osp
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

NUM_CLASSES = 21841
ACCESSES = 10000


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """(N, width) ASCII digits of non-negative ints, zero padded."""
    out = np.empty((len(values), width), np.uint8)
    v = values.astype(np.int64).copy()
    for col in range(width - 1, -1, -1):
        out[:, col] = ord('0') + v % 10
        v //= 10
    return out


def simulated_list(n: int, seed: int = 0):
    """Keys ``n0XXXXXXX/n0XXXXXXX_YYYYYYYY.JPEG`` (33 bytes), labels sorted
    by class as in a class-folder scan, as fixed-width byte arrays."""
    rng = np.random.default_rng(seed)
    labels = np.sort(rng.integers(0, min(NUM_CLASSES, n), size=n))
    wnid = 1000000 + labels * 37  # distinct 8-digit ids
    serial = np.arange(n) - np.searchsorted(labels, labels)  # per class
    key = np.empty((n, 33), np.uint8)
    key[:, 0] = ord('n')
    key[:, 1:9] = _digits(wnid, 8)
    key[:, 9] = ord('/')
    key[:, 10] = ord('n')
    key[:, 11:19] = key[:, 1:9]
    key[:, 19] = ord('_')
    key[:, 20:28] = _digits(serial, 8)
    key[:, 28:33] = np.frombuffer(b'.JPEG', np.uint8)
    line = np.empty((n, 40), np.uint8)  # "<key> <label:05d>\n"
    line[:, :33] = key
    line[:, 33] = ord(' ')
    line[:, 34:39] = _digits(labels, 5)
    line[:, 39] = ord('\n')
    return key.view('S33').reshape(n), labels, line


def generate(root: str, n: int, seed: int = 0) -> None:
    """meta/train.txt and pseudo_boxes/boxes.dapbox for n images."""
    from projects.dap.dap.datasets.box_file.writer import (encode_keys,
                                                           encode_reasons,
                                                           write_arrays)
    box_path = osp.join(root, 'pseudo_boxes', 'boxes.dapbox')
    if osp.exists(osp.join(box_path, 'meta.json')):
        return
    start = time.perf_counter()
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    os.makedirs(osp.join(root, 'pseudo_boxes'), exist_ok=True)
    keys, labels, lines = simulated_list(n, seed)
    lines.tofile(osp.join(root, 'meta', 'train.txt'))
    del lines
    rng = np.random.default_rng(seed + 1)
    sizes = np.where(rng.random((n, 1)) < 0.75, [[500, 375]], [[375, 500]])
    status = np.zeros(n, np.uint8)
    failed = rng.choice(n, size=max(1, n // 10000), replace=False)
    status[failed] = 1
    counts = np.where(status == 1, 0, rng.integers(1, 4, size=n))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    m = int(offsets[-1])
    owner = np.repeat(np.arange(n), counts)
    wh = sizes[owner].astype(np.float32)
    x1y1 = rng.random((m, 2), dtype=np.float32) * wh * 0.5
    x2y2 = x1y1 + (0.1 + 0.4 * rng.random((m, 2), dtype=np.float32)) * wh
    boxes = np.concatenate([x1y1, x2y2], 1)
    scores = rng.random(m, dtype=np.float32)
    thresholds = np.full(m, 0.2, np.float32)
    # The arrays as they are: writer.write_arrays is write_box_file's core
    # (and the merge's), which checks and writes them without per-image
    # copies (14M per-image views would take ~14 GB).
    failed = np.sort(failed).astype(np.int64)
    arrays = dict(
        keys=encode_keys(keys),
        sizes=sizes.astype('<i4'),
        labels=labels.astype('<i8'),
        offsets=offsets.astype('<i8'),
        status=status,
        boxes=boxes,
        scores=scores,
        thresholds=thresholds,
        failed_indices=failed,
        failed_reasons=encode_reasons(['simulated failure'] * failed.size))
    write_arrays(
        Path(box_path), arrays, dict(num_classes=NUM_CLASSES), overwrite=False)
    print(
        f'  generated {n} images, {m} boxes in '
        f'{time.perf_counter() - start:.1f} s -> {root}',
        flush=True)


def _status() -> dict:
    """kB fields of /proc/self/status."""
    out = {}
    with open('/proc/self/status') as f:
        for line in f:
            name, _, value = line.partition(':')
            if value.strip().endswith('kB'):
                out[name] = int(value.split()[0])
    return out


def measure(root: str, verify: bool, seed: int) -> dict:
    """Runs in a fresh interpreter; returns the numbers as a dict."""
    from mmengine.logging import MMLogger

    import projects.dap.dap  # noqa: F401  (imports mmdet & co first)
    from projects.dap.dap.datasets import ImageNetPseudoBoxDataset
    MMLogger.get_instance('bench', log_level='WARNING')
    gc.collect()
    before = _status()
    start = time.perf_counter()
    ds = ImageNetPseudoBoxDataset(
        data_root=root,
        ann_file='meta/train.txt',
        data_prefix=dict(img='train/'),
        box_file='pseudo_boxes/boxes.dapbox',
        verify_image_list=verify)
    open_s = time.perf_counter() - start
    opened = _status()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(ds), size=ACCESSES).tolist()
    for i in idx[:100]:  # warm-up of the code path, not of the data
        ds.get_data_info(i)
    # best of 5 rounds of random reads, CPU time (user + system, so the
    # pread syscalls count) to be robust to other load on the machine
    access_us, boxes = float('inf'), 0
    for _ in range(5):
        idx = rng.integers(0, len(ds), size=ACCESSES // 5).tolist()
        start = time.process_time()
        for i in idx:
            boxes += len(ds.get_data_info(i)['instances'])
        access_us = min(access_us,
                        (time.process_time() - start) / len(idx) * 1e6)
    after = _status()
    mb = 1024.
    return dict(
        images=len(ds),
        open_s=open_s,
        access_us=access_us,
        boxes_per_image=boxes / ACCESSES,
        rss_open_mb=(opened['VmRSS'] - before['VmRSS']) / mb,
        rss_added_mb=(after['VmRSS'] - before['VmRSS']) / mb,
        anon_added_mb=(after['RssAnon'] - before['RssAnon']) / mb,
        file_added_mb=(after['RssFile'] - before['RssFile']) / mb,
        peak_added_mb=(after['VmHWM'] - before['VmRSS']) / mb)


def stock_style_cost(root: str, n: int) -> dict:
    """mmengine's usual path: one dict per image, then pickled (10k)."""
    import projects.dap.dap  # noqa: F401
    from projects.dap.dap.datasets import ImageNetPseudoBoxDataset
    ds = ImageNetPseudoBoxDataset(
        data_root=root,
        ann_file='meta/train.txt',
        data_prefix=dict(img='train/'),
        box_file='pseudo_boxes/boxes.dapbox',
        verify_image_list=False)
    gc.collect()
    before = _status()['VmRSS']
    data_list = [ds.get_data_info(i) for i in range(len(ds))]
    as_dicts = (_status()['VmRSS'] - before) / 1024.
    serialized = sum(len(pickle.dumps(d, protocol=4)) for d in data_list)
    return dict(
        dict_mb=as_dicts,
        pickled_mb=serialized / 2**20,
        images=len(data_list),
        n=n)


def warm_page_cache(root: str) -> None:
    """Read the box file once, so both sizes are measured from memory (a
    cold 14M file costs disk reads that the 10k one never needs)."""
    box_dir = osp.join(root, 'pseudo_boxes', 'boxes.dapbox')
    for name in sorted(os.listdir(box_dir)):
        with open(osp.join(box_dir, name), 'rb') as f:
            while f.read(1 << 24):
                pass


def run_child(args: list) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS='1')
    out = subprocess.run(
        [sys.executable, __file__] + args,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-images', type=int, default=14197122)
    parser.add_argument('--small', type=int, default=10000)
    parser.add_argument(
        '--cache-dir',
        default=osp.join(tempfile.gettempdir(), 'dap_bench_pseudo_box'))
    parser.add_argument(
        '--child',
        nargs=3,
        metavar=('MODE', 'ROOT', 'N'),
        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, root, n = args.child
        result = (
            stock_style_cost(root, int(n)) if mode == 'stock' else measure(
                root, mode == 'verify', seed=int(n) % 997))
        print(json.dumps(result))
        return

    roots = {}
    for n in (args.small, args.num_images):
        roots[n] = osp.join(args.cache_dir, f'in_{n}')
        generate(roots[n], n)
    res = {}
    for n in roots:
        warm_page_cache(roots[n])
        res[n] = run_child(['--child', 'open', roots[n], str(n)])
    ver = {
        n: run_child(['--child', 'verify', roots[n],
                      str(n)])
        for n in roots
    }
    stock = run_child(['--child', 'stock', roots[args.small], str(args.small)])

    print(f'{"":34s}{args.small:>14,d}{args.num_images:>14,d}  images')
    rows = [('dataset construction (s)', 'open_s', '{:.3f}'),
            ('get_data_info, random (us)', 'access_us', '{:.1f}'),
            ('added RSS after open (MB)', 'rss_open_mb', '{:.1f}'),
            ('added RSS after 10k reads (MB)', 'rss_added_mb', '{:.1f}'),
            ('  of which anonymous (MB)', 'anon_added_mb', '{:.1f}'),
            ('  of which mapped file (MB)', 'file_added_mb', '{:.1f}')]
    for label, key, fmt in rows:
        print(f'{label:34s}' + ''.join(f'{fmt.format(res[n][key]):>14s}'
                                       for n in roots))
    for label, key, fmt in [
        ('with list check: construction (s)', 'open_s', '{:.2f}'),
        ('with list check: peak added (MB)', 'peak_added_mb', '{:.1f}')
    ]:
        print(f'{label:34s}' + ''.join(f'{fmt.format(ver[n][key]):>14s}'
                                       for n in roots))
    small, big = res[args.small], res[args.num_images]
    print(f'access cost ratio {args.num_images:,} / {args.small:,}: '
          f'{big["access_us"] / small["access_us"]:.2f}x')
    print(f'open time {args.num_images:,}: {big["open_s"]:.2f} s '
          f'(target < 2 s); added RSS {big["rss_added_mb"]:.1f} MB '
          '(target < 100 MB)')
    scale = args.num_images / stock['images']
    print(f'for comparison, one dict per image (mmengine data_list) for '
          f'{stock["images"]:,} images: {stock["dict_mb"]:.1f} MB as dicts, '
          f'{stock["pickled_mb"]:.1f} MB pickled -> x{scale:,.0f} for '
          f'{args.num_images:,}: ~{stock["dict_mb"] * scale / 1024:.1f} GB '
          f'/ ~{stock["pickled_mb"] * scale / 1024:.1f} GB per process')


if __name__ == '__main__':
    main()
