"""One entry point that scores every sample of a dataset: :func:`score_dataset` -> one DataFrame by sample id.

What cleanlab's Datalab gives for a trained model's predictions, but for *training dynamics*: give images
(a tensor ``[N, C, H, W]`` / ``[N, H, W]`` in [0, 1], or an image folder) and, optionally, labels; get every
score of the toolkit, each in a column whose "more suspicious" end is fixed in :data:`SCORES` before any
experiment looks at it, plus a few boolean flags. Every training step goes through the one loop
(:func:`utils.engine.loop.train`) and, with a ``folder``, is cached there: a killed call resumes, a finished one loads.

Families (:data:`FAMILIES`), in the order they are computed:

* **pixels** (model-free, label-free): the image-statistics battery (:func:`utils.scores.battery.image_battery`,
  ``stat_*`` columns, no orientation: they feed the cross-validated baseline of the scoreboard) and the
  geometry of the raw pixels (:func:`utils.scores.geometry.embedding_scores`: ``px_prototype_distance``,
  ``px_knn_density``, ``px_duplicate_score``).
* **supervised** (labels needed): ONE K-fold pass (:func:`utils.engine.protocols.kfold_runs`, ``folds`` fresh CNNs,
  records in-loop). Every sample is trained on by ``folds - 1`` models, whose dynamics give mean loss, EL2N
  (exact, from full logits, at epoch ``el2n_epoch``), AUM, cartography confidence / variability, forgetting
  events, learning time and last margin (:mod:`utils.scores.dynamics`, averaged over those runs); and it is predicted
  out of sample by the one model that held it out, which gives confident learning through ``cleanlab``
  (:mod:`utils.scores.label_quality`: ``cl_label_quality`` = the cross-validated classifier's confidence in the given
  label, ``cl_normalized_margin``, ``cl_label_issue``).
* **ssft** (labels needed): second-split forgetting time and second-split area (Maini et al. 2022) of one
  SSFT study (:func:`utils.engine.protocols.run_ssft`, one model seed, both orders): ``ssft_forgetting_time``,
  ``ssft_second_split_area``.
* **autoencoder** (label-free): the seed's autoencoder trained on the images themselves, measured every
  epoch; ``ae_loss_last``, ``ae_loss_mean`` (per-sample reconstruction error), ``ae_ssim_last`` and the geometry
  of its last codes (``ae_prototype_distance``, ``ae_knn_density``, ``ae_duplicate_score``); and the
  autoencoder's own SSFT (``ae_ssft_forgetting_time``, ``ae_ssft_second_split_area``, :func:`ae_ssft_scores`).
  It trains with MSE:
  with the seed's L1 loss it stays on the blank-image plateau for the few epochs a scoring pass can afford
  (measured on the 10,000 Fashion-MNIST test images, Adam 1e-3, 4 epochs: L1 at batch 32 or 64 keeps a uniform
  softmax bottleneck (entropy ln 10, every code the same) and SSIM 0.15; MSE at batch 64 reaches SSIM 0.43 with
  distinct codes).
* **self-supervised** (label-free): a BarlowTwins encoder (trained on the images, or the ``encoder`` you pass,
  e.g. one pretrained on a larger unlabeled pool) embeds every image; geometry of the L2-normalised features:
  ``bt_prototype_distance`` (Sorscher et al. 2022's self-supervised prototypes), ``bt_knn_density``,
  ``bt_duplicate_score``; with labels also ``bt_knn_disagreement``, the share of the k nearest neighbours
  whose label differs from the sample's (a label-noise score that needs no supervised training; it reuses
  the same kNN pass).

Flags (booleans, documented thresholds, not tuned on any benchmark):

* ``flag_label_issue`` — cleanlab's ``find_label_issues`` (``cl_label_issue``).
* ``flag_near_duplicate`` — pixel nearest-neighbour distance below 0.13 x its median over the dataset (the
  relative threshold of cleanlab Datalab's near-duplicate check); both members of a pair are flagged.
* ``flag_outlier`` — kNN distance above Q3 + 3 IQR (Tukey's far-out fence) in the self-supervised embedding,
  else the autoencoder's codes, else the pixels.

Decisions (the issue left them open): the supervised family trains ``folds`` = 4 models so that every sample
has 3 initialisations of dynamics (EL2N is averaged over >= 3 in Paul et al.) and an out-of-sample prediction,
at the cost of 3 full-data trainings; the recipe is the paper's (SGD, triangle lr) at a fixed number of epochs
(no early stop), so learning and forgetting are counted on one time axis.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from utils.data.datasets import DatasetInfo, check_images
from utils.data.samples import Samples
from utils.engine.loop import check_settings, train

# column -> (family, direction); "higher" / "lower" = the suspicious end, fixed before any experiment
SCORES: dict[str, tuple[str, str]] = {
    "px_prototype_distance": ("pixels", "higher"),
    "px_knn_density": ("pixels", "higher"),
    "px_duplicate_score": ("pixels", "lower"),
    "mean_loss": ("supervised", "higher"),
    "el2n": ("supervised", "higher"),
    "aum": ("supervised", "lower"),
    "confidence": ("supervised", "lower"),
    "variability": ("supervised", "higher"),
    "forgetting_events": ("supervised", "higher"),
    "learning_time": ("supervised", "higher"),
    "last_margin": ("supervised", "lower"),
    "cl_label_quality": ("supervised", "lower"),
    "cl_normalized_margin": ("supervised", "lower"),
    "cl_label_issue": ("supervised", "higher"),
    "ssft_forgetting_time": ("ssft", "lower"),
    "ssft_second_split_area": ("ssft", "lower"),
    "ae_loss_last": ("autoencoder", "higher"),
    "ae_loss_mean": ("autoencoder", "higher"),
    "ae_ssim_last": ("autoencoder", "lower"),
    "ae_prototype_distance": ("autoencoder", "higher"),
    "ae_knn_density": ("autoencoder", "higher"),
    "ae_duplicate_score": ("autoencoder", "lower"),
    "ae_ssft_forgetting_time": ("autoencoder", "lower"),
    "ae_ssft_second_split_area": ("autoencoder", "lower"),
    "bt_prototype_distance": ("self-supervised", "higher"),
    "bt_knn_density": ("self-supervised", "higher"),
    "bt_duplicate_score": ("self-supervised", "lower"),
    "bt_knn_disagreement": ("self-supervised", "higher"),
}
FAMILIES = ("pixels", "supervised", "ssft", "autoencoder", "self-supervised")
LABEL_FREE = ("pixels", "autoencoder", "self-supervised")
NEEDS_LABELS = {"bt_knn_disagreement"}   # label-free families' columns that still read the labels (not label-free)
DUPLICATE_RATIO = 0.13   # cleanlab Datalab's near-duplicate threshold, relative to the median NN distance
OUTLIER_FENCE = 3.0      # Tukey's far-out fence: Q3 + 3 IQR


def direction(column: str) -> str:
    return SCORES[column][1]


def family(column: str) -> str:
    return SCORES[column][0]


def oriented(scores: pd.DataFrame) -> pd.DataFrame:
    """The :data:`SCORES` columns of ``scores`` with the "lower" ones negated: higher = more suspicious."""
    cols = [c for c in SCORES if c in scores.columns]
    return pd.DataFrame({c: scores[c].astype(float) * (1 if direction(c) == "higher" else -1) for c in cols},
                        index=scores.index)


@dataclass(frozen=True)
class ScoringConfig:
    """How much training each family gets; 0 epochs skips a family. Defaults: the scoreboard's (10,000 images)."""

    arch: str = "cnn"          # classifier of the supervised and SSFT families (utils.engine.models.CLASSIFIERS)
    folds: int = 4             # K of the K-fold pass: K - 1 recorded runs per sample + 1 out-of-sample prediction
    epochs: int = 5            # per fold run (paper recipe: SGD, triangle lr, no early stop)
    el2n_epoch: int = 1        # recorded epoch (0-based) EL2N is read at: early, as in Paul et al.
    ssft_epochs: int = 3       # per SSFT stage (paper recipe with its early stop); 0 skips SSFT
    ae_epochs: int = 6         # autoencoder (Adam 1e-3); 0 skips
    ae_batch_size: int = 64
    ae_loss: str = "mse"       # the seed's L1 sits on the blank-image plateau for tens of epochs (module docstring)
    ae_ssft_epochs: int = 3    # per stage of the autoencoder's SSFT (label-free, MSE, Adam 1e-3); 0 skips
    bt_epochs: int = 8         # BarlowTwins on the images when no encoder is given; 0 skips
    batch_size: int = 128
    k: int = 10                # neighbours of the kNN scores (cleanlab Datalab's default)
    seed: int = 0

    def __post_init__(self):
        from utils.engine.models import CLASSIFIERS
        if self.arch not in CLASSIFIERS:
            raise ValueError(f"Unknown classifier {self.arch!r}: choose one of {', '.join(CLASSIFIERS)}.")
        for name in ("epochs", "ssft_epochs", "ae_epochs", "ae_ssft_epochs", "bt_epochs", "el2n_epoch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}.")
        if self.folds < 2:
            raise ValueError(f"folds must be at least 2 (one to hold out, one to train on), got {self.folds}.")
        if self.epochs and self.el2n_epoch >= self.epochs:
            raise ValueError(f"el2n_epoch ({self.el2n_epoch}) must be an epoch of the run (0..{self.epochs - 1}).")
        if self.ae_loss not in ("l1", "mse"):
            raise ValueError(f"ae_loss must be 'l1' or 'mse', got {self.ae_loss!r}.")
        if self.k < 1 or self.batch_size < 2 or self.ae_batch_size < 2:
            raise ValueError("k must be >= 1 and the batch sizes >= 2.")

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------------------ inputs
def _as_inputs(images, labels, ids, info):
    if isinstance(images, (str, Path)):
        from utils.data.datasets import load_image_folder
        images, folder_labels, _ = load_image_folder(images)
        if labels is None:
            labels = folder_labels
    x = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):   # channels-last [N, H, W, C]
        x = x.permute(0, 3, 1, 2).contiguous()
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    x = check_images(x, "images")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError(f"Pixels must lie in [0, 1] (got {float(x.min()):.3g}..{float(x.max()):.3g}); divide "
                         "8-bit images by 255, or pass them as uint8.")
    n = len(x)
    ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids).astype(np.int64).reshape(-1)
    if labels is not None:
        values = np.asarray(labels)
        if values.dtype.kind not in "iu":
            raise ValueError(f"labels must be integer class indices 0..C-1, got {values.dtype} values (e.g. "
                             f"{values.reshape(-1)[:2].tolist()}); map class names to integers first, e.g. with "
                             "pandas.factorize.")
        labels = torch.as_tensor(values).reshape(-1)
        if labels.is_floating_point() or labels.dtype == torch.bool or len(labels) != n:
            raise ValueError(f"labels must be {n} integers (one per image), got {labels.dtype} {list(labels.shape)}.")
        labels = labels.long()
        if int(labels.min()) < 0:
            raise ValueError("labels must be class indices 0..C-1; map your class names to integers first.")
    data = Samples(x, labels, ids)
    if info is None:
        info = DatasetInfo.from_images(x, labels, num_classes=None if labels is None else int(labels.max()) + 1)
    elif labels is not None and int(labels.max()) >= info.num_classes:
        raise ValueError(f"labels go up to {int(labels.max())} but info says {info.num_classes} classes; pass the "
                         "right DatasetInfo.")
    if labels is not None and info.num_classes < 2:
        raise ValueError("Labels with a single class cannot train a classifier; pass labels=None for label-free "
                         "scores only.")
    return data, info


# each cached step of score_dataset -> the ScoringConfig fields its scores depend on (checked per step, so adding a
# step or changing one family's epochs recomputes / refuses only that step)
STEPS = {
    "pixels": ("k", "seed"),
    "supervised": ("arch", "folds", "epochs", "el2n_epoch", "batch_size", "seed"),
    "ssft": ("arch", "ssft_epochs", "batch_size", "seed"),
    "autoencoder": ("ae_epochs", "ae_batch_size", "ae_loss", "k", "seed"),
    "ae_ssft": ("ae_ssft_epochs", "ae_batch_size", "seed"),
    "ssl": ("bt_epochs", "k", "seed"),
}


def step_settings(config: "ScoringConfig", step: str, encoder_hash: int | None = None) -> dict:
    """What a cached step of :func:`score_dataset` was computed with (its ``scores_<step>.json``)."""
    out = {f: getattr(config, f) for f in STEPS[step]}
    if step == "ssl":
        out["encoder"] = encoder_hash
    return out


def _cached(folder: Path | None, step: str, settings: dict, compute) -> pd.DataFrame:
    """One step's scores, loaded from ``folder/scores_<step>.csv`` when computed with the same settings."""
    tic = time.perf_counter()
    if folder is None:
        frame = compute()
        frame.index.name = "sample_id"
        frame.attrs.update(seconds=time.perf_counter() - tic, step=step, fresh=True)
        return frame
    path, spec, clock = (folder / f"scores_{step}.{ext}" for ext in ("csv", "json", "seconds"))
    settings = json.loads(json.dumps(settings))
    if path.is_file():
        saved = json.loads(spec.read_text()) if spec.is_file() else None
        if saved != settings:
            raise ValueError(f"{path} was computed with other settings ({saved} instead of {settings}); delete it and "
                             f"its run folder, or score into a new folder.")
        frame = pd.read_csv(path, index_col="sample_id")
        frame.attrs.update(seconds=float(clock.read_text()) if clock.is_file() else float("nan"), step=step,
                           fresh=False)
        return frame
    frame = compute()
    frame.index.name = "sample_id"
    frame.attrs.update(seconds=time.perf_counter() - tic, step=step, fresh=True)   # its cost, kept beside it
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp)
    spec.write_text(json.dumps(settings, indent=1))
    clock.write_text(f"{frame.attrs['seconds']:.3f}")
    tmp.replace(path)
    return frame


def _prefixed(frame: pd.DataFrame, prefix: str, keep=("prototype_distance", "knn_density", "duplicate_score")):
    return frame[list(keep)].add_prefix(prefix)


# ----------------------------------------------------------------------------------------------- families
def pixel_scores(data: Samples, config: ScoringConfig, num_classes: int | None) -> pd.DataFrame:
    from utils.scores.battery import image_battery
    from utils.scores.geometry import embedding_scores
    battery = image_battery(data.images) if data.images.shape[1] in (1, 3) else pd.DataFrame(index=range(len(data)))
    battery.index = pd.Index(data.ids, name="sample_id")
    geo = embedding_scores(data.images.flatten(1).numpy(), data.ids, k=_k(config, data),
                           num_classes=num_classes or None, seed=config.seed)
    return pd.concat([battery.add_prefix("stat_"), _prefixed(geo, "px_"), geo[["nearest_id"]].add_prefix("px_")],
                     axis=1)


def _k(config, data) -> int:
    return int(min(config.k, len(data) - 1))


def supervised_scores(data: Samples, info: DatasetInfo, config: ScoringConfig, folder: Path | None,
                      progress: bool) -> pd.DataFrame:
    from utils.scores.dynamics import dynamics_scores
    from utils.scores.label_quality import label_quality
    from utils.engine.protocols import kfold_runs
    from utils.engine.recipes import get_recipe
    from utils.engine.tasks import SupervisedTask

    task = SupervisedTask(info, config.arch, record_logits=True)
    recipe = get_recipe("paper", max_epochs=config.epochs, patience=None, batch_size=config.batch_size)
    folds = kfold_runs(task, recipe, data, folds=config.folds, seed=config.seed, record=True, progress=progress,
                       folder=None if folder is None else folder / "kfold")
    labels = pd.Series(data.labels.numpy(), index=pd.Index(data.ids, name="sample_id"))
    dyn = dynamics_scores(folds.records, labels, el2n_epoch=config.el2n_epoch, el2n=True, same_samples=False)
    keep = [c for c in SCORES if c in dyn.columns] + ["n_runs"]
    cl = label_quality(folds.probs, labels)
    return pd.concat([dyn[keep], cl.astype(float)], axis=1).reindex(data.ids)


def ssft_family(data: Samples, info: DatasetInfo, config: ScoringConfig, folder: Path | None,
                progress: bool) -> pd.DataFrame:
    from utils.engine.protocols import SSFTConfig, run_ssft
    from utils.engine.recipes import get_recipe
    from utils.scores.ssft import ssft_scores
    from utils.engine.tasks import make_task
    import tempfile

    recipe = get_recipe("paper", max_epochs=config.ssft_epochs, batch_size=config.batch_size)
    half = len(data) // 2
    logs = max(1, min(2, -(-half // config.batch_size)))
    cfg = SSFTConfig(config.arch, recipe, logs_per_epoch=logs, split_seed=config.seed, model_seeds=(config.seed,))
    with tempfile.TemporaryDirectory() as tmp:
        runs = run_ssft(make_task(config.arch, info), cfg, data, folder / "ssft" if folder else Path(tmp), progress)
    s = ssft_scores(runs, "correct", 0.5)
    return pd.DataFrame({"ssft_forgetting_time": s["forgetting_time"],
                         "ssft_second_split_area": s["second_split_area"]}).reindex(data.ids)


def autoencoder_scores(data: Samples, info: DatasetInfo, config: ScoringConfig, folder: Path | None,
                       progress: bool) -> pd.DataFrame:
    from utils.scores.geometry import embedding_scores
    from utils.engine.recipes import get_recipe
    from utils.engine.tasks import AutoencoderTask

    task = AutoencoderTask(info, loss=config.ae_loss, snapshot_every=config.ae_epochs)
    recipe = get_recipe("autoencoder", max_epochs=config.ae_epochs, batch_size=config.ae_batch_size)
    unlabeled = Samples(data.images, None, data.ids)
    run = train(task, recipe, unlabeled, seed=config.seed, record=False, measure_on=unlabeled, progress=progress,
                folder=None if folder is None else folder / "autoencoder", desc="autoencoder")
    m = run.measures
    loss = m["loss"]
    codes = m["codes"][-1]
    geo = embedding_scores(codes, m.sample_ids, k=_k(config, data), num_classes=info.num_classes or None,
                           seed=config.seed)
    out = pd.DataFrame({"ae_loss_last": loss[-1], "ae_loss_mean": loss.mean(0), "ae_ssim_last": m["ssim"][-1]},
                       index=pd.Index(m.sample_ids, name="sample_id"))
    return pd.concat([out, _prefixed(geo, "ae_")], axis=1).reindex(data.ids)


def ae_ssft_scores(data: Samples, info: DatasetInfo, config: ScoringConfig, folder: Path | None,
                   progress: bool) -> pd.DataFrame:
    """Label-free SSFT with the autoencoder (:mod:`utils.scores.ssft`): both halves, one model seed, MSE, Adam 1e-3 at a
    constant rate; "learned" = reconstruction SSIM above its median over every first-half sample at the end of
    stage 1 (:class:`utils.studies.ssft.LearnedRule` with no fixed value: a short run never reaches the seed's fixed
    0.5 on most samples)."""
    import tempfile

    from utils.engine.protocols import SSFTConfig, run_ssft
    from utils.engine.recipes import get_recipe
    from utils.scores.ssft import ssft_scores
    from utils.studies.ssft import LearnedRule
    from utils.engine.tasks import AutoencoderTask

    recipe = get_recipe("autoencoder", max_epochs=config.ae_ssft_epochs, batch_size=config.ae_batch_size)
    half = len(data) // 2
    logs = max(1, min(2, -(-half // config.ae_batch_size)))
    cfg = SSFTConfig("autoencoder", recipe, logs_per_epoch=logs, split_seed=config.seed, model_seeds=(config.seed,))
    unlabeled = Samples(data.images, None, data.ids)
    with tempfile.TemporaryDirectory() as tmp:
        runs = run_ssft(AutoencoderTask(info, loss="mse"), cfg, unlabeled,
                        folder / "ae_ssft" if folder else Path(tmp), progress)
    rule = LearnedRule("ssim")
    s = ssft_scores(runs, rule.measure, rule.threshold(runs), rule.direction)
    return pd.DataFrame({"ae_ssft_forgetting_time": s["forgetting_time"],
                         "ae_ssft_second_split_area": s["second_split_area"]}).reindex(data.ids)


def train_encoder(images, info: DatasetInfo, epochs: int, seed: int = 0, folder=None, batch_size: int = 128,
                  progress: bool = False) -> torch.nn.Module:
    """A BarlowTwins encoder trained on ``images`` (label-free; e.g. a larger unlabeled pool), cached in ``folder``.

    Recipe: the seed's BarlowTwins optimizer (Adam 1e-3, weight decay 1e-6), ``epochs`` epochs."""
    from utils.engine.recipes import get_recipe
    from utils.engine.tasks import BarlowTwinsTask

    x = check_images(torch.as_tensor(images), "images")
    n = len(x)
    if n % batch_size == 1:
        batch_size += 1   # a last batch of one sample has no batch statistics
    recipe = get_recipe("paper", optimizer="adam", lr=1e-3, weight_decay=1e-6, schedule="constant", patience=None,
                        max_epochs=int(epochs), batch_size=batch_size)
    run = train(BarlowTwinsTask(info), recipe, Samples(x, None, np.arange(n)), seed=seed, record=False,
                progress=progress, folder=folder, desc="BarlowTwins")
    return run.model.eval()


@torch.no_grad()
def embed(encoder: torch.nn.Module, images: torch.Tensor, info: DatasetInfo, batch: int = 128) -> np.ndarray:
    """Features of ``images`` from ``encoder`` (its ``features`` method if it has one, else its output)."""
    fn = getattr(encoder, "features", encoder)
    encoder.eval()
    device = next(encoder.parameters()).device
    parts = [fn(info.standardize(images[i:i + batch]).to(device)).float().cpu() for i in range(0, len(images), batch)]
    z = torch.cat(parts).flatten(1).numpy().astype(np.float64)
    if not np.isfinite(z).all():
        raise ValueError("The encoder returned non-finite features; check its weights or the input scale.")
    return z


def ssl_scores(data: Samples, info: DatasetInfo, config: ScoringConfig, folder: Path | None, encoder,
               progress: bool) -> pd.DataFrame:
    from utils.scores.geometry import embedding_scores
    from utils.metrics import knn

    if encoder is None:
        encoder = train_encoder(data.images, info, config.bt_epochs, config.seed,
                                None if folder is None else folder / "barlow_twins", progress=progress)
    z = embed(encoder, data.images, info)
    unit = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    k = _k(config, data)
    dist, idx = knn(unit, k)    # one kNN pass: density, duplicates and label disagreement
    geo = embedding_scores(z, data.ids, k=k, num_classes=info.num_classes or None, seed=config.seed,
                           normalize=True, knn_result=(dist, idx))
    out = _prefixed(geo, "bt_")
    if data.labels is not None:
        y = data.labels.numpy()
        out["bt_knn_disagreement"] = (y[idx] != y[:, None]).mean(1)
    return out


# ------------------------------------------------------------------------------------------------- flags
def add_flags(scores: pd.DataFrame) -> pd.DataFrame:
    out = scores.copy()
    if "cl_label_issue" in out:
        out["flag_label_issue"] = out["cl_label_issue"].astype(bool)
    d = out["px_duplicate_score"]
    out["flag_near_duplicate"] = d < DUPLICATE_RATIO * float(d.median())
    for col in ("bt_knn_density", "ae_knn_density", "px_knn_density"):
        if col in out:
            q1, q3 = out[col].quantile([0.25, 0.75])
            out["flag_outlier"] = out[col] > q3 + OUTLIER_FENCE * (q3 - q1)
            break
    return out


# ------------------------------------------------------------------------------------------- entry point
def score_dataset(images, labels=None, ids=None, *, info: DatasetInfo | None = None,
                  config: ScoringConfig | None = None, folder=None, encoder: torch.nn.Module | None = None,
                  families=FAMILIES, progress: bool = False) -> pd.DataFrame:
    """Every score of every sample, one row per sample id (input order); see the module docstring.

    ``images``: ``[N, C, H, W]``, ``[N, H, W]`` or channels-last ``[N, H, W, 1 or 3]`` (tensor or array), floats
    in [0, 1] or uint8, or the path of an image folder
    (class sub-folders give the labels, :func:`utils.data.datasets.load_image_folder`). ``labels``: N class indices or
    None (then only the label-free families run). ``ids``: N unique integers (default 0..N-1); every row of the
    result is keyed by them. ``info``: the data description (default computed from the images). ``config``:
    :class:`ScoringConfig`. ``folder``: cache; each family is stored there once computed, so a killed call
    resumes and a finished one loads; a folder scored with other settings or data is refused. ``encoder``: a
    trained network for the self-supervised family (default: a BarlowTwins trained on the images).
    ``families``: which of :data:`FAMILIES` to run.

    ``attrs["direction"]`` maps each score column to its suspicious end ("higher" / "lower")."""
    config = config or ScoringConfig()
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"Unknown score families {unknown}: choose from {', '.join(FAMILIES)}.")
    data, info = _as_inputs(images, labels, ids, info)
    given_order = data.ids
    data = data.subset(np.argsort(data.ids, kind="stable"))   # every family sees the samples in id order:
    # the scores of a sample do not depend on the order the samples come in
    if len(data) < 4 * config.folds:
        raise ValueError(f"{len(data)} images are too few to score; give at least {4 * config.folds}.")
    folder = Path(folder) if folder is not None else None
    if folder is not None:
        labels_hash = None if data.labels is None else int(
            pd.util.hash_pandas_object(pd.Series(data.labels.numpy(), index=data.ids)).sum() % (2 ** 61))
        pixels_hash = int(pd.util.hash_array(data.images[:, :, ::4, ::4].flatten().numpy()).sum() % (2 ** 61))
        check_settings(folder, {**data.fingerprint(), "labels_hash": labels_hash, "pixels_hash": pixels_hash,
                                "info": info.to_dict()})

    def step(name, compute, encoder_hash=None):
        return _cached(folder, name, step_settings(config, name, encoder_hash), compute)

    parts = [step("pixels", lambda: pixel_scores(data, config, info.num_classes))]
    labeled = data.labels is not None
    if "supervised" in families and labeled and config.epochs:
        parts.append(step("supervised", lambda: supervised_scores(data, info, config, folder, progress)))
    if "ssft" in families and labeled and config.ssft_epochs:
        parts.append(step("ssft", lambda: ssft_family(data, info, config, folder, progress)))
    if "autoencoder" in families and config.ae_epochs:
        parts.append(step("autoencoder", lambda: autoencoder_scores(data, info, config, folder, progress)))
    if "autoencoder" in families and config.ae_ssft_epochs:
        parts.append(step("ae_ssft", lambda: ae_ssft_scores(data, info, config, folder, progress)))
    if "self-supervised" in families and (config.bt_epochs or encoder is not None):
        parts.append(step("ssl", lambda: ssl_scores(data, info, config, folder, encoder, progress),
                          None if encoder is None else _encoder_hash(encoder)))
    seconds = {p.attrs["step"]: p.attrs["seconds"] for p in parts}
    fresh = [p.attrs["step"] for p in parts if p.attrs["fresh"]]
    out = pd.concat([p.reindex(data.ids) for p in parts], axis=1)
    out.index.name = "sample_id"
    if data.labels is not None:
        out.insert(0, "label", data.labels.numpy())
    out = add_flags(out).reindex(given_order)
    out.attrs["direction"] = {c: direction(c) for c in SCORES if c in out.columns}
    out.attrs["seconds"] = seconds   # compute time of each step (when it was computed, also if loaded now)
    out.attrs["fresh"] = fresh       # the steps computed by this call (the others were loaded from the folder)
    return out


def _encoder_hash(encoder: torch.nn.Module) -> int:
    total = 0.0
    for i, p in enumerate(encoder.state_dict().values()):
        if torch.is_tensor(p) and p.is_floating_point():
            total += float(p.double().sum()) * (i + 1)
    return int(abs(total) * 1e6) % (2 ** 61)


def save_scores(scores: pd.DataFrame, path) -> None:
    """The per-sample table as csv, with its directions in a json beside it (``<path>.direction.json``)."""
    path = Path(path)
    scores.to_csv(path)
    Path(str(path) + ".direction.json").write_text(json.dumps(scores.attrs.get("direction", {}), indent=1))
