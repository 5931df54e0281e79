"""The DAP pseudo-box file: step 2 (CAM boxes) writes it, step 3 (detector
pre-training) reads it.

For ImageNet-22K it describes 14M images, so the format is a directory of
plain ``.npy`` arrays that are memory-mapped (nothing is read until it is
used), and it holds no pickled objects (opening a file never runs code).

* ``format.py``: names, versions, the layout, the image-list fingerprint
  and the value rules;
* ``reader.py``: :class:`PseudoBoxFile`, the one reader of the members;
* ``writer.py``: :func:`write_box_file` (per-image results);
* ``shards.py`` / ``merge.py``: multi-rank generation, restartable, with
  :class:`ShardWriter` and :func:`merge_shards`.
"""
from .format import (FORMAT_NAME, FORMAT_VERSION, BoxFileError,
                     ImageListHasher, describe_changes, file_sha256,
                     image_list_fingerprint)
from .merge import merge_shards
from .reader import MemberFile, PseudoBoxFile
from .shards import ShardWriter
from .writer import write_box_file

__all__ = [
    'FORMAT_NAME', 'FORMAT_VERSION', 'BoxFileError', 'ImageListHasher',
    'describe_changes', 'file_sha256', 'image_list_fingerprint',
    'merge_shards', 'MemberFile', 'PseudoBoxFile', 'ShardWriter',
    'write_box_file'
]
