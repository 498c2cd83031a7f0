"""Training speed of the one loop, measured side by side in one run (interleaved repeats, medians).

    python -m benchmarks.bench_training            # the sizes the README reports
    python -m benchmarks.bench_training --quick    # a smoke run

1. Supervised CNN epoch with in-loop recording (loss, given-label logit, largest other logit, softmax
   probability, correctness per sample) over the same loop without recording (goal <= 1.05).
2. The seed autoencoder's epoch on 57,000 images at batch 512: plain, in-loop tracking, and eval-pass
   tracking (L1, entropy, norm, drift, SSIM every epoch, codes at snapshots) against 11.2 s, half the
   seed's 22.4 s GPU epoch.
3. Throughput of a 2-rank gloo run (``torchrun``, one thread per rank) against one process (two threads),
   on the same CNN epoch.
4. The eval pass that measures every sample (``task.measure``, the SSFT and autoencoder logs, K-fold predictions)
   on one thread, as a scoreboard worker runs it: the tasks' eval batch sizes (CNN 128, autoencoder 256) against
   the larger ones used before (1000, 2048). With channels-last weights, batches that stay in the CPU's cache win.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from utils.data.datasets import load_dataset
from utils.data.samples import Samples
from utils.engine.loop import train
from utils.engine.recipes import get_recipe
from utils.engine.tasks import make_task
from utils.studies.autoencoder import TrainConfig, train_autoencoder

SEED_GPU_EPOCH_S = 22.4
AE_GOAL_S = SEED_GPU_EPOCH_S / 2
ROOT = Path(__file__).resolve().parents[1]


def tiled(n: int):
    """n MNIST-sized real digits (the embedded 5k tiled): speed does not depend on which digits."""
    x, y, info = load_dataset("mnist-5k", "train")
    reps = -(-n // len(x))
    return x.repeat(reps, 1, 1, 1)[:n].contiguous(), y.repeat(reps)[:n].contiguous(), info


def supervised_epoch(images, labels, info, record: bool, batch_size: int) -> float:
    task = make_task("cnn", info)
    run = train(task, get_recipe("paper", max_epochs=1, batch_size=batch_size), Samples(images, labels,
                np.arange(len(images))), seed=0, record=record, progress=False)
    return float(run.history["seconds"].iloc[0])


def autoencoder_epoch(images, info, track: str, batch_size: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        cfg = TrainConfig(epochs=1, batch_size=batch_size, track=track, snapshot_every=1, checkpoint_every=1)
        run = train_autoencoder(images, np.arange(len(images)), cfg, folder, info=info, progress=False)
    return float(run.history["seconds"].iloc[0])


def ddp_epoch(nproc: int, limit: int, batch_size: int) -> float:
    """Seconds of the second epoch of a ``utils.engine.launch`` CNN run (the first warms up), from its history."""
    with tempfile.TemporaryDirectory() as folder:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               "-m", "utils.engine.launch", "--task", "cnn", "--dataset", "mnist-5k", "--limit", str(limit), "--epochs", "2",
               "--batch-size", str(batch_size), "--test-split", "", "--out", folder]
        if nproc == 1:
            cmd = [sys.executable, "-m", "utils.engine.launch", *cmd[cmd.index("utils.engine.launch") + 1:]]
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        return float(pd.read_csv(Path(folder) / "history.csv")["seconds"].iloc[-1])


def measure_pass(task, model, images, labels) -> float:
    """Seconds of one eval pass of ``task.measure`` over ``images`` (the model as the loop holds it: channels-last)."""
    tic = time.perf_counter()
    task.measure(model, task.prepare(images), labels if task.needs_labels else None, {}, 0)
    return time.perf_counter() - tic


def eval_batches(images, labels, info, repeats: int) -> dict:
    """One-thread eval pass of the CNN and the autoencoder at the tasks' default eval batch and the old one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    try:
        for name, sizes in (("cnn", (make_task("cnn", info).eval_batch_size, 1000)),
                            ("autoencoder", (make_task("autoencoder", info).eval_batch_size, 2048))):
            torch.manual_seed(0)
            model = make_task(name, info).make_model().to(memory_format=torch.channels_last)
            tasks = {f"batch {b}": make_task(name, info, eval_batch_size=b) for b in sizes}
            print(f"{name} eval pass, {len(images)} images, 1 thread")
            t = interleaved({k: (lambda task=task: measure_pass(task, model, images, labels)) for k, task in tasks.items()},
                            repeats)
            out[name] = {"images": len(images), "default_batch": sizes[0], "old_batch": sizes[1], "median_s": t,
                         "old_over_default": t[f"batch {sizes[1]}"] / t[f"batch {sizes[0]}"]}
    finally:
        torch.set_num_threads(threads)
    return out


def interleaved(fns: dict, repeats: int) -> dict:
    times = {k: [] for k in fns}
    for rep in range(repeats):
        for name in (list(fns) if rep % 2 == 0 else list(fns)[::-1]):
            times[name].append(fns[name]())
            print(f"  repeat {rep + 1} {name:16s} {times[name][-1]:.2f} s", flush=True)
    return {k: float(np.median(v)) for k, v in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    n_sup, n_ae, n_ddp = (2_000, 5_700, 2_000) if args.quick else (10_000, 57_000, 4_000)  # DDP: all of MNIST-5k train
    out = {"threads": torch.get_num_threads(), "repeats": args.repeats}

    x, y, info = tiled(n_sup)
    print(f"supervised CNN, {n_sup} images, batch 128")
    sup = interleaved({"plain": lambda: supervised_epoch(x, y, info, False, 128),
                       "recorded": lambda: supervised_epoch(x, y, info, True, 128)}, args.repeats)
    out["supervised"] = {"images": n_sup, "batch_size": 128, "median_epoch_s": sup,
                         "recorded_over_plain": sup["recorded"] / sup["plain"]}

    x, _, info = tiled(n_ae)
    print(f"autoencoder, {n_ae} images, batch 512")
    ae = interleaved({m: (lambda m=m: autoencoder_epoch(x, info, m, 512)) for m in ("none", "inloop", "eval")},
                     args.repeats)
    out["autoencoder"] = {"images": n_ae, "batch_size": 512, "median_epoch_s": ae,
                          "inloop_over_plain": ae["inloop"] / ae["none"], "eval_over_plain": ae["eval"] / ae["none"],
                          "eval_epoch_57k_s": ae["eval"] * 57_000 / n_ae,
                          "eval_epoch_over_goal": ae["eval"] * 57_000 / n_ae / AE_GOAL_S}

    print(f"CNN epoch on {n_ddp} images, batch 64 per process: 1 process (2 threads) vs 2 gloo ranks (1 thread each)")
    ddp = interleaved({"1 process": lambda: ddp_epoch(1, n_ddp, 64), "2 ranks": lambda: ddp_epoch(2, n_ddp, 64)},
                      args.repeats)
    out["ddp"] = {"images": n_ddp, "median_epoch_s": ddp, "samples_per_s": {k: n_ddp / v for k, v in ddp.items()},
                  "two_ranks_throughput_over_one": ddp["1 process"] / ddp["2 ranks"]}

    x, y, info = tiled(n_sup)
    out["eval_batch"] = eval_batches(x, y, info, args.repeats)

    print(f"\nsupervised in-loop recording / plain loop   {out['supervised']['recorded_over_plain']:.3f}   (goal <= 1.05)")
    print(f"autoencoder in-loop tracking / plain loop   {out['autoencoder']['inloop_over_plain']:.3f}")
    print(f"autoencoder eval-tracked epoch on 57k       {out['autoencoder']['eval_epoch_57k_s']:.2f} s   "
          f"(goal <= {AE_GOAL_S} s)")
    print(f"2 gloo ranks / 1 process throughput         {out['ddp']['two_ranks_throughput_over_one']:.3f}")
    for name, e in out["eval_batch"].items():
        print(f"{name} eval pass, batch {e['old_batch']} / batch {e['default_batch']} (1 thread)"
              f"{'':{max(0, 14 - len(name))}s}{e['old_over_default']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
