import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from utils.metrics.ssim import gaussian_window, ssim


def skimage_wang(a, b, data_range=1.0):
    """The reference: scikit-image with Wang et al.'s settings, one pair at a time, in float64."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.array([structural_similarity(x[0] if x.shape[0] == 1 else x, y[0] if y.shape[0] == 1 else y,
                                           gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                           data_range=data_range, channel_axis=None if x.shape[0] == 1 else 0)
                     for x, y in zip(a, b)])


def smooth_pairs(n, c, h, w, seed=0):
    """Smooth random images in [0, 1] and noisy copies of them."""
    rng = np.random.default_rng(seed)
    a = gaussian_filter(rng.random((n, c, h, w)), sigma=(0, 0, 2, 2))
    a = (a - a.min()) / (a.max() - a.min())
    b = np.clip(a + rng.normal(scale=0.05, size=a.shape), 0, 1)
    return torch.from_numpy(a), torch.from_numpy(b)


def test_window_is_scipy_ndimage_gaussian_with_11_taps():
    w = gaussian_window(1.5)
    impulse = np.zeros(31)
    impulse[15] = 1
    assert len(w) == 11 and np.isclose(w.sum(), 1)
    np.testing.assert_allclose(w, gaussian_filter(impulse, 1.5, truncate=3.5)[10:21], atol=1e-15)


@pytest.mark.parametrize("shape", [(12, 1, 28, 28), (8, 3, 32, 32), (5, 1, 20, 33)])
def test_matches_skimage_on_smooth_random_images(shape):
    a, b = smooth_pairs(*shape)
    ours = ssim(a, b)
    assert ours.shape == (shape[0],) and ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), skimage_wang(a, b), atol=1e-10)


def test_matches_skimage_on_mnist_digits_vs_noisy_versions(mnist5k):
    x = mnist5k[0][:300].double()
    g = torch.Generator().manual_seed(0)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    ref = skimage_wang(x, noisy)
    np.testing.assert_allclose(ssim(x, noisy).numpy(), ref, atol=1e-10)
    # float32 inputs and float32 compute stay within 1e-5 on digits
    np.testing.assert_allclose(ssim(x.float(), noisy.float(), dtype=torch.float32).numpy(), ref, atol=1e-5)
    rgb, rgb_noisy = x[:40].expand(-1, 3, -1, -1).clone(), noisy[:40].expand(-1, 3, -1, -1).clone()
    rgb[:, 1] = 1 - rgb[:, 1]
    rgb_noisy[:, 1] = 1 - rgb_noisy[:, 1]
    np.testing.assert_allclose(ssim(rgb, rgb_noisy).numpy(), skimage_wang(rgb, rgb_noisy), atol=1e-10)


def test_identical_images_score_one_and_chunking_changes_nothing():
    a, b = smooth_pairs(10, 1, 28, 28, seed=1)
    np.testing.assert_allclose(ssim(a, a).numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(ssim(a, b, chunk=3).numpy(), ssim(a, b).numpy(), atol=1e-14)


def test_data_range_scales_the_constants():
    a, b = smooth_pairs(6, 1, 28, 28, seed=2)
    np.testing.assert_allclose(ssim(255 * a, 255 * b, data_range=255).numpy(), ssim(a, b).numpy(), atol=1e-10)
    np.testing.assert_allclose(ssim(255 * a, 255 * b, data_range=255).numpy(),
                               skimage_wang(255 * a, 255 * b, data_range=255), atol=1e-10)


def test_bad_input_is_a_clear_error(mnist5k):
    a, b = smooth_pairs(4, 1, 28, 28)
    with pytest.raises(ValueError, match="same shape"):
        ssim(a, b[:3])
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        ssim(a[:, 0], b[:, 0])
    with pytest.raises(ValueError, match="smaller than the 11-pixel"):
        ssim(a[..., :10, :10], b[..., :10, :10])
    standardised = (mnist5k[0][:4] - 0.1307) / 0.3081  # the original study's bug: data_range=1 on these
    with pytest.raises(ValueError, match="wider than data_range"):
        ssim(standardised, standardised)
    bad = a.clone()
    bad[0, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        ssim(bad, b)
    with pytest.raises(ValueError, match="positive number"):
        ssim(a, b, data_range=0)
