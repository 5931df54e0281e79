"""Launcher set-up shared by every DAP tool (train, test, box generation).

mmengine's own ``init_dist`` calls ``torch.cuda.set_device`` unconditionally
and, for MPI, needs ``MASTER_ADDR`` exported by hand.  DAP runs on CPU
machines (tests, the demo) as well as on GPU clusters launched with
``torchrun``, Slurm or ``mpirun``, so the process group is initialised here
before the Runner is built; the Runner then finds it ready and reuses it.
"""
import datetime
import os
import socket
from typing import Optional, Tuple

import torch
import torch.distributed as torch_dist

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('', 0))
        return sock.getsockname()[1]


def _host_address() -> str:
    """An address of this host that the other nodes can reach."""
    hostname = socket.gethostname()
    try:
        return socket.gethostbyname(hostname)
    except OSError:
        return '127.0.0.1'


def _mpi_env() -> Tuple[int, int, int]:
    """Rank, world size and local rank under ``mpirun``.

    Open MPI exports ``OMPI_COMM_WORLD_*``; other MPIs (MPICH, Intel MPI)
    export ``PMI_*``; mpi4py is the fallback for anything else.  When
    ``MASTER_ADDR``/``MASTER_PORT`` are missing, rank 0 picks its address and
    a free port and broadcasts them over MPI so all ranks agree.
    """
    env = os.environ
    if 'OMPI_COMM_WORLD_RANK' in env:
        rank = int(env['OMPI_COMM_WORLD_RANK'])
        world = int(env['OMPI_COMM_WORLD_SIZE'])
        local = int(env.get('OMPI_COMM_WORLD_LOCAL_RANK', rank))
    elif 'PMI_RANK' in env:
        rank, world = int(env['PMI_RANK']), int(env['PMI_SIZE'])
        local = int(env.get('MPI_LOCALRANKID', env.get('PMI_LOCAL_RANK', 0)))
    else:
        rank = world = local = -1
    need_rendezvous = ('MASTER_ADDR' not in env or 'MASTER_PORT' not in env)
    if rank < 0 or need_rendezvous:
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise RuntimeError(
                '--launcher mpi needs either MASTER_ADDR and MASTER_PORT in '
                'the environment or mpi4py installed to agree on them'
            ) from exc
        comm = MPI.COMM_WORLD
        if rank < 0:
            rank, world = comm.Get_rank(), comm.Get_size()
            local = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()
        if need_rendezvous:
            addr_port = None
            if rank == 0:
                addr_port = (env.get('MASTER_ADDR', _host_address()),
                             env.get('MASTER_PORT', str(_free_port())))
            addr_port = comm.bcast(addr_port, root=0)
            env['MASTER_ADDR'], env['MASTER_PORT'] = addr_port
    return rank, world, local


def _slurm_env() -> Tuple[int, int, int]:
    env = os.environ
    rank = int(env['SLURM_PROCID'])
    world = int(env['SLURM_NTASKS'])
    local = int(env.get('SLURM_LOCALID', 0))
    if 'MASTER_ADDR' not in env:
        import subprocess
        nodes = env['SLURM_NODELIST']
        env['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {nodes} | head -n1').strip()
    env.setdefault('MASTER_PORT', '29500')
    return rank, world, local


def setup_distributed(launcher: str,
                      backend: Optional[str] = None,
                      timeout_s: Optional[float] = None) -> bool:
    """Initialise ``torch.distributed`` for ``launcher``.

    Returns whether the run is distributed.  ``backend`` defaults to NCCL
    with CUDA and gloo without (NCCL is replaced by gloo on CPU machines, so
    GPU configs still run on CPU).
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS}, '
                         f'got {launcher!r}')
    if launcher == 'none':
        return False
    if torch_dist.is_available() and torch_dist.is_initialized():
        return True
    env = os.environ
    if launcher == 'mpi':
        rank, world, local = _mpi_env()
    elif launcher == 'slurm':
        rank, world, local = _slurm_env()
    else:
        missing = [
            k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
            if k not in env
        ]
        if missing:
            raise RuntimeError(
                f'--launcher pytorch expects {missing} in the environment; '
                'start the tool with torchrun or tools/dist_train.sh')
        rank, world = int(env['RANK']), int(env['WORLD_SIZE'])
        local = int(env.get('LOCAL_RANK', 0))
    env['RANK'], env['WORLD_SIZE'] = str(rank), str(world)
    env['LOCAL_RANK'] = str(local)

    cuda = torch.cuda.is_available()
    if backend is None or (backend == 'nccl' and not cuda):
        backend = 'nccl' if cuda else 'gloo'
    if cuda:
        torch.cuda.set_device(local % torch.cuda.device_count())
    kwargs = {}
    if timeout_s is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=timeout_s)
    torch_dist.init_process_group(
        backend=backend, rank=rank, world_size=world, **kwargs)
    return True


def apply_launcher_to_cfg(cfg, launcher: str) -> None:
    """Initialise the process group from ``cfg.env_cfg`` and adapt ``cfg``.

    On CPU, DistributedDataParallel must not receive ``device_ids``; the
    Runner passes ``[LOCAL_RANK]`` unless the wrapper config says otherwise.
    """
    cfg.launcher = launcher
    dist_cfg = cfg.get('env_cfg', {}).get('dist_cfg', {}) or {}
    distributed = setup_distributed(
        launcher,
        backend=dist_cfg.get('backend'),
        timeout_s=dist_cfg.get('timeout'))
    if distributed and not torch.cuda.is_available():
        wrapper = cfg.get('model_wrapper_cfg') or dict(
            type='MMDistributedDataParallel')
        wrapper['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper
