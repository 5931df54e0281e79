"""The transfer rule and the runner's glue, in-process on hand-made tensors.

No mmengine Runner is built (mutmut's per-test stats need fast, pure
tests); the runner's methods run on a bare instance holding only the
attributes they use.
"""
import json
import logging
import os.path as osp

import pytest
import torch
from torch import nn

from projects.dap.dap.engine.transfer import (DetectorTransferRunner,
                                              TransferReport,
                                              _SkippedParamFilter,
                                              _summarise_names,
                                              extract_state_dict,
                                              transfer_state_dict)


class Tiny(nn.Module):
    """backbone.w (2, 3), fc_cls.weight (c, 3) at the top, head.fc_reg."""

    def __init__(self, num_cls=2, num_reg=4):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.w = nn.Parameter(torch.zeros(2, 3))
        self.fc_cls = nn.Linear(3, num_cls, bias=False)
        self.head = nn.Module()
        self.head.fc_reg = nn.Linear(3, num_reg, bias=False)
        self.head.my_fc_cls = nn.Linear(3, 1, bias=False)
        for p in self.parameters():
            nn.init.zeros_(p)


def _ckpt(num_cls=2, num_reg=4, my=1):
    return {
        'backbone.w': torch.full((2, 3), 1.),
        'fc_cls.weight': torch.full((num_cls, 3), 2.),
        'head.fc_reg.weight': torch.full((num_reg, 3), 3.),
        'head.my_fc_cls.weight': torch.full((my, 3), 4.),
    }


def test_same_shapes_copy_everything_and_keep_the_class_specific():
    model = Tiny()
    report = transfer_state_dict(model, _ckpt(), source='a.pth')
    names = [
        'backbone.w', 'fc_cls.weight', 'head.fc_reg.weight',
        'head.my_fc_cls.weight'
    ]
    assert report.transferred == names
    # '(^|\.)fc_cls\.' matches a top-level fc_cls, not 'my_fc_cls'
    assert report.kept == ['fc_cls.weight', 'head.fc_reg.weight']
    assert report.reinitialised == [] and report.problems == []
    assert report.num_model_tensors == 4 and report.source == 'a.pth'
    for name, value in model.state_dict().items():
        assert torch.equal(value, _ckpt()[name]), name


def test_keep_matching_shapes_false_reinitialises_the_class_specific():
    model = Tiny()
    report = transfer_state_dict(model, _ckpt(), keep_matching_shapes=False)
    assert report.transferred == ['backbone.w', 'head.my_fc_cls.weight']
    assert report.kept == []
    assert report.reinitialised == [('fc_cls.weight', (2, 3), (2, 3)),
                                    ('head.fc_reg.weight', (4, 3), (4, 3))]
    state = model.state_dict()
    assert torch.equal(state['fc_cls.weight'], torch.zeros(2, 3))
    assert torch.equal(state['head.fc_reg.weight'], torch.zeros(4, 3))
    assert torch.equal(state['backbone.w'], torch.ones(2, 3))
    assert torch.equal(state['head.my_fc_cls.weight'], torch.full((1, 3), 4.))


def test_other_class_count_reinitialises_and_a_mismatch_is_refused():
    model = Tiny()
    report = transfer_state_dict(model, _ckpt(num_cls=5, num_reg=8))
    assert report.reinitialised == [('fc_cls.weight', (5, 3), (2, 3)),
                                    ('head.fc_reg.weight', (8, 3), (4, 3))]
    assert report.transferred == ['backbone.w', 'head.my_fc_cls.weight']
    assert report.mismatched == [] and report.missing == []
    # a non-class-specific tensor of another shape: strict refuses, the
    # model is untouched
    model = Tiny()
    bad = _ckpt(my=2)
    with pytest.raises(ValueError) as err:
        transfer_state_dict(model, bad, source='b.pth')
    assert str(err.value) == (
        'checkpoint b.pth does not fit this detector (1 problems):\n'
        '  shape mismatch (not class-specific): head.my_fc_cls.weight '
        'checkpoint (2, 3) vs model (1, 3)\n'
        'Is it the pre-training of the same architecture? Set '
        'transfer_cfg.strict=False to load the matching part anyway.')
    assert all(
        torch.equal(v, torch.zeros_like(v))
        for v in model.state_dict().values())
    # not strict: the rest is loaded, the mismatch left alone
    report = transfer_state_dict(model, bad, strict=False)
    assert report.mismatched == [('head.my_fc_cls.weight', (2, 3), (1, 3))]
    assert report.transferred == [
        'backbone.w', 'fc_cls.weight', 'head.fc_reg.weight'
    ]
    assert torch.equal(model.head.my_fc_cls.weight, torch.zeros(1, 3))
    assert torch.equal(model.backbone.w, torch.ones(2, 3))


def test_missing_and_unused_tensors():
    ckpt = _ckpt()
    del ckpt['backbone.w'], ckpt['fc_cls.weight']
    ckpt['neck.x'] = torch.zeros(1)
    model = Tiny()
    with pytest.raises(ValueError) as err:
        transfer_state_dict(model, ckpt, source='c.pth')
    assert str(err.value).splitlines()[:3] == [
        'checkpoint c.pth does not fit this detector (2 problems):',
        '  model tensor not in the checkpoint: backbone.w',
        '  checkpoint tensor not in the model: neck.x'
    ]
    report = transfer_state_dict(model, ckpt, strict=False)
    assert report.missing == ['backbone.w']
    assert report.unused == ['neck.x']
    assert report.reinitialised == [('fc_cls.weight', None, (2, 3))]
    assert report.transferred == [
        'head.fc_reg.weight', 'head.my_fc_cls.weight'
    ]
    assert torch.equal(model.head.fc_reg.weight, torch.full((4, 3), 3.))


def test_report_to_dict_and_a_module_less_name():
    report = TransferReport(
        source='s', transferred=['w', 'a.b', 'a.c'], num_model_tensors=3)
    assert report.format().splitlines()[0] == (
        'Whole-detector transfer from s: 3 of 3 model tensors transferred '
        '(w 1, a 2); 0 re-initialised. Every model tensor not listed below '
        'was copied from the checkpoint.')
    assert report.to_dict() == dict(
        source='s',
        transferred=['w', 'a.b', 'a.c'],
        kept=[],
        reinitialised=[],
        unused=[],
        missing=[],
        mismatched=[],
        num_model_tensors=3)


def test_extract_state_dict_keeps_order_and_only_a_leading_module():
    a, b = torch.zeros(1), torch.ones(1)
    sd = extract_state_dict({'b.module.x': a, 'module.a': b, 'modulex.y': a})
    assert list(sd) == ['b.module.x', 'a', 'modulex.y']
    assert extract_state_dict({}) == {}
    with pytest.raises(ValueError, match='^not a detector checkpoint'):
        extract_state_dict({'a': a, 'n': 1})


def test_skipped_param_filter_swallows_only_the_per_parameter_warnings():
    filt = _SkippedParamFilter()

    def record(msg):
        return logging.LogRecord('x', logging.WARNING, 'f', 1, msg, None, None)

    assert filt.filter(
        record('.backbone.w is skipped since its '
               'requires_grad=False')) is False
    assert filt.filter(
        record('fc.b is skipped since its '
               'requires_grad=False')) is False
    assert filt.filter(
        record('x is skipped since its requires_grad=False '
               'twice')) is True
    assert filt.filter(
        record('a b is skipped since its requires_grad='
               'False')) is True
    assert filt.filter(record('lr=0.1')) is True
    assert filt.names == ['backbone.w', 'fc.b']


def test_summarise_names_groups_by_the_first_two_parts():
    names = [
        'backbone.layer1.0.w', 'backbone.layer1.1.w', 'scale',
        'backbone.bn1.w', 'a.b', 'backbone.layer1.2.w'
    ]
    assert _summarise_names(names) == (
        'backbone.layer1 (3), scale (1), backbone.bn1 (1), a.b (1)')
    assert _summarise_names(
        names, depth=2) == ('backbone (4), scale (1), a (1)')
    assert _summarise_names([]) == ''


class _Bare(DetectorTransferRunner):
    """Only the attributes ``load_or_resume``/``transfer_checkpoint`` use."""

    def __init__(self,
                 log_dir,
                 load_from=None,
                 resume=False,
                 cfg=None,
                 model=None,
                 training=False):
        from mmengine.runner import IterBasedTrainLoop
        self.cfg = cfg or {}
        self.model = model if model is not None else Tiny()
        self._log_dir = str(log_dir)
        self._load_from = load_from
        self._resume = resume
        self._has_loaded = False
        self._hooks = []
        # a built loop or (not training) the config dict mmengine keeps
        self._train_loop = IterBasedTrainLoop.__new__(
            IterBasedTrainLoop) if training else dict(max_iters=1)
        self.records = []
        self.logger = logging.getLogger(f'bare.{id(self)}')
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        handler = logging.Handler()
        handler.emit = lambda r: self.records.append(
            (r.levelname, r.getMessage()))
        self.logger.addHandler(handler)
        self.calls = []

    def resume(self, filename, **kwargs):
        self.calls.append(('resume', filename))

    def load_checkpoint(self, filename, **kwargs):
        self.calls.append(('load', filename))


def test_load_or_resume_transfers_once_and_leaves_resume_to_mmengine(tmp_path):
    path = str(tmp_path / 'pre.pth')
    torch.save(dict(state_dict=_ckpt()), path)
    runner = _Bare(tmp_path / 'a', load_from=path)
    runner.load_or_resume()
    assert runner._has_loaded and runner.calls == []
    assert torch.equal(runner.model.backbone.w, torch.ones(2, 3))
    runner.model.backbone.w.data.zero_()
    runner.load_or_resume()  # loads once
    assert torch.equal(runner.model.backbone.w, torch.zeros(2, 3))
    # --resume: mmengine's resume, no transfer
    runner = _Bare(tmp_path / 'b', load_from=path, resume=True)
    runner.load_or_resume()
    assert runner.calls == [('resume', path)]
    assert torch.equal(runner.model.backbone.w, torch.zeros(2, 3))
    assert not osp.exists(osp.join(tmp_path, 'b', 'transfer.json'))
    # nothing to load: nothing happens
    runner = _Bare(tmp_path / 'c')
    runner.load_or_resume()
    assert runner.calls == [] and not runner._has_loaded


def test_transfer_checkpoint_logs_warns_and_writes_the_report(tmp_path):
    ckpt = _ckpt(num_cls=5)
    del ckpt['backbone.w']
    path = str(tmp_path / 'pre.pth')
    torch.save(dict(meta={}, state_dict=ckpt), path)
    seen = []

    class Hook:

        def after_load_checkpoint(self, runner, checkpoint):
            # the shape of an mmengine checkpoint, which hooks index
            assert list(checkpoint) == ['meta', 'state_dict']
            assert checkpoint['meta'] == {}
            seen.append({
                k: v.clone()
                for k, v in checkpoint['state_dict'].items()
            })

    runner = _Bare(tmp_path / 'w', cfg=dict(transfer_cfg=dict(strict=False)))
    runner._hooks = [Hook()]
    report = runner.transfer_checkpoint(path)
    assert report.missing == ['backbone.w']
    assert report.reinitialised == [('fc_cls.weight', (5, 3), (2, 3))]
    assert len(seen) == 1 and list(seen[0]) == list(runner.model.state_dict())
    assert torch.equal(seen[0]['head.fc_reg.weight'], torch.full((4, 3), 3.))
    assert runner.records == [
        ('INFO', report.format()),
        ('WARNING', 'evaluating with re-initialised class-specific layers: '
         f'{path} was not fine-tuned for this dataset'),
        ('WARNING', 'the checkpoint fits only partly, see above')
    ]
    with open(osp.join(tmp_path, 'w', 'transfer.json')) as f:
        assert json.load(f) == json.loads(json.dumps(report.to_dict()))
    # training, options as given, a wrapped model: one info line only
    torch.save(_ckpt(), path)
    runner = _Bare(
        tmp_path / 't',
        training=True,
        model=nn.DataParallel(Tiny()),
        cfg=dict(
            transfer_cfg=dict(reinit=r'my_fc_cls',
                              keep_matching_shapes=False)))
    report = runner.transfer_checkpoint(path)
    assert report.transferred == [
        'backbone.w', 'fc_cls.weight', 'head.fc_reg.weight'
    ]
    assert report.reinitialised == [('head.my_fc_cls.weight', (1, 3), (1, 3))]
    assert runner.records == [('INFO', report.format())]
    assert torch.equal(runner.model.module.fc_cls.weight, torch.full((2, 3),
                                                                     2.))


def test_transfer_checkpoint_is_strict_by_default_and_checks_options(tmp_path):
    ckpt = _ckpt()
    del ckpt['backbone.w']
    path = str(tmp_path / 'pre.pth')
    torch.save(ckpt, path)
    runner = _Bare(tmp_path / 's')
    with pytest.raises(
            ValueError, match='model tensor not in the '
            'checkpoint: backbone.w'):
        runner.transfer_checkpoint(path)
    assert runner.records == []
    assert not osp.exists(osp.join(tmp_path, 's', 'transfer.json'))
    runner = _Bare(
        tmp_path / 'u',
        cfg=dict(transfer_cfg=dict(strict=False, reinit='x', mode=1, keep=2)))
    with pytest.raises(ValueError) as err:
        runner.transfer_checkpoint(path)
    assert str(err.value) == "unknown transfer_cfg keys: ['keep', 'mode']"
    missing = str(tmp_path / 'none.pth')
    with pytest.raises(FileNotFoundError) as err:
        runner.transfer_checkpoint(missing)
    assert str(err.value) == (
        f'load_from={missing} not found: pass the pre-trained DAP '
        'checkpoint with --cfg-options load_from=PATH')
    # transfer_cfg=None is the defaults
    torch.save(_ckpt(), path)
    report = _Bare(
        tmp_path / 'n', cfg=dict(transfer_cfg=None)).transfer_checkpoint(path)
    assert report.kept == ['fc_cls.weight', 'head.fc_reg.weight']


def test_build_optim_wrapper_puts_the_frozen_parameters_in_one_line(tmp_path):
    model = Tiny()
    for p in (model.backbone.w, model.head.fc_reg.weight):
        p.requires_grad_(False)
    runner = _Bare(tmp_path, model=model)
    cfg = dict(
        optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4),
        paramwise_cfg=dict(norm_decay_mult=0.))
    wrapper = runner.build_optim_wrapper(cfg)
    params = [p for g in wrapper.optimizer.param_groups for p in g['params']]
    assert len(params) == 2
    assert runner.records == [
        ('INFO', '2 frozen parameters (requires_grad=False) are not '
         'optimised: backbone.w (1), head.fc_reg (1)')
    ]
    # the filter is removed afterwards; nothing frozen: no line
    from mmengine.logging import MMLogger
    assert not any(
        isinstance(f, _SkippedParamFilter)
        for f in MMLogger.get_current_instance().filters)
    runner = _Bare(tmp_path)
    runner.build_optim_wrapper(cfg)
    assert runner.records == []
