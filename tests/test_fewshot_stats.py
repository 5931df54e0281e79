"""fewshot/stats.py: the numbers behind the study's verdict, by hand.

Each case is small enough to recompute on paper; the edge cases are the
ones a verdict can silently get wrong (a gap exactly at the spread, a tie
seed, a seed only one init ran, a run without the metric).
"""
import math

import numpy as np
import pytest

from projects.dap.dap.fewshot.stats import compare, mean_sd, setting_order


def test_mean_and_sample_sd():
    # mean 4; squared deviations 4 + 0 + 4 over n - 1 = 2: sd 2
    assert mean_sd([2., 4., 6.]) == (4., 2.)
    assert mean_sd(iter([1, 3])) == (2., math.sqrt(2.))  # any iterable
    assert mean_sd([7.5]) == (7.5, 0.)  # one seed: no spread
    m, s = mean_sd([])
    assert math.isnan(m) and math.isnan(s)


def test_mean_sd_computes_in_float64():
    # float32 metrics (e.g. from tensors): 1e8 and 1 are exact in float32,
    # their mean 50000000.5 is not
    values = [np.float32(1e8), np.float32(1.)]
    m, s = mean_sd(values)
    assert m == 50000000.5
    assert s == pytest.approx((1e8 - 1) / math.sqrt(2.), rel=1e-12)


def test_settings_are_ordered_by_shots_then_full():
    assert setting_order(['full', '10shot', '5shot', '100shot',
                          '10shot']) == ['5shot', '10shot', '100shot', 'full']
    assert setting_order(['full']) == ['full']


def _runs(values, metric='AP50', seeds=None):
    seeds = range(len(values)) if seeds is None else seeds
    return [dict(seed=s, **{metric: v}) for s, v in zip(seeds, values)]


def test_compare_hand_computed():
    results = {
        ('dap', '5shot'): _runs([3., 4., 5.]),  # 4 +- 1
        ('cls', '5shot'): _runs([0., 1., 2.]),  # 1 +- 1
        ('dap', 'full'): _runs([6.]),
        ('cls', 'full'): _runs([5.]),
    }
    five, full = compare(results, 'AP50')
    assert five == dict(
        setting='5shot',
        dap=(4., 1.),
        dap_n=3,
        cls=(1., 1.),
        cls_n=3,
        paired=(3., 0.),
        paired_wins=3,
        paired_n=3,
        gap=3.,
        spread=2.,
        beats=True)
    assert full['setting'] == 'full'
    assert (full['gap'], full['spread'], full['beats']) == (1., 0., True)
    # the order of the inits is the sign of every difference
    cls_first = compare(results, 'AP50', inits=('cls', 'dap'))[0]
    assert (cls_first['gap'], cls_first['paired']) == (-3., (-3., 0.))
    assert cls_first['paired_wins'] == 0 and not cls_first['beats']


def test_a_gap_exactly_at_the_spread_is_not_beyond_it():
    results = {
        ('dap', '5shot'): _runs([3., 4., 5.]),  # 4 +- 1
        ('cls', '5shot'): _runs([1., 2., 3.]),  # 2 +- 1: gap 2 == 1 + 1
    }
    row, = compare(results, 'AP50')
    assert (row['gap'], row['spread']) == (2., 2.)
    assert row['beats'] is False


def test_paired_wins_count_only_seeds_where_dap_is_higher():
    # per seed DAP - CLS: +0.5, 0 (a tie), -1, +2
    results = {
        ('dap', '10shot'): _runs([10.5, 10., 9., 12.]),
        ('cls', '10shot'): _runs([10., 10., 10., 10.]),
    }
    row, = compare(results, 'AP50')
    assert (row['paired_wins'], row['paired_n']) == (2, 4)
    # mean of the differences 1.5 / 4; sd from the four differences
    assert row['paired'] == (0.375,
                             pytest.approx(np.std([0.5, 0., -1., 2.], ddof=1)))


def test_unpaired_seeds_missing_metrics_and_missing_inits():
    nan = float('nan')
    results = {
        # seed 2 has no CLS run; seed 1's DAP run has no AP50 at all and
        # seed 3's is NaN (an unfinished evaluation): both are left out
        ('dap', '5shot'): [
            dict(seed=0, AP50=6.),
            dict(seed=1, AP=1.),
            dict(seed=2, AP50=8.),
            dict(seed=3, AP50=nan)
        ],
        ('cls', '5shot'):
        _runs([2., 3., 4.], seeds=(0, 1, 4)),
        # only DAP ran the full-data setting
        ('dap', 'full'):
        _runs([9.]),
    }
    five, full = compare(results, 'AP50')
    assert five['dap'] == (7., math.sqrt(2.)) and five['dap_n'] == 2
    assert five['cls'] == (3., 1.) and five['cls_n'] == 3
    assert five['paired'] == (4., 0.)  # seed 0 only: 6 - 2
    assert (five['paired_wins'], five['paired_n']) == (1, 1)
    assert full['dap'] == (9., 0.) and full['cls_n'] == 0
    assert math.isnan(full['cls'][0]) and math.isnan(full['gap'])
    assert full['paired_n'] == 0 and math.isnan(full['paired'][0])
    assert full['beats'] is False


def test_runs_without_a_seed_are_not_paired():
    results = {
        ('dap', '5shot'): [dict(AP50=5.), dict(AP50=7.)],
        ('cls', '5shot'): [dict(AP50=1.)],
    }
    row, = compare(results, 'AP50')
    assert row['dap'] == (6., math.sqrt(2.)) and row['cls'] == (1., 0.)
    assert row['paired_n'] == 0 and row['paired_wins'] == 0
