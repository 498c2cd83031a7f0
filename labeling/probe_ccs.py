"""A calibration probe of issue 21: why is supervised CCS below random at 10 % here, against +7 pt in the CCS paper?

    .venv/bin/python labeling/probe_ccs.py --out results/label-ccs          # 6,000 labels (10 %), 5 paired seeds

The committed study's ``ccs_aum`` (CCS by the AUM of a 10-epoch proxy run on the true labels, inside each class with
proportional quotas, 50 equal-width strata, the hardest beta = 0.3 cut at 10 %) is 1.85 pt below random at 6,000.
CCS has two parts: the hard cut (beta) and the stratified draw over the score's range, which gives every stratum
the same budget and so over-samples the sparse, harder strata against the crowded easy ones. This probe separates
them under the study's own protocol (:func:`utils.studies.labeling.protocol`, the same proxy run and retrain cache
layout): ``random``; ``ccs_aum_beta<b>`` for a grid of beta (0 = no cut: the stratified draw alone); and
``cut_beta<b>``, the same hard cut followed by a uniform random draw of the rest (the cut alone). Writes
``probe.csv`` and prints the mean test accuracy and the paired difference to random.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def cut_then_random(hardness: pd.Series, classes: pd.Series, b: int, seed: int, beta: float) -> np.ndarray:
    """Inside each class (proportional quotas, as the study's CCS: :func:`utils.studies.labeling.by_class`): drop
    the hardest ``beta`` of the class, then a seeded uniform draw of its quota from the rest."""
    from utils.studies.labeling import by_class

    rng = np.random.default_rng([seed, 21])

    def pick(h, q):
        pool = h.sort_values(kind="stable").index.to_numpy()[:len(h) - int(round(beta * len(h)))]
        return rng.choice(pool, size=min(q, len(pool)), replace=False)
    return np.sort(by_class(hardness, classes, b, pick))


def main(argv=None) -> int:
    from utils.scores import labeling as L
    from utils.scores.families import label_dynamics
    from utils.studies.labeling import LabelingConfig, _ccs, _load, _retrain_shard, write_probe

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("results/label-ccs"))
    p.add_argument("--budget", type=int, default=6000)
    p.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.1, 0.3])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--n", type=int, default=None, help="a seeded subset of the pool (a smoke run)")
    args = p.parse_args(argv)
    config = LabelingConfig(n=args.n, seeds=tuple(args.seeds))
    pool, test, info = _load(config, None)
    dyn = label_dynamics(pool, info, config.proxy_epochs, folder=args.out / "proxy_true")
    hard = -dyn["aum"]                                  # higher = harder
    classes = pd.Series(pool.labels.numpy(), index=pool.ids)
    jobs = []
    for seed in args.seeds:
        jobs.append(("random", args.budget, seed, L.random_draw(pool.ids, args.budget, seed)["sample_id"].to_numpy()))
        for beta in args.betas:
            jobs.append((f"ccs_aum_beta{beta:g}", args.budget, seed, _ccs(hard, classes, args.budget, seed, beta)))
            if beta > 0:
                jobs.append((f"cut_beta{beta:g}", args.budget, seed,
                             cut_then_random(hard, classes, args.budget, seed, beta)))
    write_probe(pd.DataFrame(_retrain_shard(jobs, pool, test, config, info, args.out / "runs")), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
