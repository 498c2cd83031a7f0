"""Tests for utils.engine.cache: settings refused by name, one writer per folder, lossless tables, cached steps."""
import json
import multiprocessing as mp

import numpy as np
import pandas as pd
import pytest
import torch

from utils.engine import cache
from utils.engine.cache import FolderBusyError


def _hold(folder, ready, release):
    with cache.writing(folder):
        ready.set()
        release.wait(60)


@pytest.fixture
def held(tmp_path):
    """A folder whose write lock another process holds until the test ends."""
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold, args=(str(tmp_path / "busy"), ready, release))
    p.start()
    assert ready.wait(60)
    yield tmp_path / "busy"
    release.set()
    p.join(60)


def test_settings_are_written_once_and_other_settings_are_refused_by_name(tmp_path):
    cache.check_settings(tmp_path, {"a": 1, "b": (1, 2)})
    assert json.loads((tmp_path / cache.SETTINGS).read_text()) == {"a": 1, "b": [1, 2]}
    cache.check_settings(tmp_path, {"a": 1, "b": [1, 2]})          # tuples and lists are the same setting
    with pytest.raises(ValueError) as e:
        cache.check_settings(tmp_path, {"a": 2, "b": [1, 2], "c": 0})
    assert str(e.value) == (f"{tmp_path} holds a run with other settings (a, c); pick a new results folder or "
                            "delete that one to start over.")
    cache.check_settings(tmp_path / "new", {"a": 1}, write=False)   # a reader does not claim a folder
    assert not (tmp_path / "new").exists()


def test_a_second_process_cannot_write_a_busy_folder(held):
    with pytest.raises(FolderBusyError) as e:
        cache.check_settings(held, {"a": 1})
    msg = str(e.value)
    assert msg.startswith(f"{held} is being written by process ") and msg.endswith(
        "; wait for it to finish, or write to another folder.")
    assert not (held / cache.SETTINGS).exists()      # nothing was claimed
    with pytest.raises(FolderBusyError):
        cache.step(held, "t", {}, lambda: pd.DataFrame({"x": [1]}))


def test_training_on_a_busy_folder_is_refused_not_crashed(held):
    """The bug this replaces: two trainings in one folder raced on checkpoint.pt.tmp (FileNotFoundError)."""
    from utils.data.datasets import DatasetInfo
    from utils.data.samples import Samples
    from utils.engine.loop import train
    from utils.engine.recipes import get_recipe
    from utils.engine.tasks import make_task

    x = torch.rand(16, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    data = Samples(x, torch.arange(16) % 2, np.arange(16))
    task = make_task("cnn", DatasetInfo.from_images(x, num_classes=2))
    with pytest.raises(FolderBusyError):
        train(task, get_recipe("paper", max_epochs=1, batch_size=8), data, seed=0, folder=held, progress=False)


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with cache.writing(tmp_path):
        with cache.writing(tmp_path):
            assert (tmp_path / cache.WRITER).is_file()
        assert (tmp_path / cache.WRITER).is_file()    # still held by the outer block
    assert not (tmp_path / cache.WRITER).exists()


def test_tables_round_trip_bit_identical(tmp_path):
    """The bug this replaces: float32 columns came back from CSV as float64, off by up to 7.5e-6."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"f32": rng.random(1000).astype(np.float32) * 1e3, "f64": rng.normal(size=1000),
                          "flag": rng.random(1000) < 0.5, "n": rng.integers(0, 9, 1000), "name": ["a"] * 1000},
                         index=pd.Index(rng.permutation(1000) * 3, name="sample_id"))
    frame.attrs["direction"] = {"f32": "higher"}
    cache.save_table(frame, tmp_path / "t.parquet")
    back = cache.load_table(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    assert back["f32"].dtype == np.float32 and back.attrs == frame.attrs
    np.testing.assert_array_equal(back["f32"].to_numpy().view(np.uint32), frame["f32"].to_numpy().view(np.uint32))


def test_a_step_is_computed_once_loaded_after_and_refused_with_other_settings(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame({"x": np.float32([1.5, 2.5])}, index=pd.Index([7, 9], name="sample_id"))

    first = cache.step(tmp_path, "s", {"k": 1}, compute)
    again = cache.step(tmp_path, "s", {"k": 1}, compute)
    assert len(calls) == 1 and first.attrs["fresh"] and not again.attrs["fresh"]
    assert again.attrs["seconds"] == pytest.approx(first.attrs["seconds"])
    pd.testing.assert_frame_equal(again, first, check_exact=True)
    with pytest.raises(ValueError, match=r"s.parquet was computed with other settings \(k\); delete it"):
        cache.step(tmp_path, "s", {"k": 2}, compute)
    assert len(calls) == 1


def test_module_fingerprint_sees_every_weight():
    a = torch.nn.Linear(3, 2)
    b = torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    assert cache.module_sha256(a) == cache.module_sha256(b)
    with torch.no_grad():
        b.bias[1] += 1e-6
    assert cache.module_sha256(a) != cache.module_sha256(b)


def test_a_step_saved_by_other_code_is_refused_or_with_force_recomputed(tmp_path):
    """The key of a versioned step holds its code version: a table written by an older version (or by code that
    wrote none) is never loaded; ``force`` recomputes and overwrites it, and the new version loads after."""
    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame({"x": np.float32([len(calls)])}, index=pd.Index([7], name="sample_id"))

    cache.step(tmp_path, "s", {"k": 1}, compute)                       # written by code that saved no version
    with pytest.raises(cache.StaleStepError, match=r"s.parquet was computed by code that saved no version of its "
                                                   r"code, not the current version 2; pass force=True"):
        cache.step(tmp_path, "s", {"k": 1}, compute, version=2)
    cache.step(tmp_path, "s", {"k": 1}, compute, version=1, force=True)
    with pytest.raises(cache.StaleStepError, match=r"computed by version 1 of its code, not the current version 2"):
        cache.step(tmp_path, "s", {"k": 1}, compute, version=2)
    fresh = cache.step(tmp_path, "s", {"k": 1}, compute, version=2, force=True)
    again = cache.step(tmp_path, "s", {"k": 1}, compute, version=2)
    assert len(calls) == 3 and fresh.attrs["fresh"] and not again.attrs["fresh"] and again["x"].tolist() == [3.0]
    with pytest.raises(ValueError, match=r"other settings \(k\)"):       # force never answers other settings
        cache.step(tmp_path, "s", {"k": 2}, compute, version=2, force=True)
