"""torch.distributed for the one loop: ranks, the epoch shard of each rank, sums over ranks, buffer sync.

Under ``torchrun`` with a process group initialised (:func:`init_distributed`), :func:`utils.engine.loop.train`
wraps the model in DistributedDataParallel, cuts each epoch's shuffle into one :func:`shard` per rank (padded like
``DistributedSampler``; padding is never recorded), sums the epoch statistics over ranks (:func:`all_sum`) and
gives every rank rank 0's buffers before an eval-mode pass (:func:`sync_buffers`). Without a process group every
function is the one-process identity.
"""
from __future__ import annotations

import math
import os

import torch
import torch.distributed as dist


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


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
