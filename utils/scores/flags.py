"""Boolean flags on a score table: decisions with documented thresholds, not tuned on any benchmark.

* ``flag_label_issue`` — cleanlab's ``find_label_issues`` on the K-fold out-of-sample probabilities (computed by
  :func:`utils.scores.label_quality.label_quality`, passed through here).
* ``flag_near_duplicate`` — pixel nearest-neighbour distance (``px_nn_distance``) below ``DUPLICATE_RATIO`` = 0.13
  times its median over the dataset (the relative threshold of cleanlab Datalab's near-duplicate check); both
  members of a pair are flagged.
* ``flag_outlier`` — kNN distance above Q3 + 3 IQR (Tukey's far-out fence) in the self-supervised embedding
  (``bt_knn_distance``), else the autoencoder's codes, else the pixels.
"""
from __future__ import annotations

import pandas as pd

DUPLICATE_RATIO = 0.13   # cleanlab Datalab's near-duplicate threshold, relative to the median NN distance
OUTLIER_FENCE = 3.0      # Tukey's far-out fence: Q3 + 3 IQR
OUTLIER_SPACES = ("bt_knn_distance", "ae_knn_distance", "px_knn_distance")   # the first present is used


def add_flags(scores: pd.DataFrame) -> pd.DataFrame:
    """``scores`` with ``flag_near_duplicate`` and ``flag_outlier`` added (``flag_label_issue`` comes with the
    supervised family)."""
    out = scores.copy()
    d = out["px_nn_distance"]
    out["flag_near_duplicate"] = d < DUPLICATE_RATIO * float(d.median())
    for col in OUTLIER_SPACES:
        if col in out:
            q1, q3 = out[col].quantile([0.25, 0.75])
            out["flag_outlier"] = out[col] > q3 + OUTLIER_FENCE * (q3 - q1)
            break
    return out
