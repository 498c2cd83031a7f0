import numpy as np
import pytest
import torch
from torch import nn

import utils.training as training
from utils.training import TrainConfig, train_autoencoder


class ConstantAE(nn.Module):
    """Reconstructs zeros, so each sample's L1 is a known function of its (constant) image."""

    def __init__(self, latent=10, dropout=0.0):
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
    monkeypatch.setattr(training, "Autoencoder", ConstantAE)
    ids = np.random.default_rng(1).choice(1000, size=300, replace=False)
    config = TrainConfig(epochs=3, batch_size=32, track=track, snapshot_every=1)
    result = train_autoencoder(_id_images(ids), ids, config, tmp_path, progress=False)
    expected = np.abs((ids / 1000.0 - config.mean) / config.std)
    frame = result.tracker.frame("loss")
    for epoch in range(3):
        assert np.allclose(frame.loc[ids, epoch].to_numpy(), expected, atol=1e-5)


def _small(mnist5k, n=192):
    images, _ = mnist5k
    return images[:n], np.arange(10_000, 10_000 + n)


@pytest.mark.parametrize("track", ["eval", "inloop"])
def test_killed_run_resumes_bit_identical(tmp_path, mnist5k, track):
    images, ids = _small(mnist5k)
    config = TrainConfig(epochs=4, batch_size=32, track=track, snapshot_every=2, checkpoint_every=1)
    full = train_autoencoder(images, ids, config, tmp_path / "full", progress=False)

    def kill(epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_autoencoder(images, ids, config, tmp_path / "resumed", progress=False, on_epoch_end=kill)
    resumed = train_autoencoder(images, ids, config, tmp_path / "resumed", progress=False)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    for name in full.tracker.series:
        assert np.array_equal(full.tracker.series[name], resumed.tracker.series[name], equal_nan=True), name
    assert np.array_equal(full.tracker.snapshots, resumed.tracker.snapshots)
    assert full.history.drop(columns="seconds").equals(resumed.history.drop(columns="seconds"))


def test_same_seed_same_scores_other_seed_differs(tmp_path, mnist5k):
    images, ids = _small(mnist5k, 96)
    runs = [train_autoencoder(images, ids, TrainConfig(epochs=2, batch_size=32, seed=s), tmp_path / str(i),
                              progress=False) for i, s in enumerate((3, 3, 4))]
    assert np.array_equal(runs[0].tracker.series["loss"], runs[1].tracker.series["loss"])
    assert not np.array_equal(runs[0].tracker.series["loss"], runs[2].tracker.series["loss"])


def test_nan_loss_stops_with_a_clear_error(tmp_path, mnist5k):
    images, ids = _small(mnist5k, 64)
    images = images.clone()
    images[5, 0, 3, 3] = float("nan")
    with pytest.raises(FloatingPointError, match="loss became nan at epoch 1"):
        train_autoencoder(images, ids, TrainConfig(epochs=1, batch_size=32), tmp_path, progress=False)


def test_other_settings_in_the_same_folder_are_refused(tmp_path, mnist5k):
    images, ids = _small(mnist5k, 64)
    train_autoencoder(images, ids, TrainConfig(epochs=1, batch_size=32), tmp_path, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        train_autoencoder(images, ids, TrainConfig(epochs=1, batch_size=64), tmp_path, progress=False)


def test_bad_inputs_are_clear_errors(tmp_path, mnist5k):
    images, ids = _small(mnist5k, 64)
    with pytest.raises(ValueError, match="one id per image"):
        train_autoencoder(images, ids[:10], TrainConfig(epochs=1), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"\[N, 1, 28, 28\]"):
        train_autoencoder(images[:, :, :20], ids, TrainConfig(epochs=1), tmp_path, progress=False)
    with pytest.raises(ValueError, match="track"):
        TrainConfig(track="online")


def test_short_run_learns_below_the_blank_image(tmp_path, mnist5k):
    images, _ = mnist5k
    rows = np.random.default_rng(0).permutation(len(images))[:2000]  # mnist-5k is sorted by class
    result = train_autoencoder(images[rows], rows, TrainConfig(epochs=10, batch_size=32), tmp_path, progress=False)
    blank = training.blank_image_l1(images[rows], TrainConfig())
    assert result.history["eval_l1"].iloc[-1] < 0.9 * blank < result.history["eval_l1"].iloc[0]
