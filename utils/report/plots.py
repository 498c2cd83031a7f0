"""Every study's figures: score histograms, image grids, score tails, training curves, score summaries
(autoencoder study) and learning vs forgetting time, quadrant grids, first/last histograms, stage curves (SSFT).

Every function returns the matplotlib Figure and saves it as PNG (dpi 100) when `path` is given; none calls
``plt.show()``, so Jupyter's inline backend displays the figures. Without a display (scripts, CI) matplotlib
falls back to the Agg backend by itself; nothing here forces a backend.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from utils.scores.quadrants import QuadrantRule

DPI = 100


def loghist(values, is_positive, title: str = "", bins: int = 100, labels=("all", "mixed"), ax=None, path=None):
    """Histogram of `values` for all samples and for the positives, on shared bins with a log y-axis."""
    values = _numpy(values).ravel()
    pos = _numpy(is_positive).ravel().astype(bool)
    if values.shape != pos.shape:
        raise ValueError(f"values has {values.size} entries but is_positive has {pos.size}; pass aligned arrays.")
    fig, ax = _fig_ax(ax)
    edges = np.histogram_bin_edges(values, bins=bins)
    ax.hist(values, bins=edges, alpha=0.6, label=f"{labels[0]} (n={values.size})")
    ax.hist(values[pos], bins=edges, alpha=0.8, color="tab:red", label=f"{labels[1]} (n={pos.sum()})")
    ax.set_yscale("log")
    ax.set(title=title, ylabel="count")
    ax.legend()
    return _save(fig, path)


def image_grid(images, titles=None, ncols: int = 10, cmap: str = "gray", vmin=0.0, vmax=1.0,
               frame=None, path=None, border: str | None = None):
    """Show images [N, C, H, W] (C = 1 grey, C = 3 RGB) in a grid on one scale for every tile (no per-image
    rescaling: a blank white image shows white, a blank black one black).

    Grey images use `cmap` from `vmin` to `vmax` (default the pixel scale 0..1; None lets matplotlib stretch each
    tile to its own range); RGB images are mapped by `vmin`/`vmax` to [0, 1] and clipped. `frame` is an optional bool [N]: True draws a red frame around that image.
    `border`: a colour for a thin line around every other tile (so a white image shows on a white page).
    """
    images = _numpy(images)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape [N, C, H, W] with C = 1 or 3, got {images.shape}.")
    n = len(images)
    if n == 0:
        raise ValueError("images is empty; pass at least one image.")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.2 * ncols, 1.3 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            fig.delaxes(ax)
            continue
        if images.shape[1] == 1:
            ax.imshow(images[i, 0], cmap=cmap, vmin=vmin, vmax=vmax)
        else:
            lo, hi = (0.0 if vmin is None else vmin), (1.0 if vmax is None else vmax)
            ax.imshow(np.clip((images[i].transpose(1, 2, 0) - lo) / (hi - lo), 0, 1))
        ax.set_xticks([])
        ax.set_yticks([])
        framed = frame is not None and bool(frame[i])
        for spine in ax.spines.values():
            spine.set_visible(framed or border is not None)
            spine.set(color="red" if framed else border, linewidth=3 if framed else 0.8)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def tail_mask(scores, q: float) -> np.ndarray:
    """Boolean mask of the right tail: scores strictly above their `q` quantile."""
    scores = _numpy(scores).ravel().astype(float)
    return scores > np.quantile(scores, q)


def tail_grid(images, scores, q: float = 0.999, highlight=None, max_images: int = 100, path=None, **grid_kwargs):
    """The right tail: images whose score exceeds its `q` quantile, highest first, titled by score.

    `highlight` (bool [N], e.g. the mixed flag) draws a red frame on those samples. At most `max_images` are
    shown. For the left tail pass ``-scores``.
    """
    images, scores = _numpy(images), _numpy(scores).ravel().astype(float)
    if len(images) != scores.size:
        raise ValueError(f"{len(images)} images but {scores.size} scores; pass one score per image.")
    if not 0 <= q < 1:
        raise ValueError(f"q={q} is not a quantile in [0, 1); pass e.g. 0.99 for the top 1 %.")
    idx = np.flatnonzero(tail_mask(scores, q))
    if idx.size == 0:
        raise ValueError(f"no score lies above the {q} quantile; lower q.")
    idx = idx[np.argsort(-scores[idx], kind="stable")][:max_images]
    frame = None if highlight is None else _numpy(highlight).ravel().astype(bool)[idx]
    return image_grid(images[idx], titles=[f"{s:.3g}" for s in scores[idx]], frame=frame, path=path, **grid_kwargs)


def training_curves(history: pd.DataFrame, x: str = "epoch", columns=None, baselines: dict | None = None,
                    logy: bool = False, ax=None, path=None):
    """Loss curves against column `x`, plus dashed horizontal `baselines`.

    `columns` defaults to every column whose name contains "l1" or "loss" (not timings or SSIM, which live on
    other scales). Example: ``training_curves(hist, baselines={"blank image": 0.43})``.
    """
    if x not in history.columns:
        raise ValueError(f"history has no column {x!r}; pass x= one of {list(history.columns)}.")
    if columns is None:
        columns = [c for c in history.columns if "l1" in c or "loss" in c]
    fig, ax = _fig_ax(ax)
    for col in columns:
        ax.plot(history[x], history[col], label=col)
    for (name, value), color in zip((baselines or {}).items(), plt.cm.tab10.colors[5:]):
        ax.axhline(value, linestyle="--", color=color, label=f"{name} ({value:.3g})")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.legend()
    return _save(fig, path)


def score_bars(table: pd.DataFrame, top: int = 20, path=None):
    """Two panels from a :func:`utils.scores.evaluate.detection_table` with ``orientation="free", srcc=True``: AUROC
    (best orientation) with the 0.5 chance line, and the signed SRCC with its ceiling +-sqrt(3p(1-p)), for the
    `top` metrics (best at the top)."""
    missing = {"auroc", "srcc", "srcc_ceiling"} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks columns {sorted(missing)}; pass detection_table(..., orientation='free', "
                         "srcc=True).")
    t = table.sort_values("auroc", ascending=False).head(top).iloc[::-1]
    names = [str(i) for i in t.index]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 0.3 * len(t) + 1.2), sharey=True)
    a1.barh(names, t["auroc"], color="tab:blue")
    a1.axvline(0.5, color="k", linestyle="--", label="chance")
    a1.set(xlim=(0.4, 1.0), xlabel="AUROC (best orientation)")
    a1.legend(loc="lower right")
    a2.barh(names, t["srcc"].fillna(0), color=np.where(t["srcc"] >= 0, "tab:green", "tab:orange"))
    ceiling = float(t["srcc_ceiling"].iloc[0])
    for sign in (-1, 1):
        a2.axvline(sign * ceiling, color="red", linestyle="--", label="ceiling" if sign > 0 else None)
    a2.axvline(0, color="k", linewidth=0.5)
    a2.set(xlim=(-1.1 * ceiling, 1.1 * ceiling), xlabel="signed SRCC")
    a2.legend(loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------- SSFT
def time_scatter(scores: pd.DataFrame, highlight: pd.Series | None = None, rule: QuadrantRule | None = None,
                 x: str = "learning_fraction", y: str = "forgetting_fraction", label: str = "flagged",
                 title: str = "", ax=None, path=None):
    """LT (x) vs FT (y) of :func:`utils.scores.ssft.ssft_scores`; the dashed line marks "never forgotten in any seed"
    (fraction 1), red = ``highlight`` (aligned by sample id), dotted green = the quadrant thresholds of ``rule``."""
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
    return _save(fig, path)


def quadrant_grids(images, ids, quadrant: pd.Series, titles: pd.Series | None = None, per_quadrant: int = 16,
                   seed: int = 0, path=None):
    """A 4x4 grid of random members of each quadrant; ``images[i]`` is the sample with id ``ids[i]``."""
    from utils.scores.quadrants import QUADRANTS

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
    return _save(fig, path)


def first_last_hist(first, last, name: str, highlight=None, bins: int = 60, ax=None, path=None):
    """Histogram of a per-sample measurement at the first and the last log (mixed images overlaid if given)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 3.5))
    first, last = _numpy(first).ravel(), _numpy(last).ravel()
    both = np.concatenate([first, last])
    edges = np.linspace(np.nanmin(both), np.nanmax(both), bins + 1)
    ax.hist(first, edges, alpha=0.5, label="first log")
    ax.hist(last, edges, alpha=0.5, label="last log")
    if highlight is not None and np.any(highlight):
        ax.hist(last[_numpy(highlight).ravel().astype(bool)], edges, histtype="step", color="tab:red",
                label="last log, mixed")
    ax.set(xlabel=name, ylabel="samples", yscale="log")
    ax.legend(fontsize=7)
    return _save(fig, path)


def first_last_hists(runs, measures, highlight: pd.Series | None = None, title: str = "", seed: int | None = None,
                     path=None):
    """One :func:`first_last_hist` panel per measurement: every sample after the first epoch and at the end of
    stage 1 (model seed ``seed``, default the first run's); ``highlight`` (by sample id) marks the mixed images."""
    from utils.scores.ssft import first_split_log

    measures = list(measures)
    fig, axes = plt.subplots(1, len(measures), figsize=(5.5 * len(measures), 3.5), squeeze=False)
    for ax, measure in zip(axes[0], measures):
        first, last = first_split_log(runs, measure, 0, seed), first_split_log(runs, measure, -1, seed)
        flag = None if highlight is None else highlight.reindex(last.index).to_numpy(bool)
        first_last_hist(first.to_numpy(), last.to_numpy(), measure, flag, ax=ax)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def stage_curves(runs, column: str = "train_acc", ax=None, path=None):
    """Per-epoch history ``column`` (e.g. ``train_acc``, ``train_loss``) of every SSFT run, stage 2 drawn after
    stage 1 (dotted line = the switch)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7, 3.5))
    for run in runs:
        h = run.history
        if column not in h.columns:
            raise ValueError(f"The run history has no column {column!r}; choose one of {list(h.columns)}.")
        x = np.arange(1, len(h) + 1)
        ax.plot(x, h[column], lw=0.8, label=f"seed {run.seed} {run.order}")
        ax.axvline((h["stage"] == 1).sum() + 0.5, ls=":", c="gray", lw=0.6)
    ax.set(xlabel="epoch (stage 1, then stage 2)", ylabel=column.replace("_", " "))
    ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def _numpy(a) -> np.ndarray:
    """numpy view of a tensor / Series / array."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _fig_ax(ax):
    if ax is None:
        return plt.subplots(figsize=(7, 4))
    return ax.figure, ax


def _save(fig, path):
    if path is not None:
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return fig


# ------------------------------------------------------------------------------------------ scoreboard
def scoreboard_heatmap(wide: pd.DataFrame, title: str = "", metric: str = "AUROC", path=None):
    """Scores (rows, grouped by family) x hardness types (columns) of one metric, annotated; from
    ``utils.studies.scoreboard.detection(summary)[dataset]`` (rows indexed by (family, score))."""
    if wide.empty:
        raise ValueError("Nothing to plot: the table has no scores; run the scoreboard first.")
    values = wide.to_numpy(float)
    labels = [f"{s}  ({f})" if isinstance(wide.index, pd.MultiIndex) else str(s)
              for f, s in (wide.index if isinstance(wide.index, pd.MultiIndex) else [(None, i) for i in wide.index])]
    fig, ax = plt.subplots(figsize=(1.1 * wide.shape[1] + 3.5, 0.32 * wide.shape[0] + 1.5))
    im = ax.imshow(values, cmap="viridis", vmin=0.5 if metric == "AUROC" else 0, vmax=1, aspect="auto")
    ax.set_xticks(range(wide.shape[1]), [str(c) for c in wide.columns], rotation=35, ha="right")
    ax.set_yticks(range(wide.shape[0]), labels, fontsize=8)
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if v > (0.8 if metric == "AUROC" else 0.6) else "white")
    fig.colorbar(im, ax=ax, label=metric)
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def pruning_curves(summary: pd.DataFrame, title: str = "", path=None):
    """Test accuracy vs kept fraction (mean ± std over seeds), one panel per policy, one line per score; the
    baselines (random, RS2), fixed subsets (e.g. clean, one point each) and the full-data accuracy in every panel.
    ``summary``: :func:`utils.studies.pruning.accuracy_summary` of one budget and noise level."""
    need = {"score", "policy", "fraction", "acc_mean", "acc_std"}
    if not need <= set(summary.columns):
        raise ValueError(f"summary lacks columns {sorted(need - set(summary.columns))}; pass utils.studies.pruning.accuracy_summary.")
    fixed = ("random", "rs2", "full", "subset")
    policies = [p for p in summary["policy"].unique() if p not in fixed] or ["random"]
    # own y-axis per panel: keep_hard's collapse at small fractions would flatten the other panels' differences
    fig, axes = plt.subplots(1, len(policies), figsize=(5 * len(policies), 4.2), squeeze=False)
    full = summary[summary["policy"] == "full"]
    names = sorted(set(summary.loc[~summary["policy"].isin(fixed), "score"]))
    colors = {n: plt.get_cmap("tab10" if len(names) <= 10 else "tab20")(i) for i, n in enumerate(names)}
    styles = {"random": dict(color="k", ls="--", marker="s"), "rs2": dict(color="tab:brown", ls="-.", marker="^")}
    for ax, policy in zip(axes[0], policies):
        for score, g in summary[summary["policy"] == policy].groupby("score"):
            g = g.sort_values("fraction")
            ax.errorbar(g["fraction"], g["acc_mean"], yerr=g["acc_std"].fillna(0), marker="o", ms=3, capsize=2,
                        label=score, color=colors.get(score))
        for base, style in styles.items():
            b = summary[summary["policy"] == base].sort_values("fraction")
            if len(b):
                ax.errorbar(b["fraction"], b["acc_mean"], yerr=b["acc_std"].fillna(0), ms=3, capsize=2, label=base,
                            **style)
        for _, r in summary[summary["policy"] == "subset"].iterrows():
            ax.errorbar([r["fraction"]], [r["acc_mean"]], yerr=[0 if pd.isna(r["acc_std"]) else r["acc_std"]],
                        marker="*", ms=9, capsize=2, color="tab:red", ls="none", label=f"{r['score']} (flags)")
        if len(full):
            ax.axhline(float(full["acc_mean"].iloc[0]), color="grey", lw=0.8, label="full data")
            ax.axhline(float(full["acc_mean"].iloc[0]) - 0.005, color="grey", lw=0.8, ls=":", label="full - 0.5 pt")
        ax.set(title=policy, xlabel="kept fraction", xscale="log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("test accuracy")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def noise_bars(summary: pd.DataFrame, title: str = "", path=None):
    """Per label-noise study: test accuracy (mean ± std over seeds) of the full noisy set and of its clean subset,
    with the clean-label full data as a line. ``summary``: :func:`utils.studies.pruning.accuracy_summary` rows with a
    ``noise_kind`` column ("none" for the clean labels)."""
    noisy = summary[summary["noise_kind"] != "none"]
    kinds = list(dict.fromkeys(noisy["noise_kind"]))
    fig, ax = plt.subplots(figsize=(2.2 + 2.2 * max(1, len(kinds)), 3.8))
    for i, kind in enumerate(kinds):
        g = noisy[noisy["noise_kind"] == kind]
        for j, (label, rows) in enumerate((("full noisy set", g[g["policy"] == "full"]),
                                           ("clean (flags dropped)", g[g["policy"] == "subset"]))):
            if len(rows):
                r = rows.iloc[0]
                ax.bar(i + 0.38 * (j - 0.5), r["acc_mean"], width=0.36, yerr=0 if pd.isna(r["acc_std"]) else r["acc_std"],
                       capsize=3, color=("tab:grey", "tab:red")[j], label=label if i == 0 else None)
    base = summary[(summary["noise_kind"] == "none") & (summary["policy"] == "full")]
    if len(base):
        ax.axhline(float(base["acc_mean"].iloc[0]), color="k", lw=0.8, ls="--", label="clean labels, full data")
    lo = float(noisy["acc_mean"].min()) if len(noisy) else 0.0
    ax.set(xticks=range(len(kinds)), xticklabels=kinds, ylabel="test accuracy", ylim=(max(0.0, lo - 0.03), None))
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def labeling_curves(paired: pd.DataFrame, title: str = "", path=None):
    """Paired test-accuracy difference to random (pt) vs the labeling budget (log scale), one line per method with
    its 95 % interval over the seeds as a band; zero (random) dashed. ``paired``: :func:`utils.studies.labeling.paired`."""
    need = {"method", "budget", "diff_mean", "ci_low", "ci_high"}
    if not need <= set(paired.columns):
        raise ValueError(f"paired lacks columns {sorted(need - set(paired.columns))}; pass utils.studies.labeling.paired.")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (method, g) in enumerate(paired.groupby("method", sort=False)):
        g = g.sort_values("budget")
        color = plt.get_cmap("tab10")(i % 10)
        ls = "--" if method.startswith("ccs") else "-"
        ax.plot(g["budget"], 100 * g["diff_mean"], marker="o", ms=3, color=color, ls=ls, label=method)
        ax.fill_between(g["budget"], 100 * g["ci_low"].fillna(g["diff_mean"]), 100 * g["ci_high"].fillna(g["diff_mean"]),
                        color=color, alpha=0.15)
    ax.axhline(0, color="k", ls="--", lw=0.8)
    ax.set(xscale="log", xlabel="images labeled (budget)", ylabel="test accuracy - random (pt)", title=title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
