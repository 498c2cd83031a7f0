"""Scores from hand-made runs, the learned rule, and quadrants with held-out Otsu thresholds."""
import numpy as np
import pandas as pd
import pytest

from utils.engine.protocols import TwoSplitRun
from utils.engine.recorder import Recorder
from utils.scores.quadrants import QUADRANTS, fit_quadrants, quadrant_table
from utils.scores.ssft import ssft_scores


def _stage(ids, rows):
    rec = Recorder(ids)
    for log, row in enumerate(rows):
        rec.record("m", log, ids, row)
    return rec


def _run(seed, order, ids, first, second, k=2):
    ids = np.asarray(ids)
    return TwoSplitRun(seed, order, ids, _stage(ids, first), _stage(ids, second), k, pd.DataFrame())


def test_scores_from_hand_made_runs_average_over_seeds():
    # seed 0: sample 10 learned at log 1, forgotten at stage-2 log 2 of 4 (k = 2); sample 11 never forgotten
    runs = [_run(0, "AB", [10], [[0.1], [0.9], [0.8]], [[0.9], [0.7], [0.2], [0.1]]),
            _run(0, "BA", [11], [[0.9], [0.9], [0.9]], [[0.9], [0.9], [0.9], [0.9]]),
            _run(1, "AB", [11], [[0.2], [0.2], [0.9]], [[0.9], [0.9], [0.9], [0.1]]),
            _run(1, "BA", [10], [[0.9], [0.2], [0.9]], [[0.2], [0.2], [0.2], [0.2]])]
    s = ssft_scores(runs, "m", 0.5)
    assert s.loc[10, "learning_time"] == pytest.approx(((1 + 1) + (2 + 1)) / 2)      # epochs: (log + 1) / 1
    assert s.loc[10, "forgetting_time"] == pytest.approx(((2 + 1) / 2 + (0 + 1) / 2) / 2)
    assert s.loc[11, "never_forgotten"] == 0.5 and s.loc[11, "forgetting_fraction"] == pytest.approx((1 + 3 / 4) / 2)
    assert s.loc[10, "forgetting_events"] == 0.5 and s.loc[10, "first_split_area"] == pytest.approx((1.8 + 2.0) / 6)
    lower = ssft_scores(runs, "m", 0.5, "lower")  # the rule is a parameter: no retraining
    assert lower.loc[11, "never_learned"] == 1.0 and s.loc[11, "never_learned"] == 0.0
    with pytest.raises(ValueError, match="Unknown measurement"):
        ssft_scores(runs, "ssim", 0.5)
    with pytest.raises(ValueError, match="twice"):
        ssft_scores(runs + [_run(1, "AB", [10], [[0.1]] * 3, [[0.1]] * 4)], "m", 0.5)


def test_quadrants_recover_planted_groups_with_held_out_thresholds():
    rng = np.random.default_rng(0)
    n = 400
    group = rng.choice(QUADRANTS, size=n, p=[0.7, 0.1, 0.1, 0.1])
    late = np.isin(group, ["atypical", "mislabeled"])
    forgotten = np.isin(group, ["ambiguous", "mislabeled"])
    scores = pd.DataFrame({"learning_fraction": np.where(late, 0.8, 0.1) + rng.normal(0, 0.03, n),
                           "forgetting_fraction": np.where(forgotten, 0.1, 1.0) - rng.uniform(0, 0.05, n)},
                          index=pd.Index(np.arange(n) * 3, name="sample_id"))
    rule = fit_quadrants(scores, seed=0)
    assert 0.2 < rule.lt_threshold < 0.7 and 0.2 < rule.ft_threshold < 0.9
    quadrant = rule.assign(scores)
    assert (quadrant.to_numpy() == group).all()
    flag = pd.Series(group == "mislabeled", index=scores.index)
    table = quadrant_table(quadrant, rule, flag)
    assert table["all"].sum() == n and table["held_out"].sum() == n - n // 2
    assert table.loc["mislabeled", "precision_held_out"] == 1.0 and table.loc["mislabeled", "recall_held_out"] == 1.0
    with pytest.raises(ValueError, match="no column"):
        fit_quadrants(scores.drop(columns="learning_fraction"))


def test_detection_orientation_is_fixed_and_areas_follow_the_rule():
    from utils.studies.ssft import best_per_study
    from utils.studies.ssft import ssft_detection as detection_table
    rng = np.random.default_rng(0)
    n = 200
    flag = pd.Series(rng.random(n) < 0.2, index=np.arange(n))
    f = flag.to_numpy()
    scores = pd.DataFrame({"forgetting_time": np.where(f, 1.0, 5.0) + rng.random(n),   # flagged forgotten early
                           "learning_time": np.where(f, 5.0, 1.0) + rng.random(n),     # and learned late
                           "forgetting_events": rng.integers(0, 3, n).astype(float),
                           "first_split_area": np.where(f, 0.2, 0.8),                # less learned (higher = learned)
                           "second_split_area": np.where(f, 0.8, 0.2)}, index=flag.index)  # wrong way round
    t = detection_table(scores, flag)
    assert t.loc["forgetting_time", "auroc"] == 1.0 and t.loc["learning_time", "auroc"] == 1.0
    assert t.loc["first_split_area", "auroc"] == 1.0 and t.loc["second_split_area", "auroc"] == 0.0  # not flipped
    assert t.loc["forgetting_time", "direction"] == "lower" and t.loc["learning_time", "direction"] == "higher"
    lower = detection_table(scores, flag, learned_direction="lower")  # low measurement = learned
    assert lower.loc["second_split_area", "auroc"] == 1.0 and lower.loc["first_split_area", "auroc"] == 0.0
    best = best_per_study(pd.concat({"s": t}), {"s": 0.7})
    assert best.loc["s", "auroc (orientation-free)"] == 1.0 and best.loc["s", "model-free baseline"] == 0.7
