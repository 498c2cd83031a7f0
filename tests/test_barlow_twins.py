"""BarlowTwins loss and per-sample correlations against direct element-wise computations; augmentations."""
import math

import numpy as np
import pytest
import scipy.ndimage
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


def test_augment_is_seeded_per_sample_and_keeps_most_of_the_ink():
    x = torch.zeros(4, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1.0
    v1 = augment(x, torch.Generator().manual_seed(3))
    v2 = augment(x, torch.Generator().manual_seed(3))
    assert torch.equal(v1, v2) and v1.shape == x.shape
    assert not torch.allclose(v1[0], v1[1])  # parameters are drawn per sample, not per batch
    # a digit stays a digit: most of the ink survives (no crop to 8 %, no flip)
    assert (v1.sum((1, 2, 3)) / x.sum((1, 2, 3))).min() > 0.6


def test_standardize_refuses_a_single_sample():
    with pytest.raises(ValueError, match="at least 2"):
        sample_correlations(torch.randn(1, 5), torch.randn(1, 5))


def test_a_fixed_scale_is_scipy_affine_transform_and_the_blur_is_scipy_gaussian_filter():
    """Independent references for the two stages, with every random draw pinned (rotation and shift 0, one scale,
    one blur width): bilinear zoom about the image centre with zero padding, then a 5-tap Gaussian, edges repeated."""
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    s, c = 1.25, (28 - 1) / 2                                   # output pixel i reads input c + (i - c) / s
    zoomed = augment(x, g, max_rotation=0.0, scale=(s, s), max_shift=0.0, blur_sigma=(1e-3, 1e-3))  # no blur
    ref = [scipy.ndimage.affine_transform(im[0].numpy(), np.eye(2) / s, offset=c - c / s, order=1, mode="constant")
           for im in x]
    np.testing.assert_allclose(zoomed[:, 0].numpy(), np.clip(ref, 0, 1), atol=1e-6)   # the draws are float32
    blurred = augment(x, g, max_rotation=0.0, scale=(1.0, 1.0), max_shift=0.0, blur_sigma=(0.7, 0.7))
    ref = scipy.ndimage.gaussian_filter(x.numpy(), (0, 0, 0.7, 0.7), mode="nearest", radius=2)
    np.testing.assert_allclose(blurred.numpy(), ref, atol=1e-6)


def test_augment_on_colour_images():
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    v = augment(x, torch.Generator().manual_seed(4))
    assert v.shape == x.shape and v.dtype == x.dtype
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
