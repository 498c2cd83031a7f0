"""Tests for utils.scores.geometry against independent references (scikit-learn) and planted known answers."""
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.neighbors import NearestNeighbors

from utils.metrics.lid import knn
from utils.scores.geometry import embedding_scores


def _blobs(n_per=60, dims=6, seed=0):
    """Three well-separated clusters along different axes (distinct directions), no duplicates."""
    rng = np.random.default_rng(seed)
    centres = 5.0 * np.eye(dims)[:3] + 1.0
    return np.concatenate([c + 0.3 * rng.normal(size=(n_per, dims)) for c in centres])


def test_knn_columns_match_sklearn_nearest_neighbors():
    z = np.random.default_rng(1).normal(size=(300, 8))
    s = embedding_scores(z, k=7, n_clusters=4)
    d, i = NearestNeighbors(n_neighbors=8).fit(z).kneighbors(z)  # column 0 is the point itself (no duplicates)
    assert (i[:, 0] == np.arange(300)).all()
    np.testing.assert_allclose(s["knn_distance"], d[:, 1:].mean(1), rtol=1e-10)
    np.testing.assert_allclose(s["nn_distance"], d[:, 1], rtol=1e-10)
    assert (s["nearest_id"].to_numpy() == i[:, 1]).all()
    # cosine geometry: the same on L2-normalised rows
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    d, _ = NearestNeighbors(n_neighbors=8).fit(u).kneighbors(u)
    s = embedding_scores(torch.from_numpy(z).float(), k=7, n_clusters=4, normalize=True)
    np.testing.assert_allclose(s["knn_distance"], d[:, 1:].mean(1), rtol=1e-5)


def test_prototype_distance_is_explicit_distance_to_kmeans_centres():
    z = np.random.default_rng(2).normal(size=(250, 5)) + 0.5
    s = embedding_scores(z, k=5, n_clusters=6, seed=3)
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    km = KMeans(n_clusters=6, random_state=3, n_init="auto").fit(u)
    dist = np.sqrt(((u[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1))
    np.testing.assert_allclose(s["prototype_distance"], dist.min(1), rtol=1e-8, atol=1e-12)
    assert (s["cluster"].to_numpy() == dist.argmin(1)).all()
    assert s.attrs["n_clusters"] == 6
    assert embedding_scores(z, k=5, num_classes=4).attrs["n_clusters"] == 4
    assert embedding_scores(z, k=5).attrs["n_clusters"] == 10


def test_planted_duplicates_outlier_and_tiny_cluster():
    z = _blobs()
    z[17] = z[5]            # an exact duplicate pair
    z[100] = z[130] + 1e-9  # a near-duplicate pair
    outlier = np.full(z.shape[1], -40.0)
    tiny = np.array([0, 0, 0, 0, 5.0, 1.0]) + 0.3 * np.random.default_rng(4).normal(size=(4, 6))
    z = np.concatenate([z, outlier[None], tiny])
    ids = 1000 + np.arange(len(z))
    s = embedding_scores(z, ids, k=5, n_clusters=3)
    assert s.loc[1005, "nn_distance"] == 0 and s.loc[1017, "nn_distance"] == 0
    assert s.loc[1005, "nearest_id"] == 1017 and s.loc[1017, "nearest_id"] == 1005
    assert s.loc[1100, "nearest_id"] == 1130 and s.loc[1100, "nn_distance"] < 1e-8
    lowest = set(s["nn_distance"].nsmallest(4).index)
    assert lowest == {1005, 1017, 1100, 1130}
    assert s["knn_distance"].idxmax() == ids[180]  # the far outlier
    # four points in their own direction, only 3 clusters: they sit far from every prototype
    top = set(s["prototype_distance"].nlargest(5).index)
    assert set(ids[181:]) <= top


def test_ids_follow_their_rows_under_shuffling():
    z = _blobs(seed=5)
    ids = np.arange(len(z)) * 7 + 3
    a = embedding_scores(z, ids, k=6, n_clusters=3, seed=0)
    perm = np.random.default_rng(6).permutation(len(z))
    b = embedding_scores(z[perm], ids[perm], k=6, n_clusters=3, seed=0)
    assert list(b.index) == list(ids[perm]) and b.index.name == "sample_id"
    b = b.loc[a.index]
    for col in ("knn_distance", "nn_distance", "prototype_distance"):
        np.testing.assert_allclose(b[col], a[col], rtol=1e-6, atol=1e-9)
    assert (b["nearest_id"] == a["nearest_id"]).all()


def test_reuses_a_precomputed_knn_pass():
    z = np.random.default_rng(7).normal(size=(120, 4))
    shared = knn(z, 15)
    a = embedding_scores(z, k=5, n_clusters=3, knn_result=shared)
    b = embedding_scores(z, k=5, n_clusters=3)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ValueError, match="k=20 or more"):
        embedding_scores(z, k=20, knn_result=shared)


def test_every_embedding_score_is_registered_in_the_three_spaces():
    from utils.scores.registry import SCORES
    s = embedding_scores(np.random.default_rng(8).normal(size=(40, 3)), k=3, n_clusters=2)
    for col in ("prototype_distance", "knn_distance", "nn_distance"):
        assert col in s and all(f"{p}_{col}" in SCORES for p in ("px", "ae", "bt"))
    assert SCORES["px_nn_distance"].direction == "lower" and SCORES["bt_knn_distance"].direction == "higher"


def test_cosine_knn_distance_is_datalabs_outlier_distance():
    """px_cos_knn_distance: the mean cosine distance of scikit-learn's cosine kNN, and with the outlier fence it
    flags exactly what Datalab's outlier check flags on the same pixel features (its k = 10, threshold 0.37037)."""
    from cleanlab import Datalab
    from sklearn.neighbors import NearestNeighbors

    from utils.data.datasets import load_dataset
    from utils.scores.flags import outlier_fence
    from utils.scores.geometry import cosine_knn_distance

    x, _, _ = load_dataset("mnist-5k", "test")
    x = x[:400].flatten(1).numpy().astype(np.float64)
    x[:3] = 1 - x[:3]                                          # three negatives among the digits
    ours = cosine_knn_distance(x, 10)
    ref = NearestNeighbors(n_neighbors=11, metric="cosine").fit(x).kneighbors(x)[0][:, 1:].mean(axis=1)
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    lab = Datalab({"y": np.zeros(len(x), int)}, label_name="y", verbosity=0)
    lab.find_issues(features=x, issue_types={"outlier": {"k": 10}})
    theirs = lab.get_issues("outlier")["is_outlier_issue"].to_numpy()
    assert theirs.any() and theirs.sum() < len(x) / 4                # something to agree on
    fence = outlier_fence(ours)
    clear = np.abs(ours - fence) > 1e-6          # another BLAS may order a sum differently right at the fence
    np.testing.assert_array_equal((ours > fence)[clear], theirs[clear])
