import numpy as np
import pytest
import scipy.stats
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_samples

from utils.metrics.embedding import bottleneck_entropy, drift, norm, silhouette, silhouette_from_labels


def _codes(n=600, d=6, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3, size=(5, d))
    return centres[rng.integers(0, 5, n)] + rng.normal(size=(n, d))


def test_entropy_equals_scipy_stats_entropy():
    z = np.random.default_rng(0).random((4, 50, 10))
    z[0, 0, :3] = 0.0  # zero activations contribute 0, as in scipy
    np.testing.assert_allclose(bottleneck_entropy(z), scipy.stats.entropy(pk=z, axis=-1), rtol=1e-12)
    out = bottleneck_entropy(torch.from_numpy(z).float())
    assert isinstance(out, torch.Tensor) and out.shape == (4, 50)
    np.testing.assert_allclose(out.numpy(), scipy.stats.entropy(pk=z, axis=-1), rtol=1e-6)
    assert np.isclose(bottleneck_entropy(np.full((1, 10), 0.7))[0], np.log(10))


def test_entropy_rejects_signed_or_empty_codes():
    with pytest.raises(ValueError, match="non-negative"):
        bottleneck_entropy(np.array([[0.5, -0.1]]))
    with pytest.raises(ValueError, match="sum to 0"):
        bottleneck_entropy(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        bottleneck_entropy(np.array([[0.5, np.nan]]))


def test_norm_and_drift_by_hand():
    z = np.random.default_rng(1).normal(size=(5, 40, 3))
    np.testing.assert_allclose(norm(z), np.sqrt((z ** 2).sum(-1)), rtol=1e-12)
    np.testing.assert_allclose(norm(z.astype(np.float32)), np.sqrt((z ** 2).sum(-1)), rtol=1e-6)
    np.testing.assert_allclose(norm(torch.from_numpy(z[0])), np.linalg.norm(z[0], axis=1), rtol=1e-12)
    l2, l1 = drift(z)
    assert l2.shape == l1.shape == (4, 40) and l2.dtype == np.float64
    for s in range(4):
        for n in (0, 17, 39):
            step = z[s + 1, n] - z[s, n]
            assert np.isclose(l2[s, n], np.sqrt((step ** 2).sum()), rtol=1e-12)
            assert np.isclose(l1[s, n], np.abs(step).sum(), rtol=1e-12)
    z32 = torch.from_numpy(z).float()
    before = z32.clone()
    l2_32, l1_32 = drift(z32)
    assert torch.equal(z32, before)  # the in-place abs works on a buffer, not on the input
    np.testing.assert_allclose(l2_32, l2, rtol=1e-5)
    np.testing.assert_allclose(l1_32, l1, rtol=1e-5)
    bad = z.copy()
    bad[2, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        drift(bad)
    with pytest.raises(ValueError, match="NaN"):
        norm(bad)
    with pytest.raises(ValueError, match=r"series \[S, N, D\]"):
        drift(z[0])
    with pytest.raises(ValueError, match="too short"):
        drift(z[:1])


def test_silhouette_equals_sklearn_on_its_kmeans_labels():
    z = _codes()
    labels = KMeans(n_clusters=5, random_state=3, max_iter=200, n_init="auto").fit_predict(z)
    np.testing.assert_allclose(silhouette(z, n_clusters=5, seed=3), silhouette_samples(z, labels), atol=1e-9)
    np.testing.assert_allclose(silhouette_from_labels(z, labels, chunk=37), silhouette_samples(z, labels), atol=1e-9)


def test_silhouette_singleton_cluster_is_zero_like_sklearn():
    z = _codes(n=60)
    labels = np.repeat([0, 1, 2], 20)
    labels[7] = 3
    ours = silhouette_from_labels(z, labels)
    np.testing.assert_allclose(ours, silhouette_samples(z, labels), atol=1e-9)
    assert ours[7] == 0


def test_subsampled_references_match_brute_force_and_approximate_the_full_score():
    z = _codes(n=500, seed=4)
    labels = KMeans(n_clusters=5, random_state=0, n_init="auto").fit_predict(z)
    ref = np.sort(np.random.default_rng(0).choice(500, size=120, replace=False))
    d = np.linalg.norm(z[:, None] - z[None, ref], axis=-1)       # [N, 120]
    expected = np.empty(500)
    for i in range(500):
        means = {}
        for c in range(5):
            mask = (labels[ref] == c) & (ref != i)
            means[c] = d[i, mask].mean()
        a = means[labels[i]]
        b = min(v for c, v in means.items() if c != labels[i])
        expected[i] = (b - a) / max(a, b)
    np.testing.assert_allclose(silhouette_from_labels(z, labels, ref), expected, atol=1e-9)
    sub = silhouette(z, n_clusters=5, seed=0, sample_size=120)
    full = silhouette(z, n_clusters=5, seed=0)
    assert np.corrcoef(sub, full)[0, 1] > 0.95


def test_silhouette_bad_input():
    z = _codes(n=30)
    with pytest.raises(ValueError, match="impossible with 30 points"):
        silhouette(z, n_clusters=30)
    with pytest.raises(ValueError, match="too small"):
        silhouette(z, n_clusters=5, sample_size=3)
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        silhouette(z[None].repeat(2, 0), n_clusters=5)
    with pytest.raises(ValueError, match="one label per point"):
        silhouette_from_labels(z, np.zeros(29))
