"""Headless runner: executes the study notebooks top to bottom with papermill, then prints the scores.

    python -m utils.report.run_notebooks --mode quick --out results/quick            # `make run`
    python -m utils.report.run_notebooks --mode full --dataset mnist --split test \\
        --epochs 200 --out results/full --study seed --commit                  # `make reproduce`
    python -m utils.report.run_notebooks --mode full --study scoreboard --out results/board --commit   # `make scoreboard`
    python -m utils.report.run_notebooks --mode full --study pruning --out results/prune --commit      # `make pruning`

Quick mode trains on the embedded MNIST-5k (no data files, no internet) and writes executed copies
and figures under ``--out``. ``--commit`` overwrites the committed notebooks and ``images/`` instead (the README
sections are ``python -m utils.report``'s job). Executed notebooks carry no path of the machine that ran them:
papermill's metadata and every output name paths relative to the repository (:func:`relativize`); ``DATA_ROOT``
reaches the notebooks through the environment, never as a parameter. ``ssft/ssft-unsupervised.ipynb`` runs once per model (``TASK``): with
``--commit`` it is executed in place for the autoencoder (its default ``TASK``) and into the copy
``ssft-unsupervised-barlow-twins`` for BarlowTwins.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import pandas as pd

from utils.studies import outputs

ROOT = Path(__file__).resolve().parents[2]
SSL_AE = ("ae-reconstruction-L1", "ae-analysis", "ae-correlations")
UNSUPERVISED_TASKS = ("autoencoder", "barlow_twins")
UNSUPERVISED_NOTEBOOK = "ssft-unsupervised"   # one notebook, executed once per task


def unsupervised_name(task: str) -> str:
    """Name of the executed ssft-unsupervised for ``task``: the notebook itself for its default task (the
    autoencoder), a copy beside it for the others (``ssft-unsupervised-barlow-twins``)."""
    if task == UNSUPERVISED_TASKS[0]:
        return UNSUPERVISED_NOTEBOOK
    return f"{UNSUPERVISED_NOTEBOOK}-{task.replace('_', '-')}"


UNSUPERVISED = {unsupervised_name(t): t for t in UNSUPERVISED_TASKS}   # executed name -> TASK
SSFT = ("ssft-supervised", *UNSUPERVISED)
# ae-correlations runs last: it compares the autoencoder scores with the supervised SSFT times
QUICK = dict(DATASET="mnist-5k", SPLIT="train", EPOCHS=30, BATCH_SIZE=32, SNAPSHOT_EVERY=5)
# SSFT per executed notebook: quick mode keeps the method (3 model seeds, both halves, the recipe) and cuts epochs
SSFT_QUICK = {"ssft-supervised": dict(MAX_EPOCHS=2), unsupervised_name("autoencoder"): dict(MAX_EPOCHS=3),
              unsupervised_name("barlow_twins"): dict(MAX_EPOCHS=1)}
# full mode, sized for 2 CPU cores: the CNN keeps 3 seeds and the paper's 100-epoch horizon; LeNet (twice the
# CNN's time per epoch) and BarlowTwins get one seed, the autoencoder and BarlowTwins shorter horizons
SSFT_FULL = {"ssft-supervised": dict(MAX_EPOCHS=100, SEEDS={"cnn": [0, 1, 2], "lenet": [0]}),
             unsupervised_name("autoencoder"): dict(MAX_EPOCHS=15),
             unsupervised_name("barlow_twins"): dict(MAX_EPOCHS=10, SEEDS=[0], MODES=["matched"])}


# the scoreboard (scoreboard/): quick mode scores 600 MNIST-5k digits, one seed, a few epochs per family
SCOREBOARD = "hardness-scoreboard"
SCOREBOARD_QUICK = dict(DATASETS=["mnist-5k"], SPLIT="train", N=600, SEEDS=[0], ENCODER_EPOCHS=2, WORKERS=1,
                        ENCODER_POOL_SIZE=1000,
                        SCORING=dict(folds=3, epochs=3, el2n_epoch=1, ssft_epochs=2, ae_epochs=2, batch_size=64))
SCOREBOARD_FULL = dict(DATASETS=["mnist", "fashion-mnist"], SPLIT="test", SEEDS=[0, 1, 2])
# the pruning study (pruning/): quick mode prunes 1,500 MNIST-5k digits at one fraction, one seed, one epoch, both
# budgets, one label-noise study
PRUNING = "pruning-curves"
PRUNING_QUICK = dict(DATASET="mnist-5k", TRAIN_SPLIT="train", TEST_SPLIT="test", N=1500, FRACTIONS=[0.3, 1.0],
                     SEEDS=[0], NOISE=[["class_noise", 0.1]],
                     SERIES={"el2n": ["ccs"], "prototype": ["dedup_sorscher"], "redundancy": ["keep_easy"]},
                     EPOCHS=1, BATCH_SIZE=128, WORKERS=1,
                     ENCODER_EPOCHS=2, ENCODER_POOL_SIZE=1000,
                     SCORING=dict(folds=3, epochs=2, el2n_epoch=1, ssft_epochs=1, ae_epochs=2, batch_size=128))
PRUNING_FULL = dict(DATASET="fashion-mnist")
# scoring your own data (scoring/): quick mode scores 300 MNIST-5k test digits with the default tier's families
# (pixels, checks, K-fold pass, autoencoder) and a few epochs each
SCORING = "score-your-data"
SCORING_QUICK = dict(DATA="mnist-5k:test", N=300,
                     SCORING=dict(folds=2, epochs=2, el2n_epoch=1, ae_epochs=2, batch_size=64))
SCORING_FULL = dict(DATA="fashion-mnist:test")
# choosing what to label (labeling/): quick mode on 1,000 MNIST-5k digits, three budgets, two seeds, tiny trainings
LABELING = "choose-what-to-label"
LABELING_QUICK = dict(DATASET="mnist-5k", TRAIN_SPLIT="train", TEST_SPLIT="test", N=1000, N_TEST=500, SEEDS=[0, 1],
                      PLAN={"random": [20, 100], "balanced_random": [20, 100], "typiclust": [20],
                            "typiclust_pixels": [20], "probcover": [20], "elfs": [100], "ccs_aum": [100]},
                      STEPS=20, ENCODER_EPOCHS=1, OLD_ENCODER_EPOCHS=1, OLD_ENCODER_POOL=500, AE_EPOCHS=1,
                      PROXY_EPOCHS=2, BETA_GRID=[], WORKERS=1, TO_LABEL_N=300, TO_LABEL=30)
LABELING_FULL = dict(DATASET="fashion-mnist")
STUDIES = ("seed", "scoreboard", "pruning", "labeling", "scoring")


def source(name: str) -> Path:
    """The notebook file an executed notebook ``name`` comes from."""
    if name == SCOREBOARD:
        return ROOT / "scoreboard" / f"{name}.ipynb"
    if name == PRUNING:
        return ROOT / "pruning" / f"{name}.ipynb"
    if name == SCORING:
        return ROOT / "scoring" / f"{name}.ipynb"
    if name == LABELING:
        return ROOT / "labeling" / f"{name}.ipynb"
    if name in UNSUPERVISED:
        return ROOT / "ssft" / f"{UNSUPERVISED_NOTEBOOK}.ipynb"
    return ROOT / ("ssft" if name.startswith("ssft") else "ssl-ae") / f"{name}.ipynb"


def parameters(args) -> dict:
    """Training-notebook parameters for a mode; analysis notebooks need only RESULTS and IMAGES."""
    if args.mode == "quick":
        params = dict(QUICK)
    else:
        params = dict(DATASET=args.dataset, SPLIT=args.split, EPOCHS=args.epochs, BATCH_SIZE=args.batch_size,
                      SNAPSHOT_EVERY=max(1, args.epochs // 40))
    if args.epochs and args.mode == "quick":
        params.update(EPOCHS=args.epochs, SNAPSHOT_EVERY=max(1, args.epochs // 6))
    return params


def ssft_parameters(args, name: str) -> dict:
    """Parameters of one ssft/ notebook in the chosen mode (``--ssft-epochs`` overrides MAX_EPOCHS)."""
    if args.mode == "quick":
        params = dict(SSFT_QUICK[name], DATASET="mnist-5k", SPLIT="train")
    else:
        params = dict(SSFT_FULL[name], DATASET=args.dataset, SPLIT=args.split)
    if name in UNSUPERVISED:
        params["TASK"] = UNSUPERVISED[name]
    if args.ssft_epochs:
        params["MAX_EPOCHS"] = args.ssft_epochs
    return params


def execute(notebooks, params: dict, out_dir: Path, commit: bool, log_output: bool) -> None:
    import papermill as pm

    for name in notebooks:
        src = source(name)
        target = src.with_name(f"{name}.ipynb") if commit else out_dir / outputs.NOTEBOOKS_DIR / f"{name}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        tic = time.perf_counter()
        print(f"== {name} ==", flush=True)
        try:
            pm.execute_notebook(str(src), str(target), parameters=params, cwd=str(src.parent),
                                kernel_name="python3", progress_bar=True, log_output=log_output)
        finally:
            relativize(target)
        print(f"   {name}: {time.perf_counter() - tic:.0f} s -> {target}", flush=True)


def _relative(text: str) -> str:
    """``text`` with this machine's absolute paths made relative: the repository root, the virtual environment and
    the interpreter's installation."""
    for prefix, name in sorted({(str(ROOT), "."), (sys.prefix, "<venv>"), (sys.base_prefix, "<python>")},
                               key=lambda p: -len(p[0])):
        text = text.replace(prefix + "/", "" if name == "." else name + "/").replace(prefix, name)
    return text


def relativize(path: Path) -> None:
    """Rewrite an executed notebook so that it holds no absolute path of this machine: papermill's ``input_path``,
    ``output_path`` and parameters, and every output text (warnings name the files they come from)."""
    import nbformat

    path = Path(path)
    if not path.is_file():
        return
    nb = nbformat.read(path, as_version=4)
    meta = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if key in meta:
            meta[key] = _relative(os.path.abspath(meta[key]))
    for key, value in list(meta.get("parameters", {}).items()):
        if isinstance(value, str):
            meta["parameters"][key] = os.path.relpath(value, ROOT) if os.path.isabs(value) else _relative(value)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if "injected-parameters" in cell.metadata.get("tags", []):   # the notebook runs in its own folder
            cell.source = re.sub(r'"(/[^"]+)"', lambda m: json.dumps(os.path.relpath(m.group(1), path.parent)),
                                 cell.source)
        cell.source = _relative(cell.source)
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = _relative(out["text"])
            if "traceback" in out:
                out["traceback"] = [_relative(line) for line in out["traceback"]]
            for kind, value in out.get("data", {}).items():
                if kind.startswith("text/") and isinstance(value, str):
                    out["data"][kind] = _relative(value)
    nbformat.write(nb, path)


def print_tables(results: Path, top: int = 10) -> None:
    """The metric table (SRCC, AUROC, AP per metric) of each mixing mode, as the last thing printed."""
    for path in sorted(results.glob(outputs.SCORE_TABLE_GLOB)):
        table = pd.read_csv(path, index_col=0)
        print(f"\n{outputs.score_table_mode(path.name)} mixing (prevalence {table['prevalence'].iloc[0]:.4f}, "
              f"SRCC ceiling {table['srcc_ceiling'].iloc[0]:.4f}), top {top} of {len(table)} by AUROC:")
        print(table.head(top)[["auroc", "srcc", "ap", "precision", "recall"]].round(4).to_string())
    summary = results / outputs.SUMMARY
    if summary.is_file():
        print("\nTraining summary:\n" + pd.read_csv(summary, index_col=0).round(4).to_string())
    for name, title in ((outputs.SSFT_DETECTION, "SSFT mislabeled detection (flipped labels)"),
                        (outputs.ssft_unsupervised_detection("autoencoder"), "Autoencoder SSFT vs mixed images"),
                        (outputs.ssft_unsupervised_detection("barlow_twins"), "BarlowTwins SSFT vs mixed images")):
        path = results / name
        if path.is_file():
            table = pd.read_csv(path, index_col=[0, 1])
            print(f"\n{title}:\n" + table[["auroc", "ap", "precision", "recall"]].round(4).to_string())


def absolute_data_root(environ) -> None:
    """Make ``DATA_ROOT`` absolute, relative to where the command was typed: the notebooks (and the scoreboard's
    worker processes) run in their own folders, where a relative path would point elsewhere."""
    if environ.get("DATA_ROOT"):
        environ["DATA_ROOT"] = os.path.abspath(environ["DATA_ROOT"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("quick", "full"), default="quick")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--split", default="test")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ssft-epochs", type=int, default=None, help="max epochs per SSFT stage (overrides the mode's)")
    parser.add_argument("--skip-ssft", action="store_true", help="run only the autoencoder study")
    parser.add_argument("--out", default="results/quick")
    parser.add_argument("--commit", action="store_true", help="overwrite the committed notebooks, images/ and README")
    parser.add_argument("--quiet", action="store_true", help="do not stream cell output")
    parser.add_argument("--no-train", action="store_true",
                        help="labeling: train no final model, report the retrains already cached (a partial study)")
    parser.add_argument("--study", choices=(*STUDIES, "all"), default="all",
                        help="seed: the autoencoder and SSFT notebooks; scoreboard: the hardness scoreboard; "
                        "pruning: the pruning curves; labeling: choosing what to label; all (default): every study")
    args = parser.parse_args(argv)
    absolute_data_root(os.environ)
    if args.mode == "full" and not args.epochs:
        args.epochs = 200
    out = Path(os.path.normpath(ROOT / args.out))  # not resolve(): keep a symlinked results folder as named
    images = ROOT / outputs.IMAGES_DIR if args.commit else out / outputs.IMAGES_DIR
    params = parameters(args)
    rel = lambda path: os.path.relpath(path, ROOT / "ssl-ae")  # noqa: E731  (notebooks run in ssl-ae/)
    common = dict(RESULTS=rel(out), IMAGES=rel(images))
    tic = time.perf_counter()
    if args.study in ("seed", "all"):
        run_seed_study(args, params, common, out, rel)
    if args.study in ("scoreboard", "all"):
        board = dict(SCOREBOARD_QUICK if args.mode == "quick" else SCOREBOARD_FULL,
                     RESULTS=rel(out / outputs.SCOREBOARD_DIR), IMAGES=common["IMAGES"])
        from utils.studies.scoreboard import ood_available
        if args.mode == "quick" and not ood_available(board["DATASETS"][0]):
            from utils.data.inject import HARDNESS_TYPES
            print("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist): the quick scoreboard "
                  "skips far_ood, whose images come from it.")
            board["TYPES"] = [t for t in HARDNESS_TYPES if t != "far_ood"]
        execute([SCOREBOARD], board, out, args.commit, not args.quiet)
        print_scoreboard(out / outputs.SCOREBOARD_DIR)
    if args.study in ("pruning", "all"):
        prune = dict(PRUNING_QUICK if args.mode == "quick" else PRUNING_FULL,
                     RESULTS=rel(out / outputs.PRUNING_DIR), IMAGES=common["IMAGES"])
        execute([PRUNING], prune, out, args.commit, not args.quiet)
        print_pruning(out / outputs.PRUNING_DIR)
    if args.study in ("labeling", "all"):
        label = dict(LABELING_QUICK if args.mode == "quick" else LABELING_FULL,
                     RESULTS=rel(out / outputs.LABELING_DIR), IMAGES=common["IMAGES"],
                     **({"TRAIN": False} if args.no_train else {}))
        execute([LABELING], label, out, args.commit, not args.quiet)
        print_labeling(out / outputs.LABELING_DIR)
    if args.study in ("scoring", "all"):
        scoring = dict(SCORING_QUICK if args.mode == "quick" else SCORING_FULL,
                       OUT=rel(out / outputs.SCORING_DIR))
        execute([SCORING], scoring, out, args.commit, not args.quiet)
        print(f"\nScore your own data: report in {out / outputs.SCORING_DIR / 'report.html'}")
    print(f"\nDone in {time.perf_counter() - tic:.0f} s; executed notebooks and figures under {out}.")
    return 0


def print_scoreboard(results: Path) -> None:
    best = results / outputs.SCOREBOARD_BEST
    if best.is_file():
        print("\nScoreboard: best score per hardness type (mean AUROC over seeds):")
        print(pd.read_csv(best).round(3).to_string(index=False))


def print_pruning(results: Path) -> None:
    within, goals = results / outputs.PRUNING_WITHIN, results / outputs.PRUNING_GOALS
    if within.is_file():
        print("\nPruning: smallest kept fraction within 0.5 pt of full-data accuracy, per budget, score and policy:")
        print(pd.read_csv(within).round(4).to_string(index=False))
    if goals.is_file():
        print("\nPruning goals:")
        print(pd.read_csv(goals).to_string(index=False))


def print_labeling(results: Path) -> None:
    for name, title in ((outputs.LABELING_HEADLINE, "Choosing what to label: test accuracy per budget (paired "
                                                    "difference to random, pt)"),
                        (outputs.LABELING_GOALS, "Labeling goals")):
        if (results / name).is_file():
            print(f"\n{title}:")
            print(pd.read_csv(results / name).to_string(index=False))


def run_seed_study(args, params, common, out, rel) -> None:
    """The autoencoder study and the SSFT notebooks (the seed's study)."""
    execute(SSL_AE[:1], {**params, **common}, out, args.commit, not args.quiet)
    execute(SSL_AE[1:2], common, out, args.commit, not args.quiet)
    if not args.skip_ssft:
        for name in SSFT:  # notebooks run in ssft/, which sits beside ssl-ae/: the same relative paths work
            execute([name], {**ssft_parameters(args, name), **common}, out, args.commit, not args.quiet)
    execute(SSL_AE[2:], common, out, args.commit, not args.quiet)
    print_tables(out)


if __name__ == "__main__":
    sys.exit(main())
