"""Safe checkpoint loading for torch >= 2.6 (``weights_only=True``).

mmengine 0.10.7 checkpoints carry a ``MessageHub`` state (``HistoryBuffer``
objects holding numpy arrays and numpy scalars).  torch's safe unpickler
refuses those globals, so ``--resume`` breaks.  Instead of switching the
safety off (``weights_only=False``) we allow exactly the globals such a
checkpoint needs.

torch keeps its allow-list in one process-wide registry, and whatever any
imported library adds there counts for every load; two entries under one
name (a library's real ``builtins.getattr`` and our restricted stand-in)
are resolved in no defined order.  So a load here runs with the registry
holding *only* our list (:func:`exact_safe_globals`), and mmengine's loader
of local checkpoint files (``--resume``, ``load_from``, ``init_cfg``) is
this one, registered when :mod:`projects.dap.dap` is imported.
"""
import os
import os.path as osp
import pickle
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Union

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
    if dtypes is not None:  # per-dtype classes (numpy >= 1.25), once each
        # (aliases such as ByteDType / Int8DType name one class)
        allowed += dict.fromkeys(
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType'))
    return allowed


# The statistics every HistoryBuffer pickles (its built-in, public methods).
_HISTORY_STATISTICS = frozenset({'min', 'max', 'current', 'mean'})


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` limited to ``HistoryBuffer``'s statistics methods.

    A ``HistoryBuffer`` pickles its statistics methods (``min``, ``mean``,
    ...) as ``getattr(HistoryBuffer, 'min')``.  Allowing the builtin
    ``getattr`` would let a crafted file reach arbitrary attributes (and from
    there ``eval``); this stand-in resolves only those methods.
    """
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({obj!r}, {name!r}) while loading a checkpoint: '
        'only the HistoryBuffer statistics methods '
        f'{sorted(_HISTORY_STATISTICS)} are allowed')


def safe_checkpoint_globals() -> List[Any]:
    """The explicit allow-list of globals an mmengine checkpoint needs."""
    from mmengine.logging import HistoryBuffer
    return [
        HistoryBuffer,
        *_numpy_globals(),
        (_history_buffer_getattr, '__builtin__.getattr'),
        (_history_buffer_getattr, 'builtins.getattr'),
        # an empty numpy array pickles its (empty) buffer as bytes(); the
        # bytes constructor only builds a value, it cannot run code
        (bytes, '__builtin__.bytes'),
        (bytes, 'builtins.bytes'),
    ]


@contextmanager
def exact_safe_globals() -> Iterator[None]:
    """Within the block torch's registry of allowed globals holds exactly
    :func:`safe_checkpoint_globals` (besides torch's own built-in list),
    whatever other code registered; it is restored afterwards."""
    serialization = torch.serialization
    saved = serialization.get_safe_globals()
    serialization.clear_safe_globals()
    serialization.add_safe_globals(safe_checkpoint_globals())
    try:
        yield
    finally:
        serialization.clear_safe_globals()
        serialization.add_safe_globals(saved)


def load_checkpoint_safely(path: Union[str, os.PathLike],
                           map_location: Optional[str] = 'cpu') -> Any:
    """``torch.load`` with ``weights_only=True`` and exactly our
    allow-list."""
    with exact_safe_globals():
        return torch.load(path, map_location=map_location, weights_only=True)


def load_local_checkpoint(filename: str,
                          map_location: Optional[str] = None) -> Any:
    """mmengine's loader of local checkpoint files, made safe."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return load_checkpoint_safely(filename, map_location=map_location)


def register_checkpoint_loader() -> None:
    """Make :func:`load_local_checkpoint` mmengine's loader of local
    files (``CheckpointLoader``'s public scheme registry; URLs keep
    mmengine's loaders)."""
    from mmengine.runner import CheckpointLoader
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_local_checkpoint, force=True)
