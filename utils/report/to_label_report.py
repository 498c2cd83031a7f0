"""The report's "what to label" section: the chosen images as a grid per cluster and a 2-D map of the embedding
with the chosen images marked (:func:`utils.scores.to_label.choose_to_label` gives both tables)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from utils.report import plots


def to_label_table(picks: pd.DataFrame, files=None, ids=None) -> pd.DataFrame:
    """``to_label.csv``: order, id, file (when the images came from a folder), cluster, method, why."""
    out = picks.rename(columns={"sample_id": "id"})[["order", "id", "cluster", "method", "why"]].copy()
    if files is not None:
        where = pd.Series(list(files), index=np.arange(len(files)) if ids is None else np.asarray(ids))
        out.insert(2, "file", where.reindex(out["id"]).to_numpy())
    return out


def embedding_map(layout: pd.DataFrame, path=None):
    """Every image as a grey dot at its 2-D position, coloured by cluster; the chosen ones as black-ringed dots."""
    fig, ax = plt.subplots(figsize=(6.5, 5))
    ax.scatter(layout["x"], layout["y"], c=layout["cluster"], cmap="tab10", s=3, alpha=0.35, linewidths=0)
    chosen = layout[layout["chosen"]]
    ax.scatter(chosen["x"], chosen["y"], c=chosen["cluster"], cmap="tab10", s=28, edgecolors="black", linewidths=0.8)
    ax.set(xlabel="principal component 1", ylabel="principal component 2",
           title=f"{len(chosen)} chosen of {len(layout)} images (ringed), coloured by cluster")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def to_label_sections(picks: pd.DataFrame, layout: pd.DataFrame, images, per_cluster: int = 8) -> list:
    """``[(caption, figure)]``: the map, then per cluster its first ``per_cluster`` picks (pixels on the data's own
    scale, 0 black to 1 white; each tile titled by its sample id). ``images``: row i = ``layout.index[i]``."""
    row = pd.Series(np.arange(len(layout)), index=layout.index)
    images = np.asarray(images)
    out = [(f"What to label: {len(picks)} images chosen by {picks['method'].iloc[0]}", embedding_map(layout))]
    for c, g in picks.sort_values("order").groupby("cluster", sort=True):
        ids = g["sample_id"].to_numpy()[:per_cluster]
        grid = plots.image_grid(images[row.loc[ids].to_numpy()], titles=[str(i) for i in ids], ncols=8, vmin=0, vmax=1)
        size = int((layout["cluster"] == c).sum())
        out.append((f"Cluster {c} ({size} images, {len(g)} chosen): the first {len(ids)} to label", grid))
    return out
