"""The two-split protocol: halves, swap coverage, sample ids through shuffling and resuming, determinism."""
import numpy as np
import pandas as pd
import pytest
import torch

from utils.ssft import SSFTConfig, get_recipe, make_task, run_ssft, split_halves, ssft_scores
from utils.ssft.recipes import make_optimizer, triangle

TINY = get_recipe("paper", max_epochs=2, batch_size=8, lr=0.05)


def _data(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 28, 28, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    ids = np.arange(1000, 1000 + n) * 7  # ids that are not positions
    return images, labels, ids


def test_split_halves_cover_disjoint_deterministic_and_order_free():
    ids = np.arange(11) * 3
    a, b = split_halves(ids, seed=5)
    assert len(a) == 6 and len(b) == 5 and not set(a) & set(b) and set(a) | set(b) == set(ids)
    a2, b2 = split_halves(np.random.default_rng(0).permutation(ids), seed=5)
    assert a.tolist() == a2.tolist() and b.tolist() == b2.tolist()
    assert split_halves(ids, seed=6)[0].tolist() != a.tolist()


def test_swap_halves_give_every_sample_times_once_per_seed(tmp_path):
    images, labels, ids = _data()
    config = SSFTConfig("cnn", get_recipe("paper", max_epochs=2, batch_size=4, lr=0.05), 3, model_seeds=(0, 1))
    runs = run_ssft(make_task("cnn"), config, images, labels, ids, tmp_path, progress=False)
    assert [(r.seed, r.order) for r in runs] == [(0, "AB"), (0, "BA"), (1, "AB"), (1, "BA")]
    for seed in (0, 1):
        ab, ba = [r for r in runs if r.seed == seed]
        assert not set(ab.ids) & set(ba.ids) and sorted(set(ab.ids) | set(ba.ids)) == sorted(ids)
    run = runs[0]
    assert run.stage1["correct"].shape == (2, len(run.ids))            # one log per stage-1 epoch
    assert run.stage2["prob"].shape == (2 * 3, len(run.ids))           # k = 3 logs per stage-2 epoch
    scores = ssft_scores(runs, "correct", 0.5)
    assert sorted(scores.index) == sorted(ids) and (scores["n_seeds"] == 2).all()
    assert scores["forgetting_fraction"].between(0, 1).all()


def test_scores_refuse_a_seed_missing_one_order(tmp_path):
    images, labels, ids = _data()
    runs = run_ssft(make_task("cnn"), SSFTConfig("cnn", TINY, 2, model_seeds=(0, 1)), images, labels, ids,
                    tmp_path, progress=False)
    with pytest.raises(ValueError, match="rerun its missing order"):
        ssft_scores(runs[:3], "correct", 0.5)


def test_same_seed_same_scores_and_ids_survive_shuffling(tmp_path):
    images, labels, ids = _data()
    config = SSFTConfig("cnn", TINY, 2, model_seeds=(0,))
    first = ssft_scores(run_ssft(make_task("cnn"), config, images, labels, ids, tmp_path / "a", False), "prob", 0.5)
    again = ssft_scores(run_ssft(make_task("cnn"), config, images, labels, ids, tmp_path / "b", False), "prob", 0.5)
    pd.testing.assert_frame_equal(first, again)
    perm = np.random.default_rng(1).permutation(len(ids))
    shuffled = ssft_scores(run_ssft(make_task("cnn"), config, images[perm], labels[perm], ids[perm],
                                    tmp_path / "c", False), "prob", 0.5)
    pd.testing.assert_frame_equal(first, shuffled.loc[first.index])
    with pytest.raises(ValueError, match="exceeds the 2 steps"):
        run_ssft(make_task("cnn"), SSFTConfig("cnn", TINY, 3, model_seeds=(0,)), images, labels, ids, tmp_path / "d")


def test_resume_after_a_lost_run_and_refuse_other_settings(tmp_path):
    images, labels, ids = _data()
    config = SSFTConfig("cnn", TINY, 2, model_seeds=(0,))
    full = run_ssft(make_task("cnn"), config, images, labels, ids, tmp_path, progress=False)
    (tmp_path / "seed0_BA.npz").unlink()  # as if killed during the second run
    resumed = run_ssft(make_task("cnn"), config, images, labels, ids, tmp_path, progress=False)
    for a, b in zip(full, resumed):
        assert a.ids.tolist() == b.ids.tolist()
        np.testing.assert_array_equal(a.stage2["prob"], b.stage2["prob"])
    other = SSFTConfig("cnn", get_recipe("seed", max_epochs=2, batch_size=8), 2, model_seeds=(0,))
    with pytest.raises(ValueError, match="other settings"):
        run_ssft(make_task("cnn"), other, images, labels, ids, tmp_path, progress=False)


def test_early_stop_after_patience_epochs_at_full_train_accuracy(tmp_path):
    images = torch.zeros(16, 1, 28, 28)
    images[8:] = 1.0
    labels = torch.tensor([0] * 8 + [1] * 8)
    recipe = get_recipe("paper", max_epochs=30, batch_size=8, lr=0.05, patience=2)
    run = run_ssft(make_task("cnn"), SSFTConfig("cnn", recipe, 1, model_seeds=(0,)), images, labels,
                   np.arange(16), tmp_path, progress=False)[0]
    stage1 = run.history[run.history["stage"] == 1]
    assert len(stage1) < 30 and (stage1["train_acc"].tail(2) == 1.0).all()


def test_triangle_schedule_peaks_at_warmup_and_ends_at_zero():
    assert triangle(0, 100, 10) == 0 and triangle(10, 100, 10) == 1 and triangle(100, 100, 10) == 0
    assert triangle(55, 100, 10) == pytest.approx(0.5)
    model = torch.nn.Linear(2, 1)
    opt, sched = make_optimizer(model, get_recipe("paper", max_epochs=10, lr=0.1), steps_per_epoch=10)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert max(lrs) == pytest.approx(0.1) and lrs.index(max(lrs)) == 9 and lrs[-2] == pytest.approx(0.1 / 90) and lrs[-1] == 0
    opt, sched = make_optimizer(model, get_recipe("seed"), steps_per_epoch=10)
    assert opt.param_groups[0]["lr"] == 0.01 and isinstance(opt, torch.optim.SGD)


def test_unsupervised_tasks_measure_every_sample_in_order():
    images, labels, _ = _data(n=10)
    ae, bt = make_task("autoencoder"), make_task("barlow_twins", eval_batch_size=4)
    m = ae.measure(ae.make_model(), images, labels)
    assert set(m) == {"ssim", "mse"} and m["ssim"].shape == (10,) and (m["ssim"] <= 1).all()
    model = bt.make_model()
    c1, c2 = bt.measure(model, images, labels), bt.measure(model, images, labels)
    assert c1["self_corr"].shape == (10,) and torch.equal(c1["cross_corr"], c2["cross_corr"])  # same seeded views
    with pytest.raises(ValueError, match="Unknown SSFT model"):
        make_task("resnet")
