"""Joining the shards of all ranks into one pseudo-box file.

The merged file is ordered by dataset index and byte-identical to a
direct :func:`~.writer.write_box_file` of the same results, however the
images were spread over ranks, runs and shards.
"""
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from .format import (STATUS_FAILED, BoxFileError, PathLike, canonical_json,
                     describe_changes)
from .reader import PseudoBoxFile
from .shards import (RUN_FILE, SHARD_FIELDS, empty_shard, read_run_json,
                     read_shard, run_meta_digest, shard_paths)
from .writer import encode_keys, encode_reasons, write_arrays


def segment_rows(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Row indices of the concatenated segments [start, start + count)."""
    counts = counts.astype(np.int64)
    total = int(counts.sum())
    seg_first = np.cumsum(counts) - counts
    return np.repeat(starts.astype(np.int64) - seg_first, counts) + \
        np.arange(total, dtype=np.int64)


def _merged_meta(run_meta: Optional[Dict], meta: Optional[Dict]) -> Dict:
    """meta for the merged file: run.json fields, then the caller's."""
    out = dict(meta or {})
    for name in ('generation_config', 'checkpoint_sha256',
                 'image_list_fingerprint', 'num_classes', 'classes'):
        if run_meta is None or name not in run_meta:
            continue
        if name in out and json.loads(canonical_json(out[name],
                                                     name)) != run_meta[name]:
            changes = '; '.join(describe_changes(run_meta, out, depth=1))
            raise BoxFileError(
                f'meta["{name}"] differs from the value the shards were '
                f'made with ({RUN_FILE}): {changes}')
        out[name] = run_meta[name]
    return out


def merge_shards(shard_dir: PathLike,
                 out_path: PathLike,
                 num_images: int,
                 keys: Optional[Sequence[str]] = None,
                 meta: Optional[Dict] = None,
                 overwrite: bool = False) -> PseudoBoxFile:
    """Merge all shards into one box file ordered by dataset index.

    Every index in ``[0, num_images)`` must appear; identical duplicates
    (an image done twice, e.g. by overlapping runs) are kept once,
    conflicting ones are an error. ``keys`` (the ordered image list), when
    given, must match the shards' keys. ``meta`` is completed with the
    fields of ``run.json`` (generation_config, checkpoint_sha256,
    image_list_fingerprint, num_classes, classes; conflicts are errors).
    Vectorised over boxes; memory ~ 3x the merged arrays.
    """
    shard_dir = Path(shard_dir)
    n = int(num_images)
    run_meta = read_run_json(shard_dir)
    paths = shard_paths(shard_dir)
    if run_meta is None and paths:
        raise BoxFileError(f'{shard_dir} has shards but no {RUN_FILE}')
    if run_meta is not None and run_meta.get('num_images', n) != n:
        raise BoxFileError(
            f'shards in {shard_dir} were made for '
            f'{run_meta["num_images"]} images, merge asked for {n}')
    if keys is not None and len(keys) != n:
        raise BoxFileError(f'{len(keys)} keys given for {n} images')
    digest = None if run_meta is None else run_meta_digest(run_meta)
    shards = [read_shard(p, digest) for p in paths]
    fields = {
        name: np.concatenate([s[name] for s in shards or [empty_shard()]])
        for name in SHARD_FIELDS
    }
    shard_of_row = np.repeat(
        np.arange(len(shards)), [len(s['indices']) for s in shards])
    idx, counts = fields['indices'], fields['counts']
    out_of_range = np.flatnonzero((idx < 0) | (idx >= n))
    if out_of_range.size:
        row = int(out_of_range[0])
        raise BoxFileError(
            f'shard {paths[shard_of_row[row]]} holds index {idx[row]}, '
            f'outside [0, {n}): it was made for another image list')
    starts = np.cumsum(counts) - counts
    order = np.argsort(idx, kind='stable')
    sorted_idx = idx[order]
    first = np.ones(len(idx), bool)
    first[1:] = sorted_idx[1:] != sorted_idx[:-1]
    _check_duplicates(fields, starts, order, first, shard_of_row, paths)
    rows = order[first]
    if len(rows) != n:
        missing = np.setdiff1d(np.arange(n), idx[rows])
        examples = ', '.join(
            str(i) if keys is None else f'{i} ({keys[i]})'
            for i in missing[:5].tolist())
        raise BoxFileError(
            f'{len(missing)} of {n} images have no result in {shard_dir} '
            f'(e.g. {examples}); rerun the generation (it resumes and '
            'computes only the missing images) before merging')
    merged_keys = fields['keys'][rows]
    if keys is not None:
        expected = encode_keys(keys)
        bad = np.flatnonzero(merged_keys != expected)
        if bad.size:
            i = int(bad[0])
            raise BoxFileError(
                f'{bad.size} shard keys differ from the image list, e.g. '
                f'index {i}: shard {bytes(merged_keys[i])!r}, list '
                f'{bytes(expected[i])!r}; the shards were made for another '
                'image list or order')
    box_rows = segment_rows(starts[rows], counts[rows])
    status = fields['status'][rows]
    failed_rows = rows[status == STATUS_FAILED]
    arrays = {
        'keys': encode_keys(merged_keys),
        'sizes': np.ascontiguousarray(fields['sizes'][rows], '<i4'),
        'labels': np.ascontiguousarray(fields['labels'][rows], '<i8'),
        'offsets': np.concatenate([[0],
                                   np.cumsum(counts[rows])]).astype('<i8'),
        'status': np.ascontiguousarray(status, 'u1'),
        'boxes': np.ascontiguousarray(fields['boxes'][box_rows], '<f4'),
        'scores': np.ascontiguousarray(fields['scores'][box_rows], '<f4'),
        'thresholds': np.ascontiguousarray(fields['thresholds'][box_rows],
                                           '<f4'),
        'failed_indices': idx[failed_rows].astype('<i8'),
        'failed_reasons':
        encode_reasons(fields['reasons'][failed_rows].tolist()),
    }
    out_path = Path(out_path)
    write_arrays(out_path, arrays, _merged_meta(run_meta, meta), overwrite)
    return PseudoBoxFile.open(out_path)


def _check_duplicates(fields: Dict[str, np.ndarray], starts: np.ndarray,
                      order: np.ndarray, first: np.ndarray,
                      shard_of_row: np.ndarray, paths: List[Path]) -> None:
    """Duplicates of an index must equal its first occurrence bit-exactly."""
    if first.all():
        return
    positions = np.arange(len(order))
    group_first = np.maximum.accumulate(np.where(first, positions, 0))
    dup = order[~first]
    ref = order[group_first[~first]]
    differs = np.zeros(len(dup), bool)
    for name in ('keys', 'sizes', 'labels', 'status', 'reasons', 'counts'):
        a, b = fields[name][dup], fields[name][ref]
        differs |= (a != b).reshape(len(dup), -1).any(1)
    same_count = ~differs
    counts = fields['counts']
    for name in ('boxes', 'scores', 'thresholds'):
        values = fields[name].view(np.uint32)  # bitwise, NaN == NaN
        a = values[segment_rows(starts[dup[same_count]],
                                counts[dup[same_count]])]
        b = values[segment_rows(starts[ref[same_count]],
                                counts[ref[same_count]])]
        pair = np.repeat(np.flatnonzero(same_count), counts[dup[same_count]])
        bad = (a != b).reshape(len(a), -1).any(1)
        differs[pair[bad]] = True
    if differs.any():
        bad = np.flatnonzero(differs)
        examples = '; '.join(f'index {fields["indices"][dup[i]]} in '
                             f'{paths[shard_of_row[dup[i]]].name} and '
                             f'{paths[shard_of_row[ref[i]]].name}'
                             for i in bad[:5])
        raise BoxFileError(
            f'{bad.size} images have conflicting results in different '
            f'shards ({examples}). Two runs with different settings wrote '
            'into the same work dir; delete the shards of one of them.')
