"""Choose what to label: label-free selection of a labeling budget from an unlabeled pool.

Every selector takes an embedding of the pool (one row per sample id, no label) and a budget ``b`` (a count of
images to label) and returns a :func:`picks` table: one row per chosen sample in pick order, with its cluster and
why it was chosen. The methods, as the field describes them (``shared/reference/label-free-selection.md``):

* :func:`typiclust` — TypiClust (Hacohen, Dekel & Weinshall, ICML 2022; avihu111/TypiClust
  ``deep-al/pycls/al/typiclust.py``): k-means with K = b clusters (no cap: the reference caps K at 500, which at
  larger budgets picks the 2nd, 3rd ... point of each cluster), then one pick per cluster, the most *typical*
  point: typicality = 1 / (mean Euclidean distance to its min(20, n_c / 2) nearest in-cluster neighbours + 1e-5)
  (the reference takes faiss' squared distances; the order within a cluster differs only where the spread of
  neighbour distances differs). Clusters are visited largest first; clusters of at most 5 points only after every
  larger cluster has given a pick, as the reference drops them.
* :func:`probcover` — ProbCover (Yehuda et al., NeurIPS 2022; same repository, ``prob_cover.py``): greedy maximum
  coverage of delta-balls on L2-normalised features; delta is the largest value of a grid whose balls are pure
  (all points share one k-means pseudo-label) for at least ``alpha`` = 95 % of the points (scikit-activeml's
  rule). Balls are cut at the :data:`BALL_CAP` nearest neighbours so the graph stays linear in N (a ball that
  reaches the cap counts as impure, so delta stays where balls are small). Once every point is covered the
  remaining picks are cluster-balanced random (the reference draws plain random points).
* :func:`balanced_random` — a seeded random draw with per-cluster quotas proportional to the cluster sizes
  (:func:`quotas`): the baseline that removes the class imbalance of a small random draw.
* :func:`double_end` — ELFS (Zheng et al., ICLR 2025; eltsai/elfs ``train.py``, budget mode): with a difficulty
  score from training dynamics on *pseudo*-labels (e.g. AUM, oriented higher = harder), drop the hardest ``beta``
  share and keep the next band, here inside each cluster with proportional quotas (Sorscher et al.: balance is
  essential). :func:`elfs_beta` is the label-free rule for beta: a fixed function of the kept share, set from the
  betas the ELFS and CCS READMEs use before any experiment here.
* :func:`select_to_label` — the shipped, budget-aware selector: it picks the regime by labels per cluster
  (:data:`REGIMES`) and falls back to cluster-balanced random wherever the study in ``labeling/`` measured no gain.

Budgets are counts; :func:`budget_count` reads ``"300"`` or ``"5%"``. Ties are broken by a seeded permutation,
never by id order; the input order of the rows never matters (rows are sorted by id first).
"""
from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from utils.metrics.checks import check_seed, is_number

PICK_COLUMNS = ("order", "sample_id", "cluster", "method", "why")
BALL_CAP = 100          # probcover: a ball holds at most this many nearest neighbours
DELTA_GRID = tuple(np.round(np.arange(0.05, 1.41, 0.05), 2))   # probcover's delta candidates on the unit sphere
MIN_CLUSTER = 5         # typiclust: clusters of at most this many points are visited last


# ---------------------------------------------------------------------------------------------- inputs
def budget_count(budget, n: int) -> int:
    """A budget as a count of samples: an integer ``1..n``, or a share as ``"5%"`` / a float in (0, 1)."""
    if isinstance(budget, str):
        text = budget.strip()
        try:
            value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"budget {budget!r} is neither a count (e.g. 300) nor a percentage (e.g. 5%).") from None
        if text.endswith("%"):    # a share, whatever its value: "100%" is every image (was 1), "200%" refused
            if not 0 < value <= 1:
                raise ValueError(f"a budget percentage must lie in (0, 100], got {budget!r}.")
            budget = int(np.floor(value * n + 0.5))
        else:
            budget = value if not value.is_integer() else int(value)
    if not is_number(budget):
        raise ValueError(f"budget must be a count or a share, got {budget!r}.")
    if isinstance(budget, (float, np.floating)) and not float(budget).is_integer():
        if not 0 < budget < 1:
            raise ValueError(f"a budget share must lie in (0, 1) (or give a count), got {budget!r}.")
        count = int(np.floor(budget * n + 0.5))
    else:
        count = int(budget)
    if not 1 <= count <= n:
        raise ValueError(f"a budget of {count} images is impossible with {n} in the pool; choose 1..{n}.")
    return count


def _rng(seed, stream: str) -> np.random.Generator:
    return np.random.default_rng([check_seed(seed), zlib.crc32(stream.encode())])


def _embedding(z, ids) -> tuple[np.ndarray, np.ndarray]:
    """(rows sorted by id, ids sorted) of an embedding, or one sentence saying why not."""
    x = np.asarray(z, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"the embedding must be [N >= 2, D], got shape {list(x.shape)}.")
    if not np.isfinite(x).all():
        raise ValueError("the embedding holds NaN or infinite values; embed the images again or drop those rows.")
    ids = np.arange(len(x), dtype=np.int64) if ids is None else np.asarray(ids).reshape(-1)
    if len(ids) != len(x) or not np.issubdtype(ids.dtype, np.integer) or len(np.unique(ids)) != len(ids):
        raise ValueError(f"ids must be {len(x)} unique integers, one per embedding row.")
    order = np.argsort(ids, kind="stable")
    return x[order], ids[order].astype(np.int64)


def unit(z: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    return z / np.where(norms == 0, 1.0, norms)


def selection_space(z, dims: int = 64, normalize: bool = True, seed: int = 0) -> np.ndarray:
    """The space the selectors measure in: rows L2-normalised (``normalize``; the cosine geometry TypiClust and
    ProbCover use on self-supervised features), then PCA to ``dims`` dimensions (exact distances cost O(D), and
    k-means with thousands of clusters on 1,600-d features would dominate the selection time)."""
    from sklearn.decomposition import PCA

    x = np.asarray(z, dtype=np.float64)
    x = unit(x) if normalize else x
    d = int(min(dims, x.shape[1], len(x) - 1))
    return x if d >= x.shape[1] else PCA(d, random_state=seed).fit_transform(x)


def kmeans(z: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means cluster of every row: scikit-learn ``KMeans`` (3 restarts) up to 50 clusters, ``MiniBatchKMeans``
    (batches of 4,096, one k-means++ start) above, as the TypiClust reference does (it uses 5,000)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    k = int(min(k, len(z)))
    with threadpool_limits(limits=1, user_api="openmp"):
        if k <= 50:
            return KMeans(k, n_init=3, random_state=seed).fit_predict(z).astype(np.int64)
        return MiniBatchKMeans(k, batch_size=4096, n_init=1, random_state=seed).fit_predict(z).astype(np.int64)


def quotas(sizes, budget: int) -> np.ndarray:
    """Per-group counts proportional to ``sizes`` that add up to ``budget`` (largest remainder, ties to the larger
    group, then the lower index), never above a group's size.

    >>> quotas([50, 30, 20], 10).tolist()
    [5, 3, 2]
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if not 0 <= budget <= sizes.sum():
        raise ValueError(f"budget must lie in 0..{sizes.sum()}, got {budget}.")
    exact = budget * sizes / max(sizes.sum(), 1)
    out = np.minimum(np.floor(exact).astype(np.int64), sizes)
    while out.sum() < budget:
        room = out < sizes
        gain = np.where(room, exact - out, -np.inf)
        order = np.lexsort((np.arange(len(sizes)), -sizes, -gain))
        take = order[:int(budget - out.sum())]
        out[take[room[take]]] += 1
    return out


def picks(ids, clusters, method: str, why) -> pd.DataFrame:
    """The selectors' table: one row per chosen sample in pick order (``order`` from 0)."""
    ids = np.asarray(ids, dtype=np.int64)
    why = [why] * len(ids) if isinstance(why, str) else list(why)
    return pd.DataFrame({"order": np.arange(len(ids)), "sample_id": ids,
                         "cluster": np.asarray(clusters, dtype=np.int64), "method": method, "why": why})


# ---------------------------------------------------------------------------------------------- typicality
def typicality(z: np.ndarray, k: int = 20) -> np.ndarray:
    """1 / (mean Euclidean distance to the k nearest other rows + 1e-5), k = min(k, N // 2), 0 for one row."""
    from utils.metrics.lid import knn

    n = len(z)
    kk = min(int(k), n // 2)
    if kk < 1:
        return np.zeros(n)
    dist, _ = knn(z, kk, n_jobs=1, backend="sklearn")
    return 1.0 / (dist.mean(1) + 1e-5)


def typiclust(z, budget: int, ids=None, seed: int = 0, k: int = 20, clusters: np.ndarray | None = None) -> pd.DataFrame:
    """TypiClust's picks of ``budget`` samples (module docstring); ``clusters`` replaces its k-means (K = budget)."""
    x, ids = _embedding(z, ids)
    b = budget_count(budget, len(x))
    labels = kmeans(x, b, seed) if clusters is None else np.asarray(clusters, dtype=np.int64)
    typ = np.zeros(len(x))
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        typ[rows] = typicality(x[rows], k)
    sizes = np.bincount(labels)
    tie = _rng(seed, "typiclust").permutation(len(x))
    rank_in = np.empty(len(x), dtype=np.int64)          # 0 = the most typical point of its cluster
    by = np.lexsort((tie, -typ, labels))
    starts = np.r_[0, np.cumsum(np.bincount(labels[by], minlength=sizes.size))[:-1]]
    rank_in[by] = np.arange(len(x)) - starts[labels[by]]
    cluster_rank = np.empty(sizes.size, dtype=np.int64)
    cluster_rank[np.lexsort((np.arange(sizes.size), -sizes))] = np.arange(sizes.size)
    small = sizes[labels] <= MIN_CLUSTER
    order = np.lexsort((cluster_rank[labels], rank_in, small))[:b]
    why = [f"most typical of cluster {c} ({sizes[c]} images)" if r == 0 else
           f"{r + 1}. most typical of cluster {c} ({sizes[c]} images)" for c, r in zip(labels[order], rank_in[order])]
    return picks(ids[order], labels[order], "typiclust", why)


# ---------------------------------------------------------------------------------------------- coverage
def ball_graph(z: np.ndarray, cap: int = BALL_CAP):
    """(distances [N, m], indices [N, m]) of every row's ``cap`` nearest other rows (m = min(cap, N - 1)),
    on L2-normalised rows: the delta-balls of :func:`probcover` are their prefixes below delta."""
    from utils.metrics.lid import knn

    return knn(unit(z), int(min(cap, len(z) - 1)))


def purity(graph, pseudo: np.ndarray, delta: float) -> float:
    """Share of points whose delta-ball (within the capped graph) holds only their own pseudo-label; a ball that
    fills the whole cap is counted impure (it may reach beyond it)."""
    dist, idx = graph
    inside = dist < delta
    mixed = (inside & (pseudo[idx] != pseudo[:, None])).any(1) | inside[:, -1]
    return float(1.0 - mixed.mean())


def choose_delta(graph, pseudo: np.ndarray, alpha: float = 0.95, grid=DELTA_GRID) -> float:
    """The largest delta of ``grid`` whose purity is at least ``alpha`` (the smallest of the grid if none is)."""
    ok = [d for d in grid if purity(graph, pseudo, d) >= alpha]
    return float(max(ok) if ok else min(grid))


def probcover(z, budget: int, ids=None, seed: int = 0, delta: float | None = None, alpha: float = 0.95,
              n_pseudo: int = 10, graph=None) -> pd.DataFrame:
    """ProbCover's greedy max-coverage picks (module docstring). ``delta``: the ball radius on the unit sphere
    (``None``: :func:`choose_delta` with k-means(``n_pseudo``) pseudo-labels); ``attrs["delta"]`` reports it."""
    from scipy.sparse import csr_matrix

    x, ids = _embedding(z, ids)
    n = len(x)
    b = budget_count(budget, n)
    pseudo = kmeans(unit(x), n_pseudo, seed)
    dist, idx = ball_graph(x) if graph is None else graph
    delta = choose_delta((dist, idx), pseudo, alpha) if delta is None else float(delta)
    inside = dist < delta
    rows = np.repeat(np.arange(n), inside.sum(1))
    balls = csr_matrix((np.ones(len(rows) + n, dtype=np.int8),
                        (np.r_[rows, np.arange(n)], np.r_[idx[inside], np.arange(n)])), shape=(n, n))
    holders = balls.T.tocsr()                   # row j: the points whose ball covers j
    degree = np.asarray(balls.sum(1)).ravel().astype(np.int64)
    covered = np.zeros(n, dtype=bool)
    chosen = np.zeros(n, dtype=bool)
    tie = _rng(seed, "probcover").permutation(n)
    order, why = [], []
    while len(order) < b and degree.max() > 0:
        best = np.flatnonzero(degree == degree.max())
        i = int(best[np.argmin(tie[best])])
        new = balls.indices[balls.indptr[i]:balls.indptr[i + 1]]
        new = new[~covered[new]]
        covered[new] = True
        chosen[i] = True
        np.subtract.at(degree, np.concatenate([holders.indices[holders.indptr[j]:holders.indptr[j + 1]] for j in new]),
                       1)
        order.append(i)
        why.append(f"covers {len(new)} uncovered images within {delta:g}")
    if len(order) < b:                           # everything covered: cluster-balanced random for the rest
        rest = np.flatnonzero(~chosen)
        fill = balanced_random(x[rest], b - len(order), ids=ids[rest], seed=seed, clusters=pseudo[rest])
        order += list(rest[np.searchsorted(ids[rest], fill["sample_id"].to_numpy())])
        why += ["pool fully covered: balanced random fill"] * len(fill)
    order = np.asarray(order, dtype=np.int64)
    out = picks(ids[order], pseudo[order], "probcover", why)
    out.attrs.update(delta=delta, coverage=float(covered.mean()))
    return out


# ---------------------------------------------------------------------------------------------- quotas
def _by_cluster(clusters: np.ndarray, budget: int, pick_within, seed: int, stream: str):
    """Rows chosen with proportional per-cluster quotas; ``pick_within(rows, q, rng)`` picks q of ``rows``."""
    rng = _rng(seed, stream)
    values = np.unique(clusters)
    q = quotas([int((clusters == c).sum()) for c in values], budget)
    chosen = [pick_within(np.flatnonzero(clusters == c), int(k), rng) for c, k in zip(values, q) if k]
    rows = np.concatenate(chosen)
    return rows[rng.permutation(len(rows))]     # an interleaved order, not cluster by cluster


def random_draw(ids, budget, seed: int = 0, clusters: np.ndarray | None = None) -> pd.DataFrame:
    """A seeded uniform random draw of ``budget`` of ``ids`` (the study's ``random`` baseline, and what
    :func:`select_to_label` ships where no selector beat it); ``clusters``: each id's cluster, for the report."""
    ids = np.asarray(ids)
    b = budget_count(budget, len(ids))
    rows = _rng(seed, "random").permutation(len(ids))[:b]
    groups = np.full(len(ids), -1, dtype=np.int64) if clusters is None else np.asarray(clusters, dtype=np.int64)
    return picks(ids[rows], groups[rows], "random", "random")


def balanced_random(z, budget: int, ids=None, seed: int = 0, clusters: np.ndarray | None = None,
                    n_clusters: int = 10) -> pd.DataFrame:
    """A seeded random draw with per-cluster quotas proportional to the sizes of ``clusters`` (default:
    k-means(``n_clusters``) of the embedding)."""
    x, ids = _embedding(z, ids)
    b = budget_count(budget, len(x))
    labels = kmeans(unit(x), n_clusters, seed) if clusters is None else np.asarray(clusters, dtype=np.int64)
    rows = _by_cluster(labels, b, lambda r, k, rng: rng.choice(r, size=k, replace=False), seed, "balanced")
    return picks(ids[rows], labels[rows], "balanced_random", "random within its cluster's quota")


def elfs_beta(fraction: float) -> float:
    """The share of the hardest samples :func:`double_end` drops, label-free: a fixed function of the kept share f,
    max(0, (0.7 - f) / 2) (0.3 at 10 % as ELFS and CCS use on CIFAR-10 at 90 % pruning, 0.25 at 20 %, 0.2 at
    30 %, 0.1 at 50 %, none from 70 % on); it never asks for more than 1 - f, so the band always fits."""
    from utils.scores.selection import default_beta

    return default_beta(fraction)


def double_end(hardness: pd.Series, clusters: pd.Series, budget: int, beta: float | None = None,
               seed: int = 0) -> pd.DataFrame:
    """ELFS's double-end selection inside each cluster: sort the cluster by ``hardness`` (higher = harder), drop
    the hardest ``beta`` share of it, keep the next ``q_c`` (its proportional quota; :func:`quotas`); where fewer
    than q_c are left after the cut, the band moves toward the hard end. ``beta=None``: :func:`elfs_beta`."""
    ids = np.sort(hardness.index.to_numpy().astype(np.int64))
    h = hardness.reindex(ids).to_numpy(dtype=np.float64)
    labels = clusters.reindex(ids).to_numpy()
    if np.isnan(h).any() or pd.isna(labels).any():
        raise ValueError("hardness and clusters must cover the same sample ids, without NaN.")
    labels = labels.astype(np.int64)
    b = budget_count(budget, len(ids))
    beta = elfs_beta(b / len(ids)) if beta is None else float(beta)
    if not 0 <= beta < 1:
        raise ValueError(f"beta must lie in [0, 1), got {beta!r}.")
    tie = _rng(seed, "double_end").permutation(len(ids))

    def band(rows, k, rng):
        hardest_first = rows[np.lexsort((tie[rows], -h[rows]))]
        start = min(int(np.floor(beta * len(rows) + 0.5)), len(rows) - k)
        return hardest_first[start:start + k]

    rows = _by_cluster(labels, b, band, seed, "double_end")
    out = picks(ids[rows], labels[rows], "elfs", f"in the band after the hardest {beta:.0%} of its cluster")
    out.attrs["beta"] = beta
    return out


# ---------------------------------------------------------------------------------------------- the product
# labels per cluster (budget / clusters) -> method, from the study in labeling/ (its README's table, Fashion-MNIST,
# paired seeds): TypiClust beat random at the budgets it ran, 60 to 1,200 labels (6 to 120 per cluster); above that
# no label-free selector beat random beyond the seed spread, cluster-balanced random included (it was below random at
# 3,000 and 30,000), so the product draws uniformly at random there: no regret by construction
REGIMES = ((120, "typiclust"), (float("inf"), "random"))


def regime(budget: int, n_clusters: int, regimes=REGIMES) -> str:
    """The method :func:`select_to_label` uses at ``budget`` labels for ``n_clusters`` clusters."""
    per = budget / n_clusters
    return next(method for upto, method in regimes if per <= upto)


def select_to_label(z, budget, ids=None, *, seed: int = 0, n_clusters: int = 10, hardness: pd.Series | None = None,
                    method: str | None = None, dims: int = 64) -> pd.DataFrame:
    """The images to label first: :func:`picks` of ``budget`` (a count or ``"5%"``) from the embedding ``z`` of an
    unlabeled pool (e.g. self-supervised features; :func:`selection_space` is applied).

    ``method``: ``None`` picks by labels per cluster (:func:`regime`, :data:`REGIMES`, set from the study in
    ``labeling/``: TypiClust where it beat random, a uniform random draw where nothing did), or one of
    ``typiclust``, ``probcover``, ``balanced_random``, ``random``, ``elfs`` (the last needs ``hardness``: pseudo-label training
    dynamics oriented higher = harder, e.g. :func:`utils.scores.families.pseudo_label_dynamics`). Every row carries
    its k-means(``n_clusters``) cluster (what the report groups by) and why it was chosen."""
    x, ids = _embedding(z, ids)
    b = budget_count(budget, len(x))
    space = selection_space(x, dims=dims, seed=seed)
    chosen = method or regime(b, n_clusters)
    groups = kmeans(unit(space), n_clusters, seed)
    if chosen == "typiclust":
        out = typiclust(space, b, ids, seed)
    elif chosen == "probcover":
        out = probcover(space, b, ids, seed, n_pseudo=n_clusters)
    elif chosen == "balanced_random":
        out = balanced_random(space, b, ids, seed, clusters=groups)
    elif chosen == "random":
        out = random_draw(ids, b, seed, clusters=groups)
    elif chosen == "elfs":
        if hardness is None:
            raise ValueError("method='elfs' needs hardness= (pseudo-label training dynamics by sample id).")
        out = double_end(hardness, pd.Series(groups, index=ids), b, seed=seed)
    else:
        raise ValueError(f"Unknown method {chosen!r}: choose typiclust, probcover, balanced_random, random or elfs.")
    out["cluster"] = pd.Series(groups, index=ids).reindex(out["sample_id"]).to_numpy()
    out.attrs.update(method=chosen, budget=b, n_clusters=n_clusters)
    return out
