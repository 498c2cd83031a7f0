"""The seed's two SSFT classifiers for 28x28 single-channel images.

* :class:`SmallCNN` — two conv / ReLU / BatchNorm / max-pool blocks and a 128-unit head; 225,226
  parameters (the seed called it "CNN 300k" / "0.3M"). Its conv blocks are also the BarlowTwins backbone.
* :class:`LeNet` — two 5x5 conv / ReLU / pool blocks and a 1024-unit head, no BatchNorm; 3,274,634
  parameters (the seed's "LeNet 3M").
"""
from __future__ import annotations

import torch
from torch import nn

NUM_CLASSES = 10


def _check_images(x: torch.Tensor, who: str) -> None:
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"{who} expects images of shape [N, 1, 28, 28], got {list(x.shape)}; "
                         "resize or pick a 28x28 single-channel dataset.")


def conv_backbone() -> nn.Sequential:
    """28x28 image -> 1600 features (64 x 5 x 5): the seed's CNN feature extractor, 19,008 parameters."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.BatchNorm2d(32), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.BatchNorm2d(64), nn.MaxPool2d(2),
        nn.Flatten())


class SmallCNN(nn.Module):
    """The seed's supervised SSFT CNN: backbone -> 1600 -> 128 -> classes."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.features = conv_backbone()
        self.head = nn.Sequential(nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, "SmallCNN")
        return self.head(self.features(x))


class LeNet(nn.Module):
    """The seed's LeNet: 5x5 convs 1->32->64 with padding 2, pools to 7x7, then 3136 -> 1024 -> classes."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(64 * 7 * 7, 1024), nn.ReLU(), nn.Linear(1024, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, "LeNet")
        return self.head(self.features(x))


CLASSIFIERS = {"cnn": SmallCNN, "lenet": LeNet}


def make_classifier(name: str, num_classes: int = NUM_CLASSES) -> nn.Module:
    if name not in CLASSIFIERS:
        raise ValueError(f"Unknown classifier {name!r}: choose one of {', '.join(CLASSIFIERS)}.")
    return CLASSIFIERS[name](num_classes)
