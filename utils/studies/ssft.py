"""SSFT studies as cached steps the ssft/ notebooks call: data -> (label noise | mixed images) -> runs -> times.

Sample ids are dataset positions of the loaded split (for mixed datasets, the ids of
:func:`utils.data.mixing.make_mixed`); every table is indexed by them. Runs live in
``<results>/ssft/<name>/`` and are loaded instead of retrained when present.

The unsupervised studies (``ssft/ssft-unsupervised.ipynb``, one notebook for both models) differ only in
what :data:`UNSUPERVISED` holds per model: the recipe, the mixing modes, the task options and the
"learned" rules (:class:`LearnedRule`); :func:`unsupervised_detection` applies the rules to the cached runs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from utils.data.datasets import load_dataset
from utils.data.mixing import flip_labels, make_mixed
from utils.data.samples import Samples
from utils.engine.cache import SETTINGS
from utils.engine.protocols import SSFTConfig, run_ssft
from utils.engine.recipes import get_recipe
from utils.engine.tasks import make_task
from utils.scores.battery import image_battery
from utils.scores.evaluate import detection_table
from utils.scores.ssft import LearnedRule, first_split_log, ssft_scores
from utils.studies import outputs

NOISE_SEED = 0


def study_folder(results, name: str) -> Path:
    return runs_folder(results) / name


def noisy_labels(dataset: str, split: str, noise: float, root=None, seed: int = NOISE_SEED):
    """(images, clean labels, given labels, flipped, info) for a split with ``noise`` of its labels flipped."""
    images, labels, info = load_dataset(dataset, split, root=root)
    given, flipped = flip_labels(labels, noise, seed=seed, num_classes=info.num_classes)
    return images, labels, given, flipped, info


def supervised_study(config: SSFTConfig, dataset: str, split: str, noise: float, results, root=None,
                     progress: bool = True):
    """Train (or load) a supervised SSFT study under label noise; returns (runs, dataset frame by sample id)."""
    images, labels, given, flipped, info = noisy_labels(dataset, split, noise, root)
    ids = np.arange(len(labels))
    name = outputs.ssft_supervised_study(config.model, noise)
    runs = run_ssft(make_task(config.model, info), config, Samples(images, given, ids), study_folder(results, name),
                    progress)
    frame = pd.DataFrame({"label": labels.numpy(), "given_label": given.numpy(), "is_flipped": flipped.numpy()},
                         index=pd.Index(ids, name="sample_id"))
    return runs, frame, images


def mixed_study(config: SSFTConfig, dataset: str, split: str, mode: str, results, root=None,
                fraction: float = 0.1, mix_seed: int = 91, progress: bool = True, task_options: dict | None = None):
    """Train (or load) an unsupervised SSFT study (autoencoder or BarlowTwins) on a mixed-image dataset.

    ``task_options`` go to :func:`utils.engine.tasks.make_task`; None takes the model's from :data:`UNSUPERVISED`
    (the autoencoder trains on per-pixel MSE)."""
    images, labels, info = load_dataset(dataset, split, root=root)
    mixed = make_mixed(images, labels, fraction=fraction, mode=mode, seed=mix_seed, info=info)
    ids = mixed.ids
    name = outputs.ssft_mixed_study(config.model, mode)
    if task_options is None:
        task_options = UNSUPERVISED[config.model].task_options if config.model in UNSUPERVISED else {}
    runs = run_ssft(make_task(config.model, info, **task_options), config,
                    mixed, study_folder(results, name), progress)
    frame = pd.DataFrame({"label": mixed.labels.numpy(), "is_mixed": mixed.meta["mixed"].to_numpy(bool)},
                         index=pd.Index(ids, name="sample_id"))
    return runs, frame, mixed.images


# ------------------------------------------------------------------------------------------- unsupervised
@dataclass(frozen=True)
class UnsupervisedDefaults:
    """What differs between the unsupervised SSFT studies; everything else is shared."""

    title: str                 # the model's name in titles
    recipe: dict               # overrides of the named recipe (``"paper"``: triangle lr, fresh stage restarts)
    modes: tuple               # mixing modes of utils.data.mixing.make_mixed, in the order they run
    rules: tuple               # LearnedRule, the first is the main one
    task_options: dict = field(default_factory=dict)   # keyword arguments of utils.engine.tasks.make_task
    loss: str = "loss"         # what the training loss is, for the curves' titles

    @property
    def measures(self) -> list[str]:
        """The measurements the rules use, each once, in rule order."""
        return list(dict.fromkeys(r.measure for r in self.rules))


UNSUPERVISED = {
    # the optimizer and batch size the autoencoder study was tuned with (at batch 128+ it sits on the blank-image
    # plateau); SSIM in pixel space with data_range 1: 0.5 as in the seed's code, 0.15 as in its README
    "autoencoder": UnsupervisedDefaults(
        "autoencoder", dict(optimizer="adam", lr=1e-3, weight_decay=0.0, batch_size=32, max_epochs=15),
        ("seed", "matched"), (LearnedRule("ssim", value=0.5), LearnedRule("ssim", value=0.15)),
        dict(loss="mse"), "MSE"),
    # the seed trained BarlowTwins with Adam 1e-3, weight decay 1e-6; learned = high view agreement / low
    # cross-talk, thresholds at the median at the end of stage 1 (the seed picked 0.45 / 40 by eye)
    "barlow_twins": UnsupervisedDefaults(
        "BarlowTwins", dict(optimizer="adam", lr=1e-3, weight_decay=1e-6, batch_size=128, max_epochs=10),
        ("matched", "seed"), (LearnedRule("self_corr", "higher"), LearnedRule("cross_corr", "lower")),
        {}, "BarlowTwins loss"),
}


def _defaults(model: str) -> UnsupervisedDefaults:
    if model not in UNSUPERVISED:
        raise ValueError(f"Unknown unsupervised SSFT model {model!r}: choose one of {', '.join(UNSUPERVISED)}.")
    return UNSUPERVISED[model]


def unsupervised_config(model: str, recipe: str = "paper", logs_per_epoch: int = 2, split_seed: int = 0,
                        seeds=(0, 1, 2), **recipe_overrides) -> SSFTConfig:
    """The SSFTConfig of an unsupervised study: the named recipe with the model's defaults, then
    ``recipe_overrides`` (``optimizer``, ``lr``, ``max_epochs``, ...; None keeps the default)."""
    overrides = {**_defaults(model).recipe, **{k: v for k, v in recipe_overrides.items() if v is not None}}
    return SSFTConfig(model, get_recipe(recipe, **overrides), logs_per_epoch, split_seed, tuple(seeds))


def unsupervised_rules(model: str, thresholds=None) -> tuple[LearnedRule, ...]:
    """The model's learned rules; ``thresholds`` replaces their numbers: for fixed-value rules (the autoencoder's
    SSIM) one rule per value, for quantile rules (BarlowTwins) one rule per measurement and quantile."""
    rules = _defaults(model).rules
    if thresholds is None:
        return rules
    thresholds = [thresholds] if np.isscalar(thresholds) else list(thresholds)
    if not thresholds:
        raise ValueError("thresholds is empty; give at least one, or None for the defaults.")
    kinds = dict.fromkeys((r.measure, r.direction) for r in rules)
    if rules[0].value is not None:
        return tuple(LearnedRule(m, d, value=float(t)) for t in thresholds for m, d in kinds)
    return tuple(LearnedRule(m, d, quantile=float(t)) for t in thresholds for m, d in kinds)


def unsupervised_study(config: SSFTConfig, dataset: str, split: str, modes, results, root=None,
                       fraction: float = 0.1, mix_seed: int = 91, progress: bool = False):
    """:func:`mixed_study` for every mixing mode: dicts ``runs``, ``data`` (label, is_mixed by sample id) and
    ``images``, keyed by mode."""
    runs, data, images = {}, {}, {}
    for mode in modes:
        runs[mode], data[mode], images[mode] = mixed_study(config, dataset, split, mode, results, root=root,
                                                           fraction=fraction, mix_seed=mix_seed, progress=progress)
    return runs, data, images


def first_last_summary(runs: dict, data: dict, measures) -> pd.DataFrame:
    """Mean of each measurement after the first epoch and at the end of stage 1 (first model seed), and at the
    end for the mixed and the clean images; one row per (mode, measurement)."""
    rows = {}
    for mode, rs in runs.items():
        for measure in measures:
            first, last = first_split_log(rs, measure, 0), first_split_log(rs, measure, -1)
            mixed = data[mode]["is_mixed"].reindex(last.index).to_numpy(bool)
            rows[mode, measure] = {"first epoch": first.mean(), "end of stage 1": last.mean(),
                                   "end, mixed": last[mixed].mean(), "end, clean": last[~mixed].mean()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["mode", "measure"])


SSFT_COLUMNS = ("forgetting_time", "learning_time", "forgetting_events", "second_split_area", "first_split_area")


def ssft_detection(scores: pd.DataFrame, flag: pd.Series, learned_direction: str = "higher",
                   seed: int = 0) -> pd.DataFrame:
    """:func:`utils.scores.evaluate.detection_table` of the SSFT columns (:data:`SSFT_COLUMNS`) against ``flag``, in
    the registry's orientation (mislabeled samples are forgotten early, learned late, forgotten often), with held-out
    precision / recall. ``learned_direction="lower"`` (a rule under which a low measurement means learned, e.g.
    BarlowTwins cross-correlation) flips the areas, which are raw measurements, so "suspicious" stays "less
    learned"."""
    if learned_direction not in ("higher", "lower"):
        raise ValueError(f"learned_direction must be 'higher' or 'lower', got {learned_direction!r}.")
    flipped = {c: "higher" for c in SSFT_COLUMNS if c.endswith("_area")} if learned_direction == "lower" else {}
    return detection_table(scores, flag, columns=SSFT_COLUMNS, directions=flipped, holdout=True, seed=seed)


def unsupervised_detection(runs: dict, data: dict, rules):
    """Apply every rule to every mode's cached runs: ``(scores, detection, thresholds)``.

    ``scores[mode, rule]`` is :func:`utils.scores.ssft.ssft_scores` joined with ``data[mode]``; ``detection`` is one
    :func:`ssft_detection` against the mixed images per study ``"<mode> <rule.label>"``;
    ``thresholds[mode, rule]`` the threshold each rule used."""
    scores, thresholds = {}, {}
    for mode, rs in runs.items():
        for rule in rules:
            thresholds[mode, rule] = t = rule.threshold(rs)
            scores[mode, rule] = ssft_scores(rs, rule.measure, t, rule.direction).join(data[mode])
    detection = pd.concat({f"{mode} {rule.label}": ssft_detection(s, s["is_mixed"], learned_direction=rule.direction)
                           for (mode, rule), s in scores.items()}, names=["study", "score"])
    return scores, detection, thresholds


def model_free_auroc(images, is_mixed) -> float:
    """AUROC of the best model-free image statistic (:func:`utils.scores.battery.image_battery`, each in its better
    orientation) for the mixed images."""
    stats = image_battery(images)
    return float(detection_table(stats, pd.Series(np.asarray(is_mixed, bool)), orientation="free")["auroc"].max())


def best_per_study(detection: pd.DataFrame, baselines: dict | None = None) -> pd.DataFrame:
    """Per study (first index level), the score with the largest orientation-free AUROC max(a, 1 - a).

    ``baselines`` maps a study name to the orientation-free AUROC of a model-free statistic, put beside it
    so a reader sees at once whether the learned score beats it."""
    free = detection["auroc"].where(detection["auroc"] >= 0.5, 1 - detection["auroc"])
    rows = {}
    for study, group in free.groupby(level=0, sort=False):
        score = group.droplevel(0).idxmax()
        rows[study] = {"best score": score, "auroc (stated orientation)": detection.loc[(study, score), "auroc"],
                       "auroc (orientation-free)": group.max()}
        if baselines is not None:
            rows[study]["model-free baseline"] = baselines.get(study, float("nan"))
    return pd.DataFrame.from_dict(rows, orient="index")


def best_vs_baseline(detection: pd.DataFrame, images: dict, data: dict) -> pd.DataFrame:
    """The best SSFT score per study (:func:`best_per_study`) beside the best model-free
    statistic on the same images (study names start with their mixing mode)."""
    baseline = {mode: model_free_auroc(images[mode], data[mode]["is_mixed"].to_numpy()) for mode in images}
    studies = detection.index.get_level_values(0).unique()
    return best_per_study(detection, {study: baseline[study.split(" ", 1)[0]] for study in studies})


# ---------------------------------------------------------------------------------------------- published tables
def runs_folder(results) -> Path:
    """The folder that holds every SSFT study's cached runs, one sub-folder per study (:func:`study_folder`)."""
    return Path(results) / outputs.SSFT_RUNS


def runs_table(results) -> pd.DataFrame:
    """One row per SSFT study folder in ``results``: model, recipe, seeds, horizon, epochs actually run and CPU
    time (from each study's settings and its runs' per-epoch histories; folders without them are skipped)."""
    rows = {}
    for folder in sorted(runs_folder(results).glob("*/")):
        if not (folder / SETTINGS).is_file():
            continue
        config = json.loads((folder / SETTINGS).read_text())
        histories = [pd.read_csv(p) for p in sorted(folder.glob(outputs.SSFT_RUN_HISTORIES))]
        if not histories:
            continue
        epochs = pd.concat([h.groupby("stage")["epoch"].max() for h in histories], axis=1)
        r = config["recipe"]
        rows[folder.name] = {
            "samples": config["n_samples"], "model seeds": len(config["model_seeds"]), "runs": len(histories),
            "recipe": f"{r['name']}: {r['optimizer']} lr {r['lr']:g} {r['schedule']}, batch {r['batch_size']}",
            "max epochs / stage": r["max_epochs"], "logs / stage-2 epoch": config["logs_per_epoch"],
            "mean epochs stage 1": float(epochs.loc[1].mean()), "mean epochs stage 2": float(epochs.loc[2].mean()),
            "CPU minutes": sum(h["seconds"].sum() for h in histories) / 60}
    return pd.DataFrame.from_dict(rows, orient="index")


def load(results) -> dict:
    """The tables the SSFT notebooks published in ``results``, None where a notebook did not write one:
    ``runs`` (:func:`runs_table`), ``detection`` (supervised, flipped labels), ``unsupervised_detection`` and
    ``unsupervised_best`` (``{model: table}`` per model of :data:`UNSUPERVISED`: mixed-image detection, the best
    score per study beside the best model-free statistic), ``quadrants`` (columns study, quadrant, counts) and
    ``correlations`` (autoencoder scores vs SSFT times, indexed by score)."""
    results = Path(results)

    def read(name, **kwargs):
        return pd.read_csv(results / name, **kwargs) if (results / name).is_file() else None

    quadrants = read(outputs.SSFT_QUADRANTS)
    if quadrants is not None:
        quadrants = quadrants.rename(columns={"Unnamed: 0": "study", "Unnamed: 1": "quadrant"})
    return {"runs": runs_table(results), "detection": read(outputs.SSFT_DETECTION),
            "unsupervised_detection": {m: read(outputs.ssft_unsupervised_detection(m)) for m in UNSUPERVISED},
            "unsupervised_best": {m: read(outputs.ssft_unsupervised_best(m), index_col=0) for m in UNSUPERVISED},
            "quadrants": quadrants, "correlations": read(outputs.SSFT_CORRELATIONS, index_col=0)}
