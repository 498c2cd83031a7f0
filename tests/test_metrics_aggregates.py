import numpy as np
import pandas as pd
import pytest
import torch

from utils.metrics.aggregates import aggregate, scaled_epochs


@pytest.fixture
def series():
    return np.random.default_rng(0).random((30, 7)).astype(np.float32)


def test_every_column_matches_numpy_by_hand(series):
    s = series.astype(np.float64)
    frame = aggregate(series, "loss", mean_from=(0, 5, 29), var_from=(0, 10), std_from=(3,), diff_last=(0, 20),
                      sum_range=[(0, 30), (10, 12)])
    expected = {
        "loss__last": s[29],
        "loss__mean_from_0": s.mean(0), "loss__mean_from_5": s[5:].mean(0), "loss__mean_from_29": s[29],
        "loss__var_from_0": s.var(0), "loss__var_from_10": ((s[10:] - s[10:].mean(0)) ** 2).mean(0),
        "loss__std_from_3": np.sqrt(((s[3:] - s[3:].mean(0)) ** 2).mean(0)),
        "loss__diff_last_0": s[29] - s[0], "loss__diff_last_20": s[29] - s[20],
        "loss__sum_0_30": s.sum(0), "loss__sum_10_12": s[10] + s[11],
    }
    assert list(frame.columns) == list(expected)
    for col, values in expected.items():
        np.testing.assert_allclose(frame[col].to_numpy(), values, rtol=1e-12, atol=1e-12, err_msg=col)
    assert frame.index.name == "sample_id" and list(frame.index) == list(range(7))


def test_defaults_follow_the_spec_and_torch_input_equals_numpy(series):
    a = aggregate(series, "H", mean_from=(0, 20))
    b = aggregate(torch.from_numpy(series), "H", mean_from=(0, 20))
    with pytest.raises(ValueError, match="mean_from=50"):
        aggregate(series, "H")
    # mean_from=(0, 20, 50) with 50 out of range for 30 epochs would raise, so pass it explicitly
    assert list(a.columns) == ["H__last", "H__mean_from_0", "H__mean_from_20", "H__var_from_0",
                               "H__var_from_20", "H__diff_last_20"]
    pd.testing.assert_frame_equal(a, b)


def test_index_is_kept_and_checked(series):
    ids = pd.Index(np.arange(100, 107), name="mnist_id")
    frame = aggregate(series, "x", mean_from=(0,), var_from=(), diff_last=(), index=ids)
    assert frame.index.equals(ids) and frame.index.name == "mnist_id"
    plain = aggregate(series, "x", mean_from=(0,), var_from=(), diff_last=(), index=list(range(7, 14)))
    assert list(plain.index) == list(range(7, 14))
    with pytest.raises(ValueError, match="one id per sample"):
        aggregate(series, "x", index=np.arange(6))


def test_repeated_k_gives_one_column(series):
    frame = aggregate(series, "x", last=False, mean_from=(3, 3, 0), var_from=(), diff_last=())
    assert list(frame.columns) == ["x__mean_from_3", "x__mean_from_0"]


@pytest.mark.parametrize("kwargs", [dict(mean_from=(30,)), dict(var_from=(-1,)), dict(diff_last=(2.5,)),
                                    dict(std_from=(31,)), dict(sum_range=(5, 31)), dict(sum_range=(4, 4)),
                                    dict(sum_range=[(0, 2), (3,)])])
def test_out_of_range_or_malformed_k_is_a_clear_error(series, kwargs):
    base = dict(mean_from=(), var_from=(), diff_last=())
    base.update(kwargs)
    with pytest.raises(ValueError, match="outside the series of 30 epochs|half-open range|not an \\(a, b\\) pair"):
        aggregate(series, "x", **base)


def test_bad_shapes_and_nan_are_errors(series):
    with pytest.raises(ValueError, match="2-D"):
        aggregate(series[0], "x")
    with pytest.raises(ValueError, match="2-D"):
        aggregate(series[None], "x")
    bad = series.copy()
    bad[4, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        aggregate(bad, "x")
    with pytest.raises(ValueError, match="nan_policy"):
        aggregate(series, "x", nan_policy="drop")


def test_nan_policy_omit_ignores_missing_epochs(series):
    bad = series.astype(np.float64)
    bad[4, 2] = np.nan
    frame = aggregate(bad, "x", mean_from=(0,), var_from=(0,), diff_last=(), sum_range=(0, 30), nan_policy="omit")
    np.testing.assert_allclose(frame["x__mean_from_0"], np.nanmean(bad, 0))
    np.testing.assert_allclose(frame["x__var_from_0"], np.nanvar(bad, 0))
    np.testing.assert_allclose(frame["x__sum_0_30"], np.nansum(bad, 0))
    assert np.isclose(frame["x__mean_from_0"][2], np.delete(bad[:, 2], 4).mean())


def test_scaled_epochs_maps_the_seeds_indices_proportionally():
    assert scaled_epochs((0, 20, 50, 250, 400, 450, 599), 600) == (0, 20, 50, 250, 400, 450, 599)
    assert scaled_epochs((0, 20, 50, 250, 400, 450, 599), 100) == (0, 3, 8, 42, 67, 75, 99)
    assert scaled_epochs(450, 30) == 23 and isinstance(scaled_epochs(450, 30), int)
    assert scaled_epochs(599, 10) == 9  # capped at the last index
    assert scaled_epochs(10, 200, seed_epochs=100) == 20
    with pytest.raises(ValueError, match="epoch index"):
        scaled_epochs(600, 100)
    with pytest.raises(ValueError, match="positive integer"):
        scaled_epochs(20, 0)
