"""The cached steps of :func:`utils.scores.dataset.score_dataset`, each declared once (:data:`STEPS`).

A :class:`Step` says which family of :data:`utils.scores.registry.FAMILIES` runs it, which training run it shares
(its ``group``: the steps of one group run on one rank under ``torchrun``), whether it reads the labels, which
:class:`~utils.scores.dataset.ScoringConfig` fields its table depends on, the function that computes it and the
version of that code. ``score_dataset`` (which steps run, what each is keyed by), its spread over ranks and
``benchmarks/bench_scale.py`` (which family a step's seconds count for) all read this one list.

**Code version.** Each step carries an explicit integer ``version``, part of its cache key
(:func:`utils.engine.cache.step`): a table saved by another version is refused, or recomputed with ``force=True``
(``--force``). Raise it whenever a change makes the step's table differ. An integer was chosen over a hash of the
step function's source because the table depends on much more code than that one function (the family module, the
geometry, the training loop, cleanlab), which such a hash would miss, while it would change on every comment or
rename and throw away hours of training for nothing. The training runs under a step (``kfold/``, ``ssft/``,
``autoencoder/``, ``barlow_twins/``) are cached by the loop under their own settings, not by this version: a
change to what the loop records needs a new folder.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import pandas as pd

from utils.metrics.checks import is_integer
from utils.scores import families as fam
from utils.scores.registry import FAMILIES


@dataclass
class StepInputs:
    """What every step reads: the samples (in id order), their description, the config, the cache folder, the
    encoder passed in; the K-fold pass and the self-supervised embedding, computed once if a step needs them."""

    data: object
    info: object
    config: object
    folder: object = None
    encoder: object = None
    progress: bool = False
    shared: dict = field(default_factory=dict)
    pred_probs: object = None     # out-of-sample probabilities the caller brought (DataFrame by id): no K-fold pass
    features: object = None       # an embedding the caller brought ([N, D], id order): no self-supervised training

    @property
    def free_info(self):
        """What the label-free families may know: the description without the class count."""
        return replace(self.info, num_classes=0)

    def kfold(self):
        if "kfold" not in self.shared:
            if self.pred_probs is not None:
                from utils.engine.protocols import KFold
                self.shared["kfold"] = KFold(self.pred_probs, [], [])
            else:
                self.shared["kfold"] = fam.kfold_pass(self.data, self.info, self.config, self.folder, self.progress)
        return self.shared["kfold"]

    def embedding(self):
        if "ssl" not in self.shared:
            self.shared["ssl"] = fam.feature_embedding(self.features, self.data, self.config) \
                if self.features is not None else \
                fam.ssl_embedding(self.data, self.free_info, self.config, self.folder, self.encoder, self.progress)
        return self.shared["ssl"]

    def given(self) -> dict:
        """SHA-256 of what the caller brought, by the step group it replaces (part of those steps' keys)."""
        import hashlib
        out = {}
        for group, value in (("kfold", self.pred_probs), ("ssl", self.features)):
            if value is not None:
                raw = value.to_numpy() if isinstance(value, pd.DataFrame) else np.asarray(value)
                out[group] = hashlib.sha256(np.ascontiguousarray(raw, dtype="<f8").tobytes()).hexdigest()
        return out


def _always(inputs: StepInputs) -> bool:
    return True


@dataclass(frozen=True)
class Step:
    name: str
    family: str                   # the family (utils.scores.registry.FAMILIES) whose choice runs it
    group: str                    # steps sharing one training run, spread to one rank together
    needs_labels: bool            # keyed by the labels, and run only when there are labels
    settings_fields: tuple        # the ScoringConfig fields its table depends on
    function: Callable[[StepInputs], pd.DataFrame]
    version: int                  # raise it whenever the table it gives changes (module docstring)
    enabled: Callable[[StepInputs], bool] = _always   # e.g. not with 0 epochs

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"step {self.name}: unknown family {self.family!r}; choose one of {', '.join(FAMILIES)}.")
        if not is_integer(self.version) or self.version < 1:
            raise ValueError(f"step {self.name}: version must be a positive integer, got {self.version!r}.")

    def runs(self, inputs: StepInputs, families) -> bool:
        """Whether ``score_dataset`` computes this step for ``inputs`` and the chosen ``families``."""
        return bool(self.family in families and (inputs.data.labels is not None or not self.needs_labels) and self.enabled(inputs))


KFOLD = ("arch", "folds", "epochs", "el2n_epoch", "batch_size", "seed")


def _ssl_on(i: StepInputs) -> bool:
    return bool(i.config.bt_epochs or i.encoder is not None or i.features is not None)


def _kfold_on(i: StepInputs) -> bool:
    return bool(i.config.epochs > 0 or i.pred_probs is not None)


def _supervised(i: StepInputs) -> pd.DataFrame:
    if i.pred_probs is not None:   # probabilities brought in: confident learning only, no training dynamics
        return fam.given_label_quality(i.data, i.kfold())
    return fam.supervised_scores(i.data, i.config, i.kfold())


_DECLARED = (
    Step("pixels", "pixels", "pixels", False, ("k", "clusters", "seed"),
         lambda i: fam.pixel_scores(i.data, i.config), version=3),   # 2: exact copies at distance 0; 3: cosine kNN distance
    Step("image_checks", "pixels", "pixels", False, (), lambda i: _image_checks(i), version=2,   # 2: original sizes
         enabled=lambda i: i.data.images.shape[1] in (1, 3)),
    Step("supervised", "supervised", "kfold", True, KFOLD, _supervised, version=2,   # 2: learning_time in epochs
         enabled=_kfold_on),
    Step("suggested", "supervised", "kfold", True, KFOLD, lambda i: fam.suggested_labels(i.data, i.kfold()),
         version=1, enabled=_kfold_on),
    Step("label_issues", "supervised", "kfold", True, (*KFOLD[:-1], "label_filter", "seed"),
         lambda i: fam.label_issues(i.data, i.config, i.kfold()), version=1, enabled=_kfold_on),
    Step("ssft", "ssft", "ssft", True, ("arch", "ssft_epochs", "batch_size", "seed"),
         lambda i: fam.ssft_family(i.data, i.info, i.config, i.folder, i.progress), version=1,
         enabled=lambda i: i.config.ssft_epochs > 0),
    Step("autoencoder", "autoencoder", "autoencoder", False,
         ("ae_epochs", "ae_batch_size", "ae_loss", "k", "clusters", "seed"),
         lambda i: fam.autoencoder_scores(i.data, i.free_info, i.config, i.folder, i.progress), version=2,
         enabled=lambda i: i.config.ae_epochs > 0),
    Step("ae_ssft", "autoencoder", "autoencoder", False, ("ae_ssft_epochs", "ae_batch_size", "seed"),
         lambda i: fam.ae_ssft_scores(i.data, i.free_info, i.config, i.folder, i.progress), version=1,
         enabled=lambda i: i.config.ae_ssft_epochs > 0),
    Step("ssl", "self-supervised", "ssl", False, ("bt_epochs", "k", "clusters", "seed"),
         lambda i: fam.ssl_scores(i.data, i.config, i.embedding()), version=2, enabled=_ssl_on),
    Step("ssl_labels", "self-supervised", "ssl", True, ("bt_epochs", "k", "seed"),
         lambda i: fam.ssl_label_scores(i.data, i.embedding()), version=1, enabled=_ssl_on),
)


def orig_sizes(data) -> np.ndarray | None:
    """The original (height, width) ``[N, 2]`` of resized samples (``meta``), None when none was resized."""
    return data.meta[["orig_height", "orig_width"]].to_numpy(np.int64) if "orig_height" in data.meta else None


def _image_checks(i: StepInputs) -> pd.DataFrame:
    from utils.scores.image_checks import image_checks
    return image_checks(i.data.images, i.data.ids, orig_sizes(i.data), progress=i.progress)


STEPS: dict[str, Step] = {s.name: s for s in _DECLARED}
# the steps of each group, groups in order of their first step (under torchrun a group runs on one rank)
STEP_GROUPS: tuple = tuple(tuple(s.name for s in _DECLARED if s.group == g)
                           for g in dict.fromkeys(s.group for s in _DECLARED))


def step_family(name: str) -> str:
    """The family whose choice runs the step ``name`` (e.g. ``"suggested"`` -> ``"supervised"``)."""
    return STEPS[name].family


def step_settings(config, name: str, data, info, encoder: str | None = None, fingerprints: dict | None = None,
                  given: dict | None = None) -> dict:
    """What a cached step depends on besides its code version: its ScoringConfig fields, the data (images and
    ids; labels and the class count too for the steps that read them) and, for the self-supervised steps, the
    encoder. ``fingerprints`` ({labeled: fingerprint}) reuses fingerprints already computed for this data."""
    s = STEPS[name]
    out = {f: getattr(config, f) for f in s.settings_fields}
    fingerprints = {} if fingerprints is None else fingerprints
    if s.needs_labels not in fingerprints:
        fingerprints[s.needs_labels] = (data if s.needs_labels else data.unlabeled()).fingerprint()
    out["data"] = fingerprints[s.needs_labels]
    full = info.to_dict()
    out["info"] = full if s.needs_labels else {k: v for k, v in full.items() if k != "num_classes"}
    if s.family == "self-supervised":
        out["encoder"] = encoder
    if given and s.group in given:   # pred_probs / features the caller brought replace that group's training
        out["given"] = given[s.group]
    if name == "image_checks" and orig_sizes(data) is not None:   # the odd-size checks read the original sizes
        import hashlib
        out["orig_sizes_sha256"] = hashlib.sha256(orig_sizes(data).astype("<i8").tobytes()).hexdigest()
    return out
