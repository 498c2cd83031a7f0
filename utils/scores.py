"""Every per-sample score of an autoencoder run, as one tidy table indexed by sample id.

Columns follow the seed's names (``loss__last``, ``loss__mean_from_50``, ``H__mean_from_0``,
``LID__mean_from_10``, ...). Epoch indices are 0-based ("index e = after epoch e+1") and the seed's
indices, chosen for 600 epochs, are scaled proportionally to the run's length, so
``loss__mean_from_50`` of a 200-epoch run averages from index 17; the column names keep the seed's
numbers so tables line up with its results. Higher is not always harder: :func:`utils.evaluation.score_table`
reports each score's direction.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from utils.image_stats import intensity_stats, shape_stats
from utils.metrics import aggregate, knn, lid_mle, scaled_epochs, silhouette
from utils.tracking import SampleTracker

SEED_EPOCHS = 600


def _seed_aggregate(series: np.ndarray, name: str, index, epochs: int, **seed_ks) -> pd.DataFrame:
    """``aggregate`` with the seed's epoch indices scaled to this run, columns named as the seed's."""
    scaled = {key: scaled_epochs(ks, epochs, SEED_EPOCHS) for key, ks in seed_ks.items()}
    rename = {f"{name}__{key}_{k_run}": f"{name}__{key}_{k_seed}"
              for key, ks in seed_ks.items() for k_seed, k_run in zip(ks, scaled[key])}
    return aggregate(series, name, index=index, **{"mean_from": (), "var_from": (), "diff_last": (), **scaled}
                     ).rename(columns=rename)


def snapshot_scores(tracker: SampleTracker, lid_k: int = 20, silhouette_every: int = 1, seed: int = 91):
    """LID (Levina-Bickel MLE, one exact kNN pass per snapshot) and silhouette of the code snapshots."""
    snaps = tracker.snapshots
    lid = np.stack([lid_mle(z, k=lid_k, knn_result=knn(z, lid_k)) for z in snaps])
    sil = np.stack([silhouette(z, n_clusters=10, seed=seed) for z in snaps[::silhouette_every]])
    return lid, sil


def compute_scores(tracker: SampleTracker, images=None, lid_k: int = 20, silhouette_every: int = 1,
                   seed: int = 91) -> pd.DataFrame:
    """All per-sample scores of a finished run (and model-free image baselines when ``images`` given)."""
    index = pd.Index(tracker.sample_ids, name="sample_id")
    epochs = tracker.epochs
    s = tracker.series
    parts = [
        _seed_aggregate(s["loss"], "loss", index, epochs, mean_from=(0, 20, 50), var_from=(0, 20, 50),
                        diff_last=(0, 20, 50)),
        _seed_aggregate(s["entropy"], "H", index, epochs, mean_from=(0, 400), var_from=(0, 450),
                        diff_last=(250, 450)),
        _seed_aggregate(s["norm"], "L2", index, epochs, mean_from=(0, 20), var_from=(0, 20, 250)),
    ]
    if "ssim" in s:
        parts.append(_seed_aggregate(s["ssim"], "ssim", index, epochs, mean_from=(0, 50)))
    if "drift" in s:
        parts.append(_seed_aggregate(s["drift"][1:], "dif_L2", index, epochs - 1, mean_from=(0,), var_from=(0,)))
    if tracker.snapshots is not None and len(tracker.snapshots) >= 2:
        lid, sil = snapshot_scores(tracker, lid_k, silhouette_every, seed)
        parts.append(aggregate(lid, "LID", index=index, mean_from=(0,), var_from=(0,)))
        parts.append(aggregate(sil, "sil_score", index=index, mean_from=(0,), std_from=(0,)))
    if images is not None:
        stats = pd.concat([shape_stats(images), intensity_stats(images)], axis=1)
        stats.index = index
        parts.append(stats.add_prefix("image__"))
    return pd.concat(parts, axis=1)
