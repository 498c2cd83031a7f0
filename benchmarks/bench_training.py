"""Training speed with and without per-sample tracking, measured side by side in one run.

    python -m benchmarks.bench_training            # 57,000 images, 3 interleaved repeats
    python -m benchmarks.bench_training --quick    # 5,700 images, a smoke run

Prints the median seconds per epoch of the plain loop (no tracking), in-loop tracking and the seed's
eval-mode tracking (post-epoch pass with L1, entropy, norm, drift, SSIM), and the ratios
in-loop / plain (goal <= 1.05) and eval / seed GPU epoch (goal: <= 22.4 s per epoch on 57,000 images).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch

from utils.data import load_dataset
from utils.training import TrainConfig, train_autoencoder

SEED_GPU_EPOCH_S = 22.4


def images_57k(n: int) -> torch.Tensor:
    """n MNIST-sized real digits (the embedded 5k tiled): speed does not depend on which digits."""
    x, _ = load_dataset("mnist-5k", "train")
    reps = -(-n // len(x))
    return x.repeat(reps, 1, 1, 1)[:n].contiguous()


def epoch_seconds(images, track: str, batch_size: int) -> float:
    ids = np.arange(len(images))
    with tempfile.TemporaryDirectory() as folder:
        cfg = TrainConfig(epochs=1, batch_size=batch_size, track=track, snapshot_every=1, checkpoint_every=1)
        result = train_autoencoder(images, ids, cfg, folder, progress=False)
    return float(result.history["seconds"].iloc[0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    n = 5_700 if args.quick else 57_000
    images = images_57k(n)
    modes = ("none", "inloop", "eval")
    times = {m: [] for m in modes}
    print(f"{n} images, batch {args.batch_size}, {torch.get_num_threads()} threads, {args.repeats} interleaved repeats")
    for rep in range(args.repeats):
        for mode in (modes if rep % 2 == 0 else modes[::-1]):
            times[mode].append(epoch_seconds(images, mode, args.batch_size))
            print(f"  repeat {rep + 1} {mode:7s} {times[mode][-1]:.2f} s", flush=True)
    med = {m: float(np.median(v)) for m, v in times.items()}
    out = {
        "images": n, "batch_size": args.batch_size, "median_epoch_s": med,
        "inloop_over_plain": med["inloop"] / med["none"],
        "eval_over_plain": med["eval"] / med["none"],
        "eval_epoch_over_seed_gpu_epoch": med["eval"] * (57_000 / n) / SEED_GPU_EPOCH_S,
    }
    print(f"\n{'mode':10s}{'s/epoch':>10s}")
    for m in modes:
        print(f"{m:10s}{med[m]:10.2f}")
    print(f"\nin-loop tracking / plain loop      {out['inloop_over_plain']:.3f}   (goal <= 1.05)")
    print(f"eval-pass tracking / plain loop    {out['eval_over_plain']:.3f}")
    print(f"eval-tracked epoch on 57k / 22.4 s {out['eval_epoch_over_seed_gpu_epoch']:.3f}   (goal <= 1.00)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
