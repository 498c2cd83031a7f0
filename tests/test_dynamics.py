"""Peer training-dynamics scores (utils.scores.dynamics) against independent computations on hand-built recorders."""
import math
import time

import numpy as np
import pandas as pd
import pytest
import scipy.special
import torch

from utils.engine.recorder import Recorder
from utils.engine.tasks import supervised_values
from utils.scores.dynamics import dynamics_run_scores, dynamics_scores, el2n
from utils.scores.registry import SCORES, oriented

C = 4


def _logits(t, n, seed=0, scale=2.0):
    return np.random.default_rng(seed).normal(0, scale, (t, n, C)).astype(np.float32)


def _recorder(logits, labels, ids, with_logits=True, logit_epochs=None):
    """What the loop records per epoch (utils.engine.tasks.supervised_values), plus optionally the full logits."""
    rec = Recorder(ids)
    y = torch.as_tensor(labels)
    for e, z in enumerate(logits):
        for name, v in supervised_values(torch.as_tensor(z), y).items():
            rec.record(name, e, ids, v)
        if with_logits and (logit_epochs is None or e in logit_epochs):
            rec.record("logits", e, ids, z)
    return rec


def _case(t=6, n=9, seed=0):
    """Random logits with sample 0 always wrong and sample 1 always right (by a wide margin)."""
    z = _logits(t, n, seed)
    labels = np.random.default_rng(seed + 100).integers(0, C, n)
    z[:, 0, labels[0]] = -10.0
    z[:, 1, labels[1]] = 10.0
    ids = np.arange(n) * 11 + 5  # ids that are not positions
    return z, labels, ids


def _by_loops(z, labels):
    """Every score by explicit per-sample loops (float64), one dict of lists."""
    t, n, c = z.shape
    out = {k: [] for k in ("mean_loss", "aum", "confidence", "variability", "correctness", "forgetting_events",
                           "never_learned", "learning_time", "last_margin")}
    for i in range(n):
        y = labels[i]
        losses, margins, probs, corr = [], [], [], []
        for e in range(t):
            row = z[e, i].astype(np.float64)
            p = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
            other = max(row[j] for j in range(c) if j != y)
            losses.append(-math.log(p[y]))
            margins.append(row[y] - other)
            probs.append(p[y])
            corr.append(int(row[y] > other))
        out["mean_loss"].append(sum(losses) / t)
        out["aum"].append(sum(margins) / t)
        out["confidence"].append(sum(probs) / t)
        mu = sum(probs) / t
        out["variability"].append(math.sqrt(sum((q - mu) ** 2 for q in probs) / t))
        out["correctness"].append(sum(corr) / t)
        out["forgetting_events"].append(sum(1 for e in range(t - 1) if corr[e] == 1 and corr[e + 1] == 0))
        out["never_learned"].append(float(sum(corr) == 0))
        out["learning_time"].append(next((e + 1 for e in range(t) if all(corr[e:])), t + 1))   # epochs, 1-based
        out["last_margin"].append(margins[-1])
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def _el2n_ref(z_epoch, labels):
    onehot = np.eye(z_epoch.shape[1])[labels]
    return np.linalg.norm(scipy.special.softmax(z_epoch.astype(np.float64), axis=1) - onehot, axis=1)


# ---------------------------------------------------------------------------------------------- values
def test_each_score_matches_an_independent_computation():
    z, labels, ids = _case()
    rec = _recorder(z, labels, ids)
    got = dynamics_scores([rec], labels=pd.Series(labels, index=ids), el2n_epoch=2)
    assert got.index.name == "sample_id" and got.index.tolist() == sorted(ids)
    got = got.loc[ids]
    ref = _by_loops(z, labels)
    for name, values in ref.items():
        np.testing.assert_allclose(got[name], values, rtol=1e-5, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(got["variability"], np.std(rec["prob"].astype(np.float64), axis=0), rtol=1e-6)
    t = len(z)
    np.testing.assert_allclose(got["learning_fraction"], (ref["learning_time"] - 1) / t)
    toneva = np.where(ref["never_learned"] == 1, t, ref["forgetting_events"])
    np.testing.assert_allclose(got["forgetting_toneva"], toneva)
    np.testing.assert_allclose(got["el2n"], _el2n_ref(z[2], labels), rtol=1e-5)
    p2 = scipy.special.softmax(z[2].astype(np.float64), axis=1)[np.arange(len(labels)), labels]
    np.testing.assert_allclose(got["el2n_lower"], 1 - p2, rtol=1e-5, atol=1e-6)
    assert (got["n_runs"] == 1).all() and got.attrs["el2n_epoch"] == 2 and got.attrs["horizons"] == [t]
    assert got.loc[ids[0], "never_learned"] == 1 and got.loc[ids[0], "forgetting_toneva"] == t


def test_el2n_from_a_probs_series_equals_el2n_from_logits():
    z, labels, ids = _case(t=3, n=40, seed=3)
    rec = _recorder(z, labels, ids)
    s = dynamics_scores(rec, labels=labels, el2n_epoch=1)  # an array is read in sample_ids order
    np.testing.assert_allclose(s.loc[ids, "el2n"], _el2n_ref(z[1], labels), rtol=1e-5)
    probs = Recorder(ids)  # a full softmax series instead of logits gives the same EL2N
    for e in range(3):
        probs.record("probs", e, ids, scipy.special.softmax(z[e].astype(np.float64), axis=1).astype(np.float32))
        probs.record("prob", e, ids, rec["prob"][e])
    np.testing.assert_allclose(el2n(probs, pd.Series(labels, index=ids), 1), _el2n_ref(z[1], labels), atol=1e-5)


def test_logits_recorded_at_early_epochs_only():
    z, labels, ids = _case(t=8)
    rec = _recorder(z, labels, ids, logit_epochs={1, 2})
    s = dynamics_scores([rec], labels=pd.Series(labels, index=ids)).loc[ids]
    assert s.attrs["el2n_epoch"] == 1  # 10 % of 8 epochs, at least 1
    np.testing.assert_allclose(s["el2n"], _el2n_ref(z[1], labels), rtol=1e-5)
    with pytest.raises(ValueError, match="not at epoch 5"):
        dynamics_scores([rec], labels=pd.Series(labels, index=ids), el2n_epoch=5)


def test_orientation_always_wrong_is_harder_than_always_right():
    z, labels, ids = _case()
    s = dynamics_scores([_recorder(z, labels, ids)], labels=pd.Series(labels, index=ids))
    wrong, right = s.loc[ids[0]], s.loc[ids[1]]
    assert wrong["aum"] < right["aum"] and wrong["last_margin"] < right["last_margin"]
    assert wrong["el2n"] > right["el2n"] and wrong["el2n_lower"] > right["el2n_lower"]
    assert wrong["confidence"] < right["confidence"] and wrong["correctness"] < right["correctness"]
    assert wrong["mean_loss"] > right["mean_loss"] and wrong["learning_time"] > right["learning_time"]
    assert wrong["forgetting_toneva"] > right["forgetting_toneva"] and wrong["never_learned"] > right["never_learned"]
    o = oriented(s)
    for name in ("aum", "last_margin", "el2n", "el2n_lower", "confidence", "correctness", "mean_loss",
                 "learning_time", "learning_fraction", "forgetting_toneva", "never_learned"):
        assert o.loc[ids[0], name] > o.loc[ids[1], name], name
    assert set(o.columns) == set(s.columns) - {"n_runs"}   # every dynamics column is registered


def test_direction_is_fixed_for_every_score_column():
    z, labels, ids = _case()
    s = dynamics_scores([_recorder(z, labels, ids)], labels=pd.Series(labels, index=ids))
    assert set(s.columns) - {"n_runs"} <= set(SCORES)
    assert s.attrs["direction"] == {c: SCORES[c].direction for c in s.columns if c != "n_runs"}
    assert {SCORES[c].family for c in s.attrs["direction"]} == {"supervised"}


# ---------------------------------------------------------------------------------------------- runs
def test_runs_align_by_sample_id_whatever_their_order():
    z1, labels, ids = _case(seed=0)
    z2 = _logits(len(z1), len(ids), seed=1)
    perm = np.random.default_rng(7).permutation(len(ids))
    a = _recorder(z1, labels, ids)
    b = _recorder(z2[:, perm], labels[perm], ids[perm])  # the second run lists its samples shuffled
    y = pd.Series(labels, index=ids)
    both = dynamics_scores([a, b], labels=y, el2n_epoch=1)
    b_plain = _recorder(z2, labels, ids)
    expected = (dynamics_run_scores(a, y, 1, True) + dynamics_run_scores(b_plain, y, 1, True)) / 2
    pd.testing.assert_frame_equal(both.drop(columns="n_runs"), expected.sort_index(), check_exact=False, rtol=1e-6)
    assert (both["n_runs"] == 2).all()
    np.testing.assert_allclose(both.loc[ids, "aum"], (_by_loops(z1, labels)["aum"] + _by_loops(z2, labels)["aum"]) / 2,
                               rtol=1e-5, atol=1e-6)


def test_early_stopped_runs_of_different_lengths():
    z_long, labels, ids = _case(t=10, seed=0)
    z_short = _logits(4, len(ids), seed=2)
    z_short[:, 0, labels[0]] = -10.0  # sample 0 never learned in either run
    long, short = _recorder(z_long, labels, ids), _recorder(z_short, labels, ids)
    s = dynamics_scores([long, short], labels=pd.Series(labels, index=ids)).loc[ids]
    assert s.attrs["horizons"] == [10, 4] and s.attrs["el2n_epoch"] == 1
    rl, rs = _by_loops(z_long, labels), _by_loops(z_short, labels)
    np.testing.assert_allclose(s["learning_time"], (rl["learning_time"] + rs["learning_time"]) / 2)
    np.testing.assert_allclose(s["learning_fraction"], ((rl["learning_time"] - 1) / 10 + (rs["learning_time"] - 1) / 4) / 2)
    np.testing.assert_allclose(s["aum"], (rl["aum"] + rs["aum"]) / 2, rtol=1e-5, atol=1e-6)
    assert s.loc[ids[0], "forgetting_toneva"] == (10 + 4) / 2 and s.loc[ids[0], "learning_fraction"] == 1
    with pytest.raises(ValueError, match="run 1 recorded 'logits' at epochs"):
        dynamics_scores([long, short], labels=pd.Series(labels, index=ids), el2n_epoch=6)
    with pytest.raises(ValueError, match="run 1 recorded 'prob' at epochs"):
        dynamics_scores([long, short], el2n=False, el2n_epoch=6)


# ---------------------------------------------------------------------------------------------- errors
def test_clear_errors():
    z, labels, ids = _case()
    y = pd.Series(labels, index=ids)
    rec = _recorder(z, labels, ids)
    bare = _recorder(z, labels, ids, with_logits=False)
    with pytest.raises(ValueError, match="No runs given"):
        dynamics_scores([])
    with pytest.raises(ValueError, match="covers other samples than run 0"):
        dynamics_scores([rec, _recorder(z, labels, ids + 1)], labels=y)
    with pytest.raises(ValueError, match="record the full logits"):
        dynamics_scores([bare], el2n=True)
    with pytest.raises(ValueError, match="record the full logits"):
        el2n(bare, y, 1)
    with pytest.raises(ValueError, match="recorded full logits and runs"):
        dynamics_scores([rec, bare], labels=y)
    with pytest.raises(ValueError, match="needs the labels the run trained on"):
        dynamics_scores([rec])
    clean = labels.copy()
    clean[:3] = (clean[:3] + 1) % C  # e.g. the clean labels instead of the flipped ones the run trained on
    with pytest.raises(ValueError, match="differs from the recorded given_logit"):
        dynamics_scores([rec], labels=pd.Series(clean, index=ids))
    with pytest.raises(ValueError, match="no entry for sample ids"):
        dynamics_scores([rec], labels=y.iloc[1:])
    ae = Recorder(ids)
    ae.record("loss", 0, ids, np.ones(len(ids)))
    with pytest.raises(ValueError, match="recorded no given_logit"):
        dynamics_scores([ae])
    holes = Recorder(ids)
    for name, v in supervised_values(torch.as_tensor(z[0]), torch.as_tensor(labels)).items():
        holes.record(name, 0, ids[:-1], v[:-1])  # the last sample never written
    with pytest.raises(ValueError, match="unwritten or non-finite"):
        dynamics_scores([holes])
    with pytest.raises(TypeError, match="Recorder"):
        dynamics_scores(["not a recorder"])


def test_without_logits_everything_but_el2n():
    z, labels, ids = _case()
    s = dynamics_scores([_recorder(z, labels, ids, with_logits=False)])
    assert "el2n" not in s and "el2n_lower" in s and s.notna().all().all()
    assert "el2n" not in dynamics_scores([_recorder(z, labels, ids)], el2n=False)


# ---------------------------------------------------------------------------------------------- end to end
def test_aum_flags_flipped_labels_after_a_short_supervised_run():
    from utils.data.datasets import load_dataset
    from utils.data.mixing import flip_labels
    from utils.data.samples import Samples
    from utils.engine.protocols import supervised_run
    from utils.engine.recipes import get_recipe
    from utils.engine.tasks import SupervisedTask

    tic = time.perf_counter()
    images, labels, info = load_dataset("mnist-5k", "train")
    rows = np.sort(np.random.default_rng(0).choice(len(images), 300, replace=False))  # the split is sorted by class
    noisy, flipped = flip_labels(labels[rows], 0.1, seed=0, num_classes=10)
    ids = rows.astype(np.int64) + 10_000
    run = supervised_run(SupervisedTask(info, "cnn"), get_recipe("paper", max_epochs=4, batch_size=32, lr=0.05),
                         Samples(images[rows], noisy, ids), seed=0, progress=False)
    s = dynamics_scores([run.records], labels=pd.Series(noisy.numpy(), index=ids))
    is_flipped = pd.Series(flipped.numpy(), index=ids).loc[s.index]
    assert is_flipped.sum() == 30 and len(s) == 300
    assert s.loc[is_flipped, "aum"].mean() < s.loc[~is_flipped, "aum"].mean() - 1  # about -2.4 vs 2.1 logits
    pd.testing.assert_frame_equal(dynamics_scores([run], labels=pd.Series(noisy.numpy(), index=ids)), s)
    assert time.perf_counter() - tic < 30


def test_runs_of_overlapping_samples_average_over_the_runs_that_trained_on_each():
    # the K-fold pass: each run trains on a different subset; a sample is averaged over the runs that saw it
    z, labels, ids = _case(t=5, n=9, seed=3)
    z2 = _logits(5, 9, seed=4)
    y = pd.Series(labels, index=ids)
    first, second = np.arange(0, 6), np.arange(3, 9)       # samples 3..5 in both runs
    a = _recorder(z[:, first], labels[first], ids[first])
    b = _recorder(z2[:, second], labels[second], ids[second])
    out = dynamics_scores([a, b], labels=y, el2n_epoch=1, same_samples=False)
    assert out.index.tolist() == sorted(ids.tolist())
    assert out.loc[ids[[0, 1, 2, 6, 7, 8]], "n_runs"].tolist() == [1, 1, 1, 1, 1, 1]
    assert (out.loc[ids[3:6], "n_runs"] == 2).all()
    ra, rb = dynamics_run_scores(a, y, 1, True), dynamics_run_scores(b, y, 1, True)
    np.testing.assert_allclose(out.loc[ids[0], "el2n"], ra.loc[ids[0], "el2n"], rtol=1e-6)
    np.testing.assert_allclose(out.loc[ids[8], "aum"], rb.loc[ids[8], "aum"], rtol=1e-6)
    np.testing.assert_allclose(out.loc[ids[4], "mean_loss"], (ra.loc[ids[4], "mean_loss"] + rb.loc[ids[4], "mean_loss"]) / 2,
                               rtol=1e-6)
    with pytest.raises(ValueError, match="other samples"):
        dynamics_scores([a, b], labels=y, el2n_epoch=1)        # the default still refuses different samples


def test_learning_time_is_in_epochs_as_in_the_two_split_study():
    """One name, one unit: the same correctness history gives the same learning_time (epochs, (log + 1) / k; never:
    horizon + 1) in the supervised dynamics and in a two-split SSFT study."""
    from utils.engine.protocols import TwoSplitRun
    from utils.scores.ssft import ssft_run_scores

    correct = np.array([[0, 1, 0], [1, 1, 0], [1, 0, 0], [1, 1, 0]], dtype=float)   # 4 epochs, 3 samples
    ids = np.array([4, 8, 15])
    rec = Recorder(ids)
    for e, row in enumerate(correct):
        margin = np.where(row > 0, 1.0, -1.0)
        for name, values in (("loss", 1 - row), ("given_logit", margin), ("other_logit", 0 * row),
                             ("prob", 0.5 + 0.4 * margin), ("correct", row)):
            rec.record(name, e, ids, values)
    stage = Recorder(ids)
    for e, row in enumerate(correct):
        stage.record("correct", e, ids, row)
    run = TwoSplitRun(0, "AB", ids, stage, stage, 1, pd.DataFrame())
    known = [2.0, 4.0, 5.0]            # learned for good in epoch 2, in epoch 4, never (4 + 1)
    dyn = dynamics_scores([rec]).loc[ids, "learning_time"].tolist()
    two_split = ssft_run_scores(run, "correct", 0.5).loc[ids, "learning_time"].tolist()
    assert dyn == known and two_split == known
