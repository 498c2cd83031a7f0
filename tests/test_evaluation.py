import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

from utils.scores.evaluate import holdout_threshold, score_table, srcc_ceiling


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


def test_score_table_matches_scipy_and_sklearn(data):
    scores, label = data
    table = score_table(scores, label)
    assert list(table.index) == list(table["auroc_best"].sort_values(ascending=False).index)
    y = label.to_numpy()
    for name, s in scores.items():
        row = table.loc[name]
        auc = roc_auc_score(y, s)
        assert row.srcc == pytest.approx(spearmanr(s, y).statistic)
        assert row.abs_srcc == pytest.approx(abs(row.srcc))
        assert row.auroc == pytest.approx(auc)
        assert row.auroc_best == pytest.approx(max(auc, 1 - auc))
        assert row.ap == pytest.approx(average_precision_score(y, s if auc >= 0.5 else -s))
        assert row.srcc_ceiling == pytest.approx(srcc_ceiling(y.mean()))
    assert table.loc["good", "direction"] == "higher=positive"
    assert table.loc["weak_low", "direction"] == "lower=positive"
    assert table.attrs["prevalence"] == pytest.approx(y.mean())
    assert table.loc["good", "f1"] > 0.3 > table.loc["noise", "f1"]


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
    assert neg.auroc == pytest.approx(1 - s.auroc)
    assert neg.auroc_best == pytest.approx(s.auroc_best)
    assert neg.srcc == pytest.approx(-s.srcc)
    assert (s.direction, neg.direction) == ("higher=positive", "lower=positive")
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
    assert h.direction == ("lower=positive" if sign < 0 else "higher=positive")
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
    with pytest.raises(ValueError, match="different sample ids"):
        score_table(scores, label.iloc[:-1])
    with pytest.raises(ValueError, match="different sample ids"):
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
