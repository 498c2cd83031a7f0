"""BarlowTwins for 28x28 digits: the seed's model and loss, per-sample correlations, tensor augmentations.

* Model: the SmallCNN conv backbone (19,008 parameters) and a projector 1600 -> 1024 -> BN -> ReLU
  -> 500; 2,172,980 parameters in all.
* Loss (Zbontar et al. 2021): embeddings standardised per feature over the batch, C = z1^T z2 / N,
  loss = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2 with lambda = 0.0051.
* Per-sample correlations as the seed defined them, on the batch's standardised embeddings:
  S = z1 z2^T / D; self-correlation_i = S_ii (agreement of a sample's two views), cross-correlation_i
  = sum_{j != i} S_ij^2 (similarity to the other samples' views; depends on the batch).
* Views: per-sample random affine (rotation, scale, shift) by ``grid_sample`` and a per-sample Gaussian
  blur, done on pixel tensors in [0, 1] — no ToPILImage on standardised tensors, no horizontal flips
  (a mirrored 2 is not a 2), no crops down to 8 % of a 28x28 digit.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from utils.classifiers import _check_images, conv_backbone

LAMBDA = 0.0051


class BarlowTwins(nn.Module):
    """Backbone + projector; ``forward`` returns the 500-d projection, ``features`` the 1600-d representation."""

    def __init__(self, proj_hidden: int = 1024, proj_dim: int = 500):
        super().__init__()
        self.backbone = conv_backbone()
        self.projector = nn.Sequential(nn.Linear(1600, proj_hidden), nn.BatchNorm1d(proj_hidden), nn.ReLU(),
                                       nn.Linear(proj_hidden, proj_dim))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, "BarlowTwins")
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.features(x))


def standardize(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-feature (z - mean) / std over the batch (unbiased std, as in the reference implementation)."""
    if z.dim() != 2 or len(z) < 2:
        raise ValueError(f"embeddings must be [N >= 2, D], got {list(z.shape)}; use batches of at least 2.")
    return (z - z.mean(0)) / (z.std(0) + eps)


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = LAMBDA) -> torch.Tensor:
    """sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2 with C = std(z1)^T std(z2) / N."""
    n = len(z1)
    c = standardize(z1).T @ standardize(z2) / n
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on + lambd * off


def sample_correlations(z1: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(self-correlation [N], cross-correlation [N]) of each sample in a batch, as the seed defined them."""
    d = z1.shape[1]
    s = standardize(z1) @ standardize(z2).T / d
    self_corr = torch.diagonal(s).clone()
    cross = s.pow(2).sum(1) - self_corr.pow(2)
    return self_corr, cross


def _gaussian_kernels(sigma: torch.Tensor, size: int = 5) -> torch.Tensor:
    r = torch.arange(size, dtype=sigma.dtype) - size // 2
    k = torch.exp(-r[None] ** 2 / (2 * sigma[:, None] ** 2))
    return k / k.sum(1, keepdim=True)


def augment(x: torch.Tensor, generator: torch.Generator, max_rotation: float = 15.0, scale=(0.85, 1.1),
            max_shift: float = 2.0, blur_sigma=(0.1, 1.0)) -> torch.Tensor:
    """One random view per image of a pixel batch ``[N, 1, 28, 28]`` in [0, 1]; parameters drawn per sample.

    Affine (rotation in +-max_rotation degrees, isotropic scale, shift in +-max_shift pixels) with
    bilinear ``grid_sample`` and zero (background) padding, then a separable 5-tap Gaussian blur.
    Deterministic in ``generator``."""
    n, _, h, w = x.shape
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=generator)  # noqa: E731
    angle = u(-max_rotation, max_rotation) * math.pi / 180
    s = u(*scale)
    tx, ty = u(-max_shift, max_shift) * 2 / w, u(-max_shift, max_shift) * 2 / h
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    k = _gaussian_kernels(u(*blur_sigma)).to(x)  # [N, 5]
    pad = k.shape[1] // 2
    out = out.reshape(1, n, h, w)
    out = F.conv2d(F.pad(out, (pad, pad, 0, 0), mode="replicate"), k[:, None, None, :], groups=n)
    out = F.conv2d(F.pad(out, (0, 0, pad, pad), mode="replicate"), k[:, None, :, None], groups=n)
    return out.reshape(n, 1, h, w).clamp(0, 1)
