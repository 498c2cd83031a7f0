"""Per-sample scores of an autoencoder run (utils.scores.autoencoder) from a Recorder."""
import numpy as np
import pandas as pd
import pytest

from utils.engine.recorder import Recorder
from utils.scores.autoencoder import compute_scores

SCALARS = ("loss", "entropy", "norm", "drift", "ssim")
SNAPSHOT_STEPS = list(range(9, 60, 10))  # codes every 10 epochs, as snapshot_every=10 records them


def _fill(ids, series, codes):
    rec = Recorder(ids)
    for step in range(60):
        for name in SCALARS:
            rec.record(name, step, ids, series[name][step])
        if step in SNAPSHOT_STEPS:
            rec.record("codes", step, ids, codes[SNAPSHOT_STEPS.index(step)])
    return rec


@pytest.fixture
def recorded():
    rng = np.random.default_rng(0)
    ids = rng.choice(50_000, size=400, replace=False)
    series = {name: rng.random((60, 400)) for name in SCALARS}
    codes = rng.random((len(SNAPSHOT_STEPS), 400, 3))
    return ids, series, codes


def test_scores_are_indexed_by_sample_id_with_seed_names_and_scaled_epochs(recorded):
    ids, series, codes = recorded
    rec = _fill(ids, series, codes)
    assert rec["codes"].shape == (6, 400, 3) and rec.steps("codes").tolist() == SNAPSHOT_STEPS
    scores = compute_scores(rec)
    assert list(scores.index) == list(ids) and scores.index.name == "sample_id"
    assert {"loss__last", "loss__mean_from_50", "loss__diff_last_20", "H__mean_from_400", "LID__mean_from_10",
            "sil_score__mean_from_0", "ssim__last", "dif_L2__mean_from_0"} <= set(scores.columns)
    loss = series["loss"].astype(np.float32)
    # 60 epochs: the seed's index 50 (of 600) becomes 5, index 20 becomes 2
    assert np.allclose(scores["loss__mean_from_50"], loss[5:].mean(0))
    assert np.allclose(scores["loss__diff_last_20"], loss[-1] - loss[2])
    assert np.allclose(scores["dif_L2__mean_from_0"], series["drift"][1:].mean(0))
    assert np.allclose(scores["ssim__last"], series["ssim"][-1])
    assert scores.notna().all().all()


def test_a_sample_keeps_its_scores_when_the_recorder_columns_are_reordered(recorded):
    ids, series, codes = recorded
    scores = compute_scores(_fill(ids, series, codes))
    order = np.random.default_rng(1).permutation(len(ids))
    shuffled = _fill(ids[order], {k: v[:, order] for k, v in series.items()}, codes[:, order])
    again = compute_scores(shuffled).loc[scores.index]
    cols = [c for c in scores.columns if not c.startswith("sil_score")]  # k-means labels may permute
    pd.testing.assert_frame_equal(scores[cols], again[cols])


def test_without_codes_or_ssim_the_snapshot_and_ssim_scores_are_left_out(recorded):
    ids, series, _ = recorded
    rec = Recorder(ids)
    for step in range(60):
        for name in ("loss", "entropy", "norm"):  # what in-loop recording gives
            rec.record(name, step, ids, series[name][step])
    scores = compute_scores(rec)
    assert "loss__last" in scores and not any(c.split("__")[0] in ("LID", "sil_score", "ssim", "dif_L2")
                                              for c in scores.columns)
