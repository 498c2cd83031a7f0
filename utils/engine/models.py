"""Every network of the toolkit, sized from the image shape ``(C, H, W)`` and the number of classes.

* :class:`Autoencoder` — the seed study's convolutional autoencoder (253,707 parameters on 1x28x28 at
  latent size 10); sigmoid bottleneck, so codes lie in (0, 1)^latent; linear decoder output because it
  reconstructs standardised pixels.
* :class:`SmallCNN` — two conv / ReLU / BatchNorm / max-pool blocks and a 128-unit head; 225,226
  parameters on 1x28x28 with 10 classes (the seed's "CNN 300k" / "0.3M"). Its conv blocks
  (:func:`conv_backbone`) are also the BarlowTwins backbone.
* :class:`LeNet` — two 5x5 conv / ReLU / pool blocks and a 1024-unit head, no BatchNorm; 3,274,634
  parameters on 1x28x28 (the seed's "LeNet 3M").
* :class:`BarlowTwins` — the SmallCNN backbone and a projector feat -> 1024 -> BN -> ReLU -> 500;
  2,172,980 parameters on 1x28x28. Its loss and augmentations are in :mod:`utils.engine.barlow_twins`.

On the default shape (1, 28, 28) every layer, state_dict key and initialisation draw is the seed's,
so a given torch seed gives the same initial weights as before the models were sized from the data.
Each model checks its input in ``forward`` and refuses, at construction, shapes too small for it.
"""
from __future__ import annotations

import math

import torch
from torch import nn

NUM_CLASSES = 10
MNIST_SHAPE = (1, 28, 28)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _as_shape(shape) -> tuple[int, int, int]:
    try:
        out = tuple(int(s) for s in shape)
        ok = len(out) == 3 and all(s > 0 and s == t for s, t in zip(out, shape))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"shape must be three positive integers (C, H, W), got {shape!r}.")
    return out


def _feature_hw(who: str, shape, side) -> tuple[int, int]:
    """The feature map's (h, w) for an image shape, ``side`` mapping an input side to a feature side;
    refuses shapes whose feature map would be empty."""
    h, w = side(shape[1]), side(shape[2])
    if h < 1 or w < 1:
        smallest = next(n for n in range(1, 1025) if side(n) >= 1)
        raise ValueError(f"{who} needs images of at least {smallest}x{smallest} pixels, got shape {shape}.")
    return h, w


def _check_images(x: torch.Tensor, who: str, shape) -> None:
    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(shape):
        c, h, w = shape
        fix = (f"build it with shape={tuple(x.shape[1:])}" if x.dim() == 4 else "pass a batch [N, C, H, W]")
        raise ValueError(f"{who} was built for images [N, {c}, {h}, {w}], got {list(x.shape)}; {fix}.")


# ---------------------------------------------------------------------------------------------- autoencoder

def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1)


def _pooled3(n: int) -> int:  # three 2x2 max-pools
    return n // 2 // 2 // 2


class Encoder(nn.Module):
    """Image -> sigmoid code of size ``latent`` (three conv/pool blocks C->8->16->32, two linear layers)."""

    def __init__(self, shape=MNIST_SHAPE, latent: int = 10, dropout: float = 0.1):
        super().__init__()
        shape = _as_shape(shape)
        h3, w3 = _feature_hw("Autoencoder", shape, _pooled3)
        self.features = nn.Sequential(
            nn.Dropout(dropout), _conv(shape[0], 8), nn.MaxPool2d(2), nn.ReLU(),
            nn.Dropout(dropout), _conv(8, 16), nn.MaxPool2d(2), nn.ReLU(),
            nn.Dropout(dropout), _conv(16, 32), nn.MaxPool2d(2), nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * h3 * w3, 128), nn.ReLU(), nn.Linear(128, latent), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Decoder(nn.Module):
    """Code -> image: two linear layers to 32 x ceil(H/4) x ceil(W/4), conv + nearest 2x upsampling twice,
    a last conv to C channels, then a centre crop to H x W (no crop when H and W are multiples of 4)."""

    def __init__(self, shape=MNIST_SHAPE, latent: int = 10):
        super().__init__()
        self.shape = c, h, w = _as_shape(shape)
        hd, wd = math.ceil(h / 4), math.ceil(w / 4)
        self.head = nn.Sequential(
            nn.Linear(latent, 128), nn.ReLU(), nn.Linear(128, 32 * hd * wd), nn.ReLU(),
            nn.Unflatten(1, (32, hd, wd)))
        self.body = nn.Sequential(
            _conv(32, 16), nn.Upsample(scale_factor=2), nn.ReLU(),
            _conv(16, 8), nn.Upsample(scale_factor=2), nn.ReLU(),
            _conv(8, c))
        self._crop = ((4 * hd - h) // 2, (4 * wd - w) // 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.body(self.head(z))
        (top, left), (h, w) = self._crop, self.shape[1:]
        if out.shape[-2:] != (h, w):
            out = out[..., top:top + h, left:left + w]
        return out


class Autoencoder(nn.Module):
    """Encoder + decoder; ``forward`` returns ``(reconstruction, code)`` so trackers get both at once."""

    def __init__(self, shape=MNIST_SHAPE, latent: int = 10, dropout: float = 0.1):
        super().__init__()
        self.shape = _as_shape(shape)
        self.encoder = Encoder(self.shape, latent, dropout)
        self.decoder = Decoder(self.shape, latent)

    def forward(self, x: torch.Tensor):
        _check_images(x, "Autoencoder", self.shape)
        z = self.encoder(x)
        return self.decoder(z), z


# ---------------------------------------------------------------------------------------------- classifiers

def _backbone_side(n: int) -> int:  # conv3 (valid), pool2, conv3 (valid), pool2
    return ((n - 2) // 2 - 2) // 2


def conv_backbone(channels: int = 1) -> nn.Sequential:
    """[N, C, H, W] -> 64 * h * w features with h = ((H - 2) // 2 - 2) // 2 (1600 on 28x28): the seed's CNN
    feature extractor, 19,008 parameters on one channel."""
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3), nn.ReLU(), nn.BatchNorm2d(32), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.BatchNorm2d(64), nn.MaxPool2d(2),
        nn.Flatten())


def backbone_features(shape, who: str = "conv_backbone") -> int:
    """Number of features :func:`conv_backbone` gives for images of ``shape``; refuses too small ones."""
    h, w = _feature_hw(who, _as_shape(shape), _backbone_side)
    return 64 * h * w


class SmallCNN(nn.Module):
    """The seed's supervised SSFT CNN: backbone -> feat -> 128 -> classes."""

    def __init__(self, shape=MNIST_SHAPE, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.shape = _as_shape(shape)
        feat = backbone_features(self.shape, "SmallCNN")
        self.features = conv_backbone(self.shape[0])
        self.head = nn.Sequential(nn.Linear(feat, 128), nn.ReLU(), nn.Linear(128, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, "SmallCNN", self.shape)
        return self.head(self.features(x))


class LeNet(nn.Module):
    """The seed's LeNet: 5x5 convs C->32->64 with padding 2, two 2x2 pools, then 64*(H//4)*(W//4) -> 1024
    -> classes."""

    def __init__(self, shape=MNIST_SHAPE, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.shape = _as_shape(shape)
        h, w = _feature_hw("LeNet", self.shape, lambda n: n // 2 // 2)
        self.features = nn.Sequential(
            nn.Conv2d(self.shape[0], 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(64 * h * w, 1024), nn.ReLU(), nn.Linear(1024, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, "LeNet", self.shape)
        return self.head(self.features(x))


class ResNet18(nn.Module):
    """torchvision's ResNet-18 (11.2 M parameters) with the small-image stem used for CIFAR-10 (He et al. 2016;
    the CCS and EL2N pruning studies train it): a 3x3 stride-1 first convolution on C channels and no max-pool,
    so 28x28 and 32x32 images keep a 4x4 map before the global pool. The pruning study's larger classifier
    for users with a GPU: 0.46 G multiply-adds per 1x28x28 image, 173x the CNN's 2.6 M."""

    def __init__(self, shape=MNIST_SHAPE, num_classes: int = NUM_CLASSES):
        super().__init__()
        from torchvision.models import resnet18

        self.shape = _as_shape(shape)
        _feature_hw("ResNet18", self.shape, lambda n: n // 8)   # three stride-2 stages
        self.net = resnet18(weights=None, num_classes=num_classes)
        self.net.conv1 = nn.Conv2d(self.shape[0], 64, 3, stride=1, padding=1, bias=False)
        self.net.maxpool = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, "ResNet18", self.shape)
        return self.net(x)


CLASSIFIERS = {"cnn": SmallCNN, "lenet": LeNet, "resnet18": ResNet18}


def make_classifier(name: str, shape=MNIST_SHAPE, num_classes: int = NUM_CLASSES) -> nn.Module:
    """A fresh classifier by name (``CLASSIFIERS``) for images of ``shape`` (C, H, W)."""
    if name not in CLASSIFIERS:
        raise ValueError(f"Unknown classifier {name!r}: choose one of {', '.join(CLASSIFIERS)}.")
    return CLASSIFIERS[name](shape, num_classes)


# ---------------------------------------------------------------------------------------------- BarlowTwins

class BarlowTwins(nn.Module):
    """Backbone + projector; ``forward`` returns the ``proj_dim`` projection, ``features`` the backbone's
    representation (1600-d on 28x28)."""

    def __init__(self, shape=MNIST_SHAPE, proj_hidden: int = 1024, proj_dim: int = 500):
        super().__init__()
        self.shape = _as_shape(shape)
        feat = backbone_features(self.shape, "BarlowTwins")
        self.backbone = conv_backbone(self.shape[0])
        self.projector = nn.Sequential(nn.Linear(feat, proj_hidden), nn.BatchNorm1d(proj_hidden), nn.ReLU(),
                                       nn.Linear(proj_hidden, proj_dim))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, "BarlowTwins", self.shape)
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.features(x))
