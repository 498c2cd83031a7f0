"""The autoencoder study as a few cached steps the notebooks call: data -> train -> scores -> tables.

Training goes through the one loop (:func:`utils.engine.loop.train`) with :class:`utils.engine.tasks.AutoencoderTask`
and the ``"autoencoder"`` recipe (Adam, constant lr). Two ways to record per-sample values:

* ``track="eval"`` (the seed's, accurate): after each epoch an eval-mode pass in fixed order over all
  training samples records per-sample L1, code entropy, code norm, code drift and reconstruction SSIM,
  and every ``snapshot_every`` epochs the codes themselves (``Run.measures``);
* ``track="inloop"``: L1, entropy and norm of the training forward pass itself (dropout on, weights
  before the update) at no extra pass (``Run.records``); ``"none"`` records nothing (the benchmark's
  plain loop).

Per-sample L1 is the mean absolute error over pixels in standardised space (the seed's loss, so its
numbers compare), standardised with the dataset's own mean and std; SSIM is computed on pixel-space
images clamped to [0, 1] with ``data_range=1``.

Each step writes to ``<results>/<mix mode>/`` and is skipped when its output is already there, so
analysis and threshold cells re-run in seconds without retraining. Artificial hard samples are the
mixed images of :func:`utils.data.mixing.make_mixed`; the held-out set for test L1 is a different dataset
split (by default the 1,000 test digits of the embedded MNIST-5k, none of which is an image of the
MNIST test split the full study trains on).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from utils.data.datasets import DatasetInfo, load_dataset
from utils.data.mixing import make_mixed
from utils.data.samples import Samples
from utils.engine.cache import load_table, save_table, saved_settings, step
from utils.engine.loop import Run, is_finished, load_run, train
from utils.engine.recipes import get_recipe
from utils.engine.tasks import AutoencoderTask
from utils.metrics.checks import check_positive_int
from utils.scores.autoencoder import compute_scores
from utils.scores.evaluate import detection_table
from utils.studies import outputs

TRACK_MODES = ("eval", "inloop", "none")


@dataclass
class TrainConfig:
    """Hyper-parameters; the defaults are the seed's (L1, Adam 1e-3, batch 512, seed 91, latent 10)."""

    epochs: int = 600
    batch_size: int = 512
    lr: float = 1e-3
    seed: int = 91
    latent: int = 10
    track: str = "eval"
    snapshot_every: int = 10
    checkpoint_every: int = 10
    eval_batch_size: int = 2048

    def __post_init__(self):
        if self.track not in TRACK_MODES:
            raise ValueError(f"track must be one of {', '.join(TRACK_MODES)}, got {self.track!r}.")
        for name in ("epochs", "batch_size", "snapshot_every", "checkpoint_every", "eval_batch_size", "latent"):
            check_positive_int(getattr(self, name), name)
        self.recipe()  # the recipe validates lr (one place for the rule)

    def recipe(self):
        return get_recipe("autoencoder", lr=self.lr, batch_size=self.batch_size, max_epochs=self.epochs)

    def task(self, info: DatasetInfo) -> AutoencoderTask:
        return AutoencoderTask(info, loss="l1", latent=self.latent, eval_batch_size=self.eval_batch_size,
                               snapshot_every=self.snapshot_every if self.track == "eval" else None)


def train_autoencoder(images, sample_ids, config: TrainConfig, folder, info: DatasetInfo | None = None,
                      test_images=None, progress: bool = True, on_epoch_end=None) -> Run:
    """Train the seed autoencoder on pixel ``images`` ``[N, C, H, W]``, recording every sample as ``config.track`` says.

    ``info`` describes the data (default: computed from ``images``). Results go to ``folder``; a checkpoint
    there is resumed from, and a folder holding a run with other settings is refused."""
    data = Samples(images, None, sample_ids)
    info = info or DatasetInfo.from_images(data.images)
    evals = {"test": Samples(test_images, None, np.arange(len(test_images)))} if test_images is not None else None
    return train(config.task(info), config.recipe(), data, seed=config.seed, folder=folder,
                 record=config.track == "inloop", measure_on=data if config.track == "eval" else None,
                 eval_sets=evals, checkpoint_every=config.checkpoint_every, progress=progress,
                 settings={"track": config.track}, on_epoch_end=on_epoch_end)


def blank_image_l1(images: torch.Tensor, info: DatasetInfo) -> float:
    """L1 of predicting an all-background (zero-pixel) image: the baseline a useful autoencoder must beat."""
    x = info.standardize(images.float())
    return float((x - info.standardize(torch.zeros_like(images[:1]).float())).abs().mean())


def series(run: Run):
    """The recorder holding the run's per-sample series: eval-pass measures, else in-loop records."""
    return run.measures if len(run.measures.names) else run.records


SEED_SRCC = {"loss__last": 0.3827, "loss__mean_from_50": 0.3802, "H__mean_from_0": 0.2525,
             "LID__mean_from_10": 0.2473}
"""The seed's |SRCC| with the mixed label (57,000 samples, 600 epochs; docs/original-study.md)."""


@dataclass
class StudyConfig:
    dataset: str = "mnist-5k"
    split: str = "train"
    test_dataset: str = "mnist-5k"
    test_split: str = "test"
    root: str | None = None
    fraction: float = 0.1
    mix_seed: int = 91
    modes: tuple = ("seed", "matched")
    results: str = "results/quick"
    train: TrainConfig = field(default_factory=TrainConfig)

    def folder(self, mode: str) -> Path:
        return Path(self.results) / mode


def load_data(config: StudyConfig):
    """Training images, labels, their description, and held-out test images (:func:`utils.data.datasets.load_dataset`)."""
    images, labels, info = load_dataset(config.dataset, config.split, root=config.root)
    test_images, _, test_info = load_dataset(config.test_dataset, config.test_split, root=config.root)
    if tuple(test_info.shape) != tuple(info.shape):
        raise ValueError(f"The held-out set {config.test_dataset} has images {list(test_info.shape)}, the training set "
                         f"{list(info.shape)}; pick a held-out split of the same kind of images.")
    return images, labels, info, test_images


def mixed_dataset(config: StudyConfig, mode: str, images, labels, info: DatasetInfo) -> Samples:
    """The mixed dataset for ``mode``, also written to ``<folder>/dataset.csv`` (id, label, is_mixed, pair)."""
    mixed = make_mixed(images, labels, fraction=config.fraction, mode=mode, seed=config.mix_seed, info=info)
    folder = config.folder(mode)
    folder.mkdir(parents=True, exist_ok=True)
    save_table(dataset_frame(mixed), folder / outputs.MIXED_DATASET)
    return mixed


def separability(mixed: dict) -> pd.DataFrame:
    """Model-free separability of mixed vs clean images before any training, per mixing mode: every statistic of the
    one image battery (:func:`utils.scores.battery.image_battery`) in its better orientation (AUROC), the class means
    and their relative gap (:func:`utils.scores.evaluate.detection_table` with ``describe``)."""
    from utils.scores.battery import image_battery

    parts = {}
    for mode, m in mixed.items():
        stats = image_battery(m.images).set_axis(pd.Index(m.ids, name="sample_id"))
        table = detection_table(stats, m.meta["mixed"], orientation="free", describe=True)
        parts[mode] = table[["auroc", "mean_positive", "mean_negative", "rel_diff"]]
    return pd.concat(parts, axis=1)


def dataset_frame(mixed: Samples) -> pd.DataFrame:
    """One row per sample id: label, is_mixed and the partner's source index (-1 for clean images)."""
    return pd.DataFrame({"label": mixed.labels.numpy(), "is_mixed": mixed.meta["mixed"].to_numpy(bool),
                         "partner_id": mixed.meta["partner_id"].to_numpy(np.int64)},
                        index=pd.Index(mixed.ids, name="sample_id"))


def load_autoencoder_run(folder, config: TrainConfig, info: DatasetInfo) -> Run:
    """A finished autoencoder run (model, recorders, history) without retraining."""
    return load_run(folder, config.task(info).make_model())


def train_or_load(config: StudyConfig, mode: str, mixed: Samples, info: DatasetInfo, test_images,
                  progress=True) -> Run:
    """Train (resuming any checkpoint) unless the run in ``<folder>/run`` has finished; then load it."""
    folder = config.folder(mode) / outputs.RUN
    if is_finished(folder):
        run = load_autoencoder_run(folder, config.train, info)
        print(f"{mode}: loaded the finished run in {folder} ({len(run.history)} epochs trained in "
              f"{run.history['seconds'].sum() / 60:.1f} min); delete that folder to train again.")
        return run
    return train_autoencoder(mixed.images, mixed.ids, config.train, folder, info=info, test_images=test_images,
                             progress=progress)


def run_summary(run: Run, mixed: Samples, info: DatasetInfo, test_images, config: StudyConfig) -> pd.Series:
    """Final L1 (train, test) next to the blank-image baseline, and the mean reconstruction SSIM."""
    last = run.history.iloc[-1]
    rec = series(run)
    return pd.Series({
        "epochs": int(last["epoch"]),
        "optimizer_steps": int(last["epoch"]) * -(-len(mixed.images) // config.train.batch_size),
        "train_l1": last.get("measure_loss", last["train_loss"]),
        "test_l1": last.get("test_loss", float("nan")),
        "blank_image_l1_test": blank_image_l1(test_images, info),
        "mean_ssim_train": last.get("measure_ssim", float("nan")),
        "mean_ssim_mixed": float(rec["ssim"][-1][mixed.meta["mixed"].to_numpy(bool)].mean()) if "ssim" in rec else float("nan"),
    })


def scores_or_load(config: StudyConfig, mode: str, run: Run, mixed: Samples) -> pd.DataFrame:
    """All per-sample scores of a run (:func:`utils.scores.autoencoder.compute_scores`), a cached step of the mode's
    folder (``scores.parquet``) keyed by the run's settings, the images' fingerprint and the score settings."""
    settings = {"run": saved_settings(run.folder) if run.folder is not None else None,
                "images": mixed.fingerprint(), "lid_k": 20, "silhouette_every": 1, "seed": config.train.seed}
    return step(config.folder(mode), outputs.SCORES, settings,
                lambda: compute_scores(series(run), images=mixed.images, seed=config.train.seed))


def cached_scores(config: StudyConfig, mode: str) -> pd.DataFrame:
    """The cached per-sample scores of one mode (written by :func:`scores_or_load`)."""
    return load_table(config.folder(mode) / f"{outputs.SCORES}.parquet")


def tables(config: StudyConfig, modes=("seed", "matched")) -> dict[str, pd.DataFrame]:
    """Score tables of every mode against the mixed label, from the cached scores: the one evaluation
    (:func:`utils.scores.evaluate.detection_table`), each score in its better orientation (the seed's scores have
    no stated direction), with the signed SRCC and its ceiling and held-out precision / recall."""
    out = {}
    for mode in modes:
        scores = cached_scores(config, mode)
        label = load_table(config.folder(mode) / outputs.MIXED_DATASET)["is_mixed"]
        out[mode] = detection_table(scores, label, orientation="free", srcc=True, holdout=True)
    return out


def side_by_side(tables_by_mode: dict[str, pd.DataFrame],
                 columns=("auroc", "srcc", "srcc_ceiling", "ap")) -> pd.DataFrame:
    """One row per metric, the chosen columns of each mode next to each other, plus the seed's |SRCC|.

    Sorted by the last mode's first column (matched mixing, the confound-free one, by default)."""
    joined = pd.concat({mode: t[list(columns)] for mode, t in tables_by_mode.items()}, axis=1)
    joined[("seed study", "abs_srcc")] = pd.Series(SEED_SRCC)
    last = list(tables_by_mode)[-1]
    return joined.sort_values((last, columns[0]), ascending=False)


def load_summary(results) -> pd.DataFrame:
    """The training summary (final L1 vs the blank-image L1, mean SSIM) the training notebook saved."""
    return pd.read_csv(Path(results) / outputs.SUMMARY, index_col=0)


def score_tables(results, modes) -> dict[str, pd.DataFrame]:
    """The score table (:func:`tables`) the analysis notebook saved for each mixing mode in ``modes``."""
    return {mode: pd.read_csv(Path(results) / outputs.score_table(mode), index_col=0) for mode in modes}


def load(results) -> dict:
    """The study's published tables in ``results``: ``config`` (:func:`load_config`), ``summary``
    (:func:`load_summary`), ``separability`` (model-free statistics of mixed vs clean images, per mode) and
    ``scores`` (:func:`score_tables` of the study's modes)."""
    config = load_config(results)
    return {"config": config, "summary": load_summary(results),
            "separability": pd.read_csv(Path(results) / outputs.SEPARABILITY, index_col=0, header=[0, 1]),
            "scores": score_tables(results, config.modes)}


def save_config(config: StudyConfig) -> None:
    path = Path(config.results)
    path.mkdir(parents=True, exist_ok=True)
    (path / outputs.STUDY_CONFIG).write_text(json.dumps(asdict(config), indent=1))


def load_config(results) -> StudyConfig:
    """The StudyConfig that the training notebook saved in ``<results>/study.json``."""
    path = Path(results) / outputs.STUDY_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"No study in {results}: run ssl-ae/ae-reconstruction-L1.ipynb (or `make run`) first.")
    raw = json.loads(path.read_text())
    raw["train"] = TrainConfig(**raw["train"])
    return StudyConfig(**raw)


@dataclass
class ModeRun:
    """Everything the analysis needs about one mixing mode: the data, the finished run and its scores."""

    mixed: Samples
    result: Run
    scores: pd.DataFrame | None = None


def load_study(results, modes=None, with_scores=True) -> tuple[StudyConfig, dict[str, ModeRun]]:
    """Rebuild the (deterministic) mixed datasets and load the cached runs and scores of a study."""
    config = load_config(results)
    images, labels, info, _ = load_data(config)
    runs = {}
    for mode in modes or config.modes:
        mixed = make_mixed(images, labels, fraction=config.fraction, mode=mode, seed=config.mix_seed, info=info)
        saved = load_table(config.folder(mode) / outputs.MIXED_DATASET)
        if not (saved.index.equals(pd.Index(mixed.ids))
                and (saved["is_mixed"].to_numpy() == mixed.meta["mixed"].to_numpy()).all()):
            raise ValueError(f"The {mode} dataset rebuilt now differs from the one trained on in {config.folder(mode)} "
                             "(data or mixing code changed); re-run the training notebook in a new results folder.")
        result = load_autoencoder_run(config.folder(mode) / outputs.RUN, config.train, info)
        runs[mode] = ModeRun(mixed, result, scores_or_load(config, mode, result, mixed) if with_scores else None)
    return config, runs


def ssft_correlations(config: StudyConfig, ssft_scores: pd.DataFrame, mode: str = "seed",
                      times=("learning_fraction", "forgetting_fraction")) -> pd.DataFrame:
    """Signed Spearman of every autoencoder score with SSFT times, as the seed's §9.2 did, on the samples in both.

    Rows joined by sample id: clean (not mixed) autoencoder samples that the SSFT study scored and whose label it
    did not flip. Both studies must be on the same dataset split; mismatched labels on a shared id stop it."""
    folder = config.folder(mode)
    scores = cached_scores(config, mode)
    data = load_table(folder / outputs.MIXED_DATASET)
    clean = data.index[~data["is_mixed"].astype(bool)]
    keep = ssft_scores.index[~ssft_scores["is_flipped"].astype(bool)] if "is_flipped" in ssft_scores else ssft_scores.index
    ids = clean.intersection(keep)
    if len(ids) < 3:
        raise ValueError(f"Only {len(ids)} sample ids are in both studies; run SSFT on the autoencoder's dataset split.")
    if "label" in ssft_scores and (data.loc[ids, "label"].to_numpy() != ssft_scores.loc[ids, "label"].to_numpy()).any():
        raise ValueError("The SSFT study and the autoencoder study give different labels to the same sample ids: "
                         "they ran on different dataset splits. Point both at the same DATASET and SPLIT.")
    rows = {}
    for metric in scores.columns:
        rows[metric] = {t: spearmanr(scores.loc[ids, metric], ssft_scores.loc[ids, t]).statistic for t in times}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table["max_abs"] = table.abs().max(1)
    table.attrs["n_samples"] = len(ids)
    return table.sort_values("max_abs", ascending=False)  # constant scores have NaN (undefined) SRCC, listed last
