"""What the two-split protocol trains and what it measures per sample, for each kind of model.

A task turns a batch of pixel images ``[N, 1, 28, 28]`` in [0, 1] (and labels) into a training loss,
and the current model into per-sample measurements on a fixed set of samples (eval mode, fixed
order). The protocol stores the measurements; whether a sample counts as *learned* is decided later
(a threshold on a measurement), so thresholds can change without retraining.

* :class:`SupervisedTask` — cross-entropy; measures ``prob`` (softmax probability of the given, possibly
  flipped, label) and ``correct`` (argmax == given label).
* :class:`AutoencoderTask` — the seed's autoencoder with MSE on standardised pixels; measures ``ssim``
  (reconstruction and target in pixel space clamped to [0, 1], data_range 1) and ``mse``.
* :class:`BarlowTwinsTask` — BarlowTwins loss on two augmented views; measures ``self_corr`` and
  ``cross_corr`` per sample, each evaluation drawing the same seeded views and the same fixed batches,
  so changes between logs come from the model, not from the augmentation draw.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from utils.barlow_twins import BarlowTwins, augment, barlow_twins_loss, sample_correlations
from utils.classifiers import make_classifier
from utils.metrics import ssim
from utils.mixing import MNIST_MEAN, MNIST_STD
from utils.models import Autoencoder


def _std(x: torch.Tensor) -> torch.Tensor:
    return (x - MNIST_MEAN) / MNIST_STD


@torch.no_grad()
def _measure_in_batches(model, x, y, batches, measure_batch) -> dict[str, torch.Tensor]:
    """Eval-mode pass over ``batches`` (row selections, in order), per-sample outputs concatenated."""
    model.eval()
    parts = [measure_batch(x[rows], y[rows]) for rows in batches]
    model.train()
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def _slices(n: int, size: int) -> list[slice]:
    return [slice(s, s + size) for s in range(0, n, size)]


class SupervisedTask:
    """Classifier ``arch`` ("cnn" or "lenet") trained with cross-entropy on the given labels."""

    has_accuracy = True
    measures = ("prob", "correct")

    def __init__(self, arch: str = "cnn", eval_batch_size: int = 1000):
        make_classifier(arch)  # validates the name now, not after a data load
        self.arch, self.eval_batch_size = arch, eval_batch_size
        self.name = arch

    def make_model(self) -> torch.nn.Module:
        return make_classifier(self.arch)

    def batch_loss(self, model, x, y, generator):
        logits = model(_std(x))
        return F.cross_entropy(logits, y), int((logits.argmax(1) == y).sum())

    def measure(self, model, x, y) -> dict[str, torch.Tensor]:
        def batch(xb, yb):
            logits = model(_std(xb))
            return {"prob": logits.softmax(1).gather(1, yb[:, None])[:, 0], "correct": (logits.argmax(1) == yb).float()}
        return _measure_in_batches(model, x, y, _slices(len(x), self.eval_batch_size), batch)


class AutoencoderTask:
    """The seed's autoencoder (253,707 parameters) trained with per-pixel MSE on standardised images."""

    has_accuracy = False
    measures = ("ssim", "mse")
    name = "autoencoder"

    def __init__(self, eval_batch_size: int = 1000):
        self.eval_batch_size = eval_batch_size

    def make_model(self) -> torch.nn.Module:
        return Autoencoder()

    def batch_loss(self, model, x, y, generator):
        xs = _std(x)
        return F.mse_loss(model(xs)[0], xs), None

    def measure(self, model, x, y) -> dict[str, torch.Tensor]:
        def batch(xb, yb):
            recon = model(_std(xb))[0]
            pixels = (recon * MNIST_STD + MNIST_MEAN).clamp(0, 1)
            # seed-mode mixed images overshoot [0, 1] a little: clamp the target too, as the autoencoder study does
            return {"ssim": ssim(pixels.double(), xb.clamp(0, 1).double(), data_range=1.0).float(),
                    "mse": (recon - _std(xb)).pow(2).flatten(1).mean(1)}
        return _measure_in_batches(model, x, y, _slices(len(x), self.eval_batch_size), batch)


class BarlowTwinsTask:
    """BarlowTwins (2,172,980 parameters) on two random views of each image; no labels used."""

    has_accuracy = False
    measures = ("self_corr", "cross_corr")
    name = "barlow_twins"

    def __init__(self, eval_batch_size: int = 256, view_seed: int = 12345):
        self.eval_batch_size, self.view_seed = eval_batch_size, view_seed

    def make_model(self) -> torch.nn.Module:
        return BarlowTwins()

    def batch_loss(self, model, x, y, generator):
        v1, v2 = augment(x, generator), augment(x, generator)
        return barlow_twins_loss(model(_std(v1)), model(_std(v2))), None

    def measure(self, model, x, y) -> dict[str, torch.Tensor]:
        if len(x) < 2:
            raise ValueError("BarlowTwins correlations need at least 2 samples (they are batch statistics).")
        g = torch.Generator().manual_seed(self.view_seed)

        def batch(xb, yb):
            a, b = sample_correlations(model(_std(augment(xb, g))), model(_std(augment(xb, g))))
            return {"self_corr": a, "cross_corr": b}
        # near-equal fixed batches, so none is a lone sample without batch statistics
        batches = torch.arange(len(x)).tensor_split(math.ceil(len(x) / self.eval_batch_size))
        return _measure_in_batches(model, x, y, batches, batch)


def make_task(kind: str, **kwargs):
    """``"cnn"`` / ``"lenet"`` (supervised), ``"autoencoder"`` or ``"barlow_twins"``."""
    if kind in ("cnn", "lenet"):
        return SupervisedTask(kind, **kwargs)
    if kind == "autoencoder":
        return AutoencoderTask(**kwargs)
    if kind == "barlow_twins":
        return BarlowTwinsTask(**kwargs)
    raise ValueError(f"Unknown SSFT model {kind!r}: choose cnn, lenet, autoencoder or barlow_twins.")
