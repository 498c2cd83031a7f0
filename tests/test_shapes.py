"""Colour images of another size (3x32x32, CIFAR-like) through every task, end to end, with any class count."""
import numpy as np
import pytest
import torch

from utils.data.datasets import DatasetInfo
from utils.data.samples import Samples
from utils.engine.loop import train
from utils.engine.protocols import SSFTConfig, run_ssft, supervised_run
from utils.engine.recipes import get_recipe
from utils.engine.tasks import make_task
from utils.scores.autoencoder import compute_scores
from utils.scores.ssft import ssft_scores
from utils.studies.autoencoder import TrainConfig, series, train_autoencoder

SHAPE = (3, 32, 32)
SUPERVISED = ("loss", "given_logit", "other_logit", "prob", "correct")


def _synthetic(n=64, classes=10, seed=0):
    """Images whose colour depends on the class (so a classifier has something to learn), ids not positions."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    tint = torch.rand(classes, 3, 1, 1, generator=g)
    images = (0.6 * tint[labels] + 0.4 * torch.rand(n, *SHAPE, generator=g)).clamp(0, 1)
    ids = np.random.default_rng(seed).permutation(n) * 5 + 3
    return images, labels, ids


def test_autoencoder_on_colour_images_records_codes_and_scores(tmp_path):
    images, _, ids = _synthetic()
    test_images = _synthetic(32, seed=1)[0]
    config = TrainConfig(epochs=3, batch_size=16, snapshot_every=1, latent=6)
    run = train_autoencoder(images, ids, config, tmp_path, test_images=test_images, progress=False)
    assert run.model.shape == SHAPE
    rec = series(run)
    assert rec is run.measures and np.array_equal(rec.sample_ids, ids)
    assert rec["loss"].shape == rec["ssim"].shape == (3, 64) and rec["codes"].shape == (3, 64, 6)
    assert np.isfinite(rec["ssim"]).all() and (rec.counts("loss") == 1).all()
    assert np.isfinite(run.history["test_loss"]).all() and len(run.history) == 3
    scores = compute_scores(rec, images=images, lid_k=10)
    assert list(scores.index) == list(ids)
    assert {"loss__last", "ssim__last", "LID__mean_from_10", "sil_score__mean_from_0", "dif_L2__mean_from_0",
            "image__total_variation", "image__mean"} <= set(scores.columns)
    assert scores.notna().all().all()


@pytest.mark.parametrize("classes", [10, 7])
def test_cnn_supervised_run_on_colour_images_with_any_class_count(tmp_path, classes):
    images, labels, ids = _synthetic(classes=classes)
    test_images, test_labels, test_ids = _synthetic(35, classes=classes, seed=1)
    info = DatasetInfo.from_images(images, labels)
    assert info.num_classes == classes and info.shape == SHAPE
    task = make_task("cnn", info)
    recipe = get_recipe("paper", max_epochs=3, batch_size=16, lr=0.05, patience=None)
    run = supervised_run(task, recipe, Samples(images, labels, ids), seed=0, folder=tmp_path, progress=False,
                         test=Samples(test_images, test_labels, test_ids))
    run.model.eval()
    with torch.no_grad():
        logits = run.model(task.prepare(test_images))
    assert logits.shape == (35, classes)
    assert run.history["test_acc"].iloc[-1] == pytest.approx((logits.argmax(1) == test_labels).double().mean().item())
    assert sorted(run.records.names) == sorted(SUPERVISED)
    for name in SUPERVISED:
        assert run.records[name].shape == (3, 64) and (run.records.counts(name) == 1).all()
    assert run.history["train_acc"].iloc[-1] > 1.5 / classes  # it learns the colours
    again = supervised_run(task, recipe, Samples(images, labels, ids), seed=0, folder=tmp_path, progress=False)
    assert np.array_equal(again.records["prob"], run.records["prob"])  # the finished run is loaded


def test_barlow_twins_on_colour_images_measures_correlations():
    images, labels, ids = _synthetic()
    task = make_task("barlow_twins", DatasetInfo.from_images(images), eval_batch_size=32)
    recipe = get_recipe("paper", max_epochs=2, batch_size=16, lr=0.01, patience=None)
    run = train(task, recipe, Samples(images, None, ids), seed=0, record=False, measure_on=Samples(images, None, ids),
                logs_per_epoch=2, progress=False)
    m = run.measures
    assert sorted(m.names) == ["cross_corr", "self_corr"] and m["self_corr"].shape == (4, 64)
    assert np.isfinite(m["self_corr"]).all() and np.isfinite(m["cross_corr"]).all()
    assert (m.counts("self_corr") == 1).all()
    assert np.isfinite(run.history["train_loss"]).all() and "measure_self_corr" in run.history


def test_ssft_protocol_on_colour_images(tmp_path):
    images, labels, ids = _synthetic(48)
    task = make_task("cnn", DatasetInfo.from_images(images, labels))
    config = SSFTConfig("cnn", get_recipe("paper", max_epochs=2, batch_size=8, lr=0.05), 2, model_seeds=(0,))
    runs = run_ssft(task, config, Samples(images, labels, ids), tmp_path)
    assert [(r.seed, r.order) for r in runs] == [(0, "AB"), (0, "BA")]
    assert runs[0].stage1["prob"].shape == (2, 24) and runs[0].stage2["prob"].shape == (4, 24)
    scores = ssft_scores(runs, "correct", 0.5)
    assert sorted(scores.index) == sorted(ids)
    # forgetting fraction = forgetting time in logs / the stage-2 horizon (4 logs), never by construction alone
    np.testing.assert_allclose(scores["forgetting_fraction"], (scores["forgetting_time"] * 2 - 1) / 4)
