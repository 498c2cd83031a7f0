"""Peer per-sample scores from the training dynamics of supervised runs: one tidy DataFrame by sample id.

Input: the records of one or more supervised runs (``Run.records`` of :func:`utils.engine.protocols.supervised_run`,
one per model seed). Every epoch the loop records in-loop, per sample (training forward pass, weights before
the update): ``loss``, ``given_logit``, ``other_logit`` (largest logit of another class), ``prob`` (softmax
probability of the given label) and ``correct`` (0/1); a run may also record the full ``logits`` ``[T, N, C]``
(or ``probs``), at every epoch or only at a few early ones. Row ``t`` of a series is the in-loop pass of epoch
``t`` (0-based, the recorder's step).

Columns (each computed per run, then averaged over runs by sample id; ``n_runs`` says how many):

* ``mean_loss``   — mean over epochs of the recorded loss.
* ``el2n``        — Paul et al. 2021: ``||softmax(logits) - onehot(y)||_2`` at the early epoch ``el2n_epoch``,
  from the full ``logits`` (or ``probs``) series; needs the *given* labels (checked against the recorded
  ``given_logit``). Present only when every run recorded full logits (see ``el2n=`` of
  :func:`dynamics_scores`); never approximated.
* ``el2n_lower``  — ``1 - p_y`` at the same epoch: the given-label coordinate of the EL2N vector, so an exact
  lower bound from what every run records. True EL2N lies in
  ``[sqrt(C / (C - 1)) * el2n_lower, sqrt(2) * el2n_lower]`` (C classes; 1.054x and 1.414x for C = 10), and
  it ranks samples exactly as the early probability of the given label does. Named apart on purpose.
* ``aum``         — Pleiss et al. 2020: mean over epochs of ``given_logit - other_logit`` (margin on logits).
* ``confidence``, ``variability``, ``correctness`` — Swayamdipta et al. 2020 (dataset cartography): mean,
  population std (ddof = 0) of ``prob`` over epochs, and the share of epochs correct.
* ``forgetting_events`` — Toneva et al. 2019: correct -> incorrect transitions between consecutive epochs
  (:func:`utils.metrics.times.forgetting_events`); a sample never correct has 0 here.
* ``forgetting_toneva`` — the same count with never-correct samples set to the run's number of epochs T, more
  than any learned sample can reach (at most T // 2), as Toneva et al.'s ``sort_examples_by_forgetting``
  does; rank on this one to put unlearned samples at the forgettable end.
* ``never_learned`` — share of runs in which the sample was never correct at any epoch (Toneva's "unlearned").
* ``learning_time`` — in epochs, the unit of :mod:`utils.scores.ssft`'s ``learning_time``: the (1-based) epoch
  from whose in-loop pass on the sample stays correct to the end, i.e. (0-based row + 1), the
  :attr:`utils.metrics.times.Times.epochs` of :func:`utils.metrics.times.learning_time`; T + 1 (one epoch past
  the run's T) when it is not correct at the last epoch. Runs that early-stopped at different T are on different
  scales: ``learning_fraction`` (= 0-based row / T, 1 = not learned at the end) is comparable across them.
* ``last_margin`` — ``given_logit - other_logit`` at each run's last recorded epoch.

:mod:`utils.scores.registry` fixes, for every score, whether *higher* or *lower* values mean harder / more
suspicious (decided before any label of an experiment is looked at); its ``oriented`` flips the "lower" ones so
that higher always means harder. ``variability`` is oriented "higher" (cartography's *ambiguous* region);
note that mislabeled samples sit in the *hard-to-learn* region (low confidence, low variability), so
variability alone is no mislabel detector.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from utils.metrics.times import forgetting_events, learning_time
from utils.scores.registry import direction, registered

if TYPE_CHECKING:   # numpy only at run time: a recorder is anything with sample_ids, steps() and [name]
    from utils.engine.recorder import Recorder

SCALARS = ("loss", "given_logit", "other_logit", "prob", "correct")
FULL = ("logits", "probs")  # full-output series [T, N, C], in order of preference


# ---------------------------------------------------------------------------------------------- helpers
def _recorder(run) -> Recorder:
    rec = getattr(run, "records", run)  # a Run is accepted for its in-loop records
    if not _is_recorder(rec):
        raise TypeError(f"Expected a Recorder (or a Run with .records), got {type(run).__name__}.")
    return rec


def _is_recorder(obj) -> bool:
    return all(hasattr(obj, a) for a in ("sample_ids", "steps", "names"))


def _scalars(rec: Recorder, where: str = "this run") -> dict[str, np.ndarray]:
    """The five in-loop series as float64 [T, N], checked complete, finite and on the same epochs."""
    missing = [m for m in SCALARS if m not in rec]
    if missing:
        raise ValueError(f"{where} recorded no {', '.join(missing)} (it has: {', '.join(rec) or 'nothing'}); score "
                         "the in-loop records of a supervised run (utils.engine.protocols.supervised_run(...).records).")
    steps = rec.steps("prob")
    out = {}
    for name in SCALARS:
        values = rec[name]
        if values.ndim != 2:
            raise ValueError(f"Series {name!r} of {where} is not one number per sample (shape {values.shape}).")
        if not np.array_equal(rec.steps(name), steps):
            raise ValueError(f"Series {name!r} of {where} was recorded at other epochs than 'prob'; the five "
                             "in-loop series must be recorded together.")
        bad = int((~np.isfinite(values)).sum())
        if bad:
            raise ValueError(f"Series {name!r} of {where} has {bad} unwritten or non-finite cells; score only "
                             "complete epochs of a run that finished without a NaN stop.")
        out[name] = values.astype(np.float64)
    if len(steps) == 0:
        raise ValueError(f"{where} has no recorded epoch.")
    if not np.isin(out["correct"], (0, 1)).all():
        raise ValueError(f"Series 'correct' of {where} holds values other than 0 and 1.")
    return out


def _row_of(rec: Recorder, name: str, epoch: int, where: str) -> int:
    steps = rec.steps(name)
    rows = np.flatnonzero(steps == epoch)
    if len(rows) == 0:
        raise ValueError(f"{where} recorded {name!r} at epochs {steps.tolist()}, not at epoch {epoch}; choose one "
                         f"of them as el2n_epoch.")
    return int(rows[0])


def _labels_for(rec: Recorder, labels) -> np.ndarray:
    """Labels in ``rec.sample_ids`` order from a Series indexed by sample id (or an array in that order)."""
    if labels is None:
        raise ValueError("EL2N from full logits needs the labels the run trained on (the given, possibly noisy "
                         "ones): pass labels= as a pandas Series indexed by sample id.")
    if isinstance(labels, pd.Series):
        found = labels.reindex(rec.sample_ids)
        if found.isna().any():
            missing = rec.sample_ids[found.isna().to_numpy()][:5]
            raise ValueError(f"labels has no entry for sample ids {missing.tolist()}; index it by sample id.")
        y = found.to_numpy()
    else:
        y = np.asarray(labels).reshape(-1)
        if len(y) != len(rec.sample_ids):
            raise ValueError(f"Got {len(y)} labels for {len(rec.sample_ids)} samples; pass a Series indexed by "
                             "sample id.")
    if not np.all(np.mod(y, 1) == 0):
        raise ValueError("labels must be integers (class indices).")
    return y.astype(np.int64)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis in float64, shifted by the max (no overflow)."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


# ---------------------------------------------------------------------------------------------- EL2N
def full_output(rec: Recorder) -> str | None:
    """Name of the full-output series a run recorded (``logits`` preferred, else ``probs``), or None."""
    return next((name for name in FULL if name in rec), None)


def el2n(rec: Recorder, labels, epoch: int, where: str = "this run") -> np.ndarray:
    """Exact EL2N ``||softmax - onehot(y)||_2`` [N] at recorded ``epoch``, in ``rec.sample_ids`` order.

    Needs a full-output series ``logits`` (or ``probs``) ``[T, N, C]``; raises when the run recorded only
    the probability of the given label (use ``el2n_lower`` then, or record the logits)."""
    rec = _recorder(rec)
    name = full_output(rec)
    if name is None:
        raise ValueError(f"EL2N needs the full softmax, and {where} recorded only the given label's probability "
                         f"({', '.join(rec)}); record the full logits as a series 'logits' [T, N, C] (e.g. add "
                         "'logits' to utils.engine.tasks.supervised_values), or use the el2n_lower bound.")
    values = rec[name]
    if values.ndim != 3:
        raise ValueError(f"Series {name!r} of {where} must be [T, N, C], got shape {values.shape}.")
    row = _row_of(rec, name, epoch, where)
    out = values[row].astype(np.float64)
    if not np.isfinite(out).all():
        raise ValueError(f"Series {name!r} of {where} has unwritten or non-finite cells at epoch {epoch}.")
    n, c = out.shape
    y = _labels_for(rec, labels)
    if y.min() < 0 or y.max() >= c:
        raise ValueError(f"labels must lie in 0..{c - 1} (the {c} outputs recorded), got {y.min()}..{y.max()}.")
    scalar = "given_logit" if name == "logits" else "prob"  # what the loop recorded of the given label
    if scalar in rec and epoch in rec.steps(scalar):
        given = rec[scalar][_row_of(rec, scalar, epoch, where)]
        off = ~np.isclose(np.take_along_axis(out, y[:, None], 1)[:, 0], given, rtol=1e-4, atol=1e-4)
        if off.any():
            raise ValueError(f"For {int(off.sum())} of {n} samples of {where}, {name}[label] differs from the recorded "
                             f"{scalar}: pass the labels the run trained on (the given, possibly flipped ones, not "
                             "the clean ones), indexed by sample id.")
    probs = softmax(out) if name == "logits" else out
    probs[np.arange(n), y] -= 1.0
    return np.linalg.norm(probs, axis=1)


def default_el2n_epoch(horizons) -> int:
    """The early epoch EL2N is read at by default: 10 % of the longest run (Paul et al.: epoch 20 of 200),
    at least epoch 1 (row 0 is the untrained network's first pass), at most the shortest run's last epoch."""
    horizons = [int(h) for h in horizons]
    return int(min(max(1, np.floor(0.1 * max(horizons) + 0.5)), min(horizons) - 1))


# ---------------------------------------------------------------------------------------------- scores
def dynamics_run_scores(rec, labels=None, el2n_epoch: int | None = None, with_el2n: bool = False,
                        where: str = "this run") -> pd.DataFrame:
    """Every score of one run (no averaging), indexed by its sample ids in the recorder's order."""
    rec = _recorder(rec)
    s = _scalars(rec, where)
    t = s["prob"].shape[0]
    epoch = default_el2n_epoch([t]) if el2n_epoch is None else int(el2n_epoch)
    margin = s["given_logit"] - s["other_logit"]
    correct = s["correct"].astype(bool)
    lt = learning_time(correct)
    never = ~correct.any(0)
    events = forgetting_events(correct).astype(np.float64)
    cols = {"mean_loss": s["loss"].mean(0)}
    if with_el2n:
        cols["el2n"] = el2n(rec, labels, epoch, where)
    cols.update({
        "el2n_lower": 1.0 - s["prob"][_row_of(rec, "prob", epoch, where)],
        "aum": margin.mean(0),
        "confidence": s["prob"].mean(0),
        "variability": s["prob"].std(0, ddof=0),
        "correctness": s["correct"].mean(0),
        "forgetting_events": events,
        "forgetting_toneva": np.where(never, float(t), events),
        "never_learned": never.astype(np.float64),
        "learning_time": lt.epochs.astype(np.float64),
        "learning_fraction": lt.fraction,
        "last_margin": margin[-1],
    })
    return pd.DataFrame(cols, index=pd.Index(rec.sample_ids, name="sample_id"))


def dynamics_scores(recorders, labels=None, el2n_epoch: int | None = None, el2n: bool | None = None,
                    same_samples: bool = True) -> pd.DataFrame:
    """The module's scores averaged over runs (seeds) by sample id, one row per sample id (sorted).

    ``recorders``: Recorders (or Runs) of supervised runs of the same samples, in any sample order and of any
    length (early-stopped runs are scored on their own epochs, then averaged). ``labels``: the labels the
    runs trained on, a Series indexed by sample id (an array is read in ``recorders[0].sample_ids`` order);
    needed only for exact EL2N. ``el2n_epoch``: the recorded epoch (0-based step) EL2N and ``el2n_lower`` are
    read at, default :func:`default_el2n_epoch`. ``el2n``: ``None`` adds the exact ``el2n`` column when every run
    recorded full logits, ``True`` requires it (raising otherwise), ``False`` leaves it out.

    ``same_samples=False`` accepts runs of different (overlapping) samples, e.g. the fold runs of
    :func:`utils.engine.protocols.kfold_runs`: each sample is averaged over the runs that trained on it, and the
    ``n_runs`` column says how many did; the result covers the union of the runs' samples.

    ``attrs`` records ``el2n_epoch``, ``horizons`` (epochs per run), ``n_runs`` and each score's direction."""
    recs = _recorders(recorders)
    with_el2n = _with_el2n(recs, el2n)
    if labels is not None and not isinstance(labels, pd.Series):
        labels = pd.Series(np.asarray(labels).reshape(-1), index=_index_of(recs[0], len(np.asarray(labels))))
    horizons = []
    for i, rec in enumerate(recs):
        _scalars(rec, f"run {i}")  # clear errors before any scoring
        horizons.append(len(rec.steps("prob")))
    epoch = default_el2n_epoch(horizons) if el2n_epoch is None else int(el2n_epoch)
    if same_samples:
        _check_same_samples(recs)
    frames = [dynamics_run_scores(rec, labels, epoch, with_el2n, f"run {i}") for i, rec in enumerate(recs)]
    out = _mean_by_id(frames, np.sort(recs[0].sample_ids) if same_samples else None)
    out.attrs.update(el2n_epoch=epoch, horizons=horizons, n_runs=len(recs),
                     direction={c: direction(c) for c in registered(out.columns)})
    return out


def _recorders(recorders) -> list:
    """The recorders of one run (a Recorder or a Run) or of several, at least one, or one sentence."""
    if _is_recorder(recorders) or hasattr(recorders, "records"):
        recorders = [recorders]
    recs = [_recorder(r) for r in recorders]
    if not recs:
        raise ValueError("No runs given; pass the records of at least one supervised run (3 or more seeds are "
                         "recommended for EL2N and forgetting).")
    return recs


def _with_el2n(recs: list, el2n: bool | None) -> bool:
    """Whether the exact ``el2n`` column is computed (``el2n`` of :func:`dynamics_scores`), or one sentence when
    it is asked for and not every run recorded full logits, or when only some runs did."""
    if el2n not in (None, True, False):
        raise ValueError(f"el2n must be None (when recorded), True or False, got {el2n!r}.")
    has_full = [full_output(r) is not None for r in recs]
    if el2n is True and not all(has_full):
        i = has_full.index(False)
        raise ValueError(f"EL2N needs the full softmax, and run {i} recorded only the given label's probability; "
                         "record the full logits as a series 'logits' [T, N, C] (e.g. add 'logits' to "
                         "utils.engine.tasks.supervised_values), or use the el2n_lower bound.")
    if el2n is None and any(has_full) and not all(has_full):
        raise ValueError(f"Runs {[i for i, h in enumerate(has_full) if h]} recorded full logits and runs "
                         f"{[i for i, h in enumerate(has_full) if not h]} did not; EL2N averaged over a subset of runs "
                         "would be misleading: pass el2n=False, or score only the runs with logits.")
    return all(has_full) if el2n is None else el2n


def _check_same_samples(recs: list) -> None:
    """Every run covers run 0's sample ids, or one sentence."""
    ids = np.sort(recs[0].sample_ids)
    for i, rec in enumerate(recs[1:], 1):
        other = np.sort(rec.sample_ids)
        if not np.array_equal(other, ids):
            lost, extra = np.setdiff1d(ids, other), np.setdiff1d(other, ids)
            raise ValueError(f"Run {i} covers other samples than run 0 ({len(lost)} of run 0's ids missing, e.g. "
                             f"{lost[:3].tolist()}; {len(extra)} extra, e.g. {extra[:3].tolist()}); average only runs "
                             "of the same training samples.")


def _mean_by_id(frames: list, ids: np.ndarray | None) -> pd.DataFrame:
    """The runs' scores averaged by sample id with an ``n_runs`` column: over every run on the sorted ``ids`` all
    runs share, or (``ids`` None) over the runs that trained on each sample, on the union of their ids."""
    stacked = pd.concat(frames)
    out = stacked.groupby(level=0).mean()
    if ids is not None:
        out = out.reindex(ids)
    out.index.name = "sample_id"
    out["n_runs"] = len(frames) if ids is not None else stacked.groupby(level=0).size().reindex(out.index)
    return out


def _index_of(rec: Recorder, n: int) -> pd.Index:
    if n != len(rec.sample_ids):
        raise ValueError(f"Got {n} labels for {len(rec.sample_ids)} samples; pass a Series indexed by sample id.")
    return pd.Index(rec.sample_ids, name="sample_id")
