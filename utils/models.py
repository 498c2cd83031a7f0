"""The seed study's convolutional autoencoder for 28x28 single-channel images.

Encoder and decoder follow the original layer by layer (253,707 parameters at latent size 10); the
bottleneck is a sigmoid, so codes lie in (0, 1)^latent, and the decoder output is linear because the
autoencoder reconstructs standardised pixels.
"""
from __future__ import annotations

import torch
from torch import nn


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1)


class Encoder(nn.Module):
    """28x28 image -> sigmoid code of size ``latent`` (three conv/pool blocks, two linear layers)."""

    def __init__(self, latent: int = 10, dropout: float = 0.1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Dropout(dropout), _conv(1, 8), nn.MaxPool2d(2), nn.ReLU(),
            nn.Dropout(dropout), _conv(8, 16), nn.MaxPool2d(2), nn.ReLU(),
            nn.Dropout(dropout), _conv(16, 32), nn.MaxPool2d(2), nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 3 * 3, 128), nn.ReLU(), nn.Linear(128, latent), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Decoder(nn.Module):
    """Code -> 28x28 image (two linear layers, then conv + nearest upsampling back to full size)."""

    def __init__(self, latent: int = 10):
        super().__init__()
        self.head = nn.Sequential(
            nn.Linear(latent, 128), nn.ReLU(), nn.Linear(128, 32 * 7 * 7), nn.ReLU(),
            nn.Unflatten(1, (32, 7, 7)))
        self.body = nn.Sequential(
            _conv(32, 16), nn.Upsample(scale_factor=2), nn.ReLU(),
            _conv(16, 8), nn.Upsample(scale_factor=2), nn.ReLU(),
            _conv(8, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.head(z))


class Autoencoder(nn.Module):
    """Encoder + decoder; ``forward`` returns ``(reconstruction, code)`` so trackers get both at once."""

    def __init__(self, latent: int = 10, dropout: float = 0.1):
        super().__init__()
        self.encoder = Encoder(latent, dropout)
        self.decoder = Decoder(latent)

    def forward(self, x: torch.Tensor):
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"Autoencoder expects images of shape [N, 1, 28, 28], got {list(x.shape)}; "
                             "resize or pick a 28x28 single-channel dataset.")
        z = self.encoder(x)
        return self.decoder(z), z


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
