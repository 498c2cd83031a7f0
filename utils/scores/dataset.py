"""One entry point that scores every sample of a dataset: :func:`score_dataset` -> one DataFrame by sample id.

What cleanlab's Datalab gives for a trained model's predictions, but for *training dynamics*: give images
(a tensor ``[N, C, H, W]`` / ``[N, H, W]`` in [0, 1], or an image folder) and, optionally, labels; get every
score of the toolkit, each in a column whose "more suspicious" end is declared in :mod:`utils.scores.registry`
before any experiment looks at it, plus a few boolean flags (:mod:`utils.scores.flags`). Every training step goes
through the one loop (:func:`utils.engine.loop.train`) and, with a ``folder``, is cached there by the one cache
(:mod:`utils.engine.cache`): a killed call resumes, a finished one loads, another input or other settings are
refused, and a second process writing the same folder is refused.

The families (:mod:`utils.scores.families`), in the order they are computed, each a cached step declared once in
:mod:`utils.scores.steps` (with the config fields it is keyed by and the version of its code):
``pixels`` (model-free; with CleanVision's image checks, :mod:`utils.scores.image_checks`, as the step
``image_checks``), ``supervised`` (one K-fold pass: dynamics + confident learning), ``ssft``,
``autoencoder`` (+ ``ae_ssft``), ``ssl`` (self-supervised geometry) and ``ssl_labels`` (kNN label disagreement).
Label-free steps are keyed by the images and ids only, so a labeled call reuses what a label-free call on the same
images computed; the others are keyed by the labels too.

Decisions (the issue left them open): the supervised family trains ``folds`` = 4 models so that every sample
has 3 initialisations of dynamics (EL2N is averaged over >= 3 in Paul et al.) and an out-of-sample prediction,
at the cost of 3 full-data trainings; the recipe is the paper's (SGD, triangle lr) at a fixed number of epochs
(no early stop), so learning and forgetting are counted on one time axis; k-means of every embedding uses
``clusters`` = 10 centroids whatever the labels say (label-free scores must not read the labels; Sorscher et al.
find prototype scores insensitive to the count within an order of magnitude of the number of classes).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from utils.data.datasets import DatasetInfo, check_images
from utils.data.samples import Samples, check_ids, check_labels
from utils.engine import cache
from utils.engine.distributed import rank_and_world
from utils.metrics.checks import is_integer
from utils.scores.flags import add_flags, issue_settings
from utils.scores.registry import FAMILIES, LABEL_FREE_FAMILIES, direction, registered
from utils.scores.steps import STEP_GROUPS, STEPS, StepInputs, step_settings  # noqa: F401 (STEPS: re-exported)


# What each tier trains, over ScoringConfig's defaults (the "default" tier). The default tier is the fast one a
# practitioner runs on a new folder: the pixel scores and CleanVision's checks, one K-fold pass of the classifier
# (label issues, the suggested class, the supervised training dynamics) and a short autoencoder (label-free
# hardness); `benchmarks/bench_planted.py` measures it side by side with Datalab + CleanVision. "thorough" adds the
# second-split forgetting of the classifier (SSFT) and of the autoencoder and a BarlowTwins encoder (the
# self-supervised family): every score of the registry, the configuration the scoreboard and the pruning study use.
TIERS: dict[str, dict] = {
    "default": {},
    "thorough": {"ssft_epochs": 3, "ae_ssft_epochs": 3, "bt_epochs": 8},
}


@dataclass(frozen=True)
class ScoringConfig:
    """How much training each family gets; 0 epochs skips a family. The defaults are the fast ``"default"`` tier;
    :meth:`tier` gives a tier by name (``ScoringConfig.tier("thorough")``: every family, the scoreboard's)."""

    arch: str = "cnn"          # classifier of the supervised and SSFT families (utils.engine.models.CLASSIFIERS)
    folds: int = 4             # K of the K-fold pass: K - 1 recorded runs per sample + 1 out-of-sample prediction
    epochs: int = 5            # per fold run (paper recipe: SGD, triangle lr, no early stop)
    el2n_epoch: int = 1        # recorded epoch (0-based) EL2N is read at: early, as in Paul et al.
    ssft_epochs: int = 0       # per SSFT stage (paper recipe with its early stop); 0 skips SSFT (thorough: 3)
    ae_epochs: int = 6         # autoencoder (Adam 1e-3); 0 skips
    ae_batch_size: int = 64
    ae_loss: str = "mse"       # the seed's L1 sits on the blank-image plateau for tens of epochs (families docstring)
    ae_ssft_epochs: int = 0    # per stage of the autoencoder's SSFT (label-free, MSE, Adam 1e-3); 0 skips (thorough: 3)
    bt_epochs: int = 0         # BarlowTwins on the images when no encoder is given; 0 skips (thorough: 8)
    batch_size: int = 128
    k: int = 10                # neighbours of the kNN scores (cleanlab Datalab's default)
    clusters: int = 10         # k-means centroids of the prototype distances (label-free: not the class count)
    label_filter: str = "prune_by_noise_rate"  # cleanlab find_label_issues' filter_by for flag_label_issue
    seed: int = 0
    # per issue type, settings of its flag rule over Datalab's defaults, e.g. {"outlier": {"threshold": 0.2}}
    # (utils.scores.flags.ISSUES); the flags are computed after the cache, so no step is keyed by them
    issue_types: dict = field(default_factory=dict)

    def __post_init__(self):
        from utils.engine.models import CLASSIFIERS
        if self.arch not in CLASSIFIERS:
            raise ValueError(f"Unknown classifier {self.arch!r}: choose one of {', '.join(CLASSIFIERS)}.")
        for name in ("epochs", "ssft_epochs", "ae_epochs", "ae_ssft_epochs", "bt_epochs", "el2n_epoch", "seed"):
            v = getattr(self, name)
            if not is_integer(v) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}.")
        for name, low in (("folds", 2), ("k", 1), ("clusters", 1), ("batch_size", 2), ("ae_batch_size", 2)):
            v = getattr(self, name)
            if not is_integer(v) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}"
                                 + (" (one fold to hold out, one to train on)." if name == "folds" else "."))
        if self.seed >= 2 ** 32:
            raise ValueError(f"seed must be below 2**32 (numpy's and scikit-learn's seeds are 32-bit), "
                             f"got {self.seed}.")
        if self.epochs and self.el2n_epoch >= self.epochs:
            raise ValueError(f"el2n_epoch ({self.el2n_epoch}) must be an epoch of the run (0..{self.epochs - 1}).")
        if self.ae_loss not in ("l1", "mse"):
            raise ValueError(f"ae_loss must be 'l1' or 'mse', got {self.ae_loss!r}.")
        from utils.scores.label_quality import LABEL_FILTERS
        if self.label_filter not in LABEL_FILTERS:
            raise ValueError(f"label_filter must be one of cleanlab's filter_by settings ({', '.join(LABEL_FILTERS)}), "
                             f"got {self.label_filter!r}.")
        issue_settings(self.issue_types)   # refuses an unknown issue, setting or value with one sentence

    @classmethod
    def tier(cls, name: str = "default", **overrides) -> "ScoringConfig":
        """The configuration of the tier ``name`` (:data:`TIERS`), with ``overrides`` of its fields on top."""
        if name not in TIERS:
            raise ValueError(f"Unknown tier {name!r}: choose one of {', '.join(TIERS)}.")
        return cls(**{**TIERS[name], **overrides})

    def to_dict(self) -> dict:
        """The fields as a dict; ``issue_types`` only when set, so the keys of caches written before it existed
        (e.g. the scoreboard's copies) still match a default config."""
        d = asdict(self)
        if not d["issue_types"]:
            del d["issue_types"]
        return d


# ------------------------------------------------------------------------------------------------ inputs
def as_samples(images, labels=None, ids=None, info: DatasetInfo | None = None,
               sizes=None) -> tuple[Samples, DatasetInfo]:
    """The inputs of :func:`score_dataset` as checked :class:`Samples` and their description, or one sentence.

    Images of different sizes (a folder, or a list of arrays) are resized to one size, and images with a side over
    :data:`utils.data.datasets.MAX_SIDE` downscaled (:func:`utils.data.datasets.common_size`); ``meta`` then holds
    each image's original ``orig_height`` and ``orig_width`` (``sizes``: those of images resized before, e.g. by
    ``load_image_folder(..., with_sizes=True)``). The description is computed on the samples in id order, so it does
    not depend on the input order."""
    from utils.data.datasets import MAX_SIDE, common_size, resize_images, stack_images
    if isinstance(images, (str, Path)):
        from utils.data.datasets import load_image_folder
        images, folder_labels, _, sizes = load_image_folder(images, with_sizes=True)
        if labels is None:
            labels = folder_labels
    if isinstance(images, (list, tuple)) and len({tuple(np.shape(a)) for a in images}) > 1:
        images, sizes = stack_images(images)
    if isinstance(images, torch.Tensor):
        x = images.detach().cpu()
    else:
        a = np.asarray(images)
        if a.dtype.kind not in "biuf":
            raise ValueError(f"images must be real pixel values (or a folder's path), got {a.dtype} "
                             f"{'values' if a.ndim else repr(images)}; pass a tensor or array [N, C, H, W] in [0, 1], "
                             "a list of arrays, or the path of an image folder.")
        x = torch.from_numpy(np.ascontiguousarray(a))
    if x.is_complex():
        raise ValueError(f"images are complex ({x.dtype}); pass real pixels, e.g. their magnitude .abs().")
    given_4d = x.ndim == 4
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if given_4d and x.shape[-1] in (1, 3, 4):
        if x.shape[1] not in (1, 3, 4):      # channels-last [N, H, W, C]
            x = x.permute(0, 3, 1, 2)
        elif x.shape[1] != x.shape[-1] or x.shape[-1] > 1:
            raise ValueError(f"images of shape {list(x.shape)} are ambiguous: both the 2nd and the last axis look "
                             "like a channel axis; pass them as [N, C, H, W] or [N, H, W, C] images over 4 pixels "
                             "wide and high.")
    x = x.contiguous()
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    elif x.dtype == torch.uint16:
        x = x.to(torch.int32).float() / 65535.0
    else:
        x = x.float()
    x = check_images(x, "images")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError(f"Pixels must lie in [0, 1] (got {float(x.min()):.3g}..{float(x.max()):.3g}); divide "
                         "8-bit images by 255 and 16-bit ones by 65535, or pass them as uint8 or uint16.")
    if max(x.shape[-2:]) > MAX_SIDE:     # huge images: downscaled in chunks before any statistic sees them
        if sizes is None:
            sizes = np.tile(np.array(x.shape[-2:], dtype=np.int64), (len(x), 1))
        target, chunk = common_size([tuple(x.shape[-2:])]), max(1, 2 ** 26 // max(1, x[0].numel()))
        x = torch.cat([resize_images(x[i:i + chunk], target) for i in range(0, len(x), chunk)])
    if labels is not None:
        values = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if values.dtype.kind not in "iu":
            raise ValueError(f"labels must be integer class indices 0..C-1, got {values.dtype} values (e.g. "
                             f"{values.reshape(-1)[:2].tolist()}); map class names to integers first, e.g. with "
                             "pandas.factorize.")
        if values.ndim == 2 and values.shape[1] == 1:     # a column [N, 1]; a one-hot [N, C] is refused below
            values = values[:, 0]
        labels = check_labels(np.ascontiguousarray(values), len(x))
    ids = check_ids(ids, len(x))
    meta = None
    if sizes is not None:
        sizes = np.asarray(sizes, dtype=np.int64)
        if sizes.shape != (len(x), 2):
            raise ValueError(f"sizes must be one (height, width) per image, [{len(x)}, 2], got {list(sizes.shape)}.")
        if (sizes != np.array(x.shape[-2:])).any():
            meta = pd.DataFrame({"orig_height": sizes[:, 0], "orig_width": sizes[:, 1]},
                                index=pd.Index(ids, name="sample_id"))
    data = Samples(x, labels, ids, meta=meta,
                   num_classes=info.num_classes if info is not None and labels is not None else None)
    if info is None:
        order = np.argsort(ids, kind="stable")
        xs = x if (order == np.arange(len(order))).all() else x[torch.from_numpy(order)]
        ls = None if labels is None else labels[torch.from_numpy(order)]
        info = DatasetInfo.from_images(xs, ls, num_classes=None if labels is None else data.num_classes)
    return data, info


def _named_inputs(images, labels, sizes):
    """``(images, labels, files, classes, sizes)``: an image folder read (its files, and its class sub-folders as
    the labels unless ``labels`` are given), and class names as labels (strings, any order) turned into indices
    0..C-1 in sorted name order with the names kept; ``files`` / ``classes`` None where there are none."""
    files = classes = None
    if isinstance(images, (str, Path)):
        from utils.data.datasets import load_image_folder
        images, folder_labels, files, sizes = load_image_folder(images, with_sizes=True)
        if labels is None and folder_labels is not None:
            labels = folder_labels
            classes = sorted({Path(f).parts[0] for f in files if len(Path(f).parts) > 1}) or None
    if labels is not None and not isinstance(labels, torch.Tensor):
        values = np.asarray(labels)
        if values.dtype.kind in "OUS" and values.ndim == 1 and all(isinstance(v, str) for v in values):
            codes, names = pd.factorize(values, sort=True)
            labels, classes = codes.astype(np.int64), [str(c) for c in names]
    return images, labels, files, classes, sizes


def with_names(scores: pd.DataFrame, files=None, classes=None) -> pd.DataFrame:
    """``scores`` with the ``file`` of each row (image folders) and the ``class_name`` of its label in front (rows
    in input order): :func:`score_dataset` adds them for a folder or class names, the CLI for what it loaded."""
    if files is not None and "file" not in scores:
        scores.insert(0, "file", list(files))
    if classes is not None and "label" in scores and "class_name" not in scores:
        scores.insert(1 if "file" in scores else 0, "class_name", [classes[c] for c in scores["label"]])
    return scores


# ------------------------------------------------------------------------------------------- entry point
def score_dataset(images, labels=None, ids=None, *, info: DatasetInfo | None = None,
                  config: ScoringConfig | None = None, folder=None, encoder: torch.nn.Module | None = None,
                  families=FAMILIES, progress: bool = False, force: bool = False, sizes=None, pred_probs=None,
                  features=None) -> pd.DataFrame:
    """Every score of every sample, one row per sample id (input order); see the module docstring.

    ``images``: ``[N, C, H, W]``, ``[N, H, W]`` or channels-last ``[N, H, W, 1, 3 or 4]`` (tensor or array; a shape
    whose 2nd and last axes could both be channels is refused), floats in [0, 1], uint8 (/ 255) or uint16
    (/ 65535), a list of images of any sizes, or the path of an image folder
    (class sub-folders give the labels, :func:`utils.data.datasets.load_image_folder`; the table then has each
    row's ``file`` and ``class_name``). ``labels``: N class indices, N class names (strings: indices in sorted name
    order, the table gets ``class_name``) or None (then only the label-free families run). ``ids``: N unique integers (default 0..N-1); every
    row of the result is keyed by them. ``info``: the data description (default computed from the images).
    ``config``: :class:`ScoringConfig`. ``folder``: the cache (see the module docstring). ``encoder``: a trained
    network for the self-supervised family (default: a BarlowTwins trained on the images). ``families``: which of
    :data:`utils.scores.registry.FAMILIES` to run. ``progress``: one bar over the steps (with its ETA) and a bar per
    training run under it (``python -m utils.score`` shows them unless ``--quiet``). ``force``: recompute and
    overwrite the cached steps saved by another version of their code (:mod:`utils.scores.steps`), which are
    otherwise refused; steps cached with other settings or other data are refused either way.

    Bring your own model outputs, as with Datalab's ``find_issues(pred_probs=, features=)``: ``pred_probs``
    (``[N, C]`` out-of-sample class probabilities, rows in input order, or a DataFrame indexed by sample id) replaces
    the K-fold pass (confident learning, the suggested class and the label-issue flag from them; no training
    dynamics), ``features`` (``[N, D]`` an embedding, rows in input order) replaces the self-supervised encoder.

    Images of different sizes (a folder, or a list of arrays) are scored at one size, the most common one, each
    image stretched to it (bilinear, antialiased); images with a side over 256 pixels are downscaled, aspect kept
    (:func:`utils.data.datasets.common_size`). The table then has each image's original ``orig_height`` and
    ``orig_width``, and CleanVision's odd-size and odd-aspect-ratio checks see the original sizes. ``sizes``: the
    original ``(height, width)`` of images resized before the call (``load_image_folder(..., with_sizes=True)``).

    ``attrs``: ``direction`` maps each registered score column to its suspicious end ("higher" / "lower"),
    ``seconds`` the compute time of each step (also when loaded), ``fresh`` the steps this call computed."""
    config, families = _checked_config(config), _checked_families(families)
    images, labels, files, classes, sizes = _named_inputs(images, labels, sizes)
    data, info = as_samples(images, labels, ids, info, sizes)
    trains = ("supervised" in families and config.epochs) or ("ssft" in families and config.ssft_epochs)
    if data.labels is not None and trains and len(torch.unique(data.labels)) < 2:
        raise ValueError(f"Every label is class {int(data.labels[0])} (for a folder: every image sits in one class "
                         "sub-folder), and a single class cannot train a classifier; score without labels "
                         "(labels=None, or the images in the folder itself) or with the label-free families only "
                         f"({', '.join(LABEL_FREE_FAMILIES)}).")
    _check_count(len(data), config, kfold=bool(data.labels is not None and "supervised" in families
                                               and config.epochs and pred_probs is None))
    if folder is not None and Path(folder).exists() and not Path(folder).is_dir():
        raise ValueError(f"The cache folder {folder} is a file; pass a folder (it is created when missing).")
    given_order = data.ids
    pred_probs, features = _given(pred_probs, features, data)
    data = data.sorted()   # every family sees the samples in id order: scores do not depend on the input order
    folder = Path(folder) if folder is not None else None
    inputs = StepInputs(data, info, config, folder, encoder, progress, pred_probs=pred_probs, features=features)
    parts = _run_steps(inputs, families, force)
    out = with_names(add_flags(_joined(parts, data), config.issue_types).reindex(given_order), files, classes)
    out.attrs["direction"] = {c: direction(c) for c in registered(out.columns)}
    out.attrs["seconds"] = {p.attrs["step"].removeprefix("scores_"): p.attrs["seconds"] for p in parts}
    out.attrs["fresh"] = [p.attrs["step"].removeprefix("scores_") for p in parts if p.attrs["fresh"]]
    return out


def _checked_config(config) -> ScoringConfig:
    """``config`` as a :class:`ScoringConfig` (None: the defaults; a dict: its fields), or one sentence."""
    if isinstance(config, dict):
        try:
            config = ScoringConfig(**config)
        except TypeError as err:
            raise ValueError(f"config names a field ScoringConfig does not have ({err}); pass "
                             "ScoringConfig(...) with its fields.") from None
    config = ScoringConfig() if config is None else config
    if not isinstance(config, ScoringConfig):
        raise ValueError(f"config must be a ScoringConfig (or a dict of its fields), got {type(config).__name__}.")
    return config


def _checked_families(families) -> tuple[str, ...]:
    """``families`` (one name or several) as a tuple of :data:`utils.scores.registry.FAMILIES`, or one sentence."""
    families = (families,) if isinstance(families, str) else tuple(families)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"Unknown score families {unknown}: choose from {', '.join(FAMILIES)}.")
    return families


def _joined(parts: list[pd.DataFrame], data: Samples) -> pd.DataFrame:
    """The steps' tables side by side in id order (``data``'s), after the original image sizes and the label."""
    index = pd.Index(data.ids, name="sample_id")
    out = pd.concat([p.reindex(data.ids) for p in parts], axis=1) if parts else pd.DataFrame(index=index)
    out.index = index
    if "orig_height" in data.meta:
        out = pd.concat([data.meta[["orig_height", "orig_width"]], out], axis=1)
    if data.labels is not None:
        out.insert(0, "label", data.labels.numpy())
    return out


def _check_count(n: int, config: ScoringConfig, kfold: bool) -> None:
    """Refuses, with one sentence naming the setting, ``n`` images too few for the k-means ``clusters`` of every
    embedding or (when the K-fold pass trains, ``kfold``) for 4 images per fold of ``folds``."""
    for name, value, least, why in (("folds", config.folds, 4 * config.folds if kfold else 0, "4 images per fold"),
                                    ("clusters", config.clusters, config.clusters, "one image per k-means centroid")):
        if n < least:
            raise ValueError(f"{n} images are too few for {name}={value} ({why}); give at least {least} images, "
                             f"or lower {name} (--set {name}=...).")


def _given(pred_probs, features, data: Samples):
    """``pred_probs`` as a DataFrame by sample id (sorted, columns p0..) and ``features`` as float rows in id order,
    checked against the samples (``data``, in input order), or one sentence saying what is wrong."""
    n, order = len(data), np.argsort(data.ids, kind="stable")
    if pred_probs is not None:
        if data.labels is None:
            raise ValueError("pred_probs are probabilities of the given labels; pass the labels too.")
        if isinstance(pred_probs, pd.DataFrame):
            p = pred_probs.reindex(np.sort(data.ids))
            if p.isna().any().any():
                raise ValueError("pred_probs (a DataFrame) must hold one row per sample id of the images.")
            p = p.to_numpy(dtype=np.float64)
        else:
            p = np.asarray(pred_probs, dtype=np.float64)
            if p.ndim != 2 or len(p) != n:
                raise ValueError(f"pred_probs must be [N={n}, C] (one row of class probabilities per image), got "
                                 f"shape {list(p.shape)}.")
            p = p[order]
        k = int(data.labels.max()) + 1
        if p.shape[1] < k or not np.isfinite(p).all() or (p < 0).any() or not np.allclose(p.sum(1), 1, atol=1e-4):
            raise ValueError(f"pred_probs must hold, per image, {k} or more class probabilities that are >= 0 and sum "
                             "to 1 (out-of-sample, e.g. cross_val_predict(..., method='predict_proba')).")
        pred_probs = pd.DataFrame(p, index=pd.Index(np.sort(data.ids), name="sample_id"),
                                  columns=[f"p{c}" for c in range(p.shape[1])])
    if features is not None:
        z = np.asarray(features, dtype=np.float64)
        if z.ndim != 2 or len(z) != n:
            raise ValueError(f"features must be a finite [N={n}, D] embedding, one row per image, got shape "
                             f"{list(z.shape)}.")
        if not np.isfinite(z).all():
            raise ValueError(f"features hold {int((~np.isfinite(z)).sum())} non-finite values (NaN or inf), in rows "
                             f"{np.flatnonzero(~np.isfinite(z).all(1))[:5].tolist()}; clean or drop those samples.")
        features = z[order]
    return pred_probs, features


def _run_steps(inputs: StepInputs, families, force: bool) -> list[pd.DataFrame]:
    """The table of every step that runs (:data:`utils.scores.steps.STEPS`), in declaration order: loaded from the
    cache when saved by the step's current code with these settings, else computed (and saved)."""
    todo = [s for s in STEPS.values() if s.runs(inputs, families)]
    encoder_key = None if inputs.encoder is None else cache.module_sha256(inputs.encoder)
    fingerprints = {}   # of the labeled and the unlabeled view, each computed once
    given = inputs.given()

    def settings_of(name):
        return step_settings(inputs.config, name, inputs.data, inputs.info, encoder_key, fingerprints, given)

    if rank_and_world()[1] > 1:
        return _spread_steps(todo, inputs, settings_of, force)
    bar = tqdm(todo, desc="score_dataset", unit="step", disable=not inputs.progress)   # training bars appear under it
    parts = []
    for s in bar:
        bar.set_postfix_str(s.name)
        parts.append(cache.step(inputs.folder, f"scores_{s.name}", settings_of(s.name), lambda: s.function(inputs),
                                version=s.version, force=force))
    return parts


def _spread_steps(todo, inputs: StepInputs, settings_of, force: bool) -> list[pd.DataFrame]:
    """Under ``torchrun``: the step groups spread over the ranks (:func:`utils.engine.distributed.spread`), each
    computed as one process would (so the scores equal one process's); cached steps are loaded, fresh ones saved
    by rank 0 afterwards. Every rank returns every step's table."""
    from utils.engine.distributed import spread

    folder, steps = inputs.folder, {s.name: s for s in todo}
    groups = [g for g in ([n for n in g if n in steps] for g in STEP_GROUPS) if g]

    def one(s):
        return cache.step(folder, f"scores_{s.name}", settings_of(s.name), lambda: s.function(inputs), save=False,
                          version=s.version, force=force)

    def run(group):
        return lambda: [one(steps[n]) for n in group]

    done = {f.attrs["step"].removeprefix("scores_"): f for part in spread([run(g) for g in groups]) for f in part}
    if folder is not None:
        with cache.writing(folder):
            for name, frame in done.items():
                if frame.attrs["fresh"]:
                    cache.save_step(folder, f"scores_{name}", settings_of(name), frame, steps[name].version)
    return [done[s.name] for s in todo]


def save_scores(scores: pd.DataFrame, path) -> None:
    """The per-sample table as Parquet (lossless; its ``attrs``, e.g. each score's direction, kept inside)."""
    cache.save_table(scores, path)


def load_scores(path) -> pd.DataFrame:
    """A table written by :func:`save_scores`, bit-identical to the one saved."""
    return cache.load_table(path)
