"""Statistics of a k-shot x seeds x {DAP, CLS} study.

A seed draws the k-shot split *and* the training randomness, and both
initialisations are fine-tuned on the same split of a seed, so DAP and CLS
are compared per seed (paired) as well as by their means.
"""
import math
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

#: (init, setting) -> one metrics dict per seed (``seed``, ``AP50``, ``AP``)
Results = Dict[Tuple[str, str], List[Dict[str, float]]]


def mean_sd(values: Iterable[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value, NaN for
    none)."""
    arr = np.asarray(list(values), np.float64)
    if not arr.size:
        return float('nan'), float('nan')
    sd = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return float(arr.mean()), sd


def setting_key(setting: str) -> Tuple[int, int]:
    """Order '5shot' < '10shot' < ... < 'full'."""
    if setting == 'full':
        return (1, 0)
    return (0, int(setting.replace('shot', '')))


def setting_order(settings: Iterable[str]) -> List[str]:
    return sorted(set(settings), key=setting_key)


def compare(results: Results,
            metric: str,
            inits: Sequence[str] = ('dap', 'cls')) -> List[dict]:
    """Per setting: mean / sd over seeds of each init, the gap of the
    means, whether it exceeds the spread, and the paired difference.

    DAP "beats CLS beyond the spread" when the gap of the means exceeds
    sd(DAP) + sd(CLS).  ``paired`` is the mean / sd over the seeds both
    inits ran of (first init - second init); ``paired_wins`` counts the
    seeds where the first is higher.  Missing values (NaN) are left out.
    """
    first, second = inits
    rows = []
    for setting in setting_order(s for _, s in results):
        row = dict(setting=setting)
        by_seed = {}
        for init in inits:
            runs = [
                r for r in results.get((init, setting), [])
                if not math.isnan(float(r.get(metric, math.nan)))
            ]
            row[init] = mean_sd(r[metric] for r in runs)
            row[f'{init}_n'] = len(runs)
            by_seed[init] = {r.get('seed'): float(r[metric]) for r in runs}
        common = sorted(set(by_seed[first]) & set(by_seed[second]) - {None})
        diffs = [by_seed[first][k] - by_seed[second][k] for k in common]
        row['paired'] = mean_sd(diffs)
        row['paired_wins'] = sum(d > 0 for d in diffs)
        row['paired_n'] = len(common)
        row['gap'] = row[first][0] - row[second][0]
        row['spread'] = row[first][1] + row[second][1]
        row['beats'] = bool(row['gap'] > row['spread'])
        rows.append(row)
    return rows
