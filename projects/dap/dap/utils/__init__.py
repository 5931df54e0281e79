from . import quiet_imports  # noqa: F401  (first: before mmpretrain)
from .checkpoint import (exact_safe_globals, load_checkpoint_safely,
                         load_local_checkpoint, register_checkpoint_loader,
                         safe_checkpoint_globals)

__all__ = [
    'exact_safe_globals', 'load_checkpoint_safely', 'load_local_checkpoint',
    'register_checkpoint_loader', 'safe_checkpoint_globals'
]
