"""The one sample container: images, labels, stable sample ids and per-sample metadata, with a content fingerprint.

Every layer passes samples as a :class:`Samples`: the loop trains on one, the protocols split one by id, the
known-answer hardness of :mod:`utils.data.inject` and :mod:`utils.data.mixing` returns one whose ``meta`` says
what was done to each sample, and :func:`utils.scores.dataset.score_dataset` keys every score by its ids.

* ``images`` ``[N, C, H, W]`` float32 pixels in [0, 1]; ``labels`` int64 ``[N]`` or ``None`` (unlabeled);
* ``ids`` int64 ``[N]``, unique: the sample's identity from the dataset to every result table (default 0..N-1);
* ``meta``: a DataFrame indexed by ``ids`` in the same order: per-sample flags (one bool column per hardness
  type applied, e.g. ``mixed``, ``uniform_noise``), provenance (``partner_id``, ``source_id``, ...) and the true
  class ``clean_label`` when a label was changed; empty by default;
* ``name`` (selects published constants, e.g. class-pair tables), ``num_classes`` and ``history`` (one dict per
  transformation applied, enough to redo it from the clean data).

:meth:`Samples.fingerprint` hashes the full content (every pixel, the labels, the ids and their order) with
SHA-256: the key every cache of the project checks before it returns a stored result.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from utils.data.datasets import DATASET_INFO, check_images
from utils.metrics.checks import check_positive_int


def check_ids(ids, n: int) -> np.ndarray:
    """``ids`` as N unique int64 sample ids (default 0..N-1), or one sentence saying why not."""
    if ids is None:
        return np.arange(n, dtype=np.int64)
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    values = np.asarray(ids).reshape(-1)
    if len(values) != n:
        raise ValueError(f"Got {len(values)} sample ids for {n} images; pass one id per image.")
    if values.dtype.kind == "b" or values.dtype.kind not in "iuf" or (
            values.dtype.kind == "f" and not (np.isfinite(values).all() and (values == np.round(values)).all())):
        raise ValueError(f"sample ids must be integers, got {values.dtype} values (e.g. {values[:2].tolist()}); "
                         "number your samples, e.g. ids=range(N), and keep names (file paths) in meta.")
    if n and (values.max() >= 2 ** 63 or values.min() < -2 ** 63):   # int64 would wrap them (or round floats)
        big = values[(values >= 2 ** 63) | (values < -2 ** 63)][0]
        raise ValueError(f"sample id {big} does not fit a 64-bit signed integer (ids are stored as int64); renumber "
                         "your samples, e.g. ids=range(N), and keep the original ids in meta.")
    values = values.astype(np.int64)
    if len(np.unique(values)) != n:
        raise ValueError("sample ids are not unique; give every sample its own id.")
    return values


def check_labels(labels, n: int) -> torch.Tensor | None:
    """``labels`` as N int64 class indices >= 0, ``None`` for unlabeled data, or one sentence saying why not."""
    if labels is None:
        return None
    t = labels if isinstance(labels, torch.Tensor) else torch.as_tensor(np.asarray(labels))
    if t.ndim != 1 or len(t) != n or t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"labels must be {n} integers (one per image), got {t.dtype} {list(t.shape)}; map class "
                         "names to integers first, e.g. with pandas.factorize.")
    t = t.long()
    if n and int(t.min()) < 0:
        raise ValueError("labels must be class indices 0..C-1; map your class names to integers first.")
    return t


@dataclass(frozen=True)
class Samples:
    """Images, optional labels, unique sample ids and per-sample metadata; row i of each is sample i."""

    images: torch.Tensor
    labels: torch.Tensor | None = None
    ids: np.ndarray | None = None
    meta: pd.DataFrame | None = None
    name: str | None = None
    num_classes: int | None = None
    history: tuple = field(default=())

    def __post_init__(self):
        x = check_images(self.images)
        x = x if x.dtype == torch.float32 else x.float()
        n = len(x)
        ids = check_ids(self.ids, n)
        labels = check_labels(self.labels, n)
        meta = self.meta
        if meta is None:
            meta = pd.DataFrame(index=pd.Index(ids, name="sample_id"))
        elif not isinstance(meta, pd.DataFrame) or not np.array_equal(meta.index.to_numpy(), ids):
            raise ValueError("meta must be a DataFrame indexed by the sample ids, in the same order.")
        c = self.num_classes
        if c is None:
            c = DATASET_INFO[self.name].num_classes if self.name in DATASET_INFO else (
                int(labels.max()) + 1 if labels is not None and n else None)
        else:
            check_positive_int(c, "num_classes")
        if labels is not None and n and c is not None and int(labels.max()) >= c:
            raise ValueError(f"labels go up to {int(labels.max())} but there are {c} classes; pass the right "
                             "num_classes.")
        for name, value in (("images", x), ("ids", ids), ("labels", labels), ("meta", meta),
                            ("num_classes", None if c is None else int(c)), ("history", tuple(self.history))):
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self.images)

    # ------------------------------------------------------------------------------------------ selection
    def subset(self, rows) -> "Samples":
        """The samples at positions ``rows`` (any order), metadata and description kept."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        t = torch.from_numpy(rows)
        return replace(self, images=self.images[t], labels=None if self.labels is None else self.labels[t],
                       ids=self.ids[rows], meta=self.meta.iloc[rows])

    def by_ids(self, ids) -> "Samples":
        """The samples with sample ids ``ids``, in that order; refuses ids it does not hold."""
        rows = pd.Index(self.ids).get_indexer(np.asarray(ids).reshape(-1))
        if (rows < 0).any():
            raise ValueError(f"{int((rows < 0).sum())} of the ids are not among the samples (e.g. "
                             f"{np.asarray(ids).reshape(-1)[rows < 0][0]}).")
        return self.subset(rows)

    def sorted(self) -> "Samples":
        """The samples in id order (what every computation that must not depend on the input order uses)."""
        return self.subset(np.argsort(self.ids, kind="stable"))

    def unlabeled(self) -> "Samples":
        return replace(self, labels=None)

    # ------------------------------------------------------------------------------------------ metadata
    @property
    def clean_labels(self) -> torch.Tensor | None:
        """The true classes: ``meta["clean_label"]`` where a transformation changed labels (-1 = none), else
        the labels."""
        if "clean_label" in self.meta.columns:
            return torch.from_numpy(self.meta["clean_label"].to_numpy(np.int64).copy())
        return self.labels

    def flag(self, *columns: str) -> torch.Tensor:
        """bool ``[N]``: samples flagged in any of the boolean ``meta`` columns given (default: every one)."""
        missing = [c for c in columns if c not in self.meta.columns]
        if missing:
            raise ValueError(f"meta has no column {missing[0]!r} (it has: {', '.join(self.meta.columns) or 'none'}).")
        cols = list(columns) or [c for c in self.meta.columns if pd.api.types.is_bool_dtype(self.meta[c])]
        if not cols:
            return torch.zeros(len(self), dtype=torch.bool)
        return torch.from_numpy(self.meta[cols].to_numpy(dtype=bool).any(axis=1))

    # ------------------------------------------------------------------------------------------ identity
    def fingerprint(self) -> dict:
        """Size, shape and a SHA-256 of the full content (pixels, labels, ids, their order): what a cache keys on.

        Two containers get the same digest only if every pixel, every label and every id agree at every position,
        so swapping images between ids, transposing them or changing one pixel gives another digest."""
        h = hashlib.sha256()
        h.update(repr((tuple(self.images.shape), str(self.images.dtype))).encode())
        h.update(self.images.detach().cpu().contiguous().numpy().tobytes())
        h.update(b"labels:" + (b"none" if self.labels is None else self.labels.cpu().numpy().astype("<i8").tobytes()))
        h.update(b"ids:" + self.ids.astype("<i8").tobytes())
        return {"n_samples": len(self), "shape": list(self.images.shape[1:]), "content_sha256": h.hexdigest()}
