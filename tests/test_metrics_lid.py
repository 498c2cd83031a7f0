import numpy as np
import pytest
import skdim
import torch
from scipy.spatial.distance import cdist
from sklearn.neighbors import NearestNeighbors

from utils.metrics.lid import knn, lid_mle


def _subspace(n, d, dim, seed=0):
    """n points on a random d-dimensional linear subspace of R^dim (intrinsic dimension d)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, dim))


def test_knn_matches_sklearn_brute_force_and_excludes_self():
    X = np.random.default_rng(1).normal(size=(800, 12)).astype(np.float32)
    dist, idx = knn(X, 15)
    ref_d, ref_i = NearestNeighbors(n_neighbors=15, algorithm="brute").fit(X).kneighbors()
    assert dist.shape == idx.shape == (800, 15) and dist.dtype == np.float64 and idx.dtype == np.int64
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(dist, ref_d, rtol=1e-5, atol=1e-6)
    assert not (idx == np.arange(800)[:, None]).any()
    # plain (not squared) Euclidean distances, sorted
    full = cdist(X.astype(np.float64), X.astype(np.float64))
    np.testing.assert_allclose(dist, full[np.arange(800)[:, None], idx], rtol=1e-6)
    assert (np.diff(dist, axis=1) >= 0).all()


def test_lid_mle_equals_scikit_dimension_on_the_same_neighbours():
    X = _subspace(1500, 4, 16, seed=2) + 0.01 * np.random.default_rng(3).normal(size=(1500, 16))
    ref = skdim.id.MLE().fit_transform_pw(X, n_neighbors=20)
    np.testing.assert_allclose(lid_mle(X, k=20), ref, rtol=1e-9, atol=1e-6)
    d, i = knn(X, 20)
    ref_pre = skdim.id.MLE().fit_transform_pw(X, precomputed_knn_arrays=(d, i), n_neighbors=20)
    np.testing.assert_allclose(lid_mle(X, k=20, knn_result=(d, i)), ref_pre, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(lid_mle(None, k=20, knn_result=(torch.from_numpy(d), torch.from_numpy(i))), ref_pre)


def test_lid_mle_recovers_the_dimension_of_a_5d_subspace_in_20d():
    X = _subspace(3000, 5, 20, seed=4)
    lid = lid_mle(X, k=20)
    assert lid.shape == (3000,) and np.isfinite(lid).all()
    assert abs(np.median(lid) - 5) < 0.5
    assert abs(np.median(lid_mle(_subspace(3000, 2, 20, seed=5), k=20)) - 2) < 0.2


def test_one_knn_pass_serves_smaller_k():
    X = _subspace(600, 3, 8, seed=6)
    np.testing.assert_allclose(lid_mle(X, k=10, knn_result=knn(X, 30)), lid_mle(X, k=10, knn_result=knn(X, 10)))


def test_duplicates_are_dropped_and_degenerate_neighbourhoods_are_nan():
    X = _subspace(400, 3, 6, seed=7)
    Xd = np.vstack([X, X[:5]])                       # rows 400..404 duplicate rows 0..4
    dist, idx = knn(Xd, 10)
    lid = lid_mle(Xd, k=10, knn_result=(dist, idx))
    assert dist[0, 0] == 0 and np.isfinite(lid).all()
    r = dist[0][dist[0] > 0]                        # by hand over the 9 distinct neighbours
    assert np.isclose(lid[0], (len(r) - 1) / np.log(r[-1] / r).sum())
    line = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [10.0, 0.0]])
    assert np.isnan(lid_mle(line, k=2)[1])          # both neighbours at distance 1: LID undefined
    assert np.isnan(lid_mle(np.zeros((4, 2)), k=2)).all()


def test_tle_option_delegates_to_scikit_dimension():
    X = _subspace(400, 3, 10, seed=8) + 0.01 * np.random.default_rng(9).normal(size=(400, 10))
    d, i = knn(X, 30)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = skdim.id.TLE().fit_transform_pw(X, precomputed_knn_arrays=(d, i), n_neighbors=30)
    np.testing.assert_allclose(lid_mle(X, k=30, knn_result=(d, i), estimator="tle"), ref)


def test_bad_input_is_a_clear_error():
    X = _subspace(50, 2, 4)
    with pytest.raises(ValueError, match="impossible with 50 points"):
        knn(X, 50)
    with pytest.raises(ValueError, match="2-D"):
        knn(X[0], 3)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        lid_mle(bad, k=5)
    with pytest.raises(ValueError, match="k >= 2"):
        lid_mle(X, k=1)
    with pytest.raises(ValueError, match="only 5 neighbours"):
        lid_mle(X, k=10, knn_result=knn(X, 5))
    with pytest.raises(ValueError, match="X has 49 points"):
        lid_mle(X[:49], k=5, knn_result=knn(X, 5))
    d, i = knn(X, 5)
    with pytest.raises(ValueError, match="not sorted"):
        lid_mle(X, k=5, knn_result=(d[:, ::-1], i))
    with pytest.raises(ValueError, match="'mle' or 'tle'"):
        lid_mle(X, k=5, estimator="twonn")
    with pytest.raises(ValueError, match="needs the points"):
        lid_mle(None, k=5, knn_result=(d, i), estimator="tle")


@pytest.mark.parametrize("dim", [8, 300])
def test_faiss_and_sklearn_find_the_same_neighbours(dim):
    """The two exact backends agree where both run: same indices, same float64 distances (FAISS's float32
    candidates re-measured), self excluded; an exact copy sits at distance 0 under FAISS too."""
    pytest.importorskip("faiss")
    X = np.random.default_rng(5).normal(size=(1500, dim))
    X[10] = X[20]
    d_sk, i_sk = knn(X, 12, backend="sklearn")
    d_fa, i_fa = knn(X, 12, backend="faiss")
    np.testing.assert_allclose(d_fa, d_sk, rtol=1e-12, atol=1e-12)
    # rows that see the copied pair hold a tie (10 and 20 at one distance), ordered freely by each library
    untied = ~np.isin(i_sk, [10, 20]).any(axis=1) & ~np.isin(np.arange(1500), [10, 20])
    assert untied.mean() > 0.9
    np.testing.assert_array_equal(i_fa[untied], i_sk[untied])
    assert i_fa[10, 0] == 20 and i_fa[20, 0] == 10 and d_fa[10, 0] == 0.0
    assert not (i_fa == np.arange(1500)[:, None]).any()


def test_auto_backend_switches_to_faiss_at_the_threshold(monkeypatch):
    pytest.importorskip("faiss")
    import utils.metrics.lid as lid

    calls = []
    real = lid._knn_faiss
    monkeypatch.setattr(lid, "_knn_faiss", lambda *a, **kw: calls.append(len(a[0])) or real(*a, **kw))
    monkeypatch.setattr(lid, "FAISS_FROM", 500)
    X = np.random.default_rng(6).normal(size=(499, 4))
    lid.knn(X, 3)
    lid.knn(np.vstack([X, X[:1] + 1]), 3)
    assert calls == [500]
    with pytest.raises(ValueError, match="backend"):
        lid.knn(X, 3, backend="annoy")


@pytest.mark.parametrize("backend", ["sklearn", "faiss"])
def test_exact_copies_sit_at_distance_exactly_0_in_every_backend(backend):
    """The bug this replaces: scikit-learn's brute force (|x|^2 - 2 x.y + |y|^2 in float32) put a copy at ~5e-7,
    the same float noise for every copy, so 40 identical images all got one positive nearest-neighbour distance."""
    if backend == "faiss":
        pytest.importorskip("faiss")
    rng = np.random.default_rng(11)
    same = np.repeat(rng.random((1, 784), dtype=np.float32), 40, axis=0)        # 40 identical images
    d, i = knn(same, 5, backend=backend)
    assert (d == 0).all() and (i == [[j for j in range(6) if j != r][:5] for r in range(40)]).all()
    pairs = np.vstack([rng.random((30, 784), dtype=np.float32)] * 2)            # 30 images, each twice
    d, i = knn(pairs, 5, backend=backend)
    assert (d[:, 0] == 0).all() and (d[:, 1] > 1).all()
    np.testing.assert_array_equal(i[:, 0], np.r_[np.arange(30, 60), np.arange(30)])
    X = rng.random((500, 784), dtype=np.float32)
    X[[7, 70, 300]] = X[5]                                                      # one image four times
    d, i = knn(X, 4, backend=backend)
    assert (d[[5, 7, 70, 300], :3] == 0).all() and i[70, :3].tolist() == [5, 7, 300]
    assert (d[:, 0] > 0).sum() == 496
