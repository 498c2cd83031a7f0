"""BarlowTwins loss and per-sample correlations against direct element-wise computations; augmentations."""
import numpy as np
import pytest
import torch

from utils.barlow_twins import LAMBDA, augment, barlow_twins_loss, sample_correlations


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
    eps = 1e-5  # the std guard of utils.barlow_twins.standardize
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
