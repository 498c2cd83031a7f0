"""BarlowTwins loss and per-sample correlations against direct element-wise computations; augmentations."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from utils.engine.barlow_twins import LAMBDA, _gaussian_kernels, augment, barlow_twins_loss, sample_correlations


def _standardize_loop(z):
    z = z.double().numpy()
    return (z - z.mean(0)) / (z.std(0, ddof=1) + 1e-5)


def test_loss_matches_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(16, 6, generator=g, dtype=torch.float64), torch.randn(16, 6, generator=g, dtype=torch.float64)
    a, b = _standardize_loop(z1), _standardize_loop(z2)
    n, d = a.shape
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[k, i] * b[k, j] for k in range(n)) / n
            loss += (1 - c) ** 2 if i == j else LAMBDA * c ** 2
    assert barlow_twins_loss(z1, z2).item() == pytest.approx(loss, rel=1e-10)


def test_decorrelated_identical_views_reach_the_known_minimum():
    # zero-mean orthogonal columns with unit (unbiased) std: C = (n-1)/n * I, so loss = d (1 - (n-1)/n)^2
    n, d = 64, 4
    centred = torch.cat([torch.ones(n, 1, dtype=torch.float64), torch.randn(n, d, dtype=torch.float64)], 1)
    q = torch.linalg.qr(centred)[0][:, 1:]  # orthogonal to the constant vector, hence zero-mean
    z = q * (n - 1) ** 0.5
    eps = 1e-5  # the std guard of utils.engine.barlow_twins.standardize
    assert barlow_twins_loss(z, z).item() == pytest.approx(d * (1 - (n - 1) / n / (1 + eps) ** 2) ** 2, rel=1e-6)


def test_sample_correlations_match_the_seed_definition():
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(10, 5, generator=g, dtype=torch.float64), torch.randn(10, 5, generator=g, dtype=torch.float64)
    a, b = _standardize_loop(z1), _standardize_loop(z2)
    s = a @ b.T / 5
    self_corr, cross = sample_correlations(z1, z2)
    np.testing.assert_allclose(self_corr.numpy(), np.diag(s), rtol=1e-10)
    np.testing.assert_allclose(cross.numpy(), [sum(s[i, j] ** 2 for j in range(10) if j != i) for i in range(10)],
                               rtol=1e-10)


def test_augment_is_seeded_per_sample_and_keeps_pixel_range():
    x = torch.zeros(4, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1.0
    v1 = augment(x, torch.Generator().manual_seed(3))
    v2 = augment(x, torch.Generator().manual_seed(3))
    assert torch.equal(v1, v2) and v1.shape == x.shape
    assert v1.min() >= 0 and v1.max() <= 1
    assert not torch.allclose(v1[0], v1[1])  # parameters are drawn per sample, not per batch
    # a digit stays a digit: most of the ink survives (no crop to 8 %, no flip)
    assert (v1.sum((1, 2, 3)) / x.sum((1, 2, 3))).min() > 0.6


def test_standardize_refuses_a_single_sample():
    with pytest.raises(ValueError, match="at least 2"):
        sample_correlations(torch.randn(1, 5), torch.randn(1, 5))


def _old_augment(x, generator, max_rotation=15.0, scale=(0.85, 1.1), max_shift=2.0, blur_sigma=(0.1, 1.0)):
    """augment as it was before it took C channels (single-channel only), line for line."""
    n, _, h, w = x.shape
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=generator)  # noqa: E731
    angle = u(-max_rotation, max_rotation) * math.pi / 180
    s = u(*scale)
    tx, ty = u(-max_shift, max_shift) * 2 / w, u(-max_shift, max_shift) * 2 / h
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    k = _gaussian_kernels(u(*blur_sigma)).to(x)
    pad = k.shape[1] // 2
    out = out.reshape(1, n, h, w)
    out = F.conv2d(F.pad(out, (pad, pad, 0, 0), mode="replicate"), k[:, None, None, :], groups=n)
    out = F.conv2d(F.pad(out, (0, 0, pad, pad), mode="replicate"), k[:, None, :, None], groups=n)
    return out.reshape(n, 1, h, w).clamp(0, 1)


def test_single_channel_views_are_bit_identical_to_the_old_augment():
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    g_new, g_old = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for _ in range(2):  # and the generator is left in the same state
        assert torch.equal(augment(x, g_new), _old_augment(x, g_old))


def test_augment_on_colour_images():
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    v = augment(x, torch.Generator().manual_seed(4))
    assert v.shape == x.shape and v.dtype == x.dtype and v.min() >= 0 and v.max() <= 1
    assert torch.equal(v, augment(x, torch.Generator().manual_seed(4)))
    # the channels of an image share its parameters, and the draws do not depend on C: a grey image
    # stacked three times gives three copies of its single-channel view
    grey = x[:, :1]
    v3 = augment(grey.expand(-1, 3, -1, -1).contiguous(), torch.Generator().manual_seed(4))
    v1 = augment(grey, torch.Generator().manual_seed(4))
    for c in range(3):
        torch.testing.assert_close(v3[:, c:c + 1], v1, rtol=0, atol=1e-6)
    # each channel is transformed on its own (no mixing of channels)
    assert not torch.allclose(v[:, 0], v[:, 1])


def test_augment_refuses_a_batch_without_channel_axis():
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        augment(torch.rand(4, 28, 28), torch.Generator().manual_seed(0))
