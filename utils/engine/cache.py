"""The one cache: what every study, score and training run stores on disk, and the rules it follows.

A *results folder* holds one computation made with one set of settings:

* **Settings.** ``settings.json`` is written once, under the lock; afterwards a call with other settings is
  refused with one sentence naming the keys that differ (:func:`check_settings`). Settings hold everything the
  result depends on: the data's full-content fingerprint (:meth:`utils.data.samples.Samples.fingerprint`:
  every pixel, label and id, in order) and every parameter.
* **One writer.** A process that is about to write takes an exclusive lock on the folder (``filelock``,
  non-blocking, re-entrant within the process); a second process that wants to write the same folder is refused
  with one sentence (:func:`writing`). Reading a finished result takes no lock: results are written to a
  temporary name and renamed into place, so a reader sees the whole file or none.
* **Lossless tables.** Per-sample tables are Parquet files (pyarrow): dtypes (float32 stays float32), the
  ``sample_id`` index and ``DataFrame.attrs`` come back bit-identical (:func:`save_table`, :func:`load_table`).
* **Steps.** :func:`step` caches one named table of a folder (``<name>.parquet`` with its settings, compute time
  and code version in ``<name>.json``): loaded when its settings and version match, refused when they differ,
  else computed under the lock. A table saved by another version of its code is refused, or with ``force``
  recomputed and overwritten.

Only rank 0 of a ``torchrun`` group writes (the loop's rule); the other ranks read.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

SETTINGS = "settings.json"
LOCK = ".lock"
WRITER = ".writer"   # the pid and host of the process holding the lock, for the refusal message


class FolderBusyError(RuntimeError):
    """Another process is writing the results folder."""


def _rank() -> int:
    import sys
    engine = sys.modules.get("utils.engine.distributed")   # knows when a rank acts alone (its local())
    if engine is not None:
        return engine.rank_and_world()[0]
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


def canonical(settings: dict) -> dict:
    """``settings`` as they come back from JSON (tuples become lists, keys strings), so comparisons are exact."""
    return json.loads(json.dumps(settings))


@contextmanager
def writing(folder):
    """Hold the folder's write lock for the block; refuse with one sentence when another process holds it.

    Re-entrant within a process (nested blocks on one folder share the lock). On ranks other than 0 it does
    nothing: they never write."""
    if _rank() != 0:
        yield
        return
    from filelock import FileLock, Timeout

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK), timeout=0, is_singleton=True)
    try:
        lock.acquire()
    except Timeout:
        holder = (folder / WRITER).read_text().strip() if (folder / WRITER).is_file() else "another process"
        raise FolderBusyError(f"{folder} is being written by {holder}; wait for it to finish, or write to another "
                              "folder.") from None
    try:
        if lock.lock_counter == 1:
            (folder / WRITER).write_text(f"process {os.getpid()} on {os.uname().nodename}\n")
        yield
    finally:
        if lock.lock_counter == 1:
            (folder / WRITER).unlink(missing_ok=True)
        lock.release()


def saved_settings(folder) -> dict | None:
    path = Path(folder) / SETTINGS
    return _read_json(path) if path.is_file() else None


def _damaged(path, err) -> None:
    import warnings
    warnings.warn(f"{path} is empty or cut short ({err}); treating it as absent and recomputing it.", stacklevel=3)


def _read_json(path) -> dict | None:
    """The JSON of ``path``; None, with a warning naming it, when the file is empty or cut short (a killed write
    of an older version): the cache treats it as absent and recomputes."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        _damaged(path, err)
        return None


def _refuse_other(folder, saved: dict, settings: dict) -> None:
    if saved != settings:
        diff = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
        raise ValueError(f"{folder} holds a run with other settings ({', '.join(diff)}); pick a new results "
                         "folder or delete that one to start over.")


def check_settings(folder, settings: dict, write: bool = True) -> None:
    """Refuse a folder that holds other settings; with ``write``, claim an empty one (under the lock).

    ``write=False`` only checks (a reader of a finished result)."""
    folder = Path(folder)
    settings = canonical(settings)
    saved = saved_settings(folder)
    if saved is not None:
        _refuse_other(folder, saved, settings)
        return
    if not write or _rank() != 0:
        return
    with writing(folder):
        saved = saved_settings(folder)     # another process may have claimed it since we looked
        if saved is not None:
            _refuse_other(folder, saved, settings)
            return
        atomic_write_text(folder / SETTINGS, json.dumps(settings, indent=1))


def module_sha256(model) -> str:
    """A SHA-256 of a torch network's weights and buffers (names, shapes, dtypes, values): a cache key for a model
    passed in (e.g. a pretrained encoder)."""
    import hashlib

    import torch
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update((t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ files
def atomic_write_text(path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def save_table(frame: pd.DataFrame, path) -> None:
    """Write a table losslessly (Parquet: dtypes, index and ``attrs`` kept), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp)
    tmp.replace(path)


def load_table(path) -> pd.DataFrame:
    """A table written by :func:`save_table`, bit-identical to the one saved (dtypes, index, ``attrs``)."""
    return pd.read_parquet(path)


# ------------------------------------------------------------------------------------------ steps
class StaleStepError(ValueError):
    """A cached step was computed by another version of its code."""


def step(folder, name: str, settings: dict, compute, save: bool = True, version: int | None = None,
         force: bool = False) -> pd.DataFrame:
    """The table ``name`` of ``folder``: loaded when computed with ``settings`` (and, with a ``version``, by that
    version of its code), refused when computed with other ones, else ``compute()``d under the folder's lock and
    saved.

    ``version`` is the code version of the computation (an integer its author raises whenever the table it gives
    changes); a table saved by another version (or by code that saved none) is refused with
    :class:`StaleStepError`, or, with ``force``, recomputed and overwritten. ``attrs`` of the result carry
    ``seconds`` (the compute time, also when loaded: it is kept beside the table), ``step`` and ``fresh``
    (computed by this call). With ``folder=None`` it just computes; with ``save=False`` it loads or computes
    without the lock and leaves saving to the caller (:func:`save_step`, e.g. after the ranks of a ``torchrun``
    group exchanged their tables)."""
    tic = time.perf_counter()
    frame = None if folder is None else cached_step(folder, name, settings, version, force)
    if frame is not None:
        return frame
    if folder is None or not save:
        frame = compute()
        frame.attrs.update(seconds=time.perf_counter() - tic, step=name, fresh=True)
        return frame
    with writing(folder):
        frame = cached_step(folder, name, settings, version, force)   # written by another process meanwhile
        if frame is not None:
            return frame
        frame = compute()
        frame.attrs.update(seconds=time.perf_counter() - tic, step=name, fresh=True)
        save_step(folder, name, settings, frame, version)
    return frame


def cached_step(folder, name: str, settings: dict, version: int | None = None,
                force: bool = False) -> pd.DataFrame | None:
    """The saved table ``name`` of ``folder`` (attrs ``seconds``, ``step``, ``fresh=False``) when it was computed
    with ``settings`` (by code ``version``, when one is given); None when there is none, or when it is stale and
    ``force`` is set; refused with one sentence when it is stale or was computed with other settings."""
    folder = Path(folder)
    table, spec = folder / f"{name}.parquet", folder / f"{name}.json"
    if not (spec.is_file() and table.is_file()):
        return None
    saved = _read_json(spec)
    if not isinstance(saved, dict) or "settings" not in saved:
        return None
    if version is not None and saved.get("version") != version:
        if force:
            return None
        was = "code that saved no version" if saved.get("version") is None else f"version {saved['version']}"
        raise StaleStepError(f"{table} was computed by {was} of its code, not the current version {version}; pass "
                             "force=True (--force on the command line) to recompute it.")
    settings = canonical(settings)
    if saved["settings"] != settings:
        diff = sorted(k for k in set(saved["settings"]) | set(settings) if saved["settings"].get(k) != settings.get(k))
        raise ValueError(f"{table} was computed with other settings ({', '.join(diff)}); delete it, or write to "
                         "another folder.")
    try:
        frame = load_table(table)
    except (OSError, ValueError) as err:   # a truncated Parquet file (pyarrow's ArrowInvalid is a ValueError)
        _damaged(table, err)
        return None
    frame.attrs.update(seconds=saved["seconds"], step=name, fresh=False)
    return frame


def save_step(folder, name: str, settings: dict, frame: pd.DataFrame, version: int | None = None) -> None:
    """Save a computed table as :func:`step` does (its ``attrs["seconds"]`` and the code ``version`` kept beside
    it); only rank 0 writes (under ``torchrun`` every rank computes). The caller holds the folder's lock
    (:func:`writing`)."""
    if _rank() != 0:
        return
    folder = Path(folder)
    seconds = frame.attrs.get("seconds", float("nan"))
    keep = {k: frame.attrs.pop(k) for k in ("fresh", "step", "seconds") if k in frame.attrs}
    try:
        save_table(frame, folder / f"{name}.parquet")
    finally:
        frame.attrs.update(keep)
    spec = {"settings": canonical(settings), "seconds": seconds, **({} if version is None else {"version": version})}
    atomic_write_text(folder / f"{name}.json", json.dumps(spec, indent=1))
