"""utils.studies.pruning: exact counts, policy semantics, CCS strata, dedup pairs, cached retrains, resumable studies."""
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

import utils.studies.pruning as pruning
from utils.data.datasets import load_dataset
from utils.data.inject import from_arrays, inject
from utils.data.samples import Samples
from utils.engine.cache import load_table
from utils.engine.recipes import get_recipe
from utils.engine.tasks import make_task
from utils.scores.geometry import embedding_scores
from utils.scores.selection import (POLICIES, allocate_strata, dedup_order, default_beta, keep_count, select,
                                    select_after_dedup, semantic_duplicates)
from utils.studies.pruning import budget_recipe, pruning_study, retrain, smallest_fraction_within, accuracy_summary


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def scores(n=1000, seed=0, ties=False):
    """Oriented scores on shuffled, non-contiguous ids."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(10 * n)[:n]
    values = rng.integers(0, 5, n).astype(float) if ties else rng.normal(size=n)
    return pd.Series(values, index=ids)


@pytest.fixture(scope="module")
def mnist():
    x, y, info = load_dataset("mnist-5k", "train")
    xt, yt, _ = load_dataset("mnist-5k", "test")
    return x, y, info, Samples(xt[:200], yt[:200], np.arange(200))


# ---------------------------------------------------------------------------------------------- select
@pytest.mark.parametrize("n,fraction,k", [(10, 0.15, 2), (10, 0.25, 3), (10, 0.001, 1), (7, 1.0, 7), (1000, 1 / 3, 333),
                                          (1000, 0.3, 300)])
def test_exact_counts(n, fraction, k):
    assert keep_count(fraction, n) == k
    s = scores(n)
    for policy in POLICIES:
        assert len(np.unique(select(s, fraction, policy, seed=3))) == k


def test_keep_hard_and_easy_match_a_sort():
    s = scores(500)
    by_value = s.sort_values()
    assert np.array_equal(select(s, 0.2, "keep_hard"), np.sort(by_value.index[-100:]))
    assert np.array_equal(select(s, 0.2, "keep_easy"), np.sort(by_value.index[:100]))


def test_ties_broken_by_seeded_permutation_not_by_id():
    s = pd.Series(1.0, index=np.arange(100))
    a, b = select(s, 0.1, "keep_hard", seed=0), select(s, 0.1, "keep_hard", seed=1)
    assert np.array_equal(a, select(s, 0.1, "keep_hard", seed=0))
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, np.arange(10)) and not np.array_equal(a, np.arange(90, 100))
    # a tie at the boundary: all 3's are kept after the 4's, and which 3's is seeded
    t = scores(1000, ties=True)
    kept = t.loc[select(t, 0.3, "keep_hard", seed=5)]
    assert kept.min() >= t.sort_values().iloc[-300]


def test_random_ignores_values_is_seeded_and_nested():
    s = scores(400)
    other = pd.Series(np.arange(400.0), index=s.index)
    a = select(s, 0.25, "random", seed=7)
    assert np.array_equal(a, select(other, 0.25, "random", seed=7))
    assert not np.array_equal(a, select(s, 0.25, "random", seed=8))
    assert set(select(s, 0.1, "random", seed=7)) <= set(a)


@pytest.mark.parametrize("policy", POLICIES)
def test_input_order_does_not_matter(policy):
    s = scores(600, ties=True)
    shuffled = s.sample(frac=1.0, random_state=1)
    assert np.array_equal(select(s, 0.3, policy, seed=2), select(shuffled, 0.3, policy, seed=2))


# ---------------------------------------------------------------------------------------------- ccs
def test_allocate_strata_by_hand():
    assert allocate_strata([1, 5, 10, 2], 10).tolist() == [1, 3, 4, 2]   # 10//4=2 ->1; 9//3=3 ->2; 7//2=3; 4
    assert allocate_strata([0, 3, 3], 5).tolist() == [0, 2, 3]
    assert allocate_strata([4, 4], 8).tolist() == [4, 4]


def test_ccs_budget_per_stratum_matches_hand_computation():
    # strata of width 0.25 on [0, 1] holding 1, 5, 10, 2 samples
    values = [0.0] + [0.3] * 5 + [0.6] * 10 + [0.8, 1.0]
    s = pd.Series(values, index=np.random.default_rng(0).permutation(100)[:18])
    kept = s.loc[select(s, 10 / 18, "ccs", seed=0, strata=4)]
    counts = np.bincount(np.minimum((kept.to_numpy() / 0.25).astype(int), 3), minlength=4)
    assert counts.tolist() == [1, 3, 4, 2]


def test_ccs_cuts_the_hardest_and_covers_every_stratum():
    s = pd.Series(np.random.default_rng(1).uniform(size=1000) ** 3, index=np.arange(1000) * 7)  # skewed
    kept = select(s, 0.3, "ccs", seed=0, beta=0.2, strata=10)
    assert len(kept) == 300
    hardest = s.sort_values().index[-200:]
    assert not set(kept) & set(hardest)
    rest = s.drop(hardest)
    edges = np.linspace(rest.min(), rest.max(), 11)
    nonempty = set(np.minimum(np.searchsorted(edges, rest, side="right") - 1, 9))
    assert set(np.minimum(np.searchsorted(edges, s.loc[kept], side="right") - 1, 9)) == nonempty
    # ccs flattens a skewed score: the sparse upper half of the range is over-represented relative to the pool
    upper = (rest.min() + rest.max()) / 2
    assert (s.loc[kept] > upper).mean() > 2 * (rest > upper).mean()


def test_ccs_default_beta_and_budget_errors():
    assert default_beta(0.9) == 0 and default_beta(0.1) == pytest.approx(0.3)
    assert default_beta(0.5) > default_beta(0.7) == 0
    s = scores(200)
    kept = select(s, 0.1, "ccs", seed=0, beta=None)      # beta = default_beta(0.1) = 0.3
    assert not set(kept) & set(s.sort_values().index[-60:])
    with pytest.raises(ValueError, match="fewer than"):
        select(s, 0.9, "ccs", beta=0.2)


@pytest.mark.parametrize("args,match", [
    ((0.0, "keep_hard"), "fraction"), ((1.5, "keep_hard"), "fraction"), (("0.5", "keep_hard"), "fraction"),
    ((0.5, "bogus"), "Unknown policy"), ((0.5, "keep_easy", 0, 0.1), "beta"), ((0.5, "ccs", 0, 1.0), "beta"),
])
def test_bad_input_errors(args, match):
    fraction, policy, *rest = args
    kwargs = {"seed": rest[0], "beta": rest[1]} if rest else {}
    with pytest.raises(ValueError, match=match):
        select(scores(50), fraction, policy, **kwargs)


def test_nan_and_non_series_errors():
    s = scores(50)
    s.iloc[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        select(s, 0.5, "random")
    with pytest.raises(ValueError, match="Series"):
        select(s.to_numpy(), 0.5, "keep_hard")


# ---------------------------------------------------------------------------------------------- dedup
def test_dedup_order_by_hand():
    nearest = pd.Series({1: 2, 2: 1, 3: 1, 4: 5, 5: 4})
    dist = pd.Series({1: 0.1, 2: 0.1, 3: 0.3, 4: 0.2, 5: 0.2})
    red = dedup_order(nearest, dist)
    top = red.sort_values().index[-3:]
    assert set(top) == {2, 3, 5}                            # the smallest id of each pair keeps: 1 and 4
    assert red.loc[3] == red[top].min()                     # the farthest redundant sample goes last
    assert red.attrs["keepers"] == 2
    # the input order never changes the keeper
    assert dedup_order(nearest.iloc[::-1], dist.iloc[::-1]).sort_index().equals(red.sort_index())


def test_dedup_order_and_duplicates_csv_keep_the_same_copy():
    """Planted pairs: the redundancy ordering and the flags' duplicate groups (duplicates.csv, clean_keep) keep the
    same member of every pair, the smallest id, whichever member comes first."""
    from utils.scores.flags import add_flags, duplicate_keepers

    rng = np.random.default_rng(0)
    ids = rng.permutation(np.arange(100, 160))                 # 60 samples in a shuffled order
    far = pd.Series(5.0 + rng.random(60), index=ids)
    nearest = pd.Series(np.roll(ids, 1), index=ids)           # every sample points at another, far away
    pairs = [(ids[i], ids[i + 1]) for i in range(0, 20, 2)]   # 10 planted pairs, the larger id first as often
    for a, b in pairs:
        nearest[a], nearest[b] = b, a
        far[a] = far[b] = 0.01
    table = pd.DataFrame({"px_nn_distance": far, "px_nearest_id": nearest, "px_knn_distance": far})
    flags = add_flags(table)
    keep_csv = duplicate_keepers(flags["duplicate_group"])
    red = dedup_order(nearest, far)
    kept_by_order = set(select(red, 50 / 60, "keep_easy"))     # drop the 10 most redundant
    for a, b in pairs:
        assert flags.loc[[a, b], "flag_near_duplicate"].all()
        keeper = min(a, b)                                    # the known answer
        assert keep_csv[keeper] and not keep_csv[max(a, b)]
        assert keeper in kept_by_order and max(a, b) not in kept_by_order


def test_dedup_keeps_one_of_each_injected_pair(mnist):
    x, y, _, _ = mnist
    data = inject(from_arrays(x[:300], y[:300], name="mnist-5k"), "near_duplicates", 0.1, seed=0)
    emb = embedding_scores(data.images.flatten(1), ids=torch.from_numpy(data.ids), k=5)
    red = dedup_order(emb["nearest_id"], emb["nn_distance"])
    kept = set(select(red, 300 / 330, "keep_easy", seed=0))
    copies = data.meta[data.meta["near_duplicates"]]
    pairs = list(zip(copies.index, copies["source_id"]))
    assert len(pairs) == 30 and len(kept) == 300
    assert all((c in kept) != (s in kept) for c, s in pairs)
    assert all(s in kept for _, s in pairs)                 # the copy has the larger id: the source stays


# ---------------------------------------------------------------------------------------------- retrain
def test_sorscher_keeps_easy_when_little_is_kept_and_hard_when_much_is():
    s = scores()
    assert select(s, 0.2, "sorscher", 3).tolist() == select(s, 0.2, "keep_easy", 3).tolist()
    assert select(s, 0.3, "sorscher", 3).tolist() == select(s, 0.3, "keep_easy", 3).tolist()
    assert select(s, 0.5, "sorscher", 3).tolist() == select(s, 0.5, "keep_hard", 3).tolist()


def test_select_after_dedup_drops_redundant_first():
    s = scores(n=100)
    redundant = pd.Series(False, index=s.index)
    redundant.iloc[::4] = True                                   # 25 redundant samples
    pool = s[~redundant]
    kept = select_after_dedup(s, redundant, 0.5, "keep_hard", seed=1)
    assert len(kept) == 50 and not redundant.loc[kept].any()
    assert kept.tolist() == select(pool, 50 / 75, "keep_hard", 1).tolist()     # the policy, run on the rest
    # the overall fraction decides sorscher's side: 0.2 of all keeps the easiest of the rest
    assert select_after_dedup(s, redundant, 0.2, "sorscher", 1).tolist() == \
        np.sort(pool.sort_values().index[:20]).tolist()
    # more than the rest: all of it, and the policy picks the remainder among the redundant
    big = select_after_dedup(s, redundant, 0.9, "keep_hard", seed=1)
    top = s[redundant].sort_values().index[-15:]
    assert len(big) == 90 and set(pool.index) <= set(big) and set(top) <= set(big)
    with pytest.raises(ValueError, match="redundant must be a bool Series"):
        select_after_dedup(s, redundant.iloc[1:], 0.5, "keep_hard")


def test_semantic_duplicates_keep_one_of_each_close_group():
    ids = pd.Index([5, 6, 7, 8, 9, 10])
    nearest = pd.Series([6, 5, 8, 7, 10, 9], index=ids)          # three mutual pairs
    distance = pd.Series([0.1, 0.1, 0.2, 0.2, 0.9, 0.9], index=ids)
    dup = semantic_duplicates(nearest, distance, eps=0.05)        # cosine 0.95 = distance sqrt(0.1) = 0.316
    assert dup.dtype == bool and dup.attrs["eps"] == 0.05
    assert dup.loc[[5, 6]].sum() == 1 and dup.loc[[7, 8]].sum() == 1 and not dup.loc[[9, 10]].any()
    assert not semantic_duplicates(nearest, distance, eps=0.001).any()
    with pytest.raises(ValueError, match="eps must be a cosine distance"):
        semantic_duplicates(nearest, distance, eps=-1)


def test_budget_recipe_steps():
    r = get_recipe("paper", max_epochs=3, batch_size=100)
    assert budget_recipe(r, 10_000, 500, "epochs") is r
    assert budget_recipe(r, 1000, 250, "steps").max_epochs == 10        # 30 steps / 3 per epoch
    assert budget_recipe(r, 10_000, 500, "steps").max_epochs == 60      # 5 % kept: the full run's 300 steps
    assert budget_recipe(r, 10_000, 100, "steps").max_epochs == 60      # 300 steps, capped at 20 x 3
    assert budget_recipe(r, 1000, 1000, "steps").max_epochs == 3
    with pytest.raises(ValueError, match="budget"):
        budget_recipe(r, 1000, 100, "flops")


def test_retrain_caches_and_refuses_other_settings(mnist, tmp_path, monkeypatch):
    x, y, info, test = mnist
    data = Samples(x[:600], y[:600], np.arange(600) + 1000)
    task, recipe = make_task("cnn", info), get_recipe("paper", max_epochs=1, patience=None, batch_size=64)
    kept = data.ids[::2]                                     # 300 samples
    first = retrain(task, recipe, data, kept, test=test, seed=0, folder=tmp_path / "r")
    assert not first["cached"] and first["kept"] == 300 and first["epochs"] == 1 and first["steps"] == 5
    assert first["test_acc"] > 0.5 and np.isfinite(first["test_loss"])   # one epoch on 300 digits learns something
    saved = load_table(tmp_path / "r" / "result.parquet")     # lossless: the same float, bit for bit
    assert saved["test_acc"].iloc[0] == first["test_acc"] and saved["epochs"].dtype == np.int64

    def no_training(*args, **kwargs):
        raise AssertionError("retrained instead of reading the cache")
    monkeypatch.setattr(pruning, "train", no_training)
    second = retrain(task, recipe, data, kept, test=test, seed=0, folder=tmp_path / "r")
    assert second["cached"] and second["test_acc"] == first["test_acc"]
    with pytest.raises(ValueError, match="other settings"):
        retrain(task, recipe, data, kept, test=test, seed=1, folder=tmp_path / "r")
    with pytest.raises(ValueError, match="not in data"):
        retrain(task, recipe, data, [0, 1], test=test, seed=0)


# ---------------------------------------------------------------------------------------------- study
def test_pruning_study_resumes_only_missing_runs(mnist, tmp_path, monkeypatch):
    x, y, info, test = mnist
    data = Samples(x[:200], y[:200], np.arange(200))
    task, recipe = make_task("cnn", info), get_recipe("paper", max_epochs=1, patience=None, batch_size=50)
    table_scores = pd.DataFrame({"loss": np.random.default_rng(0).normal(size=200)}, index=data.ids)
    kwargs = dict(fractions=(0.5, 1.0), policies_by_score={"loss": ("keep_hard", "ccs", "random")}, seeds=(0,),
                  task=task, recipe=recipe, folder=tmp_path)
    first = pruning_study(data, test, table_scores, **kwargs)
    assert list(zip(first.score, first.policy)) == [("full", "full"), ("random", "random"), ("loss", "keep_hard"),
                                                    ("loss", "ccs")]
    assert first.kept.tolist() == [200, 100, 100, 100] and not first.cached.any()
    assert first.loc[first.policy == "ccs", "beta"].item() == pytest.approx(0.1)

    shutil.rmtree(tmp_path / "loss" / "keep_hard" / "f0.5" / "seed0")
    calls = []
    real = pruning.train
    monkeypatch.setattr(pruning, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = pruning_study(data, test, table_scores, **kwargs)
    assert len(calls) == 1 and again.cached.tolist() == [True, True, False, True]
    pd.testing.assert_series_equal(again.test_acc, first.test_acc)   # CPU runs are bit-identical
    part = pruning_study(data, test, table_scores, shard=(1, 2), **kwargs)
    assert part.policy.tolist() == ["random", "ccs"] and len(calls) == 1


def test_rs2_subsets_and_dedup_policies_in_one_study(mnist, tmp_path):
    x, y, info, test = mnist
    data = Samples(x[:200], y[:200], np.arange(200))
    task, recipe = make_task("cnn", info), get_recipe("paper", max_epochs=1, patience=None, batch_size=50)
    rng = np.random.default_rng(0)
    table_scores = pd.DataFrame({"loss": rng.normal(size=200)}, index=data.ids)
    redundant = pd.Series(np.arange(200) % 5 == 0, index=data.ids)
    clean = np.arange(0, 200, 2)
    table = pruning_study(data, test, table_scores, fractions=(0.25, 1.0), seeds=(0,), task=task, recipe=recipe,
                          folder=tmp_path, budget="steps", baselines=("random", "rs2"), subsets={"clean": clean},
                          policies_by_score={"loss": ("dedup_sorscher",)}, redundant=redundant)
    got = table.set_index(["score", "policy"])
    assert list(got.index) == [("full", "full"), ("random", "random"), ("rs2", "rs2"), ("clean", "subset"),
                               ("loss", "dedup_sorscher")]
    # fixed iterations: every run takes the full run's 4 steps (rs2: 50 of the 200 samples per epoch, 4 epochs)
    assert got["steps"].tolist() == [4, 4, 4, 4, 4]
    assert got.loc[("rs2", "rs2"), "kept"] == 50 and got.loc[("rs2", "rs2"), "epochs"] == 4
    assert got.loc[("clean", "subset"), "fraction"] == 0.5 and got.loc[("clean", "subset"), "kept"] == 100
    # the dedup run trained on the 50 easiest (sorscher at 25 %) of the non-redundant samples
    settings = load_table(tmp_path / "loss" / "dedup_sorscher" / "f0.25" / "seed0" / "result.parquet")
    assert settings["kept"].item() == 50
    with pytest.raises(ValueError, match="pass redundant="):
        pruning_study(data, test, table_scores, fractions=(0.25,), seeds=(0,), task=task, recipe=recipe,
                      folder=tmp_path, policies_by_score={"loss": ("dedup_ccs",)})
    with pytest.raises(ValueError, match="baselines must be"):
        pruning_study(data, test, table_scores, fractions=(0.25,), seeds=(0,), task=task, recipe=recipe,
                      folder=tmp_path, policies_by_score={}, baselines=("uniform",))


def test_paired_tests_match_scipy_and_flag_differences_beyond_the_spread():
    from scipy.stats import ttest_rel
    from utils.studies.pruning import paired_tests
    acc = {("random", 0.1): [0.80, 0.81, 0.79], ("a", 0.1): [0.85, 0.86, 0.83], ("b", 0.1): [0.80, 0.80, 0.81],
           ("random", 0.5): [0.88, 0.88, 0.89], ("a", 0.5): [0.88, 0.89, 0.88]}
    rows = [{"score": n, "policy": "random" if n == "random" else "keep_hard", "fraction": f, "seed": seed,
             "kept": 1, "test_acc": v} for (n, f), vals in acc.items() for seed, v in enumerate(vals)]
    rows += [{"score": "full", "policy": "full", "fraction": 1.0, "seed": 0, "kept": 1, "test_acc": 0.9}]
    out = paired_tests(pd.DataFrame(rows)).set_index(["score", "fraction"])
    assert len(out) == 3
    a = out.loc[("a", 0.1)]
    assert a.diff_mean == pytest.approx(np.mean([0.05, 0.05, 0.04]))
    assert a.p_value == pytest.approx(ttest_rel(acc[("a", 0.1)], acc[("random", 0.1)]).pvalue)
    assert a.beyond_spread and not out.loc[("b", 0.1)].beyond_spread and not out.loc[("a", 0.5)].beyond_spread


def test_study_input_errors(mnist, tmp_path):
    x, y, info, test = mnist
    data = Samples(x[:20], y[:20], np.arange(20))
    common = dict(seeds=(0,), task=make_task("cnn", info), recipe=get_recipe("paper", max_epochs=1), folder=tmp_path)
    s = pd.DataFrame({"a": np.zeros(20), "random": np.zeros(20)}, index=data.ids)
    with pytest.raises(ValueError, match="not a column"):
        pruning_study(data, test, s, fractions=(0.5,), policies_by_score={"b": ("keep_hard",)}, **common)
    with pytest.raises(ValueError, match="reserved"):
        pruning_study(data, test, s, fractions=(0.5,), policies_by_score={"random": ("keep_hard",)}, **common)
    with pytest.raises(ValueError, match="policies"):
        pruning_study(data, test, s, fractions=(0.5,), policies_by_score={"a": "keep_hard"}, **common)
    with pytest.raises(ValueError, match="fraction"):
        pruning_study(data, test, s, fractions=(0.0,), policies_by_score={"a": ("keep_hard",)}, **common)
    with pytest.raises(ValueError, match="lack"):
        pruning_study(data, test, s.iloc[1:], fractions=(0.5,), policies_by_score={"a": ("keep_hard",)}, **common)
    assert not any(tmp_path.iterdir())                                   # nothing trained, no folder claimed


def test_each_run_of_a_study_trains_on_what_its_rule_keeps_in_its_own_folder(mnist, tmp_path, monkeypatch):
    """The study's orchestration, without training: every (score, policy, fraction, seed) of the plan, in order,
    gets the ids its selection rule keeps (ids in reverse order of the scores' index, so alignment matters), the
    CCS cut, the RS2 slice and its folder."""
    x, y, info, test = mnist
    data = Samples(x[:40], y[:40], np.arange(40) * 3 + 1)
    rng = np.random.default_rng(2)
    s = pd.DataFrame({"a": rng.normal(size=40)}, index=data.ids[::-1])
    redundant = pd.Series(np.arange(40) % 4 == 0, index=data.ids)
    calls = []

    def fake(task, recipe, data_, kept, *, test, seed, folder, budget, per_epoch):
        calls.append((np.sort(np.asarray(kept)).tolist(), per_epoch, folder.relative_to(tmp_path).as_posix()))
        return {"kept": len(kept), "cached": True}

    monkeypatch.setattr(pruning, "retrain", fake)
    table = pruning_study(data, test, s, fractions=(0.5, 1.0), seeds=(3,), task=None, recipe=get_recipe("paper"),
                          folder=tmp_path, baselines=("random", "rs2"), subsets={"odd": data.ids[1::2]},
                          policies_by_score={"a": ("ccs", "random", "dedup_keep_easy")}, redundant=redundant,
                          strata=5)
    a, flat = s["a"].reindex(data.ids), pd.Series(0.0, index=data.ids)
    want = [(data.ids.tolist(), None, "full/full/f1/seed3"),
            (np.sort(select(flat, 0.5, "random", 3)).tolist(), None, "random/random/f0.5/seed3"),
            (data.ids.tolist(), 20, "rs2/rs2/f0.5/seed3"),
            (data.ids[1::2].tolist(), None, "odd/subset/seed3"),
            (np.sort(select(a, 0.5, "ccs", 3, beta=default_beta(0.5), strata=5)).tolist(), None, "a/ccs/f0.5/seed3"),
            (np.sort(select_after_dedup(a, redundant, 0.5, "keep_easy", 3)).tolist(), None,
             "a/dedup_keep_easy/f0.5/seed3")]
    assert calls == want
    assert table["beta"].isna().tolist() == [True, True, True, True, False, True]
    assert table.loc[4, "beta"] == default_beta(0.5) and table.loc[3, "fraction"] == 0.5


def test_summary_and_smallest_fraction():
    rows = [("full", "full", 1.0, 0.90), ("full", "full", 1.0, 0.92),
            ("random", "random", 0.1, 0.80), ("random", "random", 0.5, 0.88),
            ("a", "keep_hard", 0.1, 0.85), ("a", "keep_hard", 0.5, 0.907),
            ("b", "keep_easy", 0.1, 0.70), ("b", "keep_easy", 0.5, 0.915),
            ("c", "ccs", 0.1, 0.81), ("c", "ccs", 0.5, 0.89)]
    table = pd.DataFrame([{"score": s, "policy": p, "fraction": f, "seed": i % 2, "kept": 100, "test_acc": a}
                          for i, (s, p, f, a) in enumerate(rows)])
    s = accuracy_summary(table)
    full = s[s.policy == "full"].iloc[0]
    assert full.acc_mean == pytest.approx(0.91) and full.acc_std == pytest.approx(np.std([0.90, 0.92], ddof=1))
    assert full.runs == 2
    out = smallest_fraction_within(table, tolerance=0.005).set_index(["score", "policy"])
    assert out.loc[("a", "keep_hard"), "smallest_fraction"] == 0.5
    assert bool(out.loc[("a", "keep_hard"), "beats_random"])
    assert out.loc[("b", "keep_easy"), "smallest_fraction"] == 0.5
    assert not out.loc[("b", "keep_easy"), "beats_random"]
    assert np.isnan(out.loc[("c", "ccs"), "smallest_fraction"]) and bool(out.loc[("c", "ccs"), "beats_random"])
    assert pd.isna(out.loc[("random", "random"), "beats_random"])
    assert out.loc[("a", "keep_hard"), "min_margin_vs_random"] == pytest.approx(0.027)


def test_parallel_study_matches_one_process(mnist, tmp_path):
    from utils.studies.pruning import parallel_study
    x, y, info, test = mnist
    data = Samples(x[:120], y[:120], np.arange(120) * 3)
    task, recipe = make_task("cnn", info), get_recipe("paper", max_epochs=1, patience=None, batch_size=40)
    s = pd.DataFrame({"loss": np.random.default_rng(1).normal(size=120)}, index=data.ids)
    kwargs = dict(fractions=(0.5, 1.0), policies_by_score={"loss": ("keep_easy",)}, seeds=(0,), task=task,
                  recipe=recipe)
    two = parallel_study(data, test, s, workers=2, folder=tmp_path / "two", **kwargs)
    one = pruning_study(data, test, s, folder=tmp_path / "one", **kwargs)
    assert two.cached.all()                              # read back from the workers' runs
    pd.testing.assert_series_equal(two.test_acc, one.test_acc)   # one thread or two, the same numbers


def test_study_scores_orient_and_mark_label_free():
    from utils.studies.pruning import study_scores
    ids = pd.Index([5, 9, 12, 20], name="sample_id")
    scored = pd.DataFrame({"aum": [1.0, -2.0, 0.5, 3.0], "el2n": [0.1, 0.9, 0.3, 0.0],
                           "bt_prototype_distance": [0.2, 0.1, 0.4, 0.3],
                           "px_nearest_id": [9, 5, 20, 12], "px_nn_distance": [0.1, 0.1, 3.0, 3.0]}, index=ids)
    out = study_scores(scored)
    assert out["aum"].tolist() == [-1.0, 2.0, -0.5, -3.0]            # low AUM = hard
    assert out["el2n"].tolist() == scored["el2n"].tolist()
    assert set(out.attrs["label_free"]) == {"prototype", "redundancy"}
    # one member of each mutual pair is redundant (> 0.5), the closer pair first
    assert (out["redundancy"] > 0.5).sum() == 2 and out["redundancy"].idxmax() in (5, 9)


def test_semantic_duplicates_by_share_is_the_rule_by_distance_at_the_eps_that_share_amounts_to():
    ids = np.arange(8) * 3 + 1
    nearest = pd.Series([4, 1, 10, 7, 16, 13, 22, 19], index=ids)     # four mutual pairs; the keeper: smaller id
    distance = pd.Series([0.10, 0.10, 0.20, 0.20, 0.30, 0.30, 0.05, 0.05], index=ids)
    by_share = semantic_duplicates(nearest, distance, share=0.25)          # 2 of 8: the 0.05 and 0.10 pairs' copies
    assert by_share[by_share].index.tolist() == [4, 22]
    assert by_share.attrs["eps"] == pytest.approx(0.10 ** 2 / 2)
    between = (0.10 ** 2 / 2 + 0.20 ** 2 / 2) / 2                         # an eps between the 2nd and 3rd distance
    assert semantic_duplicates(nearest, distance, eps=between).equals(by_share)
    assert semantic_duplicates(nearest, distance, share=0.9).sum() == 4   # at most one member of each pair
    with pytest.raises(ValueError, match="exactly one of eps"):
        semantic_duplicates(nearest, distance)
    with pytest.raises(ValueError, match="exactly one of eps"):
        semantic_duplicates(nearest, distance, eps=0.1, share=0.1)
    with pytest.raises(ValueError, match="dedup share must be a fraction"):
        semantic_duplicates(nearest, distance, share=1.0)


def test_semantic_redundant_marks_the_closest_share_and_one_of_each_pair():
    from utils.studies.pruning import semantic_redundant
    ids = np.arange(8) * 3 + 1
    nearest = [4, 1, 10, 7, 16, 13, 22, 19]                      # four mutual pairs
    distance = [0.10, 0.10, 0.20, 0.20, 0.30, 0.30, 0.05, 0.05]
    scored = pd.DataFrame({"bt_nearest_id": nearest, "bt_nn_distance": distance}, index=ids)
    red = semantic_redundant(scored, share=0.25)                   # 2 of 8: one of the 0.05 pair, one of the 0.10
    assert red.sum() == 2 and red.loc[[19, 22]].sum() == 1 and red.loc[[1, 4]].sum() == 1
    assert red.attrs["eps"] == pytest.approx(0.10 ** 2 / 2)
    assert semantic_redundant(scored, share=0.9).sum() == 4        # at most one member of each pair
    assert not semantic_redundant(scored, share=0.0).any()
    with pytest.raises(ValueError, match="bt_nearest_id"):
        semantic_redundant(scored.drop(columns="bt_nearest_id"), share=0.2)


def test_goals_read_by_hand():
    from utils.studies.pruning import goals
    rows = []
    def add(kind, score, policy, fraction, accs, free=False):
        for seed, a in enumerate(accs):
            rows.append({"noise_kind": kind, "noise": 0.0 if kind == "none" else 0.1, "budget": "steps",
                         "score": score, "policy": policy, "fraction": fraction, "seed": seed, "kept": 1,
                         "test_acc": a, "label_free": free})
    add("none", "full", "full", 1.0, [0.90, 0.90])
    add("none", "random", "random", 0.1, [0.80, 0.80]); add("none", "random", "random", 0.5, [0.88, 0.88])
    add("none", "rs2", "rs2", 0.1, [0.83, 0.83]); add("none", "rs2", "rs2", 0.5, [0.89, 0.89])
    add("none", "proto", "ccs", 0.1, [0.84, 0.84], True); add("none", "proto", "ccs", 0.5, [0.897, 0.897], True)
    add("none", "el2n", "ccs", 0.1, [0.83, 0.83]); add("none", "el2n", "ccs", 0.5, [0.899, 0.899])
    add("uniform_noise", "full", "full", 1.0, [0.86, 0.86]); add("uniform_noise", "clean", "subset", 0.9, [0.885, 0.887])
    add("class_noise", "full", "full", 1.0, [0.88, 0.88]); add("class_noise", "clean", "subset", 0.9, [0.885, 0.885])
    g = goals(pd.DataFrame(rows)).set_index("goal")["met"]
    assert g.iloc[0] == True and "proto" in goals(pd.DataFrame(rows))["detail"].iloc[0]   # 0.897 >= 0.895, beats both
    assert g.iloc[1] == True                                        # 0.84 - 0.80 = 4 pt
    assert g.iloc[2] == True and g.iloc[3] == False                 # uniform recovers 2.6 of 4 pt; class 0.5 of 2
