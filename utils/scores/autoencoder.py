"""Every per-sample score of an autoencoder run, as one tidy table indexed by sample id.

Columns follow the seed's names (``loss__last``, ``loss__mean_from_50``, ``H__mean_from_0``,
``LID__mean_from_10``, ...). Epoch indices are 0-based ("index e = after epoch e+1") and the seed's
indices, chosen for 600 epochs, are scaled proportionally to the run's length, so
``loss__mean_from_50`` of a 200-epoch run averages from index 17; the column names keep the seed's
numbers so tables line up with its results. Higher is not always harder: these scores have no stated direction,
and :func:`utils.scores.evaluate.detection_table` (``orientation="free"``) reports the one each takes.

**Why two autoencoder schemas exist.** This module is the seed study's (:mod:`utils.studies.autoencoder`): its
dozens of aggregates keep the seed's names because :data:`utils.studies.autoencoder.SEED_SRCC` and the side-by-side
tables look them up by those names. The scoring pipeline's autoencoder family
(:func:`utils.scores.families.autoencoder_scores`) keeps only three of them, registered (with a direction) in
:mod:`utils.scores.registry` under the ``ae_`` prefix every family's columns carry: ``ae_loss_last`` is the seed's
``loss__last``, ``ae_loss_mean`` its ``loss__mean_from_0`` and ``ae_ssim_last`` the SSIM of the last epoch. Same
numbers, two audiences; renaming either would break the other's tables.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from utils.engine.recorder import Recorder
from utils.metrics.aggregates import aggregate, scaled_epochs
from utils.metrics.embedding import silhouette
from utils.metrics.lid import knn, lid_mle
from utils.scores.battery import image_battery

SEED_EPOCHS = 600


def _seed_aggregate(series: np.ndarray, name: str, index, to_row, **seed_ks) -> pd.DataFrame:
    """``aggregate`` at the rows ``to_row(k)`` for the seed's epoch indices k, columns named with k."""
    rows = {key: tuple(to_row(k) for k in ks) for key, ks in seed_ks.items()}
    rename = {f"{name}__{key}_{row}": f"{name}__{key}_{k}"
              for key, ks in seed_ks.items() for k, row in zip(ks, rows[key])}
    return aggregate(series, name, index=index, **{"mean_from": (), "var_from": (), "diff_last": (), **rows}
                     ).rename(columns=rename)


def _epoch_rows(epochs: int):
    return lambda k: scaled_epochs(k, epochs, SEED_EPOCHS)


def _snapshot_rows(snapshot_epochs: np.ndarray, epochs: int):
    """The first snapshot taken at or after the seed's (scaled) epoch index k."""
    return lambda k: min(int(np.searchsorted(snapshot_epochs, scaled_epochs(k, epochs, SEED_EPOCHS))),
                         len(snapshot_epochs) - 1)


def snapshot_scores(recorder: Recorder, lid_k: int = 20, silhouette_every: int = 1, seed: int = 91):
    """LID (Levina-Bickel MLE, one exact kNN pass per snapshot) and silhouette of the recorded ``codes``."""
    snaps = recorder["codes"]
    lid = np.stack([lid_mle(z, k=lid_k, knn_result=knn(z, lid_k)) for z in snaps])
    sil = np.stack([silhouette(z, n_clusters=10, seed=seed) for z in snaps[::silhouette_every]])
    return lid, sil


def compute_scores(recorder: Recorder, images=None, lid_k: int = 20, silhouette_every: int = 1,
                   seed: int = 91) -> pd.DataFrame:
    """All per-sample scores of a finished run (and the model-free image battery, ``image__*``, when ``images`` are
    given: :func:`utils.scores.battery.image_battery`, the baseline every study shares)."""
    index = pd.Index(recorder.sample_ids, name="sample_id")
    s = recorder
    epochs = len(s["loss"])
    rows = _epoch_rows(epochs)
    parts = [
        _seed_aggregate(s["loss"], "loss", index, rows, mean_from=(0, 20, 50), var_from=(0, 20, 50),
                        diff_last=(0, 20, 50)),
        _seed_aggregate(s["entropy"], "H", index, rows, mean_from=(0, 400), var_from=(0, 450),
                        diff_last=(250, 450)),
        _seed_aggregate(s["norm"], "L2", index, rows, mean_from=(0, 20), var_from=(0, 20, 250)),
    ]
    if "ssim" in s:
        parts.append(_seed_aggregate(s["ssim"], "ssim", index, rows, mean_from=(0, 50)))
    if "drift" in s:  # row 0 has no previous code
        parts.append(_seed_aggregate(s["drift"][1:], "dif_L2", index, _epoch_rows(epochs - 1),
                                     mean_from=(0,), var_from=(0,)))
    if "codes" in s and len(s["codes"]) >= 2:
        lid, sil = snapshot_scores(s, lid_k, silhouette_every, seed)
        snap_rows = _snapshot_rows(s.steps("codes"), epochs)
        parts.append(_seed_aggregate(lid, "LID", index, snap_rows, mean_from=(10,), var_from=(10,)))
        parts.append(aggregate(sil, "sil_score", index=index, mean_from=(0,), var_from=(), std_from=(0,),
                               diff_last=()))
    if images is not None:
        stats = image_battery(images)
        stats.index = index
        parts.append(stats.add_prefix("image__"))
    return pd.concat(parts, axis=1)
