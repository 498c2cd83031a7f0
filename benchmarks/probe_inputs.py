"""The bad-input probe (issue 23, section 1): feed ``score_dataset`` and ``python -m utils.score`` many bad or
unusual inputs and say, for each, what happened.

    python -m benchmarks.probe_inputs [--only NAME ...] [--keep DIR]

Every case builds a tiny input (tens of 28x28 MNIST-5k digits, families ``pixels`` unless training is the point),
calls the tool and checks the answer. The outcome of a case is one of

* ``ok``: a result, and a concrete check of it holds (rows, ids, files kept; scores equal under reordering ...);
* ``refused``: ``ValueError`` / ``SystemExit`` / exit status 2 with one sentence (printed; where a file or a
  setting is at fault the sentence must name it);
* ``crash``: any other exception, a traceback, or a refusal that is not one sentence or does not name the culprit;
* ``silent``: a result that is wrong (its check failed, or the input should have been refused).

A case that expects a result and gets a refusal is a ``wrong refusal`` (listed after the summary). The table ends
with ``N cases: a ok, b refused, c crash, d silent``; the exit status is 1 when anything crashed, came out silent
or was refused wrongly. :data:`CASES` holds the cases (``tests/test_inputs.py`` runs a few of them).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

PIXELS = ("pixels",)


class Silent(Exception):
    """The call gave a result, and it is wrong."""


class Refused(Exception):
    """The CLI stopped with exit status 2 and this message."""


@dataclass(frozen=True)
class Case:
    name: str
    run: object           # run(tmp: Path) -> str (what was checked), raises Silent when the result is wrong
    expect: str = "ok"    # "ok": a result is right; "refuse": the input is wrong; "either"
    names: str | None = None   # a refusal must contain this (the file or setting at fault)


CASES: list[Case] = []


def case(name, expect="ok", names=None):
    def register(fn):
        CASES.append(Case(name, fn, expect, names))
        return fn
    return register


# --------------------------------------------------------------------------------------------- tiny data
_DATA = {}


def digits(n=40):
    """``n`` MNIST-5k test digits, every 25th (all classes), float [n, 1, 28, 28], and their labels."""
    if "x" not in _DATA:
        from utils.data.datasets import load_dataset
        x, y, _ = load_dataset("mnist-5k", "test")
        _DATA["x"], _DATA["y"] = x[::25].clone(), y[::25].clone()
    return _DATA["x"][:n].clone(), _DATA["y"][:n].clone()


def baseline():
    """The pixel scores of the 40 digits with their labels (computed once)."""
    if "scores" not in _DATA:
        _DATA["scores"] = score(*digits())
    return _DATA["scores"]


def score(images, labels=None, ids=None, families=PIXELS, **kw):
    from utils.scores.dataset import score_dataset
    return score_dataset(images, labels, ids, families=families, **kw)


def tiny(**over):
    from utils.scores.dataset import ScoringConfig
    return ScoringConfig(**{"folds": 2, "epochs": 1, "el2n_epoch": 0, "ae_epochs": 1, "batch_size": 32, **over})


def need(cond, what):
    if not cond:
        raise Silent(what)


def rows(s, n=40):
    need(len(s) == n, f"{len(s)} rows for {n} images")


def same_scores(a, b, cols=("px_knn_distance", "px_prototype_distance", "stat_mean"), atol=1e-6):
    need(set(a.columns) == set(b.columns), f"other columns: {sorted(set(a.columns) ^ set(b.columns))[:4]}")
    for c in (c for c in cols if c in a):
        need(np.allclose(a[c].to_numpy(float), b[c].to_numpy(float), atol=atol), f"{c} differs")


def png(path, a):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.asarray(a)
    Image.fromarray((a * 255).round().astype(np.uint8) if a.dtype.kind == "f" else a).save(path)
    return path


def folder(tmp, n=40, classes=True, name="imgs"):
    """``n`` digits as PNGs, in class sub-folders named by the digit (or flat)."""
    x, y = digits(n)
    root = tmp / name
    for i in range(n):
        png(root / (str(int(y[i])) if classes else "") / f"{i:03d}.png", x[i, 0].numpy())
    return root


def cli(*argv, out=None):
    """``python -m utils.score`` in this process; the files it wrote, or Refused with its message."""
    from utils.score import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main([str(a) for a in argv] + ["--quiet"])
        except SystemExit as e:            # argparse's usage error
            rc = e.code
    text = err.getvalue().strip()
    if rc == 2:
        lines = [line for line in text.splitlines() if "error:" in line]
        raise Refused(lines[-1].split("error:", 1)[1].strip() if lines and len(lines) == 1 and
                      "Traceback" not in text else text)
    if rc != 0:
        raise RuntimeError(f"exit status {rc}: {text[-300:]}")
    return out


def scores_of(out):
    from utils.engine.cache import load_table
    return load_table(Path(out) / "scores.parquet")


# =========================================================================================== the cases
# ----------------------------------------------------------------------------------- image arrays (Python)
@case("float tensor with labels (baseline)")
def _(tmp):
    s = baseline()
    rows(s)
    need(s.index.tolist() == list(range(40)), "ids not 0..39")
    return "40 rows, ids 0..39"


@case("uint8 array [N, H, W]")
def _(tmp):
    x, y = digits()
    s = score((x[:, 0].numpy() * 255).round().astype(np.uint8), y.numpy())
    same_scores(s, baseline(), atol=1e-4)
    return "same scores as floats"


@case("uint16 array")
def _(tmp):
    x, y = digits()
    s = score((x.numpy() * 65535).round().astype(np.uint16), y)
    same_scores(s, baseline(), atol=1e-4)
    return "same scores as floats"


@case("float64 array")
def _(tmp):
    x, y = digits()
    same_scores(score(x.double().numpy(), y), baseline())
    return "same scores"


@case("float16 tensor")
def _(tmp):
    x, y = digits()
    same_scores(score(x.half(), y), baseline(), atol=1e-2)
    return "scores within 1e-2"


@case("float 0..255 array", "refuse")
def _(tmp):
    x, y = digits()
    return score(x.numpy() * 255, y)


@case("int64 array 0..255", "refuse")
def _(tmp):
    x, y = digits()
    return score((x.numpy() * 255).astype(np.int64), y)


@case("channels-last RGBA [N, 32, 32, 4]")
def _(tmp):
    x, _ = digits()
    a = torch.nn.functional.pad(x, (2, 2, 2, 2)).repeat(1, 4, 1, 1)   # [N, 4, 32, 32]
    s1, s2 = score(a.permute(0, 2, 3, 1).numpy()), score(a)
    same_scores(s1, s2)
    return "same scores as channels-first"


@case("channels-last RGB [N, 28, 28, 3]")
def _(tmp):
    x, _ = digits()
    a = x.repeat(1, 3, 1, 1)
    same_scores(score(a.permute(0, 2, 3, 1).contiguous()), score(a))
    return "same scores as channels-first"


# cases whose whole body is one call: (name, what to expect, the setting a refusal must name, the call)
_ONE_CALL = [
    ("ambiguous shape [N, 3, 28, 3]", "refuse", None, lambda: score(torch.rand(40, 3, 28, 3))),
    ("5-d array", "refuse", None, lambda: score(torch.rand(40, 1, 1, 28, 28))),
    ("empty tensor", "refuse", None, lambda: score(torch.zeros(0, 1, 28, 28))),
    ("empty list", "refuse", None, lambda: score([])),
    ("images=None", "refuse", None, lambda: score(None)),
    ("seed=2**32", "refuse", "seed", lambda: tiny(seed=2 ** 32)),
    ("seed=-1", "refuse", "seed", lambda: tiny(seed=-1)),
    ("batch_size=1", "refuse", "batch_size", lambda: tiny(batch_size=1)),
    ("issue_types outlier threshold 2", "refuse", "threshold",
     lambda: tiny(issue_types={"outlier": {"threshold": 2}})),
]
for _name, _expect, _names, _call in _ONE_CALL:
    case(_name, _expect, _names)(lambda tmp, call=_call: call())


@case("flattened images [N, 784]", "refuse")
def _(tmp):
    x, _ = digits()
    return score(x.reshape(40, -1))


@case("negative-stride numpy view")
def _(tmp):
    x, y = digits()
    s = score(x.numpy()[::-1], y.numpy()[::-1], ids=np.arange(40)[::-1])
    same_scores(s.sort_index(), baseline())
    return "same scores by id"


@case("tensor with requires_grad")
def _(tmp):
    x, y = digits()
    same_scores(score(x.requires_grad_(True), y), baseline())
    return "same scores"


@case("list of differently sized arrays")
def _(tmp):
    x, _ = digits()
    imgs = [x[i, 0].numpy() if i % 4 else np.pad(x[i, 0].numpy(), 2) for i in range(40)]
    s = score(imgs)
    rows(s)
    need(set(s["orig_height"]) == {28, 32}, "original sizes not kept")
    return "40 rows, original sizes kept"


@case("list of gray and RGB arrays")
def _(tmp):
    x, _ = digits()
    imgs = [x[i, 0].numpy() if i % 2 else np.repeat(x[i, 0].numpy()[..., None], 3, 2) for i in range(40)]
    rows(score(imgs))
    return "40 rows"


@case("1x1 images", "either")
def _(tmp):
    s = score(torch.rand(40, 1, 1, 1))
    rows(s)
    return "40 rows"


@case("NaN pixel", "refuse")
def _(tmp):
    x, _ = digits()
    x[3, 0, 5, 5] = float("nan")
    return score(x)


@case("inf pixel", "refuse")
def _(tmp):
    x, _ = digits()
    x[3, 0, 5, 5] = float("inf")
    return score(x)


@case("negative pixels", "refuse")
def _(tmp):
    x, _ = digits()
    return score(x - 0.5)


@case("complex array", "refuse")
def _(tmp):
    x, _ = digits()
    return score(x.numpy().astype(np.complex64))


@case("bool array", "either")
def _(tmp):
    x, _ = digits()
    s = score((x > 0.5).numpy())
    rows(s)
    return "40 rows"


@case("8 images (fewer than clusters=10)", "refuse", names="clusters")
def _(tmp):
    x, _ = digits(8)
    return score(x)


@case("16 constant images (min count for default folds)")
def _(tmp):
    rows(score(torch.full((16, 1, 8, 8), 0.5)), 16)
    return "16 rows"


@case("mostly exact copies (40 identical + 10)")
def _(tmp):
    x, _ = digits(10)
    a = torch.cat([x[:1].repeat(40, 1, 1, 1), x])
    s = score(a)
    flagged = s["flag_near_duplicate"].to_numpy() | s["flag_exact_duplicates"].to_numpy()
    need(flagged[:41].all(), f"{int(flagged[:41].sum())} of the 41 copies flagged")
    need((s["px_nn_distance"].to_numpy()[:41] == 0).all(), "copies not at distance 0")
    return "all 41 copies flagged, nn distance 0"


@case("every image twice (30 x 2)")
def _(tmp):
    x, _ = digits(30)
    s = score(torch.cat([x, x]))
    need(s["flag_near_duplicate"].all(), f"{int(s['flag_near_duplicate'].sum())} of 60 flagged")
    need(s["duplicate_group"].nunique() == 30, f"{s['duplicate_group'].nunique()} groups")
    return "60 flagged, 30 groups"


# --------------------------------------------------------------------------------------------------- ids
@case("duplicated ids", "refuse")
def _(tmp):
    x, _ = digits()
    return score(x, ids=[0] * 40)


@case("uint64 ids >= 2**63", "refuse")
def _(tmp):
    x, _ = digits()
    return score(x, ids=np.arange(40, dtype=np.uint64) + np.uint64(2 ** 63))


@case("ids of the wrong length", "refuse")
def _(tmp):
    x, _ = digits()
    return score(x, ids=range(39))


@case("fractional ids", "refuse")
def _(tmp):
    x, _ = digits()
    return score(x, ids=np.arange(40) + 0.5)


@case("string ids", "refuse")
def _(tmp):
    x, _ = digits()
    return score(x, ids=[f"img{i}" for i in range(40)])


@case("negative and large ids kept")
def _(tmp):
    x, y = digits()
    ids = np.arange(40) * (2 ** 57) - 2 ** 62
    s = score(x, y, ids=ids)
    need((s.index.to_numpy() == ids).all(), "ids changed")
    same_scores(s.reset_index(drop=True), baseline().reset_index(drop=True))
    return "ids kept, same scores"


@case("same images and ids in another row order (supervised)")
def _(tmp):
    x, y = digits()
    perm = np.random.default_rng(0).permutation(40)
    a = score(x, y, families=PIXELS + ("supervised",), config=tiny())
    b = score(x[perm], y[perm], ids=perm, families=PIXELS + ("supervised",), config=tiny())
    cols = [c for c in a.columns if c != "duplicate_group"]
    diff = [c for c in cols if not np.allclose(a[c].to_numpy(float), b.loc[a.index, c].to_numpy(float),
                                                 atol=1e-6, equal_nan=True)]
    need(not diff, f"{len(diff)} columns differ, e.g. {diff[:3]}")
    return "identical scores"


@case("same images and ids in another order, one cache folder")
def _(tmp):
    x, y = digits()
    perm = np.random.default_rng(1).permutation(40)
    a = score(x, y, folder=tmp / "cache")
    b = score(x[perm], y[perm], ids=perm, folder=tmp / "cache")
    need(b.attrs["fresh"] == [], f"recomputed {b.attrs['fresh']}")
    same_scores(a, b.loc[a.index])
    return "loaded from the cache, same scores"


# ------------------------------------------------------------------------------------------------ labels
@case("labels of the wrong length", "refuse")
def _(tmp):
    x, y = digits()
    return score(x, y[:39])


@case("float labels (1.0, 2.0)", "refuse")
def _(tmp):
    x, y = digits()
    return score(x, y.double().numpy())


@case("labels with NaN", "refuse")
def _(tmp):
    x, y = digits()
    v = y.double().numpy()
    v[0] = np.nan
    return score(x, v)


@case("negative labels", "refuse")
def _(tmp):
    x, y = digits()
    return score(x, y - 1)


@case("bool labels", "refuse")
def _(tmp):
    x, y = digits()
    return score(x, (y > 4).numpy())


@case("one-hot labels [N, 10]", "refuse")
def _(tmp):
    x, y = digits()
    return score(x, np.eye(10, dtype=np.int64)[y.numpy()])


@case("labels [N, 1]")
def _(tmp):
    x, y = digits()
    same_scores(score(x, y.numpy()[:, None]), baseline())
    return "same scores"


@case("labels as a pandas Series")
def _(tmp):
    x, y = digits()
    s = score(x, pd.Series(y.numpy(), index=np.arange(100, 140)))
    need((s["label"].to_numpy() == y.numpy()).all(), "labels changed")
    return "labels kept"


@case("string class names")
def _(tmp):
    x, y = digits()
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    s = score(x, list(names[y.numpy()]))
    need((s["class_name"].to_numpy() == names[y.numpy()]).all(), "class names wrong")
    return "class_name column right"


@case("one class, not 0 (supervised)", "refuse")
def _(tmp):
    x, _ = digits()
    return score(x, np.full(40, 3), families=("supervised",), config=tiny())


@case("one class as strings, pixels only", "either")
def _(tmp):
    x, _ = digits()
    s = score(x, ["cat"] * 40)
    rows(s)
    return "40 rows"


@case("labels 0 and 9 only (classes 1..8 empty), supervised")
def _(tmp):
    x, y = digits()
    s = score(x, np.where(y.numpy() < 5, 0, 9), families=("supervised",), config=tiny())
    rows(s)
    need(set(s["cl_predicted_label"]) <= {0, 9}, f"suggests classes {sorted(set(s['cl_predicted_label']))}")
    return "40 rows, suggested classes among the given"


# ------------------------------------------------------------------------------------------------ config
@case("config as a dict {'epochs': 1}")
def _(tmp):
    x, y = digits()
    rows(score(x, y, config={"epochs": 1, "folds": 2, "el2n_epoch": 0}))
    return "40 rows"


@case("config dict with an unknown key", "refuse", names="nope")
def _(tmp):
    x, y = digits()
    return score(x, y, config={"nope": 1})


@case("config as a string", "refuse")
def _(tmp):
    x, y = digits()
    return score(x, y, config="fast")


@case("folds=20 on 40 images (supervised)", "refuse", names="folds")
def _(tmp):
    x, y = digits()
    return score(x, y, families=("supervised",), config=tiny(folds=20))


@case("folds=20 on 40 images (pixels only)")
def _(tmp):
    x, y = digits()
    same_scores(score(x, y, config=tiny(folds=20)), baseline())
    return "same scores (folds unused)"


@case("families='supervised' as a string")
def _(tmp):
    x, y = digits()
    s = score(x, y, families="supervised", config=tiny())
    need(list(s.columns) == list(score(x, y, families=("supervised",), config=tiny()).columns),
         "other columns than families=('supervised',)")
    return "the columns of ('supervised',)"


@case("unknown family", "refuse", names="nope")
def _(tmp):
    x, y = digits()
    return score(x, y, families=("nope",))


@case("no family", "either")
def _(tmp):
    x, y = digits()
    rows(score(x, y, families=()))
    return "40 rows"


@case("k=100 on 40 images", "either")
def _(tmp):
    x, y = digits()
    s = score(x, y, config=tiny(k=100))
    rows(s)
    need(s["px_knn_distance"].notna().all(), "NaN kNN distances")
    return "40 rows"


@case("clusters=100 on 40 images", "either", names="clusters")
def _(tmp):
    x, y = digits()
    s = score(x, y, config=tiny(clusters=100))
    rows(s)
    return "40 rows"


# -------------------------------------------------------------------------------------- pred_probs, features
def _probs(y, c=10):
    p = np.full((len(y), c), 0.02)
    p[np.arange(len(y)), np.asarray(y) % c] = 1 - 0.02 * (c - 1)
    return p


@case("pred_probs given")
def _(tmp):
    x, y = digits()
    yy = y.numpy().copy()
    yy[0] = (yy[0] + 1) % 10          # one wrong label the probabilities disagree with
    s = score(x, yy, families=("supervised",), pred_probs=_probs(y))
    need(bool(s["flag_label_issue"].iloc[0]) and int(s["flag_label_issue"].sum()) == 1, "wrong label not flagged")
    return "the one wrong label flagged"


@case("pred_probs as a shuffled DataFrame by id")
def _(tmp):
    x, y = digits()
    perm = np.random.default_rng(2).permutation(40)
    p = pd.DataFrame(_probs(y)).iloc[perm]
    a = score(x, y, families=("supervised",), pred_probs=_probs(y))
    b = score(x, y, families=("supervised",), pred_probs=p)
    need(np.allclose(a["cl_label_quality"], b["cl_label_quality"]), "scores differ")
    return "same scores as the array"


@case("pred_probs of the wrong shape", "refuse", names="pred_probs")
def _(tmp):
    x, y = digits()
    return score(x, y, families=("supervised",), pred_probs=_probs(y)[:30])


@case("pred_probs not summing to 1", "refuse", names="pred_probs")
def _(tmp):
    x, y = digits()
    return score(x, y, families=("supervised",), pred_probs=_probs(y) * 2)


@case("pred_probs with fewer columns than classes", "refuse", names="pred_probs")
def _(tmp):
    x, y = digits()
    return score(x, y, families=("supervised",), pred_probs=_probs(y, 10)[:, :5])


@case("pred_probs without labels", "refuse", names="pred_probs")
def _(tmp):
    x, y = digits()
    return score(x, families=("supervised",), pred_probs=_probs(y))


@case("features given")
def _(tmp):
    x, _ = digits()
    z = x.reshape(40, -1).numpy()
    s = score(x, families=("self-supervised",), features=z)
    rows(s)
    need(s.filter(like="bt_").notna().all().all(), "NaN scores")
    return "40 rows of bt_ scores"


@case("features with NaN", "refuse", names="features")
def _(tmp):
    x, _ = digits()
    z = x.reshape(40, -1).numpy().copy()
    z[0, 0] = np.nan
    return score(x, families=("self-supervised",), features=z)


@case("features of the wrong length", "refuse", names="features")
def _(tmp):
    x, _ = digits()
    return score(x, families=("self-supervised",), features=np.zeros((39, 4)))


# --------------------------------------------------------------------------------------------------- cache
def _cached(tmp):
    x, y = digits()
    a = score(x, y, folder=tmp / "cache")
    return x, y, a


@case("truncated cached Parquet")
def _(tmp):
    x, y, a = _cached(tmp)
    p = next((tmp / "cache").glob("scores_pixels*.parquet"))
    p.write_bytes(p.read_bytes()[:100])
    same_scores(score(x, y, folder=tmp / "cache"), a)
    return "recomputed, same scores"


@case("empty cached JSON")
def _(tmp):
    x, y, a = _cached(tmp)
    next((tmp / "cache").glob("scores_pixels*.json")).write_text("")
    same_scores(score(x, y, folder=tmp / "cache"), a)
    return "recomputed, same scores"


@case("other images into the same cache folder", "refuse")
def _(tmp):
    x, y, a = _cached(tmp)
    return score(x.flip(-1), y, folder=tmp / "cache")


@case("cache folder is a file", "refuse")
def _(tmp):
    x, y = digits()
    (tmp / "f").write_text("x")
    return score(x, y, folder=tmp / "f")


# --------------------------------------------------------------------------------------- folders (Python)
@case("image folder path (Python)")
def _(tmp):
    s = score(folder(tmp))
    need(s["file"].iloc[0].endswith("000.png") and "class_name" in s, "file / class_name missing")
    return "file and class_name kept"


@case("folder that does not exist", "refuse")
def _(tmp):
    return score(str(tmp / "nope"))


@case("empty folder", "refuse")
def _(tmp):
    (tmp / "e").mkdir()
    return score(str(tmp / "e"))


@case("folder of non-images", "refuse")
def _(tmp):
    (tmp / "t").mkdir()
    for i in range(20):
        (tmp / "t" / f"{i}.txt").write_text("hello")
    return score(str(tmp / "t"))


@case("corrupt PNG", "refuse", names="bad.png")
def _(tmp):
    root = folder(tmp)
    (root / "3" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    return score(root)


@case("empty (0-byte) PNG", "refuse", names="empty.png")
def _(tmp):
    root = folder(tmp)
    (root / "3" / "empty.png").write_bytes(b"")
    return score(root)


@case("grayscale and RGB PNGs mixed")
def _(tmp):
    root = folder(tmp, classes=False)
    Image.open(root / "000.png").convert("RGB").save(root / "000.png")
    s = score(root)
    rows(s)
    return "40 rows"


@case("mixed image sizes")
def _(tmp):
    root = folder(tmp, classes=False)
    Image.open(root / "001.png").resize((40, 30)).save(root / "001.png")
    s = score(root)
    rows(s)
    need((s["orig_width"].iloc[1], s["orig_height"].iloc[1]) == (40, 30), "original size lost")
    need(bool(s["flag_odd_size"].iloc[1]), "odd size not flagged")
    return "40 rows, the odd one flagged with its size"


@case(".pgm and .ppm files")
def _(tmp):
    root = folder(tmp, classes=False)
    Image.open(root / "000.png").save(root / "000.pgm")
    Image.open(root / "001.png").convert("RGB").save(root / "001.ppm")
    (root / "000.png").unlink()
    (root / "001.png").unlink()
    s = score(root)
    need({"000.pgm", "001.ppm"} <= set(s["file"]), "pgm/ppm skipped")
    return "both read"


def _forty_rows_after(tmp, *edits):
    """Score a flat folder of the 40 digits after each ``edit(root)``; a result must keep all 40 rows."""
    root = folder(tmp, classes=False)
    for edit in edits:
        edit(root)
    rows(score(root))
    return "40 rows"


def _gif(root):
    frames = [Image.open(root / "003.png"), Image.open(root / "004.png")]
    frames[0].save(root / "003.gif", save_all=True, append_images=frames[1:])
    (root / "003.png").unlink()


def _convert(name, mode, to=None, fmt=None):
    """An edit: ``name`` converted to ``mode`` and saved as ``to`` (default: in place), in ``fmt``."""
    def edit(root):
        Image.open(root / name).convert(mode).save(root / (to or name), format=fmt)
        if to:
            (root / name).unlink()
    return edit


@case("upper-case .PNG and a JPEG named .png")
def _(tmp):
    return _forty_rows_after(tmp, lambda root: (root / "000.png").rename(root / "000.PNG"),
                             _convert("001.png", "L", fmt="JPEG"))


@case("palette, LA and RGBA PNGs, an animated GIF")
def _(tmp):
    return _forty_rows_after(tmp, _convert("000.png", "P"), _convert("001.png", "LA"), _convert("002.png", "RGBA"),
                             _gif)


@case("CMYK JPEG")
def _(tmp):
    return _forty_rows_after(tmp, _convert("000.png", "CMYK", to="000.jpg"))


@case("16-bit PNG")
def _(tmp):
    root = folder(tmp, classes=False)
    a = (np.asarray(Image.open(root / "000.png"), dtype=np.uint16) * 257)
    Image.fromarray(a).save(root / "000.png")
    s = score(root)
    need(abs(s["stat_max"].iloc[0] - 1.0) < 1e-3 or s["stat_max"].iloc[0] == baseline()["stat_max"].iloc[0],
         f"max {s['stat_max'].iloc[0]}")
    return "scaled by 65535"


@case("0..255 float TIFF", "refuse", names="000.tif")
def _(tmp):
    root = folder(tmp, classes=False)
    a = np.asarray(Image.open(root / "000.png"), dtype=np.float32)
    Image.fromarray(a, mode="F").save(root / "000.tif")
    (root / "000.png").unlink()
    return score(root)


@case("TIFF with NaN", "refuse", names="000.tif")
def _(tmp):
    root = folder(tmp, classes=False)
    a = np.asarray(Image.open(root / "000.png"), dtype=np.float32) / 255
    a[3, 3] = np.nan
    Image.fromarray(a, mode="F").save(root / "000.tif")
    (root / "000.png").unlink()
    return score(root)


@case("0..1 float TIFF")
def _(tmp):
    root = folder(tmp, classes=False)
    a = np.asarray(Image.open(root / "000.png"), dtype=np.float32) / 255
    Image.fromarray(a, mode="F").save(root / "000.tif")
    (root / "000.png").unlink()
    s = score(root)
    rows(s)
    need(abs(s["stat_max"].iloc[0] - a.max()) < 1e-5, "pixels rescaled")
    return "read as stored"


@case("32-bit integer TIFF over 65535", "refuse", names="000.tif")
def _(tmp):
    root = folder(tmp, classes=False)
    a = np.asarray(Image.open(root / "000.png"), dtype=np.int32) * 1000
    Image.fromarray(a, mode="I").save(root / "000.tif")
    (root / "000.png").unlink()
    return score(root)


@case("1x1 PNGs", "either")
def _(tmp):
    for i in range(20):
        png(tmp / "one" / f"{i}.png", np.full((1, 1), i * 10, np.uint8))
    rows(score(tmp / "one"), 20)
    return "20 rows"


@case("symlinked class folder")
def _(tmp):
    root = folder(tmp)
    shutil.move(str(root / "7"), str(tmp / "seven"))
    (root / "7").symlink_to(tmp / "seven", target_is_directory=True)
    s = score(root)
    rows(s)
    need((s["class_name"] == "7").sum() > 0, "class 7 dropped")
    return "class 7 kept"


@case("unreadable class folder", "refuse", names="7")
def _(tmp):
    root = folder(tmp)
    real = os.scandir

    def scandir(path="."):
        if Path(path).name == "7":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)
    os.scandir = scandir        # chmod 000 does not stop root; the same error, raised where it would be
    try:
        return score(root)
    finally:
        os.scandir = real


@case("broken symlink among the images", "either")
def _(tmp):
    root = folder(tmp, classes=False)
    (root / "zz.png").symlink_to(tmp / "missing.png")
    rows(score(root))
    return "40 rows (the dangling link ignored)"


@case("images at the top level and in class folders", "refuse")
def _(tmp):
    root = folder(tmp)
    png(root / "loose.png", np.zeros((28, 28), np.uint8))
    return score(root)


@case("image over the decompression-bomb limit", "refuse", names="big.png")
def _(tmp):
    root = folder(tmp, classes=False)
    png(root / "big.png", np.zeros((200, 200), np.uint8))
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 10_000       # 200x200 is over twice this: the limit as a real bomb meets it
    try:
        return score(root)
    finally:
        Image.MAX_IMAGE_PIXELS = old


@case("16 images of 2000x2000")
def _(tmp):
    x, _ = digits(16)
    (tmp / "huge").mkdir()
    for i in range(16):
        im = Image.fromarray((x[i, 0].numpy() * 255).astype(np.uint8)).resize((2000, 2000), Image.NEAREST)
        im.save(tmp / "huge" / f"{i}.png", compress_level=1)
    s = score(tmp / "huge")
    rows(s, 16)
    need((s["orig_height"] == 2000).all(), "original size lost")
    return "16 rows, downscaled"


@case("nested sub-folders inside class folders")
def _(tmp):
    root = folder(tmp)
    (root / "3" / "more").mkdir()
    for p in list((root / "3").glob("*.png"))[:2]:
        p.rename(root / "3" / "more" / p.name)
    s = score(root)
    rows(s)
    need(set(s["class_name"]) == {str(c) for c in range(10)}, f"classes {sorted(set(s['class_name']))}")
    return "10 classes"


# ----------------------------------------------------------------------------------------------------- CLI
TINY = ["--families", "pixels"]


@case("CLI: labeled folder")
def _(tmp):
    root = folder(tmp)
    cli(root, "--out", tmp / "out", *TINY)
    s = scores_of(tmp / "out")
    rows(s)
    need((tmp / "out" / "report.html").is_file() and (tmp / "out" / "keep.csv").is_file(), "no report / keep.csv")
    return "scores, report and keep.csv"


@case("CLI: file names with spaces, commas and unicode")
def _(tmp):
    root = folder(tmp, classes=False)
    (root / "000.png").rename(root / "a, b \"c\" é.png")
    cli(root, "--out", tmp / "out", *TINY)
    keep = pd.read_csv(tmp / "out" / "keep.csv")
    need("a, b \"c\" é.png" in set(keep["file"]), "the file name did not survive keep.csv")
    return "name kept in keep.csv"


def _one_class(tmp):
    x, _ = digits()
    for i in range(40):
        png(tmp / "imgs" / "cats" / f"{i}.png", x[i, 0].numpy())
    return tmp / "imgs"


@case("CLI: one class folder, pixels only")
def _(tmp):
    cli(_one_class(tmp), "--out", tmp / "out", *TINY)
    rows(scores_of(tmp / "out"))
    return "40 rows"


@case("CLI: one class folder, supervised", "refuse", names="folder")   # advice a folder's user can follow
def _(tmp):
    return cli(_one_class(tmp), "--out", tmp / "out", "--families", "pixels", "supervised")


@case("CLI: dataset name mnist-5k:test")
def _(tmp):
    cli("mnist-5k:test", "--out", tmp / "out", *TINY)
    rows(scores_of(tmp / "out"), 1000)
    return "1000 rows"


@case("CLI: unknown split mnist-5k:valid", "refuse")
def _(tmp):
    return cli("mnist-5k:valid", "--out", tmp / "out", *TINY)


@case("CLI: PATH does not exist", "refuse")
def _(tmp):
    return cli(tmp / "nope", "--out", tmp / "out", *TINY)


@case("CLI: --keep-score unknown", "refuse", names="nope")
def _(tmp):
    root = folder(tmp)
    tic = time.perf_counter()
    try:
        cli(root, "--out", tmp / "out", "--families", "pixels", "supervised", "--set", "folds=2", "epochs=1",
            "el2n_epoch=0", "--keep-fraction", "0.5", "--keep-score", "nope")
    except Refused:
        if any((tmp / "out" / "cache").glob("scores_supervised*")):
            raise RuntimeError(f"refused only after training ({time.perf_counter() - tic:.0f} s)") from None
        raise


@case("CLI: --keep-fraction 0.5 --keep-score px_knn_distance")
def _(tmp):
    cli(folder(tmp), "--out", tmp / "out", *TINY, "--keep-fraction", "0.5", "--keep-score", "px_knn_distance")
    n = len(pd.read_csv(tmp / "out" / "keep.csv"))
    need(n == 20, f"keep.csv holds {n} rows")
    return "keep.csv holds 20"


@case("CLI: --keep-fraction 1.5", "refuse", names="1.5")
def _(tmp):
    return cli(folder(tmp), "--out", tmp / "out", *TINY, "--keep-fraction", "1.5", "--keep-score", "px_knn_distance")


@case("CLI: --keep-fraction without --keep-score", "refuse", names="keep")
def _(tmp):
    return cli(folder(tmp), "--out", tmp / "out", *TINY, "--keep-fraction", "0.5")


@case("CLI: --keep-score without --keep-fraction", "refuse", names="--keep-fraction")
def _(tmp):
    return cli(folder(tmp), "--out", tmp / "out", *TINY, "--keep-score", "px_knn_distance")


@case("CLI: --keep-score of a family the run does not compute", "refuse", names="el2n")
def _(tmp):
    return cli(folder(tmp), "--out", tmp / "out", *TINY, "--keep-fraction", "0.5", "--keep-score", "el2n")


@case("CLI: --to-label 0", "refuse")
def _(tmp):
    return cli(folder(tmp), "--out", tmp / "out", *TINY, "--to-label", "0")


@case("CLI: --to-label 200%", "refuse")
def _(tmp):
    return cli(folder(tmp), "--out", tmp / "out", *TINY, "--to-label", "200%")


@case("CLI: --to-label abc", "refuse", names="abc")
def _(tmp):
    return cli(folder(tmp), "--out", tmp / "out", *TINY, "--to-label", "abc")


@case("CLI: --set unknown=1", "refuse", names="unknown")
def _(tmp):
    return cli(folder(tmp), "--out", tmp / "out", *TINY, "--set", "unknown=1")


@case("CLI: --set epochs=abc", "refuse", names="epochs")
def _(tmp):
    return cli(folder(tmp), "--out", tmp / "out", *TINY, "--set", "epochs=abc")


@case("CLI: --set epochs=-1", "refuse", names="epochs")
def _(tmp):
    return cli(folder(tmp), "--out", tmp / "out", *TINY, "--set", "epochs=-1")


@case("CLI: --set seed=4294967296", "refuse", names="seed")
def _(tmp):
    return cli(folder(tmp), "--out", tmp / "out", *TINY, "--set", "seed=4294967296")


@case("CLI: --set epochs (no value)", "refuse", names="epochs")
def _(tmp):
    return cli(folder(tmp), "--out", tmp / "out", *TINY, "--set", "epochs")


@case("CLI: --issue outlier.threshold=2", "refuse", names="threshold")
def _(tmp):
    return cli(folder(tmp), "--out", tmp / "out", *TINY, "--issue", "outlier.threshold=2")


@case("CLI: --issue nope.x=1", "refuse", names="nope")
def _(tmp):
    return cli(folder(tmp), "--out", tmp / "out", *TINY, "--issue", "nope.x=1")


@case("CLI: --issue outlier.threshold=abc", "refuse", names="abc")
def _(tmp):
    return cli(folder(tmp), "--out", tmp / "out", *TINY, "--issue", "outlier.threshold=abc")


@case("CLI: --tier bogus", "refuse", names="bogus")
def _(tmp):
    return cli(folder(tmp), "--out", tmp / "out", "--tier", "bogus")


@case("CLI: --out is a file", "refuse", names="out")
def _(tmp):
    (tmp / "out").write_text("x")
    return cli(folder(tmp), "--out", tmp / "out", *TINY)


@case("CLI: --out cannot be created", "refuse", names="/proc/probe_out")
def _(tmp):
    return cli(folder(tmp), "--out", "/proc/probe_out", *TINY)


@case("CLI: --out inside the image folder", "refuse", names="inside")
def _(tmp):
    root = folder(tmp)
    return cli(root, "--out", root / "report", *TINY)


def _labels_csv(tmp, root, lines):
    p = tmp / "labels.csv"
    p.write_text(lines)
    return p


def _all_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))


def _cli_with_csv(tmp, text):
    """The CLI on a flat folder of the 40 digits with the labels CSV ``text(files)``."""
    root = folder(tmp, classes=False)
    return cli(root, "--out", tmp / "out", *TINY, "--labels", _labels_csv(tmp, root, text(_all_files(root))))


def _cli_with_labels(tmp, extra: str = ""):
    """:func:`_cli_with_csv` with classes a, b alternating, plus ``extra`` rows (``{first}``: the first file)."""
    return _cli_with_csv(tmp, lambda files: "file,label\n" + "".join(f"{f},{'ab'[i % 2]}\n" for i, f in
                                                                   enumerate(files)) + extra.format(first=files[0]))


@case("CLI: --labels CSV")
def _(tmp):
    _cli_with_labels(tmp)
    s = scores_of(tmp / "out")
    need(s["class_name"].tolist() == ["ab"[i % 2] for i in range(40)], "class names wrong")
    return "class names from the CSV"


@case("CLI: --labels CSV with a repeated identical row", "either", names="labels.csv")
def _(tmp):
    _cli_with_labels(tmp, "{first},a\n")
    rows(scores_of(tmp / "out"))
    return "40 rows"


@case("CLI: --labels CSV with conflicting rows for one file", "refuse", names="labels.csv")
def _(tmp):
    return _cli_with_labels(tmp, "{first},b\n")


_BAD_CSV = {"empty": lambda files: "",
            "header only": lambda files: "file,label\n",
            "without the columns": lambda files: "a,b\n1,2\n",
            "missing an image": lambda files: "file,label\n" + "".join(f"{f},{i % 2}\n" for i, f in
                                                                       enumerate(files[1:]))}
for _what, _text in _BAD_CSV.items():
    case(f"CLI: --labels CSV {_what}", "refuse", names="labels.csv")(
        lambda tmp, text=_text: _cli_with_csv(tmp, text))


@case("CLI: --labels CSV that does not exist", "refuse", names="nope.csv")
def _(tmp):
    return cli(folder(tmp, classes=False), "--out", tmp / "out", *TINY, "--labels", tmp / "nope.csv")


@case("CLI: --labels CSV that is not a CSV (binary)", "refuse", names="labels.csv")
def _(tmp):
    root = folder(tmp, classes=False)
    p = tmp / "labels.csv"
    p.write_bytes(bytes(range(256)) * 4)
    return cli(root, "--out", tmp / "out", *TINY, "--labels", p)


@case("CLI: --labels with a dataset name", "refuse")
def _(tmp):
    p = tmp / "labels.csv"
    p.write_text("file,label\na,1\n")
    return cli("mnist-5k:test", "--out", tmp / "out", *TINY, "--labels", p)


@case("CLI: truncated cached Parquet, run again")
def _(tmp):
    root = folder(tmp)
    cli(root, "--out", tmp / "out", *TINY)
    a = scores_of(tmp / "out")
    p = next((tmp / "out" / "cache").glob("scores_pixels*.parquet"))
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    cli(root, "--out", tmp / "out", *TINY)
    same_scores(a, scores_of(tmp / "out"))
    return "recomputed, same scores"


# ================================================================================================ the runner
def one_sentence(msg: str) -> bool:
    """One line, no traceback, ending as a sentence (argparse's own 'argument --x: invalid choice ...' too)."""
    msg = msg.strip()
    return (bool(msg) and "\n" not in msg and "Traceback" not in msg and len(msg) < 600
            and (msg.endswith((".", ".)")) or msg.startswith("argument ")))


def run_case(c: Case, tmp: Path) -> tuple[str, str]:
    """(outcome, detail) of one case, run in the empty folder ``tmp``."""
    try:
        detail = c.run(tmp)
    except Silent as err:
        return "silent", str(err)
    except (ValueError, Refused, SystemExit) as err:
        msg = str(err)
        if not one_sentence(msg):
            return "crash", f"unclear refusal ({type(err).__name__}): {msg.strip()[:300]!r}"
        if c.names and c.names not in msg:
            return "crash", f"refusal does not name {c.names!r}: {msg}"
        return "refused", msg
    except Exception as err:     # noqa: BLE001 (the probe's purpose: any other exception is a crash)
        tb = traceback.extract_tb(err.__traceback__)[-1]
        return "crash", f"{type(err).__name__}: {str(err).strip()[:200]} ({Path(tb.filename).name}:{tb.lineno})"
    if c.expect == "refuse":
        return "silent", "a result, for an input that should be refused"
    return "ok", str(detail or "")


def probe(cases=None, keep: Path | None = None, out=sys.stdout) -> pd.DataFrame:
    """Run ``cases`` (default every one of :data:`CASES`), print the table and the summary; returns the table."""
    import warnings
    torch.set_num_threads(min(2, torch.get_num_threads()))
    cases = CASES if cases is None else cases
    base = Path(tempfile.mkdtemp(prefix="probe_")) if keep is None else Path(keep)
    records = []
    for i, c in enumerate(cases):
        tmp = base / f"case{i:03d}"
        tmp.mkdir(parents=True, exist_ok=True)
        tic = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outcome, detail = run_case(c, tmp)
        wrong = outcome == "refused" and c.expect == "ok"
        records.append({"case": c.name, "expect": c.expect, "outcome": outcome + (" (wrong)" if wrong else ""),
                        "s": round(time.perf_counter() - tic, 1), "detail": detail})
        print(f"{outcome:>8}{'!' if wrong else ' '} {records[-1]['s']:5.1f}s  {c.name}: {detail}", file=out,
              flush=True)
    if keep is None:
        shutil.rmtree(base, ignore_errors=True)
    table = pd.DataFrame(records)
    counts = {k: int(table["outcome"].str.startswith(k).sum()) for k in ("ok", "refused", "crash", "silent")}
    wrong = int(table["outcome"].str.endswith("(wrong)").sum())
    print(f"\n{len(table)} cases: {counts['ok']} ok, {counts['refused']} refused, {counts['crash']} crash, "
          f"{counts['silent']} silent" + (f"; {wrong} refused though a result was expected" if wrong else "")
          + f" ({table['s'].sum():.0f} s)", file=out)
    return table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", default=None, metavar="TEXT",
                   help="run the cases whose name contains TEXT (repeat the option for more)")
    p.add_argument("--keep", default=None, help="keep each case's files under this folder")
    args = p.parse_args(argv)
    cases = CASES if args.only is None else [c for c in CASES if any(s in c.name for s in args.only)]
    table = probe(cases, Path(args.keep) if args.keep else None)
    bad = table["outcome"].str.startswith(("crash", "silent")) | table["outcome"].str.endswith("(wrong)")
    return int(bad.any())


if __name__ == "__main__":
    sys.exit(main())
