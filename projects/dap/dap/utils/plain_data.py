"""Config values as plain JSON data, for the box file's metadata.

The box file stores the generation config and compares it with the next
run's, so both sides must be the same plain data whatever the config held
(``ConfigDict``, tuples, numpy scalars).
"""
from typing import Any, Collection

import numpy as np


def plain_data(obj: Any, drop: Collection[str] = ()) -> Any:
    """``obj`` as JSON data: dicts with str keys (without the keys in
    ``drop``, at any depth), lists, numbers, str, None; anything else as
    its ``repr``."""
    if hasattr(obj, 'to_dict'):
        obj = obj.to_dict()
    if isinstance(obj, dict):
        return {
            str(k): plain_data(v, drop)
            for k, v in obj.items() if k not in drop
        }
    if isinstance(obj, (list, tuple)):
        return [plain_data(v, drop) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)
