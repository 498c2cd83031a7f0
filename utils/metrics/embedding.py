"""Per-sample scores of the bottleneck codes: entropy, norm, drift between epochs, KMeans silhouette.

Codes come as one ``[N, D]`` array per epoch or as a series ``[S, N, D]`` (S epochs or snapshots).
"""
from __future__ import annotations

import numpy as np
import torch

from utils.metrics.checks import is_integer

_ROWS_PER_CHUNK = 1 << 20  # codes handled at once: temporaries of ~40-80 MB


def bottleneck_entropy(z):
    """Shannon entropy (nats) of the codes ``z`` ``[..., D]`` renormalised to sum to 1 over the last axis.

    Equals ``scipy.stats.entropy(pk=z, axis=-1)`` and the original study's ``H`` metric, kept for
    parity only: post-sigmoid units are not a probability vector, so the value has no probabilistic
    meaning (the study's values sat at 2.24-2.28 of the maximum ln 10 = 2.30). Values must be
    non-negative. Computed as ``log S + sum(-z log z) / S`` with ``S = sum(z)``, in the input's float
    precision (float32 agrees with scipy to ~1e-7); returns float64, a tensor for tensor input, else numpy.
    """
    is_tensor = isinstance(z, torch.Tensor)
    t = _as_tensor(z)
    if t.ndim < 1 or t.shape[-1] < 1:
        raise ValueError(f"bottleneck_entropy expects codes [..., D] with D >= 1, got shape {tuple(t.shape)}.")
    flat = t.reshape(-1, t.shape[-1])
    out = torch.empty(flat.shape[0], dtype=torch.float64, device=t.device)
    buf = torch.empty(min(len(flat), _ROWS_PER_CHUNK), flat.shape[1], dtype=flat.dtype, device=t.device)
    for s in range(0, flat.shape[0], _ROWS_PER_CHUNK):
        p = flat[s:s + _ROWS_PER_CHUNK]
        total = p.sum(-1).double()                      # sums of D values: input precision is enough
        ent = torch.special.entr(p, out=buf[:len(p)]).sum(-1).double()
        out[s:s + _ROWS_PER_CHUNK] = ent.div_(total).add_(total.log())
    if out.numel() and not torch.isfinite(out).all():  # NaN, inf, negative values and all-zero codes end here
        if torch.isnan(t).any() or torch.isinf(t).any():
            raise ValueError("bottleneck_entropy got NaN or inf codes; check the encoder output.")
        if (t < 0).any():
            raise ValueError("bottleneck_entropy needs non-negative (post-sigmoid) activations; apply the sigmoid "
                             "or use another score for signed codes.")
        raise ValueError("bottleneck_entropy got a code whose activations sum to 0; entropy is undefined there.")
    out = out.reshape(t.shape[:-1])
    return out if is_tensor else out.numpy()


def norm(Z_series) -> np.ndarray:
    """L2 norm of every code: ``[S, N, D]`` (or ``[N, D]``) -> float64 ``[S, N]`` (or ``[N]``)."""
    z = _as_codes(Z_series, min_steps=1)
    flat = z.reshape(-1, z.shape[-1])
    out = torch.empty(flat.shape[0], dtype=torch.float64)
    for s in range(0, len(flat), _ROWS_PER_CHUNK):
        out[s:s + _ROWS_PER_CHUNK] = torch.linalg.vector_norm(flat[s:s + _ROWS_PER_CHUNK], dim=-1)
    _check_finite(out)
    return out.reshape(z.shape[:-1]).numpy()


def drift(Z_series):
    """How far each code moves per step: ``[S, N, D]`` -> ``(l2 [S-1, N], l1 [S-1, N])`` float64.

    ``l2[s, n] = ||Z[s+1, n] - Z[s, n]||_2`` and ``l1`` the same with the L1 norm (the study's
    ``dif_L2`` / ``dif_L1``); aggregate them over steps with :func:`aggregate`. Computed in the
    input's precision (sums of D values), returned as float64.
    """
    z = _as_codes(Z_series, min_steps=2)
    if z.ndim != 3:
        raise ValueError(f"drift expects a series [S, N, D], got shape {tuple(z.shape)}; "
                         "stack one [N, D] array per step.")
    s_steps, n, _ = z.shape
    l2 = torch.empty(s_steps - 1, n, dtype=torch.float64)
    l1 = torch.empty_like(l2)
    per = max(1, _ROWS_PER_CHUNK // max(n, 1))  # steps per chunk
    buf = torch.empty((min(per, s_steps - 1),) + tuple(z.shape[1:]), dtype=z.dtype)
    for s in range(0, s_steps - 1, per):
        e = min(s + per, s_steps - 1)
        diff = torch.sub(z[s + 1:e + 1], z[s:e], out=buf[:e - s])
        l2[s:e] = torch.linalg.vector_norm(diff, dim=-1)
        l1[s:e] = diff.abs_().sum(-1)
    _check_finite(l2)
    return l2.numpy(), l1.numpy()


def silhouette(Z, n_clusters: int = 10, seed: int = 91, sample_size: int | None = None, max_iter: int = 200,
               n_init="auto", chunk: int | None = None) -> np.ndarray:
    """Per-sample silhouette ``[N]`` of the KMeans clustering of the codes ``Z`` ``[N, D]``.

    As in the original study: scikit-learn ``KMeans(n_clusters, random_state=seed, max_iter=200)``
    on all points, then each point's silhouette ``(b - a) / max(a, b)`` with Euclidean distances
    (a = mean distance to its own cluster, b = to the nearest other cluster; 0 in a singleton
    cluster), equal to ``sklearn.metrics.silhouette_samples``. This costs O(N^2): with
    ``sample_size`` the means a and b run over a random subset of that many reference points (drawn
    with ``seed``) instead of all N, for every point; the clustering still uses all points.
    """
    from sklearn.cluster import KMeans

    z = _as_codes(Z, min_steps=1)
    if z.ndim != 2:
        raise ValueError(f"silhouette expects codes [N, D], got shape {tuple(z.shape)}; pass one snapshot at a time.")
    _check_finite(z)
    n = len(z)
    if not is_integer(n_clusters) or not 2 <= n_clusters < n:
        raise ValueError(f"n_clusters={n_clusters!r} is impossible with {n} points; pass an integer in [2, {n - 1}].")
    z = z.double().numpy()
    labels = KMeans(n_clusters=int(n_clusters), random_state=seed, max_iter=max_iter, n_init=n_init).fit_predict(z)
    if sample_size is None or sample_size >= n:
        ref = np.arange(n)
    elif not is_integer(sample_size) or sample_size < n_clusters:
        raise ValueError(f"sample_size={sample_size!r} is too small; pass at least n_clusters={n_clusters} "
                         "reference points, or None for all.")
    else:
        ref = np.sort(np.random.default_rng(seed).choice(n, size=int(sample_size), replace=False))
    return silhouette_from_labels(z, labels, ref, chunk=chunk)


def silhouette_from_labels(Z, labels, ref=None, chunk: int | None = None) -> np.ndarray:
    """Silhouette ``[N]`` of given cluster ``labels`` against reference rows ``ref`` (default: all rows).

    Vectorised in chunks of ``chunk`` points (default: 2**24 distances per chunk): distances to the
    references as one matrix product, then per-cluster sums as a product with the one-hot label
    matrix. A point in ``ref`` does not count its distance to itself, so with all rows as references
    this is ``sklearn.metrics.silhouette_samples``.
    """
    z = torch.as_tensor(np.asarray(Z, dtype=np.float64))
    lab = np.unique(np.asarray(labels), return_inverse=True)[1].reshape(-1)
    n = len(z)
    if len(lab) != n:
        raise ValueError(f"labels has {len(lab)} entries for {n} points; pass one label per point.")
    ref = np.arange(n) if ref is None else np.asarray(ref)
    if ref.ndim != 1 or len(ref) == 0 or not np.issubdtype(ref.dtype, np.integer) or ref.min() < 0 or ref.max() >= n:
        raise ValueError(f"ref must be a non-empty list of row indices in [0, {n - 1}]; pass e.g. np.arange(n).")
    k = int(lab.max()) + 1
    onehot = torch.zeros(len(ref), k, dtype=torch.float64)
    onehot[torch.arange(len(ref)), torch.from_numpy(lab[ref])] = 1.0
    counts = onehot.sum(0)                                      # reference points per cluster
    zr = z[torch.from_numpy(ref)]
    sq_r = (zr * zr).sum(1)
    in_ref = np.zeros(n, dtype=bool)
    in_ref[ref] = True
    lab_t = torch.from_numpy(lab)
    chunk = int(chunk or max(1, (1 << 24) // len(ref)))
    out = np.empty(n, dtype=np.float64)
    for s in range(0, n, chunk):
        q = z[s:s + chunk]
        d2 = torch.addmm(sq_r[None], q, zr.T, alpha=-2).add_((q * q).sum(1, keepdim=True))
        dsum = d2.clamp_(min=0).sqrt_() @ onehot                  # [chunk, k]: summed distance per cluster
        own = lab_t[s:s + chunk]
        cnt = counts[None].expand_as(dsum).clone()
        rows = torch.arange(len(q))
        cnt[rows, own] -= torch.from_numpy(in_ref[s:s + chunk]).double()  # exclude self from own cluster
        # a cluster without reference points is never the nearest other cluster
        mean = torch.where(cnt > 0, dsum / cnt.clamp(min=1), float("inf"))
        a = mean[rows, own]
        mean[rows, own] = float("inf")
        b = mean.min(1).values
        sil = (b - a) / torch.maximum(a, b)
        sil[cnt[rows, own] < 1] = 0.0                               # singleton cluster: sklearn's 0
        out[s:s + chunk] = torch.nan_to_num(sil, nan=0.0).numpy()
    return out


def _as_tensor(z) -> torch.Tensor:
    t = z.detach() if isinstance(z, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(np.asarray(z)))
    return t if t.is_floating_point() else t.double()


def _as_codes(Z, min_steps: int) -> torch.Tensor:
    """Codes as a CPU float tensor (a view of a numpy array, no copy); NaN is caught on the outputs."""
    if isinstance(Z, np.ndarray) and not np.issubdtype(Z.dtype, np.number):
        raise ValueError(f"codes must hold numbers, got dtype {Z.dtype}; convert them with .astype(float).")
    z = _as_tensor(Z).cpu()
    if z.ndim not in (2, 3):
        raise ValueError(f"codes must be [N, D] or a series [S, N, D], got shape {tuple(z.shape)}.")
    if z.shape[0] < min_steps or z.shape[-1] < 1:
        raise ValueError(f"codes of shape {tuple(z.shape)} are too short: need at least {min_steps} steps "
                         "and one dimension.")
    return z


def _check_finite(values: torch.Tensor) -> None:
    if values.numel() and not torch.isfinite(values).all():
        raise ValueError("codes contain NaN or inf; check the encoder output.")
