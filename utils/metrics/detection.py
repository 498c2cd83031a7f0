"""How well a boolean flag finds a known set of samples: its precision and recall, computed in this one place
(scikit-learn's ``precision_score`` / ``recall_score``) for the scoreboard's flag quality, the held-out threshold
of :func:`utils.scores.evaluate.holdout_threshold`, the SSFT quadrants and the benchmarks. Numpy and
scikit-learn only."""
from __future__ import annotations

import numpy as np


def precision_recall(flag, truth, zero_division: float = np.nan) -> tuple[float, float]:
    """(precision, recall) of the boolean ``flag`` against the boolean ``truth`` (aligned 1-d arrays): the share
    of flagged samples that are true, and the share of true samples flagged. ``zero_division`` is the value of a
    ratio with nothing to divide by (no sample flagged: precision; no true sample: recall): NaN by default, 0
    where a caller's table has always said 0.

    >>> precision_recall([True, True, False, False], [True, False, True, False])
    (0.5, 0.5)
    """
    from sklearn.metrics import precision_score, recall_score

    f, t = np.asarray(flag).ravel(), np.asarray(truth).ravel()
    for name, a in (("flag", f), ("truth", t)):
        if a.dtype != bool and not np.isin(a, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (or 0/1), got values other than 0 and 1.")
    if f.shape != t.shape:
        raise ValueError(f"flag has {f.size} values but truth has {t.size}; pass aligned arrays of equal length.")
    f, t = f.astype(bool), t.astype(bool)
    if f.size == 0:
        return float(zero_division), float(zero_division)
    kw = dict(labels=[True], pos_label=True, average="binary", zero_division=zero_division)
    return float(precision_score(t, f, **kw)), float(recall_score(t, f, **kw))
