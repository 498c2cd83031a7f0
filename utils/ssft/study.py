"""SSFT studies as cached steps the ssft/ notebooks call: data -> (label noise | mixed images) -> runs -> times.

Sample ids are dataset positions of the loaded split (for mixed datasets, the ids of
:func:`utils.mixing.make_mixed`); every table is indexed by them. Runs live in
``<results>/ssft/<name>/`` and are loaded instead of retrained when present.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from utils.data import flip_labels, load_dataset
from utils.mixing import make_mixed
from utils.ssft.protocol import SSFTConfig, run_ssft
from utils.ssft.tasks import make_task

NOISE_SEED = 0


def study_folder(results, name: str) -> Path:
    return Path(results) / "ssft" / name


def noisy_labels(dataset: str, split: str, noise: float, root=None, seed: int = NOISE_SEED):
    """(images, clean labels, given labels, flipped) for a split with ``noise`` of its labels flipped."""
    images, labels = load_dataset(dataset, split, root=root)
    given, flipped = flip_labels(labels, noise, seed=seed, num_classes=10)
    return images, labels, given, flipped


def supervised_study(config: SSFTConfig, dataset: str, split: str, noise: float, results, root=None,
                     progress: bool = True):
    """Train (or load) a supervised SSFT study under label noise; returns (runs, dataset frame by sample id)."""
    images, labels, given, flipped = noisy_labels(dataset, split, noise, root)
    ids = np.arange(len(labels))
    name = f"{config.model}_noise{noise:g}"
    runs = run_ssft(make_task(config.model), config, images, given, ids, study_folder(results, name), progress)
    frame = pd.DataFrame({"label": labels.numpy(), "given_label": given.numpy(), "is_flipped": flipped.numpy()},
                         index=pd.Index(ids, name="sample_id"))
    return runs, frame, images


def mixed_study(config: SSFTConfig, dataset: str, split: str, mode: str, results, root=None,
                fraction: float = 0.1, mix_seed: int = 91, progress: bool = True):
    """Train (or load) an unsupervised SSFT study (autoencoder or BarlowTwins) on a mixed-image dataset."""
    images, labels = load_dataset(dataset, split, root=root)
    mixed = make_mixed(images, labels, fraction=fraction, mode=mode, seed=mix_seed)
    ids = mixed.sample_ids.numpy()
    name = f"{config.model}_{mode}"
    runs = run_ssft(make_task(config.model), config, mixed.images, mixed.labels, ids,
                    study_folder(results, name), progress)
    frame = pd.DataFrame({"label": mixed.labels.numpy(), "is_mixed": mixed.is_mixed.numpy()},
                         index=pd.Index(ids, name="sample_id"))
    return runs, frame, mixed.images
