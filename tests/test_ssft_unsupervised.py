"""The per-task defaults and the detection step of ssft/ssft-unsupervised.ipynb, on fake cached runs."""
import numpy as np
import pandas as pd
import pytest

from utils.engine.protocols import TwoSplitRun, split_halves
from utils.engine.recorder import Recorder
from utils.studies.ssft import (
    UNSUPERVISED,
    LearnedRule,
    best_vs_baseline,
    first_last_summary,
    unsupervised_config,
    unsupervised_detection,
    unsupervised_rules,
)


def _runs(n=60, seeds=(0, 1)):
    """Runs whose self_corr is high and cross_corr low for every sample but the mixed ones (id % 6 == 0)."""
    rng = np.random.default_rng(0)
    a, b = split_halves(np.arange(n), 0)
    runs = []
    for seed in seeds:
        for order, ids in (("AB", a), ("BA", b)):
            hard = ids % 6 == 0
            stages = []
            for length in (3, 4):
                rec = Recorder(ids)
                for t in range(length):
                    rec.record("self_corr", t, ids, np.where(hard, 0.2, 0.8) + rng.normal(0, 0.05, len(ids)))
                    rec.record("cross_corr", t, ids, np.where(hard, 50.0, 10.0) + rng.normal(0, 1, len(ids)))
                    rec.record("ssim", t, ids, np.where(hard, 0.3, 0.7) + rng.normal(0, 0.05, len(ids)))
                stages.append(rec)
            history = pd.DataFrame({"stage": [1, 1, 1, 2, 2], "epoch": [1, 2, 3, 1, 2], "train_loss": 1.0})
            runs.append(TwoSplitRun(seed, order, ids, *stages, 2, history))
    return runs


def _data(n=60):
    ids = pd.Index(np.arange(n), name="sample_id")
    return pd.DataFrame({"label": np.arange(n) % 10, "is_mixed": np.arange(n) % 6 == 0}, index=ids)


def test_defaults_per_task():
    ae, bt = UNSUPERVISED["autoencoder"], UNSUPERVISED["barlow_twins"]
    assert [r.label for r in ae.rules] == ["ssim>0.5", "ssim>0.15"] and ae.task_options == {"loss": "mse"}
    assert [(r.label, r.direction) for r in bt.rules] == [("self_corr", "higher"), ("cross_corr", "lower")]
    assert bt.measures == ["self_corr", "cross_corr"] and ae.measures == ["ssim"]
    c = unsupervised_config("autoencoder")
    assert (c.model, c.recipe.optimizer, c.recipe.lr, c.recipe.weight_decay, c.recipe.batch_size,
            c.recipe.max_epochs, c.model_seeds) == ("autoencoder", "adam", 1e-3, 0.0, 32, 15, (0, 1, 2))
    c = unsupervised_config("barlow_twins", logs_per_epoch=3, seeds=[0], max_epochs=None, lr=2e-3)
    assert (c.recipe.weight_decay, c.recipe.batch_size, c.recipe.max_epochs, c.recipe.lr) == (1e-6, 128, 10, 2e-3)
    assert c.recipe.schedule == "triangle" and c.logs_per_epoch == 3 and c.model_seeds == (0,)
    with pytest.raises(ValueError, match="autoencoder, barlow_twins"):
        unsupervised_config("cnn")


def test_thresholds_replace_the_rules_numbers():
    assert [r.label for r in unsupervised_rules("autoencoder", [0.4])] == ["ssim>0.4"]
    assert [r.name for r in unsupervised_rules("autoencoder", 0.25)] == ["ssim0.25"]
    assert [r.label for r in unsupervised_rules("barlow_twins", [0.25, 0.5])] == [
        "self_corr q0.25", "cross_corr q0.25", "self_corr", "cross_corr"]
    assert LearnedRule("cross_corr", "lower", quantile=0.25).name == "cross_corr_q0.25"
    assert LearnedRule("x", "lower", value=3).label == "x<3"
    with pytest.raises(ValueError, match="direction"):
        LearnedRule("x", "up")


def test_detection_applies_every_rule_to_every_mode():
    runs, data = {"matched": _runs(), "seed": _runs()}, {"matched": _data(), "seed": _data()}
    rules = unsupervised_rules("barlow_twins") + (LearnedRule("ssim", value=0.5),)
    scores, detection, thresholds = unsupervised_detection(runs, data, rules)
    assert len(scores) == 6 and set(detection.index.get_level_values(0)) == {
        f"{m} {r}" for m in runs for r in ("self_corr", "cross_corr", "ssim>0.5")}
    # the median rule (lower = learned): half the clean samples sit above it, the mixed ones are never learned
    assert 9 < thresholds["matched", rules[1]] < 11
    assert detection.loc[("matched cross_corr", "learning_time"), "auroc"] > 0.8
    assert detection.loc[("matched cross_corr", "learning_time"), "direction"] == "higher"
    # a fixed threshold between the two groups: the mixed images are found at once
    assert thresholds["seed", rules[2]] == 0.5
    assert detection.loc[("seed ssim>0.5", "learning_time"), "auroc"] == 1.0
    s = scores["seed", rules[0]]
    assert s.index.equals(data["seed"].index) and "is_mixed" in s and (s["n_seeds"] == 2).all()
    summary = first_last_summary(runs, data, ["ssim"])
    assert summary.loc[("seed", "ssim"), "end, mixed"] < summary.loc[("seed", "ssim"), "end, clean"]


def test_best_vs_baseline_puts_the_model_free_auroc_beside_each_study():
    import torch

    runs, data = {"matched": _runs()}, {"matched": _data()}
    _, detection, _ = unsupervised_detection(runs, data, unsupervised_rules("autoencoder"))
    images = torch.zeros(60, 1, 8, 8)
    images[torch.from_numpy(data["matched"]["is_mixed"].to_numpy(bool).copy()), 0, 2:6, 2:6] = 1.0  # AUROC 1
    best = best_vs_baseline(detection, {"matched": images}, data)
    assert list(best.index) == ["matched ssim>0.5", "matched ssim>0.15"]
    assert (best["model-free baseline"] == 1.0).all()
    assert (best["auroc (orientation-free)"] == detection["auroc"].where(detection["auroc"] >= 0.5, 1 - detection["auroc"])
            .groupby(level=0, sort=False).max().loc[best.index]).all()
