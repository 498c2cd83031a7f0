"""Keep a fraction of a dataset by any per-sample score: the selection rules of score-based pruning.

Every score enters oriented: a pandas Series indexed by sample id, HIGHER = HARDER (the caller flips scores
whose suspicious end is low, e.g. AUM or SSFT, with :func:`utils.scores.registry.oriented`). :func:`select` turns a
score, a kept fraction f and a policy into the sample ids kept:

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
* ``sorscher`` — Sorscher et al.'s rule as one policy: ``keep_easy`` when keeping at most ``SORSCHER_SWITCH`` =
  30 % (scarce data), ``keep_hard`` above it (abundant data). The paper derives the switch from the ratio of data
  to model capacity; 30 % is our fixed heuristic, not a tuned value.

:func:`select_after_dedup` applies any policy after removing redundant samples first (SemDeDup, Abbas et al.
2023: drop semantic near-duplicates, then prune by a score): the redundant ones are only kept when the budget
exceeds the rest. :func:`semantic_duplicates` marks them from an embedding's nearest-neighbour pairs, cut by a
cosine distance or by a share of the samples.

Conventions:

* Counting: ``k = max(1, floor(f * N + 1/2))`` samples are kept (round half up on the decimal value of f,
  :func:`utils.data.inject.exact_count`; 0.15 of 10 keeps 2); ``beta`` cuts ``floor(beta * N + 1/2)`` the same way.
* Ties: samples are first sorted by id (so the input order never matters), then ties in the score are broken
  by a permutation drawn from ``seed`` and the policy's name, never by id order (ids may carry meaning, e.g.
  appended near-duplicates get the largest ids). Same inputs, same seed -> same ids.
* :func:`dedup_order` turns a nearest-neighbour table (:func:`utils.scores.geometry.embedding_scores`) into a
  redundancy score whose top holds exactly one member of each near-duplicate pair (use it with ``keep_easy``); the
  member kept is the smallest sample id, the one rule of :func:`utils.scores.flags.duplicate_keepers` (so an
  appended copy, with the larger id, is the one dropped).

The retraining study on top of these rules is :mod:`utils.studies.pruning`.
"""
from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from utils.data.inject import exact_count
from utils.metrics.checks import check_positive_int, check_seed, is_number

POLICIES = ("keep_hard", "keep_easy", "random", "ccs", "sorscher")
SORSCHER_SWITCH = 0.3   # sorscher: keep easy at kept fractions <= this, hard above


def keep_count(fraction: float, n: int) -> int:
    """Samples kept of ``n`` at ``fraction``: max(1, floor(fraction * n + 1/2)); fraction must lie in (0, 1]."""
    if not is_number(fraction) or not 0 < fraction <= 1:
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
    return np.random.default_rng([check_seed(seed), zlib.crc32(stream.encode())])


def _resolve(policy: str, fraction: float) -> str:
    """``sorscher`` -> ``keep_easy`` at kept fractions <= ``SORSCHER_SWITCH``, ``keep_hard`` above; others as given."""
    if policy != "sorscher":
        return policy
    keep_count(fraction, 1)
    return "keep_easy" if fraction <= SORSCHER_SWITCH else "keep_hard"


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
    policy = _resolve(policy, fraction)
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
    if not is_number(beta) or not 0 <= beta < 1:
        raise ValueError(f"beta must be a number in [0, 1) (the share of hardest samples cut), got {beta!r}.")
    check_positive_int(strata, "strata")
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
def dedup_order(nearest_id: pd.Series, nn_distance: pd.Series) -> pd.Series:
    """Redundancy score for near-duplicate removal: HIGHER = MORE REDUNDANT, prune it first (use ``keep_easy``).

    ``nearest_id`` names each sample's nearest other sample and ``nn_distance`` the distance to it (both
    indexed by sample id, e.g. the columns of :func:`utils.scores.geometry.embedding_scores`). Following every
    sample to its nearest neighbour gives a graph in which each connected group ends in one cycle, almost
    always a mutual pair (A's nearest is B and B's is A; longer cycles only come from exact ties). The member of
    each cycle that :func:`utils.scores.flags.duplicate_keepers` keeps (the smallest sample id: the rule of
    ``duplicates.csv`` and :func:`utils.scores.flags.clean_keep`) is the group's *keeper*; every other sample is
    *redundant* with respect to its nearest neighbour. The score puts all redundant samples above all keepers,
    each group ordered by closeness: redundant samples in (0.5, 1], keepers in (0, 0.5), the closest neighbour
    scoring highest (ranks of -distance, ties averaged, so select's seeded tie-break applies). Dropping the top K
    therefore removes one copy of each of the K closest duplicate pairs and never both members of a pair before
    every non-keeper is gone. Only the single nearest neighbour is known, so a third near-copy is removed only as
    the neighbour of a sample, not as a member of a cluster (a triple whose smallest id hangs off the cycle may
    keep another copy than ``duplicates.csv``; a pair always keeps the same one). ``attrs`` holds the number of
    keepers.
    """
    from utils.scores.flags import duplicate_keepers

    for name, s in (("nearest_id", nearest_id), ("nn_distance", nn_distance)):
        if not isinstance(s, pd.Series) or not pd.api.types.is_integer_dtype(s.index.dtype) or not s.index.is_unique:
            raise ValueError(f"{name} must be a pandas Series indexed by unique integer sample ids.")
    if set(nearest_id.index) != set(nn_distance.index):
        raise ValueError("nearest_id and nn_distance must cover the same sample ids (take both from one "
                         "embedding_scores table).")
    ids, d = _check_scores(nn_distance)
    index = pd.Index(ids)
    nxt = index.get_indexer(nearest_id.reindex(ids).to_numpy())
    if (nxt < 0).any():
        raise ValueError(f"nearest_id names {int((nxt < 0).sum())} ids that are not among the samples; compute the "
                         "neighbours on the same samples.")
    if (nxt == np.arange(len(ids))).any():
        raise ValueError("nearest_id names a sample as its own nearest neighbour; exclude self from the kNN.")
    cycle_of = np.full(len(ids), -1, dtype=np.int64)   # the cycle a sample lies on, -1 off every cycle
    state = np.zeros(len(ids), dtype=np.int8)   # 0 unseen, 1 on the current path, 2 done
    for start in range(len(ids)):
        path, v = [], start
        while state[v] == 0:
            state[v] = 1
            path.append(v)
            v = nxt[v]
        if state[v] == 1:                       # closed a new cycle
            cycle_of[path[path.index(v):]] = cycle_of.max() + 1
        state[path] = 2
    keeper = (cycle_of >= 0) & duplicate_keepers(pd.Series(cycle_of, index=ids)).to_numpy()
    closeness = pd.Series(-d)
    out = np.empty(len(ids))
    for group, low in ((keeper, 0.0), (~keeper, 0.5)):
        if group.any():
            ranks = closeness[group].rank(method="average").to_numpy()
            out[group] = low + 0.5 * (ranks - 0.5) / group.sum()
    result = pd.Series(out, index=index.rename("sample_id"), name="redundancy")
    result.attrs.update(keepers=int(keeper.sum()), direction="higher = more redundant (drop first: keep_easy)")
    return result


def select_after_dedup(scores: pd.Series, redundant: pd.Series, fraction: float, policy: str, seed: int = 0,
                       **kwargs) -> np.ndarray:
    """Sample ids kept at ``fraction`` (of all samples) when the ``redundant`` ones (bool Series by sample id, e.g.
    :func:`semantic_duplicates`) go first: ``policy`` (:func:`select`, with ``kwargs``) picks the k samples among
    the others; if fewer than k are left, all of them are kept and ``policy`` picks the rest among the redundant.
    ``sorscher`` switches on the overall fraction, not on the share of the pool."""
    ids, _ = _check_scores(scores)
    if not isinstance(redundant, pd.Series) or not pd.api.types.is_bool_dtype(redundant.dtype) \
            or set(redundant.index) != set(ids):
        raise ValueError("redundant must be a bool Series indexed by the same sample ids as scores.")
    policy = _resolve(policy, fraction)   # on the overall fraction, before the pool changes it
    k = keep_count(fraction, len(ids))
    pool = redundant.index[~redundant.to_numpy()]
    extra = redundant.index[redundant.to_numpy()]
    if k <= len(pool):
        return select(scores.loc[pool], k / len(pool), policy, seed, **kwargs) if k < len(pool) \
            else np.sort(pool.to_numpy().astype(np.int64))
    rest = select(scores.loc[extra], (k - len(pool)) / len(extra), policy, seed, **kwargs)
    return np.sort(np.concatenate([pool.to_numpy().astype(np.int64), rest]))


def semantic_duplicates(nearest_id: pd.Series, nn_distance: pd.Series, eps: float | None = None,
                        share: float | None = None) -> pd.Series:
    """SemDeDup's redundant samples from one embedding's nearest-neighbour table (unit-norm features): the samples
    that :func:`dedup_order` does not pick as the keeper of their group (so one member of every group of close pairs
    stays), closest to their neighbour first, cut by exactly one of

    * ``eps`` — a cosine distance: redundant when the nearest neighbour is closer than cosine similarity ``1 - eps``
      (Euclidean distance ``sqrt(2 eps)`` on the unit sphere);
    * ``share`` — a fraction of all samples: the ``exact_count(share, N)`` closest non-keepers (fewer if there are
      fewer), i.e. the ``eps`` that removes that share (SemDeDup picks its eps for a target removal rate this way).

    Abbas et al. search neighbours within k-means clusters and keep the member farthest from the centroid; here the
    global nearest neighbour and the smallest id keeps. Returns a bool Series by sample id, in the order of
    ``nn_distance``; ``attrs["eps"]`` is the given ``eps``, or for a ``share`` the cosine distance of the last sample
    it marks (0 when none)."""
    if (eps is None) == (share is None):
        raise ValueError("give exactly one of eps (a cosine distance) or share (a fraction of the samples).")
    if eps is not None and not (is_number(eps) and 0 <= eps <= 2):
        raise ValueError(f"eps must be a cosine distance in [0, 2], got {eps!r}.")
    if share is not None and not (is_number(share) and 0 <= share < 1):
        raise ValueError(f"dedup share must be a fraction in [0, 1), got {share!r}.")
    order = dedup_order(nearest_id, nn_distance)
    candidates = nn_distance.reindex(order.index)[order > 0.5].sort_values(kind="stable")
    if eps is not None:
        k = int((candidates < np.sqrt(2 * eps)).sum())   # sorted: the ones closer than eps are a prefix
    else:
        k = min(exact_count(share, len(order)), len(candidates))
        eps = float(candidates.iloc[k - 1]) ** 2 / 2 if k else 0.0   # unit sphere: cos = 1 - d^2 / 2
    out = pd.Series(False, index=nn_distance.index, name="semantic_duplicate")
    out.loc[candidates.index[:k]] = True
    out.attrs["eps"] = eps
    return out
