"""Inject known hardness into an image dataset: eight types, exact counts, a ground-truth flag per sample id.

A functional API in the style of cleanlab. Wrap tensors with :func:`from_arrays` (or :func:`from_dataset`),
then apply any of the types; each takes a :class:`utils.data.samples.Samples` and returns a new one, so types
compose::

    data = from_dataset("mnist-5k")
    data = inject(data, "mixed", 0.05, seed=1)             # first: it re-processes every image
    data = inject(data, "uniform_noise", 0.10, seed=2)
    data = inject(data, "atypical", 0.05, seed=3)
    data = inject(data, "near_duplicates", 0.05, seed=4)
    data.meta                                             # flags and provenance, indexed by sample_id
    type_counts(data)                                     # samples per type

Conventions shared by every type (see ``HARDNESS_TYPES`` for one line on each):

* Counting rule: ``fraction`` f of the current N samples affects exactly k = floor(f * N + 1/2) samples
  (round half up, computed exactly on the decimal value of f, so 0.15 of 10 is 2; see :func:`exact_count`).
  For ``rare_class`` f is the share of the chosen class that is kept; for ``mixed`` k is the number of
  mixed images, each of which consumes two samples.
* Disjoint by default: samples are drawn uniformly, without replacement, among the samples that no type has
  flagged yet, so every sample carries at most one hardness type and per-type ground truth stays clean.
  ``overlap=True`` draws among all eligible samples instead (a flag then means "this was applied").
  Asking for more samples than are eligible is an error, never a silent shortfall.
* Deterministic in ``seed`` (a non-negative integer): a ``numpy.random.default_rng`` seeded with the seed
  and the type's name (so one seed gives unrelated draws in different types) and a ``torch.Generator``
  seeded from it. The global RNGs are never touched.
* Sample ids are stable: a sample keeps its id, image and label unless its type changes them. New samples
  (near-duplicate copies) get new ids above the current maximum; removed samples (partners of mixed images,
  the cut part of a rare class) disappear with their ids.
* ``meta``: one bool column per type applied, plus provenance columns: ``partner_id`` (mixed: the id of
  the dropped second source), ``atypical_kind`` ("zoom" or "shift"), ``ood_index`` (far_ood: row of the
  ``ood_images`` pool), ``source_id`` (near_duplicates: the id of the copied sample); -1 or "" elsewhere.
* ``meta["clean_label"]`` (``Samples.clean_labels``): the true class; -1 for far-OOD samples, which have none.
* Pixels are assumed in [0, 1]: noise is clamped to that range.
"""
from __future__ import annotations

import zlib
from dataclasses import replace
from fractions import Fraction
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from utils.data.datasets import DATASET_INFO, DatasetInfo, check_images, load_dataset
from utils.data.mixing import make_mixed, other_class
from utils.data.samples import Samples
from utils.metrics.checks import check_seed, is_integer, is_number

__all__ = ["from_arrays", "types", "flagged", "type_counts", "from_dataset", "exact_count", "inject", "mixed",
           "uniform_noise", "class_noise", "atypical", "near_ood", "far_ood", "near_duplicates", "rare_class", "CLASS_PAIRS",
           "HARDNESS_TYPES", "HardnessType"]

# Confusable classes for class-dependent noise: a pair (a, b) flips a -> b and b -> a.
CLASS_PAIRS = {
    "mnist": ((1, 7), (3, 8), (5, 6), (4, 9)),
    # 0 T-shirt/top, 6 shirt; 2 pullover, 4 coat; 7 sneaker, 9 ankle boot
    "fashion-mnist": ((0, 6), (2, 4), (7, 9)),
    # 3 cat, 5 dog; 1 automobile, 9 truck; 4 deer, 7 horse; 0 airplane, 2 bird
    "cifar10": ((3, 5), (1, 9), (4, 7), (0, 2)),
}
CLASS_PAIRS["mnist-5k"] = CLASS_PAIRS["mnist"]

_DETAIL_COLUMNS = {"partner_id": -1, "atypical_kind": "", "ood_index": -1, "source_id": -1}


def _fail(message: str):
    raise ValueError(message)


def types(data: Samples) -> tuple[str, ...]:
    """Names of the hardness types applied so far (their bool columns in ``data.meta``)."""
    return tuple(c for c in data.meta.columns if c in HARDNESS_TYPES)


def flagged(data: Samples, *kinds: str) -> torch.Tensor:
    """bool [N]: samples flagged by any of the hardness types ``kinds`` (default: any type applied)."""
    unknown = [t for t in kinds if t not in HARDNESS_TYPES]
    if unknown:
        _fail(f"Unknown hardness type(s) {unknown}: choose from {', '.join(HARDNESS_TYPES)}.")
    cols = [t for t in (kinds or types(data)) if t in data.meta.columns]
    return data.flag(*cols) if cols else torch.zeros(len(data), dtype=torch.bool)


def type_counts(data: Samples) -> pd.Series:
    """Number of samples flagged by each type applied, and the total sample count."""
    counts = {t: int(data.meta[t].sum()) for t in types(data)}
    return pd.Series({**counts, "total": len(data)}, name="samples")


def from_arrays(images, labels, ids=None, *, name: str | None = None, num_classes: int | None = None) -> Samples:
    """Wrap clean data: images [N,C,H,W] float (converted to float32), labels [N] integer, ids [N] unique
    integers (default 0..N-1). name: the dataset's name, used to pick the class-pair table; num_classes:
    default the known dataset's, else labels.max() + 1. ``meta`` starts with the true class (``clean_label``)."""
    x = check_images(images)
    if labels is None:
        _fail("injecting hardness needs labels (the true classes); pass them with the images.")
    data = Samples(x, labels, ids, name=name, num_classes=num_classes)
    if data.num_classes is None or data.num_classes < 2:
        _fail(f"num_classes must be an integer >= 2, got {data.num_classes!r}.")
    meta = pd.DataFrame({"clean_label": data.labels.numpy().copy()}, index=pd.Index(data.ids, name="sample_id"))
    return replace(data, meta=meta)


def from_dataset(name: str, split: str = "train", root=None) -> Samples:
    """:func:`from_arrays` on ``utils.data.datasets.load_dataset(name, split, root)``; ids 0..N-1."""
    images, labels, info = load_dataset(name, split, root)
    return from_arrays(images, labels, name=name, num_classes=info.num_classes)


def exact_count(fraction: float, n: int) -> int:
    """floor(fraction * n + 1/2): round half up, exact on the decimal value of ``fraction``."""
    if not is_number(fraction) or not 0 <= fraction <= 1:
        _fail(f"fraction must be a number between 0 and 1, got {fraction!r}.")
    return int((Fraction(repr(float(fraction))) * int(n) + Fraction(1, 2)) // 1)


# ---------------------------------------------------------------- shared helpers


def _start(data, kind, fraction, seed, n=None):
    """Validate the common arguments; return (k, numpy rng, torch generator)."""
    if not isinstance(data, Samples) or data.labels is None or "clean_label" not in data.meta.columns:
        _fail(f"{kind} needs labeled Samples from from_arrays (or from_dataset), got {type(data).__name__}.")
    check_seed(seed)
    k = exact_count(fraction, len(data) if n is None else n)
    rng = np.random.default_rng([int(seed), zlib.crc32(kind.encode())])
    gen = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
    return k, rng, gen


def _eligible(data, overlap, extra=None) -> np.ndarray:
    """Positions that may be drawn: not flagged yet (unless overlap) and where ``extra`` is True."""
    ok = np.ones(len(data), dtype=bool) if overlap else ~flagged(data).numpy()
    return np.flatnonzero(ok if extra is None else ok & extra)


def _draw(rng, pool, k, kind, fraction, n, what="samples", overlap=False):
    if k > len(pool):
        hint = "" if overlap else " (not yet flagged; pass overlap=True to allow flagged ones)"
        _fail(f"{kind} with fraction={fraction} needs {k} of the {n} samples, but only {len(pool)} {what} "
              f"are eligible{hint}; ask for a fraction of at most {len(pool) / n:.4g}.")
    return np.sort(rng.choice(pool, size=k, replace=False))


def _flags(flags, kind, positions, **details) -> pd.DataFrame:
    """meta with column ``kind`` set at ``positions`` and each detail column set there to its values."""
    f = flags.copy()
    positions = np.asarray(positions, dtype=np.int64)
    mask = np.zeros(len(f), dtype=bool)
    mask[positions] = True
    f[kind] = (f[kind].to_numpy(dtype=bool) | mask) if kind in f.columns else mask
    for col, values in details.items():
        default = _DETAIL_COLUMNS[col]
        arr = f[col].to_numpy().copy() if col in f.columns else np.full(len(f), default, dtype=object
                                                                        if isinstance(default, str) else np.int64)
        arr[positions] = values
        f[col] = arr
    return f


def _done(data, kind, fraction, seed, k, meta, **changes) -> Samples:
    params = changes.pop("params", {})
    entry = {"type": kind, "fraction": fraction, "seed": int(seed), "count": int(k), **params}
    return replace(data, meta=meta, history=data.history + (entry,), **changes)


def _shift_x(x, offsets_x, offsets_y=None):
    """Translate each image [C,H,W] by its own integer offset (dx right, dy down), filling with zeros.

    Vectorised per distinct offset, not per sample."""
    dy_all = np.zeros(len(x), dtype=np.int64) if offsets_y is None else np.asarray(offsets_y)
    dx_all = np.asarray(offsets_x)
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    for dy, dx in set(zip(dy_all.tolist(), dx_all.tolist())):
        rows = torch.from_numpy(np.flatnonzero((dy_all == dy) & (dx_all == dx)))
        ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
        xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
        out[rows, :, yd, xd] = x[rows][:, :, ys, xs]
    return out


def _zoom(x, factor):
    """Centre zoom: crop the centre round(H/factor) x round(W/factor) and resize back (bilinear)."""
    h, w = x.shape[-2:]
    ch, cw = max(1, round(h / factor)), max(1, round(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[:, :, top:top + ch, left:left + cw]
    return F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)


# ---------------------------------------------------------------- the eight types


def mixed(data: Samples, fraction: float, seed: int, *, mode: str = "matched",
          info: DatasetInfo | str | None = None) -> Samples:
    """k mixed two-source images via ``utils.data.mixing.make_mixed`` (layout and pixels as there).

    Each mixed image keeps the id and label of its first source; its second source is dropped (its id is
    recorded as ``partner_id``), so N - k samples remain, in their input order. Needs 2k < N. Must come
    first: it draws pairs over all samples and, in mode="matched" (single-channel only), re-processes every
    image, clean ones included, as a control (make_mixed's docstring), so other types' images would be lost.
    mode="seed" (any channel count; ``info`` defaults to the dataset's own when its name is known) leaves
    clean images unchanged. Takes about 0.7 s per 1,000 images in mode="matched"."""
    k, _, _ = _start(data, "mixed", fraction, seed)
    if types(data) and bool(flagged(data).any()):
        _fail(f"mixed must be applied first (it re-processes every image and draws pairs over all samples), "
              f"but this dataset already has {', '.join(types(data))}; apply mixed before the other types.")
    n = len(data)
    if k == 0:
        return _done(data, "mixed", fraction, seed, 0, _flags(data.meta, "mixed", [], partner_id=[]),
                     params={"mode": mode})
    if 2 * k >= n:
        _fail(f"mixed with fraction={fraction} asks for {k} mixed images, which need {2 * k} of the {n} "
              f"samples; ask for a fraction of at most {(n - 1) // 2 / n:.4g}.")
    if info is None and mode == "seed" and data.name in DATASET_INFO:
        info = data.name
    m = make_mixed(data.images, data.labels, fraction=(2 * k + 0.5) / n, mode=mode, seed=int(seed), info=info)
    assert int(m.meta["mixed"].sum()) == k, "make_mixed's layout did not give the requested count"
    pos = m.ids   # input positions of the kept samples
    partner_pos = m.meta["partner_id"].to_numpy(np.int64)   # input position of the dropped partner, -1 if clean
    order = np.argsort(pos, kind="stable")  # back to input order
    pos, partner_pos = pos[order], partner_pos[order]
    ids = data.ids
    is_mixed = np.flatnonzero(partner_pos >= 0)
    flags = _flags(data.meta.iloc[pos], "mixed", is_mixed, partner_id=ids[partner_pos[is_mixed]])
    t = torch.from_numpy(pos)
    return _done(data, "mixed", fraction, seed, k, flags, images=m.images[torch.from_numpy(order)].contiguous(),
                 labels=data.labels[t], ids=data.ids[pos], params={"mode": mode})


def uniform_noise(data: Samples, fraction: float, seed: int, *, overlap: bool = False) -> Samples:
    """Flip k labels, each to a class drawn uniformly among the C - 1 others (never the same label)."""
    k, rng, _ = _start(data, "uniform_noise", fraction, seed)
    pick = _draw(rng, _eligible(data, overlap), k, "uniform_noise", fraction, len(data), overlap=overlap)
    labels = data.labels.clone()
    t = torch.from_numpy(pick)
    labels[t] = other_class(labels[t], rng, data.num_classes)
    return _done(data, "uniform_noise", fraction, seed, k, _flags(data.meta, "uniform_noise", pick), labels=labels)


def _pair_targets(pairs, num_classes) -> np.ndarray:
    """target[c] = class that c flips to, or -1."""
    if isinstance(pairs, dict):
        edges = [(a, b) for a, b in pairs.items()]
    else:
        try:
            edges = [(a, b) for a, b in pairs] + [(b, a) for a, b in pairs]
        except (TypeError, ValueError):
            _fail(f"pairs must be a list of (a, b) class pairs (a <-> b) or a dict {{a: b}} (a -> b), got {pairs!r}.")
    target = np.full(num_classes, -1, dtype=np.int64)
    for a, b in edges:
        if not all(is_integer(c) and 0 <= c < num_classes for c in (a, b)) or a == b:
            _fail(f"pair ({a}, {b}) must name two different classes in 0..{num_classes - 1}.")
        if target[a] not in (-1, b):
            _fail(f"class {a} appears in two pairs ({a}->{target[a]} and {a}->{b}); each class needs one partner.")
        target[a] = b
    return target


def class_noise(data: Samples, fraction: float, seed: int, *, pairs=None, overlap: bool = False) -> Samples:
    """Flip k labels to the confusable partner class (``CLASS_PAIRS[data.name]`` unless ``pairs`` is given:
    a list of (a, b) meaning a <-> b, or a dict {a: b} meaning a -> b). The k samples are drawn uniformly
    among those whose current label has a partner; k counts over all N samples."""
    k, rng, _ = _start(data, "class_noise", fraction, seed)
    if pairs is None:
        if data.name not in CLASS_PAIRS:
            _fail(f"no confusable-class table for dataset {data.name!r} (tables: {', '.join(CLASS_PAIRS)}); "
                  "pass pairs=[(a, b), ...] for a <-> b flips or pairs={a: b} for a -> b.")
        pairs = CLASS_PAIRS[data.name]
    target = torch.from_numpy(_pair_targets(pairs, data.num_classes))
    has_partner = (target[data.labels] >= 0).numpy()
    pick = _draw(rng, _eligible(data, overlap, has_partner), k, "class_noise", fraction, len(data),
                 "samples of paired classes", overlap)
    labels = data.labels.clone()
    t = torch.from_numpy(pick)
    labels[t] = target[labels[t]]
    return _done(data, "class_noise", fraction, seed, k, _flags(data.meta, "class_noise", pick), labels=labels,
                 params={"pairs": pairs if isinstance(pairs, dict) else tuple(map(tuple, pairs))})


ATYPICAL_KINDS = ("both", "zoom", "shift")


def atypical(data: Samples, fraction: float, seed: int, *, kind: str = "both", zoom: float = 1.75,
             shift: int = 10, overlap: bool = False) -> Samples:
    """Atypical but correctly labeled: k images zoomed or shifted, labels unchanged (as H-CAT).

    zoom: crop the centre round(H/zoom) x round(W/zoom) (16 x 16 on 28 x 28; 18 x 18, an effective 1.78x, on
    32 x 32) and resize back with bilinear interpolation. shift: translate horizontally by ``shift`` pixels
    (absolute, not scaled with the image size), left or right at random, filling with zeros. kind="both"
    zooms ceil(k/2) and shifts floor(k/2); ``flags.atypical_kind`` says which."""
    k, rng, _ = _start(data, "atypical", fraction, seed)
    if kind not in ATYPICAL_KINDS:
        _fail(f"Unknown atypical kind {kind!r}: choose 'both', 'zoom' or 'shift'.")
    w = data.images.shape[-1]
    if kind != "shift" and not (is_number(zoom) and zoom > 1):
        _fail(f"zoom must be a number > 1, got {zoom!r}.")
    if kind != "zoom" and not (is_integer(shift) and 0 < shift < w):
        _fail(f"shift must be an integer number of pixels in 1..{w - 1}, got {shift!r}.")
    pick = _draw(rng, _eligible(data, overlap), k, "atypical", fraction, len(data), overlap=overlap)
    pick = rng.permutation(pick)  # a random half zoomed, the other shifted
    n_zoom = {"both": k - k // 2, "zoom": k, "shift": 0}[kind]
    zoomed, shifted = pick[:n_zoom], pick[n_zoom:]
    images = data.images.clone()
    if len(zoomed):
        images[torch.from_numpy(zoomed)] = _zoom(data.images[torch.from_numpy(zoomed)], zoom)
    if len(shifted):
        dx = rng.choice([-shift, shift], size=len(shifted))
        images[torch.from_numpy(shifted)] = _shift_x(data.images[torch.from_numpy(shifted)], dx)
    kinds = np.array(["zoom"] * len(zoomed) + ["shift"] * len(shifted), dtype=object)
    flags = _flags(data.meta, "atypical", pick, atypical_kind=kinds)
    return _done(data, "atypical", fraction, seed, k, flags, images=images,
                 params={"kind": kind, "zoom": zoom, "shift": shift})


def near_ood(data: Samples, fraction: float, seed: int, *, sigma: float = 0.5, overlap: bool = False) -> Samples:
    """Near out-of-distribution: k images get Gaussian pixel noise of std ``sigma`` (default 0.5, H-CAT's
    0.5 x max pixel on [0, 1] images), then are clamped to [0, 1]; labels unchanged."""
    k, rng, gen = _start(data, "near_ood", fraction, seed)
    if not (is_number(sigma) and sigma > 0 and np.isfinite(sigma)):
        _fail(f"sigma must be a positive number, got {sigma!r}.")
    pick = _draw(rng, _eligible(data, overlap), k, "near_ood", fraction, len(data), overlap=overlap)
    t = torch.from_numpy(pick)
    images = data.images.clone()
    src = data.images[t]
    images[t] = (src + sigma * torch.randn(src.shape, generator=gen)).clamp_(0, 1)
    return _done(data, "near_ood", fraction, seed, k, _flags(data.meta, "near_ood", pick), images=images,
                 params={"sigma": sigma})


def far_ood(data: Samples, fraction: float, seed: int, *, ood_images, overlap: bool = False) -> Samples:
    """Far out-of-distribution: k images are replaced by images of another dataset (``ood_images``
    [M,C,H,W], same C x H x W, drawn without replacement) and get labels drawn uniformly from all C classes;
    ids are kept, clean labels become -1 (no true class) and ``flags.ood_index`` gives the pool row."""
    k, rng, _ = _start(data, "far_ood", fraction, seed)
    pool = torch.as_tensor(ood_images)
    shape = tuple(data.images.shape[1:])
    if pool.ndim != 4 or tuple(pool.shape[1:]) != shape or not pool.is_floating_point():
        _fail(f"ood_images must be a float tensor [M, {', '.join(map(str, shape))}] like the data's images, got "
              f"{pool.dtype} {tuple(pool.shape)}; convert them first (channel mean or repeat, "
              "torch.nn.functional.interpolate to resize).")
    check_images(pool, "ood_images")
    if k > len(pool):
        _fail(f"far_ood needs {k} images but ood_images holds only {len(pool)} (drawn without replacement); "
              "pass more or ask for fewer.")
    pick = _draw(rng, _eligible(data, overlap), k, "far_ood", fraction, len(data), overlap=overlap)
    rows = rng.choice(len(pool), size=k, replace=False)
    t = torch.from_numpy(pick)
    images, labels = data.images.clone(), data.labels.clone()
    images[t] = pool[torch.from_numpy(rows)].float()
    labels[t] = torch.from_numpy(rng.integers(0, data.num_classes, size=k))
    flags = _flags(data.meta, "far_ood", pick, ood_index=rows)
    flags["clean_label"] = flags["clean_label"].to_numpy(np.int64).copy()
    flags.iloc[pick, flags.columns.get_loc("clean_label")] = -1
    return _done(data, "far_ood", fraction, seed, k, flags, images=images, labels=labels,
                 params={"pool_size": len(pool)})


def near_duplicates(data: Samples, fraction: float, seed: int, *, sigma: float = 0.02, shift: int = 0,
                    overlap: bool = False) -> Samples:
    """Append k jittered copies of k distinct source samples (redundant: pruning should drop them first).

    Jitter: Gaussian noise of std ``sigma`` (default 0.02) on the pixels that are not 0, clamped to [0, 1],
    after an optional translation by (dy, dx), each drawn uniformly in -shift..shift (zero fill). Zero pixels
    stay zero: with noise on every pixel, the faint speckle it left on a black background gave the copies
    away to model-free image statistics (the scoreboard's battery classifier found MNIST copies at AUROC 1.00),
    which real near-duplicates (re-saved, re-cropped photos) do not show. The default shift=0 keeps copies close
    in pixel space (on MNIST the L2 distance to the source is ~0.4 against ~5.6 to the nearest other digit);
    shift=1 makes augmentation-like copies that only an invariant embedding finds: on MNIST a +-1 px shift
    puts a copy as far from its source (~5.6) as from its nearest other digit (~6.1), and the source is its
    pixel nearest neighbour only about 60 % of the time. Copies get new ids max+1..max+k
    (appended at the end), the source's label, clean label and flags, and ``near_duplicates`` = True with
    ``source_id`` = the source's id. Only copies are flagged; sources stay as they were."""
    k, rng, gen = _start(data, "near_duplicates", fraction, seed)
    h, w = data.images.shape[-2:]
    if not (is_integer(shift) and 0 <= shift < min(h, w)):
        _fail(f"shift must be an integer number of pixels in 0..{min(h, w) - 1}, got {shift!r}.")
    if not (is_number(sigma) and sigma >= 0 and np.isfinite(sigma)):
        _fail(f"sigma must be a non-negative number, got {sigma!r}.")
    src = _draw(rng, _eligible(data, overlap), k, "near_duplicates", fraction, len(data), overlap=overlap)
    t = torch.from_numpy(src)
    offsets = rng.integers(-shift, shift + 1, size=(k, 2))
    copies = _shift_x(data.images[t], offsets[:, 1], offsets[:, 0])
    if sigma > 0:   # noise on the non-zero pixels only: the copy keeps its source's zero background
        noise = sigma * torch.randn(copies.shape, generator=gen)
        copies = torch.where(copies > 0, (copies + noise).clamp_(0, 1), copies)
    new_ids = int(data.ids.max()) + 1 + np.arange(k, dtype=np.int64) if len(data) else np.arange(k, dtype=np.int64)
    base = data.meta if "near_duplicates" in data.meta.columns else _flags(data.meta, "near_duplicates", [],
                                                                             source_id=[])
    rows = base.iloc[src].copy()
    rows.index = pd.Index(new_ids, name="sample_id")
    rows["near_duplicates"] = True
    rows["source_id"] = data.ids[src]
    flags = pd.concat([base, rows])
    return _done(data, "near_duplicates", fraction, seed, k, flags,
                 images=torch.cat([data.images, copies]), labels=torch.cat([data.labels, data.labels[t]]),
                 ids=np.concatenate([data.ids, new_ids]),
                 params={"shift": shift, "sigma": sigma})


def rare_class(data: Samples, fraction: float, seed: int, *, cls: int | None = None,
               overlap: bool = False) -> Samples:
    """Make one class rare: keep exactly floor(fraction * n_c + 1/2) of its n_c samples (fraction ~ 0.01-0.02),
    drawn uniformly, flag them ``rare_class`` and remove the rest (their ids disappear). The class (by
    clean label) is ``cls``, or drawn with the seed among the classes present; history records it. Without
    overlap the kept ones are drawn among the class's unflagged samples and flagged members are removed."""
    _, rng, _ = _start(data, "rare_class", fraction, seed)
    present = np.unique(data.clean_labels.numpy())
    present = present[present >= 0]
    if cls is None:
        cls = int(rng.choice(present))
    elif not is_integer(cls) or cls not in present:
        _fail(f"cls must be one of the classes present ({', '.join(map(str, present))}), got {cls!r}.")
    members = (data.clean_labels == cls).numpy()
    n_c = int(members.sum())
    k = exact_count(fraction, n_c)
    keep = _draw(rng, _eligible(data, overlap, members), k, "rare_class", fraction, n_c,
                 f"samples of class {cls}", overlap)
    stay = ~members
    stay[keep] = True
    pos = np.flatnonzero(stay)
    flags = _flags(data.meta, "rare_class", keep).iloc[pos]
    t = torch.from_numpy(pos)
    return _done(data, "rare_class", fraction, seed, k, flags, images=data.images[t], labels=data.labels[t],
                 ids=data.ids[pos],
                 params={"cls": int(cls), "class_size": n_c})


class HardnessType(NamedTuple):
    fn: Callable[..., Samples]
    description: str


HARDNESS_TYPES: dict[str, HardnessType] = {
    "mixed": HardnessType(mixed, "two images overlaid (make_mixed, matched mode); the second source is dropped"),
    "uniform_noise": HardnessType(uniform_noise, "label flipped to a uniformly drawn other class"),
    "class_noise": HardnessType(class_noise, "label flipped to a confusable partner class (e.g. MNIST 1<->7)"),
    "atypical": HardnessType(atypical, "correct label, image zoomed 1.75x at the centre or shifted 10 px"),
    "near_ood": HardnessType(near_ood, "correct label, strong Gaussian pixel noise (sigma 0.5, clamped)"),
    "far_ood": HardnessType(far_ood, "image from another dataset with a random label"),
    "near_duplicates": HardnessType(near_duplicates, "new copy of an existing sample with slight noise (redundant)"),
    "rare_class": HardnessType(rare_class, "member of a class cut to a small share of its size"),
}


def inject(data: Samples, kind: str, fraction: float, seed: int, **kwargs) -> Samples:
    """Apply the hardness type ``kind`` (a key of ``HARDNESS_TYPES``); kwargs go to its function."""
    if kind not in HARDNESS_TYPES:
        _fail(f"Unknown hardness type {kind!r}: choose from {', '.join(HARDNESS_TYPES)}.")
    return HARDNESS_TYPES[kind].fn(data, fraction, seed, **kwargs)
