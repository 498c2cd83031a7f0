"""Label-free selection (utils.scores.labeling), the representation metrics and the labeling study's summaries,
each against an independent computation or a case with a known answer."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist

from utils.scores import labeling as L


def blobs(n_per=60, centres=((0, 0), (10, 0), (0, 10), (10, 10), (20, 20)), seed=0):
    rng = np.random.default_rng(seed)
    z = np.concatenate([rng.normal(c, 1.0, size=(n_per, 2)) for c in centres])
    return z, np.repeat(np.arange(len(centres)), n_per)


def test_budget_count_reads_counts_and_percentages():
    assert L.budget_count("300", 1000) == 300
    assert L.budget_count("5%", 1000) == 50
    assert L.budget_count(0.25, 1000) == 250
    assert L.budget_count(7, 10) == 7
    for bad in ("0", "abc", 11, "150%", True):
        with pytest.raises(ValueError):
            L.budget_count(bad, 10)


def test_quotas_are_proportional_and_exact():
    assert L.quotas([50, 30, 20], 10).tolist() == [5, 3, 2]
    assert L.quotas([5, 5, 1], 3).tolist() == [2, 1, 0]     # remainders 1.36, 1.36, 0.27: the larger groups first
    q = L.quotas([7, 1, 1, 1], 9)
    assert q.sum() == 9 and (q <= [7, 1, 1, 1]).all()


def test_typicality_is_the_inverse_mean_distance_to_the_k_nearest():
    z = np.random.default_rng(1).normal(size=(40, 3))
    d = cdist(z, z)
    np.fill_diagonal(d, np.inf)
    expected = 1 / (np.sort(d, 1)[:, :5].mean(1) + 1e-5)
    np.testing.assert_allclose(L.typicality(z, 5), expected, rtol=1e-10)
    assert L.typicality(z[:1], 5).tolist() == [0.0]


def test_typiclust_takes_the_densest_point_of_each_cluster():
    z, groups = blobs()
    out = L.typiclust(z, 5, seed=0, clusters=groups)
    assert sorted(out["cluster"]) == [0, 1, 2, 3, 4]          # one per cluster
    for c, i in zip(out["cluster"], out["sample_id"]):
        rows = np.flatnonzero(groups == c)
        d = cdist(z[rows], z[rows])
        np.fill_diagonal(d, np.inf)
        k = min(20, len(rows) // 2)
        assert rows[np.argmin(np.sort(d, 1)[:, :k].mean(1))] == i
    # with k-means itself (K = budget) every blob still gets one pick
    auto = L.typiclust(z, 5, seed=0)
    assert sorted(groups[auto["sample_id"]]) == [0, 1, 2, 3, 4]


def test_typiclust_visits_small_clusters_last():
    z, groups = blobs(n_per=30)
    groups = groups.copy()
    groups[:3] = 9                                            # a cluster of 3 points (<= MIN_CLUSTER)
    out = L.typiclust(z, 6, seed=0, clusters=groups)
    assert 9 not in out["cluster"].tolist()[:5]


def test_the_input_order_never_matters():
    z, groups = blobs()
    ids = np.arange(len(z)) + 100
    perm = np.random.default_rng(3).permutation(len(z))
    for fn in (lambda a, i: L.balanced_random(a, 20, i, seed=4, n_clusters=5),
               lambda a, i: L.typiclust(a, 7, i, seed=4)):
        assert fn(z, ids)["sample_id"].tolist() == fn(z[perm], ids[perm])["sample_id"].tolist()


def test_balanced_random_meets_each_quota_and_depends_on_the_seed():
    z, groups = blobs(n_per=40)
    sizes = np.bincount(groups)
    sizes[0] = 40
    out = L.balanced_random(z, 25, seed=0, clusters=groups)
    assert np.bincount(out["cluster"], minlength=5).tolist() == L.quotas(sizes, 25).tolist()
    assert out["sample_id"].is_unique
    assert set(out["sample_id"]) != set(L.balanced_random(z, 25, seed=1, clusters=groups)["sample_id"])


def _greedy_cover(z, delta, budget, tie):
    """ProbCover by hand on the dense ball matrix (ball of i = the points closer than delta, itself included)."""
    balls = cdist(z, z) < delta
    covered = np.zeros(len(z), bool)
    chosen = []
    for _ in range(budget):
        gain = (balls & ~covered).sum(1)
        if gain.max() == 0:
            break
        best = np.flatnonzero(gain == gain.max())
        i = best[np.argmin(tie[best])]
        chosen.append(i)
        covered |= balls[i]
    return chosen, covered.mean()


def test_probcover_is_greedy_max_coverage():
    z, _ = blobs(n_per=20)
    u = L.unit(z + 30)                                        # points on the unit circle
    out = L.probcover(u, 6, seed=2, delta=0.05)
    tie = L._rng(2, "probcover").permutation(len(u))
    chosen, coverage = _greedy_cover(u, 0.05, 6, tie)
    assert out["sample_id"].tolist()[:len(chosen)] == chosen
    assert out.attrs["coverage"] == pytest.approx(coverage)


def test_probcover_purity_and_its_delta():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(5), 30)
    angle = groups * 2 * np.pi / 5 + rng.normal(0, 0.08, len(groups))   # five arcs of the unit circle
    u = np.c_[np.cos(angle), np.sin(angle)]
    graph = L.ball_graph(u, cap=len(u) - 1)
    d = cdist(u, u)
    for delta in (0.01, 0.05, 0.2, 1.0):
        inside = (d < delta) & ~np.eye(len(u), dtype=bool)
        pure = ~(inside & (groups[None] != groups[:, None])).any(1)
        assert L.purity(graph, groups, delta) == pytest.approx(pure.mean())
    delta = L.choose_delta(graph, groups, 0.95)
    assert delta > 0.2
    assert L.purity(graph, groups, delta) >= 0.95
    bigger = [g for g in L.DELTA_GRID if g > delta]
    assert not bigger or L.purity(graph, groups, bigger[0]) < 0.95


def test_double_end_keeps_the_band_after_the_hardest():
    ids = np.arange(100)
    h = pd.Series(ids.astype(float), index=ids)               # id 99 is the hardest
    out = L.double_end(h, pd.Series(0, index=ids), 10, beta=0.3)
    assert sorted(out["sample_id"]) == list(range(60, 70))
    # per cluster: two clusters of 50, 5 each, the band after each cluster's hardest 30 % (15)
    two = L.double_end(h, pd.Series(ids % 2, index=ids), 10, beta=0.3)
    assert sorted(two["sample_id"]) == [60, 61, 62, 63, 64, 65, 66, 67, 68, 69]
    assert two.attrs["beta"] == 0.3
    assert L.double_end(h, pd.Series(0, index=ids), 10).attrs["beta"] == pytest.approx(0.3)   # elfs_beta(0.1)


def test_select_to_label_switches_regime_and_returns_the_budget():
    z, groups = blobs(n_per=80)
    z = np.c_[z, np.random.default_rng(0).normal(size=(len(z), 3))]
    small = L.select_to_label(z, 10, n_clusters=5)
    assert small.attrs["method"] == L.regime(10, 5) == "typiclust"
    big = L.select_to_label(z, 300, n_clusters=5)
    assert big.attrs["method"] == L.regime(300, 5) and len(big) == 300 and big["sample_id"].is_unique
    assert list(big.columns) == list(L.PICK_COLUMNS) and big["order"].tolist() == list(range(300))
    with pytest.raises(ValueError, match="hardness"):
        L.select_to_label(z, 10, method="elfs")


def test_knn_accuracy_equals_scikit_learns_leave_one_out():
    from sklearn.model_selection import LeaveOneOut, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    z = rng.normal(size=(120, 4))
    y = (z[:, 0] + 0.7 * rng.normal(size=120) > 0).astype(int) + (z[:, 1] > 1)
    from utils.metrics.representation import knn_accuracy

    pred = cross_val_predict(KNeighborsClassifier(7, algorithm="brute"), z, y, cv=LeaveOneOut())
    assert knn_accuracy(z, y, 7) == pytest.approx((pred == y).mean())


def test_cluster_accuracy_finds_the_best_matching():
    from utils.metrics.representation import cluster_accuracy

    y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    assert cluster_accuracy(y, np.array([5, 5, 5, 7, 7, 3, 3, 3])) == 1.0
    assert cluster_accuracy(y, np.array([1, 1, 0, 0, 0, 2, 2, 1])) == pytest.approx(6 / 8)
    assert cluster_accuracy(y, np.zeros(8)) == pytest.approx(3 / 8)   # one cluster matches one class


def test_protocol_gives_every_budget_the_same_steps():
    from utils.engine.recipes import get_recipe
    from utils.studies.labeling import protocol

    base = get_recipe("paper", batch_size=256)
    for n in (7, 60, 300, 999, 6000, 60000):
        recipe, size = protocol(base, n, 300)
        per_epoch = size or n
        assert recipe.batch_size == min(256, n) and size is None or size <= n
        assert recipe.max_epochs * math.ceil(per_epoch / recipe.batch_size) == 300


def test_paired_differences_and_their_interval_match_scipy():
    from scipy.stats import ttest_rel

    from utils.studies.labeling import goals, headline, paired

    rng = np.random.default_rng(0)
    rows = []
    for seed in range(5):
        rows.append({"method": "full", "budget": 1000, "seed": seed, "test_acc": 0.9})
        for m, shift in (("random", 0.0), ("typiclust", 0.02)):
            rows.append({"method": m, "budget": 60, "seed": seed, "test_acc": 0.5 + shift + rng.normal(0, 0.01)})
    table = pd.DataFrame(rows)
    p = paired(table).set_index("method").loc["typiclust"]
    a = table[table.method == "typiclust"]["test_acc"].to_numpy()
    b = table[table.method == "random"]["test_acc"].to_numpy()
    ci = ttest_rel(a, b).confidence_interval(0.95)
    assert p["diff_mean"] == pytest.approx((a - b).mean())
    assert (p["ci_low"], p["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert p["gap_closed"] == pytest.approx((a - b).mean() / (0.9 - b.mean()))
    g = goals(table).set_index("goal")
    assert bool(g.loc["60 labels: >= random + 8 pt", "met"]) is False      # +2 pt is not +8
    assert "typiclust" in headline(table).set_index("budget").loc[60, "best label-free"]


def test_a_partial_study_reports_only_the_cached_retrains(tmp_path):
    from utils.data.datasets import DatasetInfo
    from utils.data.samples import Samples
    from utils.studies.labeling import LabelingConfig, _retrain_shard

    import torch

    x = torch.rand(40, 1, 12, 12)
    pool = Samples(x, torch.arange(40) % 2, np.arange(40))
    info = DatasetInfo.from_images(x, pool.labels)
    config = LabelingConfig(steps=3, batch_size=8, seeds=(0,))
    jobs = [("random", 10, 0, np.arange(10)), ("random", 20, 0, np.arange(20))]
    kwargs = dict(pool=pool, test=pool, config=config, info=info, folder=tmp_path)
    assert _retrain_shard(jobs, train=False, **kwargs) == []                 # nothing cached: nothing trained
    first = _retrain_shard(jobs[:1], **kwargs)
    assert len(first) == 1 and first[0]["kept"] == 10 and first[0]["steps"] == 3
    again = _retrain_shard(jobs, train=False, **kwargs)                     # only the cached one, read back
    assert [r["budget"] for r in again] == [10] and again[0]["cached"] and again[0]["test_acc"] == first[0]["test_acc"]


def test_select_to_label_draws_at_random_where_no_selector_beat_random():
    z = np.random.default_rng(0).normal(size=(2000, 8))
    assert L.regime(1200, 10) == "typiclust" and L.regime(1201, 10) == "random"
    out = L.select_to_label(z, 1500, n_clusters=10, seed=3)          # 150 labels per cluster
    assert out.attrs["method"] == "random" and out["cluster"].between(0, 9).all()
    ref = L.random_draw(np.arange(2000), 1500, seed=3)
    assert out["sample_id"].tolist() == ref["sample_id"].tolist() and out["sample_id"].is_unique
    assert ref["sample_id"].tolist() != L.random_draw(np.arange(2000), 1500, seed=4)["sample_id"].tolist()


def test_the_plan_runs_the_goals_cells_seed_by_seed_first():
    from utils.studies.labeling import GOAL_BUDGETS, LabelingConfig, plan
    runs = plan(LabelingConfig(seeds=(0, 1)), 60000)
    assert [r[0] for r in runs[:2]] == ["full", "full"]
    goal = [i for i, (m, b, s) in enumerate(runs) if m == "typiclust" and b in GOAL_BUDGETS]
    other = [i for i, (m, b, s) in enumerate(runs) if m == "probcover"]
    assert max(goal) < min(other)
    tier1 = [r for r in runs if r[0] != "full" and r[1] in GOAL_BUDGETS and r[0] != "ccs_el2n"
             and not r[0].startswith("ccs_aum_beta") and r[0] != "probcover"]
    assert [r[2] for r in runs[2:2 + len(tier1)]] == sorted(r[2] for r in tier1)   # seed 0's cells, then seed 1's
    assert len(set(runs)) == len(runs) == 2 + 2 * 47                  # the same retrains, only reordered


def test_the_probe_section_states_accuracy_and_paired_differences(tmp_path):
    from utils.report.sections import label_probe_markdown

    rows = [dict(method=m, budget=60, seed=s, test_acc=a + 0.01 * s)
            for s in range(3) for m, a in (("random", 0.60), ("typiclust_hog", 0.65))]
    pd.DataFrame(rows).to_csv(tmp_path / "probe.csv", index=False)
    pd.DataFrame({"embedding": ["hog"], "dims": [50], "knn20_acc": [0.88], "kmeans_acc": [0.56]}).to_csv(
        tmp_path / "representations.csv")
    md = label_probe_markdown(tmp_path, tmp_path)
    assert "3 paired seeds" in md and "| hog " in md
    assert "+5.00 [+5.00, +5.00]" in md                     # every seed 5 pt above random: a zero-width interval
    assert "0.61 " in md and "0.66 " in md                   # the means over the seeds
