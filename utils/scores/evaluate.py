"""The one evaluation: how well each per-sample score finds a set of flagged samples (mixed images, flipped labels,
an injected hardness type), in the orientation the registry fixed before any label was seen.

:func:`detection_table` is used by every study: the scoreboard (AUROC / AP against each injected type, with the
``random`` and ``battery_cv`` baselines), the SSFT studies (with held-out precision / recall), the autoencoder
study (orientation-free, with the signed SRCC next to its ceiling, as the seed's tables need) and the model-free
separability checks (orientation-free, with the two class means).

The original study reported |Spearman| against a 5%-positive label, which hides the direction and is capped far
below 1 (see :func:`srcc_ceiling`), and F1 at an oracle threshold (P = R = F1 by construction). Here AUROC and
average precision come from scikit-learn, the signed SRCC from scipy, and precision / recall / F1 at a threshold
chosen on one stratified half of the samples and measured on the other half (:func:`holdout_threshold`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
from sklearn.model_selection import train_test_split

from utils.metrics.detection import precision_recall

HIGHER, LOWER = "higher", "lower"   # which end of a score is predicted positive


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
    precision, recall = precision_recall(pred, truth, zero_division=0.0)
    f1_eval = 2 * precision * recall / (precision + recall) if precision * recall > 0 else 0.0
    return Holdout(h.threshold, h.direction, float(precision), float(recall), float(f1_eval), fit)


def detection_table(scores: pd.DataFrame, positive: pd.Series, negative: pd.Series | None = None, *,
                    columns=None, orientation: str = "registry", directions: dict | None = None,
                    holdout: bool = False, srcc: bool = False, describe: bool = False, baselines: bool = False,
                    seed: int = 0) -> pd.DataFrame:
    """One row per score: how well it ranks the ``positive`` samples above the ``negative`` ones.

    ``scores``: one numeric column per score, indexed by sample id. ``positive``: bool by sample id (aligned by
    index, never by position). ``negative``: bool by sample id, the samples to compare against (default: every
    sample not positive); the others are left out. ``columns``: which scores (default: the registered ones with
    ``orientation="registry"``, every numeric one with ``"free"``).

    ``orientation``: ``"registry"`` evaluates each score in the direction :mod:`utils.scores.registry` fixed
    before any experiment (an AUROC below 0.5 is reported as such, never flipped); ``"free"`` takes each score in
    its better orientation on these samples (the seed study's scores have no stated direction). ``directions``
    overrides single columns (``{"second_split_area": "higher"}``: a rule under which a low measurement means
    learned). Columns: ``score``, ``family``, ``direction``, ``auroc`` and ``ap`` in that direction, and
    ``positives``, ``negatives``, ``prevalence``; with ``srcc`` the signed Spearman of the raw score with the
    label and its :func:`srcc_ceiling`; with ``holdout`` threshold / precision / recall / f1 / flagged_held_out
    of :func:`holdout_threshold`; with ``describe`` the class means and their relative gap; with ``baselines``
    the rows ``random`` (seeded uniform score) and, when ``scores`` holds the ``stat_*`` image battery and both
    sides have 5 samples, ``battery_cv`` (:func:`utils.scores.battery.cross_validated_baseline` trained on this
    very target: a ceiling of what image statistics reveal).
    Sorted as given (registry) or by AUROC (free). ``attrs`` holds prevalence and n_samples."""
    from utils.scores.registry import SCORES

    keep, y = _compared_samples(scores, positive, negative, orientation)
    values = scores.loc[keep, _score_columns(scores, columns, orientation, directions)].astype(float)
    directions = dict(directions or {})
    if baselines:
        for col, s in baseline_scores(scores.loc[keep], y, seed).items():
            values[col] = s.to_numpy()
            directions.setdefault(col, "higher")
    rows = []
    for col in values.columns:
        s = values[col].to_numpy()
        if not np.isfinite(s).all():
            if orientation == "free" or holdout:
                raise ValueError(f"score column {col!r} contains NaN or infinite values; drop or impute those "
                                 "samples.")
            continue   # a family that could not score every sample (e.g. a constant embedding) is left out
        d = directions.get(col) or (SCORES[col].direction if orientation == "registry" else
                                    "higher" if roc_auc_score(y, s) >= 0.5 else "lower")
        row = score_row(s, y, d, srcc=srcc, holdout=holdout, describe=describe, free=orientation == "free",
                        seed=seed)
        rows.append(dict(score=col, family=SCORES[col].family if col in SCORES else "", **row))
    p = float(y.mean())
    table = pd.DataFrame(rows)
    table["positives"], table["negatives"], table["prevalence"] = int(y.sum()), int((~y).sum()), p
    if orientation == "free":
        table = table.sort_values("auroc", ascending=False, kind="stable")
    table = table.set_index("score")
    table.attrs.update(prevalence=p, n_samples=int(y.size), seed=seed)
    return table


def score_row(s: np.ndarray, y: np.ndarray, direction: str, *, srcc: bool = False, holdout: bool = False,
              describe: bool = False, free: bool = False, seed: int = 0) -> dict:
    """The measures of one score ``s`` against the bool label ``y`` (aligned arrays, finite scores): ``direction``,
    ``auroc`` and ``ap`` with ``s`` read in ``direction``; with ``srcc`` the signed Spearman of the raw score and its
    :func:`srcc_ceiling`; with ``holdout`` :func:`holdout_threshold` on the oriented score (``free``: on the raw
    score, which then picks its own direction on the fit half); with ``describe`` the class means and their gap."""
    oriented = s if direction == "higher" else -s
    row = dict(direction=direction, auroc=float(roc_auc_score(y, oriented)),
               ap=float(average_precision_score(y, oriented)))
    if srcc:
        with warnings.catch_warnings():  # a constant score: SRCC is undefined -> NaN
            warnings.simplefilter("ignore")
            row["srcc"] = float(spearmanr(s, y).statistic)
        row["srcc_ceiling"] = srcc_ceiling(float(y.mean()))
    if holdout:
        x = s if free else oriented
        h = holdout_threshold(x, y, seed=seed)
        row.update(threshold=h.threshold, precision=h.precision, recall=h.recall, f1=h.f1,
                   flagged_held_out=int(h.predict(x)[~h.fit_mask].sum()))
    if describe:
        m1, m0 = s[y].mean(), s[~y].mean()
        row.update(mean_positive=m1, mean_negative=m0, rel_diff=abs(m1 - m0) / abs(m0) if m0 != 0 else np.nan)
    return row


def baseline_scores(scores: pd.DataFrame, y: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """The reference rows of :func:`detection_table` for the label ``y`` (bool, aligned with ``scores``' rows), each
    higher = positive: ``random`` (a seeded uniform score) and, when ``scores`` holds ``stat_*`` image statistics
    and both classes have 5 samples, ``battery_cv`` (:func:`utils.scores.battery.cross_validated_baseline` trained
    on this very label: a ceiling of what image statistics reveal)."""
    rng = np.random.default_rng([seed, 0x5C0])   # a stream of its own, not the one that drew the injection
    out = pd.DataFrame({"random": rng.random(len(scores))}, index=scores.index)
    stats = scores[[c for c in scores.columns if c.startswith("stat_")]]
    if stats.shape[1] and min(y.sum(), (~y).sum()) >= 5:
        from utils.scores.battery import cross_validated_baseline
        stats = stats.loc[:, stats.std() > 0]
        out["battery_cv"] = cross_validated_baseline(stats, pd.Series(y, index=stats.index), folds=5, seed=seed)
    return out


def _compared_samples(scores, positive, negative, orientation) -> tuple[np.ndarray, np.ndarray]:
    """(rows of ``scores`` compared, their bool label) for :func:`detection_table`, or one sentence saying why not."""
    if orientation not in ("registry", "free"):
        raise ValueError(f"orientation must be 'registry' or 'free', got {orientation!r}.")
    if not isinstance(scores, pd.DataFrame):
        raise TypeError("scores must be a pandas DataFrame with one column per score, indexed by sample id.")
    for name, s in (("positive", positive), ("negative", negative)):
        if s is not None and not isinstance(s, pd.Series):
            raise TypeError(f"{name} must be a pandas Series indexed by sample id; wrap an array as "
                            "pd.Series(flags, index=ids).")
    for name, index in (("scores", scores.index), ("positive", positive.index)):
        if not index.is_unique:
            raise ValueError(f"{name} has duplicate sample ids; give every sample one row.")
    missing = scores.index.difference(positive.index)
    if len(missing):
        raise ValueError(f"positive has no entry for {len(missing)} scored sample ids (e.g. {list(missing[:3])}); "
                         "select the same samples in both.")
    pos = _binary(positive.reindex(scores.index).to_numpy(), "positive")
    neg = ~pos if negative is None else _binary(negative.reindex(scores.index).fillna(False).to_numpy(),
                                                "negative") & ~pos
    keep = pos | neg
    y = pos[keep]
    if y.all() or not y.any():
        raise ValueError(f"Need positives and negatives to evaluate, got {int(y.sum())} of {len(y)} positive.")
    return keep, y


def _score_columns(scores, columns, orientation, directions) -> list:
    """The columns :func:`detection_table` evaluates (default: the registered numeric ones, or every numeric one
    with ``orientation="free"``), each with a direction, or one sentence saying why not."""
    from utils.scores.registry import SCORES, registered

    if columns is None:
        numeric = [c for c in scores.columns if pd.api.types.is_numeric_dtype(scores[c])
                   and not pd.api.types.is_bool_dtype(scores[c])]
        columns = registered(numeric) if orientation == "registry" else numeric
    unknown = [c for c in columns if orientation == "registry" and c not in SCORES and c not in (directions or {})]
    if unknown:
        raise ValueError(f"{unknown} have no registered direction; register them, pass directions=, or use "
                         "orientation='free'.")
    bad = [c for c in columns if c not in scores.columns or not pd.api.types.is_numeric_dtype(scores[c])]
    if bad:
        raise TypeError(f"score columns {bad} are missing or not numeric; drop them or convert them to numbers.")
    return list(columns)


def _binary(y: np.ndarray, name: str) -> np.ndarray:
    """`y` as a bool array, refusing anything that is not 0/1 or boolean."""
    if y.dtype == bool:
        return y
    values = pd.unique(y)
    if pd.isna(values).any() or not set(values.tolist()) <= {0, 1}:
        raise ValueError(f"{name} must be boolean or 0/1 without missing values, got values like "
                         f"{values[:5].tolist()}; binarise it first.")
    return y.astype(bool)
