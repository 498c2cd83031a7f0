"""How well an embedding separates known classes (labels used for evaluation only, never for selection).

* :func:`knn_accuracy` — leave-one-out k-nearest-neighbour accuracy: each row is predicted by the majority label of
  its ``k`` nearest other rows (Euclidean; ties to the smallest label), as ``KNeighborsClassifier`` would predict
  it with the row itself left out of the training set. One exact kNN pass (:func:`utils.metrics.lid.knn`).
* :func:`cluster_accuracy` — clustering accuracy: the share of rows whose cluster maps to their label under the
  best one-to-one mapping of clusters to labels (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``);
  clusters left without a label count as wrong.
"""
from __future__ import annotations

import numpy as np


def knn_accuracy(z, labels, k: int = 20) -> float:
    """Leave-one-out accuracy of the majority vote of the ``k`` nearest other rows of ``z``."""
    from utils.metrics.lid import knn

    y = np.asarray(labels).reshape(-1)
    if len(y) != len(z):
        raise ValueError(f"Got {len(y)} labels for {len(z)} rows; pass one label per row.")
    _, idx = knn(np.asarray(z, dtype=np.float64), int(min(k, len(y) - 1)))
    classes, codes = np.unique(y, return_inverse=True)
    votes = np.zeros((len(y), len(classes)), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(len(y)), idx.shape[1]), codes[idx].ravel()), 1)
    return float((votes.argmax(1) == codes).mean())


def cluster_accuracy(labels, clusters) -> float:
    """Share of rows whose cluster is matched to their label by the best one-to-one assignment."""
    from scipy.optimize import linear_sum_assignment

    y = np.unique(np.asarray(labels).reshape(-1), return_inverse=True)[1]
    c = np.unique(np.asarray(clusters).reshape(-1), return_inverse=True)[1]
    if len(y) != len(c):
        raise ValueError(f"Got {len(y)} labels for {len(c)} cluster ids; pass one of each per row.")
    counts = np.zeros((c.max() + 1, y.max() + 1), dtype=np.int64)
    np.add.at(counts, (c, y), 1)
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / len(y))
