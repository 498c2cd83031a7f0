"""The score families of :func:`utils.scores.dataset.score_dataset`: one function each, samples in, a DataFrame by
sample id out. Which end of every column is suspicious is declared in :mod:`utils.scores.registry`.

* :func:`pixel_scores` (model-free, label-free): the image battery (``stat_*``, :mod:`utils.scores.battery`) and
  the geometry of the raw pixels (``px_prototype_distance``, ``px_knn_distance``, ``px_nn_distance``,
  ``px_nearest_id``; :func:`utils.scores.geometry.embedding_scores`).
* :func:`supervised_scores` (labels): ONE K-fold pass (:func:`utils.engine.protocols.kfold_runs`). Every sample is
  trained on by ``folds - 1`` fresh models, whose in-loop records give the training dynamics
  (:mod:`utils.scores.dynamics`, averaged over those runs), and predicted out of sample by the one that held it
  out, which gives confident learning through cleanlab (:mod:`utils.scores.label_quality`).
* :func:`ssft_family` (labels): second-split forgetting time and area of one SSFT study (one model seed, both
  orders; :func:`utils.engine.protocols.run_ssft`).
* :func:`autoencoder_scores` (label-free): the seed's autoencoder trained on the images, measured every epoch:
  reconstruction error, SSIM and the geometry of its last codes; :func:`ae_ssft_scores`: its own SSFT. It trains
  with MSE: with the seed's L1 loss it stays on the blank-image plateau for the few epochs a scoring pass can
  afford (measured on the 10,000 Fashion-MNIST test images, Adam 1e-3, 4 epochs: L1 at batch 32 or 64 keeps a
  uniform softmax bottleneck (entropy ln 10, every code the same) and SSIM 0.15; MSE at batch 64 reaches SSIM
  0.43 with distinct codes).
* :func:`ssl_scores` (label-free): a BarlowTwins encoder (trained on the images by :func:`train_encoder`, or the
  one passed, e.g. pretrained on a larger unlabeled pool) embeds every image (:func:`embed`); geometry of the
  L2-normalised features. :func:`ssl_label_scores` adds ``bt_knn_disagreement`` (labels, no classifier): the share
  of the k nearest neighbours whose label differs.

Every training run of a family checkpoints after every epoch, so a killed call resumes within an epoch.
Label-free families see the images and ids only (never the labels, nor the number of classes), so a labeled call
on the same images reuses what a label-free call computed.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from utils.data.datasets import DatasetInfo, check_images
from utils.data.samples import Samples
from utils.engine.loop import train

GEOMETRY = ("prototype_distance", "knn_distance", "nn_distance")
DYNAMICS = ("mean_loss", "el2n", "aum", "confidence", "variability", "forgetting_events", "learning_time",
            "last_margin")   # the training-dynamics columns score_dataset reports (the registry holds more)


def _prefixed(frame: pd.DataFrame, prefix: str, keep=GEOMETRY) -> pd.DataFrame:
    return frame[list(keep)].add_prefix(prefix)


def _k(config, data) -> int:
    return int(min(config.k, len(data) - 1))


def pixel_scores(data: Samples, config) -> pd.DataFrame:
    from utils.scores.battery import image_battery
    from utils.scores.geometry import cosine_knn_distance, embedding_scores

    battery = image_battery(data.images) if data.images.shape[1] in (1, 3) else pd.DataFrame(index=range(len(data)))
    battery.index = pd.Index(data.ids, name="sample_id")
    flat = data.images.flatten(1).numpy()
    geo = embedding_scores(flat, data.ids, k=_k(config, data), n_clusters=config.clusters, seed=config.seed)
    geo["cos_knn_distance"] = cosine_knn_distance(flat, _k(config, data))
    keep = (*GEOMETRY, "cos_knn_distance", "nearest_id")
    return pd.concat([battery.add_prefix("stat_"), _prefixed(geo, "px_", keep)], axis=1)


def kfold_pass(data: Samples, info: DatasetInfo, config, folder: Path | None, progress: bool):
    """The one K-fold pass of the supervised family (:func:`utils.engine.protocols.kfold_runs`; its fold runs are
    cached in ``folder/kfold``), shared by :func:`supervised_scores` and :func:`suggested_labels`."""
    from utils.engine.protocols import kfold_runs
    from utils.engine.recipes import get_recipe
    from utils.engine.tasks import SupervisedTask

    task = SupervisedTask(info, config.arch, record_logits=True)
    recipe = get_recipe("paper", max_epochs=config.epochs, patience=None, batch_size=config.batch_size)
    return kfold_runs(task, recipe, data, folds=config.folds, seed=config.seed, record=True, progress=progress,
                      folder=None if folder is None else folder / "kfold")


def supervised_scores(data: Samples, config, folds) -> pd.DataFrame:
    """Training dynamics of the K-fold pass's in-loop records and confident learning on its out-of-sample
    probabilities (``folds``: :func:`kfold_pass`)."""
    from utils.scores.dynamics import dynamics_scores
    from utils.scores.label_quality import label_quality

    labels = pd.Series(data.labels.numpy(), index=pd.Index(data.ids, name="sample_id"))
    dyn = dynamics_scores(folds.records, labels, el2n_epoch=config.el2n_epoch, el2n=True, same_samples=False)
    cl = label_quality(folds.probs, labels)
    return pd.concat([dyn[[*DYNAMICS, "n_runs"]], cl[["cl_label_quality", "cl_normalized_margin"]]],
                     axis=1).reindex(data.ids)


def label_issues(data: Samples, config, folds) -> pd.DataFrame:
    """``flag_label_issue``: cleanlab's ``find_label_issues`` with ``filter_by = config.label_filter`` on the
    K-fold pass's out-of-sample probabilities — a step of its own, so another rule never retrains."""
    from utils.scores.label_quality import label_quality

    labels = pd.Series(data.labels.numpy(), index=pd.Index(data.ids, name="sample_id"))
    return label_quality(folds.probs, labels, filter_by=config.label_filter)[["flag_label_issue"]].reindex(data.ids)


def suggested_labels(data: Samples, folds) -> pd.DataFrame:
    """``cl_predicted_label`` and ``cl_predicted_prob``: the class the held-out model of the K-fold pass
    (:func:`kfold_pass`) predicts — what a relabeller is offered — and its out-of-sample probability
    (:func:`utils.scores.label_quality.predicted_labels`)."""
    from utils.scores.label_quality import predicted_labels

    return predicted_labels(folds.probs).reindex(data.ids)


def _ssft_config(config, model: str, recipe, n: int, batch_size: int):
    from utils.engine.protocols import SSFTConfig

    half = n // 2
    logs = max(1, min(2, -(-half // batch_size)))
    return SSFTConfig(model, recipe, logs_per_epoch=logs, split_seed=config.seed, model_seeds=(config.seed,))


def ssft_family(data: Samples, info: DatasetInfo, config, folder: Path | None, progress: bool) -> pd.DataFrame:
    from utils.engine.protocols import run_ssft
    from utils.engine.recipes import get_recipe
    from utils.engine.tasks import make_task
    from utils.scores.ssft import ssft_scores

    recipe = get_recipe("paper", max_epochs=config.ssft_epochs, batch_size=config.batch_size)
    cfg = _ssft_config(config, config.arch, recipe, len(data), config.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        runs = run_ssft(make_task(config.arch, info), cfg, data, folder / "ssft" if folder else Path(tmp), progress)
    s = ssft_scores(runs, "correct", 0.5)
    return pd.DataFrame({"ssft_forgetting_time": s["forgetting_time"],
                         "ssft_second_split_area": s["second_split_area"]}).reindex(data.ids)


def autoencoder_scores(data: Samples, info: DatasetInfo, config, folder: Path | None, progress: bool) -> pd.DataFrame:
    from utils.engine.recipes import get_recipe
    from utils.engine.tasks import AutoencoderTask
    from utils.scores.geometry import embedding_scores

    task = AutoencoderTask(info, loss=config.ae_loss, snapshot_every=config.ae_epochs)
    recipe = get_recipe("autoencoder", max_epochs=config.ae_epochs, batch_size=config.ae_batch_size)
    unlabeled = data.unlabeled()
    run = train(task, recipe, unlabeled, seed=config.seed, record=False, measure_on=unlabeled, progress=progress,
                folder=None if folder is None else folder / "autoencoder", desc="autoencoder", checkpoint_every=1)
    m = run.measures
    loss = m["loss"]   # the seed study's loss__last / loss__mean_from_0 under registry names (utils.scores.autoencoder)
    geo = embedding_scores(m["codes"][-1], m.sample_ids, k=_k(config, data), n_clusters=config.clusters,
                           seed=config.seed)
    out = pd.DataFrame({"ae_loss_last": loss[-1], "ae_loss_mean": loss.mean(0), "ae_ssim_last": m["ssim"][-1]},
                       index=pd.Index(m.sample_ids, name="sample_id"))
    return pd.concat([out, _prefixed(geo, "ae_")], axis=1).reindex(data.ids)


def ae_ssft_scores(data: Samples, info: DatasetInfo, config, folder: Path | None, progress: bool) -> pd.DataFrame:
    """Label-free SSFT with the autoencoder (:mod:`utils.scores.ssft`): both halves, one model seed, MSE, Adam 1e-3
    at a constant rate; "learned" = reconstruction SSIM above its median over every first-half sample at the end
    of stage 1 (:class:`utils.scores.ssft.LearnedRule` with no fixed value: a short run never reaches the seed's
    fixed 0.5 on most samples)."""
    from utils.engine.protocols import run_ssft
    from utils.engine.recipes import get_recipe
    from utils.engine.tasks import AutoencoderTask
    from utils.scores.ssft import LearnedRule, ssft_scores

    recipe = get_recipe("autoencoder", max_epochs=config.ae_ssft_epochs, batch_size=config.ae_batch_size)
    cfg = _ssft_config(config, "autoencoder", recipe, len(data), config.ae_batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        runs = run_ssft(AutoencoderTask(info, loss="mse"), cfg, data.unlabeled(),
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
                progress=progress, folder=folder, desc="BarlowTwins", checkpoint_every=1)
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


def ssl_embedding(data: Samples, info: DatasetInfo, config, folder: Path | None, encoder, progress: bool):
    """``(features, (distances, indices))``: the encoder's features of every image and ONE kNN pass on their
    L2-normalised rows, shared by :func:`ssl_scores` and :func:`ssl_label_scores`. Without an ``encoder`` a
    BarlowTwins is trained on the images (:func:`train_encoder`, cached in ``folder/barlow_twins``)."""
    if encoder is None:
        encoder = train_encoder(data.images, info, config.bt_epochs, config.seed,
                                None if folder is None else folder / "barlow_twins", progress=progress)
    return feature_embedding(embed(encoder, data.images, info), data, config)


def feature_embedding(z: np.ndarray, data: Samples, config):
    """``(z, (distances, indices))`` of features given row by row for ``data`` (e.g. a user's own embedding): the
    kNN pass on their L2-normalised rows that :func:`ssl_scores` and :func:`ssl_label_scores` share."""
    from utils.metrics.lid import knn

    unit = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    return z, knn(unit, _k(config, data))


def given_label_quality(data: Samples, folds) -> pd.DataFrame:
    """``cl_label_quality`` and ``cl_normalized_margin`` of out-of-sample probabilities the caller brought
    (``folds.probs``; no training, so no training dynamics)."""
    from utils.scores.label_quality import label_quality

    labels = pd.Series(data.labels.numpy(), index=pd.Index(data.ids, name="sample_id"))
    return label_quality(folds.probs, labels)[["cl_label_quality", "cl_normalized_margin"]].reindex(data.ids)


def ssl_scores(data: Samples, config, embedding) -> pd.DataFrame:
    """Geometry of the self-supervised features (:func:`ssl_embedding`): ``bt_prototype_distance``,
    ``bt_knn_distance``, ``bt_nn_distance`` and ``bt_nearest_id`` (on unit-norm features: the semantic
    near-duplicate pairs of SemDeDup, :func:`utils.scores.selection.semantic_duplicates`)."""
    from utils.scores.geometry import embedding_scores

    z, knn_result = embedding
    geo = embedding_scores(z, data.ids, k=_k(config, data), n_clusters=config.clusters, seed=config.seed,
                           normalize=True, knn_result=knn_result)
    return pd.concat([_prefixed(geo, "bt_"), geo[["nearest_id"]].add_prefix("bt_")], axis=1)


def ssl_label_scores(data: Samples, embedding) -> pd.DataFrame:
    """``bt_knn_disagreement``: the share of a sample's k nearest neighbours in the self-supervised features (the
    kNN pass of :func:`ssl_embedding`) whose given label differs from its own. Labels, but no classifier."""
    idx = embedding[1][1]
    y = data.labels.numpy()
    return pd.DataFrame({"bt_knn_disagreement": (y[idx] != y[:, None]).mean(1)},
                        index=pd.Index(data.ids, name="sample_id"))


def label_dynamics(data: Samples, info: DatasetInfo, epochs: int, seed: int = 0, folder=None, batch_size: int = 256,
                   arch: str = "cnn", progress: bool = False) -> pd.DataFrame:
    """Training dynamics of ONE run on all of ``data`` with the labels it carries (true labels, or the k-means
    pseudo-labels of ELFS: Zheng et al., ICLR 2025), recorded in-loop every epoch (:mod:`utils.scores.dynamics`:
    ``aum``, ``el2n_lower``, ``forgetting_events``, ``mean_loss`` ...), one row per sample id. Unlike the scoring
    pass (a few epochs per fold) this is the long proxy run CCS and ELFS score with; the paper recipe, no early
    stop, cached (and resumable) in ``folder``."""
    from utils.engine.recipes import get_recipe
    from utils.engine.tasks import SupervisedTask
    from utils.scores.dynamics import dynamics_scores

    recipe = get_recipe("paper", max_epochs=int(epochs), patience=None, batch_size=batch_size)
    run = train(SupervisedTask(info, arch), recipe, data, seed=seed, record=True, folder=folder, progress=progress,
                desc="proxy", checkpoint_every=1)
    labels = pd.Series(data.labels.numpy(), index=pd.Index(data.ids, name="sample_id"))
    return dynamics_scores(run.records, labels, el2n=False).reindex(data.ids)
