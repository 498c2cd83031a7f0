"""Per-sample aggregates of a training-dynamics series, named as in the original study.

A series is a ``[E, N]`` array: row ``e`` is the state *after epoch e+1* (0-based epoch index, as in
the seed: ``loss__mean_from_50`` averages rows 50..E-1, i.e. epochs 51..E), column ``n`` is sample n.
For snapshot series (LID, silhouette) a row is a snapshot and ``k`` counts snapshots, not epochs.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
import torch

from utils.metrics.checks import is_integer

NAN_POLICIES = ("raise", "omit")


def scaled_epochs(k_seed, epochs: int, seed_epochs: int = 600):
    """Map the seed's 0-based epoch index (chosen for a ``seed_epochs`` run) to a run of ``epochs``.

    Proportional and rounded half up, capped at ``epochs - 1``: for a 100-epoch run the seed's 20, 50,
    400 and 450 become 3, 8, 67 and 75. Accepts one int (returns an int) or an iterable (returns a tuple).
    """
    if not is_integer(epochs) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}; pass the run's number of epochs.")
    if not is_integer(seed_epochs) or seed_epochs < 1:
        raise ValueError(f"seed_epochs must be a positive integer, got {seed_epochs!r}; the seed ran 600.")
    if isinstance(k_seed, Iterable):
        return tuple(scaled_epochs(k, epochs, seed_epochs) for k in k_seed)
    if not is_integer(k_seed) or not 0 <= k_seed < seed_epochs:
        raise ValueError(f"k_seed={k_seed!r} is not an epoch index of a {seed_epochs}-epoch run; "
                         f"pass an integer in [0, {seed_epochs - 1}].")
    return min(int(math.floor(k_seed * epochs / seed_epochs + 0.5)), epochs - 1)


def aggregate(series, name: str, last: bool = True, mean_from=(0, 20, 50), var_from=(0, 20), std_from=(),
              diff_last=(20,), sum_range=None, index=None, nan_policy: str = "raise") -> pd.DataFrame:
    """Per-sample statistics over the epoch axis of ``series`` ``[E, N]``, one row per sample.

    Columns (``s = series``, rows are 0-based epoch indices, ``s[E-1]`` is the last epoch):

    - ``{name}__last`` = ``s[E-1]``
    - ``{name}__mean_from_{k}`` = mean of ``s[k:]``
    - ``{name}__var_from_{k}`` / ``__std_from_{k}`` = population variance / std (ddof=0, as numpy) of ``s[k:]``
    - ``{name}__diff_last_{k}`` = ``s[E-1] - s[k]`` (negative when the value decreased)
    - ``{name}__sum_{a}_{b}`` = sum of ``s[a:b]``, half-open like Python slicing; ``sum_range`` is one
      ``(a, b)`` pair or a list of pairs.

    Every ``k`` must lie in ``[0, E-1]`` (use :func:`scaled_epochs` for runs shorter than the seed's);
    repeated ``k`` give one column. Statistics are computed in float64. ``index`` (sample ids, length N)
    becomes the DataFrame index. ``nan_policy="omit"`` ignores NaN epochs per sample (nanmean etc.);
    the default raises on NaN so missing values are not silently averaged.
    """
    s = _as_series(series)
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy={nan_policy!r} is unknown; pass 'raise' or 'omit'.")
    finite = np.isfinite(s)
    if not finite.all():
        if np.isinf(s).any():
            raise ValueError(f"series {name!r} contains inf values; replace them (e.g. by NaN with "
                             "nan_policy='omit') before aggregating.")
        if nan_policy == "raise":
            raise ValueError(f"series {name!r} contains NaN values; clean it first or pass nan_policy='omit' "
                             "to ignore NaN epochs.")
    e, n = s.shape
    if index is None:
        index = pd.RangeIndex(n, name="sample_id")
    elif len(index) != n:
        raise ValueError(f"index has {len(index)} entries but series has {n} samples (columns); "
                         "pass one id per sample.")
    elif not isinstance(index, pd.Index):
        index = pd.Index(np.asarray(index), name="sample_id")
    omit = not finite.all()
    mean = np.nanmean if omit else np.mean
    var = np.nanvar if omit else np.var
    total = np.nansum if omit else np.sum
    cols: dict[str, np.ndarray] = {}
    if last:
        cols[f"{name}__last"] = s[e - 1].astype(np.float64)
    for k in _check_ks(mean_from, e, "mean_from"):
        cols[f"{name}__mean_from_{k}"] = mean(s[k:], axis=0, dtype=np.float64)
    for k in _check_ks(var_from, e, "var_from"):
        cols[f"{name}__var_from_{k}"] = var(s[k:], axis=0, dtype=np.float64)
    for k in _check_ks(std_from, e, "std_from"):
        cols[f"{name}__std_from_{k}"] = np.sqrt(var(s[k:], axis=0, dtype=np.float64))
    for k in _check_ks(diff_last, e, "diff_last"):
        cols[f"{name}__diff_last_{k}"] = s[e - 1].astype(np.float64) - s[k]
    for a, b in _check_ranges(sum_range, e):
        cols[f"{name}__sum_{a}_{b}"] = total(s[a:b], axis=0, dtype=np.float64)
    return pd.DataFrame(cols, index=index)


def _as_series(series) -> np.ndarray:
    if isinstance(series, torch.Tensor):
        series = series.detach().cpu().numpy()
    s = np.asarray(series)
    if s.ndim != 2:
        raise ValueError(f"series must be 2-D [epochs, samples], got shape {tuple(s.shape)}; "
                         "stack one row per epoch.")
    if s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"series has shape {tuple(s.shape)}; it needs at least one epoch and one sample.")
    if not np.issubdtype(s.dtype, np.number) or np.issubdtype(s.dtype, np.complexfloating):
        raise ValueError(f"series must hold real numbers, got dtype {s.dtype}; convert it with .astype(float).")
    return s


def _check_ks(ks, e: int, what: str) -> list[int]:
    if ks is None:
        return []
    if is_integer(ks):
        ks = (ks,)
    out = []
    for k in ks:
        if not is_integer(k) or not 0 <= k < e:
            raise ValueError(f"{what}={k!r} is outside the series of {e} epochs; pick an integer in [0, {e - 1}] "
                             "(scaled_epochs maps the seed's 600-epoch indices to shorter runs).")
        out.append(int(k))
    return list(dict.fromkeys(out))


def _check_ranges(sum_range, e: int) -> list[tuple[int, int]]:
    if sum_range is None:
        return []
    pairs = [sum_range] if len(sum_range) == 2 and all(is_integer(v) for v in sum_range) \
        else list(sum_range)
    out = []
    for pair in pairs:
        try:
            a, b = pair
        except (TypeError, ValueError):
            raise ValueError(f"sum_range entry {pair!r} is not an (a, b) pair; pass e.g. sum_range=(0, 100).") from None
        if not all(is_integer(v) for v in (a, b)) or not 0 <= a < b <= e:
            raise ValueError(f"sum_range={pair!r} is not a half-open range inside {e} epochs; "
                             f"pass integers with 0 <= a < b <= {e}.")
        out.append((int(a), int(b)))
    return list(dict.fromkeys(out))
