"""Speed and agreement of the per-sample metrics, measured side by side in one run.

    python -m benchmarks.bench_metrics                # full sizes (a few minutes on 2 cores)
    python -m benchmarks.bench_metrics --quick        # small sizes, a smoke run
    python -m benchmarks.bench_metrics --json out.json

1. SSIM of 10,000 MNIST digit / noisy-digit pairs: our batched SSIM (float64 and float32) vs the
   scikit-image loop with Wang settings (goal: >= 10x faster), with the max abs difference.
2. LID of one 57,000 x 10 code snapshot: our knn + MLE vs scikit-dimension ``MLE().fit_transform_pw``.
3. The whole metric analysis of the seed's 600-epoch, 57,000-sample run (goal: <= 60 s), on synthetic
   data of the same shape: loss [600, 57000] float32 and sigmoid codes [600, 57000, 10] float32.
   Parts: loss aggregates with the seed's k; entropy and its aggregates; norm and drift with
   aggregates; LID (k=20, MLE) every ``--lid-every`` epochs (default 100: 6 snapshots) with aggregates.
   Silhouette (O(N^2) per snapshot) is timed apart, per snapshot, with ``--sil-sample`` reference
   points (default 5,000) and once with all 57,000.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from utils.metrics.aggregates import aggregate, scaled_epochs
from utils.metrics.embedding import bottleneck_entropy, drift, norm, silhouette
from utils.metrics.lid import knn, lid_mle
from utils.metrics.ssim import ssim

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def mnist_pairs(n: int):
    """n real digits in [0, 1] and noisy copies (Gaussian noise 0.2, clamped)."""
    from utils.data.datasets import load_dataset
    try:
        x, _, _ = load_dataset("mnist", "test", root=SHARED_DATA)
    except Exception:  # noqa: BLE001 - fall back to the embedded 4,000 digits, tiled
        x, _, _ = load_dataset("mnist-5k", "train")
    x = x.repeat(-(-n // len(x)), 1, 1, 1)[:n].contiguous()
    g = torch.Generator().manual_seed(0)
    return x, (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)


def synthetic_run(epochs: int, n: int, d: int = 10, seed: int = 0):
    """Loss [E, N] and sigmoid codes [E, N, D] (float32) with cluster structure and per-epoch drift."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(10, d)).astype(np.float32)
    pre = centres[rng.integers(0, 10, n)] + rng.normal(scale=0.7, size=(n, d)).astype(np.float32)
    codes = np.empty((epochs, n, d), dtype=np.float32)
    for e in range(epochs):
        pre += rng.normal(scale=0.02, size=(n, d)).astype(np.float32)
        codes[e] = 1.0 / (1.0 + np.exp(-pre))
    hardness = rng.gamma(2.0, 0.05, size=n).astype(np.float32)
    decay = np.exp(-np.arange(epochs, dtype=np.float32) / (epochs / 6))[:, None]
    loss = hardness + 0.3 * decay + rng.normal(scale=0.005, size=(epochs, n)).astype(np.float32)
    return loss, codes


def bench_ssim(n: int):
    from skimage.metrics import structural_similarity
    a, b = mnist_pairs(n)
    an, bn = a[:, 0].double().numpy(), b[:, 0].double().numpy()
    ssim(a[:16], b[:16])  # warm-up
    ref, t_sk = timed(lambda: np.array([structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
                                                              use_sample_covariance=False, data_range=1.0)
                                        for x, y in zip(an, bn)]))
    rows = {}
    for label, dtype in (("float64", torch.float64), ("float32", torch.float32)):
        times = []
        for _ in range(3):
            ours, t = timed(ssim, a, b, dtype=dtype)
            times.append(t)
        t = float(np.median(times))
        rows[label] = {"seconds": t, "ratio": t_sk / t, "max_abs_diff": float(np.abs(ours.numpy() - ref).max())}
    return {"pairs": n, "skimage_loop_s": t_sk, "ours": rows}


def bench_lid(codes: np.ndarray, k: int = 20):
    import skdim
    (dist, idx), t_knn = timed(knn, codes, k)
    ours, t_mle = timed(lid_mle, codes, k, knn_result=(dist, idx))
    ref, t_skdim = timed(skdim.id.MLE().fit_transform_pw, codes, n_neighbors=k)
    _, t_skdim_pre = timed(skdim.id.MLE().fit_transform_pw, codes, precomputed_knn_arrays=(dist, idx), n_neighbors=k)
    return {"points": len(codes), "k": k, "knn_s": t_knn, "mle_s": t_mle, "ours_s": t_knn + t_mle,
            "skdim_s": t_skdim, "skdim_precomputed_knn_s": t_skdim_pre, "ratio": t_skdim / (t_knn + t_mle),
            "mle_ratio_same_knn": t_skdim_pre / t_mle, "max_abs_diff": float(np.nanmax(np.abs(ours - ref))),
            "median_lid": float(np.median(ours))}


def bench_analysis(loss: np.ndarray, codes: np.ndarray, lid_every: int):
    epochs = len(loss)

    def ks(*seed_ks):  # the seed's 600-epoch indices, scaled to this run (identity at 600 epochs)
        return scaled_epochs(seed_ks, epochs)
    parts = {}
    _, parts["loss aggregates"] = timed(aggregate, loss, "loss", mean_from=ks(0, 20, 50), var_from=ks(0, 20, 50),
                                        std_from=ks(0, 20, 50), diff_last=ks(0, 20, 50))

    def entropy_part():
        h = bottleneck_entropy(codes)
        return aggregate(h, "H", mean_from=ks(0, 400), var_from=ks(0, 450), std_from=ks(0, 450),
                         diff_last=ks(250, 450))
    _, parts["entropy + aggregates"] = timed(entropy_part)

    def norm_drift_part():
        l2n = norm(codes)
        dl2, dl1 = drift(codes)
        return [aggregate(l2n, "L2", mean_from=ks(0, 20), var_from=ks(0, 20, 250), std_from=ks(0, 20, 250),
                          diff_last=()),
                aggregate(dl2, "dif_L2", mean_from=(0,), var_from=(0,), std_from=(0,), diff_last=()),
                aggregate(dl1, "dif_L1", mean_from=(0,), var_from=(0,), std_from=(0,), diff_last=())]
    _, parts["norm + drift + aggregates"] = timed(norm_drift_part)

    snaps = list(range(lid_every - 1, epochs, lid_every))

    def lid_part():
        lid = np.stack([lid_mle(codes[e], k=20, knn_result=knn(codes[e], 20)) for e in snaps])
        return aggregate(lid, "LID", mean_from=(0,), var_from=(0,), std_from=(0,), diff_last=(0,))
    _, parts[f"LID x{len(snaps)} snapshots + aggregates"] = timed(lid_part)
    return {"epochs": epochs, "samples": loss.shape[1], "lid_snapshot_epochs": snaps, "parts_s": parts,
            "total_s": float(sum(parts.values()))}


def bench_silhouette(codes: np.ndarray, sample_size: int, full: bool):
    out = {"points": len(codes), "sample_size": sample_size}
    _, out["subsampled_s"] = timed(silhouette, codes, n_clusters=10, seed=91, sample_size=sample_size)
    if full:
        _, out["full_s"] = timed(silhouette, codes, n_clusters=10, seed=91)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--lid-every", type=int, default=100, help="LID snapshot interval in epochs")
    parser.add_argument("--sil-sample", type=int, default=5000, help="silhouette reference points")
    parser.add_argument("--json", default=None, help="also save the numbers to this file")
    args = parser.parse_args(argv)
    pairs, epochs, n = (1_000, 60, 5_700) if args.quick else (10_000, 600, 57_000)
    lid_every = max(1, args.lid_every * epochs // 600)
    print(f"{torch.get_num_threads()} torch threads; sizes: {pairs} SSIM pairs, analysis {epochs} epochs x {n} samples")

    s = bench_ssim(pairs)
    print(f"\n1. SSIM, {pairs} MNIST digit vs noisy-digit pairs (Wang settings, data_range 1)")
    print(f"   {'method':28s}{'seconds':>9s}{'speed-up':>10s}{'max |diff|':>12s}")
    print(f"   {'scikit-image loop (float64)':28s}{s['skimage_loop_s']:9.2f}{'1.0x':>10s}{'reference':>12s}")
    for label, r in s["ours"].items():
        print(f"   {'ours, batched, ' + label:28s}{r['seconds']:9.2f}{r['ratio']:9.1f}x{r['max_abs_diff']:12.1e}")
    print("   goal: >= 10x")

    print(f"\n   generating the synthetic run ({epochs} x {n}; codes {epochs * n * 40 / 1e9:.2f} GB)...", flush=True)
    loss, codes = synthetic_run(epochs, n)

    lid = bench_lid(codes[-1])
    print(f"\n2. LID (MLE, k={lid['k']}) of one {lid['points']} x 10 snapshot")
    print(f"   {'method':50s}{'seconds':>9s}")
    print(f"   {'ours: knn (scikit-learn exact) + vectorised MLE':50s}{lid['ours_s']:9.2f}"
          f"   (knn {lid['knn_s']:.2f} + MLE {lid['mle_s']:.3f})")
    print(f"   {'scikit-dimension MLE().fit_transform_pw':50s}{lid['skdim_s']:9.2f}")
    print(f"   {'scikit-dimension, same precomputed knn':50s}{lid['skdim_precomputed_knn_s']:9.2f}")
    print(f"   speed-up {lid['ratio']:.2f}x overall, {lid['mle_ratio_same_knn']:.0f}x for the estimator itself; "
          f"max |diff| {lid['max_abs_diff']:.1e}; median LID {lid['median_lid']:.2f}")

    a = bench_analysis(loss, codes, lid_every)
    print(f"\n3. Whole metric analysis of a {a['samples']} x {a['epochs']} run "
          f"(LID at epoch indices {a['lid_snapshot_epochs']})")
    print(f"   {'part':40s}{'seconds':>9s}")
    for part, t in a["parts_s"].items():
        print(f"   {part:40s}{t:9.2f}")
    print(f"   {'total':40s}{a['total_s']:9.2f}   (goal <= 60 s)")

    sil = bench_silhouette(codes[-1], min(args.sil_sample, n), full=not args.quick)
    print(f"\n4. Silhouette of one {sil['points']} x 10 snapshot (KMeans 10, seed 91), per snapshot")
    print(f"   {'reference points':40s}{'seconds':>9s}")
    print(f"   {sil['sample_size']:<40d}{sil['subsampled_s']:9.2f}")
    if "full_s" in sil:
        print(f"   {str(sil['points']) + ' (all, exact silhouette_samples)':40s}{sil['full_s']:9.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ssim": s, "lid": lid, "analysis": a, "silhouette": sil}, f, indent=1)


if __name__ == "__main__":
    main()
