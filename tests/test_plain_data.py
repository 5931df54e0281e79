"""Config values as the plain JSON data the box file stores."""
import json

import numpy as np
from mmengine.config import ConfigDict

from projects.dap.dap.utils.plain_data import plain_data


def test_config_becomes_json_data_without_dropped_keys():
    cfg = ConfigDict(
        type='ImageClassifier',
        backbone=dict(
            depth=np.int64(18),
            out_indices=(3, ),
            init_cfg=dict(type='Pretrained')),
        head=dict(
            num_classes=3,
            loss=dict(type='CrossEntropyLoss'),
            scales=[np.float32(0.5), None, True]),
        hook=print)
    want = {
        'type': 'ImageClassifier',
        'backbone': {
            'depth': 18,
            'out_indices': [3]
        },
        'head': {
            'num_classes': 3,
            'scales': [0.5, None, True]
        },
        'hook': repr(print),
    }
    got = plain_data(cfg, drop=('init_cfg', 'loss'))
    assert got == want and json.loads(json.dumps(got)) == want
    assert type(got['backbone']['depth']) is int
    full = plain_data(cfg)
    assert full['backbone']['init_cfg'] == {'type': 'Pretrained'}
    assert full['head']['loss'] == {'type': 'CrossEntropyLoss'}
    assert plain_data({1: (2, 'x')}) == {'1': [2, 'x']}
