"""How well SSFT scores find flagged samples (flipped labels, mixed images), each score in a fixed orientation.

The orientation of each score is fixed before looking at the labels (what the method claims: mislabeled
samples are forgotten *early*, learned *late*, forgotten *often*), so an AUROC below 0.5 is reported as
such rather than flipped. Precision / recall come from :func:`utils.scores.evaluate.holdout_threshold`: the
threshold is chosen on one stratified half and measured on the other.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from utils.scores.evaluate import holdout_threshold

# name -> (column of utils.scores.ssft.ssft_scores, sign that makes "higher = more suspicious")
SUSPICION = {
    "SSFT (forgetting time)": ("forgetting_time", -1),
    "learning time": ("learning_time", +1),
    "forgetting events": ("forgetting_events", +1),
    "second-split area": ("second_split_area", -1),
    "first-split area": ("first_split_area", -1),
}


def detection_table(scores: pd.DataFrame, flag: pd.Series, suspicion: dict = SUSPICION,
                    holdout_seed: int = 0, learned_direction: str = "higher") -> pd.DataFrame:
    """One row per score: AUROC and AP in the stated orientation, held-out precision / recall / F1.

    ``learned_direction`` is the rule's (``"lower"`` when a low measurement means learned, e.g. BarlowTwins
    cross-correlation): it flips the areas, which are raw measurements, so "suspicious" stays "less learned"."""
    y = flag.reindex(scores.index)
    if y.isna().any():
        raise ValueError("flag does not cover every scored sample id; pass a Series indexed by the same ids.")
    y = y.to_numpy(bool)
    rows = {}
    if learned_direction not in ("higher", "lower"):
        raise ValueError(f"learned_direction must be 'higher' or 'lower', got {learned_direction!r}.")
    for name, (column, sign) in suspicion.items():
        if learned_direction == "lower" and column.endswith("_area"):
            sign = -sign
        s = sign * scores[column].to_numpy(float)
        h = holdout_threshold(s, y, seed=holdout_seed)
        rows[name] = dict(column=column, orientation="lower" if sign < 0 else "higher",
                          auroc=roc_auc_score(y, s), ap=average_precision_score(y, s),
                          precision=h.precision, recall=h.recall, f1=h.f1,
                          flagged_held_out=int(h.predict(s)[~h.fit_mask].sum()))
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "score"
    table.attrs.update(n_samples=int(len(y)), n_flagged=int(y.sum()), prevalence=float(y.mean()))
    return table


def best_per_study(detection: pd.DataFrame, baselines: dict | None = None) -> pd.DataFrame:
    """Per study (first index level), the score with the largest orientation-free AUROC max(a, 1 - a).

    ``baselines`` maps a study name to the orientation-free AUROC of a model-free statistic, put beside it
    so a reader sees at once whether the learned score beats it."""
    free = detection["auroc"].where(detection["auroc"] >= 0.5, 1 - detection["auroc"])
    rows = {}
    for study, group in free.groupby(level=0, sort=False):
        score = group.droplevel(0).idxmax()
        rows[study] = {"best score": score, "auroc (stated orientation)": detection.loc[(study, score), "auroc"],
                       "auroc (orientation-free)": group.max()}
        if baselines is not None:
            rows[study]["model-free baseline"] = baselines.get(study, float("nan"))
    return pd.DataFrame.from_dict(rows, orient="index")
