"""The two-split protocol of second-split forgetting time (Maini et al. 2022), sample ids kept throughout.

For each model seed and each order (A then B, B then A):

1. stage 1 trains a fresh model on the first half and, after every epoch, measures every sample of that
   half (eval mode, fixed order);
2. stage 2 fine-tunes the same model on the other half with a fresh optimizer and schedule, measuring the
   first half ``logs_per_epoch`` times per epoch (after each k-th of the epoch's steps).

Swapping the halves gives every sample exactly one first-split and one second-split history per seed.
Each (seed, order) run is cached as ``<folder>/seed<s>_<order>.npz``; an interrupted study resumes at the
first missing run, and a folder holding runs of other settings is refused.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from utils.ssft.recipes import Recipe, make_optimizer

ORDERS = ("AB", "BA")


def split_halves(ids, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample ids of a seeded random 50/50 split (A gets the extra one when N is odd), each half sorted.

    The split depends on the ids and the seed only, not on the order the samples come in, so shuffling
    a dataset does not change which half a sample lands in."""
    ids = np.asarray(ids)
    if len(ids) < 2:
        raise ValueError(f"Need at least 2 samples to split in halves, got {len(ids)}.")
    perm = np.random.default_rng(seed).permutation(np.sort(ids))
    half = (len(ids) + 1) // 2
    return np.sort(perm[:half]), np.sort(perm[half:])


@dataclass
class SSFTConfig:
    """One SSFT study: which model, which recipe, how often stage 2 logs, which split and model seeds."""

    model: str = "cnn"
    recipe: Recipe = field(default_factory=Recipe)
    logs_per_epoch: int = 4
    split_seed: int = 0
    model_seeds: tuple = (0, 1, 2)

    def __post_init__(self):
        if isinstance(self.recipe, dict):
            self.recipe = Recipe(**self.recipe)
        self.model_seeds = tuple(int(s) for s in self.model_seeds)
        if not self.model_seeds:
            raise ValueError("model_seeds is empty; give at least one seed (the paper averages 5, we default to 3).")
        if self.logs_per_epoch < 1:
            raise ValueError(f"logs_per_epoch must be a positive integer, got {self.logs_per_epoch}.")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model_seeds"] = list(self.model_seeds)
        return d


@dataclass
class TwoSplitRun:
    """One (seed, order) run: measurements of the first half, ``stage1[m]`` [E1, n] and ``stage2[m]`` [E2 * k, n]."""

    seed: int
    order: str
    ids: np.ndarray                  # sample ids of the first half, in measurement order
    stage1: dict
    stage2: dict
    logs_per_epoch: int
    history: pd.DataFrame            # one row per epoch of each stage (loss, train accuracy, lr, seconds)

    def save(self, path: Path) -> None:
        arrays = {"ids": self.ids}
        arrays.update({f"stage1__{k}": v for k, v in self.stage1.items()})
        arrays.update({f"stage2__{k}": v for k, v in self.stage2.items()})
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        self.history.to_csv(path.with_suffix(".csv"), index=False)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, logs_per_epoch: int) -> "TwoSplitRun":
        seed, order = path.stem.removeprefix("seed").split("_")
        with np.load(path) as f:
            stage = {s: {k.split("__", 1)[1]: f[k] for k in f.files if k.startswith(s + "__")}
                     for s in ("stage1", "stage2")}
            ids = f["ids"]
        return cls(int(seed), order, ids, stage["stage1"], stage["stage2"], logs_per_epoch,
                   pd.read_csv(path.with_suffix(".csv")))


def _train_stage(task, model, recipe: Recipe, x, y, generator, measure, logs_per_epoch: int, stage: int,
                 history: list, progress: bool) -> dict:
    """Train one stage on (x, y); return the stacked measurements taken by ``measure``."""
    n = len(x)
    steps = -(-n // recipe.batch_size)
    optimizer, scheduler = make_optimizer(model, recipe, steps)
    if logs_per_epoch > steps:
        raise ValueError(f"logs_per_epoch ({logs_per_epoch}) exceeds the {steps} steps of an epoch; log less often "
                         "or use a smaller batch size.")
    log_steps = {round((j + 1) * steps / logs_per_epoch) for j in range(logs_per_epoch)}
    logs, perfect = [], 0
    bar = tqdm(range(recipe.max_epochs), desc=f"stage {stage}", disable=not progress, leave=False)
    for epoch in bar:
        tic = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=generator)
        loss_sum, n_correct = 0.0, 0
        for step in range(steps):
            rows = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
            loss, correct = task.batch_loss(model, x[rows], y[rows], generator)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"The loss became {loss.item()} in stage {stage}, epoch {epoch + 1}: lower the recipe's lr; "
                    "runs already finished are kept on disk.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += float(loss.detach()) * len(rows)
            n_correct += correct or 0
            if step + 1 in log_steps:
                logs.append({k: v.numpy().copy() for k, v in measure(model).items()})
        acc = n_correct / n if task.has_accuracy else float("nan")
        history.append(dict(stage=stage, epoch=epoch + 1, loss=loss_sum / n, train_acc=acc,
                            lr=optimizer.param_groups[0]["lr"], seconds=time.perf_counter() - tic))
        bar.set_postfix(loss=round(loss_sum / n, 4), acc=round(acc, 4))
        perfect = perfect + 1 if acc == 1.0 else 0
        if recipe.patience and task.has_accuracy and perfect >= recipe.patience:
            break
    return {k: np.stack([log[k] for log in logs]) for k in logs[0]}


def run_two_split(task, recipe: Recipe, images: torch.Tensor, labels: torch.Tensor, ids, first, second,
                  seed: int, logs_per_epoch: int, order: str = "AB", progress: bool = True) -> TwoSplitRun:
    """Stage 1 on rows ``first``, stage 2 on rows ``second``; measure the first half as the module describes."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + ORDERS.index(order))
    model = task.make_model()
    xa, ya = images[torch.as_tensor(first)], labels[torch.as_tensor(first)]
    xb, yb = images[torch.as_tensor(second)], labels[torch.as_tensor(second)]
    measure = lambda m: task.measure(m, xa, ya)  # noqa: E731
    history: list = []
    stage1 = _train_stage(task, model, recipe, xa, ya, generator, measure, 1, 1, history, progress)
    stage2 = _train_stage(task, model, recipe, xb, yb, generator, measure, logs_per_epoch, 2, history, progress)
    return TwoSplitRun(seed, order, np.asarray(ids)[first], stage1, stage2, logs_per_epoch, pd.DataFrame(history))


def run_ssft(task, config: SSFTConfig, images: torch.Tensor, labels: torch.Tensor, ids, folder,
             progress: bool = True) -> list[TwoSplitRun]:
    """All (seed, order) runs of a study, trained or loaded from ``folder``; see the module docstring.

    Prints one line per run it trains; ``progress`` adds per-epoch progress bars."""
    images = torch.as_tensor(images, dtype=torch.float32)
    labels = torch.as_tensor(labels)
    ids = np.asarray(ids)
    if images.dim() != 4 or len(images) != len(labels) or len(ids) != len(images):
        raise ValueError(f"Need images [N, C, H, W] with one label and one id each; got images {list(images.shape)}, "
                         f"{len(labels)} labels, {len(ids)} ids.")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("sample ids are not unique; give every sample its own id.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _check_folder(folder, config, ids)
    a_ids, b_ids = split_halves(ids, config.split_seed)
    position = pd.Index(ids)
    a, b = position.get_indexer(a_ids), position.get_indexer(b_ids)  # rows of each half, in id order
    runs = []
    for seed in config.model_seeds:
        for order in ORDERS:
            path = folder / f"seed{seed}_{order}.npz"
            if path.is_file():
                runs.append(TwoSplitRun.load(path, config.logs_per_epoch))
                continue
            tic = time.perf_counter()
            first, second = (a, b) if order == "AB" else (b, a)
            run = run_two_split(task, config.recipe, images, labels, ids, first, second, seed,
                                config.logs_per_epoch, order, progress)
            run.save(path)
            e1, e2 = (run.history["stage"] == 1).sum(), (run.history["stage"] == 2).sum()
            print(f"{config.model} seed {seed} {order}: {e1} + {e2} epochs, {time.perf_counter() - tic:.0f} s",
                  flush=True)
            runs.append(run)
    return runs


def _check_folder(folder: Path, config: SSFTConfig, ids: np.ndarray) -> None:
    """Write the settings and ids the first time; afterwards refuse a folder trained with other ones."""
    meta = folder / "config.json"
    current = {**config.to_dict(), "n_samples": int(len(ids)), "ids_hash": int(pd.util.hash_array(ids).sum() % (2**61))}
    if meta.is_file():
        saved = json.loads(meta.read_text())
        if saved != current:
            diff = sorted(k for k in current if saved.get(k) != current[k])
            raise ValueError(f"{folder} holds SSFT runs with other settings ({', '.join(diff)}); pick a new results "
                             "folder or delete that one to start over.")
    else:
        meta.write_text(json.dumps(current, indent=1))
