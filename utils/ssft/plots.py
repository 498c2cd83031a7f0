"""SSFT figures: learning time vs forgetting time with the never-forgotten line, quadrant grids, histograms."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from utils.plots import _save
from utils.ssft.quadrants import QUADRANTS, QuadrantRule


def time_scatter(scores: pd.DataFrame, highlight: pd.Series | None = None, rule: QuadrantRule | None = None,
                 x: str = "learning_fraction", y: str = "forgetting_fraction", label: str = "flagged",
                 title: str = "", ax=None, path=None):
    """LT (x) vs FT (y); the dashed line marks "never forgotten in any seed" (fraction 1), red = ``highlight``."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 5))
    rng = np.random.default_rng(0)  # small jitter so the many samples on the same level stay visible
    jx, jy = (rng.uniform(-0.004, 0.004, len(scores)) for _ in range(2))
    flag = np.zeros(len(scores), bool) if highlight is None else highlight.reindex(scores.index).to_numpy(bool)
    ax.scatter(scores[x] + jx, scores[y] + jy, s=3, c="tab:blue", alpha=0.3, lw=0, label="other")
    if flag.any():
        ax.scatter(scores[x][flag] + jx[flag], scores[y][flag] + jy[flag], s=8, c="tab:red", lw=0,
                   label=f"{label} ({int(flag.sum())})")
    if y.endswith("fraction"):
        ax.axhline(1.0, ls="--", c="k", lw=0.8, label="never forgotten")
    if rule is not None:
        ax.axvline(rule.lt_threshold, ls=":", c="g")
        ax.axhline(rule.ft_threshold, ls=":", c="g", label="quadrant thresholds (Otsu, fit half)")
    ax.set(xlabel=f"{x.replace('_', ' ')} (first split)", ylabel=f"{y.replace('_', ' ')} (second split)",
           title=title)
    ax.legend(loc="lower right", fontsize=7, markerscale=2)
    _save(fig, path)
    return fig


def quadrant_grids(images, ids, quadrant: pd.Series, titles: pd.Series | None = None, per_quadrant: int = 16,
                   seed: int = 0, path=None):
    """A 4x4 grid of random members of each quadrant; ``images[i]`` is the sample with id ``ids[i]``."""
    position = pd.Index(np.asarray(ids))
    fig = plt.figure(figsize=(16, 4.6))
    rng = np.random.default_rng(seed)
    for sub, name in zip(fig.subfigures(1, 4), QUADRANTS):
        members = quadrant.index[quadrant.to_numpy() == name]
        pick = np.sort(rng.choice(members, size=min(per_quadrant, len(members)), replace=False))
        sub.suptitle(f"{name} ({len(members)})")
        for i, ax in enumerate(sub.subplots(4, 4).flat):
            ax.axis("off")
            if i < len(pick):
                ax.imshow(np.asarray(images[position.get_loc(pick[i])])[0], cmap="gray")
                if titles is not None:
                    ax.set_title(str(titles.loc[pick[i]]), fontsize=7)
    _save(fig, path)
    return fig


def first_last_hist(first, last, name: str, highlight=None, bins: int = 60, ax=None, path=None):
    """Histogram of a per-sample measurement at the first and the last log (mixed images overlaid if given)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 3.5))
    both = np.concatenate([first, last])
    edges = np.linspace(np.nanmin(both), np.nanmax(both), bins + 1)
    ax.hist(first, edges, alpha=0.5, label="first log")
    ax.hist(last, edges, alpha=0.5, label="last log")
    if highlight is not None and np.any(highlight):
        ax.hist(last[highlight], edges, histtype="step", color="tab:red", label="last log, mixed")
    ax.set(xlabel=name, ylabel="samples", yscale="log")
    ax.legend(fontsize=7)
    _save(fig, path)
    return fig


def stage_curves(runs, column: str = "train_acc", ax=None, path=None):
    """Per-epoch training curve of every run, stage 2 drawn after stage 1 (dotted line = the switch)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7, 3.5))
    for run in runs:
        h = run.history
        x = np.arange(1, len(h) + 1)
        ax.plot(x, h[column], lw=0.8, label=f"seed {run.seed} {run.order}")
        ax.axvline((h["stage"] == 1).sum() + 0.5, ls=":", c="gray", lw=0.6)
    ax.set(xlabel="epoch (stage 1, then stage 2)", ylabel=column.replace("_", " "))
    ax.legend(fontsize=6, ncol=2)
    _save(fig, path)
    return fig
