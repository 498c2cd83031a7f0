"""Model-free per-image statistics, and how well each one separates two groups of images.

Why: an artificial "hard" sample is only a fair test of a hardness score if no trivial statistic
(brightness, contrast, ink amount, processing artifacts) already gives it away. `intensity_stats`
measures such confounds, `shape_stats` the legitimate shape differences (two digits are more
complex than one), and `separability_table` turns either into orientation-free AUROCs.

Pixel values are read as given, on a [0, 1] scale. "Ink" is a pixel above ``INK_THRESHOLD`` = 0.5
(half of full intensity), so faint anti-aliasing halos do not count. Multi-channel images are
averaged over channels first.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

INK_THRESHOLD = 0.5


def _as_gray(images) -> torch.Tensor:
    x = torch.as_tensor(images)
    if x.ndim != 4:
        raise ValueError(f"Images must have shape [N, C, H, W], got {tuple(x.shape)}; add the missing axes.")
    return x.float().mean(dim=1)  # [N, H, W]


def intensity_stats(images) -> pd.DataFrame:
    """One row per image: mean, std (population), min, max, background (median pixel), ink_fraction (pixels > 0.5),
    isolated_pixels (ink pixels with no ink among their 8 neighbours), faint_fraction (pixels in
    (0.02, 0.5], i.e. non-background that is not ink: catches haze and dotted low-level artifacts),
    and border_ink_top/bottom/left/right (sum of pixel values in the outermost row or column:
    a sum, not an ink count, so that faint stripes from processing show up too)."""
    x = _as_gray(images)
    flat = x.flatten(1)
    ink = x > INK_THRESHOLD
    padded = torch.nn.functional.pad(ink.float()[:, None], (1, 1, 1, 1))
    neighbours = torch.nn.functional.conv2d(padded, torch.ones(1, 1, 3, 3))[:, 0] - ink.float()
    return pd.DataFrame({
        "mean": flat.mean(1).numpy(),
        "std": flat.std(1, correction=0).numpy(),
        "min": flat.min(1).values.numpy(),
        "max": flat.max(1).values.numpy(),
        "background": np.median(flat.numpy(), axis=1),
        "ink_fraction": ink.flatten(1).float().mean(1).numpy(),
        "faint_fraction": ((flat > 0.02) & (flat <= INK_THRESHOLD)).float().mean(1).numpy(),
        "isolated_pixels": (ink & (neighbours == 0)).flatten(1).sum(1).numpy(),
        "border_ink_top": x[:, 0, :].sum(1).numpy(),
        "border_ink_bottom": x[:, -1, :].sum(1).numpy(),
        "border_ink_left": x[:, :, 0].sum(1).numpy(),
        "border_ink_right": x[:, :, -1].sum(1).numpy(),
    })


def shape_stats(images) -> pd.DataFrame:
    """One row per image: total_variation, the sum of absolute horizontal and vertical neighbour
    differences (about twice the stroke length for binary strokes; larger for two digits)."""
    x = _as_gray(images)
    tv = (x[:, :, 1:] - x[:, :, :-1]).abs().flatten(1).sum(1) + (x[:, 1:] - x[:, :-1]).abs().flatten(1).sum(1)
    return pd.DataFrame({"total_variation": tv.numpy()})


def separability_table(stats_df: pd.DataFrame, is_mixed) -> pd.DataFrame:
    """AUROC of each statistic for telling ``is_mixed`` images from the rest, orientation-free
    (max(a, 1 - a): 0.5 = no signal, 1 = perfect), with the two class means and their relative gap.

    Returns one row per column of ``stats_df``: auroc, mean_mixed, mean_clean, rel_diff
    (|mean_mixed - mean_clean| / |mean_clean|, NaN when mean_clean is 0)."""
    y = np.asarray(is_mixed, dtype=bool)
    if y.ndim != 1 or len(y) != len(stats_df):
        raise ValueError(f"is_mixed must be a flat mask of length {len(stats_df)}, got shape {y.shape}.")
    if y.all() or not y.any():
        raise ValueError("is_mixed must contain both mixed and clean images to compute an AUROC.")
    rows = {}
    for name in stats_df.columns:
        v = stats_df[name].to_numpy(dtype=np.float64)
        a = roc_auc_score(y, v)
        m1, m0 = v[y].mean(), v[~y].mean()
        rows[name] = {"auroc": max(a, 1 - a), "mean_mixed": m1, "mean_clean": m0,
                      "rel_diff": abs(m1 - m0) / abs(m0) if m0 != 0 else np.nan}
    return pd.DataFrame.from_dict(rows, orient="index")
