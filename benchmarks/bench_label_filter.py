"""Which ``filter_by`` of cleanlab's ``find_label_issues`` to use on a small folder: flagged share, precision and
recall of ``flag_label_issue`` per setting, on small labeled sets with a known share of wrong labels.

    python -m benchmarks.bench_label_filter                              # MNIST-5k and Fashion-MNIST test, 3 seeds
    python -m benchmarks.bench_label_filter --sizes 300 --seeds 0 --json out.json      # a smoke run

For each dataset, size N and seed: N images drawn (seeded) from the dataset, ``noise`` of their labels flipped
uniformly to another class (:func:`utils.data.mixing.flip_labels`), then one K-fold pass of the supervised family
with the default :class:`~utils.scores.dataset.ScoringConfig` (the pass ``score_dataset`` runs), and
:func:`utils.scores.label_quality.label_quality` on its out-of-sample probabilities once per ``filter_by`` setting
(the same probabilities for every setting, so the settings differ only in the rule). Fashion-MNIST needs
``DATA_ROOT`` or the Debian package; without it only MNIST-5k runs.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

FILTERS = ("prune_by_noise_rate", "both", "prune_by_class", "confident_learning", "predicted_neq_given")
DATASETS = (("mnist-5k", "train"), ("fashion-mnist", "test"))


def measure(dataset: str, split: str, n: int, seed: int, noise: float = 0.05, filters=FILTERS) -> list[dict]:
    """One K-fold pass on ``n`` seeded images of ``dataset`` with ``noise`` flipped labels; a row per filter."""
    import pandas as pd
    import torch

    from utils.data.datasets import load_dataset
    from utils.data.mixing import flip_labels
    from utils.metrics.detection import precision_recall
    from utils.scores import families
    from utils.scores.dataset import ScoringConfig, as_samples
    from utils.scores.label_quality import label_quality

    x, y, info = load_dataset(dataset, split)
    if n > len(x):
        raise ValueError(f"N={n} is more than the {len(x)} images of {dataset} {split}; pass smaller sizes.")
    rows = np.sort(np.random.default_rng(seed).permutation(len(x))[:n])
    noisy, flipped = flip_labels(y[rows], noise, seed=seed, num_classes=info.num_classes)
    data, info = as_samples(x[rows], noisy, torch.from_numpy(rows), info)
    t0 = time.perf_counter()
    folds = families.kfold_pass(data, info, ScoringConfig(seed=seed), None, False)
    seconds = time.perf_counter() - t0
    labels = pd.Series(data.labels.numpy(), index=pd.Index(data.ids, name="sample_id"))
    truth = pd.Series(flipped.numpy(), index=labels.index)
    out = []
    for f in filters:
        flag = label_quality(folds.probs, labels, filter_by=f)["flag_label_issue"]
        precision, recall = precision_recall(flag, truth.reindex(flag.index), zero_division=0.0)
        out.append({"dataset": dataset, "n": n, "seed": seed, "noise": noise, "filter_by": f,
                    "flagged": float(flag.mean()), "precision": precision, "recall": recall,
                    "kfold_seconds": seconds})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[600, 2000])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--json", default="results/bench_label_filter.json")
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    rows, skipped = [], []
    for dataset, split in DATASETS:
        for n in args.sizes:
            for seed in args.seeds:
                try:
                    rows += measure(dataset, split, n, seed, args.noise)
                except FileNotFoundError as e:   # Fashion-MNIST not on this machine
                    skipped.append(f"{dataset}: {e}")
                    break
                print(f"{dataset} N={n} seed={seed}: {rows[-1]['kfold_seconds']:.0f} s", flush=True)
            if skipped and skipped[-1].startswith(dataset):
                break
    for s in skipped:
        print("skipped", s)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": rows, "noise": args.noise, "skipped": skipped}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
