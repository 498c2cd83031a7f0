"""Tests for utils.scores.battery: each new statistic against hand-built images and scipy / skimage references, the
cross-validated baseline for out-of-fold honesty and power, and the matched-mode MNIST check."""
import numpy as np
import pandas as pd
import pytest
import scipy.ndimage
import skimage.measure
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from utils.scores.battery import cross_validated_baseline, image_battery, intensity_stats, shape_stats
from utils.scores.evaluate import detection_table

NEW = ["laplacian_abs_mean", "components_4", "components_8", "isolated_pixels_4", "stroke_width"]


def _battery(*images):
    return image_battery(torch.from_numpy(np.stack(images)[:, None].astype(np.float32)))


def test_known_answers_on_hand_built_images():
    blank = np.zeros((12, 12))
    diagonal = blank.copy()
    diagonal[2:4, 2:4] = 1.0
    diagonal[4:6, 4:6] = 1.0  # two 2x2 blobs touching at one corner
    single = blank.copy()
    single[6, 6] = 0.9  # one isolated ink pixel
    corner_pair = blank.copy()
    corner_pair[1, 1] = corner_pair[2, 2] = 1.0  # isolated under 4- but not under 8-connectivity
    constant = np.full((12, 12), 0.7)
    faint = blank.copy()
    faint[3:9, 3:9] = 0.4  # no ink at all (<= 0.5)
    b = _battery(blank, diagonal, single, corner_pair, constant, faint)
    assert b["components_4"].tolist() == [0, 2, 1, 2, 1, 0]
    assert b["components_8"].tolist() == [0, 1, 1, 1, 1, 0]
    assert b["isolated_pixels_4"].tolist() == [0, 0, 1, 2, 0, 0]
    assert b["isolated_pixels"].tolist() == [0, 0, 1, 0, 0, 0]  # the existing 8-connectivity count
    assert b.loc[[0, 4], "laplacian_abs_mean"].tolist() == [0.0, 0.0]  # constant images, borders included
    assert b.loc[2, "laplacian_abs_mean"] == pytest.approx(0.9 * 8 / 144)  # |-4c| centre + 4 neighbours of c
    assert b.loc[[0, 5], "stroke_width"].tolist() == [0.0, 0.0]  # no ink: width 0, not NaN
    assert set(NEW) | set(intensity_stats(np.zeros((1, 1, 4, 4)))) | {"total_variation"} == set(b.columns)


def test_stroke_width_of_bars_of_known_width():
    bars = []
    for w in (1, 2, 3, 5):
        x = np.zeros((28, 28))
        x[10:10 + w, 3:25] = 1.0  # horizontal bar of width w, length 22
        bars.append(x)
    width = _battery(*bars)["stroke_width"].to_numpy()
    assert width[0] == 1.0 and width[1] == pytest.approx(2.0, abs=0.1)
    assert width[2] == pytest.approx(3.0, abs=0.2)  # 66 ink pixels / 21 skeleton pixels = 3.14
    assert width[3] == pytest.approx(5.0, rel=0.2)  # end effect grows with width: 110 / 19
    assert (np.diff(width) > 0).all()
    # a vertical bar reads about the same (66 / 20: the skeletons differ by one pixel)
    assert _battery(bars[2].T)["stroke_width"].item() == pytest.approx(3.0, abs=0.35)


def test_new_statistics_match_scipy_and_skimage_on_random_images():
    rng = np.random.default_rng(0)
    x = (rng.random((200, 14, 13)) < 0.3) * rng.uniform(0.2, 1.0, (200, 14, 13))
    b = _battery(*x)
    ink = x > 0.5
    lap = [np.abs(scipy.ndimage.laplace(im, mode="reflect")).mean() for im in x]
    np.testing.assert_allclose(b["laplacian_abs_mean"], lap, rtol=1e-5, atol=1e-7)
    assert b["components_4"].tolist() == [skimage.measure.label(m, connectivity=1).max() for m in ink]
    assert b["components_8"].tolist() == [skimage.measure.label(m, connectivity=2).max() for m in ink]
    iso4 = []
    for m in ink:  # reference: 4-connected components of size one
        lab, n = scipy.ndimage.label(m)
        iso4.append(int((np.bincount(lab.ravel(), minlength=n + 1)[1:] == 1).sum()))
    assert b["isolated_pixels_4"].tolist() == iso4 and sum(iso4) > 0
    # the reused columns are exactly utils.scores.battery's
    t = torch.from_numpy(x[:, None]).float()
    pd.testing.assert_frame_equal(b[intensity_stats(t).columns], intensity_stats(t))
    pd.testing.assert_series_equal(b["total_variation"], shape_stats(t)["total_variation"])


def test_multichannel_images_use_the_channel_mean():
    rng = np.random.default_rng(1)
    rgb = torch.from_numpy(rng.random((20, 3, 10, 10))).float()
    gray = rgb.mean(1, keepdim=True)
    pd.testing.assert_frame_equal(image_battery(rgb), image_battery(gray))
    with pytest.raises(ValueError, match="N, C, H, W"):
        image_battery(torch.zeros(4, 10, 10))


def _random_stats(n=1500, seed=2):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, 6)), columns=list("abcdef"), index=rng.permutation(n) + 10_000)


def test_cv_baseline_is_out_of_fold_on_a_pure_noise_target():
    stats = _random_stats()
    y = np.random.default_rng(3).random(len(stats)) < 0.3
    p = cross_validated_baseline(stats, y, folds=5, seed=0)
    assert p.name == "battery_cv" and p.index.equals(stats.index) and p.nunique() > len(p) // 10
    assert abs(roc_auc_score(y, p) - 0.5) < 0.06
    # the same classifier scored in-sample would look strong: the test above catches leakage
    with threadpool_limits(limits=1, user_api="openmp"):  # OpenMP threads crawl on a CPU shared with training
        in_sample = HistGradientBoostingClassifier(random_state=0).fit(stats, y).predict_proba(stats)[:, 1]
    assert roc_auc_score(y, in_sample) > 0.8
    assert p.attrs["folds"] == 5
    # cross_val_predict gives what a hand-written stratified loop gives (the loop it replaced)
    from sklearn.model_selection import StratifiedKFold
    manual = np.full(len(y), np.nan)
    with threadpool_limits(limits=1, user_api="openmp"):
        for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(stats, y):
            clf = HistGradientBoostingClassifier(early_stopping=True, random_state=0).fit(stats.iloc[train], y[train])
            manual[test] = clf.predict_proba(stats.iloc[test])[:, 1]
    np.testing.assert_array_equal(p.to_numpy(), manual)


def test_cv_baseline_finds_a_planted_signal_and_aligns_by_id():
    stats = _random_stats()
    y = (stats["c"] + 0.8 * stats["e"] ** 2 + 0.2 * np.random.default_rng(4).normal(size=len(stats))) > 1.0
    p = cross_validated_baseline(stats, y.to_numpy(), seed=1)
    assert roc_auc_score(y, p) > 0.95
    shuffled = y.sample(frac=1.0, random_state=0)  # a Series is aligned by sample id, not by position
    pd.testing.assert_series_equal(cross_validated_baseline(stats, shuffled, seed=1), p)
    best = detection_table(stats, y, orientation="free")   # the best single statistic, orientation-free
    assert best.index[0] == "c" and best.loc["c", "direction"] == "higher"
    assert best["auroc"].is_monotonic_decreasing and best.loc["a", "auroc"] < 0.6


@pytest.mark.parametrize("target, match", [
    (np.r_[np.ones(3), np.zeros(97)], "fewer than folds=5"),
    (np.zeros(100), "both positive and negative"),
    (np.arange(100) % 3, "boolean or 0/1"),
    (np.ones(7), "7 values for 100 rows"),
])
def test_cv_baseline_bad_targets_get_clear_errors(target, match):
    with pytest.raises(ValueError, match=match):
        cross_validated_baseline(_random_stats(100), target)


def test_cv_baseline_refuses_nan_statistics():
    stats = _random_stats(100)
    stats.iloc[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"\['c'\] contain NaN"):
        cross_validated_baseline(stats, np.arange(100) % 2)


def test_battery_beats_total_variation_on_matched_mixed_mnist(mnist5k):
    from utils.data.mixing import make_mixed

    images, labels = mnist5k
    m = make_mixed(images, labels, fraction=0.2, mode="matched", seed=0)
    stats = image_battery(m.images).set_axis(m.ids)
    is_mixed = pd.Series(m.flag('mixed').numpy(), index=stats.index)
    p = cross_validated_baseline(stats, is_mixed, seed=0)
    auroc = roc_auc_score(is_mixed, p)
    single = detection_table(stats, is_mixed, orientation="free")
    tv = single.loc["total_variation", "auroc"]
    assert auroc > tv + 0.03, (auroc, tv)
    # the new shape statistics carry signal beyond total variation; the matched intensities carry none
    assert single.loc["laplacian_abs_mean", "auroc"] > tv and single.loc["components_4", "auroc"] > 0.7
    assert single.loc[["mean", "std", "ink_fraction"], "auroc"].max() < 0.52


def test_intensity_stats_known_answers_on_hand_made_images():
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


def test_intensity_and_shape_stats_match_numpy_and_scipy_on_random_images():
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


def test_bad_images_get_one_sentence():
    with pytest.raises(ValueError) as e:
        intensity_stats(torch.zeros(3, 8, 8))
    msg = str(e.value)
    assert msg.endswith(".") and "\n" not in msg and ". " not in msg
