"""Test-only: make this interpreter look like one without `pip install -e .`

``site`` imports ``sitecustomize`` after it has processed the ``.pth`` files,
so the editable install of this project is already in place here: its
meta-path finder (setuptools' ``__editable__`` finders) and any ``sys.path``
entry a ``.pth`` added that holds ``projects/dap``.  Both are removed;
``PYTHONPATH`` entries stay, so only what a launcher puts there can provide
``projects``.
"""
import os
import os.path as osp
import sys

_keep = {
    osp.abspath(p)
    for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p
}
sys.meta_path[:] = [
    f for f in sys.meta_path
    if not getattr(f, '__module__', '').startswith('__editable__')
    and not type(f).__module__.startswith('__editable__')
]
sys.path[:] = [
    p for p in sys.path if not p or osp.abspath(p) in _keep
    or not osp.isdir(osp.join(p, 'projects', 'dap'))
]
