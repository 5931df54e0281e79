"""Safe checkpoint loading for torch >= 2.6 (``weights_only=True``).

mmengine 0.10.7 checkpoints carry a ``MessageHub`` state (``HistoryBuffer``
objects holding numpy arrays and numpy scalars).  torch's safe unpickler
refuses those globals, so ``--resume`` breaks.  Instead of switching the
safety off (``weights_only=False``) we allow-list exactly the classes such a
checkpoint needs, once, when :mod:`projects.dap.dap` is imported.
"""
from typing import Any, List, Optional, Union
import os
import pickle

import numpy as np
import torch


def _numpy_globals() -> List[Any]:
    """numpy objects that appear in pickled arrays, scalars and dtypes."""
    try:  # numpy >= 1.25 keeps the implementation in numpy.core.multiarray
        from numpy.core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - numpy 2 layout
        from numpy._core.multiarray import _reconstruct, scalar
    allowed: List[Any] = [np.ndarray, np.dtype, _reconstruct, scalar]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:  # per-dtype classes (numpy >= 1.25)
        allowed += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType')
        ]
    return allowed


# Methods HistoryBuffer registers in its __init__ (custom ones registered
# with ``HistoryBuffer.register_statistics`` are allowed too).
_HISTORY_STATISTICS = frozenset({'min', 'max', 'current', 'mean'})


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` limited to ``HistoryBuffer``'s statistics methods.

    A ``HistoryBuffer`` pickles its statistics methods (``min``, ``mean``,
    ...) as ``getattr(HistoryBuffer, 'min')``.  Allowing the builtin
    ``getattr`` would let a crafted file reach arbitrary attributes (and from
    there ``eval``); this stand-in resolves only those methods.
    """
    from mmengine.logging import HistoryBuffer
    allowed = _HISTORY_STATISTICS | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({obj!r}, {name!r}) while loading a checkpoint: '
        'only HistoryBuffer statistics methods are allowed')


def safe_checkpoint_globals() -> List[Any]:
    """The explicit allow-list of globals an mmengine checkpoint needs."""
    from mmengine.logging import HistoryBuffer
    return [
        HistoryBuffer, *_numpy_globals(),
        (_history_buffer_getattr, '__builtin__.getattr'),
        (_history_buffer_getattr, 'builtins.getattr'),
        # an empty numpy array pickles its (empty) buffer as bytes(); the
        # bytes constructor only builds a value, it cannot run code
        (bytes, '__builtin__.bytes'),
        (bytes, 'builtins.bytes'),
    ]


def register_safe_globals() -> None:
    """Allow-list :func:`safe_checkpoint_globals` for ``torch.load``."""
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is not None:  # torch < 2.4 has no safe unpickler allow-list
        add(safe_checkpoint_globals())


def load_checkpoint_safely(path: Union[str, os.PathLike],
                           map_location: Optional[str] = 'cpu') -> Any:
    """``torch.load`` with ``weights_only=True`` and the allow-list."""
    register_safe_globals()
    return torch.load(path, map_location=map_location, weights_only=True)
