"""Whole-detector transfer of a DAP checkpoint (DAP step 4).

DAP fine-tunes the *whole* pre-trained detector downstream: backbone, FPN,
RPN and the box head's shared FCs are loaded; only the class-specific
``fc_cls`` / ``fc_reg`` are re-initialised, and the schedule starts at
iteration 0.  mmengine's ``load_from`` gets the first and last parts right,
but it copies whatever fits and prints one size-mismatch warning per tensor
that does not, so a wrong checkpoint (say R50 weights in an R101 config)
trains silently from random layers.

Why a Runner subclass rather than a hook: the tensors must be loaded after
``init_weights`` (so the re-initialised layers get mmdet's head init) and
instead of mmengine's own ``load_from`` handling, but ``--resume`` must keep
mmengine's complete behaviour (optimizer, schedulers, iteration).  Only the
runner owns that branch (:meth:`Runner.load_or_resume`); a hook could only
undo or repeat a load.  :class:`DetectorTransferRunner` overrides just the
non-resume branch, so resuming a fine-tune run is untouched.

The transfer rule (:func:`transfer_state_dict`):

* a tensor whose name matches ``reinit`` (default ``fc_cls`` / ``fc_reg``)
  keeps its fresh initialisation, unless the checkpoint's tensor has the
  same shape and ``keep_matching_shapes`` is set (e.g. class-agnostic box
  regression: 4 outputs before and after);
* every other model tensor is copied from the checkpoint; with
  ``strict=True`` (default) a missing, unused or differently shaped tensor
  is an error raised before the model is touched;
* one summary goes to the log (counts per module, every re-initialised or
  kept tensor by name) and the full lists to ``transfer.json`` in the log
  directory.

Config (``transfer_cfg`` is optional)::

    runner_type = 'DetectorTransferRunner'
    load_from = 'path/to/dap_checkpoint.pth'
    transfer_cfg = dict(reinit=[r'(^|\\.)fc_cls\\.', r'(^|\\.)fc_reg\\.'],
                        keep_matching_shapes=True, strict=True)

Low-data (k-shot) runs use the same runner on a config whose split and
schedule were written into it beforehand (:mod:`.fewshot.schedule`); the
runner only refuses a few-shot template that was not resolved.
"""
import json
import logging
import os
import os.path as osp
import re
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.dist import is_main_process
from mmengine.logging import MMLogger
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import BaseLoop, Runner
from torch import nn

from ..fewshot.schedule import check_resolved
from ..utils import load_checkpoint_safely

DEFAULT_REINIT = (r'(^|\.)fc_cls\.', r'(^|\.)fc_reg\.')

Shape = Tuple[int, ...]


@dataclass
class TransferReport:
    """What a whole-detector transfer did, tensor by tensor."""

    source: str = ''
    transferred: List[str] = field(default_factory=list)
    # class-specific tensors copied because the shapes match
    kept: List[str] = field(default_factory=list)
    # (name, checkpoint shape or None when absent, model shape)
    reinitialised: List[Tuple[str, Optional[Shape],
                              Shape]] = field(default_factory=list)
    unused: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, Shape, Shape]] = field(default_factory=list)
    num_model_tensors: int = 0

    @property
    def problems(self) -> List[str]:
        out = [
            f'model tensor not in the checkpoint: {k}' for k in self.missing
        ]
        out += [
            f'shape mismatch (not class-specific): {k} checkpoint '
            f'{tuple(a)} vs model {tuple(b)}' for k, a, b in self.mismatched
        ]
        out += [
            f'checkpoint tensor not in the model: {k}' for k in self.unused
        ]
        return out

    def format(self) -> str:
        """The log message: counts, then every non-transferred tensor."""
        groups: Dict[str, int] = OrderedDict()
        for name in self.transferred:
            top = name.split('.', 1)[0]
            groups[top] = groups.get(top, 0) + 1
        per_module = ', '.join(f'{k} {v}' for k, v in groups.items())
        lines = [
            f'Whole-detector transfer from {self.source}: '
            f'{len(self.transferred)} of {self.num_model_tensors} model '
            f'tensors transferred ({per_module or "none"}); '
            f'{len(self.reinitialised)} re-initialised. Every model tensor '
            'not listed below was copied from the checkpoint.'
        ]
        lines.append(f'Re-initialised ({len(self.reinitialised)}):')
        for name, old, new in self.reinitialised:
            src = 'absent' if old is None else str(tuple(old))
            lines.append(f'  {name}: checkpoint {src} -> model {tuple(new)}')
        if self.kept:
            lines.append('Class-specific but kept (same shape in checkpoint '
                         f'and model) ({len(self.kept)}): ' +
                         ', '.join(self.kept))
        lines.append('Checkpoint tensors not used '
                     f'({len(self.unused)}): ' +
                     (', '.join(self.unused) or 'none'))
        lines.append('Model tensors missing from the checkpoint '
                     f'({len(self.missing)}): ' +
                     (', '.join(self.missing) or 'none'))
        if self.mismatched:
            lines.append(f'Shape mismatches ({len(self.mismatched)}), '
                         'left at their initialisation: ' +
                         ', '.join(f'{k} {tuple(a)} vs {tuple(b)}'
                                   for k, a, b in self.mismatched))
        return '\n'.join(lines)

    def to_dict(self) -> dict:
        return asdict(self)


def _compile(patterns: Sequence[str]) -> List['re.Pattern']:
    if isinstance(patterns, str):
        patterns = [patterns]
    return [re.compile(p) for p in patterns]


def extract_state_dict(checkpoint: object) -> Dict[str, torch.Tensor]:
    """The tensors of an mmengine checkpoint or of a bare state dict.

    DDP's ``module.`` prefix is removed.
    """
    if isinstance(checkpoint, dict) and 'state_dict' in checkpoint:
        checkpoint = checkpoint['state_dict']
    if not isinstance(checkpoint, dict) or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ValueError('not a detector checkpoint: expected a dict with '
                         'a "state_dict" of tensors, or such a dict itself')
    return OrderedDict(
        (re.sub(r'^module\.', '', k), v) for k, v in checkpoint.items())


def transfer_state_dict(model: nn.Module,
                        state_dict: Dict[str, torch.Tensor],
                        reinit: Sequence[str] = DEFAULT_REINIT,
                        keep_matching_shapes: bool = True,
                        strict: bool = True,
                        source: str = '') -> TransferReport:
    """Copy ``state_dict`` into ``model`` except the class-specific tensors.

    Args:
        model: the downstream detector (already initialised).
        state_dict: the pre-trained detector's tensors.
        reinit: regexes (``re.search`` on the tensor name) of the
            class-specific tensors to leave at their initialisation.
        keep_matching_shapes: copy a class-specific tensor anyway when the
            checkpoint's has the model's shape.
        strict: raise ``ValueError`` (and change nothing) if any other
            tensor is missing, unused or of another shape.
        source: the checkpoint's name, for the report.

    Returns:
        TransferReport: what was copied and what was not.
    """
    patterns = _compile(reinit)
    model_sd = model.state_dict()
    report = TransferReport(source=source, num_model_tensors=len(model_sd))
    to_load = OrderedDict()
    for name, target in model_sd.items():
        class_specific = any(p.search(name) for p in patterns)
        if name not in state_dict:
            if class_specific:
                report.reinitialised.append((name, None, tuple(target.shape)))
            else:
                report.missing.append(name)
            continue
        value = state_dict[name]
        same = tuple(value.shape) == tuple(target.shape)
        if class_specific and not (same and keep_matching_shapes):
            report.reinitialised.append(
                (name, tuple(value.shape), tuple(target.shape)))
        elif not same:
            report.mismatched.append(
                (name, tuple(value.shape), tuple(target.shape)))
        else:
            to_load[name] = value
            report.transferred.append(name)
            if class_specific:
                report.kept.append(name)
    report.unused = [k for k in state_dict if k not in model_sd]
    if strict and report.problems:
        shown = report.problems[:20]
        more = len(report.problems) - len(shown)
        raise ValueError(
            f'checkpoint {source} does not fit this detector '
            f'({len(report.problems)} problems'
            f'{f", first {len(shown)}" if more else ""}):\n  ' +
            '\n  '.join(shown) +
            '\nIs it the pre-training of the same architecture? Set '
            'transfer_cfg.strict=False to load the matching part anyway.')
    incompatible = model.load_state_dict(to_load, strict=False)
    assert not incompatible.unexpected_keys, incompatible.unexpected_keys
    return report


class _SkippedParamFilter(logging.Filter):
    """Collects mmengine's per-parameter 'requires_grad=False' warnings."""

    pattern = re.compile(r'^(\S+) is skipped since its requires_grad=False$')

    def __init__(self):
        super().__init__()
        self.names: List[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        match = self.pattern.match(str(record.getMessage()))
        if match:
            self.names.append(match.group(1).lstrip('.'))
            return False
        return True


def _summarise_names(names: Sequence[str], depth: int = 3) -> str:
    """'backbone.layer1 (30), backbone.bn1 (2), ...' in first-seen order."""
    groups: Dict[str, int] = OrderedDict()
    for name in names:
        key = '.'.join(
            name.split('.')[:depth -
                            1]) if name.count('.') >= depth - 1 else name
        groups[key] = groups.get(key, 0) + 1
    return ', '.join(f'{k} ({v})' for k, v in groups.items())


@RUNNERS.register_module()
class DetectorTransferRunner(Runner):
    """mmengine ``Runner`` whose ``load_from`` is a whole-detector transfer.

    ``resume`` keeps mmengine's behaviour; ``load_from`` (fine-tuning, and
    evaluation by ``tools/test.py``) goes through
    :func:`transfer_state_dict` with ``cfg.transfer_cfg``.  It trains what
    the config says; an unresolved few-shot template is refused.
    """

    def train(self) -> nn.Module:
        problem = check_resolved(self.cfg)
        if problem:
            raise ValueError(problem)
        return super().train()

    def build_optim_wrapper(self, optim_wrapper):
        """mmengine's, with one line for the frozen parameters.

        With a ``paramwise_cfg`` mmengine warns once per parameter with
        ``requires_grad=False``; the frozen stem, res2 and every BN make
        that a wall of ~120 lines per run.
        """
        skipped = _SkippedParamFilter()
        logger = MMLogger.get_current_instance()
        logger.addFilter(skipped)
        try:
            built = super().build_optim_wrapper(optim_wrapper)
        finally:
            logger.removeFilter(skipped)
        if skipped.names:
            self.logger.info(f'{len(skipped.names)} frozen parameters '
                             '(requires_grad=False) are not optimised: ' +
                             _summarise_names(skipped.names))
        return built

    def load_or_resume(self) -> None:
        if self._has_loaded or self._resume or self._load_from is None:
            return super().load_or_resume()
        self.transfer_checkpoint(self._load_from)
        self._has_loaded = True

    def transfer_checkpoint(self, filename: str) -> TransferReport:
        """Load ``filename`` into the model by the transfer rule; log it."""
        if not osp.isfile(filename):
            raise FileNotFoundError(
                f'load_from={filename} not found: pass the pre-trained DAP '
                'checkpoint with --cfg-options load_from=PATH')
        options = dict(self.cfg.get('transfer_cfg') or {})
        unknown = set(options) - {'reinit', 'keep_matching_shapes', 'strict'}
        if unknown:
            raise ValueError(f'unknown transfer_cfg keys: {sorted(unknown)}')
        model = self.model.module if is_model_wrapper(self.model) \
            else self.model
        state_dict = extract_state_dict(load_checkpoint_safely(filename))
        report = transfer_state_dict(
            model,
            state_dict,
            reinit=options.get('reinit', DEFAULT_REINIT),
            keep_matching_shapes=options.get('keep_matching_shapes', True),
            strict=options.get('strict', True),
            source=filename)
        # hooks (e.g. EMA) see the weights as they now are in the model
        self.call_hook(
            'after_load_checkpoint',
            checkpoint=dict(meta={}, state_dict=model.state_dict()))
        self.logger.info(report.format())
        training = isinstance(self._train_loop, BaseLoop)
        if report.reinitialised and not training:
            self.logger.warning(
                'evaluating with re-initialised class-specific layers: '
                f'{filename} was not fine-tuned for this dataset')
        if report.mismatched or report.missing:
            self.logger.warning('the checkpoint fits only partly, see above')
        if is_main_process():
            os.makedirs(self.log_dir, exist_ok=True)
            with open(osp.join(self.log_dir, 'transfer.json'), 'w') as f:
                json.dump(report.to_dict(), f, indent=1)
        return report


__all__ = [
    'DetectorTransferRunner', 'TransferReport', 'transfer_state_dict',
    'extract_state_dict'
]
