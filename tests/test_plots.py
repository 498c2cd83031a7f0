import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from utils.report import plots
from utils.scores.evaluate import detection_table


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _n_images(fig):
    return sum(len(ax.images) for ax in fig.axes)


def test_loghist(tmp_path):
    rng = np.random.default_rng(0)
    v, pos = rng.normal(size=500), rng.random(500) < 0.1
    fig = plots.loghist(v, pos, "loss", bins=20, path=tmp_path / "h.png")
    (ax,) = fig.axes
    assert ax.get_yscale() == "log" and len(ax.patches) == 40
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights[:20]) == 500 and sum(heights[20:]) == pos.sum()
    _png(tmp_path / "h.png")
    _, ax2 = plt.subplots()
    assert plots.loghist(v, pos, "x", ax=ax2) is ax2.figure


def test_image_grid_grey_and_rgb(tmp_path):
    grey = torch.rand(13, 1, 8, 8)
    fig = plots.image_grid(grey, titles=list("abcdefghijklm"), ncols=5, path=tmp_path / "g.png")
    assert len(fig.axes) == 13 and _n_images(fig) == 13
    np.testing.assert_allclose(fig.axes[2].images[0].get_array(), grey[2, 0].numpy())  # values as given
    assert fig.axes[2].get_title() == "c"
    _png(tmp_path / "g.png")
    rgb = np.random.default_rng(0).random((4, 3, 8, 8))
    fig = plots.image_grid(rgb)
    assert len(fig.axes) == 4 and fig.axes[0].images[0].get_array().shape == (8, 8, 3)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        plots.image_grid(np.zeros((2, 2, 8, 8)))


def test_tail_grid_selects_and_frames_the_right_tail(tmp_path):
    n = 1000
    images = np.zeros((n, 1, 4, 4))
    scores = np.arange(n, dtype=float)[::-1].copy()  # sample i has score n-1-i
    highlight = np.zeros(n, bool)
    highlight[[1, 500]] = True
    fig = plots.tail_grid(images, scores, q=0.99, highlight=highlight, path=tmp_path / "t.png")
    assert _n_images(fig) == int((scores > np.quantile(scores, 0.99)).sum()) == 10
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:2] == ["999", "998"]  # sorted by score, highest first
    framed = [ax.spines["top"].get_visible() for ax in fig.axes]
    assert framed == [False, True] + [False] * 8
    _png(tmp_path / "t.png")


def test_training_curves(tmp_path):
    hist = pd.DataFrame({"epoch": range(5), "train_l1": np.linspace(1, 0.2, 5), "test_l1": np.linspace(1, 0.3, 5),
                         "seconds": np.full(5, 60.0)})  # timings are not loss curves
    fig = plots.training_curves(hist, baselines={"blank image": 0.43}, path=tmp_path / "c.png")
    (ax,) = fig.axes
    assert len(ax.lines) == 3
    assert ax.lines[2].get_ydata()[0] == 0.43
    _png(tmp_path / "c.png")


def test_score_bars(tmp_path):
    rng = np.random.default_rng(0)
    y = pd.Series(rng.random(400) < 0.1)
    scores = pd.DataFrame({f"m{i}": i * 0.2 * y + rng.normal(size=400) for i in range(6)})
    table = detection_table(scores, y, orientation="free", srcc=True)
    fig = plots.score_bars(table, top=4, path=tmp_path / "b.png")
    a1, a2 = fig.axes
    assert len(a1.patches) == len(a2.patches) == 4
    assert max(p.get_width() for p in a1.patches) == pytest.approx(table["auroc"].iloc[0])
    assert [t.get_text() for t in a1.get_yticklabels()][-1] == table.index[0]  # best at the top
    _png(tmp_path / "b.png")


def test_tail_quantile_out_of_range_is_a_clear_error():
    import numpy as np
    import pytest

    from utils.report.plots import tail_grid
    with pytest.raises(ValueError, match="not a quantile"):
        tail_grid(np.zeros((5, 1, 4, 4)), np.arange(5.0), q=99)


def test_tail_mask_is_the_selection_tail_grid_shows():
    import numpy as np

    from utils.report.plots import tail_grid, tail_mask
    scores = np.arange(100.0)
    assert tail_mask(scores, 0.95).sum() == 5 and tail_mask(scores, 0.95)[-5:].all()
    fig = tail_grid(np.zeros((100, 1, 4, 4)), scores, q=0.95)
    assert sum(bool(ax.images) for ax in fig.axes) == 5


# ------------------------------------------------------------------------------ SSFT figures
def _two_split_runs(n=40, seeds=(0, 1)):
    """Fake SSFT runs (both orders per seed) with an ``ssim`` and a ``mse`` measurement."""
    from utils.engine.protocols import TwoSplitRun, split_halves
    from utils.engine.recorder import Recorder

    rng = np.random.default_rng(0)
    a, b = split_halves(np.arange(n), 0)
    runs = []
    for seed in seeds:
        for order, ids in (("AB", a), ("BA", b)):
            stage1, stage2 = Recorder(ids), Recorder(ids)
            for t in range(3):
                stage1.record("ssim", t, ids, rng.random(len(ids)))
                stage1.record("mse", t, ids, rng.random(len(ids)))
            for t in range(4):
                stage2.record("ssim", t, ids, rng.random(len(ids)))
                stage2.record("mse", t, ids, rng.random(len(ids)))
            history = pd.DataFrame({"stage": [1, 1, 1, 2, 2], "epoch": [1, 2, 3, 1, 2],
                                    "train_loss": rng.random(5), "train_acc": np.nan, "seconds": 1.0})
            runs.append(TwoSplitRun(seed, order, ids, stage1, stage2, 2, history))
    return runs


def test_stage_curves_draws_every_run_and_names_a_missing_column(tmp_path):
    runs = _two_split_runs()
    fig = plots.stage_curves(runs, "train_loss", path=tmp_path / "s.png")
    (ax,) = fig.axes
    curves = [line for line in ax.lines if len(line.get_xdata()) == 5]
    assert len(curves) == len(runs)
    np.testing.assert_allclose(curves[0].get_ydata(), runs[0].history["train_loss"])
    _png(tmp_path / "s.png")
    with pytest.raises(ValueError, match="train_loss"):
        plots.stage_curves(runs, "loss")  # SSFT histories say train_loss now


def test_first_last_hists_one_panel_per_measure(tmp_path):
    runs = _two_split_runs()
    mixed = pd.Series(np.arange(40) % 10 == 0, index=np.arange(40))
    fig = plots.first_last_hists(runs, ["ssim", "mse"], mixed, title="t", path=tmp_path / "f.png")
    assert [ax.get_xlabel() for ax in fig.axes] == ["ssim", "mse"]
    assert all(len(ax.patches) > 0 for ax in fig.axes)
    _png(tmp_path / "f.png")


def test_time_scatter_highlights_by_sample_id(tmp_path):
    from utils.scores.ssft import ssft_scores

    scores = ssft_scores(_two_split_runs(), "ssim", 0.5)
    flag = pd.Series(False, index=scores.index[::-1])  # another order: aligned by id
    flag.iloc[:3] = True
    fig = plots.time_scatter(scores, flag, label="mixed", path=tmp_path / "t.png")
    (ax,) = fig.axes
    assert len(ax.collections) == 2 and len(ax.collections[1].get_offsets()) == 3
    assert "mixed (3)" in [t.get_text() for t in ax.get_legend().get_texts()]
    _png(tmp_path / "t.png")


def test_quadrant_grids_one_panel_per_quadrant(tmp_path):
    from utils.scores.quadrants import QUADRANTS

    ids = np.arange(100, 140)
    quadrant = pd.Series(np.array(QUADRANTS)[np.arange(40) % 4], index=ids)
    fig = plots.quadrant_grids(torch.rand(40, 1, 8, 8), ids, quadrant, per_quadrant=4, path=tmp_path / "q.png")
    assert len(fig.subfigs) == 4 and [sf._suptitle.get_text() for sf in fig.subfigs][0] == "typical (10)"
    assert sum(bool(ax.images) for ax in fig.axes) == 16
    _png(tmp_path / "q.png")


def test_pruning_curves_one_color_per_score_and_a_legend_per_panel(tmp_path):
    from utils.studies.pruning import accuracy_summary

    rows = [dict(score="full", policy="full", fraction=1.0, seed=s, test_acc=0.9, kept=100) for s in (0, 1)]
    for score, policies in {"a": ("keep_hard", "ccs"), "b": ("ccs",), "random": ("random",)}.items():
        for policy in policies:
            for f in (0.1, 0.5):
                rows += [dict(score=score, policy=policy, fraction=f, seed=s, test_acc=0.5 + f / 2 - s / 100,
                              kept=int(100 * f)) for s in (0, 1)]
    fig = plots.pruning_curves(accuracy_summary(pd.DataFrame(rows)), "t", path=tmp_path / "p.png")
    assert sorted(ax.get_title() for ax in fig.axes) == ["ccs", "keep_hard"]
    color = {}
    for ax in fig.axes:
        handles, labels = ax.get_legend_handles_labels()
        assert ax.get_legend() is not None and "random" in labels
        for h, label in zip(handles, labels):
            if label in ("a", "b"):
                color.setdefault(label, set()).add(tuple(h.lines[0].get_color()))
    assert set(color) == {"a", "b"} and all(len(c) == 1 for c in color.values())  # same color in every panel
    assert color["a"] != color["b"]
    _png(tmp_path / "p.png")


def test_image_grid_shows_every_tile_on_the_pixel_scale():
    """A blank white image is drawn white and a blank black one black (no tile stretched to its own contrast)."""
    blanks = np.stack([np.ones((1, 8, 8)), np.zeros((1, 8, 8)), np.full((1, 8, 8), 0.5)])
    fig = plots.image_grid(blanks, ncols=3)
    fig.canvas.draw()
    shown = [ax.images[0].to_rgba(ax.images[0].get_array())[..., 0].mean() for ax in fig.axes]
    assert shown == pytest.approx([1.0, 0.0, 0.5], abs=0.01)
