"""Tests for utils.scores.image_stats against hand-made images and independent references (numpy, scipy)."""
import numpy as np
import pandas as pd
import pytest
import scipy.ndimage
import scipy.stats
import torch

from utils.scores.image_stats import intensity_stats, separability_table, shape_stats


def test_known_answers_on_hand_made_images():
    x = torch.zeros(4, 1, 6, 6)
    x[1, 0, 2, 2] = 1.0  # one isolated ink pixel
    x[2, 0, 2, 2] = x[2, 0, 3, 3] = 0.9  # two diagonal neighbours: not isolated
    x[3, 0, 0, 0] = 1.0  # a corner pixel: isolated, top and left border
    x[3, 0, 5, :] = 0.3  # a faint stripe along the bottom row: not ink, but border mass
    s = intensity_stats(x)
    assert s["isolated_pixels"].tolist() == [0, 1, 0, 1]
    assert s["ink_fraction"].tolist() == pytest.approx([0, 1 / 36, 2 / 36, 1 / 36])
    assert s["faint_fraction"].tolist() == pytest.approx([0, 0, 0, 6 / 36])
    borders = s.loc[3, ["border_ink_top", "border_ink_left", "border_ink_right"]].tolist()
    assert borders == pytest.approx([1.0, 1.3, 0.3])
    assert s.loc[3, "border_ink_bottom"] == pytest.approx(1.8)
    assert s.loc[0].drop(["std"]).abs().sum() == 0 and s.loc[0, "std"] == 0
    assert shape_stats(x)["total_variation"].tolist() == pytest.approx([0, 4.0, 4 * 0.9 * 2, 2.0 + 6 * 0.3])


def test_matches_numpy_and_scipy_on_random_images():
    rng = np.random.default_rng(0)
    x = (rng.random((300, 1, 12, 12)) < 0.15) * rng.uniform(0.3, 1.0, (300, 1, 12, 12))
    s = intensity_stats(torch.from_numpy(x).float())
    flat = x.reshape(300, -1)
    np.testing.assert_allclose(s["mean"], flat.mean(1), atol=1e-6)
    np.testing.assert_allclose(s["std"], flat.std(1), atol=1e-6)
    np.testing.assert_allclose(s["background"], np.percentile(flat, 50, axis=1), atol=1e-6)
    np.testing.assert_allclose(s["min"], flat.min(1), atol=1e-6)
    np.testing.assert_allclose(s["max"], flat.max(1), atol=1e-6)
    ink = x[:, 0] > 0.5
    singletons = []
    for im in ink:  # reference: 8-connected components of size one
        lab, n = scipy.ndimage.label(im, structure=np.ones((3, 3)))
        singletons.append(int((np.bincount(lab.ravel(), minlength=n + 1)[1:] == 1).sum()))
    assert s["isolated_pixels"].tolist() == singletons and sum(singletons) > 0
    tv = np.abs(np.diff(x[:, 0], axis=1)).sum((1, 2)) + np.abs(np.diff(x[:, 0], axis=2)).sum((1, 2))
    np.testing.assert_allclose(shape_stats(torch.from_numpy(x).float())["total_variation"], tv, rtol=1e-5)


def test_separability_is_orientation_free_and_equals_mann_whitney():
    rng = np.random.default_rng(1)
    is_mixed = np.r_[np.ones(50, bool), np.zeros(450, bool)]
    df = pd.DataFrame({"up": is_mixed + 0.0, "down": -(is_mixed + 0.0), "noise": rng.normal(size=500),
                       "shifted": rng.normal(size=500) + 0.5 * is_mixed})
    t = separability_table(df, is_mixed)
    assert t.loc["up", "auroc"] == 1.0 and t.loc["down", "auroc"] == 1.0
    u = scipy.stats.mannwhitneyu(df["shifted"][is_mixed], df["shifted"][~is_mixed]).statistic / (50 * 450)
    assert t.loc["shifted", "auroc"] == pytest.approx(max(u, 1 - u))
    assert 0.5 <= t.loc["noise", "auroc"] < 0.6
    assert t.loc["up", "mean_mixed"] == 1.0 and np.isnan(t.loc["up", "rel_diff"])


@pytest.mark.parametrize("call", [
    lambda: intensity_stats(torch.zeros(3, 8, 8)),
    lambda: separability_table(intensity_stats(torch.zeros(3, 1, 8, 8)), [True, False]),
    lambda: separability_table(intensity_stats(torch.zeros(3, 1, 8, 8)), [True, True, True]),
])
def test_bad_input_one_sentence(call):
    with pytest.raises(ValueError) as e:
        call()
    msg = str(e.value)
    assert msg.endswith(".") and "\n" not in msg and ". " not in msg
