"""Every notebook (ssl-ae, ssft, scoreboard, pruning) runs top to bottom in quick mode through the headless runner,
and the README sections build from what they wrote. Marked ``notebooks`` (minutes): ``make test-fast`` skips them."""
import json

import numpy as np
import pandas as pd
import pytest

from utils.report import run_notebooks
from utils.report import sections as report
from utils.studies import outputs


@pytest.mark.notebooks
def test_all_notebooks_run_in_quick_mode(tmp_path, capsys):
    args = ["--mode", "quick", "--study", "seed", "--epochs", "3", "--ssft-epochs", "1", "--out", str(tmp_path),
            "--quiet"]
    assert run_notebooks.main(args) == 0
    printed = capsys.readouterr().out
    assert "seed mixing" in printed and "matched mixing" in printed and "auroc" in printed
    assert "SSFT mislabeled detection" in printed
    for name in run_notebooks.SSL_AE + run_notebooks.SSFT:
        nb = json.loads((tmp_path / outputs.NOTEBOOKS_DIR / f"{name}.ipynb").read_text())
        cell_outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
        assert not [o for o in cell_outputs if o["output_type"] == "error"], name
    for mode in ("seed", "matched"):
        table = pd.read_csv(tmp_path / outputs.score_table(mode), index_col=0)
        # the seed's scores and the one image battery (its new columns too), each in its better orientation
        assert {"loss__last", "H__mean_from_0", "LID__mean_from_10", "image__total_variation",
                "image__components_4"} <= set(table.index)
    seed = pd.read_csv(tmp_path / outputs.score_table("seed"), index_col=0)
    assert seed.loc["image__min", "auroc"] == 1.0    # seed mixing's darker background gives it away
    # seed mixing carries the intensity confound, matched mixing does not
    sep = pd.read_csv(tmp_path / outputs.SEPARABILITY, index_col=0, header=[0, 1])
    assert sep.loc["min", ("seed", "auroc")] > 0.99
    assert sep.loc[["mean", "std", "min", "max", "ink_fraction"], ("matched", "auroc")].max() <= 0.55
    assert (tmp_path / outputs.IMAGES_DIR / outputs.fig_score_bars("matched")).is_file()
    _ssft_checks(tmp_path)  # the same run: training SSFT twice would double the test time
    # the README sections build from the same outputs
    images = tmp_path / outputs.IMAGES_DIR
    results = report.results_markdown(tmp_path, images=images, readme_dir=tmp_path)
    assert f"images/{outputs.fig_score_bars('matched')}" in results and "seed study abs_srcc" in results
    ssft = report.ssft_markdown(tmp_path, images=images, readme_dir=tmp_path)
    assert all(name in ssft for name in ("cnn_noise0.1", "autoencoder_seed", "barlow_twins_matched"))
    assert "Autoencoder SSFT vs the mixed images" in ssft and "BarlowTwins SSFT vs the mixed images" in ssft
    # `python -m utils.report` writes the two studies' sections and headlines from these caches (in a copy)
    import shutil

    from utils.report.__main__ import regenerate
    from utils.report.run_notebooks import ROOT
    for f in ("README.md", "ssl-ae/README.md", "ssft/README.md"):
        (tmp_path / "repo" / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / f, tmp_path / "repo" / f)
    written = regenerate(tmp_path / "repo", full=tmp_path, only=("seed",), log=lambda line: None)
    assert written == ["ssl-ae/README.md:results", "README.md:headline-ssl-ae", "ssft/README.md:ssft",
                       "README.md:headline-ssft"]
    top = (tmp_path / "repo" / "README.md").read_text()
    assert "loss__mean_from_50" in top and "cnn 0.1" in top


def _ssft_checks(out):
    # every sample of MNIST-5k train scored exactly once, keyed by its id, with the flipped flag aligned
    from utils.engine.cache import load_table
    scores = load_table(out / outputs.ssft_supervised_scores("cnn", 0.1))
    assert scores.index.is_unique and sorted(scores.index) == list(range(4000))
    assert scores["is_flipped"].sum() == 400 and (scores["n_seeds"] == 3).all()
    detection = pd.read_csv(out / outputs.SSFT_DETECTION, index_col=[0, 1])
    # even one epoch per stage separates 10 % flipped labels: forgotten at once in stage 2
    assert detection.loc[("cnn 0.1", "forgetting_time"), "auroc"] > 0.9
    assert set(detection.index.get_level_values(0)) == {"cnn 0.1", "cnn 0.001", "lenet 0.1"}
    ae = pd.read_csv(out / outputs.ssft_unsupervised_detection("autoencoder"), index_col=[0, 1])
    assert {"seed ssim>0.5", "matched ssim>0.5", "seed ssim>0.15"} <= set(ae.index.get_level_values(0))
    bt = pd.read_csv(out / outputs.ssft_unsupervised_detection("barlow_twins"), index_col=[0, 1])
    assert {"matched self_corr", "matched cross_corr"} <= set(bt.index.get_level_values(0))
    for table in (ae, bt):   # every SSFT column in the registry's orientation, the areas flipped for a "lower" rule
        assert set(table.index.get_level_values(1)) == {"forgetting_time", "learning_time", "forgetting_events",
                                                        "second_split_area", "first_split_area"}
    assert bt.loc[("matched cross_corr", "second_split_area"), "direction"] == "higher"
    assert ae.loc[("seed ssim>0.5", "second_split_area"), "direction"] == "lower"
    # one notebook, run once per task: each wrote its own best-vs-baseline table, scores and figures
    for task in ("autoencoder", "barlow_twins"):
        assert (out / outputs.ssft_unsupervised_best(task)).is_file()
    assert (out / outputs.ssft_unsupervised_scores("autoencoder", "seed", "ssim0.15")).is_file()
    assert (out / outputs.ssft_unsupervised_scores("barlow_twins", "matched", "cross_corr")).is_file()
    assert (out / outputs.IMAGES_DIR / outputs.fig_ssft_unsupervised_times("autoencoder", "matched", "ssim0.5")).is_file()
    assert (out / outputs.IMAGES_DIR / outputs.fig_ssft_first_last("barlow_twins", "seed")).is_file()
    corr = pd.read_csv(out / outputs.SSFT_CORRELATIONS, index_col=0)
    # constant scores (e.g. the background pixel) have no rank correlation: NaN, not a number made up
    finite = corr["max_abs"].dropna()
    assert np.isfinite(corr.loc["loss__last", "max_abs"]) and len(finite) > 10
    assert (corr["max_abs"] == corr[["learning_fraction", "forgetting_fraction"]].abs().max(
        axis=1)).loc[finite.index].all()
    # a known answer: loss__last's signed SRCC with the learning fraction, recomputed another way (Pearson of the
    # average ranks) on the samples both studies keep: the autoencoder's unmixed ones whose label SSFT did not flip
    data = load_table(out / "seed" / outputs.MIXED_DATASET)
    times = load_table(out / outputs.ssft_supervised_scores("cnn", 0.001))
    ae_loss = load_table(out / "seed" / f"{outputs.SCORES}.parquet")["loss__last"]
    ids = data.index[~data["is_mixed"].astype(bool)].intersection(times.index[~times["is_flipped"].astype(bool)])
    ranks = pd.DataFrame({"a": ae_loss.loc[ids], "b": times.loc[ids, "learning_fraction"]}).rank()
    assert corr.loc["loss__last", "learning_fraction"] == pytest.approx(np.corrcoef(ranks["a"], ranks["b"])[0, 1],
                                                                        abs=1e-9)


def _no_errors(path):
    nb = json.loads(path.read_text())
    cell_outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in cell_outputs if o["output_type"] == "error"], path.name


@pytest.mark.notebooks
def test_scoreboard_and_pruning_notebooks_run_in_quick_mode(tmp_path, capsys):
    from utils.data.inject import HARDNESS_TYPES
    from utils.report.__main__ import regenerate
    args = ["--mode", "quick", "--out", str(tmp_path), "--quiet"]
    assert run_notebooks.main([*args, "--study", "scoreboard"]) == 0
    assert run_notebooks.main([*args, "--study", "pruning"]) == 0
    printed = capsys.readouterr().out
    assert "Scoreboard: best score per hardness type" in printed and "Pruning: smallest kept fraction" in printed
    for name in (run_notebooks.SCOREBOARD, run_notebooks.PRUNING):
        _no_errors(tmp_path / outputs.NOTEBOOKS_DIR / f"{name}.ipynb")
    board = tmp_path / outputs.SCOREBOARD_DIR
    table = pd.read_csv(board / outputs.SCOREBOARD_TABLE)
    from utils.studies.scoreboard import ood_available
    types = set(HARDNESS_TYPES) - (set() if ood_available("mnist-5k") else {"far_ood"})   # far-OOD needs Fashion
    assert set(table["type"]) == types | {"claim"}
    assert (table["positives"] > 0).all()
    rand = table[table["score"] == "random"]        # the seeded uniform baseline sits near chance on every target
    assert len(rand) == table.groupby(["type", "target"]).ngroups and rand["auroc"].between(0.1, 0.9).all()
    # copies near-duplicated in pixels are found by the pixel nearest-neighbour distance
    dup = table[(table["type"] == "near_duplicates") & (table["score"] == "px_nn_distance")]
    assert dup["auroc"].iloc[0] > 0.9
    flags = pd.read_csv(board / outputs.SCOREBOARD_FLAGS)     # every flag measured on every copy
    from utils.studies.scoreboard import FLAG_TARGETS
    assert set(flags["flag"]) == set(FLAG_TARGETS) and {"flag_label_issue", "flag_outlier"} <= set(FLAG_TARGETS)
    dups = flags[(flags["type"] == "near_duplicates") & (flags["flag"] == "flag_near_duplicate")].iloc[0]
    assert dups["recall"] > 0.9 and dups["precision"] > 0.9
    best = pd.read_csv(board / outputs.SCOREBOARD_BEST)
    assert set(best["type"]) == types
    assert (tmp_path / outputs.IMAGES_DIR / outputs.fig_scoreboard("mnist-5k")).is_file()
    md = report.scoreboard_markdown(board, tmp_path / outputs.IMAGES_DIR, tmp_path)
    assert "Best score per hardness type" in md and "Goal on mnist-5k" in md and "uniform_noise_vs_atypical" in md
    assert "Measured wall time of the scoreboard from scratch" in md   # quick mode scores every copy fresh
    prune = tmp_path / outputs.PRUNING_DIR
    runs = pd.read_csv(prune / outputs.PRUNING_TABLE)
    assert set(runs["noise_kind"]) == {"none", "class_noise"} and set(runs["budget"]) == {"steps", "epochs"}
    head = runs[(runs["noise_kind"] == "none") & (runs["budget"] == "steps")]
    full = head.loc[head["policy"] == "full", "test_acc"].iloc[0]
    assert full > 0.6
    assert {"random", "rs2", "full", "clean", "el2n", "prototype", "redundancy"} <= set(head["score"])
    # fixed iterations: every retrain takes the full run's optimizer steps; fixed epochs: fewer on a subset
    assert head["steps"].nunique() == 1
    epochs = runs[(runs["noise_kind"] == "none") & (runs["budget"] == "epochs")]
    assert epochs.loc[epochs["policy"] == "random", "steps"].iloc[0] < epochs.loc[epochs["policy"] == "full",
                                                                                  "steps"].iloc[0]
    noisy = runs[runs["noise_kind"] == "class_noise"]
    assert set(noisy["policy"]) == {"full", "subset"} and (noisy["budget"] == "steps").all()
    within = pd.read_csv(prune / outputs.PRUNING_WITHIN)
    assert within.loc[within["score"] == "prototype", "label_free"].all()
    assert not within.loc[within["score"].isin(["el2n", "clean"]), "label_free"].any()
    assert {"beats_random", "beats_rs2"} <= set(within.columns)
    paired = pd.read_csv(prune / outputs.PRUNING_PAIRED)
    assert set(paired["baseline"]) == {"random"} and "rs2" in set(paired["score"])
    goals = pd.read_csv(prune / outputs.PRUNING_GOALS)
    assert len(goals) == 3 and goals["detail"].notna().all()   # the 10 % goal: not measured in quick mode
    for budget in ("steps", "epochs"):
        assert (tmp_path / outputs.IMAGES_DIR / outputs.fig_pruning("mnist-5k", budget)).is_file()
    assert (tmp_path / outputs.IMAGES_DIR / outputs.fig_pruning_noise("mnist-5k")).is_file()
    md = report.pruning_markdown(prune, tmp_path / outputs.IMAGES_DIR, tmp_path)
    assert "Smallest kept fraction" in md and "Under label noise" in md and "Compute, summed" in md
    assert "paired by seed" in md and "**Goals**" in md
    # `python -m utils.report` writes every section and headline from these caches, in a copy of the READMEs
    import shutil

    from utils.report.run_notebooks import ROOT
    for f in ("README.md", "scoreboard/README.md", "pruning/README.md", "docs/scores.md"):
        (tmp_path / "repo" / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / f, tmp_path / "repo" / f)
    written = regenerate(tmp_path / "repo", board=board, prune=prune, only=("scoreboard", "pruning", "registry"),
                         log=lambda line: None)
    assert written == ["scoreboard/README.md:scoreboard", "README.md:headline-scoreboard",
                       "pruning/README.md:pruning", "README.md:headline-pruning", "docs/scores.md:registry"]
    top = (tmp_path / "repo" / "README.md").read_text()
    assert "| mnist-5k" in top and "full-data test accuracy" in top and "rs2" in top
    assert "Fixed iterations" in top and "clean recovers" in top


def test_a_relative_data_root_is_made_absolute_from_where_the_command_runs(tmp_path, monkeypatch):
    """`DATA_ROOT=../shared/data make scoreboard`: the notebooks and the scoreboard's workers run in other folders."""
    monkeypatch.chdir(tmp_path)
    env = {"DATA_ROOT": "../shared/data"}
    run_notebooks.absolute_data_root(env)
    assert env["DATA_ROOT"] == str(tmp_path.parent / "shared" / "data")
    empty = {}
    run_notebooks.absolute_data_root(empty)     # unset stays unset (the loaders' default applies)
    assert empty == {}


@pytest.mark.notebooks
def test_score_your_data_notebook_runs_in_quick_mode(tmp_path):
    from utils.engine.cache import load_table
    assert run_notebooks.main(["--mode", "quick", "--study", "scoring", "--out", str(tmp_path), "--quiet"]) == 0
    _no_errors(tmp_path / outputs.NOTEBOOKS_DIR / f"{run_notebooks.SCORING}.ipynb")
    out = tmp_path / outputs.SCORING_DIR
    scores = load_table(out / "scores.parquet")
    assert len(scores) == 300 and {"flag_label_issue", "duplicate_group", "cl_predicted_label"} <= set(scores.columns)
    for name in ("relabel.csv", "duplicates.csv", "outliers.csv", "keep.csv", "report.html"):
        assert (out / name).is_file(), name


@pytest.mark.notebooks
def test_choose_what_to_label_notebook_runs_in_quick_mode(tmp_path):
    from utils.report.__main__ import regenerate

    assert run_notebooks.main(["--mode", "quick", "--study", "labeling", "--out", str(tmp_path), "--quiet"]) == 0
    _no_errors(tmp_path / outputs.NOTEBOOKS_DIR / f"{run_notebooks.LABELING}.ipynb")
    res = tmp_path / outputs.LABELING_DIR
    table = pd.read_csv(res / outputs.LABELING_TABLE)
    quick = run_notebooks.LABELING_QUICK
    expected = len(quick["SEEDS"]) * (1 + sum(len(b) for b in quick["PLAN"].values()))
    assert len(table) == expected and (table["steps"] == quick["STEPS"]).all()   # one protocol for every budget
    assert set(table["kept"][table["method"] != "full"]) == {20, 100}
    goals = pd.read_csv(res / outputs.LABELING_GOALS)
    assert "select_to_label never below random by more than 0.1 pt" in set(goals["goal"])
    assert (tmp_path / outputs.IMAGES_DIR / outputs.fig_labeling("mnist-5k")).is_file()
    md = report.labeling_markdown(res, tmp_path / outputs.IMAGES_DIR, tmp_path)
    assert "Paired difference to random" in md and "typiclust" in md
    (tmp_path / "repo" / "labeling").mkdir(parents=True)
    for f in ("README.md", "labeling/README.md"):
        (tmp_path / "repo" / f).write_text("x\n<!-- labeling:start -->\n<!-- labeling:end -->\n"
                                           "<!-- headline-labeling:start -->\n<!-- headline-labeling:end -->\n")
    assert set(regenerate(tmp_path / "repo", label=res, only=("labeling",))) == {
        "labeling/README.md:labeling", "README.md:headline-labeling"}
