"""Tests for utils.scores.evaluate: the one detection table against scikit-learn / scipy, the registry's fixed
orientation, the held-out threshold, and the baselines."""
import numpy as np
import pandas as pd
import pytest
import scipy.stats
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

from utils.scores.evaluate import baseline_scores, detection_table, holdout_threshold, score_row, srcc_ceiling


def score_table(scores, label, **kw):
    """The autoencoder study's view: every column in its better orientation, SRCC and a held-out threshold."""
    return detection_table(scores, label, orientation="free", srcc=True, holdout=True, **kw)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    n = 3000
    y = rng.random(n) < 0.08
    ids = rng.permutation(n) + 10_000  # sample ids unrelated to positions
    scores = pd.DataFrame({
        "good": y * 1.5 + rng.normal(size=n),
        "weak_low": -0.3 * y + rng.normal(size=n),
        "noise": rng.normal(size=n),
        "ties": rng.integers(0, 5, n) + y,
    }, index=ids)
    return scores, pd.Series(y, index=ids)


def test_ceiling_value_and_simulation():
    assert srcc_ceiling(3000 / 57000) == pytest.approx(0.3868, abs=1e-4)
    rng = np.random.default_rng(1)
    for p in (0.05, 0.3, 0.5):
        y = rng.random(20_000) < p
        perfect = y + rng.random(y.size)  # every positive above every negative, no ties
        assert spearmanr(perfect, y).statistic == pytest.approx(srcc_ceiling(y.mean()), rel=1e-6)


def test_srcc_is_a_function_of_auroc():
    rng = np.random.default_rng(2)
    y = rng.random(5000) < 0.1
    for shift in (0.0, 0.4, -1.0, 2.0):
        s = shift * y + rng.normal(size=y.size)
        expected = (roc_auc_score(y, s) - 0.5) * np.sqrt(12 * y.mean() * (1 - y.mean()))
        assert spearmanr(s, y).statistic == pytest.approx(expected, rel=1e-6)


def test_free_orientation_matches_scipy_and_sklearn(data):
    scores, label = data
    table = score_table(scores, label)
    assert list(table.index) == list(table["auroc"].sort_values(ascending=False).index)
    y = label.to_numpy()
    for name, s in scores.items():
        row = table.loc[name]
        auc = roc_auc_score(y, s)
        assert row.srcc == pytest.approx(spearmanr(s, y).statistic)
        assert row.auroc == pytest.approx(max(auc, 1 - auc))
        assert row.ap == pytest.approx(average_precision_score(y, s if auc >= 0.5 else -s))
        assert row.srcc_ceiling == pytest.approx(srcc_ceiling(y.mean()))
        assert (row.positives, row.negatives) == (y.sum(), (~y).sum())
    assert table.loc["good", "direction"] == "higher"
    assert table.loc["weak_low", "direction"] == "lower"
    assert table.attrs["prevalence"] == pytest.approx(y.mean())
    assert table.loc["good", "f1"] > 0.3 > table.loc["noise", "f1"]


def test_registry_orientation_is_fixed_in_advance_and_never_flipped():
    """A registered score is evaluated in its declared direction: a score pointing the wrong way reads below 0.5."""
    rng = np.random.default_rng(5)
    y = rng.random(2000) < 0.1
    ids = np.arange(2000) * 7
    # aum is declared "lower": mislabeled samples have a low margin; el2n "higher"
    scores = pd.DataFrame({"aum": -2.0 * y + rng.normal(size=2000), "el2n": -1.0 * y + rng.normal(size=2000),
                           "unregistered": rng.normal(size=2000)}, index=ids)
    table = detection_table(scores, pd.Series(y, index=ids))
    assert list(table.index) == ["el2n", "aum"]   # registry order, unregistered columns left out
    assert table.loc["aum", "direction"] == "lower" and table.loc["el2n", "direction"] == "higher"
    assert table.loc["aum", "auroc"] == pytest.approx(roc_auc_score(y, -scores["aum"]))
    assert table.loc["el2n", "auroc"] == pytest.approx(roc_auc_score(y, scores["el2n"])) and table.loc["el2n",
                                                                                                      "auroc"] < 0.3
    assert table.loc["aum", "family"] == "supervised"
    flipped = detection_table(scores, pd.Series(y, index=ids), directions={"el2n": "lower"})
    assert flipped.loc["el2n", "auroc"] == pytest.approx(1 - table.loc["el2n", "auroc"])
    with pytest.raises(ValueError, match="no registered direction"):
        detection_table(scores, pd.Series(y, index=ids), columns=["unregistered"])


def test_negatives_restrict_the_comparison_and_baselines_come_with_it():
    rng = np.random.default_rng(6)
    n = 600
    ids = np.arange(n) + 100
    group = rng.integers(0, 3, n)           # 0 positive, 1 negative, 2 left out
    s = np.where(group == 0, 1.0, np.where(group == 1, 0.0, 2.0)) + 0.1 * rng.normal(size=n)
    stats = pd.DataFrame({"stat_a": rng.normal(size=n) + (group == 0), "stat_b": rng.normal(size=n)}, index=ids)
    scores = pd.concat([pd.DataFrame({"mean_loss": s}, index=ids), stats], axis=1)
    pos, neg = pd.Series(group == 0, index=ids), pd.Series(group == 1, index=ids)
    table = detection_table(scores, pos, neg, baselines=True, seed=3)
    keep = group < 2
    assert table.loc["mean_loss", "auroc"] == pytest.approx(roc_auc_score(group[keep] == 0, s[keep])) == 1.0
    assert table.loc["mean_loss", "negatives"] == (group == 1).sum()
    # the random baseline: a seeded uniform score on the compared samples
    rand = np.random.default_rng([3, 0x5C0]).random(keep.sum())
    assert table.loc["random", "auroc"] == pytest.approx(roc_auc_score(group[keep] == 0, rand))
    assert table.loc["battery_cv", "auroc"] > 0.65 and table.loc["battery_cv", "family"] == "baseline"


def test_describe_gives_the_class_means_and_equals_mann_whitney():
    rng = np.random.default_rng(1)
    is_mixed = np.r_[np.ones(50, bool), np.zeros(450, bool)]
    df = pd.DataFrame({"up": is_mixed + 0.0, "down": -(is_mixed + 0.0), "noise": rng.normal(size=500),
                       "shifted": rng.normal(size=500) + 0.5 * is_mixed})
    t = detection_table(df, pd.Series(is_mixed), orientation="free", describe=True)
    assert t.loc["up", "auroc"] == 1.0 and t.loc["down", "auroc"] == 1.0
    u = scipy.stats.mannwhitneyu(df["shifted"][is_mixed], df["shifted"][~is_mixed]).statistic / (50 * 450)
    assert t.loc["shifted", "auroc"] == pytest.approx(max(u, 1 - u))
    assert t.loc["up", "mean_positive"] == 1.0 and np.isnan(t.loc["up", "rel_diff"])
    assert t.loc["shifted", "rel_diff"] == pytest.approx(abs(df["shifted"][is_mixed].mean() / df["shifted"][
        ~is_mixed].mean() - 1))


def test_one_score_row_by_hand():
    s, y = np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True])
    row = score_row(s, y, "higher", describe=True)
    # ranked 0.8 (+), 0.4 (-), 0.35 (+), 0.1 (-): 3 of 4 pairs in order; precision 1 at recall 1/2, 2/3 at recall 1
    assert row["auroc"] == pytest.approx(0.75) and row["ap"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert (row["mean_positive"], row["mean_negative"]) == pytest.approx((0.575, 0.25))
    assert row["rel_diff"] == pytest.approx(0.325 / 0.25)
    lower = score_row(s, y, "lower", srcc=True)
    assert lower["auroc"] == pytest.approx(0.25) and lower["srcc"] == pytest.approx(spearmanr(s, y).statistic)
    assert lower["srcc_ceiling"] == pytest.approx(srcc_ceiling(0.5)) and "mean_positive" not in lower


def test_baselines_are_a_seeded_random_score_and_a_battery_classifier_when_there_is_one():
    rng = np.random.default_rng(0)
    y = np.arange(200) % 4 == 0                                  # 50 positives, 150 negatives
    scores = pd.DataFrame({"stat_mean": rng.normal(size=200) + 3 * y, "stat_flat": 1.0}, index=np.arange(200) * 3)
    base = baseline_scores(scores, y, seed=1)
    assert list(base.columns) == ["random", "battery_cv"] and base.index.equals(scores.index)
    assert roc_auc_score(y, base["battery_cv"]) > 0.9           # the statistic separates the classes
    assert base["random"].equals(baseline_scores(scores, y, seed=1)["random"])
    assert not base["random"].equals(baseline_scores(scores, y, seed=2)["random"])
    assert list(baseline_scores(scores[[]], y).columns) == ["random"]             # no image statistics
    assert list(baseline_scores(scores, np.arange(200) < 4).columns) == ["random"]  # 4 positives: too few to fold


def test_alignment_by_index_not_position(data):
    scores, label = data
    shuffled = label.sample(frac=1, random_state=3)
    pd.testing.assert_frame_equal(score_table(scores, label), score_table(scores, shuffled))
    # positional use of the shuffled labels would give a different table
    assert not np.allclose(score_table(scores, pd.Series(shuffled.to_numpy(), index=scores.index))["auroc"],
                           score_table(scores, label)["auroc"])


def test_negated_score_flips_direction(data):
    scores, label = data
    table = score_table(pd.DataFrame({"s": scores["good"], "neg": -scores["good"]}), label)
    s, neg = table.loc["s"], table.loc["neg"]
    assert neg.auroc == pytest.approx(s.auroc)
    assert neg.srcc == pytest.approx(-s.srcc)
    assert (s.direction, neg.direction) == ("higher", "lower")
    assert neg.ap == pytest.approx(s.ap)
    assert (neg.precision, neg.recall, neg.threshold) == pytest.approx((s.precision, s.recall, -s.threshold))


def test_holdout_matches_bruteforce_reference(data):
    scores, label = data
    s, y = scores["weak_low"].to_numpy(), label.to_numpy()
    h = holdout_threshold(s, y, seed=5)
    fit = h.fit_mask
    assert fit.sum() == y.size // 2 and abs(y[fit].sum() - y[~fit].sum()) <= 1  # stratified halves
    # reference: try every fit-half value as a threshold in the fit-half AUROC orientation
    sign = 1 if roc_auc_score(y[fit], s[fit]) >= 0.5 else -1
    cands = np.unique(sign * s[fit])
    f1s = [f1_score(y[fit], sign * s[fit] >= t) for t in cands]
    t = cands[int(np.argmax(f1s))]
    pred = sign * s[~fit] >= t
    assert h.threshold == pytest.approx(sign * t)
    assert h.direction == ("lower" if sign < 0 else "higher")
    assert h.precision == pytest.approx(precision_score(y[~fit], pred))
    assert h.recall == pytest.approx(recall_score(y[~fit], pred))
    assert h.f1 == pytest.approx(f1_score(y[~fit], pred))
    np.testing.assert_array_equal(h.predict(s), sign * s >= t)


def test_holdout_threshold_ignores_the_evaluation_half(data):
    scores, label = data
    s, y = scores["good"].to_numpy().copy(), label.to_numpy()
    h = holdout_threshold(s, y)
    # push the held-out positives far down: the full-data oracle threshold changes, ours must not
    s2 = s.copy()
    s2[~h.fit_mask & y] -= 10
    h2 = holdout_threshold(s2, y)
    assert (h2.threshold, h2.direction) == (h.threshold, h.direction)
    np.testing.assert_array_equal(h2.fit_mask, h.fit_mask)
    assert h2.recall == 0 and h.recall > 0.3
    cands = np.unique(s2)
    oracle = cands[np.argmax([f1_score(y, s2 >= t) for t in cands])]
    assert oracle != h2.threshold and f1_score(y, s2 >= oracle) > 0 == h2.f1


def test_seed_changes_the_split(data):
    scores, label = data
    a, b = (holdout_threshold(scores["good"], label.to_numpy(), seed=k) for k in (0, 1))
    assert not np.array_equal(a.fit_mask, b.fit_mask)


def test_bad_inputs(data):
    scores, label = data
    bad = scores.copy()
    bad.iloc[3, 1] = np.nan
    with pytest.raises(ValueError, match="weak_low"):
        score_table(bad, label)
    with pytest.raises(ValueError, match="positive has no entry for 1 scored sample ids"):
        score_table(scores, label.iloc[:-1])
    with pytest.raises(ValueError, match="positive has no entry"):
        score_table(scores, label.set_axis(label.index + 1))
    with pytest.raises(TypeError, match="Series"):
        score_table(scores, label.to_numpy())
    with pytest.raises(ValueError, match="0/1"):
        score_table(scores, label.astype(int) * 2)
    with pytest.raises(ValueError, match="equal length"):
        holdout_threshold(np.zeros(5), np.ones(4))


def test_constant_score_does_not_crash(data):
    scores, label = data
    table = score_table(scores.assign(const=1.0), label)
    row = table.loc["const"]
    assert row.auroc == 0.5 and np.isnan(row.srcc)
    assert row.ap == pytest.approx(label.mean())
    assert np.isfinite([row.precision, row.recall, row.f1]).all()


def test_ranked_breaks_ties_with_the_declared_secondary_score_then_the_id():
    from utils.scores.registry import SCORES, TIE_BREAK, ranked
    scores = pd.DataFrame({"forgetting_events": [2, 2, 2, 0], "mean_loss": [0.1, 0.9, 0.5, 3.0],
                           "aum": [1.0, 1.0, -1.0, 1.0]}, index=[30, 10, 20, 40])
    assert TIE_BREAK["forgetting_events"] == "mean_loss"
    assert ranked(scores, "forgetting_events").tolist() == [10, 20, 30, 40]     # ties ordered by mean loss
    assert ranked(scores.drop(columns="mean_loss"), "forgetting_events").tolist() == [10, 20, 30, 40]   # then by id
    assert ranked(scores, "aum").tolist() == [20, 10, 30, 40]                   # "lower" end first, ties by id
    assert set(TIE_BREAK) | set(TIE_BREAK.values()) <= set(SCORES)   # both ends of every tie-break are registered


def test_precision_recall_by_hand_and_in_every_caller():
    """One precision / recall: known answers, and the holdout threshold and the quadrant table report the values
    counted here by hand."""
    from utils.metrics.detection import precision_recall

    flag = np.array([1, 1, 1, 0, 0, 0, 0, 1], bool)
    truth = np.array([1, 1, 0, 1, 0, 0, 0, 0], bool)
    assert precision_recall(flag, truth) == (0.5, 2 / 3)                 # 2 of 4 flagged are true, 2 of 3 found
    p, r = precision_recall(np.zeros(4, bool), np.array([1, 0, 0, 0], bool))
    assert np.isnan(p) and r == 0.0
    assert precision_recall(np.zeros(4, bool), np.array([1, 0, 0, 0], bool), zero_division=0.0) == (0.0, 0.0)
    with pytest.raises(ValueError, match="aligned arrays"):
        precision_recall(flag, truth[:-1])
    # holdout_threshold: its held-out precision / recall are those of its rule's predictions, counted by hand
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.2
    score = y + rng.normal(0, 0.6, 300)
    h = holdout_threshold(score, y, seed=1)
    pred, held = h.predict(score)[~h.fit_mask], y[~h.fit_mask]
    tp = int((pred & held).sum())
    assert h.precision == pytest.approx(tp / pred.sum()) and h.recall == pytest.approx(tp / held.sum())


def test_registry_says_when_a_learning_time_reads_labels():
    """learning_time and the two-split study's columns read labels only through their learned rule (an
    autoencoder's SSIM reads none): the registry says so instead of "yes"; score_dataset's own SSFT and
    autoencoder columns keep a plain answer."""
    from utils.report.sections import registry_markdown
    from utils.scores.registry import SCORES, label_free

    for name in ("learning_time", "learning_fraction", "forgetting_time", "second_split_area"):
        assert SCORES[name].needs_labels is None and not label_free(name)
    assert SCORES["ssft_forgetting_time"].needs_labels is True and SCORES["mean_loss"].needs_labels is True
    assert label_free("ae_ssft_forgetting_time") and label_free("px_knn_distance")
    row = next(line for line in registry_markdown().splitlines() if line.startswith("| learning_time "))
    assert "with its learned rule" in row and "epochs" in row
