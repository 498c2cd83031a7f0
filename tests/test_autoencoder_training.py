"""The autoencoder study's training step (utils.studies.autoencoder.train_autoencoder) through the one loop."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import utils.engine.tasks as tasks
from utils.data.datasets import DatasetInfo, dataset_info
from utils.data.mixing import make_mixed
from utils.scores.autoencoder import compute_scores
from utils.studies.autoencoder import TrainConfig, blank_image_l1, series, train_autoencoder

MNIST = dataset_info("mnist")


class ConstantAE(nn.Module):
    """Reconstructs zeros, so each sample's L1 is a known function of its (constant) image."""

    def __init__(self, shape=(1, 28, 28), latent=10, dropout=0.0):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.latent = latent

    def forward(self, x):
        z = torch.sigmoid(x.mean((1, 2, 3)))[:, None].repeat(1, self.latent)
        return x * 0 * self.w, z


def _id_images(ids):
    values = torch.as_tensor(ids, dtype=torch.float32) / 1000.0
    return values[:, None, None, None].expand(-1, 1, 28, 28).clone()


@pytest.mark.parametrize("track", ["eval", "inloop"])
def test_per_sample_loss_is_attributed_to_the_right_id_under_shuffling(tmp_path, monkeypatch, track):
    monkeypatch.setattr(tasks, "Autoencoder", ConstantAE)
    ids = np.random.default_rng(1).choice(1000, size=300, replace=False)
    info = DatasetInfo("ids", (1, 28, 28), 0, (0.5,), (0.25,))
    config = TrainConfig(epochs=3, batch_size=32, track=track, snapshot_every=1)
    result = train_autoencoder(_id_images(ids), ids, config, tmp_path, info=info, progress=False)
    assert result.model.__class__ is ConstantAE
    expected = np.abs((ids / 1000.0 - 0.5) / 0.25)
    rec = series(result)
    assert rec is (result.measures if track == "eval" else result.records)
    frame = rec.frame("loss")
    assert frame.columns.tolist() == [0, 1, 2] and (rec.counts("loss") == 1).all()
    for epoch in range(3):
        np.testing.assert_allclose(frame.loc[ids, epoch].to_numpy(), expected, atol=1e-5)
    code = 1 / (1 + np.exp(-(ids / 1000.0 - 0.5) / 0.25))  # sigmoid of the (constant) standardised pixel
    np.testing.assert_allclose(rec.frame("norm").loc[ids, 2].to_numpy(), code * math.sqrt(10), rtol=1e-5)
    if track == "eval":
        assert rec["codes"].shape == (3, 300, 10) and rec.steps("codes").tolist() == [0, 1, 2]
        np.testing.assert_allclose(rec["codes"][1][:, 0], 1 / (1 + np.exp(-(rec.sample_ids / 1000.0 - 0.5) / 0.25)),
                                   rtol=1e-5)
        assert np.isnan(rec["drift"][0]).all() and np.allclose(rec["drift"][1:], 0)


def _small(mnist5k, n=192):
    images, _ = mnist5k
    return images[:n], np.arange(10_000, 10_000 + n)


def _recorders_equal(a, b):
    assert a.names == b.names and np.array_equal(a.sample_ids, b.sample_ids)
    for name in a:
        assert np.array_equal(a[name], b[name], equal_nan=True), name
        assert np.array_equal(a.steps(name), b.steps(name)) and np.array_equal(a.counts(name), b.counts(name))


@pytest.mark.parametrize("track", ["eval", "inloop"])
def test_killed_run_resumes_bit_identical(tmp_path, mnist5k, track):
    images, ids = _small(mnist5k, 96)
    config = TrainConfig(epochs=3, batch_size=32, track=track, snapshot_every=2, checkpoint_every=1)
    full = train_autoencoder(images, ids, config, tmp_path / "full", info=MNIST, progress=False)

    def kill(epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_autoencoder(images, ids, config, tmp_path / "resumed", info=MNIST, progress=False, on_epoch_end=kill)
    seen = []
    resumed = train_autoencoder(images, ids, config, tmp_path / "resumed", info=MNIST, progress=False,
                                on_epoch_end=seen.append)
    assert seen == [2]  # it resumed after the checkpoint of epoch index 1, not from scratch
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    _recorders_equal(full.records, resumed.records)
    _recorders_equal(full.measures, resumed.measures)
    if track == "eval":
        assert full.measures.steps("codes").tolist() == [1] and "drift" in full.measures
    else:
        assert sorted(full.records.names) == ["entropy", "loss", "norm"] and full.measures.names == []
    assert full.history.drop(columns="seconds").equals(resumed.history.drop(columns="seconds"))


def test_same_seed_same_scores_other_seed_differs(tmp_path, mnist5k):
    images, ids = _small(mnist5k, 64)
    runs = [train_autoencoder(images, ids, TrainConfig(epochs=2, batch_size=32, seed=s, snapshot_every=1),
                              tmp_path / str(i), info=MNIST, progress=False) for i, s in enumerate((3, 3, 4))]
    scores = [compute_scores(series(r), seed=0) for r in runs]
    assert {"LID__mean_from_10", "loss__last", "ssim__last"} <= set(scores[0].columns)
    pd.testing.assert_frame_equal(scores[0], scores[1])
    assert np.array_equal(series(runs[0])["codes"], series(runs[1])["codes"])
    assert not np.array_equal(series(runs[0])["loss"], series(runs[2])["loss"])


def test_non_finite_loss_stops_with_a_clear_error(tmp_path, mnist5k):
    images, ids = _small(mnist5k, 64)
    with pytest.raises(FloatingPointError, match=r"^The loss became nan at epoch 1, step 2: lower the recipe's lr"):
        train_autoencoder(images, ids, TrainConfig(epochs=1, batch_size=32, lr=1e30), tmp_path, progress=False)
    bad = images.clone()
    bad[5, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError) as e:  # images holding NaN are refused before any training
        train_autoencoder(bad, ids, TrainConfig(epochs=1, batch_size=32), tmp_path / "nan", info=MNIST,
                          progress=False)
    assert str(e.value) == "images hold 1 non-finite values (NaN or inf); clean or drop those samples first."
    assert not (tmp_path / "nan").exists()
    with pytest.raises(ValueError) as e:  # nor can they be mixed into artificial hard samples
        make_mixed(bad, mnist5k[1][:64], fraction=0.25, info=MNIST)
    assert str(e.value) == "images hold 1 non-finite values (NaN or inf); clean or drop those samples first."


def test_other_settings_in_the_same_folder_are_refused(tmp_path, mnist5k):
    images, ids = _small(mnist5k, 64)
    train_autoencoder(images, ids, TrainConfig(epochs=1, batch_size=32), tmp_path, info=MNIST, progress=False)
    with pytest.raises(ValueError, match=r"other settings \(recipe\)"):
        train_autoencoder(images, ids, TrainConfig(epochs=1, batch_size=64), tmp_path, info=MNIST, progress=False)
    with pytest.raises(ValueError, match=r"other settings \(settings\)|other settings \(.*track"):
        train_autoencoder(images, ids, TrainConfig(epochs=1, batch_size=32, track="inloop"), tmp_path, info=MNIST,
                          progress=False)


def test_bad_inputs_are_clear_errors(tmp_path, mnist5k):
    images, ids = _small(mnist5k, 64)
    with pytest.raises(ValueError, match="Got 10 sample ids for 64 images; pass one id per image"):
        train_autoencoder(images, ids[:10], TrainConfig(epochs=1), tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match=r"built for images \[1, 28, 28\], got \[1, 20, 28\]"):
        train_autoencoder(images[:, :, :20], ids, TrainConfig(epochs=1), tmp_path / "b", info=MNIST, progress=False)
    with pytest.raises(ValueError, match=r"built for images \[1, 28, 28\], got \[1, 28, 20\]"):
        train_autoencoder(images, ids, TrainConfig(epochs=1), tmp_path / "c", progress=False,
                          test_images=images[..., :20])
    for kwargs, message in [({"track": "online"}, "track must be one of eval, inloop, none, got 'online'."),
                            ({"lr": -1}, "lr must be a positive finite number, got -1."),
                            ({"lr": 0}, "lr must be a positive finite number, got 0."),
                            ({"lr": float("nan")}, "lr must be a positive finite number, got nan."),
                            ({"epochs": 0}, "epochs must be a positive integer, got 0."),
                            ({"batch_size": 2.5}, "batch_size must be a positive integer, got 2.5.")]:
        with pytest.raises(ValueError) as e:
            TrainConfig(**kwargs)
        assert str(e.value) == message


def test_short_run_learns_below_the_blank_image(tmp_path, mnist5k):
    images, _ = mnist5k
    rows = np.random.default_rng(0).permutation(len(images))[:600]  # mnist-5k is sorted by class
    train_rows, test_rows = rows[:400], rows[400:]
    # 200 steps get past the plateau at the blank image (L1's median: background everywhere); the seed's
    # 600 epochs go far below it, but 0.9 x blank takes thousands of steps
    config = TrainConfig(epochs=4, batch_size=8, lr=2e-3, track="none")
    result = train_autoencoder(images[train_rows], train_rows, config, tmp_path, info=MNIST,
                               test_images=images[test_rows], progress=False)
    blank = blank_image_l1(images[test_rows], MNIST)
    assert blank == pytest.approx(float(MNIST.standardize(images[test_rows]).sub(-MNIST.mean[0] / MNIST.std[0])
                                        .abs().mean()), rel=1e-6)
    test_l1 = result.history["test_loss"]
    assert test_l1.iloc[-1] < 0.995 * blank and blank < test_l1.iloc[0] and test_l1.is_monotonic_decreasing
    assert result.records.names == [] and result.measures.names == []  # track="none" records nothing


def test_the_study_scores_are_cached_by_settings_and_refused_for_others(tmp_path, mnist5k):
    """A folder holding the scores of other settings is refused, never read back as if they were these."""
    from dataclasses import replace

    from utils.studies import autoencoder as study

    images, labels = mnist5k[0][:120], mnist5k[1][:120]
    config = study.StudyConfig(results=str(tmp_path), modes=("seed",),
                               train=TrainConfig(epochs=2, batch_size=32, snapshot_every=1))
    mixed = study.mixed_dataset(config, "seed", images, labels, MNIST)
    run = study.train_or_load(config, "seed", mixed, MNIST, images[:10], progress=False)
    first = study.scores_or_load(config, "seed", run, mixed)
    again = study.scores_or_load(config, "seed", run, mixed)
    assert first.attrs["fresh"] and not again.attrs["fresh"]
    pd.testing.assert_frame_equal(again, first, check_exact=True)          # Parquet: bit-identical
    pd.testing.assert_frame_equal(study.cached_scores(config, "seed"), first, check_exact=True)
    other = make_mixed(images, labels, fraction=0.2, mode="seed", seed=config.mix_seed, info=MNIST)
    with pytest.raises(ValueError, match=r"scores.parquet was computed with other settings \(images\)"):
        study.scores_or_load(config, "seed", run, other)
    with pytest.raises(ValueError, match=r"other settings \(seed\)"):
        study.scores_or_load(replace(config, train=replace(config.train, seed=1)), "seed", run, mixed)
