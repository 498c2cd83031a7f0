"""What a model is trained on and what is measured per sample: one class per kind of model.

A task is what :func:`utils.engine.loop.train` needs to know about a model, and nothing about the loop:

* ``make_model()`` — a fresh network sized from the dataset description (any C x H x W, any class count);
* ``prepare(images)`` — pixel images in [0, 1] -> the tensor the model sees (standardised with the
  dataset's own per-channel mean and std; BarlowTwins keeps pixels and standardises its views);
* ``train_step(model, x, y, generator, record)`` -> ``(loss, per-sample values, correct)``: the batch
  loss to minimise, the per-sample values the loop records in-loop when ``record`` is set (computed
  from the same forward pass, detached), and a per-sample correctness tensor (or ``None``);
* ``measure(model, x, y, state, step)`` -> per-sample values of an eval-mode pass in fixed order;
  ``state`` (a dict the loop checkpoints) carries values from one measurement to the next;
* ``evaluate(model, x, y)`` -> per-sample values whose means go to the history (held-out sets).

Tasks:

* :class:`SupervisedTask` — cross-entropy on the given labels. Per sample it records (in-loop and when
  measured) ``loss``, ``given_logit``, ``other_logit`` (the largest logit of another class), ``prob``
  (softmax probability of the given label) and ``correct`` (argmax == given label): everything AUM,
  EL2N, cartography, forgetting events and SSFT need.
* :class:`AutoencoderTask` — the seed's autoencoder with per-sample L1 (the study) or MSE (SSFT) on
  standardised pixels. It records ``loss``, ``entropy`` and ``norm`` of the code; measurements add
  ``ssim`` (pixels clamped to [0, 1], ``data_range=1``), ``drift`` (code movement since the previous
  measurement) and, every ``snapshot_every`` measurements, the ``codes`` themselves.
* :class:`BarlowTwinsTask` — BarlowTwins loss on two random views; measures ``self_corr`` and
  ``cross_corr`` per sample, each measurement drawing the same seeded views and fixed batches.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from utils.data.datasets import DatasetInfo
from utils.engine.barlow_twins import augment, barlow_twins_loss, sample_correlations
from utils.engine.models import CLASSIFIERS, Autoencoder, BarlowTwins, make_classifier
from utils.metrics.embedding import bottleneck_entropy
from utils.metrics.ssim import ssim


def eval_pass(model, x, y, size: int, fn) -> dict[str, torch.Tensor]:
    """Eval-mode pass over fixed consecutive batches, per-sample outputs concatenated on the CPU.

    The tasks' default ``size`` is small (CNN 128, autoencoder 256): with the loop's channels-last weights, batches
    that stay in the CPU cache run the pass 3.3x (CNN) and 1.1x (autoencoder) faster on one thread than batches of
    1000 / 2048 (`make benchmark`, item 4); the values do not depend on it (tests/test_tasks.py). On a GPU pass a
    larger ``eval_batch_size`` to the task."""
    was_training = model.training
    model.eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(x), size):
            parts.append({k: v.cpu() for k, v in fn(x[start:start + size],
                                                    None if y is None else y[start:start + size]).items()})
    model.train(was_training)
    if not parts:
        return {}
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def supervised_values(logits: torch.Tensor, y: torch.Tensor, losses: torch.Tensor | None = None,
                      with_logits: bool = False) -> dict:
    """Per-sample loss, given-label logit, largest other logit, softmax probability of the label, correctness
    (and the full ``logits`` vector when ``with_logits``)."""
    logits = logits.detach().float()
    given = logits.gather(1, y[:, None])[:, 0]
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    log_prob = logits.log_softmax(1).gather(1, y[:, None])[:, 0]
    values = {"loss": -log_prob if losses is None else losses.detach(), "given_logit": given, "other_logit": other,
              "prob": log_prob.exp(), "correct": (given > other).float()}
    if with_logits:
        values["logits"] = logits
    return values


class _Task:
    has_accuracy = False
    needs_labels = False

    def __init__(self, info: DatasetInfo, eval_batch_size: int = 1000):
        if not isinstance(info, DatasetInfo):
            raise TypeError("info must be a DatasetInfo (utils.data.datasets.load_dataset returns one, "
                            "DatasetInfo.from_images computes one for your own tensors).")
        if eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be a positive integer, got {eval_batch_size}.")
        self.info, self.eval_batch_size = info, eval_batch_size

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        if tuple(images.shape[1:]) != tuple(self.info.shape):
            raise ValueError(f"The {self.name} task was built for images {list(self.info.shape)}, got "
                             f"{list(images.shape[1:])}; describe the data you train on.")
        return self.info.standardize(images.float())

    def settings(self) -> dict:
        return {"name": self.name, "info": self.info.to_dict()}

    def evaluate(self, model, x, y) -> dict[str, torch.Tensor]:
        return self.measure(model, x, y, None, None)


class SupervisedTask(_Task):
    """Classifier ``arch`` (``"cnn"`` or ``"lenet"``) trained with cross-entropy on the given labels."""

    has_accuracy = True
    needs_labels = True

    def __init__(self, info: DatasetInfo, arch: str = "cnn", eval_batch_size: int = 128, record_logits: bool = False):
        if arch not in CLASSIFIERS:
            raise ValueError(f"Unknown classifier {arch!r}: choose one of {', '.join(CLASSIFIERS)}.")
        super().__init__(info, eval_batch_size)
        if info.num_classes < 2:
            raise ValueError(f"A classifier needs at least 2 classes, the data description says {info.num_classes}.")
        self.arch = self.name = arch
        self.record_logits = record_logits

    def settings(self) -> dict:
        return {**super().settings(), **({"record_logits": True} if self.record_logits else {})}

    def make_model(self) -> torch.nn.Module:
        return make_classifier(self.arch, self.info.shape, self.info.num_classes)

    def train_step(self, model, x, y, generator, record: bool):
        logits = model(x)
        losses = F.cross_entropy(logits, y, reduction="none")
        values = supervised_values(logits, y, losses, self.record_logits) if record else {}
        return losses.mean(), values, logits.detach().argmax(1) == y

    def measure(self, model, x, y, state, step):
        return eval_pass(model, x, y, self.eval_batch_size,
                           lambda xb, yb: supervised_values(model(xb), yb, with_logits=self.record_logits))

    def evaluate(self, model, x, y):
        values = self.measure(model, x, y, None, None)
        return {"loss": values["loss"], "acc": values["correct"]}


class AutoencoderTask(_Task):
    """The seed's autoencoder (253,707 parameters on 1x28x28) with per-sample ``loss`` = L1 or MSE."""

    def __init__(self, info: DatasetInfo, loss: str = "l1", latent: int = 10, snapshot_every: int | None = None,
                 with_ssim: bool = True, eval_batch_size: int = 256):
        if loss not in ("l1", "mse"):
            raise ValueError(f"loss must be 'l1' or 'mse', got {loss!r}.")
        if latent < 1 or (snapshot_every is not None and snapshot_every < 1):
            raise ValueError(f"latent and snapshot_every must be positive, got {latent} and {snapshot_every}.")
        super().__init__(info, eval_batch_size)
        self.name, self.loss, self.latent = "autoencoder", loss, latent
        self.snapshot_every, self.with_ssim = snapshot_every, with_ssim

    def settings(self) -> dict:
        return {**super().settings(), "loss": self.loss, "latent": self.latent, "snapshot_every": self.snapshot_every,
                "with_ssim": self.with_ssim}

    def make_model(self) -> torch.nn.Module:
        return Autoencoder(self.info.shape, self.latent)

    def per_sample_loss(self, recon, x):
        diff = recon - x
        return (diff.abs() if self.loss == "l1" else diff.pow(2)).flatten(1).mean(1)

    def train_step(self, model, x, y, generator, record: bool):
        recon, z = model(x)
        losses = self.per_sample_loss(recon, x)
        values = {}
        if record:
            zd = z.detach()
            values = {"loss": losses.detach(), "entropy": bottleneck_entropy(zd), "norm": zd.norm(dim=1)}
        return losses.mean(), values, None

    def measure(self, model, x, y, state, step):
        def batch(xb, yb):
            recon, z = model(xb)
            out = {"loss": self.per_sample_loss(recon, xb), "entropy": bottleneck_entropy(z), "norm": z.norm(dim=1),
                   "z": z}
            if self.with_ssim and state is not None:
                # float32: 2.5x faster than float64 on 57,000 images, within 3e-5 of it (tests/test_tasks.py)
                out["ssim"] = ssim(self.info.to_pixels(recon).float(), self.info.to_pixels(xb).float(), data_range=1.0,
                                   dtype=torch.float32)
            return out

        values = eval_pass(model, x, y, self.eval_batch_size, batch)
        codes = values.pop("z")
        if state is None:  # a held-out set: no drift, no snapshots
            return values
        prev = state.get("codes")
        values["drift"] = (codes - prev).norm(dim=1) if prev is not None else torch.full((len(codes),), float("nan"))
        state["codes"] = codes
        if self.snapshot_every and (step + 1) % self.snapshot_every == 0:
            values["codes"] = codes
        return values

    def evaluate(self, model, x, y):
        return eval_pass(model, x, y, self.eval_batch_size,
                           lambda xb, yb: {"loss": self.per_sample_loss(model(xb)[0], xb)})


class BarlowTwinsTask(_Task):
    """BarlowTwins (2,172,980 parameters on 1x28x28) on two random views of each image; no labels used."""

    min_batch = 2  # the loss standardises embeddings over the batch: a training batch of one cannot be used

    def __init__(self, info: DatasetInfo, eval_batch_size: int = 256, view_seed: int = 12345):
        super().__init__(info, eval_batch_size)
        self.name, self.view_seed = "barlow_twins", view_seed

    def make_model(self) -> torch.nn.Module:
        return BarlowTwins(self.info.shape)

    def prepare(self, images):
        super().prepare(images)  # shape check only: views are drawn on pixels and standardised after
        return images.float()

    def train_step(self, model, x, y, generator, record: bool):
        v1, v2 = augment(x, generator), augment(x, generator)
        return barlow_twins_loss(model(self.info.standardize(v1)), model(self.info.standardize(v2))), {}, None

    def measure(self, model, x, y, state, step):
        if len(x) < 2:
            raise ValueError("BarlowTwins correlations need at least 2 samples (they are batch statistics).")
        g = torch.Generator().manual_seed(self.view_seed)
        was_training = model.training
        model.eval()
        parts = []
        with torch.no_grad():
            # near-equal fixed batches, so none is a lone sample without batch statistics
            for rows in torch.arange(len(x)).tensor_split(math.ceil(len(x) / self.eval_batch_size)):
                xb = x[rows.to(x.device)]
                a, b = sample_correlations(model(self.info.standardize(augment(xb, g))),
                                           model(self.info.standardize(augment(xb, g))))
                parts.append((a.cpu(), b.cpu()))
        model.train(was_training)
        return {"self_corr": torch.cat([p[0] for p in parts]), "cross_corr": torch.cat([p[1] for p in parts])}

    def evaluate(self, model, x, y):
        return self.measure(model, x, y, None, None)


TASKS = ("cnn", "lenet", "autoencoder", "barlow_twins")


def make_task(kind: str, info: DatasetInfo, **kwargs):
    """``"cnn"`` / ``"lenet"`` (supervised), ``"autoencoder"`` or ``"barlow_twins"``, for data described by ``info``."""
    if kind in CLASSIFIERS:
        return SupervisedTask(info, kind, **kwargs)
    if kind == "autoencoder":
        return AutoencoderTask(info, **kwargs)
    if kind == "barlow_twins":
        return BarlowTwinsTask(info, **kwargs)
    raise ValueError(f"Unknown model {kind!r}: choose one of {', '.join(TASKS)}.")
