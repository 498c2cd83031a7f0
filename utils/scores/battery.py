"""The one model-free baseline: a battery of image statistics, and how far it goes with no network at all.

Why: an artificial "hard" sample is only a fair test of a hardness score if no trivial statistic (brightness,
contrast, ink amount, processing artifacts) already gives it away, and a learned score is only worth a network if
it beats what image statistics reveal. Every study uses this one battery: the scoreboard's ``stat_*`` columns and
its ``battery_cv`` baseline, the autoencoder study's ``image__*`` rows and model-free separability check, and the
SSFT studies' model-free AUROC.

:func:`image_battery` computes the statistics; :func:`cross_validated_baseline` trains a classifier on them with
stratified K-fold (scikit-learn's ``cross_val_predict``) and returns out-of-fold probabilities of the positive
class: the strongest detector that uses no network, i.e. the ceiling a learned hardness score has to beat. Its
label-light counterpart, the best single statistic in its better orientation, is
``utils.scores.evaluate.detection_table(stats, target, orientation="free")``.

Pixel values are read as given, on a [0, 1] scale; multi-channel images are averaged over channels first.
"Ink" is a pixel above ``INK_THRESHOLD`` = 0.5 (half of full intensity), so faint anti-aliasing halos do not count.
Battery columns (one row per image):

* :func:`intensity_stats`: mean, std, min, max, background, ink_fraction, faint_fraction, isolated_pixels (ink
  pixels without ink among their 8 neighbours), border_ink_top/bottom/left/right; :func:`shape_stats`:
  total_variation;
* ``laplacian_abs_mean`` — mean over all pixels of |5-point Laplacian| (the kernel of ``scipy.ndimage.laplace``)
  with edge replication (``scipy.ndimage.laplace``'s default ``mode="reflect"``), so a constant image gives 0;
* ``components_4`` / ``components_8`` — number of connected components of ink under 4- / 8-connectivity
  (``scipy.ndimage.label``, run once on the whole batch with a structure that never links two images);
* ``isolated_pixels_4`` — ink pixels without ink among their 4 edge neighbours (the 8-connectivity count is
  ``isolated_pixels`` above);
* ``stroke_width`` — ink pixels / skeleton pixels (``skimage.morphology.skeletonize``, one call per image): the
  mean width of a stroke of constant width. A straight bar of width w and length L reads w L / (L - c) with a
  small end correction c (skeletons are shorter than the stroke), and a diagonal stroke reads up to sqrt(2)
  times its perpendicular width (its skeleton pixels are sqrt(2) apart); 0 for an image without ink.

Speed, measured on 2 cores shared with training runs: 60,000 28x28 images (Fashion-MNIST train, or mnist-5k tiled)
in about 9 s, of which about 7 s is ``intensity_stats`` (mostly its conv2d neighbour count) and about 1.5 s the
other columns (the per-image skeleton loop 0.5-0.7 s, each batched labelling pass 0.3 s).
:func:`cross_validated_baseline` on those 60,000 x 18 statistics: about 3 s.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.ndimage
import torch

from utils.metrics.checks import is_integer

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


_CHUNK = 8192  # images per batch for the labelling pass (int32 labels of ~25 MB at 28x28)


def image_battery(images) -> pd.DataFrame:
    """The battery of model-free statistics of ``images`` ``[N, C, H, W]`` (values in [0, 1]), one row per image
    in input order (RangeIndex; set the sample ids as index yourself). Columns: see the module docstring."""
    x = _as_gray(images)  # [N, H, W] float32, refuses other ranks with a one-sentence error
    out = pd.concat([intensity_stats(images), shape_stats(images)], axis=1)
    out["laplacian_abs_mean"] = _laplacian_abs_mean(x)
    ink = (x > INK_THRESHOLD).numpy()
    out["components_4"] = _components(ink, connectivity=1)
    out["components_8"] = _components(ink, connectivity=2)
    out["isolated_pixels_4"] = _isolated_4(ink)
    out["stroke_width"] = _stroke_width(ink)
    return out


def _laplacian_abs_mean(x: torch.Tensor) -> np.ndarray:
    """Mean |5-point Laplacian| with edge replication, by shifted slices (float32 sums, float64 mean)."""
    g = x.numpy()
    out = np.empty(len(g), dtype=np.float64)
    for s in range(0, len(g), _CHUNK):
        p = np.pad(g[s:s + _CHUNK], ((0, 0), (1, 1), (1, 1)), mode="edge")
        lap = p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:] - 4 * p[:, 1:-1, 1:-1]
        out[s:s + _CHUNK] = np.abs(lap).mean(axis=(1, 2), dtype=np.float64)
    return out


def _components(ink: np.ndarray, connectivity: int) -> np.ndarray:
    """Connected components per image; labels are numbered in scan order, so image i owns a contiguous block."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = scipy.ndimage.generate_binary_structure(2, connectivity)  # no link along the image axis
    counts = np.empty(len(ink), dtype=np.int64)
    for s in range(0, len(ink), _CHUNK):
        labels, _ = scipy.ndimage.label(ink[s:s + _CHUNK], structure=structure)
        last = np.maximum.accumulate(labels.reshape(len(labels), -1).max(axis=1))  # labels used up to image i
        counts[s:s + _CHUNK] = np.diff(last, prepend=0)
    return counts


def _isolated_4(ink: np.ndarray) -> np.ndarray:
    p = np.pad(ink, ((0, 0), (1, 1), (1, 1)))
    has_neighbour = p[:, :-2, 1:-1] | p[:, 2:, 1:-1] | p[:, 1:-1, :-2] | p[:, 1:-1, 2:]
    return (ink & ~has_neighbour).reshape(len(ink), -1).sum(axis=1).astype(np.int64)


def _stroke_width(ink: np.ndarray) -> np.ndarray:
    from skimage.morphology import skeletonize

    area = ink.reshape(len(ink), -1).sum(axis=1)
    length = np.fromiter((skeletonize(m).sum() if a else 0 for m, a in zip(ink, area)), dtype=np.int64,
                         count=len(ink))
    return np.divide(area, length, out=np.zeros(len(ink)), where=length > 0)


def cross_validated_baseline(stats: pd.DataFrame, target, folds: int = 5, seed: int = 0,
                             n_threads: int | None = 1) -> pd.Series:
    """Out-of-fold probability of the positive class of ``target`` from a classifier on the columns of ``stats``.

    This baseline TRAINS ON THE LABELS ``target`` (e.g. the injected is_mixed / flipped masks): with
    ``StratifiedKFold(folds, shuffle=True, random_state=seed)`` each sample is scored by a model fitted on the other
    folds only, so the score is out-of-sample (no in-sample leakage), but it is a supervised ceiling of what
    model-free statistics can reveal, not a label-free detector; compare label-free scores with
    the best single statistic too (``detection_table(stats, target, orientation="free")``).

    Classifier: ``HistGradientBoostingClassifier(early_stopping=True, random_state=seed)``, otherwise scikit-learn's
    defaults (the early-stopping split is a stratified 10 % of the training folds, so the held-out fold stays
    unseen). Chosen over a standardised logistic regression because it is invariant to monotone rescaling of each
    statistic, captures thresholds and interactions a linear model misses (e.g. many components AND thin strokes),
    and still fits 60,000 rows in seconds: the strongest simple competitor.

    ``stats``: one numeric, finite column per statistic. ``target``: boolean / 0-1, a Series aligned with ``stats``
    by index (or an array in row order), with at least ``folds`` samples of each class. ``n_threads``: OpenMP
    threads of the classifier (``None``: scikit-learn's default, all cores). The default 1 is deliberate: on a CPU
    shared with training runs, OpenMP threads that wait on each other were measured up to ~70x slower here
    (1,500 x 6 noise, 5 folds: about 1 s on one thread, over a minute on two busy cores). Returns a Series named
    ``battery_cv`` with ``stats``'s index; ``attrs`` records folds, seed and the classifier.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    X, y = _check_stats_target(stats, target)
    if not is_integer(folds) or folds < 2:
        raise ValueError(f"folds={folds!r} is not a valid number of folds; pass an integer >= 2.")
    smaller = int(min(y.sum(), (~y).sum()))
    if smaller < folds:
        raise ValueError(f"The smaller class has {smaller} samples, fewer than folds={folds}; lower folds or add "
                         "samples of that class.")
    clf = HistGradientBoostingClassifier(early_stopping=True, random_state=seed)
    with threadpool_limits(limits=n_threads, user_api="openmp"):
        prob = cross_val_predict(clf, X, y, cv=StratifiedKFold(int(folds), shuffle=True, random_state=seed),
                                 method="predict_proba")[:, 1]   # classes sorted: [False, True]
    out = pd.Series(prob, index=stats.index, name="battery_cv")
    out.attrs.update(folds=int(folds), seed=seed, classifier="HistGradientBoostingClassifier(early_stopping=True)")
    return out


def _check_stats_target(stats, target):
    if not isinstance(stats, pd.DataFrame) or stats.shape[1] == 0:
        raise TypeError("stats must be a pandas DataFrame with one column per statistic, e.g. image_battery(images).")
    bad = [c for c in stats.columns if not pd.api.types.is_numeric_dtype(stats[c])]
    if bad:
        raise TypeError(f"stats columns {bad} are not numeric; drop them or convert them to numbers.")
    X = stats.to_numpy(dtype=np.float64)
    if not np.isfinite(X).all():
        cols = stats.columns[~np.isfinite(X).all(axis=0)].tolist()
        raise ValueError(f"stats columns {cols} contain NaN or infinite values; drop or impute them first.")
    if isinstance(target, pd.Series):
        if not target.index.is_unique or not stats.index.isin(target.index).all() or len(target) != len(stats):
            raise ValueError("target must be indexed by the same sample ids as stats; select the same samples in both.")
        target = target.reindex(stats.index).to_numpy()
    t = np.asarray(target.detach().cpu() if isinstance(target, torch.Tensor) else target).reshape(-1)
    if len(t) != len(stats):
        raise ValueError(f"target has {len(t)} values for {len(stats)} rows of stats; pass one value per row.")
    if t.dtype != bool:
        values = pd.unique(t)
        if pd.isna(values).any() or not set(values.tolist()) <= {0, 1}:
            raise ValueError(f"target must be boolean or 0/1, got values like {values[:5].tolist()}; "
                             "binarise it first.")
        t = t.astype(bool)
    if t.all() or not t.any():
        raise ValueError("target must contain both positive and negative samples.")
    return X, t
