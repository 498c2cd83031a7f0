"""torch.distributed for the one loop: ranks, the epoch shard of each rank, sums over ranks, buffer sync.

Under ``torchrun`` with a process group initialised (:func:`init_distributed`), :func:`utils.engine.loop.train`
wraps the model in DistributedDataParallel, cuts each epoch's shuffle into one :func:`shard` per rank (padded like
``DistributedSampler``; padding is never recorded), sums the epoch statistics over ranks (:func:`all_sum`) and
gives every rank rank 0's buffers before an eval-mode pass (:func:`sync_buffers`). Without a process group every
function is the one-process identity.

Independent runs (the folds, families or seeds of a study) are spread over the ranks instead with :func:`spread`:
each rank runs its share of the tasks as one process would (inside :func:`local`, where the loop and the caches see
a world of one), and every rank receives every result. Gradient data parallelism changes the training (the global
batch is ``world`` times larger and BatchNorm normalises each rank's share), so it cannot reproduce one process's
scores; spreading whole runs does, exactly, with no gradient traffic.
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager

import torch
import torch.distributed as dist


_LOCAL = [0]   # depth of the local() blocks this process is in


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)`` of the process group; ``(0, 1)`` without one or inside :func:`local`."""
    if not _LOCAL[0] and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@contextmanager
def local():
    """Inside the block this process acts alone: the loop trains without DDP, records are not gathered, and it
    writes its own cache folders (as rank 0 would)."""
    _LOCAL[0] += 1
    try:
        yield
    finally:
        _LOCAL[0] -= 1


def spread(tasks) -> list:
    """The results of the callables ``tasks``, in order, on every rank: rank r runs tasks r, r + world, ...
    alone (:func:`local`), then the results are exchanged (``all_gather_object``). An exception on any rank is
    raised on every rank (naming the rank), so none waits forever. Without a process group: ``[t() for t in tasks]``."""
    tasks = list(tasks)
    rank, world = rank_and_world()
    if world == 1:
        return [t() for t in tasks]
    mine = {}
    for i in range(rank, len(tasks), world):
        try:
            with local():
                mine[i] = ("ok", tasks[i]())
        except Exception as e:  # noqa: BLE001 - handed to every rank below
            mine[i] = ("error", f"rank {rank}: {type(e).__name__}: {e}")
            break
    everyone = [None] * world
    dist.all_gather_object(everyone, mine)
    merged = {i: r for part in everyone for i, r in part.items()}
    errors = [r[1] for r in merged.values() if r[0] == "error"]
    if errors:
        raise RuntimeError(errors[0])
    return [merged[i][1] for i in range(len(tasks))]


def init_distributed(backend: str | None = None) -> tuple[int, int]:
    """Join the process group ``torchrun`` describes in the environment (gloo on CPU, NCCL on GPU).

    Without ``torchrun`` (no ``WORLD_SIZE``) it does nothing and returns ``(0, 1)``."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        dist.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return rank_and_world()


def shard(order: torch.Tensor, rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's rows of an epoch's ``order`` and which of them are real (not padding).

    Like ``DistributedSampler``: the order is padded with its own first rows to a multiple of ``world``
    and rank r takes every world-th row from r. Padded rows are trained on but never recorded."""
    n = len(order)
    total = math.ceil(n / world) * world
    padded = order.repeat(math.ceil(total / n))[:total] if total > n else order
    real = torch.arange(total) < n
    return padded[rank::world], real[rank::world]


def all_sum(values: list[float]) -> list[float]:
    """``values`` summed over ranks (float64); the values themselves in one process."""
    if rank_and_world()[1] == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def sync_buffers(model: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics) before an eval-mode pass."""
    if rank_and_world()[1] > 1:
        for b in model.buffers():
            dist.broadcast(b, 0)
