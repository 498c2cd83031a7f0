"""BarlowTwins loss, per-sample correlations and tensor augmentations (the model is :class:`utils.engine.models.BarlowTwins`).

* Loss (Zbontar et al. 2021): embeddings standardised per feature over the batch, C = z1^T z2 / N,
  loss = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2 with lambda = 0.0051.
* Per-sample correlations as the seed defined them, on the batch's standardised embeddings:
  S = z1 z2^T / D; self-correlation_i = S_ii (agreement of a sample's two views), cross-correlation_i
  = sum_{j != i} S_ij^2 (similarity to the other samples' views; depends on the batch).
* Views: per-sample random affine (rotation, scale, shift) by ``grid_sample`` and a per-sample Gaussian
  blur, done on pixel tensors in [0, 1] of any shape [N, C, H, W] — no ToPILImage on standardised
  tensors, no horizontal flips (a mirrored 2 is not a 2), no crops down to 8 % of a 28x28 digit.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LAMBDA = 0.0051


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
    """One random view per image of a pixel batch ``[N, C, H, W]`` in [0, 1]; parameters drawn per sample
    (shared by the channels of an image).

    Affine (rotation in +-max_rotation degrees, isotropic scale, shift in +-max_shift pixels) with
    bilinear ``grid_sample`` and zero (background) padding, then a separable 5-tap Gaussian blur.
    Deterministic in ``generator``; the draws do not depend on C."""
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"augment needs a float pixel batch [N, C, H, W], got {x.dtype} {list(x.shape)}.")
    n, c, h, w = x.shape
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=generator)  # noqa: E731
    angle = u(-max_rotation, max_rotation) * math.pi / 180
    s = u(*scale)
    tx, ty = u(-max_shift, max_shift) * 2 / w, u(-max_shift, max_shift) * 2 / h
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    k = _gaussian_kernels(u(*blur_sigma)).to(x)  # [N, 5]
    if c > 1:
        k = k.repeat_interleave(c, 0)  # [N*C, 5]: one kernel per image, for each of its channels
    pad = k.shape[1] // 2
    out = out.reshape(1, n * c, h, w)
    out = F.conv2d(F.pad(out, (pad, pad, 0, 0), mode="replicate"), k[:, None, None, :], groups=n * c)
    out = F.conv2d(F.pad(out, (0, 0, pad, pad), mode="replicate"), k[:, None, :, None], groups=n * c)
    return out.reshape(n, c, h, w).clamp(0, 1)
