"""The outlier flag against what it is meant to find, next to Datalab's ``is_outlier_issue`` on the same images.

    python -m benchmarks.bench_outlier --json results/bench_outlier.json      # about 5 min on 2 cores (make benchmark)

Cases: the planted folders of :mod:`benchmarks.bench_planted` (3,000 Fashion-MNIST images with 8 foreign MNIST
digits among the other planted problems; seeds 0 and 1, the positives are the digits) and the scoreboard's copies
with 10 % near-OOD, atypical or far-OOD images injected (:func:`utils.studies.scoreboard.make_copy`, seed 0; MNIST
test via ``DATA_ROOT`` and Fashion-MNIST test). On each, the pixel family runs once (``families=("pixels",)``), and
the flag of :data:`utils.scores.flags.ISSUES` ``outlier`` is computed with each rule of :data:`RULES` from the same
scores; the peer is Datalab's outlier check on PCA-50 features of the same pixels (as in ``bench_planted``).
Precision and recall of each against the injected or planted samples.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import write_json
import pandas as pd

# name -> outlier settings over the declared defaults (utils.scores.flags.ISSUES["outlier"])
RULES = {"declared": {},
         "datalab fence in every space": {"cos_threshold": 0.37037}}


def peer_flags(images) -> np.ndarray:
    """Datalab's ``is_outlier_issue`` on PCA-50 features of the pixels (its defaults)."""
    from cleanlab import Datalab
    from sklearn.decomposition import PCA

    flat = images.flatten(1).numpy().astype(np.float64)
    features = PCA(50, random_state=0).fit_transform(flat)
    with contextlib.redirect_stdout(io.StringIO()):
        lab = Datalab(data={"x": np.arange(len(flat))})
        lab.find_issues(features=features, issue_types={"outlier": {}})
    return lab.get_issues("outlier")["is_outlier_issue"].to_numpy(bool)


def measure(case: str, images, scores: pd.DataFrame, positive: np.ndarray) -> list[dict]:
    """One row per rule and for the peer: flagged, precision and recall of the flag against ``positive``."""
    from utils.metrics.detection import precision_recall
    from utils.scores.flags import ISSUES, issue_settings

    flags = {rule: ISSUES["outlier"].find(scores, issue_settings({"outlier": s})["outlier"]).to_numpy(bool)
             for rule, s in RULES.items()}
    flags["peer (Datalab, PCA-50)"] = peer_flags(images)
    rows = []
    for rule, f in flags.items():
        p, r = precision_recall(f, positive, zero_division=0.0)
        rows.append({"case": case, "rule": rule, "n": len(f), "positives": int(positive.sum()),
                     "flagged": int(f.sum()), "precision": p, "recall": r})
    return rows


def run(root=None, log=print) -> dict:
    from benchmarks.bench_planted import build_folder
    from utils.data.datasets import load_image_folder
    from utils.scores.dataset import ScoringConfig, score_dataset
    from utils.studies.scoreboard import BoardConfig, base_data, dataset_info, make_copy, ood_images

    pixels = dict(families=("pixels",), config=ScoringConfig(epochs=0))
    rows = []
    for seed in (0, 1):
        with tempfile.TemporaryDirectory() as tmp:
            build_folder(tmp, 3000, seed, data_root=root)
            images, _, files, sizes = load_image_folder(tmp, with_sizes=True)
            scores = score_dataset(images, sizes=sizes, **pixels)   # the folder read once
        rows += measure(f"planted folder, seed {seed}: foreign digits", images, scores,
                        np.array(["digit_" in f for f in files]))
        log(pd.DataFrame(rows[-3:]).to_string(index=False))
    for dataset in ("mnist", "fashion-mnist"):
        config = BoardConfig(dataset=dataset)
        try:
            base, ood = base_data(config, root), ood_images(config, root)
        except (FileNotFoundError, ValueError) as err:
            log(f"{dataset}: skipped ({err})")
            continue
        for kind in ("near_ood", "atypical", "far_ood"):
            data = make_copy(base, (kind,), 0, config, ood)
            scores = score_dataset(data.images, data.labels, data.ids, info=dataset_info(dataset), **pixels)
            positive = data.meta.reindex(scores.index)[kind].to_numpy(bool)
            rows += measure(f"{dataset} test, 10 % {kind}", data.images, scores, positive)
            log(pd.DataFrame(rows[-3:]).to_string(index=False))
    return {"rows": rows, "rules": RULES, "cores": os.cpu_count()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    result = run()
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
