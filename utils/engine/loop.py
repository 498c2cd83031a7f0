"""The one training loop: a task + a recipe + samples with ids -> a trained model and per-sample records.

Every run of the project goes through :func:`train`: the autoencoder study, both SSFT stages, plain
supervised runs and (later) pruning retrains. What differs between them is the *task* (the model, its
loss, what it records per sample; :mod:`utils.engine.tasks`), the *recipe* (optimizer, schedule, batch size,
epochs, early stop; :mod:`utils.engine.recipes`) and which samples are measured how often. Everything else
exists once, here:

* **Seeding.** The model is initialised under ``torch.manual_seed(seed)``; epoch ``e`` shuffles with a
  generator seeded by ``(seed, e)`` and reseeds dropout the same way, so a run resumed from a checkpoint
  ends bit-identical (on CPU) to an uninterrupted one, and the same seed gives the same scores.
* **NaN guard.** A non-finite loss stops the run with one sentence; the last checkpoint is kept.
* **Recording.** ``record=True`` stores the task's per-sample values of the *training* forward pass
  (weights before the update, in-loop, no extra pass) in ``Run.records`` at step = epoch. ``measure_on``
  samples are measured by an eval-mode pass ``logs_per_epoch`` times per epoch (after each k-th of the
  epoch's steps) into ``Run.measures`` at step = log index. ``eval_sets`` are measured after every epoch
  and their means go to the history (held-out accuracy, test L1).
* **Checkpoints.** With a ``folder``, settings are written once (``settings.json``) and a folder holding
  a run with other settings is refused; every ``checkpoint_every`` epochs a checkpoint is written, and a
  run finds it and resumes. A finished run is loaded by :func:`load_run`.
* **torch.distributed.** Launched under ``torchrun`` with a process group initialised (see
  :func:`init_distributed`), the model is wrapped in DistributedDataParallel; each epoch's shuffle is
  cut into one shard per rank, padded like ``DistributedSampler`` so every rank takes the same number
  of steps, and the padding is never recorded. Records are gathered by sample id after every epoch,
  the early-stop decision uses statistics summed over ranks, and only rank 0 writes files.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from tqdm import tqdm

from utils.data.samples import Samples
from utils.engine.recipes import Recipe, make_optimizer
from utils.engine.recorder import Recorder

CHECKPOINT, SETTINGS, MODEL = "checkpoint.pt", "settings.json", "model.pt"
RECORDS, MEASURES, HISTORY = "records.npz", "measures.npz", "history.csv"


# ---------------------------------------------------------------------------------------------- data
@dataclass
class Run:
    model: torch.nn.Module       # the trained network (never the DDP wrapper)
    records: Recorder            # in-loop values of the training samples, step = epoch index
    measures: Recorder           # eval-pass measurements of ``measure_on``, step = log index
    history: pd.DataFrame        # one row per epoch
    folder: Path | None = None


# ---------------------------------------------------------------------------------------------- ranks
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


def _all_sum(values: list[float]) -> list[float]:
    if rank_and_world()[1] == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def _sync_buffers(model: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics) before an eval-mode pass."""
    if rank_and_world()[1] > 1:
        for b in model.buffers():
            dist.broadcast(b, 0)


# ---------------------------------------------------------------------------------------------- settings
def check_settings(folder, settings: dict) -> None:
    """Write ``settings`` to ``folder/settings.json`` the first time; afterwards refuse other settings."""
    folder = Path(folder)
    path = folder / SETTINGS
    settings = json.loads(json.dumps(settings))  # tuples -> lists, as they come back from the file
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved != settings:
            diff = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
            raise ValueError(f"{folder} holds a run with other settings ({', '.join(diff)}); pick a new results "
                             "folder or delete that one to start over.")
    elif rank_and_world()[0] == 0:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=1))


def epoch_seed(seed: int, epoch: int, stream: int = 0, rank: int = 0) -> int:
    """Seed of epoch ``epoch``'s shuffle and dropout; stream 0 on rank 0 is the autoencoder study's formula of old."""
    return seed * 1_000_003 + epoch + 100_003 * stream + 1_000_000_007 * rank


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------------------------------- loop
def train(task, recipe: Recipe, data: Samples, *, seed: int, model: torch.nn.Module | None = None,
          folder=None, settings: dict | None = None, record: bool = True, measure_on: Samples | None = None,
          logs_per_epoch: int = 1, eval_sets: dict | None = None, checkpoint_every: int = 10, stream: int = 0,
          device=None, progress: bool = True, desc: str = "epochs", on_epoch_end=None) -> Run:
    """Train ``task``'s model on ``data`` with ``recipe``; see the module docstring for what is recorded.

    ``model`` continues training a given network (SSFT stage 2) instead of building a fresh one under
    ``seed``; ``stream`` separates the shuffles of runs that share a seed (the two SSFT stages).
    ``settings`` adds study-level settings to the folder's settings check. ``on_epoch_end(epoch)`` runs
    after the epoch's checkpoint decision (tests use it to simulate a kill)."""
    if logs_per_epoch < 1:
        raise ValueError(f"logs_per_epoch must be a positive integer, got {logs_per_epoch}.")
    if task.needs_labels and data.labels is None:
        raise ValueError(f"The {task.name} task trains on labels; give the samples labels.")
    rank, world = rank_and_world()
    device = torch.device(device) if device else default_device()
    folder = Path(folder) if folder is not None else None

    x = task.prepare(data.images).to(device)
    y = data.labels.to(device) if data.labels is not None else None
    if model is None:
        torch.manual_seed(seed)
        model = task.make_model()
    # channels-last activations run the small convolutions 1.3x (batch 32) to 1.9x (batch 512) faster on CPU
    net = model.to(device, memory_format=torch.channels_last)
    wrapped = torch.nn.parallel.DistributedDataParallel(net) if world > 1 else net

    n = len(data)
    per_rank = math.ceil(n / world)
    steps = math.ceil(per_rank / recipe.batch_size)
    if logs_per_epoch > steps:
        raise ValueError(f"logs_per_epoch ({logs_per_epoch}) exceeds the {steps} steps of an epoch; log less often "
                         "or use a smaller batch size.")
    last = per_rank % recipe.batch_size
    if 0 < last < getattr(task, "min_batch", 1):
        raise ValueError(f"{n} samples in batches of {recipe.batch_size} leave a last batch of {last}, too few for the "
                         f"{task.name} task (batch statistics); pick another batch_size.")
    log_after = {round((j + 1) * steps / logs_per_epoch): j for j in range(logs_per_epoch)}
    optimizer, scheduler = make_optimizer(net, recipe, steps)
    records, measures = Recorder(data.ids), Recorder(measure_on.ids if measure_on is not None else [])
    mx = task.prepare(measure_on.images).to(device) if measure_on is not None else None
    my = measure_on.labels.to(device) if measure_on is not None and measure_on.labels is not None else None
    m_rows = torch.arange(rank, len(measure_on), world) if measure_on is not None else None
    evals = {name: (task.prepare(s.images).to(device), None if s.labels is None else s.labels.to(device))
             for name, s in (eval_sets or {}).items()}
    if folder is not None:  # after every input check: a refused call must not claim the folder
        check_settings(folder, {"task": task.settings(), "recipe": recipe.to_dict(), "seed": seed, "stream": stream,
                                "record": record, "logs_per_epoch": logs_per_epoch, **data.fingerprint(),
                                "measured": None if measure_on is None else measure_on.fingerprint(),
                                "world_size": world, **(settings or {})})
        if is_finished(folder):  # the same settings finished here before: load, do not retrain
            return load_run(folder, net)
    state: dict = {}   # measurement state the task keeps between logs (e.g. the previous codes, for drift)
    history, start, perfect = [], 0, 0

    ckpt = folder / CHECKPOINT if folder is not None else None
    if ckpt is not None and ckpt.is_file():
        saved = torch.load(ckpt, map_location=device, weights_only=False)
        net.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        records, measures = Recorder.from_state_dict(saved["records"]), Recorder.from_state_dict(saved["measures"])
        history, start, perfect, state = saved["history"], saved["epoch"] + 1, saved["perfect"], saved["state"]
        if saved.get("stopped"):
            start = recipe.max_epochs

    def measure(log: int) -> None:
        _sync_buffers(net)
        values = task.measure(net, mx[m_rows.to(device)], None if my is None else my[m_rows.to(device)], state, log)
        for name, v in values.items():
            measures.record_rows(name, log, m_rows, v)
        net.train()

    bar = tqdm(range(start, recipe.max_epochs), desc=desc, disable=not progress or rank != 0, leave=False,
               initial=start, total=recipe.max_epochs)
    for epoch in bar:
        tic = time.perf_counter()
        wrapped.train()
        torch.manual_seed(epoch_seed(seed, epoch, stream, rank))   # dropout masks
        g = torch.Generator().manual_seed(epoch_seed(seed, epoch, stream))   # the same shuffle on every rank
        rows, real = shard(torch.randperm(n, generator=g), rank, world)
        aug = g if world == 1 else torch.Generator().manual_seed(epoch_seed(seed, epoch, stream, rank))
        loss_sum, n_correct, n_real = 0.0, 0, 0
        for step in range(steps):
            sel, keep = rows[step * recipe.batch_size:(step + 1) * recipe.batch_size], \
                real[step * recipe.batch_size:(step + 1) * recipe.batch_size]
            dev_sel = sel.to(device)
            loss, per_sample, correct = task.train_step(wrapped, x[dev_sel], None if y is None else y[dev_sel],
                                                        aug, record)
            if not torch.isfinite(loss):
                where = f"in {folder}" if folder is not None else "on disk"
                raise FloatingPointError(
                    f"The loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}: lower the recipe's lr or "
                    f"check the inputs; what was already saved {where} is kept.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            n_keep = int(keep.sum())
            loss_sum += float(loss.detach()) * n_keep
            n_real += n_keep
            if correct is not None:
                n_correct += int(correct[keep.to(device)].sum())
            if record and per_sample:
                kept = sel[keep]
                for name, v in per_sample.items():
                    records.record_rows(name, epoch, kept, v[keep.to(device)] if n_keep < len(sel) else v)
            if mx is not None and step + 1 in log_after:
                measure(epoch * logs_per_epoch + log_after[step + 1])
        loss_sum, n_correct, n_real = _all_sum([loss_sum, n_correct, n_real])
        acc = n_correct / n_real if task.has_accuracy else float("nan")
        row = {"epoch": epoch + 1, "train_loss": loss_sum / n_real, "train_acc": acc,
               "lr": optimizer.param_groups[0]["lr"]}
        for name, (ex, ey) in evals.items():
            row.update({f"{name}_{k}": v for k, v in _evaluate(task, net, ex, ey).items()})
        net.train()
        records.gather()
        measures.gather()
        if mx is not None:  # means of the epoch's last log over every rank's shard, now that they are gathered
            last = epoch * logs_per_epoch + logs_per_epoch - 1
            row.update({f"measure_{k}": _mean(measures[k][-1]) for k in measures
                        if measures[k].ndim == 2 and measures.steps(k)[-1] == last})
        row["seconds"] = time.perf_counter() - tic
        history.append(row)
        bar.set_postfix({k: round(v, 4) for k, v in row.items() if k in ("train_loss", "train_acc")})
        perfect = perfect + 1 if acc == 1.0 else 0
        stop = bool(recipe.patience and task.has_accuracy and perfect >= recipe.patience)
        if ckpt is not None and rank == 0 and (stop or (epoch + 1) % checkpoint_every == 0
                                               or epoch + 1 == recipe.max_epochs):
            _atomic_save({"epoch": epoch, "model": net.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "records": records.state_dict(),
                          "measures": measures.state_dict(), "history": history, "perfect": perfect,
                          "state": state, "stopped": stop}, ckpt)
        if on_epoch_end is not None:
            on_epoch_end(epoch)
        if stop:
            break

    run = Run(net, records, measures, pd.DataFrame(history), folder)
    if folder is not None and rank == 0:
        save_run(run)
    return run


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")


@torch.no_grad()
def _evaluate(task, net, x, y) -> dict[str, float]:
    """Means of the task's scalar evaluation measures over a held-out set, summed over ranks."""
    _sync_buffers(net)
    rank, world = rank_and_world()
    rows = torch.arange(rank, len(x), world).to(x.device)
    values = task.evaluate(net, x[rows], None if y is None else y[rows])
    names = sorted(values)
    sums = _all_sum([float(values[k].double().sum()) for k in names] + [len(rows)])
    return {k: s / sums[-1] for k, s in zip(names, sums[:-1])}


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def save_run(run: Run) -> None:
    """A finished run as files: model weights, both recorders, the history; the checkpoint is dropped."""
    folder = run.folder
    run.records.save(folder / RECORDS)
    run.measures.save(folder / MEASURES)
    run.history.to_csv(folder / HISTORY, index=False)
    _atomic_save(run.model.state_dict(), folder / MODEL)   # written last: its presence means "finished"
    (folder / CHECKPOINT).unlink(missing_ok=True)


def is_finished(folder) -> bool:
    return (Path(folder) / MODEL).is_file()


def load_run(folder, model: torch.nn.Module) -> Run:
    """A finished run of :func:`train` from ``folder``, its weights loaded into ``model`` (built like the task's)."""
    folder = Path(folder)
    if not is_finished(folder):
        raise FileNotFoundError(f"No finished run in {folder}: run the training step (or `make run`) first.")
    model.load_state_dict(torch.load(folder / MODEL, map_location="cpu"))
    return Run(model, Recorder.load(folder / RECORDS), Recorder.load(folder / MEASURES),
               pd.read_csv(folder / HISTORY), folder)

