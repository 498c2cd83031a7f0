"""A probe of issue 21's lever: does TypiClust pick better low-budget sets on another label-free embedding?

    .venv/bin/python labeling/probe_features.py --out results/label-probe        # budgets 60, 300, 600; 5 paired seeds

The committed study (``make labeling``) found its BarlowTwins encoder no better than PCA-50 pixels (kNN-20 0.855 vs
0.858, k-means(10) 0.453 vs 0.476), and TypiClust on either at +4.6 / +4.7 pt over random at 60 labels against a
goal of +8. This probe runs TypiClust (:func:`utils.scores.labeling.typiclust`, K = budget) on cheap embeddings that
need no GPU, under the study's own final-model protocol (:func:`utils.studies.labeling.protocol`: the CNN, 300
optimizer steps, batch min(256, b), the same seeds and the same retrain cache layout), next to ``random`` and
``typiclust_pixels``, which reproduce two series of the committed table (a check that the probe measures what the
study measures):

* ``pca_pixels``: PCA-50 of the pixels (the study's ``typiclust_pixels``);
* ``hog``: histograms of oriented gradients (scikit-image's ``hog``, 9 orientations, 4x4-pixel cells, 2x2-cell
  blocks), L2-normalised blocks, then PCA-50 — edges and shape, insensitive to a garment's brightness;
* ``ae_code``: the study's autoencoder code (5 epochs, MSE, 10-d), the best k-means accuracy of the study's table.

Labels are read only by the final model and the representation table (kNN-20 and k-means(10) accuracy). Every
retrain is cached under ``--out``; a killed probe resumes. Writes ``probe.csv`` (one row per method, budget, seed),
and prints the mean test accuracy and the paired difference to random with a 95 % t-interval.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def hog_features(images, dims: int = 50) -> np.ndarray:
    """PCA-``dims`` of scikit-image's HOG of each image ``[N, 1, H, W]`` (label-free)."""
    from skimage.feature import hog
    from sklearn.decomposition import PCA

    x = images[:, 0].numpy()
    h = np.stack([hog(im, orientations=9, pixels_per_cell=(4, 4), cells_per_block=(2, 2), block_norm="L2-Hys")
                  for im in x])
    return PCA(dims, random_state=0).fit_transform(h.astype(np.float64))


def main(argv=None) -> int:
    from sklearn.decomposition import PCA

    from utils.scores import labeling as L
    from utils.studies.labeling import LabelingConfig, _load, _retrain_shard, ae_code, representations, write_probe

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("results/label-probe"))
    p.add_argument("--budgets", type=int, nargs="+", default=[60, 300, 600])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--spaces", nargs="+", default=["pca_pixels", "hog", "ae_code"])
    p.add_argument("--n", type=int, default=None, help="a seeded subset of the pool (a smoke run)")
    args = p.parse_args(argv)
    config = LabelingConfig(n=args.n, seeds=tuple(args.seeds))
    pool, test, info = _load(config, None)
    makers = {"pca_pixels": lambda: PCA(50, random_state=0).fit_transform(
                  pool.images.flatten(1).numpy().astype(np.float64)),
              "hog": lambda: hog_features(pool.images),
              "ae_code": lambda: ae_code(pool, info, config.ae_epochs, args.out / "autoencoder")}
    feats = {name: makers[name]() for name in args.spaces}
    reps = representations(feats, pool.labels.numpy(), config.clusters)
    print(reps.round(3).to_string())
    jobs = []
    for b in args.budgets:
        for seed in args.seeds:
            jobs.append(("random", b, seed, L.random_draw(pool.ids, b, seed)["sample_id"].to_numpy()))
            for name, z in feats.items():
                method = "typiclust_pixels" if name == "pca_pixels" else f"typiclust_{name}"
                jobs.append((method, b, seed, L.typiclust(z, b, pool.ids, seed)["sample_id"].to_numpy()))
    rows = _retrain_shard(jobs, pool, test, config, info, args.out / "runs")
    write_probe(pd.DataFrame(rows), args.out, reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
