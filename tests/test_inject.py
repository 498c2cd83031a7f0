"""Tests for utils.data.inject: exact counts, determinism, stable ids, flags that match what changed, composition."""
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from utils.data.inject import (
    CLASS_PAIRS,
    HARDNESS_TYPES,
    atypical,
    class_noise,
    exact_count,
    far_ood,
    flagged,
    from_arrays,
    inject,
    mixed,
    near_duplicates,
    near_ood,
    rare_class,
    type_counts,
    types,
    uniform_noise,
)
from utils.data.samples import Samples

OOD = torch.rand(400, 1, 28, 28, generator=torch.Generator().manual_seed(5))
KWARGS = {"far_ood": {"ood_images": OOD}}
PER_SAMPLE = ["uniform_noise", "class_noise", "atypical", "near_ood", "far_ood"]  # change samples in place


def synthetic(n=500, shape=(1, 28, 28), seed=0, name="mnist"):
    g = torch.Generator().manual_seed(seed)
    return from_arrays(torch.rand(n, *shape, generator=g), torch.arange(n) % 10, name=name)


@pytest.fixture(scope="module")
def digits(mnist5k):
    """800 mnist-5k digits, 80 per class (the split is sorted by class), named mnist-5k, ids 0..799."""
    images, labels = mnist5k
    return from_arrays(images[::5], labels[::5], name="mnist-5k")


def flag(data, kind):
    return torch.tensor(data.meta[kind].to_numpy())


def by_id(data):
    return {int(i): r for r, i in enumerate(torch.from_numpy(data.ids))}


def assert_same(a: Samples, b: Samples):
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert torch.equal(torch.from_numpy(a.ids), torch.from_numpy(b.ids)) and torch.equal(a.clean_labels, b.clean_labels)
    pd.testing.assert_frame_equal(a.meta, b.meta)


def assert_untouched(before: Samples, after: Samples, kind: str):
    """Every unflagged sample of ``after`` that existed before has its image, label and clean label unchanged."""
    old = by_id(before)
    rows = [r for r in np.flatnonzero(~after.meta[kind].to_numpy()) if int(torch.from_numpy(after.ids)[r]) in old]
    src = torch.tensor([old[int(torch.from_numpy(after.ids)[r])] for r in rows])
    rows = torch.tensor(rows)
    assert torch.equal(after.images[rows], before.images[src])
    assert torch.equal(after.labels[rows], before.labels[src])
    assert torch.equal(after.clean_labels[rows], before.clean_labels[src])


def test_exact_count_rounds_half_up_on_the_decimal():
    assert exact_count(0.15, 10) == 2 and exact_count(0.25, 10) == 3 and exact_count(0.35, 10) == 4
    assert exact_count(0.05, 4000) == 200 and exact_count(0.0149, 100) == 1 and exact_count(0.014, 100) == 1
    assert exact_count(0, 7) == 0 and exact_count(1, 7) == 7 and exact_count(0.5, 5) == 3
    for bad in (-0.1, 1.5, float("nan"), "0.1", True):
        with pytest.raises(ValueError, match="fraction must be a number between 0 and 1"):
            exact_count(bad, 10)


def test_registry_and_dispatch():
    assert list(HARDNESS_TYPES) == ["mixed", "uniform_noise", "class_noise", "atypical", "near_ood", "far_ood",
                                    "near_duplicates", "rare_class"]
    assert all(callable(t.fn) and t.description and "\n" not in t.description for t in HARDNESS_TYPES.values())
    data = synthetic()
    assert_same(inject(data, "near_ood", 0.1, 3), near_ood(data, 0.1, 3))
    with pytest.raises(ValueError, match="Unknown hardness type 'label_noise'.*uniform_noise"):
        inject(data, "label_noise", 0.1, 0)


@pytest.mark.parametrize("kind", PER_SAMPLE + ["near_duplicates"])
@pytest.mark.parametrize("fraction", [0.0, 0.15, 0.333])
def test_exact_counts_and_stable_ids(kind, fraction):
    data = synthetic(n=210)
    out = inject(data, kind, fraction, 7, **KWARGS.get(kind, {}))
    k = exact_count(fraction, 210)
    assert int(out.meta[kind].sum()) == k and types(out) == (kind,)
    assert out.history[-1]["count"] == k and out.history[-1]["type"] == kind
    assert len(np.unique(out.ids)) == len(out)
    assert np.array_equal(out.meta.index.to_numpy(), out.ids)
    n_new = k if kind == "near_duplicates" else 0
    assert len(out) == 210 + n_new and torch.equal(torch.from_numpy(out.ids)[:210], torch.from_numpy(data.ids))
    assert_untouched(data, out, kind)
    # the input is never modified
    assert torch.equal(data.labels, torch.arange(210) % 10) and types(data) == ()
    assert torch.equal(data.images, synthetic(n=210).images)


@pytest.mark.parametrize("kind", PER_SAMPLE + ["near_duplicates", "rare_class"])
def test_deterministic_in_seed(kind):
    data = synthetic()
    kw = KWARGS.get(kind, {})
    a, b, c = (inject(data, kind, 0.2, s, **kw) for s in (11, 11, 12))
    assert_same(a, b)
    assert not a.meta.equals(c.meta) or not torch.equal(a.images, c.images)
    state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    inject(data, kind, 0.2, 11, **kw)  # the global RNGs are not used
    assert torch.equal(torch.random.get_rng_state(), state[0]) and np.array_equal(np.random.get_state()[1], state[1])


def test_uniform_noise_never_keeps_the_label():
    data = synthetic(n=1000)
    out = uniform_noise(data, 0.5, 0)
    flipped = flag(out, "uniform_noise")
    assert torch.equal(out.labels != data.labels, flipped)
    assert torch.equal(out.clean_labels, data.labels)
    assert set(out.labels[flipped].tolist()) == set(range(10))  # every class is reachable


def test_class_noise_flips_to_the_partner(digits):
    out = class_noise(digits, 0.2, 1)
    flipped = flag(out, "class_noise")
    assert int(flipped.sum()) == exact_count(0.2, 800)
    assert torch.equal(out.labels != digits.labels, flipped)
    partner = {a: b for p in CLASS_PAIRS["mnist"] for a, b in (p, p[::-1])}
    assert all(partner[int(c)] == int(n) for c, n in zip(digits.labels[flipped], out.labels[flipped]))
    # a one-way dict, a custom list, and the errors
    out = class_noise(digits, 0.05, 1, pairs={2: 0})
    changed = out.labels != digits.labels
    assert (digits.labels[changed] == 2).all() and (out.labels[changed] == 0).all()
    unnamed = from_arrays(digits.images, digits.labels)
    with pytest.raises(ValueError, match=r"no confusable-class table for dataset None.*pass pairs="):
        class_noise(unnamed, 0.1, 0)
    with pytest.raises(ValueError, match="class 7 appears in two pairs"):
        class_noise(digits, 0.1, 0, pairs=[(1, 7), (7, 2)])
    with pytest.raises(ValueError, match="only .* samples of paired classes are eligible"):
        class_noise(digits, 0.5, 0, pairs=[(0, 2)])  # classes 0 and 2 are about a fifth of the data


def test_atypical_zoom_and_shift(digits):
    out = atypical(digits, 0.25, 2)
    flag = out.meta["atypical"].to_numpy()
    kinds = out.meta["atypical_kind"].to_numpy()
    k = exact_count(0.25, 800)
    assert flag.sum() == k and (kinds == "zoom").sum() == k - k // 2 and (kinds == "shift").sum() == k // 2
    assert torch.equal(out.labels, digits.labels)
    changed = (out.images != digits.images).flatten(1).any(1).numpy()
    assert np.array_equal(changed, flag)
    zoomed = np.flatnonzero(kinds == "zoom")
    expected = F.interpolate(digits.images[zoomed][:, :, 6:22, 6:22], size=(28, 28), mode="bilinear",
                             align_corners=False)  # 28 / 1.75 = 16: the centre 16 x 16
    assert torch.allclose(out.images[zoomed], expected)
    for r in np.flatnonzero(kinds == "shift"):
        x, y = digits.images[r, 0], out.images[r, 0]
        right, left = torch.zeros_like(x), torch.zeros_like(x)
        right[:, 10:], left[:, :-10] = x[:, :-10], x[:, 10:]
        assert torch.equal(y, right) or torch.equal(y, left)
    only = atypical(digits, 0.1, 2, kind="shift")
    assert set(only.meta["atypical_kind"]) == {"", "shift"}


def test_near_ood_is_strong_noise_clamped_to_the_pixel_range(digits):
    out = near_ood(digits, 0.1, 3)
    rows = flag(out, "near_ood")
    diff = (out.images[rows] - digits.images[rows]).abs()
    assert 0.2 < diff.mean() < 0.5 and torch.equal(out.images[~rows], digits.images[~rows])   # the others untouched
    background = digits.images[rows] == 0        # noise of std 0.5 on a 0 pixel: clamped to exactly 0 half the time
    assert 0.4 < (out.images[rows][background] == 0).float().mean() < 0.6
    assert torch.equal(out.labels, digits.labels)
    softer = near_ood(digits, 0.1, 3, sigma=0.1)
    assert (softer.images[rows] - digits.images[rows]).abs().mean() < diff.mean() / 2


def test_far_ood_images_come_from_the_pool(digits):
    out = far_ood(digits, 0.1, 4, ood_images=OOD)
    rows = np.flatnonzero(out.meta["far_ood"].to_numpy())
    idx = out.meta["ood_index"].to_numpy()[rows]
    assert len(rows) == 80 and len(set(idx)) == 80  # drawn without replacement
    assert torch.equal(out.images[rows], OOD[idx])
    assert (out.clean_labels[rows] == -1).all() and out.labels.min() >= 0 and out.labels.max() <= 9
    assert len(set(out.labels[rows].tolist())) > 5  # random labels
    with pytest.raises(ValueError, match="ood_images holds only 400"):
        far_ood(digits, 0.6, 4, ood_images=OOD)
    with pytest.raises(ValueError, match=r"ood_images must be a float tensor \[M, 1, 28, 28\]"):
        far_ood(digits, 0.1, 4, ood_images=torch.rand(100, 3, 32, 32))


def test_near_duplicates_are_close_new_samples(digits):
    out = near_duplicates(digits, 0.1, 5)
    k = 80
    assert len(out) == 800 + k and torch.equal(out.images[:800], digits.images)
    assert torch.equal(torch.from_numpy(out.ids)[800:], torch.arange(800, 800 + k))
    assert out.meta["near_duplicates"].to_numpy().nonzero()[0].tolist() == list(range(800, 800 + k))
    src = np.array(out.meta["source_id"].to_numpy()[800:])
    assert len(set(src)) == k and (out.meta["source_id"].to_numpy()[:800] == -1).all()
    assert torch.equal(out.labels[800:], digits.labels[src]) and torch.equal(out.clean_labels[800:], digits.labels[src])
    copies, sources = out.images[800:, 0], digits.images[src, 0]
    assert (copies - sources).abs().max() < 0.15  # sigma 0.02: about 5 sigma at most over 80 x 784 pixels
    assert (copies[sources == 0] == 0).all()   # the background stays black: no speckle to give copies away
    nearest = torch.cdist(copies.flatten(1), digits.images[:, 0].flatten(1)).argmin(1)
    assert np.array_equal(nearest.numpy(), src)  # each copy is its source's nearest neighbour
    # shift=1: copies translated by up to 1 px, close to their source once the shift is undone
    out = near_duplicates(digits, 0.1, 5, shift=1)
    src = np.array(out.meta["source_id"].to_numpy()[800:])
    copies, sources = out.images[800:, 0], digits.images[src, 0]
    assert (copies - sources).abs().max() > 0.5
    best = torch.full((k,), float("inf"))
    for dy in (-1, 0, 1):  # undo the +-1 px jitter: what is left is the small noise
        for dx in (-1, 0, 1):
            moved = torch.roll(sources, (dy, dx), dims=(1, 2))
            best = torch.minimum(best, (copies - moved)[:, 2:-2, 2:-2].abs().flatten(1).amax(1))
    assert best.max() < 0.15


def test_rare_class_keeps_the_right_number(digits):
    out = rare_class(digits, 0.05, 6, cls=3)
    n3 = int((digits.labels == 3).sum())
    kept = exact_count(0.05, n3)
    assert int((out.labels == 3).sum()) == kept == int(out.meta["rare_class"].sum())
    assert (out.labels[flag(out, "rare_class")] == 3).all()
    assert len(out) == 800 - n3 + kept and out.history[-1]["cls"] == 3
    assert_untouched(digits, out, "rare_class")
    others = torch.from_numpy(digits.ids)[digits.labels != 3]
    assert set(others.tolist()) <= set(out.ids.tolist())
    drawn = rare_class(digits, 0.02, 6).history[-1]
    assert drawn["cls"] in range(10) and drawn == rare_class(digits, 0.02, 6).history[-1]
    assert int(drawn["count"]) == exact_count(0.02, 80) == 2
    with pytest.raises(ValueError, match="cls must be one of the classes present"):
        rare_class(from_arrays(digits.images[:10], torch.zeros(10, dtype=torch.long), num_classes=10), 0.1, 0, cls=4)


def test_mixed_matched_mode(digits):
    out = mixed(digits, 0.05, 91)
    k = 40
    flag = out.meta["mixed"].to_numpy()
    assert len(out) == 800 - k and flag.sum() == k
    partners = out.meta["partner_id"].to_numpy()
    assert (partners[~flag] == -1).all() and not set(partners[flag]) & set(out.ids.tolist())
    assert (np.diff(out.ids) > 0).all()  # input order kept
    assert torch.equal(out.labels, digits.labels[torch.from_numpy(out.ids)])
    assert torch.equal(out.clean_labels, digits.labels[torch.from_numpy(out.ids)])
    sources = {np.sort(x).tobytes() for x in digits.images.flatten(1).numpy()}   # matched: a clean image's pixels
    assert all(np.sort(x).tobytes() in sources for x in out.images.flatten(1).numpy())
    with pytest.raises(ValueError, match="mixed must be applied first"):
        mixed(uniform_noise(digits, 0.1, 0), 0.05, 91)
    with pytest.raises(ValueError, match="at most 0.49"):
        mixed(digits, 0.5, 91)


def test_composition_keeps_flags_consistent(digits):
    steps = [("mixed", 0.04), ("uniform_noise", 0.05), ("class_noise", 0.05), ("atypical", 0.05),
             ("near_ood", 0.05), ("far_ood", 0.05), ("near_duplicates", 0.05), ("rare_class", 0.1)]
    data = digits
    for i, (kind, fraction) in enumerate(steps):
        n_before = len(data)
        data = inject(data, kind, fraction, i, **KWARGS.get(kind, {}))
        if kind not in ("mixed", "rare_class"):
            assert int(data.meta[kind].sum()) == exact_count(fraction, n_before)
    applied = data.meta[list(types(data))].to_numpy()
    assert applied.sum(1).max() == 1  # disjoint by default: at most one type per sample
    noisy = flagged(data, "uniform_noise", "class_noise", "far_ood")
    assert torch.equal(data.labels != data.clean_labels, noisy & (data.labels != data.clean_labels))
    assert torch.equal((data.labels != data.clean_labels) | flagged(data, "far_ood"), noisy)
    assert type_counts(data)["total"] == len(data) and list(type_counts(data).index[:-1]) == [s for s, _ in steps]
    assert len(np.unique(data.ids)) == len(data)
    # near-duplicates point at a sample that existed (or was removed by rare_class), and copy its label
    dup = data.meta["near_duplicates"].to_numpy()
    pos = by_id(data)
    for r in np.flatnonzero(dup):
        s = int(data.meta["source_id"].iloc[r])
        if s in pos:
            assert data.labels[r] == data.labels[pos[s]]


def test_composition_without_mixing_keeps_untouched_samples(digits):
    data = uniform_noise(digits, 0.1, 1)
    data = atypical(data, 0.1, 2)
    data = near_duplicates(data, 0.1, 3)
    old = by_id(digits)
    clean = np.flatnonzero(~flagged(data).numpy())
    src = torch.tensor([old[int(i)] for i in torch.from_numpy(data.ids)[clean]])
    assert torch.equal(data.images[clean], digits.images[src]) and torch.equal(data.labels[clean], digits.labels[src])
    # overlap=True may stack types on one sample; a copy inherits its source's flags
    both = atypical(uniform_noise(digits, 0.5, 1), 0.5, 2, overlap=True)
    assert bool((flagged(both, "uniform_noise") & flagged(both, "atypical")).any())
    dup = near_duplicates(uniform_noise(digits, 0.5, 1), 0.5, 3, overlap=True)
    copies = dup.meta.iloc[800:]
    src_noisy = dup.meta.loc[copies["source_id"].to_numpy(), "uniform_noise"].to_numpy()
    assert np.array_equal(copies["uniform_noise"].to_numpy(), src_noisy)
    with pytest.raises(ValueError, match=r"not yet flagged; pass overlap=True"):
        atypical(uniform_noise(digits, 0.6, 1), 0.5, 2)


def test_three_channel_images():
    data = synthetic(n=300, shape=(3, 32, 32), name="cifar10")
    data = mixed(data, 0.05, 1, mode="seed")  # matched mode is single-channel only
    clean = ~flagged(data).numpy()
    g = torch.Generator().manual_seed(0)
    original = torch.rand(300, 3, 32, 32, generator=g)
    assert torch.equal(data.images[clean], original[torch.from_numpy(data.ids)[clean]])  # seed mode: clean images unchanged
    pool = torch.rand(50, 3, 32, 32)
    for kind, kw in [("class_noise", {}), ("atypical", {}), ("near_ood", {}), ("far_ood", {"ood_images": pool}),
                     ("uniform_noise", {}), ("near_duplicates", {}), ("rare_class", {})]:
        data = inject(data, kind, 0.1, 2, **kw)
    assert data.images.shape[1:] == (3, 32, 32) and data.meta[list(types(data))].to_numpy().sum(1).max() == 1
    with pytest.raises(ValueError, match="single-channel"):
        mixed(synthetic(n=100, shape=(3, 32, 32), name="cifar10"), 0.05, 1)


def test_clear_errors():
    data = synthetic(n=100)
    bad = torch.rand(100, 1, 28, 28)
    bad[3, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="images hold 1 non-finite values"):
        from_arrays(bad, torch.zeros(100, dtype=torch.long))
    with pytest.raises(ValueError, match=r"images must be a non-empty float tensor \[N, C, H, W\]"):
        from_arrays(torch.rand(100, 28, 28), torch.zeros(100, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must be 100 integers"):
        from_arrays(torch.rand(100, 1, 28, 28), torch.zeros(99, dtype=torch.long))
    with pytest.raises(ValueError, match="sample ids are not unique"):
        from_arrays(torch.rand(3, 1, 4, 4), torch.tensor([0, 1, 1]), ids=[5, 5, 6])
    for kind in HARDNESS_TYPES:
        with pytest.raises(ValueError, match="fraction must be a number between 0 and 1"):
            inject(data, kind, 1.2, 0, **KWARGS.get(kind, {}))
        with pytest.raises(ValueError, match="seed must be an integer"):
            inject(data, kind, 0.1, -1, **KWARGS.get(kind, {}))
    with pytest.raises(ValueError, match="uniform_noise with fraction=0.6 needs 60 of the 100 samples, but only 50"):
        uniform_noise(near_ood(data, 0.5, 0), 0.6, 0)
    with pytest.raises(ValueError, match="Unknown atypical kind 'crop'"):
        atypical(data, 0.1, 0, kind="crop")
    with pytest.raises(ValueError, match="shift must be an integer number of pixels in 1..27"):
        atypical(data, 0.1, 0, shift=28)
    with pytest.raises(ValueError, match="needs labeled Samples from from_arrays"):
        near_ood(data.images, 0.1, 0)


def test_seed_check_is_one_helper_with_one_sentence():
    """Every seeded draw (inject, flip_labels, select, the labeling rules) refuses a bad seed through one check."""
    from utils.data.mixing import flip_labels
    from utils.metrics.checks import check_seed
    from utils.scores.selection import select

    assert check_seed(np.int64(7)) == 7 and type(check_seed(np.int64(7))) is int
    for bad in (-1, 2 ** 32, 1.0, True, "3"):
        with pytest.raises(ValueError, match=r"^seed must be an integer in 0\.\.2\*\*32-1, got .*\.$"):
            check_seed(bad)
    with pytest.raises(ValueError, match="seed must be an integer in 0..2"):
        flip_labels(torch.tensor([0, 1, 2]), 0.5, seed=-1)
    with pytest.raises(ValueError, match="seed must be an integer in 0..2"):
        select(pd.Series([0.1, 0.2], index=[1, 2]), 0.5, "random", seed=True)
