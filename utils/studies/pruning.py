"""Shrink a training set by any per-sample score, retrain a fresh classifier on what is kept, measure what it loses.

Every score enters oriented: a pandas Series indexed by sample id, HIGHER = HARDER (the caller flips scores
whose suspicious end is low, e.g. AUM or SSFT). :func:`select` turns a score, a kept fraction f and a policy
into the sample ids kept:

* ``keep_hard`` — keep the ``k`` highest scores, i.e. prune the easiest first. The classic score-based
  pruning: EL2N / GraNd (Paul, Ganguli & Dziugaite, NeurIPS 2021: half of CIFAR-10 pruned by early EL2N at no
  loss), forgetting events (Toneva et al., ICLR 2019: drop the unforgettable), and Sorscher et al.'s rule
  for abundant data ("Beyond neural scaling laws", NeurIPS 2022: keep hard examples when much is kept).
* ``keep_easy`` — keep the ``k`` lowest scores, i.e. prune the hardest first: Sorscher et al.'s rule for
  scarce data (keep easy examples when little is kept), and what removing suspected mislabeled samples
  (high loss, low AUM, early SSFT) amounts to.
* ``random`` — a seeded uniform draw that ignores the score values: the baseline every score must beat.
  Score-based pruning is known to fall below it at high pruning rates (CCS, Sorscher et al.). With one
  seed the subsets of different fractions are nested (prefixes of one permutation).
* ``ccs`` — Coverage-centric coreset selection (Zheng, Liu, Lai & Prakash, ICLR 2023;
  github.com/haizhongzheng/Coverage-centric-coreset-selection, ``CoresetSelection.mislabel_mask`` and
  ``stratified_sampling``): drop the hardest ``beta`` fraction of all N samples (likely mislabeled), split the
  remaining score range into ``strata`` equal-width bins (50 as in the reference code), give the bins a budget
  by visiting the non-empty ones from the smallest to the largest, each taking min(its size, floor(remaining
  budget / remaining bins)) (:func:`allocate_strata`; the largest bins absorb the remainder, so the total is
  exact), and draw each bin's share uniformly at random. Unlike the reference code, the hard cut uses the
  same score as the strata (the reference always cuts by AUM) and the last bin is closed on the right (the
  reference's ``max * 1.0001`` edge misses the maximum of an all-negative score).
  The reference tunes ``beta`` per pruning rate (its README runs CIFAR-10 at 90 % pruning with
  ``--mis-ratio 0.3``); :func:`default_beta` is our heuristic for when the caller does not choose.

Conventions:

* Counting: ``k = max(1, floor(f * N + 1/2))`` samples are kept (round half up on the decimal value of f,
  :func:`utils.data.inject.exact_count`; 0.15 of 10 keeps 2); ``beta`` cuts ``floor(beta * N + 1/2)`` the same way.
* Ties: samples are first sorted by id (so the input order never matters), then ties in the score are broken
  by a permutation drawn from ``seed`` and the policy's name, never by id order (ids may carry meaning, e.g.
  appended near-duplicates get the largest ids). Same inputs, same seed -> same ids.
* :func:`dedup_order` turns a nearest-neighbour table (:func:`utils.scores.geometry.embedding_scores`) into a
  redundancy score whose top holds exactly one member of each near-duplicate pair (use it with ``keep_easy``).

:func:`retrain` trains a fresh model on the kept ids through the one loop (:func:`utils.engine.loop.train`, no
per-sample records) and measures the test set once after the last epoch; :func:`pruning_study` runs every
(score, policy, fraction, seed), each cached in its own folder, and returns a long table; :func:`summary`
and :func:`smallest_fraction_within` condense it.
"""
from __future__ import annotations

import json
import math
import time
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from utils.data.inject import exact_count
from utils.data.samples import Samples
from utils.engine.loop import is_finished, train
from utils.engine.recipes import Recipe

POLICIES = ("keep_hard", "keep_easy", "random", "ccs")
BUDGETS = ("epochs", "steps")
STEPS_CAP = 10          # budget="steps" trains at most this many times the recipe's epochs
RESULT = "result.json"  # a finished retrain's numbers, readable without loading the model
RESERVED = ("random", "full")  # score names of the shared baselines in a study's table and folders


# ---------------------------------------------------------------------------------------------- selection
def keep_count(fraction: float, n: int) -> int:
    """Samples kept of ``n`` at ``fraction``: max(1, floor(fraction * n + 1/2)); fraction must lie in (0, 1]."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.integer, np.floating)) \
            or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1] (the share of samples kept), got {fraction!r}.")
    return max(1, exact_count(float(fraction), n))


def default_beta(fraction: float) -> float:
    """CCS hard-cut ratio when the caller does not choose one: max(0, (0.7 - fraction) / 2).

    A heuristic, not a tuned value: no cut while 70 % or more is kept (the coreset is then nearly the
    whole range anyway), then 0.05 more per 0.1 less kept: 0.1 at f = 0.5, 0.2 at 0.3, 0.25 at 0.2 and 0.3
    at 0.1, the value the CCS README uses for CIFAR-10 at 90 % pruning, at most 0.35 as f -> 0. It always
    leaves at least 65 % of the samples to sample from, so it never conflicts with the budget. The paper
    tunes beta per dataset and rate; with a known noise rate, a beta just above it is the natural choice."""
    keep_count(fraction, 1)  # validation
    return round(max(0.0, 0.5 * (0.7 - float(fraction))), 12)


def allocate_strata(sizes, budget: int) -> np.ndarray:
    """CCS budget per stratum: visit non-empty strata from the smallest to the largest, each taking
    min(its size, floor(remaining budget / remaining strata)). Exact whenever budget <= sum(sizes).

    >>> allocate_strata([1, 5, 10, 2], 10).tolist()
    [1, 3, 4, 2]
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if sizes.ndim != 1 or (sizes < 0).any():
        raise ValueError(f"sizes must be a flat array of non-negative counts, got {sizes!r}.")
    if not 0 <= budget <= sizes.sum():
        raise ValueError(f"budget must lie in 0..{sizes.sum()} (the samples in all strata), got {budget}.")
    out = np.zeros_like(sizes)
    order = [i for i in np.argsort(sizes, kind="stable") if sizes[i] > 0]
    rest = int(budget)
    for j, i in enumerate(order):
        out[i] = min(int(sizes[i]), rest // (len(order) - j))
        rest -= int(out[i])
    assert rest == 0, "allocate_strata left budget unassigned"  # impossible when budget <= sum(sizes)
    return out


def _check_scores(scores) -> tuple[np.ndarray, np.ndarray]:
    """(ids sorted, values in that order) of an oriented score Series, or one sentence saying why not."""
    if not isinstance(scores, pd.Series):
        raise ValueError(f"scores must be a pandas Series indexed by sample id, got {type(scores).__name__}.")
    if len(scores) == 0:
        raise ValueError("scores is empty; give one score per sample id.")
    if not pd.api.types.is_integer_dtype(scores.index.dtype):
        raise ValueError(f"scores must be indexed by integer sample ids, got an index of {scores.index.dtype}.")
    if not scores.index.is_unique:
        raise ValueError("scores has repeated sample ids; give every sample one score.")
    if not pd.api.types.is_numeric_dtype(scores.dtype) or pd.api.types.is_bool_dtype(scores.dtype):
        raise ValueError(f"scores must be numbers, got dtype {scores.dtype}.")
    s = scores.sort_index()
    values = s.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(f"scores hold {int(bad.sum())} NaN or infinite values (e.g. sample id {s.index[bad][0]}); "
                         "drop those samples or fill them before selecting.")
    return s.index.to_numpy().astype(np.int64), values


def _rng(seed, stream: str) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 32:
        raise ValueError(f"seed must be an integer in 0..2**32-1, got {seed!r}.")
    return np.random.default_rng([int(seed), zlib.crc32(stream.encode())])


def select(scores: pd.Series, fraction: float, policy: str, seed: int = 0, *, beta: float | None = 0.0,
           strata: int = 50) -> np.ndarray:
    """Sample ids (sorted, int64) kept at ``fraction`` by ``policy``; see the module docstring.

    ``scores``: Series indexed by sample id, higher = harder, finite. ``beta`` (``ccs`` only): share of all
    samples cut from the hard end before stratified sampling; ``None`` uses :func:`default_beta`. ``strata``:
    number of equal-width score bins of ``ccs``.

    >>> s = pd.Series([0.1, 0.9, 0.5, 0.7], index=[10, 11, 12, 13])
    >>> select(s, 0.5, "keep_hard").tolist()
    [11, 13]
    """
    if policy not in POLICIES:
        raise ValueError(f"Unknown policy {policy!r}: choose one of {', '.join(POLICIES)}.")
    ids, values = _check_scores(scores)
    n = len(ids)
    k = keep_count(fraction, n)
    rng = _rng(seed, policy)
    if policy != "ccs" and beta not in (0, 0.0, None):
        raise ValueError(f"beta (the hard cut) belongs to the ccs policy, not {policy!r}; leave it at 0.")
    if policy == "random":
        return np.sort(ids[rng.permutation(n)[:k]])
    ascending = np.lexsort((rng.permutation(n), values))  # by score, ties by the seeded permutation
    if policy == "keep_hard":
        return np.sort(ids[ascending[n - k:]])
    if policy == "keep_easy":
        return np.sort(ids[ascending[:k]])

    beta = default_beta(fraction) if beta is None else beta
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.integer, np.floating)) or not 0 <= beta < 1:
        raise ValueError(f"beta must be a number in [0, 1) (the share of hardest samples cut), got {beta!r}.")
    if isinstance(strata, bool) or not isinstance(strata, (int, np.integer)) or strata < 1:
        raise ValueError(f"strata must be a positive integer, got {strata!r}.")
    cut = exact_count(float(beta), n)
    if n - cut < k:
        raise ValueError(f"ccs with beta={beta} cuts the {cut} hardest of {n} samples, leaving {n - cut}, fewer than "
                         f"the {k} to keep at fraction {fraction}; lower beta or keep a smaller fraction.")
    pool = ascending[:n - cut]                     # positions left after the hard cut
    v = values[pool]
    lo, width = v.min(), (v.max() - v.min()) / strata
    bins = np.zeros(len(pool), dtype=np.int64) if width == 0 else \
        np.minimum(((v - lo) / width).astype(np.int64), strata - 1)
    budgets = allocate_strata(np.bincount(bins, minlength=strata), k)
    kept = [rng.choice(np.sort(pool[bins == b]), size=budgets[b], replace=False)
            for b in np.flatnonzero(budgets)]
    return np.sort(ids[np.concatenate(kept)])


# ---------------------------------------------------------------------------------------------- redundancy
def dedup_order(nearest_id: pd.Series, duplicate_score: pd.Series, seed: int = 0) -> pd.Series:
    """Redundancy score for near-duplicate removal: HIGHER = MORE REDUNDANT, prune it first (use ``keep_easy``).

    ``nearest_id`` names each sample's nearest other sample and ``duplicate_score`` the distance to it (both
    indexed by sample id, e.g. the columns of :func:`utils.scores.geometry.embedding_scores`). Following every
    sample to its nearest neighbour gives a graph in which each connected group ends in one cycle, almost
    always a mutual pair (A's nearest is B and B's is A; longer cycles only come from exact ties). A seeded
    coin picks one member of each cycle as the group's *keeper*; every other sample is *redundant* with
    respect to its nearest neighbour. The score puts all redundant samples above all keepers, each group ordered
    by closeness: redundant samples in (0.5, 1], keepers in (0, 0.5), the closest neighbour scoring highest
    (ranks of -distance, ties averaged, so select's seeded tie-break applies). Dropping the top K therefore
    removes one copy of each of the K closest duplicate pairs and never both members of a pair before every
    non-keeper is gone. Only the single nearest neighbour is known, so a third near-copy is removed only as the
    neighbour of a sample, not as a member of a cluster. ``attrs`` holds the seed and the number of keepers.
    """
    for name, s in (("nearest_id", nearest_id), ("duplicate_score", duplicate_score)):
        if not isinstance(s, pd.Series) or not pd.api.types.is_integer_dtype(s.index.dtype) or not s.index.is_unique:
            raise ValueError(f"{name} must be a pandas Series indexed by unique integer sample ids.")
    if set(nearest_id.index) != set(duplicate_score.index):
        raise ValueError("nearest_id and duplicate_score must cover the same sample ids (take both from one "
                         "embedding_scores table).")
    ids, d = _check_scores(duplicate_score)
    index = pd.Index(ids)
    nxt = index.get_indexer(nearest_id.reindex(ids).to_numpy())
    if (nxt < 0).any():
        raise ValueError(f"nearest_id names {int((nxt < 0).sum())} ids that are not among the samples; compute the "
                         "neighbours on the same samples.")
    if (nxt == np.arange(len(ids))).any():
        raise ValueError("nearest_id names a sample as its own nearest neighbour; exclude self from the kNN.")
    rng = _rng(seed, "dedup")
    keeper = np.zeros(len(ids), dtype=bool)
    state = np.zeros(len(ids), dtype=np.int8)   # 0 unseen, 1 on the current path, 2 done
    for start in range(len(ids)):
        path, v = [], start
        while state[v] == 0:
            state[v] = 1
            path.append(v)
            v = nxt[v]
        if state[v] == 1:                       # closed a new cycle: one coin for its keeper
            cycle = np.sort(path[path.index(v):])
            keeper[rng.choice(cycle)] = True
        state[path] = 2
    closeness = pd.Series(-d)
    out = np.empty(len(ids))
    for group, low in ((keeper, 0.0), (~keeper, 0.5)):
        if group.any():
            ranks = closeness[group].rank(method="average").to_numpy()
            out[group] = low + 0.5 * (ranks - 0.5) / group.sum()
    result = pd.Series(out, index=index.rename("sample_id"), name="redundancy")
    result.attrs.update(seed=int(seed), keepers=int(keeper.sum()),
                        direction="higher = more redundant (drop first: keep_easy)")
    return result


# ---------------------------------------------------------------------------------------------- retrain
def _labels_hash(s: Samples) -> int | None:
    if s.labels is None:
        return None
    return int(pd.util.hash_pandas_object(pd.Series(s.labels.numpy(), index=s.ids)).sum() % (2 ** 61))


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
    ``folder``. With a ``folder`` the loop caches the model there and ``result.json`` keeps these numbers with
    the settings; a later call with the same settings reads the json (no training, no model load), one with
    other settings (including other labels or another test set) is refused."""
    if not isinstance(data, Samples) or not isinstance(test, Samples):
        raise ValueError("data and test must be utils.engine.loop.Samples.")
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
             "labels_hash": _labels_hash(subset), "test": {**test.fingerprint(), "labels_hash": _labels_hash(test)}}
    expected = json.loads(json.dumps({"task": task.settings(), "recipe": run_recipe.to_dict(), "seed": seed,
                                      **subset.fingerprint(), "pruning": study}))
    folder = Path(folder) if folder is not None else None
    if folder is not None and (folder / RESULT).is_file():
        saved = json.loads((folder / RESULT).read_text())
        if saved["settings"] != expected:
            diff = sorted(k for k in set(saved["settings"]) | set(expected)
                          if saved["settings"].get(k) != expected.get(k))
            raise ValueError(f"{folder} holds a retrain with other settings ({', '.join(diff)}); pick a new results "
                             "folder or delete that one to start over.")
        return {**saved["result"], "cached": True}

    tic = time.perf_counter()
    was_finished = folder is not None and is_finished(folder)
    run = train(task, run_recipe, subset, seed=seed, folder=folder, record=False, settings={"pruning": study},
                progress=False)
    net = run.model
    device = next(net.parameters()).device
    values = task.evaluate(net, task.prepare(test.images).to(device), test.labels.to(device))
    seconds = time.perf_counter() - tic + (float(run.history["seconds"].sum()) if was_finished else 0.0)
    epochs = len(run.history)
    result = {"test_acc": float(values["acc"].double().mean()), "test_loss": float(values["loss"].double().mean()),
              "train_acc": float(run.history["train_acc"].iloc[-1]), "epochs": epochs,
              "steps": epochs * math.ceil(len(subset) / run_recipe.batch_size), "kept": len(subset),
              "seconds": seconds}
    if folder is not None:
        tmp = folder / (RESULT + ".tmp")
        tmp.write_text(json.dumps({"settings": expected, "result": result}, indent=1))
        tmp.replace(folder / RESULT)
    return {**result, "cached": False}


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
def _shard_worker(kwargs: dict) -> int:
    import torch
    torch.set_num_threads(1)
    return len(pruning_study(**kwargs))


def parallel_study(data: Samples, test: Samples, scores: pd.DataFrame, *, workers: int = 2, **kwargs) -> pd.DataFrame:
    """:func:`pruning_study` split over ``workers`` processes of one thread each (``shard=(i, workers)``), then
    read back in one table. On 2 cores, two one-thread processes train about 1.8x the runs of one two-thread
    process per minute (small models do not split well across threads). ``workers=1`` runs in this process."""
    if workers <= 1:
        return pruning_study(data, test, scores, **kwargs)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    kwargs = {k: v for k, v in kwargs.items() if k != "shard"}
    jobs = [dict(data=data, test=test, scores=scores, shard=(i, workers), **kwargs) for i in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(_shard_worker, jobs))
    return pruning_study(data, test, scores, **kwargs)


# ---------------------------------------------------------------------------------------- study scores
# pruning-study name -> column of utils.scores.dataset.score_dataset (oriented there: higher = harder)
STUDY_SCORES = {
    "el2n": "el2n", "forgetting": "forgetting_events", "aum": "aum", "cleanlab": "cl_label_quality",
    "ssft": "ssft_forgetting_time", "ae_loss": "ae_loss_mean", "prototype": "bt_prototype_distance",
    "knn_density": "bt_knn_density",
}


def study_scores(scored: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The pruning study's scores from a :func:`utils.scores.dataset.score_dataset` table, each oriented higher =
    harder (:func:`utils.scores.dataset.oriented`), plus ``redundancy`` (:func:`dedup_order` on the pixel nearest
    neighbours; higher = more redundant). Scores the table lacks are left out. ``attrs["label_free"]`` lists the
    columns that used no label."""
    from utils.scores.dataset import LABEL_FREE, family, oriented

    o = oriented(scored)
    cols = {name: o[col] for name, col in STUDY_SCORES.items() if col in o.columns}
    out = pd.DataFrame(cols, index=scored.index)
    if {"px_nearest_id", "px_duplicate_score"} <= set(scored.columns):
        out["redundancy"] = dedup_order(scored["px_nearest_id"].astype(np.int64), scored["px_duplicate_score"], seed)
    out.index.name = "sample_id"
    out.attrs["label_free"] = [n for n in out.columns
                               if n == "redundancy" or family(STUDY_SCORES[n]) in LABEL_FREE]
    return out
