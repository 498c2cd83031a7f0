"""Boolean flags and duplicate groups on a score table: decisions with documented thresholds taken from cleanlab's
Datalab (not tuned on the scoreboard; their precision and recall on its injected copies are measured by
:func:`utils.studies.scoreboard.flag_quality` and stated in ``scoreboard/README.md``).

* ``flag_label_issue`` — cleanlab's ``find_label_issues`` on the K-fold out-of-sample probabilities (computed by
  :func:`utils.scores.label_quality.label_quality`, passed through here).
* ``flag_near_duplicate`` — pixel nearest-neighbour distance (``px_nn_distance``) below ``DUPLICATE_RATIO`` = 0.13
  times its median over the dataset (Datalab's near-duplicate threshold), or exactly 0 (an exact copy, flagged even
  when most images are copies and the median is 0 itself); both members of a pair are flagged, and
  ``duplicate_group`` numbers the connected groups of flagged samples and their nearest neighbours (-1: none), so
  a triple of copies is one group.
* ``flag_class_imbalance`` — the members of the rarest class when its share is below 0.1 / K (K classes):
  Datalab's class-imbalance rule (threshold 0.1).
* ``flag_outlier`` — mean distance to the k nearest neighbours above Q3 + 1.7 IQR of its distribution (Datalab's
  outlier rule: threshold 0.37037, i.e. 1 / 0.37037 - 1 = 1.7 IQR), in the raw pixels or in the self-supervised
  embedding (``px_knn_distance``, ``bt_knn_distance``; a sample is flagged when either space calls it an
  outlier). The autoencoder's codes are not used: on the scoreboard's copies their kNN distances rank clean
  samples as far as injected ones.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

DUPLICATE_RATIO = 0.13        # cleanlab Datalab's near-duplicate threshold, relative to the median NN distance
OUTLIER_THRESHOLD = 0.37037   # cleanlab Datalab's outlier threshold: Q3 + (1 / t - 1) IQR
OUTLIER_SPACES = ("px_knn_distance", "bt_knn_distance")
IMBALANCE_THRESHOLD = 0.1     # cleanlab Datalab's class-imbalance threshold: rarest share < 0.1 / K


def outlier_fence(values) -> float:
    """Q3 + (1 / 0.37037 - 1) IQR of ``values``: Datalab's outlier threshold on average kNN distances."""
    q1, q3 = np.percentile(np.asarray(values, dtype=float), [25, 75])
    return float(q3 + (1 / OUTLIER_THRESHOLD - 1) * (q3 - q1))


def duplicate_groups(nearest_id: pd.Series, flagged: pd.Series) -> pd.Series:
    """Connected components of the graph linking every flagged sample to its nearest neighbour (scipy's
    ``connected_components``), numbered 0.. in order of their smallest sample id; -1 for samples in no group."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ids = flagged.index
    position = pd.Index(ids)
    src = np.flatnonzero(flagged.to_numpy(bool))
    dst = position.get_indexer(nearest_id.reindex(ids).to_numpy()[src])
    keep = dst >= 0
    n = len(ids)
    graph = coo_matrix((np.ones(int(keep.sum())), (src[keep], dst[keep])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    member = np.zeros(n, dtype=bool)
    member[src[keep]] = True
    member[dst[keep]] = True
    out = np.full(n, -1, dtype=np.int64)
    groups = pd.Series(comp[member], index=np.asarray(ids)[member])
    first = groups.groupby(groups).apply(lambda g: g.index.min()).sort_values()   # number groups by their first id
    renumber = pd.Series(np.arange(len(first)), index=first.index)
    out[member] = renumber.reindex(comp[member]).to_numpy()
    return pd.Series(out, index=ids, name="duplicate_group")


def add_flags(scores: pd.DataFrame) -> pd.DataFrame:
    """``scores`` with ``flag_near_duplicate``, ``duplicate_group``, ``flag_outlier`` and, with labels,
    ``flag_class_imbalance`` added (``flag_label_issue`` comes with the supervised family, the image checks'
    ``flag_dark`` etc. with CleanVision's step)."""
    out = scores.copy()
    if "label" in out:
        share = out["label"].value_counts(normalize=True)
        rarest = share.sort_index().idxmin()   # ties go to the smaller class index, as in Datalab
        out["flag_class_imbalance"] = (out["label"] == rarest) & (share[rarest] < IMBALANCE_THRESHOLD / len(share))
    d = out["px_nn_distance"]
    out["flag_near_duplicate"] = (d < DUPLICATE_RATIO * float(d.median())) | (d == 0)   # an exact copy always
    out["duplicate_group"] = duplicate_groups(out["px_nearest_id"], out["flag_near_duplicate"])
    out["flag_outlier"] = False
    for col in OUTLIER_SPACES:
        if col in out:
            out["flag_outlier"] |= out[col] > outlier_fence(out[col])
    return out


def duplicate_keepers(groups: pd.Series) -> pd.Series:
    """True for the one member of each duplicate group that is kept (the smallest sample id: a rule that does not
    depend on the input order), False for the others; True for samples in no group (``duplicate_group`` -1)."""
    ids = pd.Series(groups.index, index=groups.index)
    first = ids.groupby(groups.to_numpy()).transform("min")
    return ((groups < 0) | (first == ids)).rename("duplicate_keeper")


def clean_keep(scores: pd.DataFrame) -> pd.Series:
    """The samples the flags leave, Datalab's workflow (True = keep): every sample minus the label issues (when
    the table has labels), the outliers and all but one member (:func:`duplicate_keepers`) of each duplicate group.
    ``scores``: a :func:`utils.scores.dataset.score_dataset` table (flags added by :func:`add_flags`)."""
    missing = [c for c in ("flag_outlier", "duplicate_group") if c not in scores]
    if missing:
        raise ValueError(f"scores lack {', '.join(missing)}; pass a score_dataset table (it adds the flags).")
    drop = scores["flag_outlier"].astype(bool) | ~duplicate_keepers(scores["duplicate_group"])
    if "flag_label_issue" in scores:
        drop |= scores["flag_label_issue"].astype(bool)
    return (~drop).rename("clean_keep")
