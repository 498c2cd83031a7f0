"""The one per-sample recorder: values keyed by sample id, one row per log step, any trailing shape.

A :class:`Recorder` holds named *series*. Each series is an array ``[T, N, *trail]`` (T rows, one per
log step; N samples in ``sample_ids`` order; any trailing shape: scalars, logit vectors, codes) plus
the step number of each row. Rows are appended as steps arrive, so the length is open-ended (a run
that stops early simply has fewer rows). Every write names the samples it concerns, by sample id
(:meth:`Recorder.record`) or by column (:meth:`Recorder.record_rows`, what the training loop uses), so
batches may arrive in any order and each number still lands in its sample's column; cells never
written stay NaN and are counted as unwritten.

Under ``torch.distributed`` every rank records its own shard; :meth:`Recorder.gather` sums the rows
written since the last gather across ranks, so afterwards every rank holds every value once, and
:meth:`Recorder.counts` proves it (a sample recorded twice in one step would show a count of 2).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch


def _numpy(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


class _Series:
    __slots__ = ("values", "written", "steps", "length", "synced")

    def __init__(self, n: int, trail: tuple, capacity: int = 8):
        self.values = np.full((capacity, n, *trail), np.nan, dtype=np.float32)
        self.written = np.zeros((capacity, n), dtype=np.uint8)
        self.steps: list[int] = []
        self.length = 0
        self.synced = 0  # rows already gathered across ranks

    def row(self, step: int) -> int:
        """Row of ``step``, appending a new (NaN) row when the step is newer than the last one."""
        if self.length and self.steps[-1] == step:
            return self.length - 1
        if self.length and step < self.steps[-1]:
            if step in self.steps:
                return self.steps.index(step)
            raise ValueError(f"step {step} arrives after step {self.steps[-1]}; record steps in increasing order.")
        if self.length == len(self.values):
            grow = len(self.values)
            self.values = np.concatenate([self.values, np.full_like(self.values[:grow], np.nan)])
            self.written = np.concatenate([self.written, np.zeros_like(self.written[:grow])])
        self.steps.append(int(step))
        self.length += 1
        return self.length - 1


class Recorder:
    """Per-sample series keyed by the unique integer ``sample_ids`` (columns follow their order)."""

    def __init__(self, sample_ids):
        ids = _numpy(sample_ids)
        if ids.ndim != 1 or len(np.unique(ids)) != len(ids):
            raise ValueError("sample_ids must be a 1-D array of unique integers; give every sample its own id.")
        self.sample_ids = ids = ids.astype(np.int64)
        self._order = np.argsort(ids, kind="stable")
        self._sorted = ids[self._order]
        self._series: dict[str, _Series] = {}

    # ------------------------------------------------------------------ writing
    def positions(self, ids) -> np.ndarray:
        """Column of each sample id; raises if an id is not recorded here."""
        ids = _numpy(ids).astype(np.int64).reshape(-1)
        pos = np.clip(np.searchsorted(self._sorted, ids), 0, len(self._sorted) - 1)
        if not np.array_equal(self._sorted[pos], ids):
            missing = ids[self._sorted[pos] != ids][:5]
            raise KeyError(f"Sample ids {missing.tolist()} are not in this recorder; build it from the same dataset.")
        return self._order[pos]

    def record(self, name: str, step: int, ids, values) -> None:
        """Store ``values[i]`` (a scalar or an array) as series ``name`` of sample ``ids[i]`` at ``step``."""
        self.record_rows(name, step, self.positions(ids), values)

    def record_rows(self, name: str, step: int, rows, values) -> None:
        """Like :meth:`record`, with columns (positions in ``sample_ids``) instead of ids."""
        values = _numpy(values)
        rows = _numpy(rows).reshape(-1)
        if len(values) != len(rows):
            raise ValueError(f"record({name!r}) got {len(values)} values for {len(rows)} samples.")
        series = self._series.get(name)
        if series is None:
            series = self._series[name] = _Series(len(self.sample_ids), tuple(values.shape[1:]))
        elif series.values.shape[2:] != values.shape[1:]:
            raise ValueError(f"Series {name!r} holds values of shape {series.values.shape[2:]}, got {values.shape[1:]}.")
        r = series.row(step)
        series.values[r, rows] = values
        np.add.at(series.written[r], rows, 1)  # a sample twice in one write counts twice

    # ------------------------------------------------------------------ reading
    @property
    def names(self) -> list[str]:
        return list(self._series)

    def __contains__(self, name) -> bool:
        return name in self._series

    def __iter__(self):
        return iter(self._series)

    def __getitem__(self, name: str) -> np.ndarray:
        """Series ``name`` as ``[T, N, *trail]`` float32 (a view: copy before changing it)."""
        if name not in self._series:
            raise KeyError(f"Nothing recorded as {name!r}; recorded: {', '.join(self._series) or 'nothing'}.")
        s = self._series[name]
        return s.values[:s.length]

    def steps(self, name: str) -> np.ndarray:
        self[name]
        return np.asarray(self._series[name].steps, dtype=np.int64)

    def counts(self, name: str) -> np.ndarray:
        """How often each cell ``[T, N]`` was written (1 everywhere for a complete, duplicate-free series)."""
        self[name]
        s = self._series[name]
        return s.written[:s.length]

    def frame(self, name: str) -> pd.DataFrame:
        """A scalar series as a DataFrame: one row per sample id, one column per step."""
        values = self[name]
        if values.ndim != 2:
            raise ValueError(f"Series {name!r} is not scalar (shape {values.shape[2:]} per sample); index it instead.")
        return pd.DataFrame(values.T, index=pd.Index(self.sample_ids, name="sample_id"),
                            columns=pd.Index(self.steps(name), name="step"))

    # ------------------------------------------------------------------ ranks
    def gather(self) -> None:
        """Merge what each rank recorded since the last gather (no-op without ``torch.distributed``).

        Every rank must have recorded the same series at the same steps; each cell is then the value of
        the one rank that wrote it, and :meth:`counts` sums the writes of all ranks."""
        import torch.distributed as dist

        from utils.engine.distributed import rank_and_world

        if rank_and_world()[1] == 1:
            for s in self._series.values():
                s.synced = s.length
            return
        layout = [(name, s.length) for name, s in self._series.items()]
        everyone = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, layout)
        if any(other != layout for other in everyone):
            raise RuntimeError(f"Ranks recorded different series or steps ({everyone}); every rank must log at the "
                               "same steps.")
        for s in self._series.values():
            new = slice(s.synced, s.length)
            written = torch.from_numpy(s.written[new].astype(np.int32))
            mask = s.written[new].reshape(*s.written[new].shape, *([1] * (s.values.ndim - 2))) > 0
            values = torch.from_numpy(np.where(mask, s.values[new], 0).astype(np.float64))
            dist.all_reduce(written)
            dist.all_reduce(values)
            count = written.numpy()
            full = count.reshape(*count.shape, *([1] * (s.values.ndim - 2)))
            s.values[new] = np.where(full > 0, values.numpy(), np.nan).astype(np.float32)
            s.written[new] = np.minimum(count, 255).astype(np.uint8)
            s.synced = s.length

    # ------------------------------------------------------------------ saving
    def state_dict(self) -> dict:
        state = {"sample_ids": self.sample_ids}
        for name, s in self._series.items():
            state[f"values/{name}"] = s.values[:s.length]
            state[f"written/{name}"] = s.written[:s.length]
            state[f"steps/{name}"] = np.asarray(s.steps, dtype=np.int64)
        return state

    @classmethod
    def from_state_dict(cls, state) -> "Recorder":
        rec = cls(state["sample_ids"])
        for key in state:
            if key.startswith("values/"):
                name = key.split("/", 1)[1]
                values = np.asarray(state[key])
                s = rec._series[name] = _Series(len(rec.sample_ids), values.shape[2:], capacity=max(len(values), 1))
                s.values[:len(values)] = values
                s.written[:len(values)] = state[f"written/{name}"]
                s.steps = [int(x) for x in state[f"steps/{name}"]]
                s.length = s.synced = len(values)
        return rec

    def save(self, path) -> None:
        """One ``.npz`` file, written to a temporary name and renamed (a kill never leaves half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **self.state_dict())
        tmp.replace(path)

    @classmethod
    def load(cls, path) -> "Recorder":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No recorder at {path}: run the training step (or `make run`) first.")
        with np.load(path) as f:
            return cls.from_state_dict({k: f[k] for k in f.files})
