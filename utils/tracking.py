"""Per-sample tracking during training, keyed by stable sample ids.

A :class:`SampleTracker` preallocates one ``[epochs, N]`` float32 array per scalar (loss, entropy,
SSIM, ...) and an ``[S, N, D]`` array of code snapshots taken every ``snapshot_every`` epochs. Every
write names the sample ids it concerns, so batches may arrive in any order (shuffled loaders,
splits, resumed runs) and each number still lands in its sample's column. Unwritten cells stay NaN.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def _numpy(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


class SampleTracker:
    """Preallocated per-epoch, per-sample arrays; columns follow ``sample_ids`` order."""

    def __init__(self, sample_ids, epochs: int, scalars=("loss",), snapshot_every: int | None = None,
                 snapshot_dim: int | None = None):
        ids = _numpy(sample_ids).astype(np.int64)
        if ids.ndim != 1 or len(np.unique(ids)) != len(ids):
            raise ValueError("sample_ids must be a 1-D array of unique integers; deduplicate the dataset ids.")
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}.")
        self.sample_ids = ids
        self.epochs = int(epochs)
        self._order = np.argsort(ids, kind="stable")
        self._sorted = ids[self._order]
        self.series = {name: np.full((epochs, len(ids)), np.nan, dtype=np.float32) for name in scalars}
        self.snapshot_every = snapshot_every
        self.snapshot_epochs = (np.arange(snapshot_every - 1, epochs, snapshot_every)
                                if snapshot_every else np.zeros(0, dtype=np.int64))
        self.snapshots = (np.full((len(self.snapshot_epochs), len(ids), snapshot_dim), np.nan, dtype=np.float32)
                          if snapshot_every else None)

    def positions(self, ids) -> np.ndarray:
        """Column of each sample id; raises if an id is not tracked."""
        ids = _numpy(ids).astype(np.int64)
        pos = np.searchsorted(self._sorted, ids)
        pos = np.clip(pos, 0, len(self._sorted) - 1)
        if not np.array_equal(self._sorted[pos], ids):
            missing = ids[self._sorted[pos] != ids][:5]
            raise KeyError(f"Sample ids {missing.tolist()} are not tracked; build the tracker from the same dataset.")
        return self._order[pos]

    def record(self, name: str, epoch: int, ids, values) -> None:
        """Store ``values[i]`` as scalar ``name`` of sample ``ids[i]`` at 0-based ``epoch``."""
        if name not in self.series:
            raise KeyError(f"Scalar {name!r} is not tracked; add it to `scalars` ({sorted(self.series)}).")
        values = _numpy(values).reshape(-1)
        if len(values) != len(_numpy(ids).reshape(-1)):
            raise ValueError(f"record({name!r}) got {len(values)} values for {len(_numpy(ids))} ids.")
        self.series[name][epoch, self.positions(ids)] = values

    def wants_snapshot(self, epoch: int) -> bool:
        return self.snapshots is not None and (epoch + 1) % self.snapshot_every == 0

    def record_snapshot(self, epoch: int, ids, codes) -> None:
        """Store codes ``[B, D]`` of ``ids`` for a snapshot epoch."""
        slot = int(np.flatnonzero(self.snapshot_epochs == epoch)[0])
        self.snapshots[slot, self.positions(ids)] = _numpy(codes)

    def frame(self, name: str) -> pd.DataFrame:
        """Scalar ``name`` as a DataFrame: one row per sample id, one column per epoch index."""
        return pd.DataFrame(self.series[name].T, index=pd.Index(self.sample_ids, name="sample_id"),
                            columns=pd.RangeIndex(self.epochs, name="epoch"))

    def save(self, folder) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "sample_ids.npy", self.sample_ids)
        for name, arr in self.series.items():
            np.save(folder / f"series_{name}.npy", arr)
        if self.snapshots is not None:
            np.save(folder / "snapshots.npy", self.snapshots)
        meta = {"epochs": self.epochs, "scalars": list(self.series), "snapshot_every": self.snapshot_every,
                "snapshot_dim": None if self.snapshots is None else int(self.snapshots.shape[2])}
        (folder / "tracker.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, folder) -> "SampleTracker":
        folder = Path(folder)
        if not (folder / "tracker.json").is_file():
            raise FileNotFoundError(f"No tracker in {folder}: run the training notebook (or `make run`) first.")
        meta = json.loads((folder / "tracker.json").read_text())
        tracker = cls(np.load(folder / "sample_ids.npy"), meta["epochs"], meta["scalars"],
                      meta["snapshot_every"], meta["snapshot_dim"])
        for name in meta["scalars"]:
            tracker.series[name] = np.load(folder / f"series_{name}.npy")
        if meta["snapshot_every"]:
            tracker.snapshots = np.load(folder / "snapshots.npy")
        return tracker
