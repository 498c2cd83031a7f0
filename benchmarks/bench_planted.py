"""A real folder with planted problems, scored by this project and, side by side, by the peer a practitioner would
use for images: cleanlab's Datalab (PCA features, 5-fold logistic-regression probabilities) plus CleanVision.

    python -m benchmarks.bench_planted --json results/bench_planted.json      # 3,000 Fashion-MNIST images (make benchmark)
    python -m benchmarks.bench_planted --n 600 --json out.json                # a smoke run

The folder is built in code (:func:`build_folder`) from seeded Fashion-MNIST training images, one class sub-folder
per given label, with planted problems of known identity: wrong labels (an image filed under another class), exact
copies (byte-identical files), near copies (Gaussian noise sigma 0.02), blank images (black and white), digits from
MNIST (foreign images), blurred images (Gaussian sigma 1.5) and images of another size (32x32). Each tool runs in its
own process (``python -m utils.score`` with its defaults, the default tier, then with ``--tier thorough``; the peer
in :func:`peer`), timed by wall clock and CPU seconds; each planted type is then measured against each tool's flag
(precision, recall) and, where a tool has a score, its AUROC, and ``keep.csv`` against the planted problems
(:func:`keep_quality`). ``python -m utils.report --only planted`` writes the table into benchmarks/README.md. Needs Fashion-MNIST (DATA_ROOT or Debian's package) and ``cleanlab[datalab]``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
PLANTED = {"wrong_label": 90, "exact_copy": 30, "near_copy": 30, "blank": 8, "foreign": 8, "blurred": 8,
           "odd_size": 4}


def _save(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(np.round(array * 255), 0, 255).astype(np.uint8)).save(path)


def build_folder(root, n: int = 3000, seed: int = 0, planted: dict = PLANTED, data_root=None) -> pd.DataFrame:
    """Write ``n`` Fashion-MNIST images plus the ``planted`` problems into ``root``; returns the truth: one row per
    file with ``planted`` (the type or ``clean``), ``source`` (the file a copy copies) and the true class."""
    from scipy.ndimage import gaussian_filter, zoom

    from utils.data.datasets import load_dataset

    root = Path(root)
    rng = np.random.default_rng(seed)
    x, y, _ = load_dataset("fashion-mnist", "train", data_root)
    digits, _, _ = load_dataset("mnist-5k", "test")
    rows = rng.permutation(len(y))[:n]
    wrong = set(rng.choice(n, planted["wrong_label"], replace=False).tolist())
    truth = []
    for i, r in enumerate(rows):
        true = int(y[r])
        given = (true + int(rng.integers(1, 10))) % 10 if i in wrong else true
        file = f"{CLASSES[given]}/{i:05d}.png"
        _save(x[r, 0].numpy(), root / file)
        truth.append({"file": file, "planted": "wrong_label" if i in wrong else "clean", "true": true, "source": ""})
    clean = [t for t in truth if t["planted"] == "clean"]
    picks = rng.choice(len(clean), planted["exact_copy"] + planted["near_copy"] + planted["blurred"] + planted[
        "odd_size"], replace=False)
    k = 0
    for kind in ("exact_copy", "near_copy", "blurred", "odd_size"):
        for j in range(planted[kind]):
            src = clean[picks[k]]
            k += 1
            folder = src["file"].split("/")[0]
            file = f"{folder}/{kind}_{j:03d}.png"
            if kind == "exact_copy":
                (root / file).write_bytes((root / src["file"]).read_bytes())
            else:
                from PIL import Image

                img = np.asarray(Image.open(root / src["file"]), dtype=np.float64) / 255
                img = {"near_copy": lambda a: a + rng.normal(0, 0.02, a.shape),
                       "blurred": lambda a: gaussian_filter(a, 1.5),
                       "odd_size": lambda a: zoom(a, 32 / 28, order=1)}[kind](img)
                _save(img, root / file)
            truth.append({"file": file, "planted": kind, "true": src["true"],
                          "source": src["file"] if kind in ("exact_copy", "near_copy") else ""})
    for j in range(planted["blank"]):
        file = f"{CLASSES[j % 10]}/blank_{j:03d}.png"
        _save(np.full((28, 28), float(j % 2)), root / file)
        truth.append({"file": file, "planted": "blank", "true": j % 10, "source": ""})
    for j, r in enumerate(rng.choice(len(digits), planted["foreign"], replace=False)):
        file = f"{CLASSES[j % 10]}/digit_{j:03d}.png"
        _save(digits[r, 0].numpy(), root / file)
        truth.append({"file": file, "planted": "foreign", "true": j % 10, "source": ""})
    return pd.DataFrame(truth).sort_values("file", ignore_index=True)


def _timed(cmd: list[str]) -> dict:
    """Wall and CPU seconds (user + system of the child) of one command; its exit code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    tic = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - tic
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "returncode": done.returncode, "stderr": done.stderr[-2000:]}


def peer(folder, out) -> None:
    """Datalab (PCA-50 features, 5-fold logistic-regression probabilities) + CleanVision on ``folder``; writes
    ``out/peer.parquet`` (one row per file)."""
    from cleanlab import Datalab
    from cleanvision import Imagelab
    from PIL import Image
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    folder, out = Path(folder), Path(out)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.png"))
    pixels = np.stack([np.asarray(Image.open(folder / f).convert("L").resize((28, 28)), dtype=np.float32).ravel() / 255
                       for f in files])
    labels = np.array([CLASSES.index(f.split("/")[0]) for f in files])
    features = PCA(50, random_state=0).fit_transform(pixels)
    probs = cross_val_predict(LogisticRegression(max_iter=500), features, labels, cv=5, method="predict_proba")
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):   # Datalab prints its progress
        lab = Datalab(data={"label": labels}, label_name="label")
        lab.find_issues(features=features, pred_probs=probs)
    issues = lab.get_issues()
    vision = Imagelab(filepaths=[str(folder / f) for f in files], verbose=False)
    vision.find_issues()
    table = pd.concat([issues.reset_index(drop=True), vision.issues.reset_index(drop=True).add_prefix("cv_")], axis=1)
    table.insert(0, "file", files)
    out.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out / "peer.parquet")


def _pr(flag: np.ndarray, truth: np.ndarray) -> dict:
    from utils.metrics.detection import precision_recall

    precision, recall = precision_recall(flag, truth)
    return {"flagged": int(flag.sum()), "precision": precision, "recall": recall}


def _auroc(score: np.ndarray, truth: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, score)) if 0 < truth.sum() < len(truth) else float("nan")


def compare(truth: pd.DataFrame, ours: pd.DataFrame, theirs: pd.DataFrame) -> pd.DataFrame:
    """One row per (planted type, tool): the tool's flag against the planted files (precision, recall) and the
    AUROC of its score where it has one. Copies count as found when the copy or its source is flagged."""
    t = truth.set_index("file")
    o = ours.set_index("file").reindex(t.index)
    p = theirs.set_index("file").reindex(t.index)
    copies = t["planted"].isin(["exact_copy", "near_copy"])
    members = copies | t.index.isin(t.loc[copies, "source"])
    flag_cols = lambda frame, names: np.logical_or.reduce([frame[c].fillna(False).to_numpy(bool)  # noqa: E731
                                                           for c in names if c in frame] or [np.zeros(len(frame), bool)])
    rows = []
    checks = {
        "wrong_label": (t["planted"] == "wrong_label", ["flag_label_issue"], ["is_label_issue"],
                        ("cl_label_quality", -1), ("label_score", -1)),
        "duplicates": (members, ["flag_near_duplicate", "flag_exact_duplicates"],
                       ["is_near_duplicate_issue", "cv_is_exact_duplicates_issue", "cv_is_near_duplicates_issue"],
                       ("px_nn_distance", -1), ("near_duplicate_score", -1)),
        "foreign": (t["planted"] == "foreign", ["flag_outlier"], ["is_outlier_issue"],
                    ("px_knn_distance", 1), ("outlier_score", -1)),
        "blank": (t["planted"] == "blank", ["flag_dark", "flag_light", "flag_low_information"],
                  ["cv_is_dark_issue", "cv_is_light_issue", "cv_is_low_information_issue"], None, None),
        "blurred": (t["planted"] == "blurred", ["flag_blurry"], ["cv_is_blurry_issue"], None, None),
        "odd_size": (t["planted"] == "odd_size", ["flag_odd_size"], ["cv_is_odd_size_issue"], None, None),
    }
    for kind, (target, our_flags, peer_flags, our_score, peer_score) in checks.items():
        target = np.asarray(target, bool)
        for tool, frame, flags, score in (("ours", o, our_flags, our_score), ("peer", p, peer_flags, peer_score)):
            row = {"planted": kind, "tool": tool, "n": int(target.sum()), **_pr(flag_cols(frame, flags), target)}
            if score is not None and score[0] in frame:
                row["auroc"] = _auroc(score[1] * frame[score[0]].to_numpy(float), target)
            rows.append(row)
    return pd.DataFrame(rows)


def keep_quality(truth: pd.DataFrame, keep: pd.DataFrame) -> dict:
    """How ``keep.csv`` (the files it keeps) does against the planted problems: the files it drops, the share of them
    that a planted problem justifies (a planted file, or the source of a copy whose copy is kept: one member of
    each pair is meant to go), and the share of the planted problems it drops (wrong labels, blanks, blurred and
    odd-sized images, one member of each copy pair; foreign images are listed as outliers, not dropped, by the
    policy of :func:`utils.scores.flags.clean_keep`)."""
    t = truth.set_index("file")
    dropped = ~t.index.isin(keep["file"])
    copies = t[t["planted"].isin(["exact_copy", "near_copy"])]
    pair_dropped = ~copies.index.isin(keep["file"]) | ~copies["source"].isin(keep["file"]).to_numpy()
    justified = dropped & (t["planted"].ne("clean").to_numpy() | t.index.isin(copies["source"]))
    singles = t["planted"].isin(["wrong_label", "blank", "blurred", "odd_size"]).to_numpy()
    found = int((dropped & singles).sum()) + int(pair_dropped.sum())
    return {"dropped": int(dropped.sum()), "precision": float(justified.sum() / max(dropped.sum(), 1)),
            "recall": found / (int(singles.sum()) + len(copies)),
            "clean_dropped": int((dropped & ~justified).sum()),
            "foreign_dropped": int((dropped & t["planted"].eq("foreign").to_numpy()).sum())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="results/planted")
    parser.add_argument("--json", default=None)
    parser.add_argument("--peer", nargs=2, metavar=("FOLDER", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer:
        peer(*args.peer)
        return 0
    import shutil

    from utils.engine.cache import load_table

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    truth = build_folder(work / "images", args.n, args.seed)
    ours_cmd = [sys.executable, "-m", "utils.score", str(work / "images"), "--quiet", "--out"]
    runs = {"ours": _timed([*ours_cmd, str(work / "ours")]),
            "peer": _timed([sys.executable, "-m", "benchmarks.bench_planted", "--peer", str(work / "images"),
                            str(work / "peer")]),
            "ours_thorough": _timed([*ours_cmd, str(work / "ours_thorough"), "--tier", "thorough"])}
    for name, r in runs.items():
        print(f"{name}: {r['wall_s']:.0f} s wall, {r['cpu_s']:.0f} CPU-s, exit {r['returncode']}")
        if r["returncode"]:
            print(r["stderr"])
    blank = pd.DataFrame({"file": truth["file"]})
    theirs = pd.read_parquet(work / "peer" / "peer.parquet") if not runs["peer"]["returncode"] else blank
    tables, keeps, steps = [], {}, {}
    for tier in ("ours", "ours_thorough"):
        ok = not runs[tier]["returncode"]
        ours = load_table(work / tier / "scores.parquet") if ok else blank
        t = compare(truth, ours, theirs)
        tables.append(t.assign(tool=t["tool"].replace("ours", tier)))
        if ok:
            keeps[tier] = keep_quality(truth, pd.read_csv(work / tier / "keep.csv"))
            steps[tier] = ours.attrs.get("seconds", {})
    table = pd.concat(tables).drop_duplicates(["planted", "tool"], ignore_index=True)
    print(table.round(3).to_string(index=False))
    print("keep.csv:", keeps)
    if args.json:
        Path(args.json).write_text(json.dumps({"n": args.n, "seed": args.seed, "planted": PLANTED,
                                               "cores": os.cpu_count(),
                                               "runs": {k: {m: v for m, v in r.items() if m != "stderr"}
                                                        for k, r in runs.items()},
                                               "refused": {k: r["stderr"] for k, r in runs.items() if r["returncode"]},
                                               "table": table.to_dict("records"), "keep": keeps,
                                               "steps": steps}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
