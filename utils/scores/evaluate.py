"""How well does a per-sample score find the samples with a binary label (e.g. the artificial "mixed" images)?

The original study reported |Spearman| against a 5%-positive label, which hides the direction and is capped far
below 1 (see `srcc_ceiling`), and F1 at an oracle threshold (P = R = F1 by construction). `score_table` reports
AUROC and average precision in the better orientation, the signed SRCC next to its ceiling, and precision / recall /
F1 at a threshold chosen on one stratified half of the samples and measured on the other half (`holdout_threshold`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
from sklearn.model_selection import train_test_split

HIGHER, LOWER = "higher=positive", "lower=positive"


def srcc_ceiling(prevalence: float) -> float:
    """Largest |Spearman| a binary label of this prevalence can reach against a tie-free score: sqrt(3 p (1-p)).

    For a tie-free score, rho = (AUROC - 0.5) * sqrt(12 p (1-p)) (times n / sqrt(n^2 - 1), which is 1 for any
    realistic n), so AUROC = 1 gives the ceiling. p = 3000/57000 gives 0.3868: an SRCC of 0.38 means near-perfect
    separation. (A score with ties can go higher: the label itself has rho = 1.)
    """
    p = float(prevalence)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"prevalence must lie in [0, 1], got {p}; pass the fraction of positive samples.")
    return float(np.sqrt(3.0 * p * (1.0 - p)))


@dataclass(frozen=True)
class Holdout:
    """A threshold chosen on the `fit_mask` half and its precision / recall / F1 on the other half."""

    threshold: float   # predict positive when score >= threshold (higher=positive) or <= threshold (lower=positive)
    direction: str     # HIGHER or LOWER, fixed by the AUROC on the fit half
    precision: float   # on the held-out half (~fit_mask)
    recall: float
    f1: float
    fit_mask: np.ndarray  # bool [N], True for the half that chose threshold and direction

    def predict(self, score) -> np.ndarray:
        """Boolean predictions of this rule for any score array."""
        score = np.asarray(score, dtype=float)
        return score >= self.threshold if self.direction == HIGHER else score <= self.threshold


def holdout_threshold(score, label, seed: int = 0) -> Holdout:
    """Choose direction and F1-maximising threshold on a seeded stratified half; report P / R / F1 on the other half.

    `score` and `label` are aligned 1-d arrays (label boolean or 0/1). The threshold is one of the fit half's score
    values. Example: ``h = holdout_threshold(loss, is_mixed); h.f1, h.predict(loss)``.
    """
    score = np.asarray(score, dtype=float).ravel()
    y = _binary(np.asarray(label).ravel(), "label")
    if score.shape != y.shape:
        raise ValueError(f"score has {score.size} values but label has {y.size}; pass aligned arrays of equal length.")
    if not np.isfinite(score).all():
        raise ValueError("score contains NaN or infinite values; drop or impute those samples first.")
    if min(y.sum(), (~y).sum()) < 2:
        raise ValueError("label needs at least 2 positives and 2 negatives to split into two stratified halves.")

    fit_idx, _ = train_test_split(np.arange(y.size), test_size=0.5, stratify=y, random_state=seed)
    fit = np.zeros(y.size, dtype=bool)
    fit[fit_idx] = True

    sign = 1.0 if roc_auc_score(y[fit], score[fit]) >= 0.5 else -1.0
    prec, rec, thr = precision_recall_curve(y[fit], sign * score[fit])
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * prec * rec / (prec + rec))
    threshold = sign * thr[np.argmax(f1[:-1])]  # last (P, R) = (1, 0) has no threshold

    h = Holdout(float(threshold), HIGHER if sign > 0 else LOWER, np.nan, np.nan, np.nan, fit)
    pred, truth = h.predict(score[~fit]), y[~fit]
    tp = int((pred & truth).sum())
    precision = tp / pred.sum() if pred.any() else 0.0
    recall = tp / truth.sum()
    f1_eval = 2 * precision * recall / (precision + recall) if tp else 0.0
    return Holdout(h.threshold, h.direction, float(precision), float(recall), float(f1_eval), fit)


def score_table(scores: pd.DataFrame, label: pd.Series, holdout_seed: int = 0) -> pd.DataFrame:
    """One row per metric: how well each score column separates the binary `label`, sorted by `auroc_best`.

    `scores` has one numeric column per metric, indexed by sample id; `label` is a boolean / 0-1 Series over the
    same ids (any order: it is aligned by index, never by position). Columns: srcc (signed Spearman), abs_srcc,
    auroc (higher score = positive), auroc_best = max(auroc, 1 - auroc), direction, ap (average precision in the
    better orientation), srcc_ceiling, prevalence, and threshold / precision / recall / f1 from `holdout_threshold`.
    A constant score gets auroc 0.5 and srcc NaN. ``table.attrs`` holds prevalence, n_samples and holdout_seed.
    """
    if not isinstance(scores, pd.DataFrame):
        raise TypeError("scores must be a pandas DataFrame with one column per metric, indexed by sample id.")
    if not isinstance(label, pd.Series):
        raise TypeError("label must be a pandas Series indexed by sample id; wrap an array as pd.Series(y, index=ids).")
    for name, index in (("scores", scores.index), ("label", label.index)):
        if not index.is_unique:
            raise ValueError(f"{name} has duplicate sample ids; give every sample one row.")
    if len(scores.index) != len(label.index) or not scores.index.isin(label.index).all():
        missing = scores.index.difference(label.index).union(label.index.difference(scores.index))
        raise ValueError(f"scores and label cover different sample ids ({len(missing)} unmatched, e.g. "
                         f"{list(missing[:3])}); select the same samples in both.")
    bad = [c for c in scores.columns if not pd.api.types.is_numeric_dtype(scores[c])]
    if bad:
        raise TypeError(f"score columns {bad} are not numeric; drop them or convert them to numbers.")
    nonfinite = [c for c in scores.columns if not np.isfinite(scores[c].to_numpy(dtype=float)).all()]
    if nonfinite:
        raise ValueError(f"score columns {nonfinite} contain NaN or infinite values; drop or impute those samples.")

    y = _binary(label.reindex(scores.index).to_numpy(), "label")
    p = float(y.mean())
    rows = {}
    for name in scores.columns:
        s = scores[name].to_numpy(dtype=float)
        with warnings.catch_warnings():  # a constant score: SRCC is undefined -> NaN
            warnings.simplefilter("ignore")
            srcc = float(spearmanr(s, y).statistic)
        auroc = float(roc_auc_score(y, s))
        h = holdout_threshold(s, y, seed=holdout_seed)
        rows[name] = dict(srcc=srcc, abs_srcc=abs(srcc), auroc=auroc, auroc_best=max(auroc, 1 - auroc),
                          direction=HIGHER if auroc >= 0.5 else LOWER,
                          ap=float(average_precision_score(y, s if auroc >= 0.5 else -s)),
                          srcc_ceiling=srcc_ceiling(p), prevalence=p,
                          threshold=h.threshold, precision=h.precision, recall=h.recall, f1=h.f1)
    table = pd.DataFrame.from_dict(rows, orient="index").sort_values("auroc_best", ascending=False, kind="stable")
    table.index.name = "metric"
    table.attrs.update(prevalence=p, n_samples=int(y.size), holdout_seed=holdout_seed)
    return table


def _binary(y: np.ndarray, name: str) -> np.ndarray:
    """`y` as a bool array, refusing anything that is not 0/1 or boolean."""
    if y.dtype == bool:
        return y
    values = pd.unique(y)
    if pd.isna(values).any() or not set(values.tolist()) <= {0, 1}:
        raise ValueError(f"{name} must be boolean or 0/1 without missing values, got values like "
                         f"{values[:5].tolist()}; binarise it first.")
    return y.astype(bool)
