"""Confident learning (Northcutt et al. 2021) on out-of-sample probabilities, through the ``cleanlab`` library.

:func:`label_quality` scores every sample from the softmax probabilities of a model that did *not* train
on it (:func:`utils.engine.protocols.kfold_probs`) and its given label; nothing of confident learning is
reimplemented here, the library is called on the aligned arrays:

* ``cl_label_quality`` — ``cleanlab.rank.get_label_quality_scores`` with its default method
  ``"self_confidence"``: the out-of-sample probability of the given label. Lower = more suspicious.
* ``cl_normalized_margin`` — ``cleanlab.rank.get_normalized_margin_for_each_label``: that probability
  minus the largest probability of another class, mapped to [0, 1]. Lower = more suspicious.
* ``cl_predicted_label`` — the class the held-out model predicts (argmax, :func:`predicted_labels`: the one place it
  is computed), the suggestion for a relabel.
* ``flag_label_issue`` — ``cleanlab.filter.find_label_issues``, by default with its default ``filter_by =
  "prune_by_noise_rate"`` (the confident joint estimates how many labels of each class are wrong; that many
  samples with the lowest normalized margin are flagged). True = flagged. ``filter_by="both"`` flags only what
  ``"prune_by_class"`` flags too: fewer false alarms on small folders at a small cost in recall (measured in the
  top README); ``ScoringConfig.label_filter`` chooses.

In-sample (training) predictions defeat the method: a network that memorised a wrong label predicts it
with confidence (H-CAT's pitfall). Which way each score points is declared in :mod:`utils.scores.registry`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

PROB_TOLERANCE = 1e-4  # how far a row of probabilities may sum from 1
# cleanlab.filter.find_label_issues' filter_by settings (its documented list)
LABEL_FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given",
                 "low_normalized_margin", "low_self_confidence")


def _check(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    """(pred_probs [N, C] float64, labels [N] int64) in ``probs``' row order, or one sentence saying why not."""
    if not isinstance(probs, pd.DataFrame):
        raise TypeError(f"probs must be a DataFrame indexed by sample id with columns p0..p{{C-1}} "
                        f"(utils.engine.protocols.kfold_probs returns one), got {type(probs).__name__}.")
    if not isinstance(labels, pd.Series):
        raise TypeError(f"labels must be a Series indexed by sample id, got {type(labels).__name__}.")
    c = probs.shape[1]
    expected = [f"p{k}" for k in range(c)]
    if c < 2 or list(probs.columns) != expected:
        raise ValueError(f"probs must have one column per class named p0..p{{C-1}} (at least 2), got "
                         f"{list(probs.columns)[:6]}{' ...' if c > 6 else ''}.")
    if len(probs) == 0:
        raise ValueError("probs has no rows; give the probabilities of at least one sample.")
    for what, index in (("probs", probs.index), ("labels", labels.index)):
        if not index.is_unique:
            dup = index[index.duplicated()].unique()[:3].tolist()
            raise ValueError(f"{what} has duplicate sample ids (e.g. {dup}); give every sample one row.")
    missing, extra = probs.index.difference(labels.index), labels.index.difference(probs.index)
    if len(missing) or len(extra):
        raise ValueError(f"probs and labels cover other sample ids ({len(missing)} of probs' ids have no label, e.g. "
                         f"{missing[:3].tolist()}; {len(extra)} labels have no probabilities, e.g. "
                         f"{extra[:3].tolist()}); score the same samples.")
    p = probs.to_numpy(dtype=np.float64)
    if not np.isfinite(p).all() or (p < -PROB_TOLERANCE).any() or (p > 1 + PROB_TOLERANCE).any():
        raise ValueError("probs must be finite probabilities in [0, 1]; pass softmax outputs, not logits.")
    sums = p.sum(1)
    bad = np.flatnonzero(np.abs(sums - 1) > PROB_TOLERANCE)
    if len(bad):
        raise ValueError(f"{len(bad)} rows of probs do not sum to 1 (e.g. sample {probs.index[bad[0]]!r} sums to "
                         f"{sums[bad[0]]:.6g}); pass softmax probabilities over all {c} classes.")
    y = labels.reindex(probs.index)
    values = y.to_numpy()
    whole = pd.api.types.is_float_dtype(y.dtype) and np.isfinite(values).all() and (values == np.round(values)).all()
    if not (pd.api.types.is_integer_dtype(y.dtype) or whole):
        raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}.")
    values = values.astype(np.int64)
    if values.min() < 0 or values.max() >= c:
        raise ValueError(f"labels must lie in 0..{c - 1} (probs has {c} classes), got {values.min()}..{values.max()}.")
    return np.clip(p, 0.0, 1.0), values


def predicted_labels(probs: pd.DataFrame) -> pd.DataFrame:
    """The class the out-of-sample probabilities predict, computed in this one place: ``cl_predicted_label`` (the
    argmax of each row of ``probs``, a tie going to the smaller class index, as numpy's argmax) and
    ``cl_predicted_prob`` (its probability), indexed as ``probs`` (columns ``p0..p{C-1}``): the class a
    relabeller is offered (``relabel.csv``'s suggested class)."""
    p = probs.to_numpy(dtype=np.float64)
    return pd.DataFrame({"cl_predicted_label": p.argmax(1).astype(np.int64), "cl_predicted_prob": p.max(1)},
                        index=pd.Index(probs.index, name="sample_id"))


def label_quality(probs: pd.DataFrame, labels: pd.Series, filter_by: str = "prune_by_noise_rate") -> pd.DataFrame:
    """Confident-learning scores of every sample of ``probs``, aligned by sample id (see the module docstring).

    ``probs``: out-of-sample softmax probabilities, a DataFrame indexed by sample id with columns
    ``p0..p{C-1}``; ``labels``: the given (possibly noisy) labels, a Series indexed by sample id, in any
    order. Returns ``cl_label_quality``, ``cl_normalized_margin``, the boolean ``flag_label_issue`` and
    ``cl_predicted_label`` (:func:`predicted_labels`: the class a relabeller would be offered) in ``probs``' row
    order; ``attrs`` records the method, ``filter_by`` and ``n_issues``. ``filter_by``: one of
    :data:`LABEL_FILTERS`, passed to cleanlab's ``find_label_issues``."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores, get_normalized_margin_for_each_label

    if filter_by not in LABEL_FILTERS:
        raise ValueError(f"filter_by must be one of {', '.join(LABEL_FILTERS)}, got {filter_by!r}.")
    p, y = _check(probs, labels)
    out = pd.DataFrame({
        "cl_label_quality": get_label_quality_scores(y, p, method="self_confidence"),
        "cl_normalized_margin": get_normalized_margin_for_each_label(y, p),
        # n_jobs=1: no worker processes; the result does not depend on it
        "flag_label_issue": find_label_issues(y, p, filter_by=filter_by, n_jobs=1),
        "cl_predicted_label": predicted_labels(probs)["cl_predicted_label"].to_numpy(),
    }, index=pd.Index(probs.index, name="sample_id"))
    out.attrs.update(method="self_confidence", filter_by=filter_by,
                     n_issues=int(out["flag_label_issue"].sum()))
    return out
