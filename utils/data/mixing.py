"""Artificial hard samples ("mixed" two-digit images) and label noise, with known ground truth.

`make_mixed` overlays pairs of images so that a detector of hard samples has known positives;
`flip_labels` makes known mislabeled samples. Both are deterministic in their seed.
"""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import torch

from utils.data.datasets import DatasetInfo, check_images, dataset_info
from utils.data.samples import Samples
from utils.metrics.checks import check_seed

SUM_SCALE = 1.58  # the original study's constant; its mean and std are dataset_info("mnist")
MODES = ("seed", "matched")


def original_layout(n: int, fraction: float, seed: int):
    """The original study's sample layout: (kept source indices in sample order, pairs [K,2]).

    A seeded shuffle of range(n) (identical to the original's np.random.seed + np.random.shuffle);
    the last len_aug = int(fraction*n) (made even) indices form the pool, whose first half is paired
    element-wise with its second half; the first n - len_aug//2 permuted indices are kept, so the
    K = len_aug//2 mixed samples come last and the partners are dropped."""
    perm = np.arange(n)
    np.random.RandomState(seed).shuffle(perm)
    len_aug = int(fraction * n) // 2 * 2
    if len_aug < 2:
        raise ValueError(f"fraction={fraction} of {n} images makes no pair; use a larger fraction or more images.")
    pool = perm[n - len_aug:]
    pairs = np.stack([pool[: len_aug // 2], pool[len_aug // 2:]], axis=1)
    return perm[: n - len_aug // 2], pairs


def make_mixed(images, labels, fraction: float = 0.1, mode: str = "seed", seed: int = 91,
               info: DatasetInfo | str | None = None) -> Samples:
    """Replace ``fraction`` of the images by pairwise mixtures (layout: `original_layout`).

    Returns :class:`utils.data.samples.Samples` whose ids are the input positions of the kept (first) source
    images, in sample order (clean first, the mixed ones last); ``meta`` holds ``mixed`` (bool),
    ``partner_id`` (input position of the dropped second source, -1 for clean images) and ``partner_label``
    (its label, -1 otherwise); ``history`` records the mode, fraction and seed.

    mode="seed" reproduces the original study exactly: a mixed image is (z_a + z_b) / 1.58 with
    z = info.standardize(x) per channel, stored back in pixel space (z * std + mean) WITHOUT clamping.
    ``info`` (a :class:`utils.data.datasets.DatasetInfo` or a known dataset name) defaults to
    ``dataset_info("mnist")``, the original study's constants, for any single-channel data; give the
    matching one for other channel counts (e.g. ``dataset_info("cifar10")`` or
    ``DatasetInfo.from_images(images)``). On MNIST a mixed image's background is -0.0347 in pixel space
    (-0.537 once standardised, against -0.424 for clean images) and its strokes are dimmer: that global
    intensity confound, which makes mixed images trivially detectable, is reproduced on purpose. Clean
    images are returned unchanged.

    mode="matched" removes the intensity confound (same layout, ids and pairs; [0, 1] pixels; clean
    images are processed too, as a control; single-channel images only): see `_matched_images` for
    how, and the image battery (`utils.scores.battery.image_battery`, scored against the mixed flags) to check it
    (every intensity AUROC <= 0.52 on MNIST).
    """
    x = check_images(images)
    y = torch.as_tensor(labels)
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"labels must be a flat tensor of length {len(x)} (one per image), "
                         f"got shape {tuple(y.shape)}.")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction}.")
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}: choose 'seed' or 'matched'.")
    info = dataset_info("mnist") if info is None else dataset_info(info) if isinstance(info, str) else info
    if mode == "seed" and info.channels != x.shape[1]:
        raise ValueError(f"images have {x.shape[1]} channel(s) but info describes {info.name} with "
                         f"{info.channels}; pass info=DatasetInfo.from_images(images) or the dataset's own info.")
    x, y = x.float(), y.long()
    kept, pairs = original_layout(len(x), fraction, seed)
    n_clean, k = len(kept) - len(pairs), len(pairs)
    a, b = torch.from_numpy(pairs[:, 0]), torch.from_numpy(pairs[:, 1])
    if mode == "seed":
        xa, xb = x[a].double(), x[b].double()
        mean, std = info.mean_std(xa)
        z = info.standardize(xa) + info.standardize(xb)
        mixed = (z / SUM_SCALE * std + mean).float()
        out = torch.cat([x[torch.from_numpy(kept[:n_clean])], mixed])
    else:
        out = _matched_images(x, torch.from_numpy(kept[:n_clean]), a, b, seed)
    is_mixed = np.zeros(len(kept), dtype=bool)
    is_mixed[n_clean:] = True
    partner = np.full(len(kept), -1, dtype=np.int64)
    partner[n_clean:] = pairs[:, 1]
    partner_label = np.full(len(kept), -1, dtype=np.int64)
    partner_label[n_clean:] = y[b].numpy()
    ids = torch.from_numpy(kept).long()
    meta = pd.DataFrame({"mixed": is_mixed, "partner_id": partner, "partner_label": partner_label},
                        index=pd.Index(kept.astype(np.int64), name="sample_id"))
    return Samples(out, y[ids], kept, meta, num_classes=int(y.max()) + 1,
                   history=({"type": "mixed", "mode": mode, "fraction": fraction, "seed": seed},))


def mixed_pairs(samples: Samples) -> torch.Tensor:
    """``[K, 2]`` int64 (first source id, partner id) of the mixed samples of :func:`make_mixed`, in sample order."""
    m = samples.meta
    rows = m["mixed"].to_numpy(bool)
    return torch.from_numpy(np.stack([samples.ids[rows], m["partner_id"].to_numpy(np.int64)[rows]], axis=1))


def _matched_images(x, clean_idx, a, b, seed, chunk=8192):
    """Mixed and clean images with identical intensity statistics (mode="matched"), [0, 1] pixels.

    1. Combine: m = max(x_a, x_b) pixel-wise, so both digits keep full-intensity strokes.
    2. References: every output image (clean ones too) takes the exact pixel histogram of a clean
       reference image. The mixed and the clean references are systematic samples over the ink
       rank of all N input images, so both classes draw from the same ink quantiles. Mixed images
       get references in their own ink order (the inkiest mixture the inkiest reference, to thin as
       little as possible); clean images get them at random, so clean strokes are thickened or
       thinned by random factors too (a processing control: clean images are NOT the raw digits).
    3. Exact histogram specification: the reference's sorted values are placed in the order of a
       smooth key, 2 * skeleton + edge-damped Gaussian blur + 1e-3 * pixel value. The skeleton
       (Zhang-Suen thinning of pixels > 0.5) comes first, so a mixture thinned to one digit's ink
       budget keeps every stroke of both digits, connected; then pixels by closeness to ink, so
       strokes thin or grow evenly; no raster-order ties (no stripes); the blur is damped near the
       image edge so that growing strokes do not spill into the border rows.
    Two digits in one digit's ink budget do have thinner strokes and more stroke length: that
    shape difference is real (see `utils.scores.battery.shape_stats`), the intensity ones are gone.
    """
    if x.shape[1] != 1:
        raise ValueError(f"mode='matched' needs single-channel images, got {x.shape[1]} channels; use mode='seed'.")
    rng = np.random.default_rng(seed)
    g = x[:, 0].clamp(0, 1)
    k, n_clean = len(a), len(clean_idx)
    ref_mixed, ref_clean = _stratified_references(g.flatten(1).mean(1).numpy(), k, n_clean, rng)
    src = torch.cat([g[clean_idx], torch.maximum(g[a], g[b])])
    ink_order = src[n_clean:].flatten(1).mean(1).numpy().argsort(kind="stable")
    refs = np.empty(n_clean + k, dtype=np.int64)
    refs[:n_clean] = rng.permutation(ref_clean)
    refs[n_clean + ink_order] = ref_mixed  # ref_mixed is sorted by ink
    out = torch.cat([_specify(src[i:i + chunk], g[refs[i:i + chunk]]) for i in range(0, len(src), chunk)])
    return out[:, None]


def _stratified_references(ink, k, n_clean, rng):
    """k and n_clean distinct reference indices, each a systematic sample over the ink rank (k sorted by ink)."""
    order = rng.permutation(len(ink))
    order = order[np.argsort(ink[order], kind="stable")]  # ink rank, ties in random order

    def pick(n_from, n):  # n evenly spaced positions out of n_from, with a random offset
        return np.floor((np.arange(n) + rng.uniform()) * n_from / n).astype(np.int64)

    at_mixed = pick(len(order), k)
    rest = np.delete(order, at_mixed)
    return order[at_mixed], rest[pick(len(rest), n_clean)]


def _specify(src, ref):
    """Give each src image [K,H,W] the exact pixel histogram of its ref, in the order of a smooth key."""
    key = 2 * _skeleton(src > 0.5) + _blur(src, 1.0) * _edge_weight(*src.shape[-2:], 3) + 1e-3 * src
    order = key.flatten(1).argsort(dim=1, stable=True)
    out = torch.empty_like(order, dtype=src.dtype)
    out.scatter_(1, order, ref.flatten(1).sort(dim=1).values)
    return out.view_as(src)


def _gauss(n, sigma):
    """[n, n] zero-padded Gaussian smoothing matrix: rows are the kernel, not renormalised at the edges."""
    d = torch.arange(n, dtype=torch.float32)
    g = torch.exp(-(d[:, None] - d[None]) ** 2 / (2 * sigma ** 2))
    return g / torch.exp(-torch.arange(-n + 1, n, dtype=torch.float32) ** 2 / (2 * sigma ** 2)).sum()


def _blur(img, sigma):
    """Separable Gaussian blur of [K,H,W] with zero padding, as two matrix products (fast for small images)."""
    return _gauss(img.shape[-2], sigma) @ img @ _gauss(img.shape[-1], sigma).T


def _edge_weight(h, w, ramp):
    """1 inside, falling linearly to 1/ramp on the outermost rows and columns."""
    def ramp_of(n):
        d = torch.arange(n)
        return ((torch.minimum(d, n - 1 - d) + 1) / ramp).clamp(max=1)
    return ramp_of(h)[:, None] * ramp_of(w)[None]


_NEIGHBOURS = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]  # P2..P9, clockwise


@functools.cache
def _zhang_suen_tables():
    """For each of the two sub-iterations, which 8-neighbour codes make a pixel deletable."""
    tables = []
    for sub in (0, 1):
        t = torch.zeros(256, dtype=torch.bool)
        for code in range(256):
            p = [(code >> i) & 1 for i in range(8)]
            n_on = sum(p)
            transitions = sum(p[i] == 0 and p[(i + 1) % 8] == 1 for i in range(8))
            p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
            side = (p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0) if sub == 0 else (p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0)
            t[code] = 2 <= n_on <= 6 and transitions == 1 and side
        tables.append(t)
    return tables


def _skeleton(mask, max_iter=50):
    """Zhang-Suen thinning of a boolean batch [K,H,W] to one-pixel-wide, connected strokes (float 0/1)."""
    m = mask.to(torch.uint8)
    h, w = m.shape[-2:]
    active = torch.arange(len(m))  # images still changing
    for _ in range(max_iter):
        changed = torch.zeros(len(active), dtype=torch.bool)
        for table in _zhang_suen_tables():
            sub = m[active]
            p = torch.nn.functional.pad(sub, (1, 1, 1, 1))
            code = sum(p[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] * (1 << i) for i, (dy, dx) in enumerate(_NEIGHBOURS))
            delete = (sub == 1) & table[code.long()]
            m[active] = sub * ~delete
            changed |= delete.flatten(1).any(1)
        active = active[changed]
        if len(active) == 0:
            break
    return m.to(torch.float32)


def other_class(y: torch.Tensor, rng: np.random.Generator, num_classes: int) -> torch.Tensor:
    """Each label moved to a class drawn uniformly among the ``num_classes - 1`` others (never itself)."""
    return (y + torch.from_numpy(rng.integers(1, num_classes, size=len(y))).long()) % num_classes


def flip_labels(labels, fraction: float, seed: int, num_classes: int | None = None):
    """Flip exactly round(fraction * N) labels (round half up) to a wrong class.

    The flipped samples are drawn without replacement and each new class uniformly among the
    C - 1 other classes (unlike the SSFT code's (y + r) % C with r in 1..C-2, which never picks
    y - 1). Deterministic in ``seed``. Returns (new_labels int64 [N], flipped bool [N])."""
    y = torch.as_tensor(labels)
    if y.ndim != 1 or y.is_floating_point() or len(y) == 0:
        raise ValueError(f"labels must be a non-empty flat integer tensor, got {y.dtype} {tuple(y.shape)}.")
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must lie between 0 and 1, got {fraction}.")
    check_seed(seed)
    y = y.long()
    c = int(y.max()) + 1 if num_classes is None else int(num_classes)
    if c < 2 or int(y.min()) < 0 or int(y.max()) >= c:
        raise ValueError(f"labels must lie in 0..{c - 1} with at least 2 classes; pass the right num_classes.")
    rng = np.random.default_rng(seed)
    k = int(np.floor(fraction * len(y) + 0.5))
    idx = torch.from_numpy(rng.choice(len(y), size=k, replace=False)).long()
    new = y.clone()
    new[idx] = other_class(y[idx], rng, c)
    flipped = torch.zeros(len(y), dtype=torch.bool)
    flipped[idx] = True
    return new, flipped
