"""Score your own images from the command line, and get a report to act on.

    python -m utils.score PATH --out DIR [--labels LABELS.csv] [--tier thorough] [--families pixels supervised ...]
                               [--set epochs=3 ae_epochs=4 ...] [--keep-fraction 0.5 --keep-score bt_prototype_distance]
                               [--issue outlier.threshold=0.2 ...] [--force] [--to-label 300 | --to-label 5%]

``PATH`` is an image folder (class sub-folders give the labels; a folder of images without sub-folders is
unlabeled) or a dataset :func:`utils.data.datasets.load_dataset` knows, as ``name`` or ``name:split``
(``fashion-mnist:test``). ``--labels`` is a CSV with columns ``file,label`` (paths relative to ``PATH``, class names
or numbers) that replaces the sub-folder labels. ``--tier`` picks how much is trained
(:data:`utils.scores.dataset.TIERS`: the fast default, or ``thorough``: every family). Every family is cached in ``DIR/cache`` (a killed call resumes; a
later call with labels reuses the label-free families; a step cached by another version of its code is refused,
and ``--force`` recomputes and overwrites it). ``--issue`` sets an issue type's rule (``outlier.threshold=0.2``:
``ScoringConfig.issue_types``, :data:`utils.scores.flags.ISSUES`). Writes ``DIR/scores.parquet``, the action lists and
``DIR/report.html`` (:mod:`utils.report.dataset_report`). Under ``torchrun --nproc-per-node N -m utils.score ...``
the families' trainings spread over the N processes and give the scores of one process.

``--to-label N`` (a count or a percentage) also chooses which images of the (unlabeled) pool to label first
(:func:`utils.scores.to_label.choose_to_label`): ``DIR/to_label.csv`` (order, id, file, cluster, why chosen) and a
report section with the chosen images per cluster and a map of the embedding.

The command-line entry point sits above every layer of the package: it only calls into them. What ``--help``
shows is written for users, in :data:`DESCRIPTION`, :data:`EPILOG` and the options' groups of :func:`parser`.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def load_input(path: str, labels_csv: str | None = None, root=None, with_sizes: bool = False):
    """(images, labels or None, files or None, class names or None) for a folder or a known dataset name; with
    ``with_sizes`` also the original (height, width) of each image of a folder (None for a dataset), for
    ``score_dataset(..., sizes=)`` (a folder of several sizes is resized to one, see ``load_image_folder``)."""
    from utils.data.datasets import DATASETS, load_dataset, load_image_folder

    p = Path(path)
    sizes = None
    if p.is_dir():
        images, labels, files, sizes = load_image_folder(p, with_sizes=True)
        classes = sorted({Path(f).parts[0] for f in files if len(Path(f).parts) > 1}) or None
    else:
        name, _, split = path.partition(":")
        if name not in DATASETS:
            raise ValueError(f"{path} is neither a folder nor a known dataset ({', '.join(DATASETS)}, optionally "
                             "with ':train' or ':test'); pass a folder of images or a dataset name.")
        images, labels, _ = load_dataset(name, split or "train", root)
        files, classes = None, None
    if labels_csv is not None:
        if files is None:
            raise ValueError("--labels maps file names to labels: it needs an image folder as PATH.")
        given = read_labels_csv(labels_csv).reindex(files)
        if given.isna().any():
            missing = [f for f, v in zip(files, given) if pd.isna(v)][:3]
            raise ValueError(f"{labels_csv} has no label for {int(given.isna().sum())} images (e.g. {missing}); "
                             "give every image a label.")
        codes, classes = pd.factorize(given.astype(str), sort=True)
        labels, classes = codes.astype(np.int64), list(classes)
    return (images, labels, files, classes, sizes) if with_sizes else (images, labels, files, classes)


def read_labels_csv(path) -> pd.Series:
    """The label of each file of a ``file,label`` CSV (rows repeated with the same label counted once), or one
    sentence naming the CSV: missing, empty, not a CSV, without those columns, or giving a file two labels."""
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist; pass a CSV with the columns file,label.") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty; write the columns file,label and a row per image.") from None
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        why = str(getattr(err, "strerror", None) or err).strip().splitlines()[0].rstrip(".")
        raise ValueError(f"Cannot read {path} as a CSV ({why}); pass a CSV with the columns file,label.") from None
    if not {"file", "label"} <= set(table.columns):
        raise ValueError(f"{path} needs the columns file,label (got {', '.join(map(str, table.columns))}).")
    table = table.drop_duplicates(["file", "label"])
    twice = table["file"][table["file"].duplicated()]
    if len(twice):
        raise ValueError(f"{path} gives {len(twice)} files two or more labels (e.g. {twice.iloc[0]!r}); keep one "
                         "row per file.")
    return table.set_index("file")["label"]


def check_keep(fraction, score, families) -> str | None:
    """Why ``--keep-fraction`` / ``--keep-score`` cannot choose the kept images (one sentence), or None: checked
    before any training, so a run never fails after it because of them."""
    from utils.scores.registry import SCORES
    from utils.scores.selection import keep_count

    if fraction is None and score is None:
        return None
    if fraction is None or score is None:
        return "--keep-fraction and --keep-score go together: the fraction kept, and the score that ranks them."
    try:
        keep_count(fraction, 1)
    except ValueError as err:
        return f"--keep-fraction: {err}"
    if score not in SCORES:
        import difflib
        close = difflib.get_close_matches(score, list(SCORES), n=3)
        return (f"--keep-score {score!r} is not a score" + (f" (did you mean {', '.join(close)}?)" if close else "")
                + "; every score is listed in docs/scores.md.")
    family = SCORES[score].family
    if family not in families:
        return (f"--keep-score {score} comes from the {family} family, which this run does not compute; add it to "
                "--families.")
    return None


def to_label(budget, images, files, config, out: Path, progress: bool) -> list:
    """Write ``out/to_label.csv`` for ``budget`` images of the pool; returns the report's sections for it."""
    from utils.report.to_label_report import to_label_sections, to_label_table
    from utils.scores.to_label import choose_to_label

    picks, layout = choose_to_label(images, budget, config=config, folder=out / "cache", progress=progress)
    to_label_table(picks, files).to_csv(out / "to_label.csv", index=False)
    return to_label_sections(picks, layout, images)


def _with_issue_types(config, items, parser):
    """``config`` with the ``--issue ISSUE.SETTING=VALUE`` items as its ``issue_types`` (numbers, or comma-separated
    score names); a malformed item or an unknown issue or setting ends the call with one sentence."""
    from dataclasses import replace
    types = {}
    for item in items:
        key, sep, value = item.partition("=")
        issue, dot, setting = key.partition(".")
        if not (sep and dot):
            parser.error(f"--issue takes ISSUE.SETTING=VALUE pairs (e.g. outlier.threshold=0.2), got {item!r}.")
        try:
            parsed = float(value)
        except ValueError:
            parsed = value.split(",")
        types.setdefault(issue, {})[setting] = parsed
    try:
        return replace(config, issue_types=types) if types else config
    except ValueError as err:
        parser.error(str(err))


def out_problem(out, path) -> str | None:
    """Why ``--out`` cannot hold the results (one sentence), or None; creates the folder when it can."""
    out, source = Path(out), Path(path)
    if source.is_dir() and out.resolve().is_relative_to(source.resolve()):
        return (f"--out {out} is inside the image folder {path}, so the next run would read its report figures as "
                "images; pick a folder outside it.")
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file, not a folder; pass a folder (it is created when missing)."
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"--out {out} cannot be created ({err.strerror or err}); pass a folder you can write to."
    if not os.access(out, os.W_OK | os.X_OK):
        return f"--out {out} is not writable; pass a folder you can write to."
    return None


DESCRIPTION = """\
Find the images of a dataset worth a second look: labels that are probably wrong, exact and near
copies, outliers, and images that are dark, light, low in information, blurry or of an odd size.
Writes a report that says what to do about each, in which order, with the lists to act on.

PATH is a folder of images (sub-folders named by class give the labels; a folder without
sub-folders is scored without labels) or a dataset name such as fashion-mnist:test."""

EPILOG = """\
examples:
  python -m utils.score path/to/images --out results/my-report
  python -m utils.score path/to/images --out results/quick --families pixels supervised --set epochs=3
  python -m utils.score path/to/images --out results/my-report --labels labels.csv --quiet
  python -m utils.score path/to/images --out results/my-report --tier thorough   # every score
  python -m utils.score path/to/unlabeled --out results/pool --to-label 5%
  torchrun --nproc-per-node 2 -m utils.score path/to/images --out results/my-report   # 2 processes

writes into --out:
  report.html      open it first: where to start, each issue with its images, the score distributions
  relabel.csv      label issues: file, given class, suggested class
  duplicates.csv   groups of exact and near copies, the one to keep marked
  outliers.csv     images far from all the others
  keep.csv         the images left once the flagged ones are dropped
  scores.parquet   one row per image: every score and flag, with its file and class
  to_label.csv     with --to-label: the images to label first, in that order
  figure_*.png     the report's figures
  cache/           what each step computed: a run stopped or run again picks up from here

Only the summary line goes to stdout; progress bars go to stderr (none with --quiet)."""


def build_parser() -> argparse.ArgumentParser:
    """The command line, its help written for users (:data:`DESCRIPTION`, :data:`EPILOG`), options in groups."""
    from utils.scores.dataset import TIERS, ScoringConfig
    from utils.scores.registry import FAMILIES

    settable = [f"{f.name}={f.default}" for f in dataclasses.fields(ScoringConfig) if f.type in ("int", "str", "float")]
    p = argparse.ArgumentParser(prog="python -m utils.score", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    given = p.add_argument_group("input")
    given.add_argument("path", metavar="PATH", help="a folder of images, or a dataset name (e.g. fashion-mnist:test)")
    given.add_argument("--labels", metavar="CSV",
                       help="labels for an image folder: a CSV with columns file,label (file paths relative to PATH; "
                            "class names or numbers); replaces the sub-folder names")
    written = p.add_argument_group("output")
    written.add_argument("--out", required=True, metavar="DIR",
                         help="folder for the report and the lists (created if missing; must not be inside PATH)")
    written.add_argument("--quiet", action="store_true", help="no progress bars and no training lines")
    written.add_argument("--force", action="store_true",
                         help="recompute what DIR/cache holds from an older version of this tool (else the run "
                              "stops and says so)")
    work = p.add_argument_group("what to compute")
    work.add_argument("--tier", default="default", choices=tuple(TIERS),
                      help="default: the pixel scores, CleanVision's checks, one K-fold CNN pass (label issues) and a "
                           "short autoencoder, about 30 s on 3,000 small images on 2 cores; thorough: every score, "
                           "adding second-split forgetting and a self-supervised encoder (about 2x the time)")
    work.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES), metavar="FAMILY",
                      help="which families of scores to compute (default: all): pixels (no training; includes "
                           "CleanVision's image checks), supervised (a K-fold CNN pass: label issues), ssft "
                           "(second-split forgetting), autoencoder and self-supervised (label-free trainings)")
    work.add_argument("--set", nargs="*", default=[], metavar="SETTING=VALUE",
                      help="change how much training each family gets, e.g. epochs=3 ae_epochs=0 (0 epochs skips "
                           "a family); the settings and their defaults (of the default tier): " + " ".join(settable))
    act = p.add_argument_group("flags and lists")
    act.add_argument("--issue", nargs="*", default=[], metavar="ISSUE.SETTING=VALUE",
                     help="change the rule of a flag, e.g. outlier.threshold=0.5 (a higher threshold flags more) "
                          "or outlier.spaces=px_knn_distance; the issues with settings: " + ", ".join(_issue_names()))
    act.add_argument("--keep-fraction", type=float, default=None, metavar="F",
                     help="keep.csv keeps this fraction of all images (e.g. 0.5), chosen among the unflagged ones "
                          "by --keep-score")
    act.add_argument("--keep-score", default=None, metavar="SCORE",
                     help="the score that chooses the images kept with --keep-fraction (e.g. bt_prototype_distance; "
                          "every score is listed in docs/scores.md)")
    act.add_argument("--keep-policy", default="keep_hard", choices=("keep_hard", "keep_easy", "random", "ccs"),
                     help="which images --keep-score keeps: keep_hard (the hardest; default), keep_easy, random, or "
                          "ccs (spread over the score's range, the hardest few dropped)")
    act.add_argument("--to-label", default=None, metavar="N",
                     help="also choose N images (a count, or a percentage such as 5%%) to label first: to_label.csv "
                          "and a report section")
    return p


def _issue_names() -> list:
    from utils.scores.flags import ISSUES
    return [name for name, issue in ISSUES.items() if issue.settings]


def main(argv=None) -> int:
    from utils.report.dataset_report import write_report
    from utils.scores.dataset import ScoringConfig, score_dataset, with_names

    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = {}
    types = {f.name: f.type for f in dataclasses.fields(ScoringConfig)}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set takes FIELD=VALUE pairs, got {item!r}.")
        if key not in types or types[key] not in ("int", "str", "float"):
            parser.error(f"--set names {key!r}, which is not a setting ScoringConfig takes from the command line "
                         f"(choose from {', '.join(k for k, t in types.items() if t in ('int', 'str', 'float'))}).")
        try:
            overrides[key] = {"int": int, "float": float, "str": str}[types[key]](value)
        except ValueError:
            kind = {"int": "an integer", "float": "a number", "str": "text"}[types[key]]
            parser.error(f"--set {key} takes {kind}, got {value!r}.")
    try:
        config = ScoringConfig.tier(args.tier, **overrides)
    except TypeError as err:
        parser.error(f"--set names a field ScoringConfig does not have ({err}).")
    except ValueError as err:
        parser.error(str(err))
    config = _with_issue_types(config, args.issue, parser)
    problem = check_keep(args.keep_fraction, args.keep_score, args.families)
    if problem:
        parser.error(problem)
    problem = out_problem(args.out, args.path)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from utils.engine.distributed import init_distributed

    rank, _ = init_distributed()   # under torchrun the families spread over the ranks; rank 0 writes
    tic = time.perf_counter()
    try:
        images, labels, files, classes, sizes = load_input(args.path, args.labels, with_sizes=True)
        out = Path(args.out)
        if args.to_label is not None:
            from utils.scores.labeling import budget_count

            budget_count(args.to_label, len(images))   # a bad budget stops here, before any training
        scores = score_dataset(images, labels, config=config, folder=out / "cache", families=tuple(args.families),
                               progress=not args.quiet, force=args.force, sizes=sizes)
        if rank != 0:
            return 0
        sections = to_label(args.to_label, images, files, config, out, not args.quiet) if args.to_label else ()
        scores = with_names(scores, files, classes)
        page = write_report(scores, images, out, class_names=classes, keep_fraction=args.keep_fraction,
                            keep_score=args.keep_score, keep_policy=args.keep_policy, sections=sections)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    flagged = {c: int(scores[c].sum()) for c in scores.columns if c.startswith("flag_")}
    print(f"{len(scores)} samples scored in {time.perf_counter() - tic:.0f} s; flagged: "
          + ", ".join(f"{k.removeprefix('flag_')} {v}" for k, v in flagged.items()) + f"; report: {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
