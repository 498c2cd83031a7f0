"""The per-sample Recorder: values keyed by sample id, open-ended length, any trailing shape, round trips."""
import numpy as np
import pandas as pd
import pytest
import torch

from utils.engine.recorder import Recorder


def test_records_land_in_each_ids_column_whatever_the_batch_order(tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.choice(100_000, size=500, replace=False)
    rec = Recorder(ids)
    for epoch in range(3):
        order = rng.permutation(ids)
        for batch in np.array_split(order, 7):
            rec.record("loss", epoch, torch.as_tensor(batch), batch * 0.5 + epoch)
            if epoch % 2 == 1:  # a snapshot at odd steps only
                rec.record("codes", epoch, batch, np.stack([batch, -batch], 1))
    frame = rec.frame("loss")
    assert list(frame.index) == list(ids) and frame.index.name == "sample_id"
    assert list(frame.columns) == [0, 1, 2]
    for epoch in range(3):
        assert np.allclose(frame[epoch].to_numpy(), ids * 0.5 + epoch)
    assert rec.steps("codes").tolist() == [1] and rec["codes"].shape == (1, 500, 2)
    assert np.array_equal(rec["codes"][0][:, 0], ids.astype(np.float32))
    assert np.array_equal(rec["codes"][0][:, 1], -ids.astype(np.float32))
    assert (rec.counts("loss") == 1).all() and (rec.counts("codes") == 1).all()
    rec.save(tmp_path / "rec.npz")
    loaded = Recorder.load(tmp_path / "rec.npz")
    assert np.array_equal(loaded["loss"], rec["loss"]) and np.array_equal(loaded["codes"], rec["codes"])
    assert np.array_equal(loaded.sample_ids, ids)


def test_length_is_open_ended_and_steps_need_not_be_consecutive():
    rec = Recorder([7, 3])
    steps = [0, 1, 5] + list(range(10, 40, 3))  # more rows than the initial capacity
    for s in steps:
        rec.record("loss", s, [3, 7], [s, -s])
    assert rec["loss"].shape == (len(steps), 2) and rec.steps("loss").tolist() == steps
    assert rec["loss"][:, 0].tolist() == [-s for s in steps] and rec["loss"][:, 1].tolist() == steps
    assert len(Recorder([1])._series) == 0 and Recorder([1]).names == []
    other = Recorder([7, 3])
    other.record("loss", 0, [7], [1.0])
    assert len(other["loss"]) == 1  # an early-stopped run simply has fewer rows


def test_trailing_shapes_logits_and_codes():
    ids = np.array([10, 20, 30])
    rec = Recorder(ids)
    logits = np.arange(30, dtype=np.float32).reshape(3, 10)
    rec.record("logits", 0, [30, 10, 20], logits)
    assert rec["logits"].shape == (1, 3, 10)
    assert np.array_equal(rec["logits"][0], logits[[1, 2, 0]])  # row i of the values went to id ids[i]
    rec.record("codes", 4, ids, torch.ones(3, 2, 5))
    assert rec["codes"].shape == (1, 3, 2, 5) and rec.counts("codes").shape == (1, 3)
    with pytest.raises(ValueError, match=r"holds values of shape \(10,\), got \(9,\)"):
        rec.record("logits", 1, ids, np.zeros((3, 9)))
    with pytest.raises(ValueError, match="not scalar"):
        rec.frame("logits")
    with pytest.raises(ValueError, match="got 2 values for 3 samples"):
        rec.record("logits", 1, ids, np.zeros((2, 10)))


def test_any_write_order_within_and_across_steps():
    rec = Recorder([1, 2, 3, 4])
    rec.record("loss", 0, [4, 1], [40.0, 10.0])
    rec.record("loss", 1, [2], [21.0])
    rec.record("loss", 0, [3, 2], [30.0, 20.0])   # back to an earlier step: it lands in that step's row
    rec.record("loss", 1, [3, 1, 4], [31.0, 11.0, 41.0])
    assert rec.steps("loss").tolist() == [0, 1]
    np.testing.assert_array_equal(rec["loss"], [[10, 20, 30, 40], [11, 21, 31, 41]])
    assert (rec.counts("loss") == 1).all()


def test_a_new_step_older_than_the_last_one_is_an_error():
    rec = Recorder([1, 2])
    rec.record("loss", 0, [1], [0.0])
    rec.record("loss", 2, [1], [0.0])
    with pytest.raises(ValueError, match="step 1 arrives after step 2; record steps in increasing order"):
        rec.record("loss", 1, [1], [0.0])


def test_unknown_ids_duplicates_and_unknown_names_are_errors():
    rec = Recorder([5, 3, 9])
    with pytest.raises(KeyError, match=r"Sample ids \[4\] are not in this recorder"):
        rec.record("loss", 0, [4], [1.0])
    with pytest.raises(KeyError, match=r"\[10\]"):
        rec.record("loss", 0, [3, 10], [1.0, 2.0])  # beyond the largest id
    with pytest.raises(KeyError, match=r"\[0\]"):
        rec.record("loss", 0, [0], [1.0])           # below the smallest id
    with pytest.raises(ValueError, match="unique"):
        Recorder([1, 1, 2])
    with pytest.raises(ValueError, match="1-D"):
        Recorder([[1, 2]])
    with pytest.raises(KeyError, match="Nothing recorded as 'ssim'"):
        rec["ssim"]
    assert "ssim" not in rec


def test_unwritten_cells_stay_nan_and_count_zero():
    rec = Recorder([1, 2])
    rec.record("loss", 0, [2], [0.5])
    rec.record("loss", 1, [1], [0.7])
    loss = rec["loss"]
    assert np.isnan(loss[0, 0]) and loss[0, 1] == 0.5 and loss[1, 0] == np.float32(0.7) and np.isnan(loss[1, 1])
    np.testing.assert_array_equal(rec.counts("loss"), [[0, 1], [1, 0]])


def test_counts_show_a_sample_written_twice_in_one_step():
    rec = Recorder([1, 2, 3])
    rec.record("loss", 0, [1, 2], [0.1, 0.2])
    rec.record("loss", 0, [2, 3], [0.2, 0.3])
    np.testing.assert_array_equal(rec.counts("loss"), [[1, 2, 1]])


def test_counts_show_a_duplicate_id_within_one_write():
    # The docstring promises "a sample recorded twice in one step would show a count of 2"; numpy's
    # `written[r, rows] += 1` adds once per distinct index, so a batch holding a sample twice hides it.
    rec = Recorder([1, 2, 3])
    rec.record("loss", 0, [1, 2, 2], [0.1, 0.2, 0.2])
    np.testing.assert_array_equal(rec.counts("loss"), [[1, 2, 0]])


def _filled(ids=(9, 4, 6)):
    rec = Recorder(np.asarray(ids))
    rec.record("loss", 0, [4, 9, 6], [1.0, 2.0, 3.0])
    rec.record("loss", 3, [6], [4.0])
    rec.record("codes", 2, list(ids), np.arange(6.0).reshape(3, 2))
    return rec


def _assert_same(a: Recorder, b: Recorder):
    assert np.array_equal(a.sample_ids, b.sample_ids) and a.names == b.names
    for name in a:
        assert np.array_equal(a[name], b[name], equal_nan=True), name
        assert np.array_equal(a.steps(name), b.steps(name)) and np.array_equal(a.counts(name), b.counts(name))


def test_state_dict_round_trip_keeps_growing():
    rec = _filled()
    again = Recorder.from_state_dict(rec.state_dict())
    _assert_same(rec, again)
    for s in range(4, 30):  # appending after a round trip grows past the restored capacity
        rec.record("loss", s, [9], [s])
        again.record("loss", s, [9], [s])
    _assert_same(rec, again)
    with pytest.raises(ValueError, match="increasing order"):
        again.record("loss", 1, [9], [0.0])


def test_save_load_round_trip_is_atomic(tmp_path):
    rec = _filled()
    path = tmp_path / "deep" / "records.npz"
    rec.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["records.npz"]  # no temporary file left
    _assert_same(rec, Recorder.load(path))
    empty = Recorder([])
    empty.save(tmp_path / "empty.npz")
    assert Recorder.load(tmp_path / "empty.npz").names == []
    with pytest.raises(FileNotFoundError, match="No recorder at"):
        Recorder.load(tmp_path / "missing.npz")


def test_frame_is_one_row_per_sample_one_column_per_step():
    frame = _filled().frame("loss")
    expected = pd.DataFrame([[2.0, np.nan], [1.0, np.nan], [3.0, 4.0]], dtype=np.float32,
                            index=pd.Index([9, 4, 6], name="sample_id"), columns=pd.Index([0, 3], name="step"))
    pd.testing.assert_frame_equal(frame, expected)


def test_gather_without_torch_distributed_changes_nothing():
    rec = _filled()
    before = Recorder.from_state_dict(rec.state_dict())
    rec.gather()
    _assert_same(rec, before)
