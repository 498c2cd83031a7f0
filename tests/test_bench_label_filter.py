"""benchmarks/bench_label_filter.py: one K-fold pass, every filter_by on the same probabilities, and its section."""
import json

from sklearn.metrics import precision_score, recall_score

from benchmarks import bench_label_filter as bench
from utils.report.sections import label_filter_markdown


def test_rows_per_filter_and_the_generated_section(tmp_path, monkeypatch):
    seen = {}
    import utils.scores.label_quality as lq
    original = lq.label_quality

    def spy(probs, labels, filter_by="prune_by_noise_rate"):
        out = original(probs, labels, filter_by=filter_by)
        seen[filter_by] = out["flag_label_issue"]
        return out

    monkeypatch.setattr(lq, "label_quality", spy)
    rows = bench.measure("mnist-5k", "train", 160, seed=1, noise=0.1, filters=("prune_by_noise_rate", "both"))
    assert [r["filter_by"] for r in rows] == ["prune_by_noise_rate", "both"]
    # the same flipped labels as the benchmark draws, scored with scikit-learn
    import numpy as np
    from utils.data.datasets import load_dataset
    from utils.data.mixing import flip_labels
    x, y, _ = load_dataset("mnist-5k", "train")
    ids = np.sort(np.random.default_rng(1).permutation(len(x))[:160])
    truth = dict(zip(ids, flip_labels(y[ids], 0.1, seed=1, num_classes=10)[1].numpy()))
    for r in rows:
        flags = seen[r["filter_by"]]
        t = np.array([truth[i] for i in flags.index])
        assert r["flagged"] == flags.mean()
        assert r["precision"] == (precision_score(t, flags, zero_division=0) if flags.any() else 0.0)
        assert r["recall"] == recall_score(t, flags)
    assert not (seen["both"] & ~seen["prune_by_noise_rate"]).any()   # both = noise rate AND class
    text = label_filter_markdown({"rows": rows, "noise": 0.1, "skipped": []})
    assert "mnist-5k 160 · both" in text and "1 seeds" in text
    best = max(rows, key=lambda r: r["precision"])["filter_by"]
    assert f"mnist-5k 160: `{best}`" in text
    json.dumps(rows)   # what the script writes
