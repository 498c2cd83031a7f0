"""Label-free scores of every sample from the geometry of an embedding: prototype distance, kNN distance, duplicates.

Input: an embedding ``z`` ``[N, D]`` (e.g. BarlowTwins features or autoencoder codes), one row per sample, and the
sample ids of those rows. No label is used. :func:`embedding_scores` returns one DataFrame indexed by sample id:

* ``prototype_distance`` — Sorscher et al. 2022 ("Beyond neural scaling laws", self-supervised prototypes):
  scikit-learn ``KMeans(n_clusters, random_state=seed)`` on the L2-normalised rows, then the Euclidean distance of
  each normalised row to its nearest centroid (``KMeans.transform(...).min(1)``), as in the public reference
  implementations (``devinkwok/nn_example_difficulty``: ``self_supervised_prototypes``). On unit vectors this is
  the k-means objective's own distance; it is monotone in the cosine similarity to the centroid's direction only
  within one cluster (centroids of spread clusters are shorter), so it is not exactly the paper's "cosine
  distance", but ranks within a cluster identically. Higher = farther from every prototype = harder / rarer.
  ``n_clusters`` defaults to ``num_classes`` when given, else 10 (the paper finds the score insensitive to it
  within an order of magnitude of the number of classes).
* ``knn_distance`` — mean Euclidean distance to the ``k`` nearest other samples (k = 10 by default, cleanlab
  Datalab's outlier/near-duplicate default): higher = sparser neighbourhood = more atypical / outlier.
* ``nn_distance`` — distance to the single nearest other sample (0 for an exact copy). LOWER = more likely a
  near-duplicate (redundant). ``nearest_id`` names that neighbour, so the pair can be inspected.
* ``cluster`` — the k-means cluster of the sample (0 .. n_clusters-1), not a score.

``knn_distance`` and ``nn_distance`` come from ONE exact kNN pass (:func:`utils.metrics.lid.knn`, self excluded by
index, distances not squared) in the raw embedding space, or on the L2-normalised rows with ``normalize=True``
(Euclidean distance between unit vectors is sqrt(2 - 2 cos): the cosine geometry, better suited to contrastive /
BarlowTwins features). A precomputed ``knn(z, k')`` with k' >= k can be passed as ``knn_result`` to share the pass
with :func:`utils.metrics.lid_mle`. Cost on 2 busy cores, 60,000 x 32 (PCA of Fashion-MNIST): the kNN pass 9-10 s,
everything else about 1 s. Which end of each is suspicious is declared once, in :mod:`utils.scores.registry`
(``px_*``, ``ae_*``, ``bt_*``: the three embeddings :func:`utils.scores.dataset.score_dataset` uses).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from utils.metrics.checks import is_integer
from utils.metrics.lid import knn

DEFAULT_K = 10
DEFAULT_CLUSTERS = 10


def embedding_scores(z, ids=None, k: int = DEFAULT_K, n_clusters: int | None = None, num_classes: int | None = None,
                     seed: int = 0, normalize: bool = False, knn_result=None, n_init="auto",
                     n_threads: int | None = 1) -> pd.DataFrame:
    """The module's label-free scores of the rows of ``z`` ``[N, D]``, one row per sample id (in input order).

    ``ids``: one sample id per row of ``z`` (default ``0..N-1``), unique. ``k``: neighbours for ``knn_distance``.
    ``n_clusters``: k-means clusters (default ``num_classes`` if given, else 10). ``seed``: KMeans random_state.
    ``normalize``: run the kNN on L2-normalised rows (cosine geometry) instead of the raw ones. ``knn_result``:
    ``(distances, indices)`` of :func:`utils.metrics.lid.knn` on the same rows (and the same ``normalize``), with at
    least ``k`` sorted columns, to reuse an existing pass. ``n_init``: KMeans restarts (scikit-learn's "auto":
    one k-means++ run). ``n_threads``: OpenMP threads of KMeans (``None``: all cores); 1 by default because on a
    CPU shared with training runs one thread was 4x faster (60,000 x 32, 10 clusters: 0.25 s against 1.0 s).
    Columns: ``prototype_distance``, ``knn_distance``,
    ``nn_distance``, ``nearest_id``, ``cluster``; ``attrs`` holds k, n_clusters, seed and normalize.
    """
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    x = _as_embedding(z)
    n = len(x)
    index = _as_ids(ids, n)
    if not is_integer(k) or not 1 <= k < n:
        raise ValueError(f"k={k!r} neighbours is impossible with {n} samples; pass an integer in [1, {n - 1}] "
                         "or embed more samples.")
    if n_clusters is None:
        n_clusters = int(num_classes) if num_classes else DEFAULT_CLUSTERS
    if not is_integer(n_clusters) or not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters={n_clusters!r} is impossible with {n} samples; pass an integer in [1, {n}].")
    unit, zero = _unit_rows(x)   # all-zero rows (e.g. all-black images) stay at the origin: no direction, far
                                 # (distance ~1) from every unit-norm prototype

    if knn_result is None:
        dist, idx = knn(unit if normalize else x, int(k))
    else:
        dist, idx = _check_knn(knn_result, int(k), n)

    with threadpool_limits(limits=n_threads, user_api="openmp"):
        km = KMeans(n_clusters=int(n_clusters), random_state=seed, n_init=n_init).fit(unit)
    to_centres = km.transform(unit)  # Euclidean distance of every unit row to every centroid

    out = pd.DataFrame({
        "prototype_distance": to_centres.min(axis=1),
        "knn_distance": dist[:, :k].mean(axis=1),
        "nn_distance": dist[:, 0],
        "nearest_id": index.to_numpy()[idx[:, 0]],
        "cluster": km.labels_.astype(np.int64),
    }, index=index)
    out.attrs.update(k=int(k), n_clusters=int(n_clusters), seed=seed, normalize=bool(normalize), zero_rows=zero)
    return out


def cosine_knn_distance(z, k: int = DEFAULT_K) -> np.ndarray:
    """[N] mean cosine distance (1 - cosine similarity) of each row of ``z`` to its ``k`` nearest other rows: the
    average kNN distance Datalab's outlier check uses on high-dimensional features (cleanlab's metric "cosine").
    One exact kNN pass on the L2-normalised rows, where 1 - cos = ||u - v||^2 / 2; an all-zero row has no
    direction and stays at the origin (cosine distance 0.5 ... 1 to every unit row)."""
    x = _as_embedding(z).astype(np.float64, copy=False)
    n = len(x)
    if not is_integer(k) or not 1 <= k < n:
        raise ValueError(f"k={k!r} neighbours is impossible with {n} samples; pass an integer in [1, {n - 1}].")
    dist, _ = knn(_unit_rows(x)[0], int(k))
    return (dist[:, :k] ** 2 / 2).mean(axis=1)


def _unit_rows(x: np.ndarray) -> tuple[np.ndarray, int]:
    """``x`` with every row scaled to unit L2 norm (all-zero rows left at 0), and how many rows are all zero."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms), int((norms == 0).sum())


def _as_embedding(z) -> np.ndarray:
    if isinstance(z, torch.Tensor):
        z = z.detach().cpu().numpy()
    x = np.asarray(z)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"z must be an embedding [N, D] with at least 2 rows, got shape {x.shape}; "
                         "flatten each sample's features to one row.")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"z must hold real numbers, got dtype {x.dtype}; convert it with .astype(float).")
    x = x.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        raise ValueError(f"z has NaN or inf in {len(bad)} rows (e.g. row {bad[0]}); fix the encoder output first.")
    return x


def _as_ids(ids, n: int) -> pd.Index:
    if ids is None:
        index = pd.RangeIndex(n)
    else:
        if isinstance(ids, torch.Tensor):
            ids = ids.detach().cpu().numpy()
        index = pd.Index(np.asarray(ids).reshape(-1) if not isinstance(ids, pd.Index) else ids)
        if len(index) != n:
            raise ValueError(f"Got {len(index)} ids for {n} embedding rows; pass one sample id per row of z.")
        if not index.is_unique:
            raise ValueError("ids contain duplicates; give every row of z its own sample id.")
    return index.rename("sample_id")


def _check_knn(knn_result, k: int, n: int):
    try:
        dist, idx = knn_result
    except (TypeError, ValueError):
        raise ValueError("knn_result must be a (distances, indices) pair as returned by utils.metrics.lid.knn.") from None
    dist, idx = np.asarray(dist, dtype=np.float64), np.asarray(idx)
    if dist.ndim != 2 or dist.shape != idx.shape or len(dist) != n:
        raise ValueError(f"knn_result must hold two [N={n}, k] arrays, got {dist.shape} and {idx.shape}; "
                         "run utils.metrics.lid.knn on the same rows.")
    if dist.shape[1] < k:
        raise ValueError(f"knn_result has {dist.shape[1]} neighbours per row but k={k}; rerun knn with k={k} or more.")
    if not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= n:
        raise ValueError(f"knn_result indices must be row numbers in [0, {n - 1}]; pass the output of knn.")
    if not np.isfinite(dist).all() or (dist < 0).any() or (np.diff(dist[:, :k], axis=1) < 0).any():
        raise ValueError("knn_result distances must be finite, non-negative (not squared) and sorted ascending "
                         "per row.")
    return dist, idx
