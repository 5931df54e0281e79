from .checkpoint import (load_checkpoint_safely, register_safe_globals,
                         safe_checkpoint_globals)

__all__ = [
    'load_checkpoint_safely', 'register_safe_globals',
    'safe_checkpoint_globals'
]
