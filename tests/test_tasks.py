"""Tasks: what each model is trained on and what is measured per sample, independent of the loop."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import utils.engine.tasks as tasks
from utils.data.datasets import DatasetInfo, dataset_info
from utils.data.samples import Samples
from utils.engine.loop import train
from utils.engine.recipes import get_recipe
from utils.engine.tasks import AutoencoderTask, BarlowTwinsTask, SupervisedTask, make_task, supervised_values
from utils.metrics.embedding import bottleneck_entropy
from utils.metrics.ssim import ssim

MNIST = dataset_info("mnist")


def test_float32_eval_ssim_is_within_3e5_of_float64_on_real_reconstructions(mnist5k, monkeypatch):
    images = mnist5k[0][np.random.default_rng(0).permutation(len(mnist5k[0]))[:128]]
    task = AutoencoderTask(MNIST, eval_batch_size=50)
    trained = train(task, get_recipe("autoencoder", max_epochs=2, batch_size=16), Samples(images, None,
                    np.arange(128)), seed=0, record=False, progress=False).model
    torch.manual_seed(1)
    for model in (task.make_model(), trained):  # blurry blobs and first digit-like reconstructions
        dtypes = []
        real = tasks.ssim
        monkeypatch.setattr(tasks, "ssim", lambda *a, **k: dtypes.append(k.get("dtype")) or real(*a, **k))
        measured = task.measure(model, task.prepare(images), None, {}, 0)["ssim"]
        monkeypatch.setattr(tasks, "ssim", real)
        assert set(dtypes) == {torch.float32}  # the speed eval_pass's docstring claims rests on float32
        model.eval()
        with torch.no_grad():
            recon = model(task.prepare(images))[0]
        exact = ssim(MNIST.to_pixels(recon).double(), images.double(), data_range=1.0)
        assert (measured.double() - exact).abs().max() < 3e-5


def test_supervised_values_follow_their_definitions():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 7, generator=g) * 3
    y = torch.randint(0, 7, (50,), generator=g)
    v = supervised_values(logits, y)
    rows = torch.arange(50)
    others = logits.clone()
    others[rows, y] = -np.inf
    torch.testing.assert_close(v["loss"], F.cross_entropy(logits, y, reduction="none"))
    torch.testing.assert_close(v["given_logit"], logits[rows, y])
    torch.testing.assert_close(v["other_logit"], others.max(1).values)
    torch.testing.assert_close(v["prob"], logits.softmax(1)[rows, y])
    assert torch.equal(v["correct"], (logits.argmax(1) == y).float()) and 0 < v["correct"].sum() < 50
    given = torch.full((50,), 1.5)
    assert torch.equal(supervised_values(logits, y, given)["loss"], given)


def test_supervised_train_step_values_come_from_the_same_forward_pass():
    info = DatasetInfo("toy", (1, 12, 12), 4, (0.5,), (0.25,))
    task = SupervisedTask(info, "lenet")
    torch.manual_seed(0)
    model = task.make_model()
    x = task.prepare(torch.rand(10, 1, 12, 12))
    y = torch.arange(10) % 4
    loss, values, correct = task.train_step(model, x, y, None, record=True)
    logits = model(x)
    assert loss.requires_grad and loss.item() == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert set(values) == {"loss", "given_logit", "other_logit", "prob", "correct"}
    assert not any(v.requires_grad for v in values.values())
    assert torch.equal(correct, logits.argmax(1) == y) and torch.equal(values["correct"], correct.float())
    assert task.train_step(model, x, y, None, record=False)[1] == {}
    ev = task.evaluate(model, x, y)
    assert set(ev) == {"loss", "acc"} and torch.equal(ev["acc"], correct.float())


def test_prepare_standardises_per_channel_and_checks_the_shape():
    info = DatasetInfo("rgb", (3, 4, 4), 0, (0.1, 0.5, 0.9), (0.5, 0.25, 0.125))
    x = torch.rand(2, 3, 4, 4)
    z = AutoencoderTask(info).prepare(x)
    for c in range(3):
        torch.testing.assert_close(z[:, c], (x[:, c] - info.mean[c]) / info.std[c])
    assert torch.equal(BarlowTwinsTask(info).prepare(x), x)  # pixels: views are standardised after augmenting
    with pytest.raises(ValueError) as e:
        AutoencoderTask(info).prepare(torch.rand(2, 1, 4, 4))
    assert str(e.value) == ("The autoencoder task was built for images [3, 4, 4], got [1, 4, 4]; describe the data "
                            "you train on.")


def test_autoencoder_measures_every_sample_in_order_with_drift_and_snapshots():
    images = torch.rand(9, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    info = DatasetInfo.from_images(images)
    task = AutoencoderTask(info, loss="mse", snapshot_every=2, eval_batch_size=4)
    torch.manual_seed(0)
    model = task.make_model()
    x = task.prepare(images)
    state = {}
    first = task.measure(model, x, None, state, 0)
    assert set(first) == {"loss", "entropy", "norm", "ssim", "drift"} and torch.isnan(first["drift"]).all()
    model.eval()
    with torch.no_grad():
        recon, z = model(x)
    torch.testing.assert_close(first["loss"], (recon - x).pow(2).flatten(1).mean(1))
    torch.testing.assert_close(first["norm"], z.norm(dim=1))
    torch.testing.assert_close(first["entropy"], bottleneck_entropy(z))
    # eval batches of 4 against one pass of 9: the CPU kernels may sum in another order (float tolerance)
    assert model.training is False
    torch.testing.assert_close(state["codes"], z)
    with torch.no_grad():
        for p in model.encoder.head[-2].parameters():
            p.add_(0.1)
        z2 = model(x)[1]
    second = task.measure(model, x, None, state, 1)
    assert set(second) == {"loss", "entropy", "norm", "ssim", "drift", "codes"}  # every 2nd measurement
    torch.testing.assert_close(second["drift"], (z2 - z).norm(dim=1))
    torch.testing.assert_close(second["codes"], z2)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(1))
    shuffled = task.measure(model, x[perm], None, {}, 0)
    for name in ("loss", "entropy", "norm", "ssim"):  # eval mode: a sample's value does not depend on its batch
        torch.testing.assert_close(shuffled[name], second[name][perm])
    held_out = task.evaluate(model, x, None)
    assert set(held_out) == {"loss"}
    assert set(task.measure(model, x, None, None, None)) == {"loss", "entropy", "norm"}


def test_barlow_twins_measurements_are_seeded_and_per_sample():
    images = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    task = make_task("barlow_twins", MNIST, eval_batch_size=4)
    torch.manual_seed(0)
    model = task.make_model()
    c1, c2 = task.measure(model, images, None, {}, 0), task.measure(model, images, None, {}, 1)
    assert c1["self_corr"].shape == c1["cross_corr"].shape == (10,)
    assert torch.equal(c1["self_corr"], c2["self_corr"]) and torch.equal(c1["cross_corr"], c2["cross_corr"])
    assert model.training  # left as it was found
    with pytest.raises(ValueError, match="at least 2 samples"):
        task.measure(model, images[:1], None, {}, 0)
    loss, values, correct = task.train_step(model, images[:6], None, torch.Generator().manual_seed(0), True)
    assert loss.requires_grad and torch.isfinite(loss) and values == {} and correct is None


def test_make_task_and_bad_arguments_are_one_clear_sentence():
    assert isinstance(make_task("cnn", MNIST), SupervisedTask) and make_task("lenet", MNIST).arch == "lenet"
    assert isinstance(make_task("autoencoder", MNIST, latent=4), AutoencoderTask)
    cases = [(lambda: make_task("resnet", MNIST), ValueError,
              "Unknown model 'resnet': choose one of cnn, lenet, autoencoder, barlow_twins."),
             (lambda: SupervisedTask(DatasetInfo("x", (1, 28, 28), 0, (0.5,), (0.5,))), ValueError,
              "A classifier needs at least 2 classes, the data description says 0."),
             (lambda: SupervisedTask(MNIST, "vgg"), ValueError,
              "Unknown classifier 'vgg': choose one of cnn, lenet, resnet18."),
             (lambda: AutoencoderTask(MNIST, loss="l2"), ValueError, "loss must be 'l1' or 'mse', got 'l2'."),
             (lambda: AutoencoderTask(MNIST, latent=0), ValueError,
              "latent and snapshot_every must be positive, got 0 and None."),
             (lambda: make_task("cnn", MNIST, eval_batch_size=0), ValueError,
              "eval_batch_size must be a positive integer, got 0."),
             (lambda: make_task("cnn", "mnist"), TypeError,
              "info must be a DatasetInfo (utils.data.datasets.load_dataset returns one, DatasetInfo.from_images computes one "
              "for your own tensors).")]
    for make, error, message in cases:
        with pytest.raises(error) as e:
            make()
        assert str(e.value) == message


def test_task_settings_name_what_changes_the_run():
    a, b = AutoencoderTask(MNIST), AutoencoderTask(MNIST, latent=4)
    assert a.settings() != b.settings() and a.settings()["info"] == MNIST.to_dict()
    assert make_task("cnn", MNIST).settings() != make_task("lenet", MNIST).settings()


@pytest.mark.parametrize("kind", ["cnn", "autoencoder"])
def test_per_sample_measures_do_not_depend_on_the_eval_batch_size(kind, mnist5k):
    """The eval batch is a speed setting only (benchmarks/bench_training.py item 4): every per-sample value of a
    channels-last model, as the loop holds it, is the same at the default batch, at 7 and at 1000."""
    images, labels = mnist5k[0][:300], mnist5k[1][:300]
    torch.manual_seed(0)
    model = make_task(kind, MNIST).make_model().to(memory_format=torch.channels_last)
    y = labels if kind == "cnn" else None
    runs = [make_task(kind, MNIST, **kw).measure(model, make_task(kind, MNIST).prepare(images), y, {}, 0)
            for kw in ({}, {"eval_batch_size": 7}, {"eval_batch_size": 1000})]
    assert set(runs[0]) == set(runs[1]) and len(runs[0]) >= 3
    for other in runs[1:]:
        for name, v in runs[0].items():
            assert v.shape[0] == 300
            torch.testing.assert_close(other[name], v, atol=1e-5, rtol=1e-5, equal_nan=True)   # drift: NaN at 0
