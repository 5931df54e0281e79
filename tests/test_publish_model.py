"""tools/model_converters/publish_model.py on real mmengine checkpoints."""
import hashlib
import os
import os.path as osp
import re

import torch
from conftest import REPO, run_tool
from torch import nn

TOOL = osp.join(REPO, 'tools', 'model_converters', 'publish_model.py')


class ToyModel(nn.Module):
    """The smallest mmengine model: a linear layer with an MSE loss."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.bn = nn.BatchNorm1d(2)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.bn(self.fc(inputs))
        if mode == 'loss':
            return dict(loss=((out - labels)**2).mean())
        return out

    def train_step(self, data, optim_wrapper):
        losses = self(*data, mode='loss')
        optim_wrapper.update_params(losses['loss'])
        return losses


def _training_checkpoint(work_dir):
    """A checkpoint as mmengine writes it: optimizer, schedulers, hub."""
    from mmengine.runner import Runner
    data = [(torch.randn(3), torch.randn(2)) for _ in range(8)]
    runner = Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=data,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=4),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', milestones=[1]),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        default_scope='mmengine')
    runner.train()
    return osp.join(str(work_dir), 'epoch_1.pth')


def test_publish_drops_training_state_and_hashes_name(tmp_path):
    from projects.dap.dap.utils import load_checkpoint_safely
    src = _training_checkpoint(tmp_path / 'work')
    full = load_checkpoint_safely(src)
    assert {'optimizer', 'param_schedulers', 'message_hub'} <= set(full)

    out = run_tool([TOOL, src, tmp_path / 'zoo' / 'toy_1e.pth']).stdout
    assert 'dropped: message_hub, optimizer, param_schedulers' in out
    files = os.listdir(tmp_path / 'zoo')
    assert len(files) == 1 and re.fullmatch(r'toy_1e-[0-9a-f]{8}\.pth',
                                            files[0]), files
    path = tmp_path / 'zoo' / files[0]
    assert f'published: {path}' in out
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert files[0] == f'toy_1e-{digest[:8]}.pth'

    # plain torch.load with weights_only=True: no allow-list needed
    published = torch.load(path, map_location='cpu', weights_only=True)
    assert set(published) == {'state_dict', 'meta'}
    assert published['meta']['epoch'] == full['meta']['epoch'] == 1
    assert published['state_dict'].keys() == full['state_dict'].keys()
    for k, v in full['state_dict'].items():
        assert torch.equal(published['state_dict'][k], v)
    assert path.stat().st_size < osp.getsize(src)


def _publish_main():
    """The tool's ``main`` (in-process: no interpreter start per case)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('publish_model', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_publish_bare_state_dict(tmp_path, capsys):
    src = tmp_path / 'bare.pth'
    torch.save({'w': torch.arange(4.)}, src)
    assert _publish_main()([str(src), str(tmp_path / 'bare_pub')]) == 0
    name = capsys.readouterr().out.split('published: ')[1].strip()
    assert re.fullmatch(r'.*/bare_pub-[0-9a-f]{8}\.pth', name)
    published = torch.load(name, weights_only=True)
    assert torch.equal(published['state_dict']['w'], torch.arange(4.))
    assert published['meta'] == {}


def test_publish_bad_input_writes_nothing(tmp_path, capfd):
    main = _publish_main()
    out = str(tmp_path / 'x')
    assert main([str(tmp_path / 'missing.pth'), out]) == 1
    assert 'not found' in capfd.readouterr().err

    not_ckpt = tmp_path / 'list.pth'
    torch.save([1, 2, 3], not_ckpt)
    assert main([str(not_ckpt), out]) == 1
    assert 'not a checkpoint' in capfd.readouterr().err

    no_tensors = tmp_path / 'strings.pth'
    torch.save({'state_dict': {'w': 'not a tensor'}}, no_tensors)
    assert main([str(no_tensors), out]) == 1
    assert 'must map names to tensors' in capfd.readouterr().err

    class Evil:

        def __reduce__(self):
            return (os.system, ('echo pwned', ))

    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': Evil()}, evil)
    assert main([str(evil), out]) == 1
    captured = capfd.readouterr()
    assert 'weights_only' in captured.err
    assert 'pwned' not in captured.out + captured.err
    assert sorted(
        os.listdir(tmp_path)) == ['evil.pth', 'list.pth', 'strings.pth']
