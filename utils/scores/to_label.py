"""Turn an unlabeled pool of images into the list of images to label first.

:func:`choose_to_label` embeds the images with the self-supervised encoder of the scoring pass (BarlowTwins trained
on the images themselves, cached in ``folder/barlow_twins`` exactly as :func:`utils.scores.dataset.score_dataset`
caches it, so a scoring call and this one train it once), then :func:`utils.scores.labeling.select_to_label`
picks the budget. Returns the picks (order, sample id, cluster, method, why) and a 2-D layout of every image (the
first two principal components of the selection space) for the report's map.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from utils.scores import labeling


def choose_to_label(images, budget, ids=None, *, config=None, folder=None, encoder=None, method: str | None = None,
                    progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(picks, layout)`` for ``budget`` images (a count or ``"5%"``) of ``images`` ``[N, C, H, W]`` in [0, 1]
    (or a folder). ``config``: :class:`utils.scores.dataset.ScoringConfig` (``bt_epochs``, ``clusters``, ``k``,
    ``seed`` are read; ``bt_epochs`` 0, the default tier's, trains the thorough tier's encoder); ``encoder``: a trained encoder to use instead; ``method``: see
    :func:`utils.scores.labeling.select_to_label`. ``layout``: one row per sample id with ``x``, ``y``, ``cluster``
    and ``chosen``. Labels, if any, are never read."""
    from sklearn.decomposition import PCA

    from utils.scores import families as fam
    from utils.scores.dataset import TIERS, ScoringConfig, as_samples

    config = config or ScoringConfig()
    data, info = as_samples(images, None, ids)
    data = data.sorted()
    count = labeling.budget_count(budget, len(data))   # checked before any training
    if encoder is None and not config.bt_epochs:   # the default tier trains no encoder: the thorough tier's
        config = replace(config, bt_epochs=TIERS["thorough"]["bt_epochs"])
    z, _ = fam.ssl_embedding(data, replace(info, num_classes=0), config, Path(folder) if folder else None, encoder,
                             progress)
    picks = labeling.select_to_label(z, count, data.ids, seed=config.seed, n_clusters=config.clusters,
                                     method=method)
    space = labeling.selection_space(z, seed=config.seed)
    xy = PCA(2, random_state=0).fit_transform(space)
    clusters = labeling.kmeans(labeling.unit(space), config.clusters, config.seed)
    layout = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "cluster": clusters,
                           "chosen": np.isin(data.ids, picks["sample_id"].to_numpy())},
                          index=pd.Index(data.ids, name="sample_id"))
    return picks, layout
