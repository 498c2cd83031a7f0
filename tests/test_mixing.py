"""Tests for utils.data.mixing: the original study's layout, seed-mode pixels, matched mode, label flips."""
import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
import torch.nn.functional as F

from utils.data.datasets import DatasetInfo, dataset_info
from utils.data.mixing import flip_labels, make_mixed, mixed_pairs, original_layout
from utils.scores.battery import intensity_stats
from utils.scores.evaluate import detection_table

INTENSITY_STATS = ["mean", "std", "min", "max", "background", "ink_fraction", "faint_fraction", "isolated_pixels",
                   "border_ink_top", "border_ink_bottom", "border_ink_left", "border_ink_right"]


def synthetic(n=10000, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.fixture(scope="module")
def matched(mnist5k):
    return make_mixed(*mnist5k, fraction=0.1, mode="matched", seed=91)


def test_permutation_known_answers():
    for seed, head in [(91, [57443, 50575, 31592, 53264, 22680]), (12, [36291, 54116, 24758])]:
        perm = np.arange(60000)
        np.random.RandomState(seed).shuffle(perm)
        assert perm[: len(head)].tolist() == head
        assert original_layout(60000, 0.1, seed)[0][: len(head)].tolist() == head
    state = np.random.get_state()
    np.random.seed(91)  # what the original did: the global seed, then np.random.shuffle
    perm = np.arange(60000)
    np.random.shuffle(perm)
    np.random.set_state(state)
    assert np.array_equal(original_layout(60000, 0.1, 91)[0], perm[:57000])


def test_layout_counts_match_the_original():
    kept, pairs = original_layout(60000, 0.1, 91)
    assert len(kept) == 57000 and pairs.shape == (3000, 2)
    perm = np.arange(60000)
    np.random.RandomState(91).shuffle(perm)
    assert np.array_equal(pairs[:, 0], perm[54000:57000]) and np.array_equal(pairs[:, 1], perm[57000:])


def test_counts_prevalence_and_ids():
    x, y = synthetic()
    d = make_mixed(x, y, fraction=0.1, seed=91)
    assert len(d) == 9500 and d.images.shape == (9500, 1, 8, 8) and int(d.flag('mixed').sum()) == 500
    assert d.flag('mixed').float().mean().item() == pytest.approx(0.05263, abs=1e-5)
    assert d.flag('mixed')[-500:].all() and d.images.dtype == torch.float32 and d.labels.dtype == torch.int64
    ids = d.ids
    assert len(np.unique(ids)) == len(ids)
    assert np.array_equal(ids, original_layout(10000, 0.1, 91)[0])
    assert torch.equal(torch.from_numpy(d.ids)[d.flag('mixed')], mixed_pairs(d)[:, 0])
    assert not np.isin(mixed_pairs(d)[:, 1].numpy(), ids).any()  # partners are dropped
    assert torch.equal(d.labels, y[torch.from_numpy(d.ids)])
    partner_label = torch.from_numpy(d.meta["partner_label"].to_numpy())
    assert torch.equal(partner_label[d.flag("mixed")], y[mixed_pairs(d)[:, 1]])
    assert (partner_label[~d.flag("mixed")] == -1).all()
    assert torch.equal(d.images[~d.flag('mixed')], x[torch.from_numpy(d.ids)[~d.flag("mixed")]])


def test_odd_pool_size_is_made_even():
    x, y = synthetic(n=50)
    d = make_mixed(x, y, fraction=0.1)  # int(5.0) = 5 -> 4 pool images -> 2 mixed
    assert len(d) == 48 and int(d.flag('mixed').sum()) == 2


def test_deterministic_in_seed_and_seeds_differ():
    x, y = synthetic(n=500)
    for mode in ("seed", "matched"):
        d1, d2 = make_mixed(x, y, mode=mode, seed=5), make_mixed(x, y, mode=mode, seed=5)
        assert torch.equal(d1.images, d2.images) and torch.equal(mixed_pairs(d1), mixed_pairs(d2))
        d3 = make_mixed(x, y, mode=mode, seed=6)
        assert not torch.equal(mixed_pairs(d1), mixed_pairs(d3)) and not torch.equal(d1.images, d3.images)


def test_seed_mode_pixels_equal_the_formula():
    x, y = synthetic(n=1000)
    x[:, :, 0, 0] = 0.0  # a background pixel in every image
    d = make_mixed(x, y, fraction=0.2, seed=3)
    a, b = mixed_pairs(d)[:, 0].numpy(), mixed_pairs(d)[:, 1].numpy()
    xn = x.numpy().astype(np.float64)
    z = ((xn[a] - 0.1307) / 0.3081 + (xn[b] - 0.1307) / 0.3081) / 1.58
    np.testing.assert_allclose(d.images[d.flag('mixed')].numpy(), z * 0.3081 + 0.1307, rtol=0, atol=1e-6)
    standardised = (d.images[d.flag('mixed')][:, 0, 0, 0] - 0.1307) / 0.3081
    np.testing.assert_allclose(standardised.numpy(), -0.537, atol=1e-3)  # vs -0.424 for a clean background
    assert d.images[d.flag('mixed')].min() < 0  # not clamped: the original's confound, on purpose


def test_seed_mode_confound_is_detected(mnist5k):
    d = make_mixed(*mnist5k, mode="seed")
    table = detection_table(intensity_stats(d.images), pd.Series(d.flag("mixed").numpy()), orientation="free")
    assert table.loc["background", "auroc"] == 1.0 and table.loc["min", "auroc"] == 1.0


def test_matched_mode_same_layout(mnist5k, matched):
    s = make_mixed(*mnist5k, mode="seed")
    assert np.array_equal(s.ids, matched.ids) and torch.equal(s.labels, matched.labels)
    assert s.meta.equals(matched.meta) and torch.equal(mixed_pairs(s), mixed_pairs(matched))
    assert matched.history[-1]["mode"] == "matched"   # the pixels: test_matched_images_have_exactly_a_clean_histogram


def test_matched_images_have_exactly_a_clean_histogram(mnist5k, matched):
    x = mnist5k[0]
    clean_hists = {r.tobytes() for r in np.sort(x.flatten(1).numpy(), axis=1)}
    out_hists = np.sort(matched.images.flatten(1).numpy(), axis=1)
    assert all(r.tobytes() in clean_hists for r in out_hists)


def test_matched_mode_removes_intensity_confounds(matched):
    table = detection_table(intensity_stats(matched.images), pd.Series(matched.flag("mixed").numpy()),
                            orientation="free", describe=True)
    assert (table.loc[INTENSITY_STATS, "auroc"] <= 0.55).all(), table
    assert (table.loc[["mean", "std"], "rel_diff"] < 0.02).all()
    assert abs(table.loc["background", "mean_positive"] - table.loc["background", "mean_negative"]) < 0.02


def test_matched_mixtures_keep_both_digits(mnist5k, matched):
    """Each source digit's ink lies (within one pixel) under the mixed image's ink: two digits stay visible."""
    x = mnist5k[0]
    ink = F.max_pool2d((matched.images[matched.flag('mixed')] > 0.5).float(), 3, 1, 1) > 0
    for col in (0, 1):
        src = x[mixed_pairs(matched)[:, col]] > 0.5
        coverage = (src & ink).flatten(1).sum(1) / src.flatten(1).sum(1)
        assert coverage.mean() > 0.95 and coverage.min() > 0.7


def test_flip_labels_exact_and_uniform():
    y = torch.randint(0, 10, (20000,), generator=torch.Generator().manual_seed(0))
    new, flipped = flip_labels(y, 0.3, seed=1)
    assert int(flipped.sum()) == 6000 and new.dtype == torch.int64
    assert (new[flipped] != y[flipped]).all() and torch.equal(new[~flipped], y[~flipped])
    offsets = ((new[flipped] - y[flipped]) % 10).numpy()
    counts = np.bincount(offsets, minlength=10)
    assert counts[0] == 0 and counts[9] > 0  # y - 1 is reachable, unlike the SSFT code
    assert scipy.stats.chisquare(counts[1:]).pvalue > 1e-3
    per_class = np.bincount(new[flipped].numpy(), minlength=10)
    assert scipy.stats.chisquare(per_class).pvalue > 1e-3


def test_flip_labels_rounding_determinism_and_classes():
    y = torch.arange(10) % 3
    assert int(flip_labels(y, 0.25, seed=0)[1].sum()) == 3  # 2.5 rounds half up
    assert int(flip_labels(y, 0.0, seed=0)[1].sum()) == 0
    y = torch.randint(0, 4, (500,), generator=torch.Generator().manual_seed(2))
    a, b = flip_labels(y, 0.2, seed=7), flip_labels(y, 0.2, seed=7)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], flip_labels(y, 0.2, seed=8)[1])
    new, _ = flip_labels(torch.zeros(100, dtype=torch.long), 0.5, seed=0, num_classes=2)
    assert int(new.sum()) == 50  # with 2 classes the only other class is 1


def one_sentence(excinfo):
    msg = str(excinfo.value)
    return msg.endswith(".") and "\n" not in msg and ". " not in msg


@pytest.mark.parametrize("kwargs", [dict(fraction=0.0), dict(fraction=1.0), dict(fraction=-0.1), dict(fraction=1.5),
                                    dict(mode="max"), dict(fraction=0.001)])
def test_make_mixed_bad_arguments(kwargs):
    x, y = synthetic(n=100)
    with pytest.raises(ValueError) as e:
        make_mixed(x, y, **kwargs)
    assert one_sentence(e)


@pytest.mark.parametrize("images, labels, mode", [
    (torch.rand(10, 8, 8), torch.zeros(10, dtype=torch.long), "seed"),  # no channel axis
    (torch.rand(10, 1, 8, 8), torch.zeros(9, dtype=torch.long), "seed"),  # mismatched lengths
    (torch.rand(10, 1, 8, 8), torch.zeros(10, 2, dtype=torch.long), "seed"),  # labels not flat
    (torch.randint(0, 255, (10, 1, 8, 8)), torch.zeros(10, dtype=torch.long), "seed"),  # not float
    (torch.rand(10, 3, 8, 8), torch.zeros(10, dtype=torch.long), "matched"),  # colour in matched mode
])
def test_make_mixed_bad_inputs(images, labels, mode):
    with pytest.raises(ValueError) as e:
        make_mixed(images, labels, fraction=0.2, mode=mode)
    assert one_sentence(e)


@pytest.mark.parametrize("labels, fraction, num_classes", [
    (torch.zeros(10, dtype=torch.long), -0.1, 2), (torch.zeros(10, dtype=torch.long), 1.5, 2),
    (torch.zeros(10, dtype=torch.long), 0.1, None),  # only one class
    (torch.tensor([0, 1, 5]), 0.1, 3),  # label out of range
    (torch.rand(10), 0.1, 2), (torch.zeros(2, 5, dtype=torch.long), 0.1, 2),
])
def test_flip_labels_bad_inputs(labels, fraction, num_classes):
    with pytest.raises(ValueError) as e:
        flip_labels(labels, fraction, seed=0, num_classes=num_classes)
    assert one_sentence(e)


def test_data_does_not_import_mixing():  # utils.data.mixing imports utils.data.datasets: no cycle, no re-export
    import subprocess
    import sys
    code = "import sys, utils.data.datasets; assert 'utils.data.mixing' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    from utils.data import datasets as data
    assert not hasattr(data, "make_mixed") and not hasattr(data, "flip_labels")


def _old_seed_mode(x, y, fraction, seed):
    """The original study's seed-mode pixels, with its constants as Python floats (the code before DatasetInfo)."""
    kept, pairs = original_layout(len(x), fraction, seed)
    a, b = torch.from_numpy(pairs[:, 0]), torch.from_numpy(pairs[:, 1])
    z = (x[a].double() - 0.1307) / 0.3081 + (x[b].double() - 0.1307) / 0.3081
    mixed = (z / 1.58 * 0.3081 + 0.1307).float()
    return torch.cat([x[torch.from_numpy(kept[: len(kept) - len(pairs)])], mixed])


def test_seed_mode_is_bit_identical_to_the_original_constants(mnist5k):
    x, y = synthetic(n=600)
    for info in (None, "mnist"):
        assert torch.equal(make_mixed(x, y, fraction=0.2, seed=3, info=info).images, _old_seed_mode(x, y, 0.2, 3))
    images, labels = mnist5k
    expected = _old_seed_mode(images, labels, 0.1, 91)
    for info in (None, dataset_info("mnist-5k")):
        assert torch.equal(make_mixed(images, labels, info=info).images, expected)


def test_seed_mode_on_colour_images_is_per_channel():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(300, 3, 32, 32, generator=g), torch.randint(0, 7, (300,), generator=g)
    info = dataset_info("cifar10")
    d = make_mixed(x, y, fraction=0.2, seed=3, info=info)
    assert d.images.shape == (270, 3, 32, 32) and int(d.flag('mixed').sum()) == 30
    a, b = mixed_pairs(d)[:, 0].numpy(), mixed_pairs(d)[:, 1].numpy()
    xn = x.numpy().astype(np.float64)
    for c in range(3):
        m, s = info.mean[c], info.std[c]
        expected = ((xn[a, c] - m) / s + (xn[b, c] - m) / s) / 1.58 * s + m
        np.testing.assert_allclose(d.images[d.flag('mixed')][:, c].numpy(), expected, rtol=0, atol=1e-6)
    assert torch.equal(d.images[~d.flag('mixed')], x[torch.from_numpy(d.ids)[~d.flag("mixed")]])
    own = make_mixed(x, y, fraction=0.2, seed=3, info=DatasetInfo.from_images(x, y))  # any description works
    assert torch.equal(mixed_pairs(own), mixed_pairs(d)) and not torch.equal(own.images, d.images)


def test_seed_mode_refuses_an_info_of_another_channel_count():
    x, y = torch.rand(50, 3, 8, 8), torch.zeros(50, dtype=torch.long)
    with pytest.raises(ValueError, match="3 channel.*mnist with 1") as e:
        make_mixed(x, y, fraction=0.2)  # default info: MNIST's single channel
    assert one_sentence(e)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_images_are_refused(bad):
    x, y = synthetic(n=100)
    x[3, 0, 2, 2] = bad
    x[7, 0, 0, 1] = bad
    for mode in ("seed", "matched"):
        with pytest.raises(ValueError) as e:
            make_mixed(x, y, fraction=0.2, mode=mode)
        assert str(e.value) == ("images hold 2 non-finite values (NaN or inf); clean or drop those samples "
                                "first.")
