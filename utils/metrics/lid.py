"""Local intrinsic dimensionality (LID) of every point from one exact kNN pass.

`knn` runs scikit-learn's exact Euclidean search once (self excluded); `lid_mle` turns its distances
into the Levina-Bickel maximum-likelihood estimate, identical to scikit-dimension's
``MLE().fit_transform_pw`` (which normalises by k-1), but vectorised. One kNN pass can feed LID at
several k and other neighbourhood scores.

Two exact backends give the same neighbours (tested): scikit-learn ``NearestNeighbors`` and FAISS
``IndexFlatL2`` (``faiss-cpu``). Both search for k + a few candidates (FAISS in float32 on squared distances,
scikit-learn's brute force with the ``|x|^2 - 2 x.y + |y|^2`` expansion, which leaves ~1e-7 where the distance is
0); the candidates are re-measured here in float64 as ``sqrt(sum((x - y)^2))`` and re-sorted (ties by index), so
both backends give the same distances, and an exact copy sits at distance exactly 0. Byte-identical rows are
found up front (one sort of the rows): a row's exact copies are its first neighbours, in index order, whatever
the search returned among the tied candidates, so copies are neighbours of each other in every backend.
``backend="auto"`` takes FAISS from :data:`FAISS_FROM` points on when it is installed (``make benchmark``
measures both side by side; chunked torch matmul + topk was 2-8x slower than either).
"""
from __future__ import annotations

import numpy as np
import torch

from utils.metrics.checks import is_integer

ESTIMATORS = ("mle", "tle")


FAISS_FROM = 40_000     # backend="auto": FAISS from here on; below it scikit-learn was as fast or faster (make benchmark)
BACKENDS = ("auto", "sklearn", "faiss")


def knn(X, k: int, n_jobs: int | None = None, algorithm: str = "auto", backend: str = "auto"):
    """Exact Euclidean k nearest neighbours of every row of ``X`` ``[N, D]`` among the others.

    Returns ``(distances [N, k] float64, indices [N, k] int64)``, sorted by distance, **not squared**.
    The point itself is excluded by index, so an exact duplicate appears as a neighbour at distance exactly 0, in
    every backend; a row's byte-identical copies come first, in index order, and other ties are broken by index.
    ``backend``: "sklearn" (``NearestNeighbors``; ``algorithm`` 'auto' picks a kd-tree for D <= 15, brute force
    above), "faiss" (``IndexFlatL2``, distances re-measured in float64), or "auto" (FAISS from
    :data:`FAISS_FROM` points when installed, else scikit-learn). ``n_jobs``: threads (None: all cores).
    """
    X = _as_points(X, "X")
    n = len(X)
    if not is_integer(k) or not 1 <= k < n:
        raise ValueError(f"k={k!r} neighbours is impossible with {n} points; pass an integer in [1, {n - 1}].")
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is unknown; pass one of {', '.join(BACKENDS)}.")
    if backend == "auto":
        backend = "faiss" if n >= FAISS_FROM and faiss_available() else "sklearn"
    if backend == "faiss":
        return _knn_faiss(X, int(k), n_jobs)
    from sklearn.neighbors import NearestNeighbors

    c = min(n - 1, int(k) + MARGIN)
    nn = NearestNeighbors(n_neighbors=c, algorithm=algorithm, n_jobs=n_jobs).fit(X)
    _, cand = nn.kneighbors()          # self excluded by scikit-learn
    return _remeasure(X, cand.astype(np.int64, copy=False), np.zeros(cand.shape, dtype=bool), int(k))


MARGIN = 4   # extra candidates per row, re-measured exactly: they absorb float32 / expansion rounding at the k-th


def _remeasure(X: np.ndarray, cand: np.ndarray, bad: np.ndarray, k: int):
    """Float64 distances of the candidates ``cand`` [N, c] (``bad`` ones: self or missing, dropped), sorted with
    ties by index, the first ``k`` kept; a row's byte-identical copies first (distance 0, index order)."""
    n = len(X)
    rows = np.arange(n)[:, None]
    cand = np.where(bad, rows, cand)
    dist = np.empty(cand.shape, dtype=np.float64)
    block = max(1, 2 ** 24 // max(1, cand.shape[1] * X.shape[1]))   # float64 block of about 128 MB
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        diff = X[cand[lo:hi]].astype(np.float64) - X[lo:hi, None, :].astype(np.float64)
        dist[lo:hi] = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    dist[bad] = np.inf
    order = np.lexsort((cand, dist), axis=1)
    dist = np.take_along_axis(dist, order, axis=1)[:, :k]
    idx = np.take_along_axis(cand, order, axis=1)[:, :k]
    groups = exact_copies(X)
    label = np.full(n, -1, dtype=np.int64)
    for g, group in enumerate(groups):
        label[group] = g
    for group in groups:               # copies first, in index order, then the nearest others found
        head = group[:k + 1]
        for i in group:
            copies = head[head != i][:k]
            others = label[idx[i]] != label[i]
            idx[i] = np.r_[copies, idx[i][others]][:k]
            dist[i] = np.r_[np.zeros(len(copies)), dist[i][others]][:k]
    return dist, idx


def exact_copies(X) -> list[np.ndarray]:
    """The groups (>= 2 rows, ascending row numbers) of byte-identical rows of ``X`` [N, D] (-0.0 counts as 0.0)."""
    X = np.ascontiguousarray(np.asarray(X) + 0) if np.asarray(X).dtype.kind == "f" else np.ascontiguousarray(X)
    if len(X) < 2 or X.shape[1] == 0:
        return [np.arange(len(X))] if len(X) >= 2 else []
    rows = X.view(np.dtype((np.void, X.dtype.itemsize * X.shape[1]))).reshape(-1)
    order = np.argsort(rows, kind="stable")
    same = rows[order[1:]] == rows[order[:-1]]
    if not same.any():
        return []
    starts = np.flatnonzero(np.r_[True, ~same])
    return [np.sort(g) for g in np.split(order, starts[1:]) if len(g) > 1]


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _knn_faiss(X: np.ndarray, k: int, n_jobs: int | None, margin: int = MARGIN):
    """FAISS exact search for ``k + 1 + margin`` candidates in float32, then the candidates' distances in float64,
    self dropped by index, sorted (ties by index), the first ``k`` kept. The margin absorbs float32 rounding at
    the k-th neighbour; an exact copy of a point can rank before the point itself, hence self by index."""
    try:
        import faiss
    except ImportError:
        raise ValueError("backend='faiss' needs the faiss-cpu package; pip install faiss-cpu, "
                         "or pass backend='sklearn'.") from None
    n = len(X)
    c = min(n, k + 1 + margin)
    x32 = np.ascontiguousarray(X, dtype=np.float32)
    if n_jobs is not None and n_jobs > 0:
        faiss.omp_set_num_threads(int(n_jobs))
    index = faiss.IndexFlatL2(x32.shape[1])
    index.add(x32)
    _, cand = index.search(x32, c)
    cand = cand.astype(np.int64)
    bad = (cand < 0) | (cand == np.arange(n)[:, None])
    dist, idx = _remeasure(X, cand, bad, k)
    if not np.isfinite(dist).all():
        raise RuntimeError("FAISS returned fewer than k other points; pass backend='sklearn'.")
    return dist, idx


def lid_mle(X, k: int = 20, knn_result=None, estimator: str = "mle", n_jobs: int | None = None) -> np.ndarray:
    """Pointwise LID ``[N]`` (float64) of ``X`` ``[N, D]`` from its ``k`` nearest neighbours.

    ``estimator="mle"`` (default): Levina-Bickel with the (k-1) normalisation of scikit-dimension,
    ``LID(x) = (k-1) / sum_i log(r_k / r_i)`` over the k neighbour distances ``r_1 <= ... <= r_k``
    (the i=k term is 0). Exact duplicates (``r_i = 0``) are dropped and k is replaced by the number of
    positive distances m; LID is NaN where m < 2 or all positive distances are equal (undefined).
    ``estimator="tle"`` delegates to ``skdim.id.TLE`` (the original study's choice, with k=30).
    ``knn_result``: ``(distances, indices)`` from :func:`knn` with at least k columns (sorted
    ascending); the first k are used, so one pass at the largest k serves every smaller k. ``X`` may
    then be None for the MLE.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator={estimator!r} is unknown; pass 'mle' or 'tle'.")
    if not is_integer(k) or k < 2:
        raise ValueError(f"k={k!r} is too small for an LID estimate; pass an integer k >= 2.")
    if X is not None:
        X = _as_points(X, "X")
    if knn_result is None:
        if X is None:
            raise ValueError("lid_mle needs X or knn_result; pass the points or knn(X, k).")
        dist, idx = knn(X, k, n_jobs=n_jobs)
    else:
        dist, idx = _check_knn(knn_result, k, None if X is None else len(X))
    if estimator == "tle":
        if X is None:
            raise ValueError("estimator='tle' needs the points X, not only their neighbours; pass X.")
        from skdim.id import TLE
        with np.errstate(divide="ignore", invalid="ignore"):  # TLE drops its own 0/0 measurements
            lid = TLE().fit_transform_pw(X, precomputed_knn_arrays=(dist, idx), n_neighbors=int(k), n_jobs=n_jobs or 1)
        return np.asarray(lid, dtype=np.float64)
    return _mle_from_distances(dist)


def _mle_from_distances(dist: np.ndarray) -> np.ndarray:
    """(m-1) / sum log(r_max / r_i) per row, over the positive distances (m of them)."""
    positive = dist > 0
    m = positive.sum(axis=1)
    r_k = dist.max(axis=1, keepdims=True)
    ratio = np.divide(r_k, dist, out=np.ones_like(dist), where=positive)  # zeros contribute log(1) = 0
    s = np.log(ratio).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        lid = (m - 1) / s
    lid[(m < 2) | ~(s > 0)] = np.nan
    return lid


def _check_knn(knn_result, k: int, n: int | None):
    try:
        dist, idx = knn_result
    except (TypeError, ValueError):
        raise ValueError("knn_result must be a (distances, indices) pair as returned by knn(X, k).") from None
    dist = np.asarray(dist.detach().cpu() if isinstance(dist, torch.Tensor) else dist, dtype=np.float64)
    idx = np.asarray(idx.detach().cpu() if isinstance(idx, torch.Tensor) else idx)
    if dist.ndim != 2 or dist.shape != idx.shape:
        raise ValueError(f"knn_result arrays must both be [N, k], got {dist.shape} and {idx.shape}; "
                         "pass the output of knn(X, k).")
    if n is not None and len(dist) != n:
        raise ValueError(f"knn_result has {len(dist)} rows but X has {n} points; compute knn on the same X.")
    if dist.shape[1] < k:
        raise ValueError(f"knn_result has only {dist.shape[1]} neighbours per point but k={k}; "
                         f"rerun knn(X, {k}) or lower k.")
    dist, idx = dist[:, :k], idx[:, :k]
    if not np.isfinite(dist).all() or (dist < 0).any():
        raise ValueError("knn_result distances contain NaN, inf or negative values; pass plain (not squared) "
                         "Euclidean distances from knn(X, k).")
    if (np.diff(dist, axis=1) < 0).any():
        raise ValueError("knn_result distances are not sorted ascending per row; sort them (with the indices).")
    return dist, idx


def _as_points(X, what: str) -> np.ndarray:
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{what} must be 2-D [N, D], got shape {X.shape}; flatten each point to one row.")
    if not np.issubdtype(X.dtype, np.floating) and not np.issubdtype(X.dtype, np.integer):
        raise ValueError(f"{what} must hold real numbers, got dtype {X.dtype}; convert it with .astype(float).")
    if not np.isfinite(X).all():
        raise ValueError(f"{what} contains NaN or inf; remove or fill those rows first.")
    return X
