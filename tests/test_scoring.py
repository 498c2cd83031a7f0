"""The one scoring entry point (utils.scores.dataset.score_dataset) and the scoreboard study (utils.studies.scoreboard)."""
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import mannwhitneyu

from utils.data.datasets import load_dataset, load_image_folder
from utils.data.inject import from_arrays, inject
from utils.engine.cache import FolderBusyError, load_table
from utils.scores.dataset import ScoringConfig, as_samples, score_dataset
from utils.scores.evaluate import detection_table
from utils.scores.registry import FAMILIES, SCORES, oriented
from utils.studies.scoreboard import BoardConfig, best_per_type, goal_statement, run_board, summarize

# every registered column score_dataset writes, family by family (a change to the families shows here)
COLUMNS = {
    "pixels": ["px_prototype_distance", "px_knn_distance", "px_nn_distance", "px_cos_knn_distance"],
    "supervised": ["mean_loss", "el2n", "aum", "confidence", "variability", "forgetting_events", "learning_time",
                   "last_margin", "cl_label_quality", "cl_normalized_margin"],
    "ssft": ["ssft_forgetting_time", "ssft_second_split_area"],
    "autoencoder": ["ae_loss_last", "ae_loss_mean", "ae_ssim_last", "ae_prototype_distance", "ae_knn_distance",
                    "ae_nn_distance", "ae_ssft_forgetting_time", "ae_ssft_second_split_area"],
    "self-supervised": ["bt_prototype_distance", "bt_knn_distance", "bt_nn_distance", "bt_knn_disagreement"],
}

TINY = ScoringConfig(folds=3, epochs=3, el2n_epoch=1, ssft_epochs=2, ae_epochs=2, ae_ssft_epochs=3, bt_epochs=1, batch_size=64)


@pytest.fixture(scope="module")
def noisy():
    x, y, info = load_dataset("mnist-5k", "train")
    rows = np.sort(np.random.default_rng(3).permutation(len(x))[:300])
    data = inject(from_arrays(x[rows], y[rows], rows * 7 + 11, name="mnist-5k"), "uniform_noise", 0.1, seed=2)
    return data, info


@pytest.fixture(scope="module")
def scored(noisy, tmp_path_factory):
    data, info = noisy
    folder = tmp_path_factory.mktemp("scores")
    return score_dataset(data.images, data.labels, data.ids, info=info, config=TINY, folder=folder), \
        folder


def test_every_family_keyed_by_sample_id(scored, noisy):
    scores, _ = scored
    data, _ = noisy
    assert scores.index.tolist() == data.ids.tolist()
    expected = [c for cols in COLUMNS.values() for c in cols]
    assert sorted(c for c in scores.columns if c in SCORES) == sorted(expected)
    assert all(SCORES[c].family == f for f, cols in COLUMNS.items() for c in cols)
    assert scores[expected].notna().all().all()
    assert (scores["n_runs"] == TINY.folds - 1).all()       # every sample trained on by K-1 fold models
    assert scores.attrs["direction"] == {c: SCORES[c].direction for c in SCORES if c in expected}
    assert {"flag_label_issue", "flag_near_duplicate", "flag_outlier"} <= set(scores.columns)
    assert "cl_label_issue" not in scores   # the flag is the one column of cleanlab's decision


def test_confident_learning_and_dynamics_find_flipped_labels(scored, noisy):
    scores, _ = scored
    flipped = noisy[0].meta["uniform_noise"].to_numpy()
    o = oriented(scores)
    for col in ("cl_label_quality", "aum", "mean_loss"):
        s = o[col].to_numpy()
        auroc = mannwhitneyu(s[flipped], s[~flipped]).statistic / (flipped.sum() * (~flipped).sum())
        assert auroc > 0.8, (col, auroc)


def test_cached_and_independent_of_input_order(scored, noisy):
    scores, folder = scored
    data, info = noisy
    perm = torch.from_numpy(np.random.default_rng(0).permutation(len(data)))
    again = score_dataset(data.images[perm], data.labels[perm], data.ids[perm.numpy()], info=info, config=TINY,
                          folder=folder)
    # a reload is bit-identical to the fresh call: same dtypes (float32 stays float32), same values
    pd.testing.assert_frame_equal(again.loc[scores.index], scores, check_exact=True)
    assert scores["stat_mean"].dtype == np.float32
    assert again.attrs["fresh"] == [] and set(scores.attrs["fresh"]) == set(scores.attrs["seconds"])
    assert again.attrs["seconds"] == pytest.approx(scores.attrs["seconds"], abs=1e-3)   # each step's cost is kept
    # recomputed from scratch in another order: the same per-id scores (training sees samples in id order)
    fresh = score_dataset(data.images[perm], data.labels[perm], torch.from_numpy(data.ids)[perm].numpy(), info=info,
                          config=TINY, families=("pixels", "supervised"))
    cols = ["px_knn_distance", "px_nn_distance", "mean_loss", "el2n", "cl_label_quality"]
    np.testing.assert_allclose(fresh.loc[scores.index, cols].to_numpy(), scores[cols].to_numpy(), rtol=1e-5,
                               atol=1e-6)
    # each step checks its own settings: another epoch count is refused by the step it changes, with its file named
    from dataclasses import replace
    with pytest.raises(ValueError, match=r"scores_supervised.parquet was computed with other settings \(epochs\)"):
        score_dataset(data.images, data.labels, data.ids, info=info, config=replace(TINY, epochs=2),
                      folder=folder)
    label_free = score_dataset(data.images, data.labels, data.ids, info=info, folder=folder,
                               config=replace(TINY, epochs=2), families=("pixels", "autoencoder"))
    np.testing.assert_allclose(label_free["ae_loss_last"], scores["ae_loss_last"], rtol=1e-6)   # loaded, not retrained
    other = data.labels.clone()
    other[0] = (other[0] + 1) % 10
    with pytest.raises(ValueError, match=r"scores_supervised.parquet was computed with other settings \(data\)"):
        score_dataset(data.images, other, data.ids, info=info, config=TINY, folder=folder)
    # the label-issue rule is a step of its own: another filter_by is refused by that file only, and once it is
    # deleted the flags are recomputed from the cached K-fold pass (no training)
    both = replace(TINY, label_filter="both")
    with pytest.raises(ValueError, match=r"scores_label_issues.parquet was computed with other settings \(label_f"):
        score_dataset(data.images, data.labels, data.ids, info=info, config=both, folder=folder)
    (folder / "scores_label_issues.parquet").unlink()
    strict = score_dataset(data.images, data.labels, data.ids, info=info, config=both, folder=folder)
    assert strict.attrs["fresh"] == ["label_issues"]
    pd.testing.assert_frame_equal(strict.drop(columns="flag_label_issue"), scores.drop(columns="flag_label_issue"))
    # "both" flags what prune_by_noise_rate and prune_by_class both flag: a subset of the default's flags
    assert not (strict["flag_label_issue"] & ~scores["flag_label_issue"]).any()
    with pytest.raises(ValueError, match="label_filter must be one of cleanlab's filter_by settings"):
        replace(TINY, label_filter="strict")


@pytest.mark.parametrize("change", ["swap two images between ids", "transpose every image", "change 25 % of pixels"])
def test_a_changed_input_is_never_answered_from_the_cache(tmp_path, change):
    """The bug this replaces: a fingerprint of every 4th row and column, summed, returned the old scores for all
    three changes when ``info`` was given."""
    x, y, info = load_dataset("mnist-5k", "test")
    x, y = x[:80].clone(), y[:80]
    score_dataset(x, y, info=info, config=TINY, folder=tmp_path, families=("pixels",))
    if change == "swap two images between ids":
        x[[0, 1]] = x[[1, 0]]
    elif change == "transpose every image":
        x = x.transpose(2, 3).contiguous()
    else:
        mask = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < 0.25
        x = torch.where(mask, 1 - x, x)
    with pytest.raises(ValueError, match=r"scores_pixels.parquet was computed with other settings \(data\)"):
        score_dataset(x, y, info=info, config=TINY, folder=tmp_path, families=("pixels",))


def test_a_step_cached_by_other_code_is_refused_and_force_recomputes_it(tmp_path, monkeypatch):
    """The key of every step holds its code version (utils.scores.steps): a table written by another version, or
    by code that wrote none (every cache written before versions), is refused with a sentence naming the file and
    force=True; force=True recomputes that step only and overwrites it."""
    import json
    from dataclasses import replace

    from utils.engine.cache import StaleStepError
    from utils.scores import steps
    x, y, info = load_dataset("mnist-5k", "test")
    x, y = x[:80], y[:80]
    first = score_dataset(x, y, info=info, config=TINY, folder=tmp_path, families=("pixels",))
    assert json.loads((tmp_path / "scores_pixels.json").read_text())["version"] == steps.STEPS["pixels"].version
    pixels = steps.STEPS["pixels"]
    monkeypatch.setitem(steps.STEPS, "pixels", replace(pixels, version=pixels.version + 1))
    with pytest.raises(StaleStepError, match=rf"scores_pixels.parquet was computed by version {pixels.version} of its "
                                             rf"code, not the current version {pixels.version + 1}; pass force=True "
                                             r"\(--force on the command line\)"):
        score_dataset(x, y, info=info, config=TINY, folder=tmp_path, families=("pixels",))
    forced = score_dataset(x, y, info=info, config=TINY, folder=tmp_path, families=("pixels",), force=True)
    assert forced.attrs["fresh"] == ["pixels"]            # the image checks' version did not change: loaded
    pd.testing.assert_frame_equal(forced, first)
    assert score_dataset(x, y, info=info, config=TINY, folder=tmp_path, families=("pixels",)).attrs["fresh"] == []
    spec = json.loads((tmp_path / "scores_image_checks.json").read_text())
    del spec["version"]                                   # as every step written before versions existed
    (tmp_path / "scores_image_checks.json").write_text(json.dumps(spec))
    with pytest.raises(StaleStepError, match="scores_image_checks.parquet was computed by code that saved no version"):
        score_dataset(x, y, info=info, config=TINY, folder=tmp_path, families=("pixels",))


def test_every_step_is_declared_once_with_fields_the_config_has(noisy):
    """One declaration per step: its family is a registered one, its key's fields are ScoringConfig fields, and a
    step that does not read the labels is keyed alike whatever the labels are (a labeled call reuses it)."""
    from dataclasses import fields

    from utils.scores.registry import FAMILIES
    from utils.scores.steps import STEPS, step_family, step_settings
    data, info = noisy
    names = {f.name for f in fields(ScoringConfig)}
    other = data.unlabeled()
    for s in STEPS.values():
        assert s.family in FAMILIES and set(s.settings_fields) <= names and step_family(s.name) == s.family, s.name
        same = step_settings(TINY, s.name, data, info) == step_settings(TINY, s.name, other, info)
        assert same == (not s.needs_labels), s.name


def _hold_lock(folder, ready, release):
    from utils.engine.cache import writing
    with writing(folder):
        ready.set()
        release.wait(60)


def test_a_second_writer_is_refused_with_one_sentence(tmp_path):
    """Two processes on one folder: the second is refused while the first writes (no crash on a renamed checkpoint,
    no settings written by both)."""
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        x, y, info = load_dataset("mnist-5k", "test")
        with pytest.raises(FolderBusyError) as e:
            score_dataset(x[:60], y[:60], info=info, config=TINY, folder=tmp_path, families=("pixels",))
        msg = str(e.value)
        assert msg.startswith(f"{tmp_path} is being written by process ") and msg.endswith(
            "; wait for it to finish, or write to another folder.") and "\n" not in msg
    finally:
        release.set()
        holder.join(60)
    # once the first writer is done, the folder is free
    score_dataset(x[:60], y[:60], info=info, config=TINY, folder=tmp_path, families=("pixels",))


def test_label_free_without_labels():
    x, _, info = load_dataset("mnist-5k", "test")
    scores = score_dataset(x[:120], config=TINY, families=("pixels", "autoencoder"))
    assert "mean_loss" not in scores and "label" not in scores
    assert {"px_knn_distance", "ae_loss_last", "flag_near_duplicate", "flag_outlier"} <= set(scores.columns)
    assert scores.index.tolist() == list(range(120))


def test_pixel_duplicates_flag_injected_copies():
    x, y, _ = load_dataset("mnist-5k", "test")
    rows = torch.from_numpy(np.random.default_rng(1).permutation(len(x))[:200])   # every class (the split is sorted)
    data = inject(from_arrays(x[rows], y[rows]), "near_duplicates", 0.1, seed=1)
    scores = score_dataset(data.images, data.labels, data.ids, config=TINY, families=("pixels",))
    copies = data.meta["near_duplicates"]
    sources = data.meta.loc[copies, "source_id"].to_numpy()
    assert scores.loc[copies, "flag_near_duplicate"].all()
    assert (scores.loc[copies[copies].index, "px_nearest_id"].to_numpy() == sources).all()
    assert scores["flag_near_duplicate"].sum() == 2 * copies.sum()   # copy and source, nothing else


def test_other_shapes_and_class_counts():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(96, 3, 32, 32, generator=g)
    y = torch.arange(96) % 7
    scores = score_dataset(x, y, config=TINY, families=("pixels", "supervised", "autoencoder"))
    assert len(scores) == 96 and scores["el2n"].notna().all() and scores["ae_loss_last"].notna().all()


def test_channels_last_uint8_arrays_are_understood():
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (48, 12, 12, 3), dtype=np.uint8)
    a = score_dataset(hwc, config=TINY, families=("pixels",))
    b = score_dataset(torch.from_numpy(hwc).permute(0, 3, 1, 2).float() / 255, config=TINY, families=("pixels",))
    pd.testing.assert_frame_equal(a, b)


def test_image_folder(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(10):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / c / f"{i}.png")
    x, labels, names = load_image_folder(tmp_path)
    assert x.shape == (20, 3, 8, 8) and labels.tolist() == [0] * 10 + [1] * 10 and names[10] == "dog/0.png"
    assert np.allclose(x[0].permute(1, 2, 0).numpy() * 255, np.asarray(Image.open(tmp_path / "cat/0.png")), atol=1e-3)
    scores = score_dataset(tmp_path, config=TINY, families=("pixels",))   # the folder's classes are the labels
    assert scores["label"].tolist() == labels.tolist() and len(scores) == 20
    (tmp_path / "loose.png").write_bytes((tmp_path / "cat/0.png").read_bytes())
    with pytest.raises(ValueError, match="mixes images"):
        load_image_folder(tmp_path)


def test_bad_inputs_say_what_to_fix():
    x = torch.rand(40, 1, 8, 8)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        score_dataset(x * 255, config=TINY)
    with pytest.raises(ValueError, match="one per image"):
        score_dataset(x, torch.zeros(39, dtype=torch.long), config=TINY)
    with pytest.raises(ValueError, match="Unknown score families"):
        score_dataset(x, config=TINY, families=("magic",))
    with pytest.raises(ValueError, match="factorize"):    # class names (strings) are taken; fractions are not
        score_dataset(x, np.array([0.5, 1.5] * 20), config=TINY)
    with pytest.raises(ValueError, match="el2n_epoch"):
        ScoringConfig(epochs=3, el2n_epoch=3)


def test_detection_matches_mann_whitney_and_keeps_orientation():
    rng = np.random.default_rng(0)
    ids = pd.Index(np.arange(500) * 3, name="sample_id")
    pos = pd.Series(rng.random(500) < 0.1, index=ids)
    aum = rng.normal(size=500) - 1.5 * pos.to_numpy()             # "lower" = suspicious: positives low
    scores = pd.DataFrame({"aum": aum, "mean_loss": -aum}, index=ids)
    table = detection_table(scores, pos, baselines=True)
    y = pos.to_numpy()
    expected = mannwhitneyu(-aum[y], -aum[~y]).statistic / (y.sum() * (~y).sum())
    assert table.loc["aum", "auroc"] == pytest.approx(expected)
    assert table.loc["mean_loss", "auroc"] == pytest.approx(expected)   # same ranking, other stated direction
    assert 0.35 < table.loc["random", "auroc"] < 0.65
    neg = pd.Series(~y & (rng.random(500) < 0.5), index=ids)
    sub = detection_table(scores, pos, neg, baselines=True)
    assert sub.loc["aum", "negatives"] == neg.sum()


def test_board_runs_resumes_and_states_its_goal(tmp_path):
    cfg = BoardConfig(dataset="mnist-5k", split="train", n=240, types=("uniform_noise", "near_duplicates"),
                      seeds=(0,), claim=True, encoder_pool_size=200, encoder_epochs=1,
                      scoring=ScoringConfig(folds=3, epochs=2, el2n_epoch=1, ssft_epochs=1, ae_epochs=1,
                                            batch_size=64))
    table = run_board(cfg, tmp_path, log=None)
    assert set(table["type"]) == {"uniform_noise", "near_duplicates", "claim"}
    claim = table[table["type"] == "claim"]
    assert set(claim["target"]) == {"uniform_noise", "atypical", "uniform_noise_vs_atypical"}
    vs = claim[claim["target"] == "uniform_noise_vs_atypical"].iloc[0]
    assert vs["positives"] == vs["negatives"] == 24
    dup = table[(table["type"] == "near_duplicates")].set_index("score")
    assert dup.loc["px_nn_distance", "auroc"] > 0.9
    board = tmp_path / "uniform_noise" / "seed0" / "board.parquet"
    stamp = board.stat().st_mtime_ns
    (tmp_path / "claim" / "seed0" / "board.parquet").unlink()
    again = run_board(cfg, tmp_path, log=None)       # only the deleted copy is re-evaluated, from its cached scores
    assert board.stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(again.drop(columns="seconds"), table.drop(columns="seconds"))
    wall = pd.read_csv(tmp_path / "wall.csv")   # one row per call that scored copies: 3 from scratch, then 1
    assert wall["scored"].tolist() == [3, 1] and (wall["copies"] == 3).all() and (wall["wall_seconds"] > 0).all()
    run_board(cfg, tmp_path, log=None)               # nothing left to score: no row
    assert len(pd.read_csv(tmp_path / "wall.csv")) == 2
    # a changed scoring configuration is refused, never answered with the old tables
    from dataclasses import replace
    with pytest.raises(ValueError, match=r"board.parquet was computed with other settings \(scoring\)"):
        run_board(replace(cfg, scoring=replace(cfg.scoring, epochs=3)), tmp_path, log=None)
    best = best_per_type(summarize(table))
    assert set(best["type"]) == {"uniform_noise", "near_duplicates"}
    goal = goal_statement(best)["mnist-5k"]
    assert goal["met"] == (len(goal["types_within"]) >= 2)


def test_flags_follow_datalab_rules_and_group_duplicates():
    from utils.scores.flags import add_flags, duplicate_groups, outlier_fence
    rng = np.random.default_rng(0)
    ids = np.arange(20) * 10
    # a pair, a pair, a triple (40 -> 50 -> 60 -> 40), then 13 distinct samples
    nn = pd.Series([10, 0, 30, 20, 50, 60, 40] + [80 + 10 * (i % 12) for i in range(13)], index=ids)
    d = pd.Series([0.01, 0.01, 0.02, 0.02, 0.01, 0.01, 0.01] + [5.0] * 13, index=ids)
    knn = pd.Series(rng.normal(1, 0.05, 20), index=ids)
    knn.iloc[9] = 9.0                                        # one far point
    scores = pd.DataFrame({"px_nn_distance": d, "px_nearest_id": nn, "px_knn_distance": knn})
    out = add_flags(scores)
    assert out["flag_near_duplicate"].tolist() == [True] * 7 + [False] * 13
    assert out["duplicate_group"].tolist() == [0, 0, 1, 1, 2, 2, 2] + [-1] * 13
    q1, q3 = np.percentile(knn, [25, 75])
    assert outlier_fence(knn) == pytest.approx(q3 + (1 / 0.37037 - 1) * (q3 - q1))
    assert out["flag_outlier"].tolist() == [i == 9 for i in range(20)]
    # a sample flagged only because it is somebody's nearest neighbour joins that group
    g = duplicate_groups(pd.Series([10, 0, 0], index=[0, 10, 20]), pd.Series([False, False, True], index=[0, 10, 20]))
    assert g.tolist() == [0, -1, 0]


def test_issue_types_set_each_rule_in_the_config_and_the_report_states_it(tmp_path):
    """Each issue type is declared once (utils.scores.flags.ISSUES); its settings come from
    ScoringConfig.issue_types (Datalab's issue_types), reach the flags, are recorded in attrs and stated in the
    report; an unknown issue or setting is one sentence."""
    from dataclasses import replace

    from utils.report.dataset_report import write_report
    from utils.scores.flags import ISSUES, add_flags, outlier_fence
    x, y, info = load_dataset("mnist-5k", "test")
    x, y = x[:80], y[:80]
    default = score_dataset(x, y, info=info, config=TINY, folder=tmp_path / "c", families=("pixels",))
    strict = replace(TINY, issue_types={"outlier": {"threshold": 0.9, "spaces": ["px_knn_distance"]},
                                        "near_duplicate": {"threshold": 0.9}})
    scores = score_dataset(x, y, info=info, config=strict, folder=tmp_path / "c", families=("pixels",))
    assert scores.attrs["fresh"] == []                     # the flags are not part of any step's key
    d = scores["px_knn_distance"]
    assert scores["flag_outlier"].equals(d > outlier_fence(d, 0.9)) and scores["flag_outlier"].sum() > \
        default["flag_outlier"].sum()
    nn = scores["px_nn_distance"]
    assert scores["flag_near_duplicate"].equals(nn < 0.9 * nn.median())
    assert scores.attrs["issues"]["outlier"]["threshold"] == 0.9
    assert add_flags(scores.drop(columns=["flag_outlier"]))["flag_outlier"].equals(default["flag_outlier"])
    page = write_report(scores, x.numpy(), tmp_path / "r").read_text()
    assert "Q3 + (1 / 0.9 - 1) IQR" in page and "below 0.9 x its median" in page
    assert ISSUES["outlier"].about.split(":")[0] in page
    outliers = pd.read_csv(tmp_path / "r" / "outliers.csv")
    assert list(outliers.columns) == ["sample_id", "file", "px_knn_distance"]   # the configured spaces only
    with pytest.raises(ValueError, match=r"issue_types\['outlier'\] has no setting 'k' \(its settings: threshold, "
                                         r"cos_threshold, spaces\)\."):
        replace(TINY, issue_types={"outlier": {"k": 20}})
    with pytest.raises(ValueError, match="Unknown issue type 'outliers' in issue_types: choose from label_issue"):
        replace(TINY, issue_types={"outliers": {}})
    with pytest.raises(ValueError, match=r"must be a number in \(0, 1\], got 3"):
        replace(TINY, issue_types={"outlier": {"threshold": 3}})


def test_the_cosine_pixel_space_has_its_own_fence():
    """The outlier flag: Datalab's fence (threshold) in the Euclidean spaces, Tukey's far-out fence (cos_threshold,
    3 IQR) in the pixels' cosine space; each settable, each checked."""
    from dataclasses import replace

    from utils.scores.flags import add_flags, outlier_fence
    v = pd.Series(np.r_[np.linspace(0.85, 1.15, 200), [1.4, 1.7]])   # 1.4 beyond 1.7 IQR, not 3 IQR; 1.7 beyond both
    lo, hi = outlier_fence(v), outlier_fence(v, 0.25)
    assert lo < 1.4 < hi < 1.7 and hi == pytest.approx(np.percentile(v, 75) + 3 * np.subtract(*np.percentile(v, [75, 25])))
    calm = pd.Series(np.linspace(0.99, 1.01, 202))   # evenly spread: nothing beyond any fence
    table = pd.DataFrame({"px_nn_distance": 1.0, "px_nearest_id": 0, "px_knn_distance": calm,
                          "px_cos_knn_distance": v})
    assert add_flags(table)["flag_outlier"].to_numpy().nonzero()[0].tolist() == [201]       # far-out only
    both = add_flags(table, {"outlier": {"cos_threshold": 0.37037}})["flag_outlier"]
    assert both.to_numpy().nonzero()[0].tolist() == [200, 201]
    swapped = table.rename(columns={"px_knn_distance": "px_cos_knn_distance", "px_cos_knn_distance": "px_knn_distance"})
    assert add_flags(swapped)["flag_outlier"].to_numpy().nonzero()[0].tolist() == [200, 201]   # Datalab's fence
    with pytest.raises(ValueError, match=r"\['cos_threshold'\] must be a number in \(0, 1\], got 0"):
        replace(TINY, issue_types={"outlier": {"cos_threshold": 0}})


def _planted_table(n: int = 40):
    """A score table with labels and image checks: ids 0 and 1 exact copies, 2 and 3 near copies, 9 far from all,
    4 and 5 mislabeled, 10 dark, three quarters of the images low-information, no light image; 4 balanced classes."""
    rng = np.random.default_rng(0)
    ids = pd.Index(np.arange(n), name="sample_id")
    nn = 1 + rng.uniform(0, 0.1, n)
    nn[[0, 1]], nn[[2, 3]] = 0.0, 0.05
    nearest = (np.arange(n) + 1) % n
    nearest[[0, 1, 2, 3]] = [1, 0, 3, 2]
    knn = rng.normal(1, 0.05, n)
    knn[9] = 9.0
    quality = rng.uniform(0.6, 1, n)
    quality[[4, 5]] = [0.01, 0.02]
    table = pd.DataFrame({"px_nn_distance": nn, "px_nearest_id": nearest, "px_knn_distance": knn,
                          "label": np.arange(n) % 4, "cl_label_quality": quality,
                          "cl_predicted_label": (np.arange(n) + 1) % 4, "flag_label_issue": quality < 0.05},
                         index=ids)
    for check in ("dark", "light", "low_information", "exact_duplicates"):
        table[f"flag_{check}"] = False
        table[f"{check}_score"] = rng.uniform(0.5, 1, n)
    table.loc[10, "flag_dark"] = True
    table.loc[:29, "flag_low_information"] = True
    table.loc[[0, 1], "flag_exact_duplicates"] = True
    return table


def test_the_report_starts_here_lists_issues_without_hits_in_one_line_and_notes_a_widespread_check(tmp_path):
    """The page opens with a "start here" block: the issues with hits in the order to act (labels, exact copies,
    near-duplicates, outliers, image checks), each with its count and a link to its section; the issues without hits
    are one line, not sections; a check that fires on more than 10 % of the images carries its note (declared in
    ISSUES), once, and keeps its flags."""
    import re
    from html import escape

    from utils.report.dataset_report import write_report
    from utils.scores.flags import ISSUES, WIDESPREAD, add_flags
    scores = add_flags(_planted_table())
    page = write_report(scores, np.random.default_rng(1).uniform(0, 1, (40, 1, 8, 8)), tmp_path).read_text()
    start = page[page.index("<h2>Start here</h2>"):page.index("</section>")]
    assert page.index("Start here") < page.index("<section id=")           # at the top, before every section
    items = re.findall(r"<li><a href='#issue-(\w+)'>[^<]*</a>: (\d+) images? \([\d.]+%\)\. ([^<]*)</li>", start)
    assert [name for name, _, _ in items] == ["label_issue", "exact_duplicates", "near_duplicate", "outlier", "dark",
                                              "low_information"]
    assert {name: int(count) for name, count, _ in items} == {
        "label_issue": 2, "exact_duplicates": 2, "near_duplicate": 4, "outlier": 1, "dark": 1, "low_information": 30}
    assert all(text.startswith(escape(ISSUES[name].action)) for name, _, text in items)
    assert ["see the note" in text for _, _, text in items] == [False] * 5 + [True]   # the widespread check
    assert sorted(re.findall(r"<section id='issue-(\w+)'>", page)) == sorted(name for name, _, _ in items)
    no_hits = re.findall(r"<p class='no-hits'>No hits: ([^<]*)\.</p>", start)
    assert no_hits == ["Class imbalance, Light"]                           # one line, not sections
    assert "Light:" not in page and "issue-light" not in page and "issue-class_imbalance" not in page
    # the widespread check: its note once, in its section, with the share; its flags kept; no note below the share
    note = ISSUES["low_information"].note(0.75)
    assert WIDESPREAD == 0.10 and "fires on 75% of the images" in note and "rather than its issues" in note
    assert page.count(escape(note)) == 1
    section = page[page.index("<section id='issue-low_information'>"):]
    assert escape(note) in section[:section.index("</section>")]
    assert ISSUES["dark"].note(1 / 40) is None and page.count("class='note'") == 1
    assert load_table(tmp_path / "scores.parquet")["flag_low_information"].sum() == 30
    clean = add_flags(_planted_table().assign(flag_label_issue=False, flag_dark=False, flag_low_information=False,
                                              flag_exact_duplicates=False, px_nn_distance=1.0, px_knn_distance=1.0))
    plain = write_report(clean, np.zeros((40, 1, 8, 8)), tmp_path / "clean").read_text()
    assert "No issue has hits: nothing to act on." in plain and "<section id=" not in plain


def test_the_report_shows_each_issue_as_datalab_does_pairs_once_and_every_tile_titled(tmp_path, monkeypatch):
    """Per issue: a quality score (1 - the flagged share) and a table of the top rows (sample id, the ranking score,
    given and suggested class); an image grid for every issue with hits, image checks included; copies shown as
    pairs side by side, each pair once; every tile titled with its sample id, label issues with given -> suggested
    under it; every tile on the pixel scale with a grey border."""
    import re

    from utils.report import dataset_report, plots
    from utils.scores.flags import add_flags
    grids = []
    real = plots.image_grid

    def spy(images, titles=None, **kw):
        grids.append((np.asarray(images), list(titles), kw))
        return real(images, titles=titles, **kw)

    monkeypatch.setattr(plots, "image_grid", spy)
    scores = add_flags(_planted_table())
    images = np.random.default_rng(1).uniform(0, 1, (40, 1, 8, 8))
    page = dataset_report.write_report(scores, images, tmp_path, class_names=["a", "b", "c", "d"]).read_text()
    assert re.findall(r"<b>Quality score:</b> ([\d.]+)", page)[:2] == ["0.950", "0.950"]   # 2 of 40 flagged
    table = page[page.index("<section id='issue-label_issue'>"):]
    table = table[table.index("<table"):table.index("</table>")]
    assert re.findall(r"<td>(\d+)</td>\s*<td>([\d.]+)</td>\s*<td>(\w)</td>\s*<td>(\w)</td>", table) == [
        ("4", "0.01", "a", "b"), ("5", "0.02", "b", "c")]                      # lowest quality first
    titles = {t[0]: t for _, t, _ in grids}
    assert titles["4\na -> b"] == ["4\na -> b", "5\nb -> c"]                     # label issues: id, given -> suggested
    pairs = [t for _, t, _ in grids if t[0].startswith(("0 ", "1 ", "2 ", "3 "))]
    assert ["0 ~ 1", "1 (nearest)", "2 ~ 3", "3 (nearest)"] in pairs                # each pair once, side by side
    assert (["0 = 1", "1 (nearest)"] in pairs) != (["1 = 0", "0 (nearest)"] in pairs)   # the exact pair once
    assert ["10"] in [t for _, t, _ in grids]                                  # the dark check has its grid
    assert all(kw.get("border") == dataset_report.BORDER for _, _, kw in grids)
    shown = [g for g, t, _ in grids if t == ["10"]][0]
    np.testing.assert_array_equal(shown, images[[10]])                       # the tile is the flagged image


def test_the_scoreboard_and_the_readme_measure_what_each_issue_declares():
    from utils.report.sections import flag_targets
    from utils.scores.flags import ISSUES
    from utils.studies.scoreboard import FLAG_TARGETS
    assert FLAG_TARGETS == {i.flag: i.targets for i in ISSUES.values() if i.targets}
    assert FLAG_TARGETS["flag_outlier"] == ("far_ood", "near_ood", "atypical")
    assert "`far_ood`, `near_ood`, `atypical` for `flag_outlier`" in flag_targets()


def test_issues_and_summary_give_each_issue_rows_and_a_quality_score():
    """Datalab's get_issues / get_issue_summary on a score table: the flagged rows of one issue, most suspicious
    first by its declared score (in its stated direction), with file and given / suggested class; per issue the
    count, the rule with its settings and 1 - the flagged share."""
    from utils.scores.flags import add_flags, issue_summary, issues
    ids = np.array([5, 3, 9, 1, 7, 2, 8, 4])
    table = pd.DataFrame({"px_nn_distance": [1.0] * 8, "px_nearest_id": [3, 5, 1, 9, 2, 7, 4, 8],
                          "px_knn_distance": [1.0, 1.1, 0.9, 1.0, 9.0, 1.05, 0.95, 8.0],
                          "cl_label_quality": [0.9, 0.1, 0.8, 0.3, 0.7, 0.95, 0.6, 0.85],
                          "flag_label_issue": [False, True, False, True, False, False, False, False],
                          "cl_predicted_label": [0, 2, 1, 0, 1, 1, 0, 1], "label": [0, 1, 1, 1, 0, 1, 0, 1],
                          "file": [f"f{i}.png" for i in ids]}, index=pd.Index(ids, name="sample_id"))
    scored = add_flags(table, {"outlier": {"threshold": 0.5}})
    out = issues(scored, "outlier")
    assert out.index.tolist() == [7, 4] and out["is_issue"].all() and out.attrs["direction"] == "higher"
    assert out["score"].tolist() == [9.0, 8.0] and out["file"].tolist() == ["f7.png", "f4.png"]
    lab = issues(scored, "label_issue")
    assert lab.index.tolist() == [3, 1] and lab.attrs["direction"] == "lower"    # lowest label quality first
    assert lab[["given", "suggested"]].values.tolist() == [[1, 2], [1, 0]]
    assert len(issues(scored, "outlier", flagged_only=False)) == 8
    summary = issue_summary(scored).set_index("issue")
    assert summary.loc["outlier", "flagged"] == 2 and summary.loc["outlier", "quality"] == pytest.approx(0.75)
    assert "Q3 + (1 / 0.5 - 1) IQR" in summary.loc["outlier", "rule"]
    assert set(summary.index) == {"label_issue", "near_duplicate", "outlier", "class_imbalance"}
    with pytest.raises(ValueError, match="Unknown issue type 'outliers': choose from label_issue"):
        issues(scored, "outliers")
    with pytest.raises(ValueError, match="no flag_dark column"):
        issues(scored, "dark")


def test_every_step_belongs_to_one_group_of_the_ranks():
    """Under torchrun the steps spread over the ranks in groups; a step outside every group would never run."""
    from utils.scores.dataset import STEP_GROUPS, STEPS

    flat = [s for g in STEP_GROUPS for s in g]
    assert sorted(flat) == sorted(STEPS) and len(flat) == len(set(flat))


def test_clean_keep_drops_flagged_and_all_but_one_copy():
    from utils.scores.flags import clean_keep, duplicate_keepers
    ids = [40, 7, 12, 3, 25, 9]
    table = pd.DataFrame({"flag_outlier": [False, True, False, False, False, False],
                          "flag_label_issue": [False, False, False, True, False, False],
                          "duplicate_group": [0, -1, 0, -1, 1, 1]}, index=ids)
    # group 0 = {40, 12}: 12 kept; group 1 = {25, 9}: 9 kept; 7 is an outlier, 3 a label issue
    assert duplicate_keepers(table["duplicate_group"]).to_dict() == {40: False, 7: True, 12: True, 3: True,
                                                                     25: False, 9: True}
    datalab = {40: False, 7: False, 12: True, 3: False, 25: False, 9: True}
    assert clean_keep(table, policy="datalab").to_dict() == datalab
    # keep.csv's policy: the outlier 7 is listed for a look, not dropped
    assert clean_keep(table).to_dict() == {**datalab, 7: True}
    # the same samples in another order: the same decision per id
    assert clean_keep(table.iloc[::-1]).to_dict() == clean_keep(table).to_dict()
    # unlabeled tables have no label flag: only outliers and copies go
    assert clean_keep(table.drop(columns="flag_label_issue"), policy="datalab")[3]
    # an image check drops what it flags, unless it fires on more than WIDESPREAD of the images
    plain = pd.DataFrame({"flag_outlier": False, "duplicate_group": -1}, index=range(20))
    one = np.arange(20) == 5
    assert clean_keep(plain.assign(flag_blurry=one)).to_numpy().tolist() == (~one).tolist()
    assert clean_keep(plain.assign(flag_low_information=np.arange(20) < 3)).all()   # 15 %: describes the dataset
    with pytest.raises(ValueError, match="policy must be"):
        clean_keep(table, policy="strict")
    with pytest.raises(ValueError, match="score_dataset table"):
        clean_keep(table[["duplicate_group"]])                                  # no flag at all
    # without the pixel family there are no duplicate groups: nothing goes as a copy
    assert clean_keep(table.drop(columns="duplicate_group"), policy="datalab").to_dict() == {
        40: True, 7: False, 12: True, 3: False, 25: True, 9: True}


def test_pred_probs_and_features_brought_in_replace_the_families_they_stand_for(tmp_path):
    """Datalab's find_issues(pred_probs=, features=): the K-fold pass and the encoder are not trained; the label
    quality is cleanlab's on the given probabilities, the kNN scores are those of the given features."""
    from cleanlab.rank import get_label_quality_scores
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    from utils.data.datasets import load_dataset
    from utils.scores.dataset import ScoringConfig, score_dataset
    from utils.scores.geometry import embedding_scores

    x, y, _ = load_dataset("mnist-5k", "test")
    x, y = x[:200], y[:200].numpy()
    flat = x.flatten(1).numpy()
    probs = cross_val_predict(LogisticRegression(max_iter=200), flat, y, cv=3, method="predict_proba")
    feats = flat[:, ::7] + 0.01
    ids = np.arange(200)[::-1] + 1000                       # ids in another order than the rows
    out = score_dataset(x, y, ids, config=ScoringConfig(epochs=0, bt_epochs=0, k=5), folder=tmp_path,
                        families=("pixels", "supervised", "self-supervised"), pred_probs=probs, features=feats)
    np.testing.assert_allclose(out["cl_label_quality"].to_numpy(), get_label_quality_scores(y, probs), rtol=1e-10)
    assert (out["cl_predicted_label"].to_numpy() == probs.argmax(1)).all()
    geo = embedding_scores(feats, ids, k=5, normalize=True)
    np.testing.assert_allclose(out["bt_knn_distance"].to_numpy(), geo["knn_distance"].to_numpy(), rtol=1e-10)
    assert not (tmp_path / "kfold").exists() and not (tmp_path / "barlow_twins").exists()   # nothing trained
    assert "aum" not in out                                 # no training, no dynamics
    other = probs[:, ::-1].copy()
    with pytest.raises(ValueError, match="other settings"):   # other probabilities are part of the key: refused
        score_dataset(x, y, ids, config=ScoringConfig(epochs=0, bt_epochs=0, k=5), folder=tmp_path,
                      families=("pixels", "supervised"), pred_probs=other)
    again = score_dataset(x, y, ids, config=ScoringConfig(epochs=0, bt_epochs=0, k=5),
                          families=("pixels", "supervised"), pred_probs=other)
    assert not np.allclose(again["cl_label_quality"], out["cl_label_quality"])
    with pytest.raises(ValueError, match="sum to 1"):
        score_dataset(x, y, config=ScoringConfig(epochs=0, k=5), families=("pixels", "supervised"),
                      pred_probs=probs * 2)


def test_tiers_default_is_fast_and_thorough_is_the_studies_config():
    """The default tier runs the pixels, the checks, the K-fold pass and the autoencoder, nothing else; the thorough
    tier is the configuration the scoreboard and the pruning study were cached with (every field written out here,
    so a change of a default that would orphan their caches fails this test)."""
    from utils.scores.dataset import TIERS
    from utils.scores.steps import STEPS, StepInputs
    from utils.studies.scoreboard import BoardConfig

    x, y, _ = load_dataset("mnist-5k", "test")
    data, info = as_samples(x[::100][:40], y[::100][:40])
    ran = lambda config: [n for n, s in STEPS.items()  # noqa: E731
                          if s.runs(StepInputs(data, info, config), FAMILIES)]
    assert ran(ScoringConfig()) == ["pixels", "image_checks", "supervised", "suggested", "label_issues",
                                    "autoencoder"]
    assert ran(ScoringConfig.tier("thorough")) == list(STEPS)
    old_defaults = dict(arch="cnn", folds=4, epochs=5, el2n_epoch=1, ssft_epochs=3, ae_epochs=6, ae_batch_size=64,
                        ae_loss="mse", ae_ssft_epochs=3, bt_epochs=8, batch_size=128, k=10, clusters=10,
                        label_filter="prune_by_noise_rate", seed=0)
    assert ScoringConfig.tier("thorough").to_dict() == old_defaults == BoardConfig().scoring.to_dict()
    assert BoardConfig(scoring={"epochs": 2}).scoring.bt_epochs == 8      # overrides sit on the thorough tier
    assert set(TIERS) == {"default", "thorough"}
    with pytest.raises(ValueError, match="Unknown tier 'fast': choose one of default, thorough"):
        ScoringConfig.tier("fast")


def test_action_lists_refuse_a_keep_score_the_table_lacks_in_one_sentence():
    from utils.report.dataset_report import action_lists
    from utils.scores.flags import add_flags
    scores = add_flags(_planted_table())
    kept = action_lists(scores, keep_fraction=0.5, keep_score="px_knn_distance")["keep"]
    assert len(kept) == 20
    with pytest.raises(ValueError, match="--keep-score bt_knn_distance is not in this run's table"):
        action_lists(scores, keep_fraction=0.5, keep_score="bt_knn_distance")


def test_the_pixel_family_can_be_switched_off(tmp_path):
    """families without "pixels": no pixel step, no pixel columns, no near-duplicate or outlier flag (their rules
    read pixel scores), and keep.csv, the action lists and the report still follow from what was scored."""
    from utils.report.dataset_report import action_lists, write_report
    from utils.scores.flags import add_flags, clean_keep
    x, y, info = load_dataset("mnist-5k", "test")
    x, y = x[:200], y[:200]
    scores = score_dataset(x, y, info=info, config=TINY, families=("supervised",))
    assert not [c for c in scores.columns if c.startswith(("px_", "stat_"))] and "cl_label_quality" in scores
    assert "flag_near_duplicate" not in scores and "flag_outlier" not in scores and "flag_label_issue" in scores
    assert "pixels" not in scores.attrs["seconds"]
    assert clean_keep(scores).equals(~scores["flag_label_issue"].rename("clean_keep"))
    assert set(action_lists(scores)) == {"relabel", "keep"}
    page = write_report(scores, x.numpy(), tmp_path).read_text()
    assert "Label issues" in page and "Near-duplicates" not in page
    table = add_flags(_planted_table().drop(columns=["px_nn_distance", "px_nearest_id", "px_knn_distance"]))
    assert "flag_outlier" not in table and "duplicate_group" not in table and "flag_label_issue" in table
    empty = score_dataset(x, y, info=info, config=TINY, families=())
    assert list(empty.columns) == ["label", "flag_class_imbalance"] and empty.index.tolist() == list(range(200))
