"""The pruning study: shrink a training set by any per-sample score, retrain a fresh classifier on what is kept,
measure what it loses against the baselines the literature uses.

The selection rules (``keep_hard``, ``keep_easy``, ``random``, ``ccs``, ``sorscher``, ``dedup_<policy>``; the
near-duplicate ``redundancy`` order) are :mod:`utils.scores.selection`. Here: :func:`retrain` trains a fresh model
on the kept ids through the one loop (:func:`utils.engine.loop.train`, no per-sample records) under a budget
(:func:`budget_recipe`: fixed epochs, or fixed iterations = the full run's optimizer steps) and measures the test
set once after the last epoch, a cached step of the one cache; :func:`pruning_study` runs every (score, policy,
fraction, seed) next to the full data and the score-free baselines (static ``random``; ``rs2``, a fresh random
subset every epoch, Okanovic et al. 2023) and fixed subsets (``clean``: what the flags leave), each cached in its own
folder, and returns a long table; :func:`accuracy_summary`, :func:`smallest_fraction_within`, :func:`paired_tests` and
:func:`goals` condense it; :class:`PruningConfig` and :func:`run` are the whole study of
``pruning/pruning-curves.ipynb`` (score the training set once per label-noise study with
:func:`utils.scores.dataset.score_dataset`, then retrain under each budget).
"""
from __future__ import annotations

import json
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
from utils.engine.workers import run_then_read
from utils.metrics.checks import is_integer, is_number
from utils.scores.selection import (POLICIES, dedup_order, default_beta, keep_count, select, select_after_dedup,
                                    semantic_duplicates)
from utils.studies import outputs

BUDGETS = ("epochs", "steps")
STEPS_CAP = 20          # budget="steps" trains at most this many times the recipe's epochs (a 5 % subset: the full run)
RESULT = "result"       # <run folder>/result.parquet: a finished retrain's numbers, readable without the model
BASELINES = ("random", "rs2")     # score-free baselines, run at every kept fraction < 1
RESERVED = ("full", *BASELINES)   # score names of the shared baselines in a study's table and folders
SUBSET = "subset"                 # the policy name of a fixed subset (e.g. clean: what the flags leave)
ENCODER_DIR = "encoder"           # <results>/encoder/: the self-supervised encoder of :func:`run` (its loop's history)
SCORES_DIR = "scores"             # <results>/<noise>/scores/: the score_dataset cache of each label-noise study


# ---------------------------------------------------------------------------------------------- retrain
def budget_recipe(recipe: Recipe, n_full: int, n_kept: int, budget: str = "epochs") -> Recipe:
    """The recipe a subset of ``n_kept`` of ``n_full`` samples trains with.

    ``"epochs"``: unchanged (fewer steps on fewer samples; the cost falls with the fraction). ``"steps"``:
    ``max_epochs`` scaled so the optimizer steps match the full-data run's, round(E * ceil(n_full / b) /
    ceil(n_kept / b)), at least E and at most ``STEPS_CAP`` * E (20x: a 5 % subset gets the full run's
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


def load_pool(config, root=None) -> tuple[Samples, Samples, object]:
    """``(pool, test, info)`` of a study's ``config`` (``dataset``, ``train_split``, ``test_split``, ``n``, and
    ``n_test`` where it has one): the training split, or a seeded subset of ``n`` of it (ids are the positions in
    the split), and the test split, or a seeded subset of ``n_test``; the pruning and labeling studies share it."""
    from utils.data.datasets import load_dataset

    x, y, info = load_dataset(config.dataset, config.train_split, root)
    ids = np.arange(len(y))
    if config.n is not None and config.n < len(y):
        rows = np.sort(np.random.default_rng(12345).permutation(len(y))[:config.n])
        x, y, ids = x[rows], y[rows], ids[rows]
    tx, ty, _ = load_dataset(config.dataset, config.test_split, root)
    n_test = getattr(config, "n_test", None)
    if n_test is not None and n_test < len(ty):
        rows = np.sort(np.random.default_rng(54321).permutation(len(ty))[:n_test])
        tx, ty = tx[rows], ty[rows]
    return Samples(x, y, ids), Samples(tx, ty, np.arange(len(ty))), info


def retrain(task, recipe: Recipe, data: Samples, kept_ids, *, test: Samples, seed: int, folder=None,
            budget: str = "epochs", per_epoch: int | None = None) -> dict:
    """Train a fresh ``task`` model on the samples of ``data`` whose ids are ``kept_ids``; measure ``test``.

    The kept samples train in id order through :func:`utils.engine.loop.train` (``record=False``) with
    :func:`budget_recipe`; the test set is measured once, after the last epoch (an eval pass over 10,000
    images takes ~2 s on one thread, ~15 % of a Fashion-MNIST epoch of the cnn, so not after every epoch). Returns
    ``{"test_acc", "test_loss", "train_acc", "epochs", "steps", "kept", "seconds", "cached"}``: final-epoch
    numbers, optimizer steps taken, wall seconds of training + evaluation, and whether it was read from
    ``folder``. With a ``folder`` the loop caches the model there and ``result.parquet`` keeps these numbers, a
    step of the one cache keyed by the kept samples' and the test set's full-content fingerprints and every
    setting: a later call with the same settings reads it (no training, no model load), one with other settings
    (other labels, another test set, another recipe) is refused. ``per_epoch`` = k: every epoch trains on k of the
    kept samples, a fresh slice each epoch (RS2, :func:`utils.engine.loop.train`'s ``epoch_size``); the budget
    counts k samples per epoch and ``kept`` reports k."""
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
    if per_epoch is not None and not (is_integer(per_epoch) and 1 <= per_epoch <= len(subset)):
        raise ValueError(f"per_epoch must be an integer in 1..{len(subset)} (the kept samples), got {per_epoch!r}.")
    n_epoch = int(per_epoch or len(subset))
    run_recipe = budget_recipe(recipe, len(data), n_epoch, budget)
    study = {"budget": budget, "full_samples": len(data), "base_max_epochs": recipe.max_epochs,
             "test": test.fingerprint(), **({"per_epoch": n_epoch} if per_epoch else {})}
    settings = {"task": task.settings(), "recipe": run_recipe.to_dict(), "seed": seed, "kept": subset.fingerprint(),
                "pruning": study}

    def compute():
        tic = time.perf_counter()
        was_finished = folder is not None and is_finished(folder)
        run = train(task, run_recipe, subset, seed=seed, folder=folder, record=False, settings={"pruning": study},
                    progress=False, epoch_size=per_epoch)
        net = run.model
        device = next(net.parameters()).device
        values = task.evaluate(net, task.prepare(test.images).to(device), test.labels.to(device))
        seconds = time.perf_counter() - tic + (float(run.history["seconds"].sum()) if was_finished else 0.0)
        epochs = len(run.history)
        return pd.DataFrame([{"test_acc": float(values["acc"].double().mean()),
                              "test_loss": float(values["loss"].double().mean()),
                              "train_acc": float(run.history["train_acc"].iloc[-1]), "epochs": epochs,
                              "steps": epochs * math.ceil(n_epoch / run_recipe.batch_size), "kept": n_epoch,
                              "seconds": seconds}])

    result = cache.step(None if folder is None else Path(folder), RESULT, settings, compute)
    return {**result.iloc[0].to_dict(), "cached": not result.attrs["fresh"]}


# ---------------------------------------------------------------------------------------------- study
def _fraction_name(fraction: float) -> str:
    return f"f{fraction:g}"


def pruning_study(data: Samples, test: Samples, scores: pd.DataFrame, *, fractions, policies_by_score: dict,
                  seeds, task, recipe: Recipe, folder, budget: str = "epochs", baselines=("random",),
                  subsets: dict | None = None, redundant: pd.Series | None = None, ccs_beta: float | None = None,
                  strata: int = 50, shard: tuple[int, int] = (0, 1), progress: bool = False) -> pd.DataFrame:
    """Select, retrain and measure every (score, policy, fraction, seed); one row per run.

    ``scores``: DataFrame indexed by sample id (covering ``data.ids``), columns oriented higher = harder.
    ``policies_by_score``: ``{column: (policy, ...)}``, policies of :data:`POLICIES` or ``dedup_<policy>`` (the
    policy after the ``redundant`` samples go first, :func:`select_after_dedup`). Fraction 1.0 (full data) runs
    once per seed, shared by all scores (score = policy = ``"full"``) when it is among ``fractions``; each of
    ``baselines`` runs once per fraction < 1 and seed, shared too (score = policy = its name): ``random`` (a static
    seeded draw) and ``rs2`` (all samples, a fresh random slice of the same size each epoch). ``subsets``:
    ``{name: sample ids}``, fixed subsets (e.g. ``clean``: what the flags leave) run once per seed (policy
    ``"subset"``, fraction = their share). ``ccs`` cuts ``ccs_beta`` (default :func:`default_beta` of the
    fraction). The selection seed is the training seed. Each run is cached in
    ``folder/<score>/<policy>/f<fraction>/seed<seed>/`` (:func:`retrain`), so a killed study resumes from its
    finished runs, also in a later process. ``shard=(i, m)`` runs only every m-th run from the i-th (start one
    process per core, each with ``torch.set_num_threads(1)``), returning those rows; a last call without it
    reads them all. ``progress`` prints one line per run trained.

    Columns: score, policy, fraction, seed, beta (NaN unless ccs), kept, test_acc, test_loss, train_acc,
    epochs, steps, seconds, cached."""
    fr, seeds = _check_study(data, scores, fractions, policies_by_score, seeds, baselines, subsets, redundant, shard,
                             recipe, budget)
    kept_subsets = _checked_subsets(subsets, data)
    folder = Path(folder)
    rows = []
    for i, (name, policy, fraction, seed) in enumerate(_plan(fr, seeds, baselines, kept_subsets, policies_by_score,
                                                             len(data))):
        if i % shard[1] != shard[0]:
            continue
        kept, beta, per_epoch = _kept_ids(name, policy, fraction, seed, data, scores, kept_subsets, redundant,
                                          ccs_beta, strata)
        where = folder / name / policy / (_fraction_name(fraction) if policy != SUBSET else "") / f"seed{seed}"
        out = retrain(task, recipe, data, kept, test=test, seed=seed, budget=budget, per_epoch=per_epoch,
                      folder=where)
        if progress and not out["cached"]:
            print(f"{name} {policy} f={fraction:g} seed {seed}: {out['kept']} kept, acc {out['test_acc']:.4f}, "
                  f"{out['epochs']} epochs, {out['seconds']:.0f} s", flush=True)
        rows.append({"score": name, "policy": policy, "fraction": fraction, "seed": seed, "beta": beta, **out})
    columns = ["score", "policy", "fraction", "seed", "beta", "kept", "test_acc", "test_loss", "train_acc", "epochs",
               "steps", "seconds", "cached"]
    return pd.DataFrame(rows, columns=columns)


def _plan(fr: list, seeds: list, baselines, kept_subsets: dict, policies_by_score: dict, n: int) -> list[tuple]:
    """Every run of a study as ``(score, policy, fraction, seed)``, in the order :func:`pruning_study` runs them:
    the full data, the baselines, the fixed subsets, then each score's policies (``random`` is the baseline's)."""
    plan = [("full", "full", 1.0, s) for s in seeds if 1.0 in fr]
    plan += [(b, b, f, s) for b in dict.fromkeys(baselines) for f in fr if f < 1 for s in seeds]
    plan += [(name, SUBSET, len(ids) / n, s) for name, ids in kept_subsets.items() for s in seeds]
    plan += [(name, p, f, s) for name, policies in policies_by_score.items() for p in dict.fromkeys(policies)
             if p != "random" for f in fr if f < 1 for s in seeds]
    return plan


def _kept_ids(name: str, policy: str, fraction: float, seed: int, data: Samples, scores: pd.DataFrame,
              kept_subsets: dict, redundant, ccs_beta, strata: int) -> tuple[np.ndarray, float, int | None]:
    """``(kept ids, beta, per_epoch)`` of one run of the plan: what it trains on, the CCS cut (NaN unless ccs) and,
    for ``rs2``, the samples per epoch (else None)."""
    if name == "full":
        return data.ids, np.nan, None
    if name == "random":
        return select(pd.Series(0.0, index=data.ids), fraction, "random", seed), np.nan, None
    if name == "rs2":
        return data.ids, np.nan, keep_count(fraction, len(data))
    if policy == SUBSET:
        return kept_subsets[name], np.nan, None
    column = scores[name].reindex(data.ids)
    base, beta = policy.removeprefix("dedup_"), np.nan
    if base == "ccs":
        beta = default_beta(fraction) if ccs_beta is None else ccs_beta
    kwargs = {"beta": beta, "strata": strata} if base == "ccs" else {}
    kept = (select_after_dedup(column, redundant.reindex(data.ids), fraction, base, seed, **kwargs)
            if policy.startswith("dedup_") else select(column, fraction, base, seed, **kwargs))
    return kept, beta, None


def _check_study(data: Samples, scores, fractions, policies_by_score: dict, seeds, baselines, subsets, redundant,
                 shard, recipe: Recipe, budget: str) -> tuple[list, list]:
    """The sorted kept fractions and the seeds of a study, its other arguments checked, or one sentence."""
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
    bad = [b for b in baselines if b not in BASELINES]
    if isinstance(baselines, str) or bad:
        raise ValueError(f"baselines must be a tuple of {', '.join(BASELINES)}, got {baselines!r}.")
    _check_names(scores, policies_by_score, dict(subsets or {}), redundant)
    if len(shard) != 2 or not 0 <= shard[0] < shard[1]:
        raise ValueError(f"shard must be (index, count) with 0 <= index < count, got {shard!r}.")
    budget_recipe(recipe, 1, 1, budget)  # validates budget before any run
    missing = pd.Index(data.ids).difference(scores.index)
    if len(missing):
        raise ValueError(f"scores lack {len(missing)} of the data's sample ids (e.g. {missing[0]}); score every "
                         "training sample.")
    return fr, seeds


def _check_names(scores: pd.DataFrame, policies_by_score: dict, subsets: dict, redundant) -> None:
    """Score and subset names that can name a results folder, each score a column with known policies."""
    for name in [*policies_by_score, *subsets]:
        if name in RESERVED or not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise ValueError(f"Score name {name!r} cannot name a results folder or is reserved "
                             f"({', '.join(RESERVED)}); rename the column.")
    for name, policies in policies_by_score.items():
        if name not in scores.columns:
            raise ValueError(f"policies_by_score names {name!r}, which is not a column of scores.")
        bad = [p for p in policies if p.removeprefix("dedup_") not in POLICIES]
        if isinstance(policies, str) or bad:
            raise ValueError(f"policies_by_score[{name!r}] must be a tuple of policies from {', '.join(POLICIES)} "
                             f"(or dedup_<policy>), got {policies!r}.")
        if any(p.startswith("dedup_") for p in policies) and redundant is None:
            raise ValueError(f"policies_by_score[{name!r}] asks for dedup_ policies; pass redundant= (a bool Series "
                             "by sample id, e.g. utils.scores.selection.semantic_duplicates).")
    overlap = set(subsets) & set(policies_by_score)
    if overlap:
        raise ValueError(f"{sorted(overlap)} name both a subset and a score; give the subset another name.")


def _checked_subsets(subsets: dict | None, data: Samples) -> dict[str, np.ndarray]:
    """``{name: sorted sample ids}`` of the fixed subsets, each checked to hold some of the data's ids."""
    kept_subsets = {}
    for name, ids in (subsets or {}).items():
        ids = np.sort(np.asarray(ids).reshape(-1))
        if len(ids) == 0 or pd.Index(ids).difference(data.ids).size:
            raise ValueError(f"subset {name!r} must hold some of the data's sample ids.")
        kept_subsets[name] = ids
    return kept_subsets


# ---------------------------------------------------------------------------------------------- summaries
def accuracy_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count of test accuracy per (score, policy, fraction), and the mean number kept."""
    _check_table(table)
    g = table.groupby(["score", "policy", "fraction"])
    out = g["test_acc"].agg(["mean", "std", "count"]).rename(columns=lambda c: f"acc_{c}" if c != "count" else "runs")
    return out.join(g["kept"].mean().rename("kept")).reset_index()


def smallest_fraction_within(table: pd.DataFrame, tolerance: float = 0.005) -> pd.DataFrame:
    """Per (score, policy): the smallest kept fraction < 1 whose mean test accuracy is within ``tolerance`` of
    the full-data mean (NaN if none), its accuracy, and for each baseline in the table (random, rs2) whether the
    pair beats it at every fraction < 1 it was run at (mean accuracy strictly above the baseline's; NA for the
    baseline itself and where the baseline did not run at a fraction), with the smallest margin."""
    _check_table(table)
    if not (is_number(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a non-negative accuracy difference, got {tolerance!r}.")
    s = accuracy_summary(table)
    full = s[s["policy"] == "full"]
    if full.empty:
        raise ValueError("The table has no full-data rows (policy 'full'); run the study with fraction 1.0.")
    full_acc = float(full["acc_mean"].iloc[0])
    present = [b for b in BASELINES if (s["policy"] == b).any()] or ["random"]
    base = {b: s[s["policy"] == b].set_index("fraction")["acc_mean"] for b in present}
    rows = []
    for (name, policy), g in s[(s["policy"] != "full") & (s["fraction"] < 1)].groupby(["score", "policy"]):
        ok = g[g["acc_mean"] >= full_acc - tolerance]
        smallest = ok.loc[ok["fraction"].idxmin()] if len(ok) else None
        row = {"score": name, "policy": policy, "full_acc": full_acc,
               "smallest_fraction": np.nan if smallest is None else float(smallest["fraction"]),
               "acc_at_smallest": np.nan if smallest is None else float(smallest["acc_mean"])}
        for b in present:
            margin = g.set_index("fraction")["acc_mean"] - base[b].reindex(g["fraction"]).to_numpy()
            itself = policy == b
            row[f"beats_{b}"] = pd.NA if itself or margin.isna().any() else bool((margin > 0).all())
            row[f"min_margin_vs_{b}"] = np.nan if itself else float(margin.min())
        rows.append(row)
    columns = ["score", "policy", "full_acc", "smallest_fraction", "acc_at_smallest",
               *[f"{k}_{b}" for b in present for k in ("beats", "min_margin_vs")]]
    out = pd.DataFrame(rows, columns=columns)
    for b in present:
        out[f"beats_{b}"] = out[f"beats_{b}"].astype("boolean")
    return out


def paired_tests(table: pd.DataFrame, baseline: str = "random") -> pd.DataFrame:
    """Each (score, policy, fraction < 1) against ``baseline`` at the same fraction, paired by seed (the same seed
    draws the same initial weights and batch order): mean and std of the paired accuracy differences, the paired
    t-test's two-sided p-value (``scipy.stats.ttest_rel``; NaN with fewer than 2 seeds or identical differences),
    and ``beyond_spread``: the mean difference is larger than the two seed spreads added (std of the pair + std of
    the baseline), i.e. the mean ± std bars do not overlap."""
    from scipy.stats import ttest_rel

    _check_table(table)
    base = table[table["policy"] == baseline].set_index(["fraction", "seed"])["test_acc"]
    rows = []
    others = table[(table["fraction"] < 1) & ~table["policy"].isin(["full", baseline])]
    for (name, policy, fraction), g in others.groupby(["score", "policy", "fraction"]):
        b = base.reindex(pd.MultiIndex.from_arrays([np.full(len(g), fraction), g["seed"].to_numpy()]))
        pair = ~np.isnan(b.to_numpy())
        if not pair.any():
            continue
        a, b = g["test_acc"].to_numpy()[pair], b.to_numpy()[pair]
        d = a - b
        p = float(ttest_rel(a, b).pvalue) if len(d) > 1 and np.ptp(d) > 0 else np.nan
        spread = (a.std(ddof=1) + b.std(ddof=1)) if len(d) > 1 else np.nan
        rows.append({"score": name, "policy": policy, "fraction": fraction, "baseline": baseline, "seeds": len(d),
                     "acc_mean": a.mean(), "baseline_mean": b.mean(), "diff_mean": d.mean(),
                     "diff_std": d.std(ddof=1) if len(d) > 1 else np.nan, "p_value": p,
                     "beyond_spread": bool(abs(d.mean()) > spread) if len(d) > 1 else False})
    return pd.DataFrame(rows, columns=["score", "policy", "fraction", "baseline", "seeds", "acc_mean",
                                       "baseline_mean", "diff_mean", "diff_std", "p_value", "beyond_spread"])


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
    return run_then_read(pruning_study, workers, data, test, scores, **kwargs)


# ---------------------------------------------------------------------------------------- study scores
# pruning-study name -> column of utils.scores.dataset.score_dataset (oriented by the registry: higher = harder)
STUDY_SCORES = {
    "el2n": "el2n", "forgetting": "forgetting_events", "aum": "aum", "cleanlab": "cl_label_quality",
    "ssft": "ssft_forgetting_time", "ae_loss": "ae_loss_mean", "prototype": "bt_prototype_distance",
    "knn_distance": "bt_knn_distance",
}


def study_scores(scored: pd.DataFrame) -> pd.DataFrame:
    """The pruning study's scores from a :func:`utils.scores.dataset.score_dataset` table, each oriented higher =
    harder (:func:`utils.scores.registry.oriented`), plus ``redundancy`` (:func:`dedup_order` on the pixel nearest
    neighbours; higher = more redundant). Scores the table lacks are left out. ``attrs["label_free"]`` lists the
    columns that used no label."""
    from utils.scores.registry import label_free, oriented

    o = oriented(scored)
    cols = {name: o[col] for name, col in STUDY_SCORES.items() if col in o.columns}
    out = pd.DataFrame(cols, index=scored.index)
    if {"px_nearest_id", "px_nn_distance"} <= set(scored.columns):
        out["redundancy"] = dedup_order(scored["px_nearest_id"].astype(np.int64), scored["px_nn_distance"])
    out.index.name = "sample_id"
    out.attrs["label_free"] = [n for n in out.columns if n == "redundancy" or label_free(STUDY_SCORES[n])]
    return out


def semantic_redundant(scored: pd.DataFrame, share: float) -> pd.Series:
    """SemDeDup's redundant samples in the self-supervised features of a score table: the ``share`` of all samples
    that :func:`utils.scores.selection.semantic_duplicates` marks on ``bt_nearest_id`` / ``bt_nn_distance``
    (``attrs["eps"]``: the cosine distance that share amounts to)."""
    need = {"bt_nearest_id", "bt_nn_distance"}
    if not need <= set(scored.columns):
        raise ValueError("the score table lacks bt_nearest_id / bt_nn_distance (the self-supervised family); score "
                         "with it, or delete an older scores_ssl.parquet written without bt_nearest_id.")
    return semantic_duplicates(scored["bt_nearest_id"].astype(np.int64), scored["bt_nn_distance"], share=share)


# ---------------------------------------------------------------------------------------------- the study
NOISE_KINDS = ("uniform_noise", "class_noise")   # utils.data.inject types: uniform flips, confusable-pair flips
NOISY_FAMILIES = ("pixels", "supervised", "self-supervised")   # what the clean subset needs under label noise
# four series fit the 150-minute goal on 2 cores (a fixed-iterations retrain of the CNN on 60,000 images: ~77 s)
DEFAULT_SERIES = {"el2n": ("ccs",), "ae_loss": ("ccs",), "prototype": ("dedup_sorscher",), "redundancy": ("keep_easy",)}
# the second budget's curve: the field's reference and the new label-free policy next to the baselines
DEFAULT_SECOND_SERIES = {"el2n": ("ccs",), "prototype": ("dedup_sorscher",)}


def _noise_name(noise) -> str:
    return "noise0" if noise is None else f"{noise[0].removesuffix('_noise')}{noise[1]:g}"


@dataclass(frozen=True)
class PruningConfig:
    """The pruning study of ``pruning/pruning-curves.ipynb``.

    ``n``: a seeded subset of the training split (None: all of it). ``budgets``: ``"steps"`` (fixed iterations:
    every subset trains for the full run's optimizer steps, as CCS and EL2N; the headline) and/or ``"epochs"``
    (fixed epochs, DeepCore's protocol: fewer steps on fewer samples). ``series``: ``{score: policies}`` retrained
    at every kept fraction < 1 under the first budget, ``second_series`` under the others (None: the same), next to
    ``baselines`` (static ``random``, ``rs2``) and the full data; ``clean`` (what the flags leave,
    :func:`utils.scores.flags.clean_keep`) runs as a fixed subset.
    ``noise``: ``((kind, share), ...)`` label-noise studies (kinds of :data:`NOISE_KINDS`), each retraining the
    full noisy set and its ``clean`` subset under the first budget. ``dedup_share``: the share of samples SemDeDup
    marks redundant for the ``dedup_`` policies (:func:`semantic_redundant`). ``scoring``: overrides of
    :class:`utils.scores.dataset.ScoringConfig`; ``families``: the families scored on the clean-label set."""

    dataset: str = "fashion-mnist"
    train_split: str = "train"
    test_split: str = "test"
    n: int | None = None
    fractions: tuple = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
    seeds: tuple = (0, 1, 2)
    budgets: tuple = ("steps", "epochs")
    series: dict = field(default_factory=lambda: dict(DEFAULT_SERIES))
    second_series: dict | None = field(default_factory=lambda: dict(DEFAULT_SECOND_SERIES))
    baselines: tuple = BASELINES
    noise: tuple = (("uniform_noise", 0.1), ("class_noise", 0.1))
    arch: str = "cnn"
    epochs: int = 3
    batch_size: int = 256
    lr: float = 0.1
    workers: int = 2
    scoring: dict = field(default_factory=dict)
    families: tuple = ("pixels", "supervised", "autoencoder", "self-supervised")
    encoder_epochs: int = 15
    encoder_pool_size: int = 10000
    dedup_share: float = 0.2

    def __post_init__(self):
        for name in ("fractions", "seeds", "budgets", "baselines", "families"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "noise", tuple((str(k), float(f)) for k, f in self.noise))
        object.__setattr__(self, "series", {k: tuple(v) for k, v in dict(self.series).items()})
        if self.second_series is not None:
            object.__setattr__(self, "second_series", {k: tuple(v) for k, v in dict(self.second_series).items()})
        every = {**self.series, **(self.second_series or {})}
        bad = [p for ps in every.values() for p in ps if p.removeprefix("dedup_") not in POLICIES]
        if bad:
            raise ValueError(f"Unknown policies {bad}: choose from {', '.join(POLICIES)} (or dedup_<policy>).")
        unknown = [s for s in every if s not in (*STUDY_SCORES, "redundancy")]
        if unknown:
            raise ValueError(f"Unknown study scores {unknown}: choose from {', '.join([*STUDY_SCORES, 'redundancy'])}.")
        if not self.budgets or any(b not in BUDGETS for b in self.budgets):
            raise ValueError(f"budgets must be some of {', '.join(BUDGETS)}, got {self.budgets!r}.")
        if any(b not in BASELINES for b in self.baselines):
            raise ValueError(f"baselines must be some of {', '.join(BASELINES)}, got {self.baselines!r}.")
        if any(k not in NOISE_KINDS or not 0 < f < 1 for k, f in self.noise):
            raise ValueError(f"noise must be (kind, share) pairs with kind in {', '.join(NOISE_KINDS)} and share in "
                             f"(0, 1), got {self.noise!r}.")
        if 1.0 not in self.fractions:
            raise ValueError("fractions must include 1.0: every curve is read against the full data.")

    def to_dict(self) -> dict:
        return asdict(self)


def run(config: PruningConfig, results, root=None, progress: bool = False) -> pd.DataFrame:
    """Score the training set (once per label-noise study) and retrain on every (score, policy, fraction, seed) of
    every budget; one row per retrain (:func:`pruning_study`) with ``noise`` (the flipped share), ``noise_kind``
    ("none" or the injection), ``budget``, ``dataset`` and ``label_free`` added. Everything is cached under
    ``results``: the encoder, ``<noise>/scores/`` and ``<noise>/<budget>/<score>/...`` (``<noise>``: ``noise0``,
    ``uniform0.1``, ``class0.1``); a killed study resumes."""
    import torch

    from utils.data.inject import from_arrays, inject
    from utils.engine.recipes import get_recipe
    from utils.engine.tasks import make_task
    from utils.scores.dataset import ScoringConfig, score_dataset
    from utils.scores.families import train_encoder
    from utils.scores.flags import clean_keep

    results = Path(results)
    pool, test, info = load_pool(config, root)
    x, y, ids = pool.images, pool.labels, pool.ids
    task = make_task(config.arch, info)
    recipe = get_recipe("paper", max_epochs=config.epochs, patience=None, batch_size=config.batch_size, lr=config.lr)
    encoder = None
    if config.encoder_epochs:
        pool = x[torch.from_numpy(np.random.default_rng(0).permutation(len(x))[:config.encoder_pool_size])]
        encoder = train_encoder(pool, info, config.encoder_epochs, seed=0, folder=results / ENCODER_DIR)
    tables, free = [], set()
    for noise in (None, *config.noise):
        data = from_arrays(x, y, ids, name=config.dataset)
        if noise is not None:
            data = inject(data, noise[0], noise[1], seed=0)
        folder = results / _noise_name(noise)
        families = config.families if noise is None else NOISY_FAMILIES
        scoring = ScoringConfig.tier("thorough", **config.scoring)   # every family, as the scoreboard
        scored = score_dataset(data.images, data.labels, data.ids, info=info, config=scoring,
                               folder=folder / SCORES_DIR, encoder=encoder, families=families, progress=progress)
        scores = study_scores(scored)
        free |= set(scores.attrs["label_free"])
        second = config.series if config.second_series is None else config.second_series
        dedup = any(p.startswith("dedup_") for ps in (*config.series.values(), *second.values()) for p in ps)
        redundant = semantic_redundant(scored, config.dedup_share) if dedup and noise is None else None
        clean = {"clean": scored.index[clean_keep(scored, policy="datalab").to_numpy()].to_numpy()}
        for i, budget in enumerate(config.budgets if noise is None else config.budgets[:1]):
            wanted = config.series if i == 0 else second
            series = {k: v for k, v in wanted.items() if k in scores.columns} if noise is None else {}
            table = parallel_study(data, test, scores, fractions=config.fractions if noise is None else (1.0,),
                                   policies_by_score=series, seeds=config.seeds, task=task, recipe=recipe,
                                   folder=folder / budget, budget=budget, workers=config.workers,
                                   baselines=config.baselines if noise is None else (), subsets=clean,
                                   redundant=redundant)
            tables.append(table.assign(noise=0.0 if noise is None else noise[1],
                                       noise_kind="none" if noise is None else noise[0], budget=budget,
                                       dataset=config.dataset))
    table = pd.concat(tables, ignore_index=True)
    table["label_free"] = table["score"].isin(free) & ~table["policy"].eq(SUBSET)
    return table


def load(results) -> dict:
    """The study's published tables in ``results`` (its tables folder, e.g. ``results/prune/pruning``): ``table``,
    ``summary``, ``within``, ``paired`` and ``goals`` (the notebook's CSVs), ``run`` (the notebook execution: its
    wall time; {} where not written), ``settings`` (what one cached full-data retrain was keyed by: task, recipe;
    {} where none), ``scoring_seconds`` (summed over the cached scoring steps) and ``pretrain_seconds`` (the
    encoder's training, 0 without one)."""
    results = Path(results)
    table, summary, within, paired, goal_table = (pd.read_csv(results / name) for name in (
        outputs.PRUNING_TABLE, outputs.PRUNING_SUMMARY, outputs.PRUNING_WITHIN, outputs.PRUNING_PAIRED,
        outputs.PRUNING_GOALS))
    run_file = results / outputs.PRUNING_RUN
    first = next(iter(sorted(results.glob(f"*/*/full/full/{_fraction_name(1.0)}/seed*/{RESULT}.json"))), None)
    encoder = results / ENCODER_DIR / "history.csv"   # the loop's per-epoch history of the encoder
    return {"table": table, "summary": summary, "within": within, "paired": paired, "goals": goal_table,
            "run": json.loads(run_file.read_text()) if run_file.is_file() else {},
            "settings": json.loads(first.read_text())["settings"] if first is not None else {},
            "scoring_seconds": sum(json.loads(f.read_text())["seconds"]
                                   for f in results.glob(f"*/{SCORES_DIR}/scores_*.json")),
            "pretrain_seconds": float(pd.read_csv(encoder)["seconds"].sum()) if encoder.is_file() else 0.0}


def _pm(values: pd.Series) -> str:
    """mean ± std (std only with two or more values)."""
    return f"{values.mean():.4f}" + (f" ± {values.std():.4f}" if len(values) > 1 else "")


def goals(table: pd.DataFrame, tolerance: float = 0.005, headline: str = "steps") -> pd.DataFrame:
    """The study's goals, each measured on ``table`` (:func:`run`'s): one row per goal with ``met`` (True/False,
    NA when the table cannot tell) and the numbers behind it.

    1. under the ``headline`` budget, at 0 % noise, a label-free (score, policy) keeps <= 50 % within
       ``tolerance`` of full-data accuracy and beats both random and RS2 at every kept fraction;
    2. at 10 % kept, some (score, policy) beats random by >= 2 pt (headline budget, 0 % noise);
    3. per label-noise study: ``clean`` recovers at least half of the accuracy the noise costs, i.e.
       clean - noisy full >= (clean-label full - noisy full) / 2."""
    rows = []
    head = table[(table["budget"] == headline) & (table["noise_kind"] == "none")]
    if len(head):
        within = smallest_fraction_within(head, tolerance)
        free = set(head.loc[head["label_free"], "score"])
        w = within[within["score"].isin(free)]
        ok = (w["smallest_fraction"] <= 0.5) & w.get("beats_random", pd.Series(False, index=w.index)).fillna(False) \
            & w.get("beats_rs2", pd.Series(True, index=w.index)).fillna(False)
        best = w.sort_values(["smallest_fraction", "min_margin_vs_random"], ascending=[True, False]).head(1)
        what = "none" if best.empty else (f"closest: {best.score.iloc[0]}/{best.policy.iloc[0]}, smallest fraction "
                                          f"within: {best.smallest_fraction.iloc[0]:g}, smallest margin vs random "
                                          f"{best.min_margin_vs_random.iloc[0]:+.4f}")
        rows.append({"goal": f"label-free <= 50 % within {tolerance * 100:g} pt, beats random and RS2 everywhere "
                             f"({headline})", "met": bool(ok.any()),
                     "detail": ("met by " + ", ".join(f"{r.score}/{r.policy}" for r in w[ok].itertuples()))
                     if ok.any() else what})
        s = accuracy_summary(head)
        at = s[np.isclose(s["fraction"], 0.1)]
        rand = at.loc[at["policy"] == "random", "acc_mean"]
        others = at[~at["policy"].isin(BASELINES)]
        goal = f"at 10 % kept, some policy beats random by >= 2 pt ({headline})"
        if len(rand) and len(others):
            top = others.loc[others["acc_mean"].idxmax()]
            margin = float(top["acc_mean"] - rand.iloc[0])
            rows.append({"goal": goal, "met": margin >= 0.02, "detail": f"best {top.score}/{top.policy} "
                         f"{top.acc_mean:.4f} vs random {rand.iloc[0]:.4f} ({margin * 100:+.2f} pt)"})
        else:
            rows.append({"goal": goal, "met": pd.NA, "detail": "not measured: 0.1 is not among the kept fractions"})
    full0 = table[(table["noise_kind"] == "none") & (table["policy"] == "full") & (table["budget"] == headline)]
    for kind, g in table[table["noise_kind"] != "none"].groupby("noise_kind", sort=False):
        noisy = g.loc[g["policy"] == "full", "test_acc"]
        clean = g.loc[(g["score"] == "clean") & (g["policy"] == SUBSET), "test_acc"]
        if not (len(noisy) and len(clean) and len(full0)):
            continue
        cost = float(full0["test_acc"].mean() - noisy.mean())
        gain = float(clean.mean() - noisy.mean())
        rows.append({"goal": f"{kind} {g['noise'].iloc[0]:.0%}: clean recovers >= half of what the noise costs",
                     "met": cost > 0 and gain >= cost / 2,
                     "detail": f"clean-label full {full0['test_acc'].mean():.4f}, noisy full {_pm(noisy)}, clean "
                               f"{_pm(clean)}: recovers {gain / cost:.0%} of {cost * 100:.2f} pt" if cost > 0 else
                               f"the noise costs nothing here ({cost * 100:+.2f} pt)"})
    return pd.DataFrame(rows, columns=["goal", "met", "detail"])
