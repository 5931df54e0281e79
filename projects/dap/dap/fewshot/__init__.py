"""DAP's low-data transfer study (step 4): k-shot splits, their schedules,
and the k-shot x seeds x {DAP, CLS} sweep with its report.

One concept per module: ``splits`` (which images), ``schedule`` (how long a
split trains, written into its config), ``runs`` (the runs' configs and
state), ``launch`` (commands and processes), ``stats`` (mean, spread,
paired differences), ``report`` (table, CSV/JSON, plot) and ``sweep`` (all
of it for ``tools/fewshot_sweep.py`` and the demo).
"""
from .schedule import (FewShotSchedule, apply_schedule, check_resolved,
                       compute_schedule, count_split_images, resolve_fewshot)
from .splits import (DEFAULT_SEEDS, DEFAULT_SHOTS, VOC_CLASSES,
                     make_missing_splits, make_splits, select_fewshot,
                     split_file)
from .stats import compare, mean_sd

__all__ = [
    'FewShotSchedule', 'apply_schedule', 'check_resolved', 'compute_schedule',
    'count_split_images', 'resolve_fewshot', 'DEFAULT_SEEDS', 'DEFAULT_SHOTS',
    'VOC_CLASSES', 'make_missing_splits', 'make_splits', 'select_fewshot',
    'split_file', 'compare', 'mean_sd'
]
