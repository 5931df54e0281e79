"""One rank of the shared-storage check: ``python shared_storage_probe.py
FOLDER`` with RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT set; FOLDER may
hold ``{rank}``.  Exit 0 and print ``shared`` when the check passes, exit 3
and print the error otherwise."""
import importlib.util
import os
import os.path as osp
import sys

import torch.distributed as dist

# the module alone, without importing all of projects.dap.dap (mmdet, ...)
_spec = importlib.util.spec_from_file_location(
    'shared_storage',
    osp.join(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
        'projects', 'dap', 'dap', 'utils', 'shared_storage.py'))
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
SharedStorageError = _module.SharedStorageError
check_shared_storage = _module.check_shared_storage

if __name__ == '__main__':
    rank = int(os.environ['RANK'])
    dist.init_process_group(
        'gloo', rank=rank, world_size=int(os.environ['WORLD_SIZE']))
    folder = sys.argv[1].format(rank=rank)
    try:
        check_shared_storage({'work_dir': folder}, wait_s=1)
    except SharedStorageError as e:
        print(f'error: {e}')
        sys.exit(3)
    finally:
        dist.barrier()
        dist.destroy_process_group()
    print('shared')
