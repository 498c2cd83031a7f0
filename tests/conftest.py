"""Shared fixtures: small real data, and the shared MNIST test split when DATA_ROOT points at it."""
import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def mnist5k():
    """(images, labels) of the mnist-5k training split (load_dataset's info left out)."""
    from utils.data.datasets import load_dataset
    images, labels, _ = load_dataset("mnist-5k", "train")
    return images, labels


@pytest.fixture(scope="session")
def shared_data_root():
    """Folder holding MNIST/raw/t10k-*: $DATA_ROOT, else ../shared/data beside the repo; skip if absent."""
    candidates = [os.environ.get("DATA_ROOT"), Path(__file__).resolve().parents[2] / "shared" / "data"]
    for c in candidates:
        if c and (Path(c) / "MNIST" / "raw").is_dir():
            return Path(c)
    pytest.skip("MNIST test split not found: set DATA_ROOT to the folder holding MNIST/raw/t10k-*.")
