import numpy as np
import pytest
import torch

from utils.tracking import SampleTracker


def test_records_land_in_each_ids_column_whatever_the_batch_order(tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.choice(100_000, size=500, replace=False)
    tracker = SampleTracker(ids, epochs=3, scalars=("loss",), snapshot_every=2, snapshot_dim=2)
    for epoch in range(3):
        order = rng.permutation(ids)
        for batch in np.array_split(order, 7):
            tracker.record("loss", epoch, torch.as_tensor(batch), batch * 0.5 + epoch)
            if tracker.wants_snapshot(epoch):
                tracker.record_snapshot(epoch, batch, np.stack([batch, -batch], 1))
    frame = tracker.frame("loss")
    assert list(frame.index) == list(ids)
    assert np.allclose(frame[2].to_numpy(), ids * 0.5 + 2)
    assert tracker.snapshot_epochs.tolist() == [1]
    assert np.array_equal(tracker.snapshots[0][:, 0], ids.astype(np.float32))
    tracker.save(tmp_path)
    loaded = SampleTracker.load(tmp_path)
    assert np.array_equal(loaded.series["loss"], tracker.series["loss"])
    assert np.array_equal(loaded.sample_ids, ids)


def test_unknown_ids_and_duplicates_are_errors():
    tracker = SampleTracker([5, 3, 9], epochs=1)
    with pytest.raises(KeyError, match="not tracked"):
        tracker.record("loss", 0, [4], [1.0])
    with pytest.raises(ValueError, match="unique"):
        SampleTracker([1, 1, 2], epochs=1)
    with pytest.raises(KeyError, match="scalars"):
        tracker.record("ssim", 0, [5], [1.0])


def test_unwritten_cells_stay_nan():
    tracker = SampleTracker([1, 2], epochs=2)
    tracker.record("loss", 0, [2], [0.5])
    assert np.isnan(tracker.series["loss"][1]).all() and np.isnan(tracker.series["loss"][0, 0])
