"""Per-sample SSFT scores from the cached runs, for any "learned" rule: one row per sample id.

A rule is a measurement and a threshold, e.g. ``("correct", 0.5)`` (argmax equals the given label),
``("prob", 0.5)``, ``("ssim", 0.5)``, or ``("cross_corr", 40, "lower")``. Changing it needs no retraining.

Columns (means over model seeds; each sample gets one first-split and one second-split history per seed):

* ``learning_time`` — epochs of stage 1 after which the sample stays learned (never: horizon + 1 epoch), the
  :attr:`utils.metrics.times.Times.epochs` unit that :mod:`utils.scores.dynamics`' ``learning_time`` uses too;
* ``forgetting_time`` — epochs of stage 2 after which it stays forgotten (never: horizon + 1 / k), the SSFT;
* ``learning_fraction`` / ``forgetting_fraction`` — the same divided by each run's horizon (1 = never), so
  runs that early-stopped at different epochs are on one scale;
* ``never_learned`` / ``never_forgotten`` — share of seeds in which it did not happen;
* ``forgetting_events`` — learned -> not-learned transitions during stage 1 (Toneva et al.);
* ``first_split_area`` / ``second_split_area`` — the raw measurement averaged over the stage's logs, a
  threshold-free variant (e.g. the area under the SSIM curve).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from utils.metrics.times import forgetting_events, forgetting_time, learning_time

COLUMNS = ("learning_time", "forgetting_time", "learning_fraction", "forgetting_fraction", "never_learned",
           "never_forgotten", "forgetting_events", "first_split_area", "second_split_area")


def learned(values: np.ndarray, threshold: float, direction: str = "higher") -> np.ndarray:
    """Boolean "learned" matrix: values above (``"higher"``) or below (``"lower"``) the threshold."""
    if direction not in ("higher", "lower"):
        raise ValueError(f"direction must be 'higher' or 'lower', got {direction!r}.")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold}.")
    return values > threshold if direction == "higher" else values < threshold


def ssft_run_scores(run, measure: str, threshold: float, direction: str = "higher") -> pd.DataFrame:
    """The score columns of one (seed, order) run, indexed by the first half's sample ids."""
    if measure not in run.stage1:
        raise ValueError(f"Unknown measurement {measure!r}; this run recorded {', '.join(run.stage1)}.")
    first, second = run.stage1[measure], run.stage2[measure]
    c1, c2 = learned(first, threshold, direction), learned(second, threshold, direction)
    lt, ft = learning_time(c1), forgetting_time(c2, run.logs_per_epoch)
    return pd.DataFrame({
        "learning_time": lt.epochs, "forgetting_time": ft.epochs,
        "learning_fraction": lt.fraction, "forgetting_fraction": ft.fraction,
        "never_learned": lt.never.astype(float), "never_forgotten": ft.never.astype(float),
        "forgetting_events": forgetting_events(c1).astype(float),
        "first_split_area": first.mean(0), "second_split_area": second.mean(0),
    }, index=pd.Index(run.ids, name="sample_id"))


def ssft_scores(runs, measure: str, threshold: float, direction: str = "higher") -> pd.DataFrame:
    """Mean of :func:`ssft_run_scores` over seeds, one row per sample id; ``n_seeds`` says how many seeds gave it.

    Refuses runs in which a sample is scored twice for the same seed or a seed does not cover every sample."""
    if not runs:
        raise ValueError("No SSFT runs given; train them first (utils.engine.protocols.run_ssft).")
    per_seed = {}
    for run in runs:
        per_seed.setdefault(run.seed, []).append(ssft_run_scores(run, measure, threshold, direction))
    frames = {seed: pd.concat(parts) for seed, parts in per_seed.items()}
    ids = None
    for seed, frame in frames.items():
        if not frame.index.is_unique:
            raise ValueError(f"Seed {seed} scores some samples twice; each sample must be in exactly one first half.")
        if ids is None:
            ids = frame.index.sort_values()
        elif not frame.index.sort_values().equals(ids):
            raise ValueError(f"Seed {seed} covers other samples than seed {next(iter(frames))}; rerun its missing "
                             "order (AB or BA) so both halves are scored.")
    stacked = pd.concat(frames.values())
    out = stacked.groupby(level=0).mean().loc[ids]
    out["n_seeds"] = len(frames)
    out.attrs.update(measure=measure, threshold=threshold, direction=direction,
                     horizons={(r.seed, r.order): (len(r.stage1[measure]), len(r.stage2[measure])) for r in runs},
                     logs_per_epoch=runs[0].logs_per_epoch)
    return out


def first_split_log(runs, measure: str, log: int, seed: int | None = None) -> pd.Series:
    """One stage-1 log (e.g. 0 = after the first epoch, -1 = the end) of every sample for one seed, by sample id."""
    seed = runs[0].seed if seed is None else seed
    parts = [pd.Series(r.stage1[measure][log], index=r.ids) for r in runs if r.seed == seed]
    if not parts:
        raise ValueError(f"No run has model seed {seed}; choose one of {sorted({r.seed for r in runs})}.")
    out = pd.concat(parts).sort_index()
    out.index.name = "sample_id"
    return out


def quantile_threshold(runs, measure: str, q: float) -> float:
    """A label-free "learned" threshold: the q-quantile of ``measure`` at the end of stage 1, all runs pooled."""
    if not 0 < q < 1:
        raise ValueError(f"quantile must lie strictly between 0 and 1, got {q}.")
    return float(np.quantile(np.concatenate([r.stage1[measure][-1] for r in runs]), q))


@dataclass(frozen=True)
class LearnedRule:
    """"Learned" = ``measure`` above (``direction="higher"``) or below (``"lower"``) a threshold: the fixed
    ``value``, or when ``value`` is None the ``quantile`` of the measurement at the end of stage 1 over every
    sample of every run (:func:`utils.scores.ssft.quantile_threshold`; no mixed labels used)."""

    measure: str
    direction: str = "higher"
    value: float | None = None
    quantile: float = 0.5

    def __post_init__(self):
        if self.direction not in ("higher", "lower"):
            raise ValueError(f"direction must be 'higher' or 'lower', got {self.direction!r}.")
        if self.value is None and not 0 < self.quantile < 1:
            raise ValueError(f"quantile must lie strictly between 0 and 1, got {self.quantile}.")

    @property
    def label(self) -> str:
        """How tables name the rule: ``ssim>0.5``, ``cross_corr`` (the median rule), ``cross_corr q0.25``."""
        if self.value is not None:
            return f"{self.measure}{'>' if self.direction == 'higher' else '<'}{self.value:g}"
        return self.measure if self.quantile == 0.5 else f"{self.measure} q{self.quantile:g}"

    @property
    def name(self) -> str:
        """How file names carry the rule: ``ssim0.5``, ``cross_corr``, ``cross_corr_q0.25``."""
        if self.value is not None:
            return f"{self.measure}{self.value:g}"
        return self.measure if self.quantile == 0.5 else f"{self.measure}_q{self.quantile:g}"

    def threshold(self, runs) -> float:
        return float(self.value) if self.value is not None else quantile_threshold(runs, self.measure, self.quantile)
