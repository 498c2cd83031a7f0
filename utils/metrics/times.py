"""Learning time, forgetting time and forgetting events from a per-sample correctness matrix.

``correct[e, n]`` is True when sample n counts as learned at log e (rows in time order). With k logs
per epoch, log e is the state after (e + 1) / k epochs of that stage.

* learning time  = the smallest e such that ``correct[e:, n]`` is all True  (learned for good);
* forgetting time = the smallest e such that ``correct[e:, n]`` is all False (forgotten for good);
* both are E (the number of logs, the *horizon*) when it never happens, and the horizon travels with
  the times, so runs of different lengths are compared on ``fraction`` (time / horizon, 1 = never) or
  with the ``never`` flag instead of an E + 1 sentinel that depends on the run length.
* forgetting events (Toneva et al. 2019) = the number of learned -> not-learned transitions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Times:
    """Per-sample event times in log units, with the horizon they were measured against."""

    logs: np.ndarray          # int [N], in 0..horizon; horizon = never
    horizon: int              # E, the number of logs
    logs_per_epoch: int = 1   # k

    @property
    def never(self) -> np.ndarray:
        return self.logs == self.horizon

    @property
    def epochs(self) -> np.ndarray:
        """Training (in epochs of the stage) after which the event had happened: (log + 1) / k.

        Samples for which it never happened get (horizon + 1) / k, one log past the end."""
        return (self.logs + 1) / self.logs_per_epoch

    @property
    def fraction(self) -> np.ndarray:
        """log / horizon in [0, 1]; 1 means never. Comparable across runs of different lengths."""
        return self.logs / self.horizon


def _as_correct(correct) -> np.ndarray:
    c = np.asarray(correct)
    if c.ndim != 2 or c.shape[0] == 0:
        raise ValueError(f"correct must be a 2-d array [logs, samples] with at least one log, got shape {c.shape}.")
    if c.dtype != bool:
        if not np.isin(c, (0, 1)).all():
            raise ValueError("correct must be boolean (or 0/1); threshold the scores first.")
        c = c.astype(bool)
    return c


def _first_of_final_run(state: np.ndarray) -> np.ndarray:
    """Per column, the first row from which ``state`` stays True to the end (E if the last row is False)."""
    e = state.shape[0]
    # reverse cumulative "all True from here": a False at row r makes every row <= r fail
    stays = np.flip(np.logical_and.accumulate(np.flip(state, 0), axis=0), 0)
    return np.where(stays.any(0), e - stays.sum(0), e).astype(np.int64)


def learning_time(correct, logs_per_epoch: int = 1) -> Times:
    """First log after which a sample stays learned until the end (horizon when not learned at the end)."""
    c = _as_correct(correct)
    return Times(_first_of_final_run(c), c.shape[0], _check_k(logs_per_epoch, c.shape[0]))


def forgetting_time(correct, logs_per_epoch: int = 1) -> Times:
    """First log after which a sample stays not learned until the end (horizon when it is learned at the end)."""
    c = _as_correct(correct)
    return Times(_first_of_final_run(~c), c.shape[0], _check_k(logs_per_epoch, c.shape[0]))


def forgetting_events(correct) -> np.ndarray:
    """Number of learned -> not-learned transitions between consecutive logs (Toneva et al.), int [N]."""
    c = _as_correct(correct)
    return (c[:-1] & ~c[1:]).sum(0).astype(np.int64)


def _check_k(k: int, e: int) -> int:
    if int(k) != k or k < 1:
        raise ValueError(f"logs_per_epoch must be a positive integer, got {k}.")
    return int(k)
