"""Seeded, resumable autoencoder training with per-sample tracking.

The dataset lives in memory as one standardised tensor; each epoch draws its shuffle and its dropout
masks from generators seeded by ``(seed, epoch)``, so a run killed after a checkpoint and resumed ends
bit-identical (on CPU) to an uninterrupted one. Two tracking modes:

* ``"eval"`` (the seed's, accurate): after each epoch, an eval-mode pass in a fixed order over all
  training samples records per-sample L1, code entropy, code norm, code drift and reconstruction SSIM,
  and every ``snapshot_every`` epochs the codes themselves.
* ``"inloop"``: records the L1, entropy and norm of the training forward pass itself (dropout on,
  weights before the update) at no extra cost.
* ``"none"``: no tracking (the plain loop the benchmark compares against).

Per-sample L1 is the mean absolute error over pixels in standardised space (the seed's loss, so its
numbers compare); SSIM is computed on pixel-space images clamped to [0, 1] with ``data_range=1``.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from utils.metrics import bottleneck_entropy, ssim
from utils.mixing import MNIST_MEAN, MNIST_STD
from utils.models import Autoencoder
from utils.tracking import SampleTracker

EVAL_SCALARS = ("loss", "entropy", "norm", "drift", "ssim")
INLOOP_SCALARS = ("loss", "entropy", "norm")
TRACK_MODES = {"eval": EVAL_SCALARS, "inloop": INLOOP_SCALARS, "none": ()}


@dataclass
class TrainConfig:
    """Hyper-parameters; the defaults are the seed's (L1, Adam 1e-3, batch 512, seed 91, latent 10)."""

    epochs: int = 600
    batch_size: int = 512
    lr: float = 1e-3
    seed: int = 91
    latent: int = 10
    track: str = "eval"
    snapshot_every: int = 10
    checkpoint_every: int = 10
    eval_batch_size: int = 2048
    mean: float = MNIST_MEAN
    std: float = MNIST_STD

    def __post_init__(self):
        if self.track not in TRACK_MODES:
            raise ValueError(f"track must be one of {', '.join(TRACK_MODES)}, got {self.track!r}.")
        for field in ("epochs", "batch_size", "snapshot_every", "checkpoint_every"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be a positive integer, got {getattr(self, field)}.")

    @property
    def scalars(self):
        return TRACK_MODES[self.track]


@dataclass
class TrainResult:
    model: Autoencoder
    tracker: SampleTracker
    history: pd.DataFrame
    folder: Path


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def standardize(images: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    return (images - config.mean) / config.std


def blank_image_l1(images: torch.Tensor, config: TrainConfig) -> float:
    """L1 of predicting an all-background image: the baseline a useful autoencoder must beat."""
    background = (0.0 - config.mean) / config.std
    return float((standardize(images, config) - background).abs().mean())


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def per_sample_l1(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (recon - target).abs().flatten(1).mean(1)


def to_pixels(x_std: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """Standardised images back to [0, 1] pixels (clamped), for SSIM and display."""
    return (x_std * config.std + config.mean).clamp(0, 1)


@torch.no_grad()
def evaluate(model: Autoencoder, x_std: torch.Tensor, config: TrainConfig, with_ssim: bool = True):
    """Eval-mode pass in fixed order: per-sample L1, codes and (optionally) SSIM, all on CPU."""
    model.eval()
    losses, codes, ssims = [], [], []
    for start in range(0, len(x_std), config.eval_batch_size):
        x = x_std[start:start + config.eval_batch_size]
        recon, z = model(x)
        losses.append(per_sample_l1(recon, x).cpu())
        codes.append(z.cpu())
        if with_ssim:
            ssims.append(ssim(to_pixels(recon, config).cpu().double(), to_pixels(x, config).cpu().double()).float())
    return torch.cat(losses), torch.cat(codes), (torch.cat(ssims) if with_ssim else None)


def _save_checkpoint(folder: Path, model, optimizer, epoch: int, history: list, tracker: SampleTracker,
                     prev_codes) -> None:
    """Write tracker then checkpoint to temporary names and rename, so a kill never leaves half a state."""
    tmp_tracker = folder / "tracker.tmp"
    shutil.rmtree(tmp_tracker, ignore_errors=True)
    tracker.save(tmp_tracker)
    state = {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "history": history, "prev_codes": prev_codes}
    torch.save(state, folder / "checkpoint.pt.tmp")
    shutil.rmtree(folder / "tracker", ignore_errors=True)
    (tmp_tracker).rename(folder / "tracker")
    (folder / "checkpoint.pt.tmp").replace(folder / "checkpoint.pt")


def train_autoencoder(images: torch.Tensor, sample_ids, config: TrainConfig, folder,
                      test_images: torch.Tensor | None = None, device=None, progress: bool = True,
                      on_epoch_end=None) -> TrainResult:
    """Train the seed autoencoder on ``images`` (pixel space, ``[N,1,28,28]``), tracking every sample.

    Results (``config.json``, ``history.csv``, ``tracker/``, ``model.pt``) go to ``folder``; a
    ``checkpoint.pt`` there is resumed from. ``on_epoch_end(epoch)`` is called after each checkpoint
    decision (tests use it to simulate a kill).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"images must have shape [N, 1, 28, 28], got {list(images.shape)}.")
    ids = torch.as_tensor(np.asarray(sample_ids), dtype=torch.int64)
    if len(ids) != len(images):
        raise ValueError(f"Got {len(ids)} sample ids for {len(images)} images; pass one id per image.")
    _check_config(folder, config)
    device = torch.device(device) if device else default_device()

    x_all = standardize(images.float(), config).to(device)
    x_test = standardize(test_images.float(), config).to(device) if test_images is not None else None
    torch.manual_seed(config.seed)
    # channels-last activations run the small convolutions 1.3x (batch 32) to 1.9x (batch 512) faster on CPU
    model = Autoencoder(config.latent).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    snapshot_every = config.snapshot_every if config.track != "none" else None
    tracker = SampleTracker(ids, config.epochs, config.scalars, snapshot_every, config.latent)
    history, start, prev_codes = [], 0, None
    if (folder / "checkpoint.pt").is_file():
        state = torch.load(folder / "checkpoint.pt", map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, start, prev_codes = state["history"], state["epoch"] + 1, state["prev_codes"]
        tracker = SampleTracker.load(folder / "tracker")

    n = len(x_all)
    epochs = tqdm(range(start, config.epochs), desc="epochs", disable=not progress,
                  initial=start, total=config.epochs)
    for epoch in epochs:
        tic = time.perf_counter()
        model.train()
        torch.manual_seed(_epoch_seed(config.seed, epoch))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(_epoch_seed(config.seed, epoch)))
        train_sum = 0.0
        for step, start_idx in enumerate(range(0, n, config.batch_size)):
            rows = order[start_idx:start_idx + config.batch_size]
            x = x_all[rows.to(device)]
            recon, z = model(x)
            losses = per_sample_l1(recon, x)
            loss = losses.mean()
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"The loss became {loss.item()} at epoch {epoch + 1}, step {step}: lower the learning rate "
                    f"or check the inputs for NaN; the last checkpoint in {folder} is kept.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            train_sum += float(losses.detach().sum())
            if config.track == "inloop":
                batch_ids = ids[rows]
                zd = z.detach()
                tracker.record("loss", epoch, batch_ids, losses.detach())
                tracker.record("entropy", epoch, batch_ids, bottleneck_entropy(zd))
                tracker.record("norm", epoch, batch_ids, zd.norm(dim=1))
                if tracker.wants_snapshot(epoch):
                    tracker.record_snapshot(epoch, batch_ids, zd)
        row = {"epoch": epoch + 1, "train_l1": train_sum / n}
        if config.track == "eval":
            l1, codes, ssims = evaluate(model, x_all, config)
            tracker.record("loss", epoch, ids, l1)
            tracker.record("entropy", epoch, ids, bottleneck_entropy(codes))
            tracker.record("norm", epoch, ids, codes.norm(dim=1))
            tracker.record("drift", epoch, ids, (codes - prev_codes).norm(dim=1) if prev_codes is not None
                           else torch.full((n,), float("nan")))
            tracker.record("ssim", epoch, ids, ssims)
            if tracker.wants_snapshot(epoch):
                tracker.record_snapshot(epoch, ids, codes)
            prev_codes = codes
            row.update(eval_l1=float(l1.mean()), eval_ssim=float(ssims.mean()))
        if x_test is not None:
            test_l1, _, _ = evaluate(model, x_test, config, with_ssim=False)
            row["test_l1"] = float(test_l1.mean())
        row["seconds"] = time.perf_counter() - tic
        history.append(row)
        epochs.set_postfix({k: round(v, 4) for k, v in row.items() if k.endswith("l1")})
        if (epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == config.epochs:
            _save_checkpoint(folder, model, optimizer, epoch, history, tracker, prev_codes)
        if on_epoch_end is not None:
            on_epoch_end(epoch)

    torch.save(model.state_dict(), folder / "model.pt")
    history_df = pd.DataFrame(history)
    history_df.to_csv(folder / "history.csv", index=False)
    return TrainResult(model, tracker, history_df, folder)


def load_run(folder) -> TrainResult:
    """Load a finished run (model, tracker, history) without retraining."""
    folder = Path(folder)
    if not (folder / "model.pt").is_file():
        raise FileNotFoundError(f"No finished run in {folder}: run the training notebook (or `make run`) first.")
    config = TrainConfig(**json.loads((folder / "config.json").read_text()))
    model = Autoencoder(config.latent)
    model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu"))
    return TrainResult(model, SampleTracker.load(folder / "tracker"), pd.read_csv(folder / "history.csv"), folder)


def _check_config(folder: Path, config: TrainConfig) -> None:
    path = folder / "config.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved != asdict(config):
            diff = {k: (saved.get(k), v) for k, v in asdict(config).items() if saved.get(k) != v}
            raise ValueError(f"{folder} holds a run with other settings {diff}; pick a new results folder "
                             "or delete that one to start over.")
    else:
        path.write_text(json.dumps(asdict(config), indent=1))
