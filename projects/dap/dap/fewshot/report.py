"""The study's report: markdown table, CSV / JSON, AP-vs-shots plot.

Everything here reads the per-run results the sweep collected from the
runs' own metric logs; nothing is trained.
"""
import csv
import json
import math
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np

from .splits import write_atomic
from .stats import Results, compare

#: the per-run columns of ``results.csv``
CSV_FIELDS = ('init', 'setting', 'shot', 'seed', 'AP50', 'AP', 'max_iters',
              'num_images', 'work_dir')


def _fmt(ms, signed: bool = False) -> str:
    m, s = ms
    if math.isnan(m):
        return 'n/a'
    return f'{m:+.1f} ± {s:.1f}' if signed else f'{m:.1f} ± {s:.1f}'


def _gap(row: dict) -> str:
    if math.isnan(row['gap']):
        return 'n/a'
    return f'{row["gap"]:+.1f}{" ✓" if row["beats"] else ""}'


def setting_label(setting: str, full_label: str = 'full data') -> str:
    return full_label if setting == 'full' else \
        f'{setting.replace("shot", "")}-shot'


def results_table(results: Results, full_label: str = 'full data') -> str:
    """Markdown: AP50 and AP per setting, CLS vs DAP, gap and paired Δ."""
    ap50 = compare(results, 'AP50')
    ap = {r['setting']: r for r in compare(results, 'AP')}
    lines = [
        '| setting | seeds | CLS AP50 | DAP AP50 | Δ AP50 | paired Δ AP50 '
        '(DAP wins) | CLS AP | DAP AP | Δ AP | paired Δ AP (DAP wins) |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for r in ap50:
        b = ap[r['setting']]
        lines.append(
            f'| {setting_label(r["setting"], full_label)} | '
            f'{min(r["dap_n"], r["cls_n"])} | {_fmt(r["cls"])} | '
            f'{_fmt(r["dap"])} | {_gap(r)} | {_fmt(r["paired"], True)} '
            f'({r["paired_wins"]}/{r["paired_n"]}) | {_fmt(b["cls"])} | '
            f'{_fmt(b["dap"])} | {_gap(b)} | {_fmt(b["paired"], True)} '
            f'({b["paired_wins"]}/{b["paired_n"]}) |')
    return '\n'.join(lines)


def verdict(results: Results, metric: str = 'AP50') -> str:
    """One sentence: does DAP beat CLS beyond the spread in low data?"""
    low = [r for r in compare(results, metric) if r['setting'] != 'full']
    wins = [r for r in low if r['beats']]
    if not low:
        return 'No low-data setting was run.'
    if len(wins) == len(low):
        return ('DAP initialisation beats CLS initialisation on every '
                f'low-data setting by more than the spread in {metric} '
                '(gap of the means > sd(DAP) + sd(CLS)).')
    lost = ', '.join(r['setting'] for r in low if not r['beats'])
    return (f'DAP beats CLS by more than the spread in {metric} on '
            f'{len(wins)} of {len(low)} low-data settings; not on: {lost}.')


def plot_ap_vs_shots(results: Results,
                     out_file: str,
                     metric: str = 'AP50',
                     ylabel: Optional[str] = None,
                     full_label: str = 'full data') -> None:
    """AP vs shots (log x), mean ± sd over seeds as error bars and a band;
    full-data results as dashed lines."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = compare(results, metric)
    shots = [r for r in rows if r['setting'] != 'full']
    full = [r for r in rows if r['setting'] == 'full']
    fig, ax = plt.subplots(figsize=(5.5, 4))
    colours = dict(dap='tab:red', cls='tab:blue')
    names = dict(dap='DAP init', cls='CLS init')
    for init in ('dap', 'cls'):
        if shots:
            x = [int(r['setting'].replace('shot', '')) for r in shots]
            m = np.array([r[init][0] for r in shots])
            s = np.array([r[init][1] for r in shots])
            ax.errorbar(
                x,
                m,
                yerr=s,
                marker='o',
                capsize=3,
                color=colours[init],
                label=names[init])
            ax.fill_between(x, m - s, m + s, color=colours[init], alpha=0.15)
        for r in full:
            ax.axhline(
                r[init][0],
                color=colours[init],
                ls='--',
                lw=1,
                label=f'{names[init]}, {full_label}')
    if shots:
        ax.set_xscale('log')
        ticks = [int(r['setting'].replace('shot', '')) for r in shots]
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks])
        ax.set_xticks([], minor=True)  # no stray '6x10^0' minor labels
    ax.set_xlabel('images per class (k-shot)')
    ax.set_ylabel(ylabel or f'{metric} (%)')
    ax.set_title('DAP vs CLS initialisation (mean ± sd over seeds)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_file, dpi=110)
    plt.close(fig)


def write_csv(runs: Sequence[dict], out_file: str) -> None:
    """One row per run (``CSV_FIELDS``)."""
    import io
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=CSV_FIELDS, extrasaction='ignore', lineterminator='\n')
    writer.writeheader()
    for run in runs:
        writer.writerow({k: run.get(k, '') for k in CSV_FIELDS})
    write_atomic(out_file, buf.getvalue())


def summary(results: Results, runs: Sequence[dict]) -> dict:
    """The JSON summary: per-setting statistics and every run."""
    return dict(
        ap50=compare(results, 'AP50'),
        ap=compare(results, 'AP'),
        runs=list(runs))


def render(results: Results,
           title: str,
           description: str,
           full_label: str = 'full data',
           plot: str = 'ap_vs_shots.png',
           missing: Sequence[str] = ()) -> str:
    """The markdown report of a study."""
    lines = [
        f'# {title}',
        '',
        description,
        '',
        'AP50 and AP (mean over IoU 0.5:0.95) in %, mean ± sample sd over '
        'seeds (a seed draws the k-shot split and the training randomness; '
        'both inits are fine-tuned on the same split). ✓: the gap of the '
        'means exceeds sd(DAP) + sd(CLS). Paired Δ: mean ± sd over seeds of '
        'DAP - CLS on the same split, and the seeds DAP wins.',
        '',
        results_table(results, full_label),
        '',
        f'**Verdict:** {verdict(results)}',
        '',
    ]
    if missing:
        lines += [
            f'Not finished yet ({len(missing)} runs, left out above): ' +
            ', '.join(missing), ''
        ]
    if plot:
        lines += [f'![AP vs shots]({plot})', '']
    return '\n'.join(lines)


def write_report(results: Results,
                 runs: Sequence[dict],
                 out_dir: str,
                 title: str,
                 description: str,
                 ylabel: str,
                 full_label: str = 'full data',
                 missing: Sequence[str] = (),
                 plot_metric: str = 'AP50') -> Dict[str, str]:
    """``report.md``, ``results.csv``, ``results.json`` and
    ``ap_vs_shots.png`` in ``out_dir``; returns their paths."""
    paths = dict(
        markdown=osp.join(out_dir, 'report.md'),
        csv=osp.join(out_dir, 'results.csv'),
        json=osp.join(out_dir, 'results.json'),
        plot=osp.join(out_dir, 'ap_vs_shots.png'))
    plot_ap_vs_shots(results, paths['plot'], plot_metric, ylabel, full_label)
    write_csv(runs, paths['csv'])
    write_atomic(
        paths['json'],
        json.dumps(
            dict(summary(results, runs), missing=list(missing)),
            indent=1,
            default=str))
    write_atomic(
        paths['markdown'],
        render(results, title, description, full_label,
               osp.basename(paths['plot']), missing))
    return paths


def group_results(runs: Sequence[dict]) -> Results:
    """(init, setting) -> the runs' metrics."""
    grouped: Results = {}
    for run in runs:
        grouped.setdefault((run['init'], run['setting']), []).append(run)
    return grouped


__all__ = [
    'results_table', 'verdict', 'plot_ap_vs_shots', 'write_csv', 'summary',
    'render', 'write_report', 'group_results', 'setting_label', 'CSV_FIELDS'
]
