"""The pruning study: shrink a training set by any per-sample score, retrain a fresh classifier on what is kept,
measure what it loses.

The selection rules (``keep_hard``, ``keep_easy``, ``random``, ``ccs``; the near-duplicate ``redundancy`` order)
are :mod:`utils.scores.selection`. Here: :func:`retrain` trains a fresh model on the kept ids through the one loop
(:func:`utils.engine.loop.train`, no per-sample records) and measures the test set once after the last epoch, a
cached step of the one cache; :func:`pruning_study` runs every (score, policy, fraction, seed), each cached in its
own folder, and returns a long table; :func:`summary` and :func:`smallest_fraction_within` condense it;
:class:`PruningConfig` and :func:`run` are the whole study of ``pruning/pruning-curves.ipynb`` (score the training
set once per noise level with :func:`utils.scores.dataset.score_dataset`, then retrain).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from utils.data.samples import Samples
from utils.engine import cache
from utils.engine.loop import is_finished, train
from utils.engine.recipes import Recipe
from utils.engine.workers import run_sharded
from utils.scores.selection import POLICIES, dedup_order, default_beta, keep_count, select

BUDGETS = ("epochs", "steps")
STEPS_CAP = 10          # budget="steps" trains at most this many times the recipe's epochs
RESULT = "result"       # <run folder>/result.parquet: a finished retrain's numbers, readable without the model
RESERVED = ("random", "full")  # score names of the shared baselines in a study's table and folders


# ---------------------------------------------------------------------------------------------- retrain
def budget_recipe(recipe: Recipe, n_full: int, n_kept: int, budget: str = "epochs") -> Recipe:
    """The recipe a subset of ``n_kept`` of ``n_full`` samples trains with.

    ``"epochs"``: unchanged (fewer steps on fewer samples; the cost falls with the fraction). ``"steps"``:
    ``max_epochs`` scaled so the optimizer steps match the full-data run's, round(E * ceil(n_full / b) /
    ceil(n_kept / b)), at least E and at most ``STEPS_CAP`` * E (10x: a 10 % subset gets the full run's
    steps, smaller ones fewer); the triangle schedule stretches with it. This is how CCS and Sorscher et al.
    compare coresets (CCS trains every CIFAR-10 coreset for the full run's ~40,000 iterations). An early
    stop (``recipe.patience``) can still end a run sooner."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}.")
    if not 0 < n_kept <= n_full:
        raise ValueError(f"Cannot keep {n_kept} of {n_full} samples.")
    if budget == "epochs":
        return recipe
    b, e = recipe.batch_size, recipe.max_epochs
    epochs = round(e * math.ceil(n_full / b) / math.ceil(n_kept / b))
    return replace(recipe, max_epochs=int(min(STEPS_CAP * e, max(e, epochs))))


def retrain(task, recipe: Recipe, data: Samples, kept_ids, *, test: Samples, seed: int, folder=None,
            budget: str = "epochs") -> dict:
    """Train a fresh ``task`` model on the samples of ``data`` whose ids are ``kept_ids``; measure ``test``.

    The kept samples train in id order through :func:`utils.engine.loop.train` (``record=False``) with
    :func:`budget_recipe`; the test set is measured once, after the last epoch (an eval pass over 10,000
    images takes ~2 s on one thread, ~15 % of a Fashion-MNIST epoch of the cnn, so not after every epoch). Returns
    ``{"test_acc", "test_loss", "train_acc", "epochs", "steps", "kept", "seconds", "cached"}``: final-epoch
    numbers, optimizer steps taken, wall seconds of training + evaluation, and whether it was read from
    ``folder``. With a ``folder`` the loop caches the model there and ``result.parquet`` keeps these numbers, a
    step of the one cache keyed by the kept samples' and the test set's full-content fingerprints and every
    setting: a later call with the same settings reads it (no training, no model load), one with other settings
    (other labels, another test set, another recipe) is refused."""
    if not isinstance(data, Samples) or not isinstance(test, Samples):
        raise ValueError("data and test must be utils.data.samples.Samples.")
    if test.labels is None:
        raise ValueError("The test samples need labels to measure accuracy.")
    kept = np.asarray(kept_ids).reshape(-1)
    if len(kept) == 0 or not np.issubdtype(kept.dtype, np.integer):
        raise ValueError("kept_ids must be a non-empty array of integer sample ids.")
    kept = np.sort(kept.astype(np.int64))
    if (np.diff(kept) == 0).any():
        raise ValueError("kept_ids has repeated ids; keep every sample at most once.")
    rows = pd.Index(data.ids).get_indexer(kept)
    if (rows < 0).any():
        raise ValueError(f"{int((rows < 0).sum())} kept ids are not in data (e.g. {kept[rows < 0][0]}).")
    subset = data.subset(rows)
    run_recipe = budget_recipe(recipe, len(data), len(subset), budget)
    study = {"budget": budget, "full_samples": len(data), "base_max_epochs": recipe.max_epochs,
             "test": test.fingerprint()}
    settings = {"task": task.settings(), "recipe": run_recipe.to_dict(), "seed": seed, "kept": subset.fingerprint(),
                "pruning": study}

    def compute():
        tic = time.perf_counter()
        was_finished = folder is not None and is_finished(folder)
        run = train(task, run_recipe, subset, seed=seed, folder=folder, record=False, settings={"pruning": study},
                    progress=False)
        net = run.model
        device = next(net.parameters()).device
        values = task.evaluate(net, task.prepare(test.images).to(device), test.labels.to(device))
        seconds = time.perf_counter() - tic + (float(run.history["seconds"].sum()) if was_finished else 0.0)
        epochs = len(run.history)
        return pd.DataFrame([{"test_acc": float(values["acc"].double().mean()),
                              "test_loss": float(values["loss"].double().mean()),
                              "train_acc": float(run.history["train_acc"].iloc[-1]), "epochs": epochs,
                              "steps": epochs * math.ceil(len(subset) / run_recipe.batch_size), "kept": len(subset),
                              "seconds": seconds}])

    result = cache.step(None if folder is None else Path(folder), RESULT, settings, compute)
    return {**result.iloc[0].to_dict(), "cached": not result.attrs["fresh"]}


# ---------------------------------------------------------------------------------------------- study
def _fraction_name(fraction: float) -> str:
    return f"f{fraction:g}"


def pruning_study(data: Samples, test: Samples, scores: pd.DataFrame, *, fractions, policies_by_score: dict,
                  seeds, task, recipe: Recipe, folder, budget: str = "epochs", ccs_beta: float | None = None,
                  strata: int = 50, shard: tuple[int, int] = (0, 1), progress: bool = False) -> pd.DataFrame:
    """Select, retrain and measure every (score, policy, fraction, seed); one row per run.

    ``scores``: DataFrame indexed by sample id (covering ``data.ids``), columns oriented higher = harder.
    ``policies_by_score``: ``{column: (policy, ...)}``. Fraction 1.0 (full data) runs once per seed, shared by
    all scores (score = policy = ``"full"``); ``random`` runs once per fraction < 1 and seed, shared too
    (score = policy = ``"random"``), whether or not a score lists it. ``ccs`` cuts ``ccs_beta`` (default
    :func:`default_beta` of the fraction). The selection seed is the training seed. Each run is cached in
    ``folder/<score>/<policy>/f<fraction>/seed<seed>/`` (:func:`retrain`), so a killed study resumes from its
    finished runs, also in a later process. ``shard=(i, m)`` runs only every m-th run from the i-th (start one
    process per core, each with ``torch.set_num_threads(1)``), returning those rows; a last call without it
    reads them all. ``progress`` prints one line per run trained.

    Columns: score, policy, fraction, seed, beta (NaN unless ccs), kept, test_acc, test_loss, train_acc,
    epochs, steps, seconds, cached."""
    for f in fractions:
        keep_count(f, 1)  # validates each fraction
    fr = sorted({float(f) for f in fractions})
    if not fr:
        raise ValueError("fractions is empty; give at least one kept fraction in (0, 1].")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty; give at least one seed.")
    if not isinstance(scores, pd.DataFrame):
        raise ValueError(f"scores must be a DataFrame indexed by sample id, got {type(scores).__name__}.")
    for name, policies in policies_by_score.items():
        if name not in scores.columns:
            raise ValueError(f"policies_by_score names {name!r}, which is not a column of scores.")
        if name in RESERVED or not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise ValueError(f"Score name {name!r} cannot name a results folder or is reserved "
                             f"({', '.join(RESERVED)}); rename the column.")
        bad = [p for p in policies if p not in POLICIES]
        if isinstance(policies, str) or bad:
            raise ValueError(f"policies_by_score[{name!r}] must be a tuple of policies from {', '.join(POLICIES)}, "
                             f"got {policies!r}.")
    if len(shard) != 2 or not 0 <= shard[0] < shard[1]:
        raise ValueError(f"shard must be (index, count) with 0 <= index < count, got {shard!r}.")
    budget_recipe(recipe, 1, 1, budget)  # validates budget before any run
    missing = pd.Index(data.ids).difference(scores.index)
    if len(missing):
        raise ValueError(f"scores lack {len(missing)} of the data's sample ids (e.g. {missing[0]}); score every "
                         "training sample.")
    folder = Path(folder)

    plan = [("full", "full", 1.0, s) for s in seeds]
    plan += [("random", "random", f, s) for f in fr if f < 1 for s in seeds]
    plan += [(name, p, f, s) for name, policies in policies_by_score.items() for p in dict.fromkeys(policies)
             if p != "random" for f in fr if f < 1 for s in seeds]
    rows = []
    for i, (name, policy, fraction, seed) in enumerate(plan):
        if i % shard[1] != shard[0]:
            continue
        beta = np.nan
        if name == "full":
            kept = data.ids
        elif name == "random":
            kept = select(pd.Series(0.0, index=data.ids), fraction, "random", seed)
        else:
            column = scores[name].reindex(data.ids)
            if policy == "ccs":
                beta = default_beta(fraction) if ccs_beta is None else ccs_beta
            kept = select(column, fraction, policy, seed, beta=0.0 if policy != "ccs" else beta, strata=strata)
        out = retrain(task, recipe, data, kept, test=test, seed=seed, budget=budget,
                      folder=folder / name / policy / _fraction_name(fraction) / f"seed{seed}")
        if progress and not out["cached"]:
            print(f"{name} {policy} f={fraction:g} seed {seed}: {out['kept']} kept, acc {out['test_acc']:.4f}, "
                  f"{out['epochs']} epochs, {out['seconds']:.0f} s", flush=True)
        rows.append({"score": name, "policy": policy, "fraction": fraction, "seed": seed, "beta": beta, **out})
    columns = ["score", "policy", "fraction", "seed", "beta", "kept", "test_acc", "test_loss", "train_acc", "epochs",
               "steps", "seconds", "cached"]
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------------------------------- summaries
def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count of test accuracy per (score, policy, fraction), and the mean number kept."""
    _check_table(table)
    g = table.groupby(["score", "policy", "fraction"])
    out = g["test_acc"].agg(["mean", "std", "count"]).rename(columns=lambda c: f"acc_{c}" if c != "count" else "runs")
    return out.join(g["kept"].mean().rename("kept")).reset_index()


def smallest_fraction_within(table: pd.DataFrame, tolerance: float = 0.005) -> pd.DataFrame:
    """Per (score, policy): the smallest kept fraction < 1 whose mean test accuracy is within ``tolerance`` of
    the full-data mean (NaN if none), its accuracy, and whether the pair beats random at every fraction < 1
    it was run at (mean accuracy strictly above random's; NA for random itself), with the smallest margin."""
    _check_table(table)
    if not (isinstance(tolerance, (int, float)) and tolerance >= 0):
        raise ValueError(f"tolerance must be a non-negative accuracy difference, got {tolerance!r}.")
    s = summary(table)
    full = s[s["policy"] == "full"]
    if full.empty:
        raise ValueError("The table has no full-data rows (policy 'full'); run the study with fraction 1.0.")
    full_acc = float(full["acc_mean"].iloc[0])
    rand = s[s["policy"] == "random"].set_index("fraction")["acc_mean"]
    rows = []
    for (name, policy), g in s[(s["policy"] != "full") & (s["fraction"] < 1)].groupby(["score", "policy"]):
        ok = g[g["acc_mean"] >= full_acc - tolerance]
        smallest = ok.loc[ok["fraction"].idxmin()] if len(ok) else None
        margin = g.set_index("fraction")["acc_mean"] - rand.reindex(g["fraction"]).to_numpy()
        is_random = policy == "random"
        rows.append({"score": name, "policy": policy, "full_acc": full_acc,
                     "smallest_fraction": np.nan if smallest is None else float(smallest["fraction"]),
                     "acc_at_smallest": np.nan if smallest is None else float(smallest["acc_mean"]),
                     "beats_random": pd.NA if is_random or margin.isna().any() else bool((margin > 0).all()),
                     "min_margin_vs_random": np.nan if is_random else float(margin.min())})
    out = pd.DataFrame(rows, columns=["score", "policy", "full_acc", "smallest_fraction", "acc_at_smallest",
                                      "beats_random", "min_margin_vs_random"])
    out["beats_random"] = out["beats_random"].astype("boolean")
    return out


def _check_table(table) -> None:
    need = {"score", "policy", "fraction", "test_acc", "kept"}
    if not isinstance(table, pd.DataFrame) or not need <= set(table.columns):
        raise ValueError(f"table must be a DataFrame from pruning_study with columns {', '.join(sorted(need))}.")


# ------------------------------------------------------------------------------------------ parallel runs
def parallel_study(data: Samples, test: Samples, scores: pd.DataFrame, *, workers: int = 2, **kwargs) -> pd.DataFrame:
    """:func:`pruning_study` split over ``workers`` processes of one thread each (:mod:`utils.engine.workers`;
    on 2 cores two one-thread processes train about 1.8x the runs of one two-thread process per minute), then read
    back in one table. ``workers=1`` runs in this process."""
    kwargs = {k: v for k, v in kwargs.items() if k != "shard"}
    if workers > 1:
        run_sharded(pruning_study, workers, data, test, scores, **kwargs)
    return pruning_study(data, test, scores, **kwargs)


# ---------------------------------------------------------------------------------------- study scores
# pruning-study name -> column of utils.scores.dataset.score_dataset (oriented by the registry: higher = harder)
STUDY_SCORES = {
    "el2n": "el2n", "forgetting": "forgetting_events", "aum": "aum", "cleanlab": "cl_label_quality",
    "ssft": "ssft_forgetting_time", "ae_loss": "ae_loss_mean", "prototype": "bt_prototype_distance",
    "knn_distance": "bt_knn_distance",
}


def study_scores(scored: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The pruning study's scores from a :func:`utils.scores.dataset.score_dataset` table, each oriented higher =
    harder (:func:`utils.scores.registry.oriented`), plus ``redundancy`` (:func:`dedup_order` on the pixel nearest
    neighbours; higher = more redundant). Scores the table lacks are left out. ``attrs["label_free"]`` lists the
    columns that used no label."""
    from utils.scores.registry import label_free, oriented

    o = oriented(scored)
    cols = {name: o[col] for name, col in STUDY_SCORES.items() if col in o.columns}
    out = pd.DataFrame(cols, index=scored.index)
    if {"px_nearest_id", "px_nn_distance"} <= set(scored.columns):
        out["redundancy"] = dedup_order(scored["px_nearest_id"].astype(np.int64), scored["px_nn_distance"], seed)
    out.index.name = "sample_id"
    out.attrs["label_free"] = [n for n in out.columns if n == "redundancy" or label_free(STUDY_SCORES[n])]
    return out


# ---------------------------------------------------------------------------------------------- the study
@dataclass(frozen=True)
class PruningConfig:
    """The pruning study of ``pruning/pruning-curves.ipynb``. ``n``: a seeded subset of the training split (None:
    all of it); ``noise``: shares of training labels flipped uniformly (:func:`utils.data.inject.uniform_noise`),
    one study each; ``noisy_policies``: the policies run under label noise; ``scoring``: overrides of
    :class:`utils.scores.dataset.ScoringConfig`."""

    dataset: str = "fashion-mnist"
    train_split: str = "train"
    test_split: str = "test"
    n: int | None = None
    fractions: tuple = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
    seeds: tuple = (0, 1, 2)
    noise: tuple = (0.0, 0.1)
    policies: tuple = ("keep_hard", "keep_easy", "ccs")
    noisy_policies: tuple = ("keep_easy", "ccs")
    arch: str = "cnn"
    epochs: int = 3
    batch_size: int = 256
    lr: float = 0.1
    budget: str = "epochs"
    workers: int = 2
    scoring: dict = field(default_factory=dict)
    encoder_epochs: int = 15
    encoder_pool_size: int = 10000

    def __post_init__(self):
        for name in ("fractions", "seeds", "noise", "policies", "noisy_policies"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        bad = [p for p in (*self.policies, *self.noisy_policies) if p not in POLICIES]
        if bad:
            raise ValueError(f"Unknown policies {bad}: choose from {', '.join(POLICIES)}.")
        if self.budget not in BUDGETS:
            raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {self.budget!r}.")

    def to_dict(self) -> dict:
        return asdict(self)


def run(config: PruningConfig, results, root=None) -> pd.DataFrame:
    """Score the training set once per noise level and retrain on every (score, policy, fraction, seed); one row per
    retrain (:func:`pruning_study`) with ``noise``, ``dataset`` and ``label_free`` added. Everything is cached under
    ``results``: the encoder, ``noise<p>/scores/`` and ``noise<p>/runs/``; a killed study resumes."""
    import torch

    from utils.data.datasets import load_dataset
    from utils.data.inject import from_arrays, inject
    from utils.engine.recipes import get_recipe
    from utils.engine.tasks import make_task
    from utils.scores.dataset import ScoringConfig, score_dataset
    from utils.scores.families import train_encoder

    results = Path(results)
    x, y, info = load_dataset(config.dataset, config.train_split, root)
    ids = np.arange(len(y))
    if config.n is not None and config.n < len(y):
        rows = np.sort(np.random.default_rng(12345).permutation(len(y))[:config.n])
        x, y, ids = x[rows], y[rows], ids[rows]
    tx, ty, _ = load_dataset(config.dataset, config.test_split, root)
    test = Samples(tx, ty, np.arange(len(ty)))
    task = make_task(config.arch, info)
    recipe = get_recipe("paper", max_epochs=config.epochs, patience=None, batch_size=config.batch_size, lr=config.lr)
    encoder = None
    if config.encoder_epochs:
        pool = x[torch.from_numpy(np.random.default_rng(0).permutation(len(x))[:config.encoder_pool_size])]
        encoder = train_encoder(pool, info, config.encoder_epochs, seed=0, folder=results / "encoder")
    tables, free = [], set()
    for noise in config.noise:
        data = from_arrays(x, y, ids, name=config.dataset)
        if noise:
            data = inject(data, "uniform_noise", noise, seed=0)
        folder = results / f"noise{noise:g}"
        scored = score_dataset(data.images, data.labels, data.ids, info=info, config=ScoringConfig(**config.scoring),
                               folder=folder / "scores", encoder=encoder)
        scores = study_scores(scored)
        free |= set(scores.attrs["label_free"])
        policies = {name: ("keep_easy",) if name == "redundancy" else
                    tuple(config.noisy_policies if noise else config.policies) for name in scores.columns}
        table = parallel_study(data, test, scores, fractions=config.fractions, policies_by_score=policies,
                               seeds=config.seeds, task=task, recipe=recipe, folder=folder / "runs",
                               budget=config.budget, workers=config.workers)
        tables.append(table.assign(noise=noise, dataset=config.dataset))
    table = pd.concat(tables, ignore_index=True)
    table["label_free"] = table["score"].isin(free)
    return table
