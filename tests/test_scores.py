import numpy as np
import pandas as pd
import pytest

from utils.scores import compute_scores
from utils.tracking import SampleTracker


@pytest.fixture
def tracker():
    rng = np.random.default_rng(0)
    ids = rng.choice(50_000, size=400, replace=False)
    t = SampleTracker(ids, epochs=60, scalars=("loss", "entropy", "norm", "drift", "ssim"), snapshot_every=10,
                      snapshot_dim=3)
    for name in t.series:
        t.series[name][:] = rng.random((60, 400))
    t.snapshots[:] = rng.random(t.snapshots.shape)
    return t


def test_scores_are_indexed_by_sample_id_with_seed_names_and_scaled_epochs(tracker):
    scores = compute_scores(tracker)
    assert list(scores.index) == list(tracker.sample_ids)
    assert {"loss__last", "loss__mean_from_50", "loss__diff_last_20", "H__mean_from_400", "LID__mean_from_10",
            "sil_score__mean_from_0", "ssim__last", "dif_L2__mean_from_0"} <= set(scores.columns)
    loss = tracker.series["loss"]
    # 60 epochs: the seed's index 50 (of 600) becomes 5, index 20 becomes 2
    assert np.allclose(scores["loss__mean_from_50"], loss[5:].mean(0))
    assert np.allclose(scores["loss__diff_last_20"], loss[-1] - loss[2])
    assert np.allclose(scores["dif_L2__mean_from_0"], tracker.series["drift"][1:].mean(0))
    assert scores.notna().all().all()


def test_a_sample_keeps_its_scores_when_the_tracker_columns_are_reordered(tracker):
    scores = compute_scores(tracker)
    order = np.random.default_rng(1).permutation(len(tracker.sample_ids))
    shuffled = SampleTracker(tracker.sample_ids[order], tracker.epochs, tuple(tracker.series), 10, 3)
    for name, arr in tracker.series.items():
        shuffled.series[name] = arr[:, order]
    shuffled.snapshots = tracker.snapshots[:, order]
    again = compute_scores(shuffled).loc[scores.index]
    cols = [c for c in scores.columns if not c.startswith("sil_score")]  # k-means labels may permute
    pd.testing.assert_frame_equal(scores[cols], again[cols])
