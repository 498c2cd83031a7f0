"""Every file name the studies write, defined once: the notebooks, :mod:`utils.report.sections`,
:mod:`utils.report.run_notebooks` and the tests all ask here instead of spelling names.

Constants are fixed names, functions build the names that depend on a mode, model or rule. Per-sample tables
(one row per sample id) are Parquet files, read back bit-identical (:func:`utils.engine.cache.load_table`);
summary tables are CSV. Every value is
a name *relative to its folder*: data files and tables to ``RESULTS`` (the ``--out`` folder of the
runner), figures to ``IMAGES``; join them yourself, e.g. ``Path(RESULTS) / outputs.score_table("seed")``.

Layout of ``RESULTS``::

    study.json  summary.csv  separability.csv  score_table_<mode>.csv    autoencoder study (ssl-ae/)
    <mode>/dataset.parquet  <mode>/scores.parquet  <mode>/run/            one autoencoder run per mixing mode
    ssft/<study>/                                                         cached SSFT runs (utils.engine.protocols)
    ssft_*.csv  ssft_scores_*.parquet                                     SSFT tables and per-sample scores (ssft/)
    ssft_correlations.csv                                                 autoencoder scores vs SSFT times
    notebooks/<name>.ipynb  images/<figure>.png                           executed notebooks, figures (runner)

SSFT study names (the folders under ``ssft/``) are ``<model>_noise<fraction>`` (supervised, label noise)
and ``<model>_<mode>`` (autoencoder / BarlowTwins on mixed images).
"""
from __future__ import annotations

# ------------------------------------------------------------------------------------------- folders
RESULTS_FULL = "results/full"     # `make reproduce` (the seed study: ssl-ae and ssft), from the repository root
RESULTS_BOARD = "results/board"   # `make scoreboard` (its tables in RESULTS_BOARD/scoreboard)
RESULTS_PRUNE = "results/prune"   # `make pruning` (its tables in RESULTS_PRUNE/pruning)
RESULTS_LABEL = "results/label"   # `make labeling` (its tables in RESULTS_LABEL/labeling)
SCORING_DIR = "scoring"           # scoring/score-your-data: the table, action lists and report.html
NOTEBOOKS_DIR = "notebooks"   # executed copies, under RESULTS (quick mode)
IMAGES_DIR = "images"         # figures, under RESULTS (quick mode) or the repository root (full run)
SSFT_RUNS = "ssft"            # cached SSFT runs: RESULTS/ssft/<study>/

# ------------------------------------------------------------------------------ autoencoder study
STUDY_CONFIG = "study.json"             # the StudyConfig the training notebook ran with
SUMMARY = "summary.csv"                 # final L1 vs the blank-image L1, mean SSIM, per mode
SEPARABILITY = "separability.csv"       # model-free statistics of mixed vs clean images, per mode
MIXED_DATASET = "dataset.parquet"       # RESULTS/<mode>/: id, label, is_mixed, partner id
SCORES = "scores"                       # RESULTS/<mode>/scores.parquet: every per-sample score (a cached step)
RUN = "run"                             # RESULTS/<mode>/run/: the trained run (utils.engine.loop)
SCORE_TABLE_PREFIX = "score_table_"


def score_table(mode: str) -> str:
    """SRCC / AUROC / AP of every score against the mixed label, for one mixing mode."""
    return f"{SCORE_TABLE_PREFIX}{mode}.csv"


def score_table_mode(name: str) -> str:
    """The mixing mode of a score-table file name (inverse of :func:`score_table`)."""
    stem = name.rsplit("/", 1)[-1].removesuffix(".csv")
    if not stem.startswith(SCORE_TABLE_PREFIX):
        raise ValueError(f"{name!r} is not a score table ({score_table('<mode>')}).")
    return stem[len(SCORE_TABLE_PREFIX):]


SCORE_TABLE_GLOB = score_table("*")

# ---------------------------------------------------------------------------------------------- SSFT
SSFT_SUPERVISED_TRAINING = "ssft_supervised_training.csv"   # epochs, seconds, final accuracy per stage
SSFT_DETECTION = "ssft_detection.csv"                       # supervised: flipped-label detection
SSFT_QUADRANTS = "ssft_quadrants.csv"                       # supervised: quadrant counts
SSFT_CORRELATIONS = "ssft_correlations.csv"                 # autoencoder scores vs SSFT times (ae-correlations)
SSFT_RUN_HISTORIES = "seed*_*.csv"   # RESULTS/ssft/<study>/: per-epoch history of each (seed, order) run
#                                      (written by utils.engine.protocols.TwoSplitRun.save beside seed<s>_<order>.npz)

UNSUPERVISED_PREFIX = {"autoencoder": "ae", "barlow_twins": "bt"}   # short names in the unsupervised outputs


def ssft_supervised_study(model: str, noise: float) -> str:
    """Name of a supervised SSFT study (its run folder under ``ssft/``): ``cnn_noise0.1``."""
    return f"{model}_noise{noise:g}"


def ssft_mixed_study(model: str, mode: str) -> str:
    """Name of an unsupervised SSFT study on mixed images (its run folder under ``ssft/``): ``autoencoder_seed``."""
    return f"{model}_{mode}"


def ssft_scores_file(study: str) -> str:
    """Per-sample SSFT scores of a study, one row per sample id (``ssft_scores_cnn_noise0.1.parquet``)."""
    return f"ssft_scores_{study}.parquet"


def ssft_supervised_scores(model: str, noise: float) -> str:
    return ssft_scores_file(ssft_supervised_study(model, noise))


def ssft_unsupervised_scores(model: str, mode: str, rule: str) -> str:
    """Scores of an unsupervised study under one learned rule (``rule`` = ``LearnedRule.name``, e.g. ``ssim0.5``)."""
    return ssft_scores_file(f"{ssft_mixed_study(model, mode)}_{rule}")


def _prefix(model: str) -> str:
    if model not in UNSUPERVISED_PREFIX:
        raise ValueError(f"Unknown unsupervised SSFT model {model!r}: choose one of {', '.join(UNSUPERVISED_PREFIX)}.")
    return UNSUPERVISED_PREFIX[model]


def ssft_unsupervised_detection(model: str) -> str:
    """Mixed-image detection table of an unsupervised study (``ssft_ae_detection.csv``, ``ssft_bt_detection.csv``)."""
    return f"ssft_{_prefix(model)}_detection.csv"


def ssft_unsupervised_best(model: str) -> str:
    """Best score per study beside the best model-free statistic (``ssft_ae_best.csv``, ``ssft_bt_best.csv``)."""
    return f"ssft_{_prefix(model)}_best.csv"


# ------------------------------------------------------------------------------------------- figures
def fig_mixed_examples(mode: str) -> str:
    return f"mixed_examples_{mode}.png"


def fig_ae_training(mode: str) -> str:
    return f"ae_training_{mode}.png"


def fig_histograms(mode: str) -> str:
    return f"histograms_{mode}.png"


def fig_tail(metric: str, mode: str) -> str:
    return f"tail_{metric}_{mode}.png"


def fig_score_bars(mode: str) -> str:
    return f"score_bars_{mode}.png"


def fig_ssft_supervised_training(model: str, noise: float) -> str:
    return f"ssft_training_{ssft_supervised_study(model, noise)}.png"


def fig_ssft_supervised_times(model: str, noise: float) -> str:
    """Learning vs forgetting time, flipped labels in red."""
    return f"ssft_supervised_{ssft_supervised_study(model, noise)}.png"


def fig_ssft_quadrants(model: str, noise: float) -> str:
    return f"ssft_quadrants_{ssft_supervised_study(model, noise)}.png"


def fig_ssft_unsupervised_training(model: str, mode: str) -> str:
    return f"ssft_{_prefix(model)}_training_{mode}.png"


def fig_ssft_first_last(model: str, mode: str) -> str:
    """The measurements behind the learned rules after the first epoch and at the end of stage 1."""
    return f"ssft_{_prefix(model)}_first_last_{mode}.png"


def fig_ssft_unsupervised_times(model: str, mode: str, rule: str) -> str:
    """Learning vs forgetting time under one learned rule, mixed images in red."""
    return f"ssft_{_prefix(model)}_times_{mode}_{rule}.png"

# ---------------------------------------------------------------------------------------- scoreboard
# RESULTS/scoreboard/<dataset>/<type>/seed<s>/ holds each copy's cached scores (utils.studies.scoreboard)
SCOREBOARD_DIR = "scoreboard"
SCOREBOARD_TABLE = "scoreboard.csv"            # every (dataset, type, target, seed, score): AUROC, AP
SCOREBOARD_SUMMARY = "scoreboard_summary.csv"  # mean +- std over seeds
SCOREBOARD_BEST = "scoreboard_best.csv"        # per (dataset, type): best score, best supervised, best label-free
SCOREBOARD_CLAIM = "scoreboard_claim.csv"      # the SSFT claim: mislabeled vs atypical AUROC per score
SCOREBOARD_FLAGS = "scoreboard_flags.csv"      # per (dataset, type, seed, flag): flagged, precision, recall


def fig_scoreboard(dataset: str, metric: str = "auroc") -> str:
    """Heatmap of scores x hardness types for one dataset."""
    return f"scoreboard_{dataset}_{metric}.png"

# ------------------------------------------------------------------------------------------- pruning
# RESULTS/pruning/<noise>/scores/ (score_dataset cache) and <noise>/<budget>/<score>/<policy>/f<f>/seed<s>/ (retrains);
# <noise>: noise0, uniform0.1, class0.1
PRUNING_DIR = "pruning"
PRUNING_TABLE = "pruning.csv"             # one row per retrain: noise, budget, score, policy, fraction, seed, test_acc
PRUNING_SUMMARY = "pruning_summary.csv"   # mean +- std of test accuracy per (noise, budget, score, policy, fraction)
PRUNING_WITHIN = "pruning_within.csv"     # per (budget, score, policy) at 0 % noise: smallest fraction within 0.5 pt
PRUNING_PAIRED = "pruning_paired.csv"     # per (budget, score, policy, fraction): paired test against random
PRUNING_GOALS = "pruning_goals.csv"       # each goal of the study: met or not, and the numbers behind it
PRUNING_RUN = "pruning_run.json"          # the notebook execution that wrote the tables: wall time, runs trained


def fig_pruning(dataset: str, budget: str) -> str:
    """Test accuracy vs kept fraction at 0 % label noise, every score and policy, under one budget."""
    return f"pruning_{dataset}_{budget}.png"


def fig_pruning_noise(dataset: str) -> str:
    """Under label noise: full noisy set, its clean subset and the clean-label full data."""
    return f"pruning_{dataset}_noise.png"


# ------------------------------------------------------------------------------------------- labeling
# RESULTS/labeling/: encoders, proxy runs, representations / selections (cached steps), runs/<method>/b<budget>/seed<s>/
LABELING_DIR = "labeling"
LABELING_TABLE = "labeling.csv"             # one row per retrain: method, budget, seed, test_acc, steps, seconds
LABELING_SUMMARY = "labeling_summary.csv"   # mean +- std of test accuracy per (method, budget)
LABELING_PAIRED = "labeling_paired.csv"     # per (method, budget): paired difference to random, 95 % CI, gap closed
LABELING_REPS = "labeling_representations.csv"   # per embedding: kNN-20 and k-means(10) accuracy
LABELING_HEADLINE = "labeling_headline.csv"      # per budget: random, balanced, best label-free, shipped, CCS
LABELING_GOALS = "labeling_goals.csv"       # each goal of the issue: met or not, and the numbers behind it
LABELING_RUN = "labeling_run.json"          # the execution: wall time and each stage's seconds, pseudo-label accuracy


def fig_labeling(dataset: str) -> str:
    """Paired difference to random vs labeling budget, every method, +- the 95 % interval."""
    return f"labeling_{dataset}.png"
