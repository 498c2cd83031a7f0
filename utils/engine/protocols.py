"""Protocols built on the one loop (:func:`utils.engine.loop.train`): a plain supervised run and the two-split
protocol of second-split forgetting time (Maini et al. 2022), sample ids kept throughout.

Two-split protocol (SSFT):

For each model seed and each order (A then B, B then A):

1. stage 1 trains a fresh model on the first half and, after every epoch, measures every sample of that
   half (eval mode, fixed order);
2. stage 2 fine-tunes the same model on the other half with a fresh optimizer and schedule, measuring the
   first half ``logs_per_epoch`` times per epoch (after each k-th of the epoch's steps).

Swapping the halves gives every sample exactly one first-split and one second-split history per seed.
Each (seed, order) run is cached as ``<folder>/seed<s>_<order>.npz``; an interrupted study resumes at the
first missing run, and a folder holding runs of other settings is refused.
Every stage is a call of :func:`utils.engine.loop.train`, so seeding, shuffles, the NaN guard, early stopping
and logging k times per epoch are the loop's.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from utils.data.samples import Samples
from utils.engine.cache import check_settings, writing
from utils.engine.loop import Run, train
from utils.engine.recipes import Recipe
from utils.engine.recorder import Recorder
from utils.engine.tasks import TASKS, eval_pass
from utils.metrics.checks import is_integer

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
        if self.model not in TASKS:
            raise ValueError(f"Unknown SSFT model {self.model!r}: choose one of {', '.join(TASKS)}.")
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
    """One (seed, order) run: recorders of the first half, ``stage1`` (a log per epoch) and ``stage2`` (k per epoch).

    ``stage1[m]`` is ``[E1, n]`` and ``stage2[m]`` is ``[E2 * k, n]``, columns in ``ids`` order."""

    seed: int
    order: str
    ids: np.ndarray                  # sample ids of the first half, in measurement order
    stage1: Recorder
    stage2: Recorder
    logs_per_epoch: int
    history: pd.DataFrame            # one row per epoch of each stage (stage, epoch, train loss and accuracy, lr, seconds)

    def save(self, path: Path) -> None:
        arrays = {f"stage1/{k}": v for k, v in self.stage1.state_dict().items()}
        arrays.update({f"stage2/{k}": v for k, v in self.stage2.state_dict().items()})
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, **arrays)
        self.history.to_csv(path.with_suffix(".csv"), index=False)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, logs_per_epoch: int) -> "TwoSplitRun":
        seed, order = path.stem.removeprefix("seed").split("_")
        with np.load(path) as f:
            stages = [Recorder.from_state_dict({k.split("/", 1)[1]: f[k] for k in f.files if k.startswith(s + "/")})
                      for s in ("stage1", "stage2")]
        return cls(int(seed), order, stages[0].sample_ids, stages[0], stages[1], logs_per_epoch,
                   pd.read_csv(path.with_suffix(".csv")))


def run_two_split(task, recipe: Recipe, data: Samples, first, second, seed: int, logs_per_epoch: int,
                  order: str = "AB", progress: bool = True) -> TwoSplitRun:
    """Stage 1 on rows ``first``, stage 2 on rows ``second`` of ``data``; measure the first half as the module says."""
    a, b = data.subset(first), data.subset(second)
    stream = 2 * ORDERS.index(order)
    one = train(task, recipe, a, seed=seed, record=False, measure_on=a, logs_per_epoch=1, stream=stream,
                progress=progress, desc="stage 1")
    two = train(task, recipe, b, seed=seed, model=one.model, record=False, measure_on=a,
                logs_per_epoch=logs_per_epoch, stream=stream + 1, progress=progress, desc="stage 2")
    history = pd.concat([one.history.assign(stage=1), two.history.assign(stage=2)], ignore_index=True)
    return TwoSplitRun(seed, order, a.ids, one.measures, two.measures, logs_per_epoch, history)


def run_ssft(task, config: SSFTConfig, data: Samples, folder, progress: bool = False) -> list[TwoSplitRun]:
    """All (seed, order) runs of a study, trained or loaded from ``folder``; see the module docstring.

    With ``progress``, per-epoch progress bars and one line per run it trains, on stderr."""
    folder = Path(folder)
    a_ids, b_ids = split_halves(data.ids, config.split_seed)
    # refuse what the loop would refuse before the folder is claimed, so the corrected call may use it
    task.prepare(data.images[:1])
    steps = math.ceil(len(b_ids) / config.recipe.batch_size)  # the smaller half is B
    if config.logs_per_epoch > steps:
        raise ValueError(f"logs_per_epoch ({config.logs_per_epoch}) exceeds the {steps} steps of an epoch on a half "
                         f"of {len(b_ids)} samples; log less often or use a smaller batch size.")
    check_settings(folder, {**config.to_dict(), "task": task.settings(), **data.fingerprint()})
    position = pd.Index(data.ids)
    a, b = position.get_indexer(a_ids), position.get_indexer(b_ids)  # rows of each half, in id order
    paths = {(seed, order): folder / f"seed{seed}_{order}.npz" for seed in config.model_seeds for order in ORDERS}
    if all(p.is_file() for p in paths.values()):   # a finished study: read it, no lock
        return [TwoSplitRun.load(p, config.logs_per_epoch) for p in paths.values()]
    runs = []
    with writing(folder):
        for (seed, order), path in paths.items():
            if path.is_file():
                runs.append(TwoSplitRun.load(path, config.logs_per_epoch))
                continue
            tic = time.perf_counter()
            first, second = (a, b) if order == "AB" else (b, a)
            run = run_two_split(task, config.recipe, data, first, second, seed, config.logs_per_epoch, order,
                                progress)
            run.save(path)
            e1, e2 = (run.history["stage"] == 1).sum(), (run.history["stage"] == 2).sum()
            if progress:   # training chatter: on stderr, above the bars (tqdm.write), never on stdout
                tqdm.write(f"{task.name} seed {seed} {order}: {e1} + {e2} epochs, {time.perf_counter() - tic:.0f} s",
                           file=sys.stderr)
            runs.append(run)
    return runs


def supervised_run(task, recipe: Recipe, data: Samples, *, seed: int, test: Samples | None = None, folder=None,
                   progress: bool = True, **kwargs) -> Run:
    """A plain supervised run with in-loop per-sample records and held-out accuracy after every epoch.

    ``Run.records`` holds, per sample id and epoch, the loss, the given-label logit, the largest other logit,
    the softmax probability of the given label and correctness (:func:`utils.engine.tasks.supervised_values`);
    ``Run.history`` holds ``test_acc`` and ``test_loss`` when ``test`` is given. A finished run with the same
    settings in ``folder`` is loaded instead of retrained (the loop does that)."""
    return train(task, recipe, data, seed=seed, record=True, eval_sets={"test": test} if test is not None else None,
                 folder=folder, progress=progress, **kwargs)


@dataclass
class KFold:
    """What :func:`kfold_runs` returns: out-of-sample probabilities and, when recorded, each fold's in-loop records."""

    probs: pd.DataFrame           # indexed by sample_id (sorted), columns p0..p{C-1}
    records: list                 # one Recorder per fold (its training samples, one step per epoch); [] unrecorded
    histories: list               # one per-epoch history DataFrame per fold


def kfold_probs(task, recipe: Recipe, data: Samples, *, folds: int = 5, seed: int = 0, folder=None,
                progress: bool = False) -> pd.DataFrame:
    """:func:`kfold_runs` without records: the out-of-sample probabilities only."""
    return kfold_runs(task, recipe, data, folds=folds, seed=seed, folder=folder, progress=progress).probs


def kfold_runs(task, recipe: Recipe, data: Samples, *, folds: int = 5, seed: int = 0, folder=None,
               progress: bool = False, record: bool = False, checkpoint_every: int = 1) -> KFold:
    """Out-of-sample softmax probabilities of every sample by ``folds``-fold cross-validation through the loop.

    The folds are a seeded stratified split (sklearn ``StratifiedKFold`` with shuffling) of the samples
    sorted by id, so they depend on the ids, the labels and ``seed`` only, never on the order the samples
    come in. For each fold k a fresh model (seed drawn from ``(seed, k)``) trains on the other folds, in
    id order, with :func:`utils.engine.loop.train` (no per-sample records), and an eval-mode pass predicts the
    held-out fold. With a ``folder`` each fold's run is cached in ``folder/fold<k>/`` (the loop loads a
    finished run and refuses other settings, keyed by the data's full-content fingerprint, labels included) and
    the study's settings are checked in ``folder/settings.json``.

    Returns a DataFrame indexed by ``sample_id`` (sorted) with columns ``p0 .. p{C-1}`` (C from the task's
    DatasetInfo): every sample exactly once, predicted by the one model that did not train on it.
    ``attrs`` records ``folds``, ``seed`` and ``fold_seeds``. This is what confident learning needs
    (:mod:`utils.scores.label_quality`); in-sample predictions would hide the mislabeled samples a model memorised.

    ``record=True`` also records every fold's training samples in-loop (what :func:`supervised_run` records),
    so one K-fold pass gives both: every sample is trained on by K-1 fresh models (its training dynamics,
    e.g. :func:`utils.scores.dynamics.dynamics_scores` with ``same_samples=False``) and predicted by the one that held
    it out, at the cost of K-1 full-data trainings. Each fold checkpoints every ``checkpoint_every`` epochs (default
    every epoch: a killed pass resumes within an epoch)."""
    _check_kfold(task, data, folds, seed)
    order, fold_of = _fold_of(data, folds, seed)
    ids, num_classes = data.ids[order], task.info.num_classes
    fold_seeds = [int(np.random.SeedSequence([int(seed), k]).generate_state(1)[0]) for k in range(folds)]
    study = {"folds": int(folds), "seed": int(seed)}   # the labels are in the data's fingerprint
    folder = Path(folder) if folder is not None else None
    if folder is not None:
        check_settings(folder, {"kfold": study, "task": task.settings(), "recipe": recipe.to_dict(),
                                **data.fingerprint()})

    probs = np.empty((len(ids), num_classes))
    records, histories = [], []
    for k in range(folds):
        held, trained = order[fold_of == k], order[fold_of != k]   # rows of ``data``, each in id order
        run = train(task, recipe, data.subset(trained), seed=fold_seeds[k], record=bool(record),
                    folder=None if folder is None else folder / f"fold{k}", settings={"kfold": {**study, "fold": k}},
                    progress=progress, desc=f"fold {k + 1}/{folds}", checkpoint_every=checkpoint_every)
        probs[fold_of == k] = _predict_probs(task, run.model, data.images, held)
        histories.append(run.history)
        if record:
            records.append(run.records)
    out = pd.DataFrame(probs, index=pd.Index(ids, name="sample_id"), columns=[f"p{c}" for c in range(num_classes)])
    out.attrs.update(folds=int(folds), seed=int(seed), fold_seeds=fold_seeds)
    return KFold(out, records, histories)


def _check_kfold(task, data: Samples, folds, seed) -> None:
    """A classifier task, labeled samples in its classes, enough of them for ``folds`` folds, or one sentence."""
    from utils.engine.tasks import SupervisedTask

    if not isinstance(task, SupervisedTask):
        raise ValueError(f"K-fold probabilities need a classifier task (make_task('cnn' or 'lenet', info)), got "
                         f"{type(task).__name__}.")
    if data.labels is None:
        raise ValueError("K-fold probabilities train on labels; give the samples labels.")
    if not is_integer(folds) or not 2 <= folds <= len(data):
        raise ValueError(f"folds must be an integer from 2 to the number of samples ({len(data)}), got {folds!r}.")
    if not is_integer(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    num_classes = task.info.num_classes
    labels = data.labels.numpy()
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1} (the task's DatasetInfo has {num_classes} "
                         f"classes), got {labels.min()}..{labels.max()}.")
    counts = np.bincount(labels, minlength=num_classes)
    if counts.max() < folds:
        raise ValueError(f"No class has {folds} samples (the largest has {counts.max()}); use fewer folds.")
    task.prepare(data.images[:1])  # the shape check, before a folder is claimed


def _fold_of(data: Samples, folds: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(order, fold_of)``: the rows of ``data`` in id order and the fold of each of them, a seeded stratified
    split (sklearn ``StratifiedKFold`` with shuffling) of the samples in id order, so it ignores the input order."""
    from sklearn.model_selection import StratifiedKFold

    order = np.argsort(data.ids, kind="stable")
    y = data.labels.numpy()[order]
    fold_of = np.empty(len(order), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=int(seed))
    for k, (_, held) in enumerate(splitter.split(np.zeros(len(order)), y)):
        fold_of[held] = k
    return order, fold_of


def _predict_probs(task, net, images, rows) -> np.ndarray:
    """Softmax probabilities (float64) of a trained classifier on ``images[rows]``, in eval mode."""
    import torch

    x = task.prepare(images[torch.as_tensor(rows)]).to(next(net.parameters()).device)
    logits = eval_pass(net, x, None, task.eval_batch_size, lambda xb, yb: {"logits": net(xb).float()})["logits"]
    return logits.double().softmax(1).numpy()
