"""The two-split protocol: halves, swap coverage, sample ids through shuffling and resuming, determinism."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from skimage.metrics import structural_similarity

from utils.data.datasets import DatasetInfo
from utils.data.samples import Samples
from utils.engine.protocols import SSFTConfig, TwoSplitRun, run_ssft, split_halves
from utils.engine.recipes import Recipe, get_recipe, make_optimizer, triangle
from utils.engine.recorder import Recorder
from utils.engine.tasks import make_task
from utils.scores.ssft import ssft_scores

TINY = get_recipe("paper", max_epochs=2, batch_size=8, lr=0.05)
SHAPE = (1, 12, 12)  # the smallest images the CNN takes are 10x10: small and fast


def _data(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, *SHAPE, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    ids = np.arange(1000, 1000 + n) * 7  # ids that are not positions
    return images, labels, ids


def _cnn(images):
    return make_task("cnn", DatasetInfo.from_images(images, num_classes=10))


def test_split_halves_cover_disjoint_deterministic_and_order_free():
    ids = np.arange(11) * 3
    a, b = split_halves(ids, seed=5)
    assert len(a) == 6 and len(b) == 5 and not set(a) & set(b) and set(a) | set(b) == set(ids)
    a2, b2 = split_halves(np.random.default_rng(0).permutation(ids), seed=5)
    assert a.tolist() == a2.tolist() and b.tolist() == b2.tolist()
    assert split_halves(ids, seed=6)[0].tolist() != a.tolist()
    with pytest.raises(ValueError, match="at least 2 samples"):
        split_halves([4], seed=0)


def test_swap_halves_give_every_sample_times_once_per_seed(tmp_path):
    images, labels, ids = _data()
    config = SSFTConfig("cnn", get_recipe("paper", max_epochs=2, batch_size=4, lr=0.05), 3, model_seeds=(0, 1))
    runs = run_ssft(_cnn(images), config, Samples(images, labels, ids), tmp_path, progress=False)
    assert [(r.seed, r.order) for r in runs] == [(0, "AB"), (0, "BA"), (1, "AB"), (1, "BA")]
    for seed in (0, 1):
        ab, ba = [r for r in runs if r.seed == seed]
        assert not set(ab.ids) & set(ba.ids) and sorted(set(ab.ids) | set(ba.ids)) == sorted(ids)
    run = runs[0]
    assert isinstance(run.stage1, Recorder) and np.array_equal(run.stage1.sample_ids, run.ids)
    assert run.stage1["correct"].shape == (2, len(run.ids))            # one log per stage-1 epoch
    assert run.stage2["prob"].shape == (2 * 3, len(run.ids))           # k = 3 logs per stage-2 epoch
    assert run.stage2.steps("prob").tolist() == list(range(6)) and (run.stage2.counts("prob") == 1).all()
    assert run.history["stage"].tolist() == [1, 1, 2, 2]
    scores = ssft_scores(runs, "correct", 0.5)
    assert sorted(scores.index) == sorted(ids) and (scores["n_seeds"] == 2).all()
    np.testing.assert_allclose(scores["forgetting_fraction"], (scores["forgetting_time"] * 3 - 1) / 6)
    loaded = TwoSplitRun.load(tmp_path / "seed1_BA.npz", 3)  # what a later session reads back
    assert (loaded.seed, loaded.order) == (1, "BA") and np.array_equal(loaded.ids, runs[3].ids)
    assert np.array_equal(loaded.stage2["prob"], runs[3].stage2["prob"])
    pd.testing.assert_frame_equal(loaded.history.drop(columns="seconds"), runs[3].history.drop(columns="seconds"),
                                  check_exact=False)


def test_scores_refuse_a_seed_missing_one_order(tmp_path):
    images, labels, ids = _data()
    runs = run_ssft(_cnn(images), SSFTConfig("cnn", TINY, 2, model_seeds=(0, 1)), Samples(images, labels, ids),
                    tmp_path, progress=False)
    with pytest.raises(ValueError, match="rerun its missing order"):
        ssft_scores(runs[:3], "correct", 0.5)


def test_same_seed_same_scores_and_ids_survive_shuffling(tmp_path):
    images, labels, ids = _data()
    config = SSFTConfig("cnn", TINY, 2, model_seeds=(0,))
    task = _cnn(images)
    first = ssft_scores(run_ssft(task, config, Samples(images, labels, ids), tmp_path / "a"), "prob", 0.5)
    again = ssft_scores(run_ssft(task, config, Samples(images, labels, ids), tmp_path / "b"), "prob", 0.5)
    pd.testing.assert_frame_equal(first, again)
    perm = np.random.default_rng(1).permutation(len(ids))
    shuffled = ssft_scores(run_ssft(task, config, Samples(images[perm], labels[perm], ids[perm]), tmp_path / "c"),
                           "prob", 0.5)
    pd.testing.assert_frame_equal(first, shuffled.loc[first.index])
    with pytest.raises(ValueError, match="exceeds the 2 steps"):
        run_ssft(task, SSFTConfig("cnn", TINY, 3, model_seeds=(0,)), Samples(images, labels, ids), tmp_path / "d")
    assert not (tmp_path / "d").exists()  # refused before the folder is claimed: the corrected call may use it
    with pytest.raises(ValueError, match=r"built for images \[1, 12, 12\], got \[1, 12, 10\]"):
        run_ssft(task, config, Samples(images[..., :10], labels, ids), tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_resume_after_a_lost_run_and_refuse_other_settings(tmp_path):
    images, labels, ids = _data()
    config = SSFTConfig("cnn", TINY, 2, model_seeds=(0,))
    data = Samples(images, labels, ids)
    full = run_ssft(_cnn(images), config, data, tmp_path)
    (tmp_path / "seed0_BA.npz").unlink()  # as if killed during the second run
    resumed = run_ssft(_cnn(images), config, data, tmp_path)
    for a, b in zip(full, resumed):
        assert a.ids.tolist() == b.ids.tolist()
        np.testing.assert_array_equal(a.stage2["prob"], b.stage2["prob"])
        np.testing.assert_array_equal(a.stage1["loss"], b.stage1["loss"])
    other = SSFTConfig("cnn", get_recipe("seed", max_epochs=2, batch_size=8), 2, model_seeds=(0,))
    with pytest.raises(ValueError, match=r"other settings \(recipe\)"):
        run_ssft(_cnn(images), other, data, tmp_path)
    with pytest.raises(ValueError, match=r"other settings \(content_sha256\)"):
        run_ssft(_cnn(images), config, Samples(images, labels, ids + 1), tmp_path)


def test_early_stop_after_patience_epochs_at_full_train_accuracy(tmp_path):
    images = torch.zeros(16, *SHAPE)
    images[8:] = 1.0
    labels = torch.tensor([0] * 8 + [1] * 8)
    recipe = get_recipe("paper", max_epochs=30, batch_size=8, lr=0.05, patience=2)
    task = make_task("cnn", DatasetInfo("two", SHAPE, 2, (0.5,), (0.5,)))
    run = run_ssft(task, SSFTConfig("cnn", recipe, 1, model_seeds=(0,)), Samples(images, labels, np.arange(16)),
                   tmp_path)[0]
    stage1 = run.history[run.history["stage"] == 1]
    assert len(stage1) < 30 and (stage1["train_acc"].tail(2) == 1.0).all()
    assert len(run.stage1["correct"]) == len(stage1)  # fewer logs, not NaN-padded ones
    assert len(run.stage2["correct"]) == (run.history["stage"] == 2).sum()


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
    assert lrs[0] == pytest.approx(0.01)  # the first update is not wasted at lr 0
    assert max(lrs) == pytest.approx(0.1) and lrs.index(max(lrs)) == 9 and lrs[-2] == pytest.approx(0.1 / 90)
    assert lrs[-1] == 0
    opt, sched = make_optimizer(model, get_recipe("seed"), steps_per_epoch=10)
    assert opt.param_groups[0]["lr"] == 0.01 and isinstance(opt, torch.optim.SGD)
    opt, _ = make_optimizer(model, get_recipe("autoencoder"), steps_per_epoch=10)
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == 1e-3


def test_unsupervised_tasks_measure_every_sample_in_order():
    images, labels, _ = _data(n=10)
    info = DatasetInfo.from_images(images)
    ae, bt = make_task("autoencoder", info), make_task("barlow_twins", info, eval_batch_size=4)
    torch.manual_seed(0)
    model = ae.make_model()
    m = ae.measure(model, ae.prepare(images), labels, {}, 0)
    assert set(m) == {"loss", "entropy", "norm", "ssim", "drift"} and m["ssim"].shape == (10,)
    model.eval()
    with torch.no_grad():   # the independent reference: scikit-image's SSIM (Wang et al.) of reconstruction vs input
        recon = info.to_pixels(model(ae.prepare(images))[0]).double().numpy()[:, 0]
    ref = [structural_similarity(r, x, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
           for r, x in zip(recon, images.double().numpy()[:, 0])]
    np.testing.assert_allclose(m["ssim"].numpy(), ref, atol=1e-4)   # measured in float32
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    m_perm = ae.measure(model, ae.prepare(images[perm]), labels, {}, 0)
    torch.testing.assert_close(m_perm["loss"], m["loss"][perm])
    torch.testing.assert_close(m_perm["ssim"], m["ssim"][perm])
    model = bt.make_model()
    c1, c2 = bt.measure(model, images, labels, {}, 0), bt.measure(model, images, labels, {}, 1)
    assert c1["self_corr"].shape == (10,) and torch.equal(c1["cross_corr"], c2["cross_corr"])  # same seeded views
    with pytest.raises(ValueError, match="Unknown model"):
        make_task("resnet", info)


def test_config_and_recipe_validation_is_one_clear_sentence():
    with pytest.raises(ValueError) as e:
        SSFTConfig("resnet")
    assert str(e.value) == "Unknown SSFT model 'resnet': choose one of cnn, lenet, autoencoder, barlow_twins."
    cases = [(lambda: Recipe(lr=float("nan")), "lr must be a positive finite number, got nan."),
             (lambda: Recipe(lr=math.inf), "lr must be a positive finite number, got inf."),
             (lambda: Recipe(lr=-0.1), "lr must be a positive finite number, got -0.1."),
             (lambda: Recipe(optimizer="rmsprop"), "optimizer must be 'sgd' or 'adam', got 'rmsprop'."),
             (lambda: Recipe(patience=0), "patience must be None (no early stop) or a positive integer, got 0."),
             (lambda: Recipe(warmup=1.0), "warmup must lie strictly between 0 and 1, got 1.0."),
             (lambda: get_recipe("fast"), "Unknown recipe 'fast': choose one of paper, seed, autoencoder."),
             (lambda: SSFTConfig(model_seeds=()), "model_seeds is empty; give at least one seed (the paper averages "
                                                  "5, we default to 3)."),
             (lambda: SSFTConfig(logs_per_epoch=0), "logs_per_epoch must be a positive integer, got 0.")]
    for make, message in cases:
        with pytest.raises(ValueError) as e:
            make()
        assert str(e.value) == message
    assert SSFTConfig(recipe=TINY.to_dict()).recipe == TINY  # read back from settings.json


def test_supervised_run_loads_a_finished_run_only_with_the_same_settings(tmp_path):
    # supervised_run returns the finished run in its folder without the settings check that train() does,
    # so asking for another seed (or recipe, or data) silently returns the old run.
    from utils.engine.protocols import supervised_run
    images, labels, ids = _data(16)
    data = Samples(images, labels, ids)
    first = supervised_run(_cnn(images), TINY, data, seed=0, folder=tmp_path, progress=False)
    again = supervised_run(_cnn(images), TINY, data, seed=0, folder=tmp_path, progress=False)
    assert np.array_equal(again.records["prob"], first.records["prob"])
    with pytest.raises(ValueError, match=r"other settings \(seed\)"):
        supervised_run(_cnn(images), TINY, data, seed=1, folder=tmp_path, progress=False)
