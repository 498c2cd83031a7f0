"""How ``score_dataset`` scales: time and peak memory of each score family at growing N, one process per point.

    python -m benchmarks.bench_scale                       # N = 5k, 10k, 20k, 40k, 70k (Fashion-MNIST train + test)
    python -m benchmarks.bench_scale --sizes 500 1000 --json out.json      # a smoke run

The images are the first N of one seeded permutation of Fashion-MNIST's 70,000 (train ids 0..59,999, test ids
60,000..69,999), so every size holds the smaller ones. Each (N, family) runs ``score_dataset(..., families=(f,))``
with the thorough tier of :class:`~utils.scores.dataset.ScoringConfig` (every family trains), no cache folder, in a
fresh process: its time is the
sum of the family's steps (``attrs["seconds"]``) and its memory the process's peak resident set (``ru_maxrss``, data included). Per family the
exponent ``b`` of ``time ~ N^b`` is fitted by least squares on log-log (:func:`fit_exponent`). One more process
runs every family of the thorough tier together at the largest N only, and one more the default tier (what
``python -m utils.score`` runs unless told otherwise): the wall times a user waits (the 70,000 goals: 20 min for
every family, 10 min for the default tier, on 2 cores). The sum over families at a size is the same work done in separate processes. Last, the pixel
family's kNN pass at every N with both exact backends side by side (:func:`knn_backends`).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import write_json

SIZES = (5_000, 10_000, 20_000, 40_000, 70_000)


def fashion_70k(n: int, root=None):
    """The first ``n`` of a seeded (0) permutation of Fashion-MNIST train + test: images, labels, ids."""
    import torch

    from utils.data.datasets import load_dataset
    xtr, ytr, info = load_dataset("fashion-mnist", "train", root=root)
    xte, yte, _ = load_dataset("fashion-mnist", "test", root=root)
    x, y = torch.cat([xtr, xte]), torch.cat([ytr, yte])
    if n > len(x):
        raise ValueError(f"N={n} is more than the {len(x)} Fashion-MNIST images; pass sizes up to {len(x)}.")
    keep = np.sort(np.random.default_rng(0).permutation(len(x))[:n])
    return x[keep], y[keep], torch.from_numpy(keep), info


def one(n: int, family: str) -> dict:
    """Score the first ``n`` images with one family of the thorough tier, every family of it ("all") or the
    default tier ("default") in this process; its seconds and peak memory."""
    from utils.scores.dataset import ScoringConfig, score_dataset
    from utils.scores.registry import FAMILIES
    from utils.scores.steps import step_family

    x, y, ids, info = fashion_70k(n)
    families = FAMILIES if family in ("all", "default") else (family,)
    config = ScoringConfig.tier("default" if family == "default" else "thorough")
    t0 = time.perf_counter()
    scores = score_dataset(x, y, ids, info=info, families=families, config=config)
    wall = time.perf_counter() - t0
    steps = scores.attrs["seconds"]
    own = {s: t for s, t in steps.items() if family in ("all", "default") or step_family(s) == family}
    return {"n": n, "family": family, "seconds": float(sum(own.values())), "wall_s": wall,
            "steps": {s: float(t) for s, t in own.items()},
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def knn_backends(x: np.ndarray, k: int = 10) -> dict:
    """The pixel family's kNN pass on the rows ``x`` (raw 784-d pixels, float64) with both exact backends, side
    by side: seconds of each and the fraction of identical neighbour indices."""
    from utils.metrics.lid import knn

    n = len(x)
    times, out = {}, {}
    for backend in ("sklearn", "faiss"):
        t0 = time.perf_counter()
        out[backend] = knn(x, k, backend=backend)
        times[backend] = time.perf_counter() - t0
    same = float((out["sklearn"][1] == out["faiss"][1]).mean())
    gap = float(np.abs(out["sklearn"][0] - out["faiss"][0]).max())
    return {"n": n, "k": k, "seconds": times, "same_neighbours": same, "max_distance_diff": gap}


def fit_exponent(n, seconds) -> float:
    """``b`` of ``seconds ~ a * n^b``: the least-squares slope of log(seconds) on log(n)."""
    n, seconds = np.asarray(n, dtype=float), np.asarray(seconds, dtype=float)
    if len(n) < 2 or (seconds <= 0).any():
        raise ValueError("fit_exponent needs at least two sizes with positive times.")
    return float(np.polyfit(np.log(n), np.log(seconds), 1)[0])


def run(sizes, families, log=print) -> dict:
    rows = []
    for n in sizes:
        for family in (*families, "all", "default") if n == max(sizes) else families:
            out = subprocess.run([sys.executable, "-m", "benchmarks.bench_scale", "--one", str(n), family],
                                 capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(f"N={n} {family} failed:\n{out.stderr[-3000:]}")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            log(f"N={n:>6} {family:<16} {row['seconds']:8.1f} s  peak {row['peak_rss_mb']:7.0f} MB")
    knn_rows = []
    pixels = fashion_70k(max(sizes))[0].flatten(1).numpy().astype(np.float64)   # the first n rows: fashion_70k(n)
    for n in sizes:
        knn_rows.append(knn_backends(pixels[:n]))
        r = knn_rows[-1]
        log(f"N={n:>6} kNN pixels: sklearn {r['seconds']['sklearn']:.1f} s, faiss {r['seconds']['faiss']:.1f} s, "
            f"same neighbours {r['same_neighbours']:.4f}")
    exponents = {}
    for family in families:
        pts = [(r["n"], r["seconds"]) for r in rows if r["family"] == family]
        if len(pts) >= 2:
            exponents[family] = fit_exponent(*zip(*pts))
    return {"rows": rows, "exponents": exponents, "knn": knn_rows, "knn_exponent": knn_exponent(knn_rows),
            "cores": _cores()}


def knn_exponent(knn_rows) -> float:
    """Fitted exponent of the FAISS kNN pass's seconds over N (:func:`fit_exponent`)."""
    return fit_exponent([r["n"] for r in knn_rows], [r["seconds"]["faiss"] for r in knn_rows])


def _cores() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    p.add_argument("--families", nargs="+", default=None, help="default: every family")
    p.add_argument("--json", type=Path, default=None, help="write the measurements here")
    p.add_argument("--one", nargs=2, metavar=("N", "FAMILY"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1])))
        return 0
    from utils.scores.registry import FAMILIES
    result = run(args.sizes, tuple(args.families or FAMILIES))
    print(json.dumps(result["exponents"], indent=1))
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
