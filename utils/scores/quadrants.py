"""Typical / atypical / ambiguous / mislabeled quadrants from learning time and forgetting time.

Thresholds are never picked by eye: each is Otsu's threshold (scikit-image) of its time column on a
seeded random half of the samples (the *fit* half), then applied to all samples; counts and any
precision / recall against a known flag are reported on the other (*held-out*) half. Otsu suits these
columns because they are bimodal (learned early vs late, forgotten vs never forgotten); the threshold is
then moved to the middle of the empty gap it falls in.

=================  ==========================  ==========================
                   forgotten (FT <= t_FT)       kept (FT > t_FT)
=================  ==========================  ==========================
learned early      ambiguous                   typical
learned late       mislabeled                  atypical (rare)
=================  ==========================  ==========================
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from skimage.filters import threshold_otsu

from utils.metrics.detection import precision_recall

QUADRANTS = ("typical", "atypical", "ambiguous", "mislabeled")


@dataclass(frozen=True)
class QuadrantRule:
    lt_threshold: float
    ft_threshold: float
    lt_column: str
    ft_column: str
    fit_ids: pd.Index

    def assign(self, scores: pd.DataFrame) -> pd.Series:
        """The quadrant of every sample, as a categorical Series indexed like ``scores``."""
        late = scores[self.lt_column].to_numpy() > self.lt_threshold
        kept = scores[self.ft_column].to_numpy() > self.ft_threshold
        names = np.select([~late & kept, late & kept, ~late & ~kept], QUADRANTS[:3], QUADRANTS[3])
        return pd.Series(pd.Categorical(names, categories=QUADRANTS), index=scores.index, name="quadrant")


def fit_quadrants(scores: pd.DataFrame, lt_column: str = "learning_fraction",
                  ft_column: str = "forgetting_fraction", seed: int = 0) -> QuadrantRule:
    """Otsu thresholds of both time columns on a seeded half of the samples."""
    for col in (lt_column, ft_column):
        if col not in scores:
            raise ValueError(f"scores has no column {col!r}; pass the output of utils.scores.ssft.ssft_scores.")
    if len(scores) < 4:
        raise ValueError(f"Need at least 4 samples to fit quadrant thresholds, got {len(scores)}.")
    rng = np.random.default_rng(seed)
    fit = np.sort(rng.choice(len(scores), size=len(scores) // 2, replace=False))
    sub = scores.iloc[fit]
    return QuadrantRule(_otsu(sub[lt_column]), _otsu(sub[ft_column]), lt_column, ft_column, scores.index[fit])


def quadrant_table(quadrant: pd.Series, rule: QuadrantRule, flag: pd.Series | None = None) -> pd.DataFrame:
    """Counts per quadrant on all samples and on the held-out half; with a boolean ``flag`` (e.g. flipped),
    how many flagged samples each quadrant holds and the quadrant's precision / recall for the flag there."""
    held = ~quadrant.index.isin(rule.fit_ids)
    table = pd.DataFrame({"all": quadrant.value_counts(), "held_out": quadrant[held].value_counts()})
    table = table.reindex(list(QUADRANTS)).fillna(0).astype(int)
    if flag is not None:
        f = flag.reindex(quadrant.index).to_numpy(bool)
        q = quadrant.to_numpy()
        table["flagged_held_out"] = [int((f & held & (q == name)).sum()) for name in QUADRANTS]
        # the quadrant as a flag of the held-out half: precision NaN for an empty quadrant, recall 0 with no flag
        pr = [precision_recall(q[held] == name, f[held]) for name in QUADRANTS]
        table["precision_held_out"] = [p for p, _ in pr]
        table["recall_held_out"] = [0.0 if np.isnan(r) else r for _, r in pr]
    return table


def _otsu(values: pd.Series) -> float:
    v = values.to_numpy(dtype=float)
    if np.ptp(v) == 0:  # one level only: nothing to split, every sample falls on the same side
        return float(v[0])
    nbins = 256
    t = threshold_otsu(v, nbins=nbins)
    # skimage returns the centre of the last histogram bin of the lower class, and Otsu's criterion is flat
    # across an empty gap, so that is the upper edge of the lower mode: keep Otsu's split of the fit half (the
    # whole bin goes below) and put the threshold in the middle of the gap above it (the largest margin)
    edge = t + np.ptp(v) / nbins / 2
    below, above = v[v <= edge], v[v > edge]
    return float((below.max() + above.min()) / 2) if len(below) and len(above) else float(t)
