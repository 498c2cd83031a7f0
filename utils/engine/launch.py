"""Command line for one run of the loop, in one process or across many under ``torchrun``.

    python -m utils.engine.launch --task cnn --dataset mnist-5k --epochs 3 --out results/cnn
    torchrun --standalone --nproc-per-node 2 -m utils.engine.launch --task cnn --dataset mnist-5k --epochs 3 --out results/cnn-ddp

Under ``torchrun`` every process joins the group (gloo on CPU, NCCL on GPU), trains its shard with
DistributedDataParallel and records its samples; records are gathered by sample id and only rank 0
writes ``<out>/`` (settings.json, model.pt, records.npz, measures.npz, history.csv). Sample ids are the
positions in the loaded split, so a run's tables join with any other study of the same split.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from utils.data.datasets import DATASETS, load_dataset
from utils.data.samples import Samples
from utils.engine.distributed import init_distributed
from utils.engine.loop import train
from utils.engine.recipes import RECIPES, get_recipe
from utils.engine.tasks import TASKS, make_task


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=TASKS, default="cnn")
    p.add_argument("--dataset", choices=DATASETS, default="mnist-5k")
    p.add_argument("--split", default="train")
    p.add_argument("--test-split", default="test", help="held-out split measured after every epoch ('' for none)")
    p.add_argument("--root", default=None, help="data folder (default: $DATA_ROOT, else ./data)")
    p.add_argument("--limit", type=int, default=None, help="train on a seeded random subset of this many samples")
    p.add_argument("--recipe", choices=tuple(RECIPES), default="paper")
    p.add_argument("--epochs", type=int, default=None, help="max epochs (default: the recipe's)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--measure", action="store_true", help="also measure every training sample after each epoch")
    p.add_argument("--no-record", action="store_true", help="do not record in-loop per-sample values")
    p.add_argument("--checkpoint-every", type=int, default=1)
    p.add_argument("--out", required=True, help="results folder (resumed if it holds a checkpoint)")
    args = p.parse_args(argv)
    for name in ("checkpoint_every", "epochs", "batch_size"):   # checked before any data is loaded or trained
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}.")
    return args


def build(args):
    """(task, recipe, training samples, eval sets) described by the command line."""
    images, labels, info = load_dataset(args.dataset, args.split, root=args.root)
    ids = np.arange(len(labels))
    if args.limit is not None:
        if not 0 < args.limit <= len(ids):
            raise SystemExit(f"--limit must lie in 1..{len(ids)}, got {args.limit}.")
        ids = np.sort(np.random.default_rng(0).choice(len(ids), args.limit, replace=False))
    data = Samples(images[ids], labels[ids], ids)
    evals = None
    if args.test_split:
        test_images, test_labels, _ = load_dataset(args.dataset, args.test_split, root=args.root)
        evals = {"test": Samples(test_images, test_labels, np.arange(len(test_labels)))}
    overrides = {k: v for k, v in (("max_epochs", args.epochs), ("batch_size", args.batch_size), ("lr", args.lr))
                 if v is not None}
    return make_task(args.task, info), get_recipe(args.recipe, **overrides), data, evals


def main(argv=None) -> int:
    args = parse(argv)
    rank, world = init_distributed()
    task, recipe, data, evals = build(args)
    run = train(task, recipe, data, seed=args.seed, folder=args.out, record=not args.no_record,
                measure_on=data if args.measure else None, eval_sets=evals,
                checkpoint_every=args.checkpoint_every, progress=rank == 0)
    if rank == 0:
        last = run.history.iloc[-1].drop("seconds").round(4).to_dict()
        print(f"{world} process(es), {len(data)} samples, {len(run.history)} epochs in "
              f"{run.history['seconds'].sum():.1f} s; last epoch {last}; results in {args.out}", flush=True)
    if world > 1:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
