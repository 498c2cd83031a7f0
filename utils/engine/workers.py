"""The one worker pool: run jobs in processes of one thread each (torch, OpenMP and BLAS).

On 2 cores, two one-thread processes do more work per minute than one two-thread process for the project's small
models (measured: about 1.8x the pruning retrains, and the scoreboard's copies), and scikit-learn's OpenMP threads
must be limited too, or two workers run four threads. The studies hand their work out in shards
(``fn(*args, shard=(i, workers))``) and read the cached results back in the parent afterwards: one call,
:func:`run_then_read`. (Under ``torchrun`` the ranks are the workers: :func:`utils.engine.distributed.spread`.) A worker whose parent
dies (a killed notebook or study) exits within seconds instead of training on: its folder locks are released, so
the study can be resumed at once.
"""
from __future__ import annotations

import os
import threading
import time

WATCH_SECONDS = 1.0   # how often a worker checks that its parent is alive


def _watch_parent(parent: int) -> None:
    """Pool initializer: a daemon thread that ends this worker process when its parent process is gone."""
    def watch():
        while os.getppid() == parent:
            time.sleep(WATCH_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="watch-parent").start()


def one_thread(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with torch, OpenMP and BLAS limited to one thread (the body of every worker)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        return fn(*args, **kwargs)


def run_sharded(fn, workers: int, *args, **kwargs) -> list:
    """``fn(*args, shard=(i, workers), **kwargs)`` for i in 0..workers-1, each in its own one-thread process
    (``spawn``: no state shared with the parent), and their results in shard order. ``workers`` <= 1 runs
    ``fn(*args, shard=(0, 1), **kwargs)`` here, with the threads the process has."""
    if workers <= 1:
        return [fn(*args, shard=(0, 1), **kwargs)]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_watch_parent,
                             initargs=(os.getpid(),)) as pool:
        jobs = [pool.submit(one_thread, fn, *args, shard=(i, workers), **kwargs) for i in range(workers)]
        return [job.result() for job in jobs]


def run_then_read(fn, workers: int, *args, here: dict | None = None, **kwargs):
    """The whole result of a step whose every job caches itself: ``fn``'s shards in :func:`run_sharded` when
    ``workers`` > 1, then ``fn(*args, **kwargs, **here)`` in this process (shard ``(0, 1)``), which reads what the
    shards cached and runs anything left. ``here``: keyword arguments for that last call only (progress bars, a log)."""
    if workers > 1:
        run_sharded(fn, workers, *args, **kwargs)
    return fn(*args, **kwargs, **(here or {}))
