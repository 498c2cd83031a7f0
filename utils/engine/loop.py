"""The one training loop: a task + a recipe + samples with ids -> a trained model and per-sample records.

Every run of the project goes through :func:`train`: the autoencoder study, both SSFT stages, plain
supervised runs and (later) pruning retrains. What differs between them is the *task* (the model, its
loss, what it records per sample; :mod:`utils.engine.tasks`), the *recipe* (optimizer, schedule, batch size,
epochs, early stop; :mod:`utils.engine.recipes`) and which samples are measured how often. Everything else
exists once, here:

* **Seeding.** The model is initialised under ``torch.manual_seed(seed)``; epoch ``e`` shuffles with a
  generator seeded by ``(seed, e)`` and reseeds dropout the same way, so a run resumed from a checkpoint
  ends bit-identical (on CPU) to an uninterrupted one, and the same seed gives the same scores.
* **Epoch size (RS2).** ``epoch_size=k`` trains each epoch on k samples instead of all N: consecutive slices of
  one seeded permutation per pass over the data, so no sample repeats before every sample was seen (repeated
  sampling without replacement, RS2; Okanovic et al. 2023); an epoch that crosses the end of a pass may hold a
  sample twice. ``max_epochs`` then counts these shorter epochs.
* **NaN guard.** A non-finite loss stops the run with one sentence; the last checkpoint is kept.
* **Recording.** ``record=True`` stores the task's per-sample values of the *training* forward pass
  (weights before the update, in-loop, no extra pass) in ``Run.records`` at step = epoch. ``measure_on``
  samples are measured by an eval-mode pass ``logs_per_epoch`` times per epoch (after each k-th of the
  epoch's steps) into ``Run.measures`` at step = log index. ``eval_sets`` are measured after every epoch
  and their means go to the history (held-out accuracy, test L1).
* **Checkpoints.** With a ``folder`` (the one cache, :mod:`utils.engine.cache`), settings are written once
  (``settings.json``, with the data's full-content fingerprint) and a folder holding a run with other settings
  is refused; a process that trains holds the folder's write lock, so a second one is refused with one sentence.
  Every ``checkpoint_every`` epochs a checkpoint is written, and a run finds it and resumes. A finished run is
  loaded by :func:`load_run` (no lock, no training).
* **torch.distributed** (:mod:`utils.engine.distributed`). Launched under ``torchrun`` with a process group
  initialised, the model is wrapped in DistributedDataParallel; each epoch's shuffle is cut into one shard per
  rank, padded like ``DistributedSampler`` so every rank takes the same number of steps, and the padding is
  never recorded. Records are gathered by sample id after every epoch, the early-stop decision uses statistics
  summed over ranks, and only rank 0 writes files.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from utils.data.samples import Samples
from utils.engine.cache import check_settings, writing
from utils.engine.distributed import all_sum, rank_and_world, shard, sync_buffers
from utils.engine.recipes import Recipe, make_optimizer
from utils.engine.recorder import Recorder
from utils.metrics.checks import check_positive_int, is_integer

CHECKPOINT, MODEL = "checkpoint.pt", "model.pt"
RECORDS, MEASURES, HISTORY = "records.npz", "measures.npz", "history.csv"


# ---------------------------------------------------------------------------------------------- data
@dataclass
class Run:
    model: torch.nn.Module       # the trained network (never the DDP wrapper)
    records: Recorder            # in-loop values of the training samples, step = epoch index
    measures: Recorder           # eval-pass measurements of ``measure_on``, step = log index
    history: pd.DataFrame        # one row per epoch
    folder: Path | None = None


RS2_STREAM = 1_000   # added to the stream of the per-pass permutations of epoch_size, apart from the plain shuffles


def epoch_seed(seed: int, epoch: int, stream: int = 0, rank: int = 0) -> int:
    """Seed of epoch ``epoch``'s shuffle and dropout (stream 0 on rank 0: seed * 1,000,003 + epoch)."""
    return seed * 1_000_003 + epoch + 100_003 * stream + 1_000_000_007 * rank


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------------------------------- loop
def train(task, recipe: Recipe, data: Samples, *, seed: int, model: torch.nn.Module | None = None,
          folder=None, settings: dict | None = None, record: bool = True, measure_on: Samples | None = None,
          logs_per_epoch: int = 1, eval_sets: dict | None = None, checkpoint_every: int = 10, stream: int = 0,
          device=None, progress: bool = True, desc: str = "epochs", on_epoch_end=None,
          epoch_size: int | None = None) -> Run:
    """Train ``task``'s model on ``data`` with ``recipe``; see the module docstring for what is recorded.

    ``model`` continues training a given network (SSFT stage 2) instead of building a fresh one under
    ``seed``; ``stream`` separates the shuffles of runs that share a seed (the two SSFT stages).
    ``settings`` adds study-level settings to the folder's settings check. ``on_epoch_end(epoch)`` runs
    after the epoch's checkpoint decision (tests use it to simulate a kill). ``epoch_size``: samples per epoch
    (RS2, module docstring; None = all of them)."""
    check_positive_int(logs_per_epoch, "logs_per_epoch")
    check_positive_int(checkpoint_every, "checkpoint_every")
    if epoch_size is not None and not (is_integer(epoch_size) and 1 <= epoch_size <= len(data)):
        raise ValueError(f"epoch_size must be an integer in 1..{len(data)} (the samples), got {epoch_size!r}.")
    if epoch_size == len(data):
        epoch_size = None     # every sample every epoch: the plain loop
    if task.needs_labels and data.labels is None:
        raise ValueError(f"The {task.name} task trains on labels; give the samples labels.")
    device = torch.device(device) if device else default_device()
    folder = Path(folder) if folder is not None else None
    if model is None:
        torch.manual_seed(seed)
        model = task.make_model()
    # channels-last activations run the small convolutions 1.3x (batch 32) to 1.9x (batch 512) faster on CPU
    net = model.to(device, memory_format=torch.channels_last)
    loop = _Loop(task, recipe, data, net, seed, stream, record, measure_on, logs_per_epoch, eval_sets, device,
                 checkpoint_every, folder, epoch_size)
    if folder is None:
        return loop.run(progress, desc, on_epoch_end)
    # after every input check: a refused call must not claim the folder
    check_settings(folder, {"task": task.settings(), "recipe": recipe.to_dict(), "seed": seed, "stream": stream,
                            "record": record, "logs_per_epoch": logs_per_epoch, **data.fingerprint(),
                            "measured": None if measure_on is None else measure_on.fingerprint(),
                            "world_size": loop.world, **({"epoch_size": epoch_size} if epoch_size else {}),
                            **(settings or {})})
    if is_finished(folder):  # the same settings finished here before: load, do not retrain
        return load_run(folder, net)
    with writing(folder):
        if is_finished(folder):   # finished by another process since we looked
            return load_run(folder, net)
        return loop.run(progress, desc, on_epoch_end)


@dataclass
class _Loop:
    """The state of one training run between epochs: what :func:`train` checkpoints and resumes."""

    task: object
    recipe: Recipe
    data: Samples
    net: torch.nn.Module
    seed: int
    stream: int
    record: bool
    measure_on: Samples | None
    logs_per_epoch: int
    eval_sets: dict | None
    device: torch.device
    checkpoint_every: int
    folder: Path | None
    epoch_size: int | None = None
    history: list = field(default_factory=list)
    state: dict = field(default_factory=dict)   # measurement state the task keeps between logs (e.g. codes)
    start: int = 0
    perfect: int = 0

    def __post_init__(self):
        self.rank, self.world = rank_and_world()
        task, data, measure_on, device = self.task, self.data, self.measure_on, self.device
        self.x = task.prepare(data.images).to(device)
        self.y = data.labels.to(device) if data.labels is not None else None
        self.wrapped = torch.nn.parallel.DistributedDataParallel(self.net) if self.world > 1 else self.net
        n = self.epoch_size or len(data)
        per_rank = math.ceil(n / self.world)
        self.steps = math.ceil(per_rank / self.recipe.batch_size)
        if self.logs_per_epoch > self.steps:
            raise ValueError(f"logs_per_epoch ({self.logs_per_epoch}) exceeds the {self.steps} steps of an epoch; "
                             "log less often or use a smaller batch size.")
        last = per_rank % self.recipe.batch_size
        if 0 < last < getattr(task, "min_batch", 1):
            raise ValueError(f"{n} samples in batches of {self.recipe.batch_size} leave a last batch of {last}, too "
                             f"few for the {task.name} task (batch statistics); pick another batch_size.")
        self.log_after = {round((j + 1) * self.steps / self.logs_per_epoch): j for j in range(self.logs_per_epoch)}
        self.optimizer, self.scheduler = make_optimizer(self.net, self.recipe, self.steps)
        self.records = Recorder(data.ids)
        self.measures = Recorder(measure_on.ids if measure_on is not None else [])
        self.mx = task.prepare(measure_on.images).to(device) if measure_on is not None else None
        self.my = measure_on.labels.to(device) if measure_on is not None and measure_on.labels is not None else None
        self.m_rows = torch.arange(self.rank, len(measure_on), self.world) if measure_on is not None else None
        self.evals = {name: (task.prepare(s.images).to(device), None if s.labels is None else s.labels.to(device))
                      for name, s in (self.eval_sets or {}).items()}
        self.ckpt = self.folder / CHECKPOINT if self.folder is not None else None

    # -------------------------------------------------------------------------------------- run
    def run(self, progress: bool, desc: str, on_epoch_end) -> Run:
        if self.ckpt is not None and self.ckpt.is_file():
            self._resume()
        bar = tqdm(range(self.start, self.recipe.max_epochs), desc=desc, disable=not progress or self.rank != 0,
                   leave=False, initial=self.start, total=self.recipe.max_epochs)
        for epoch in bar:
            row = self._epoch(epoch)
            bar.set_postfix({k: round(v, 4) for k, v in row.items() if k in ("train_loss", "train_acc")})
            self.perfect = self.perfect + 1 if row["train_acc"] == 1.0 else 0
            stop = bool(self.recipe.patience and self.task.has_accuracy and self.perfect >= self.recipe.patience)
            if self.ckpt is not None and self.rank == 0 and (stop or (epoch + 1) % self.checkpoint_every == 0
                                                             or epoch + 1 == self.recipe.max_epochs):
                self._checkpoint(epoch, stop)
            if on_epoch_end is not None:
                on_epoch_end(epoch)
            if stop:
                break
        run = Run(self.net, self.records, self.measures, pd.DataFrame(self.history), self.folder)
        if self.folder is not None and self.rank == 0:
            save_run(run)
        return run

    def _resume(self) -> None:
        saved = torch.load(self.ckpt, map_location=self.device, weights_only=False)
        self.net.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.records = Recorder.from_state_dict(saved["records"])
        self.measures = Recorder.from_state_dict(saved["measures"])
        self.history, self.start, self.perfect, self.state = (saved["history"], saved["epoch"] + 1, saved["perfect"],
                                                              saved["state"])
        if saved.get("stopped"):
            self.start = self.recipe.max_epochs

    def _checkpoint(self, epoch: int, stop: bool) -> None:
        _atomic_save({"epoch": epoch, "model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                      "scheduler": self.scheduler.state_dict(), "records": self.records.state_dict(),
                      "measures": self.measures.state_dict(), "history": self.history, "perfect": self.perfect,
                      "state": self.state, "stopped": stop}, self.ckpt)

    def _measure(self, log: int) -> None:
        sync_buffers(self.net)
        rows = self.m_rows.to(self.device)
        values = self.task.measure(self.net, self.mx[rows], None if self.my is None else self.my[rows], self.state,
                                   log)
        for name, v in values.items():
            self.measures.record_rows(name, log, self.m_rows, v)
        self.net.train()

    def _epoch(self, epoch: int) -> dict:
        """One epoch: the shuffled steps (recording and measuring on the way), then the history row."""
        tic = time.perf_counter()
        seed, stream, rank, world, b = self.seed, self.stream, self.rank, self.world, self.recipe.batch_size
        self.wrapped.train()
        torch.manual_seed(epoch_seed(seed, epoch, stream, rank))   # dropout masks
        g = torch.Generator().manual_seed(epoch_seed(seed, epoch, stream))   # the same shuffle on every rank
        rows, real = shard(self._order(epoch, g), rank, world)
        aug = g if world == 1 else torch.Generator().manual_seed(epoch_seed(seed, epoch, stream, rank))
        loss_sum, n_correct, n_real = 0.0, 0, 0
        for step in range(self.steps):
            sel, keep = rows[step * b:(step + 1) * b], real[step * b:(step + 1) * b]
            dev_sel = sel.to(self.device)
            loss, per_sample, correct = self.task.train_step(self.wrapped, self.x[dev_sel],
                                                             None if self.y is None else self.y[dev_sel], aug,
                                                             self.record)
            if not torch.isfinite(loss):
                where = f"in {self.folder}" if self.folder is not None else "on disk"
                raise FloatingPointError(
                    f"The loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}: lower the recipe's lr or "
                    f"check the inputs; what was already saved {where} is kept.")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            n_keep = int(keep.sum())
            loss_sum += float(loss.detach()) * n_keep
            n_real += n_keep
            if correct is not None:
                n_correct += int(correct[keep.to(self.device)].sum())
            if self.record and per_sample:
                kept = sel[keep]
                for name, v in per_sample.items():
                    self.records.record_rows(name, epoch, kept, v[keep.to(self.device)] if n_keep < len(sel) else v)
            if self.mx is not None and step + 1 in self.log_after:
                self._measure(epoch * self.logs_per_epoch + self.log_after[step + 1])
        return self._history_row(epoch, loss_sum, n_correct, n_real, tic)

    def _order(self, epoch: int, g: torch.Generator) -> torch.Tensor:
        """The rows epoch ``epoch`` trains on, in order: a shuffle of all of them, or with ``epoch_size`` = k the
        k rows from position epoch * k of the concatenated per-pass permutations (RS2 without replacement)."""
        n, k = len(self.data), self.epoch_size
        if k is None:
            return torch.randperm(n, generator=g)
        start, parts, need = epoch * k, [], k
        while need:
            p, offset = divmod(start, n)
            g_pass = torch.Generator().manual_seed(epoch_seed(self.seed, p, self.stream + RS2_STREAM))
            perm = torch.randperm(n, generator=g_pass)
            take = perm[offset:offset + need]
            parts.append(take)
            need -= len(take)
            start += len(take)
        return torch.cat(parts)

    def _history_row(self, epoch: int, loss_sum: float, n_correct: int, n_real: int, tic: float) -> dict:
        loss_sum, n_correct, n_real = all_sum([loss_sum, n_correct, n_real])
        acc = n_correct / n_real if self.task.has_accuracy else float("nan")
        row = {"epoch": epoch + 1, "train_loss": loss_sum / n_real, "train_acc": acc,
               "lr": self.optimizer.param_groups[0]["lr"]}
        for name, (ex, ey) in self.evals.items():
            row.update({f"{name}_{k}": v for k, v in _evaluate(self.task, self.net, ex, ey).items()})
        self.net.train()
        self.records.gather()
        self.measures.gather()
        if self.mx is not None:  # means of the epoch's last log over every rank's shard, now that they are gathered
            last = epoch * self.logs_per_epoch + self.logs_per_epoch - 1
            row.update({f"measure_{k}": _mean(self.measures[k][-1]) for k in self.measures
                        if self.measures[k].ndim == 2 and self.measures.steps(k)[-1] == last})
        row["seconds"] = time.perf_counter() - tic
        self.history.append(row)
        return row


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")


@torch.no_grad()
def _evaluate(task, net, x, y) -> dict[str, float]:
    """Means of the task's scalar evaluation measures over a held-out set, summed over ranks."""
    sync_buffers(net)
    rank, world = rank_and_world()
    rows = torch.arange(rank, len(x), world).to(x.device)
    values = task.evaluate(net, x[rows], None if y is None else y[rows])
    names = sorted(values)
    sums = all_sum([float(values[k].double().sum()) for k in names] + [len(rows)])
    return {k: s / sums[-1] for k, s in zip(names, sums[:-1])}


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
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

