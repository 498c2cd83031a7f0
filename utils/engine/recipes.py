"""Training recipes by name: optimizer + learning-rate schedule + batch size + epochs + early stop.

One recipe drives every run of :func:`utils.engine.loop.train` (autoencoder study, both SSFT stages,
supervised runs, pruning retrains):

* ``"paper"`` (Maini et al. 2022, github.com/pratyushmaini/ssft): SGD, momentum 0.9, weight decay
  5e-4, a per-step *triangle* learning rate (0 -> peak over the first 10 % of ``max_epochs``, then
  linearly back to 0 at ``max_epochs``), each stage restarting its optimizer and schedule, and an
  early stop once train accuracy has been 100 % for ``patience`` = 5 consecutive epochs.
* ``"seed"`` (the original notebooks): the same SGD at a constant lr 0.01 for 100 epochs per stage,
  no early stop — kept to reproduce the original plots and their instability bands.
* ``"autoencoder"`` (the autoencoder study): Adam 1e-3 at a constant rate, batch 32, no weight decay,
  no early stop (an autoencoder has no accuracy to stop on).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch

from utils.metrics.checks import is_number


@dataclass(frozen=True)
class Recipe:
    name: str = "paper"
    optimizer: str = "sgd"         # "sgd" or "adam"
    lr: float = 0.1                # peak lr of the triangle, or the constant lr
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "triangle"     # "triangle" or "constant"
    warmup: float = 0.1            # fraction of max_epochs at which the triangle peaks
    max_epochs: int = 100          # per stage; also the triangle's length
    patience: int | None = 5       # stop after this many consecutive epochs at 100 % train accuracy
    batch_size: int = 128

    def __post_init__(self):
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}.")
        if self.schedule not in ("triangle", "constant"):
            raise ValueError(f"schedule must be 'triangle' or 'constant', got {self.schedule!r}.")
        if not (is_number(self.lr) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr}.")
        if self.max_epochs < 1 or self.batch_size < 1:
            raise ValueError(f"max_epochs and batch_size must be positive integers, got {self.max_epochs} and "
                             f"{self.batch_size}.")
        if not (0 <= self.weight_decay < math.inf and 0 <= self.momentum < 1):
            raise ValueError(f"weight_decay must be >= 0 and momentum in [0, 1); got {self.weight_decay} and "
                             f"{self.momentum}.")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be None (no early stop) or a positive integer, got {self.patience}.")
        if not 0 < self.warmup < 1:
            raise ValueError(f"warmup must lie strictly between 0 and 1, got {self.warmup}.")

    def to_dict(self) -> dict:
        return asdict(self)


RECIPES = {
    "paper": Recipe(),
    "seed": Recipe(name="seed", lr=0.01, schedule="constant", patience=None),
    "autoencoder": Recipe(name="autoencoder", optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="constant",
                          max_epochs=200, patience=None, batch_size=32),
}


def get_recipe(name: str = "paper", **overrides) -> Recipe:
    """A named recipe with any field overridden, e.g. ``get_recipe("paper", max_epochs=20)``."""
    if name not in RECIPES:
        raise ValueError(f"Unknown recipe {name!r}: choose one of {', '.join(RECIPES)}.")
    return replace(RECIPES[name], **overrides)


def triangle(step: int, total_steps: int, peak_step: int) -> float:
    """Learning-rate factor: linear 0 -> 1 over ``peak_step`` steps, then linear 1 -> 0 at ``total_steps``."""
    if step <= peak_step:
        return step / max(peak_step, 1)
    return max(0.0, (total_steps - step) / max(total_steps - peak_step, 1))


def make_optimizer(model: torch.nn.Module, recipe: Recipe, steps_per_epoch: int):
    """(optimizer, scheduler) for one stage; call ``scheduler.step()`` after every optimizer step."""
    if recipe.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                              weight_decay=recipe.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.schedule == "constant":
        factor = lambda step: 1.0  # noqa: E731
    else:
        total = recipe.max_epochs * steps_per_epoch
        peak = max(1, round(recipe.warmup * total))
        # step s uses triangle(s + 1): the first update is not wasted at lr 0 (the last one of a full horizon is)
        factor = lambda step: triangle(step + 1, total, peak)  # noqa: E731
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)
