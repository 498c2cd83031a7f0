"""utils.report.sections reads a study's files only through the study's ``load``; what the loads find, by hand."""
import ast
import json
from pathlib import Path

import pandas as pd

from utils.report import sections
from utils.studies import outputs, pruning, scoreboard, ssft

ROOT = Path(__file__).resolve().parents[1]
# the README a section goes into, and labeling/probe_features.py's own outputs (a script's, not a study module's)
NOT_A_STUDY = {"replace_section", "label_probe_markdown"}


def test_sections_read_no_file_of_a_study_themselves():
    tree = ast.parse((ROOT / "utils" / "report" / "sections.py").read_text())
    reads = {"read_csv", "read_text", "glob", "rglob", "read_parquet", "load_table"}
    found = [(f.name, node.func.attr) for f in tree.body if isinstance(f, ast.FunctionDef) and f.name not in NOT_A_STUDY
             for node in ast.walk(f) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and node.func.attr in reads]
    assert found == []


def _wall(folder: Path, rows):
    folder.mkdir(parents=True)
    pd.DataFrame(rows, columns=["scored", "copies", "wall_seconds", "workers", "threads"]).to_csv(
        folder / scoreboard.WALL_LOG, index=False)


def test_scoreboard_wall_time_from_the_logs_by_hand(tmp_path):
    table = pd.DataFrame({"dataset": ["b", "a"], "type": "atypical", "target": "atypical", "seed": 0,
                          "family": "pixels", "score": "px_knn_distance", "auroc": 0.5, "ap": 0.1,
                          "prevalence": 0.1, "seconds": 60.0})
    for name in (outputs.SCOREBOARD_TABLE, outputs.SCOREBOARD_SUMMARY, outputs.SCOREBOARD_BEST):
        table.to_csv(tmp_path / name, index=False)
    _wall(tmp_path / "a", [(6, 6, 600.0, 2, 1), (1, 6, 60.0, 2, 1)])   # the last full call counts: 10 min
    board = scoreboard.load(tmp_path)
    assert board["walls"] is None and board["claim"] is None and board["flags"] is None   # b has no log yet
    assert sections._board_wall(board["walls"]) == ""
    _wall(tmp_path / "b", [(2, 6, 300.0, 1, 2), (4, 6, 360.0, 1, 2)])   # resumed: 5 + 6 min
    walls = scoreboard.load(tmp_path)["walls"]
    assert list(walls) == ["a", "b"]
    assert sections._board_wall(walls) == (
        " Measured wall time of the scoreboard partly resumed (one process of 2 threads, encoder pretraining "
        "included): a 10.0 min, b 11.0 min (resumed over 2 calls); in all **21.0 min**.")


def test_pruning_load_sums_the_cached_compute_by_hand(tmp_path):
    for name in (outputs.PRUNING_TABLE, outputs.PRUNING_SUMMARY, outputs.PRUNING_WITHIN, outputs.PRUNING_PAIRED,
                 outputs.PRUNING_GOALS):
        pd.DataFrame({"x": [1]}).to_csv(tmp_path / name, index=False)
    loaded = pruning.load(tmp_path)
    assert (loaded["run"], loaded["settings"], loaded["scoring_seconds"], loaded["pretrain_seconds"]) == ({}, {}, 0, 0)
    for noise, seconds in (("noise0", (30.0, 90.0)), ("uniform0.1", (60.0,))):
        scores = tmp_path / noise / pruning.SCORES_DIR
        scores.mkdir(parents=True)
        for i, s in enumerate(seconds):
            (scores / f"scores_step{i}.json").write_text(json.dumps({"seconds": s}))
    run = tmp_path / "noise0" / "steps" / "full" / "full" / "f1" / "seed0"
    run.mkdir(parents=True)
    (run / f"{pruning.RESULT}.json").write_text(json.dumps({"settings": {"task": {"name": "cnn"}}}))
    (tmp_path / pruning.ENCODER_DIR).mkdir()
    pd.DataFrame({"seconds": [100.0, 50.0]}).to_csv(tmp_path / pruning.ENCODER_DIR / "history.csv", index=False)
    loaded = pruning.load(tmp_path)
    assert loaded["settings"] == {"task": {"name": "cnn"}}
    assert (loaded["scoring_seconds"], loaded["pretrain_seconds"]) == (180.0, 150.0)


def test_ssft_load_names_the_quadrant_columns_and_skips_unfinished_studies(tmp_path):
    counts = pd.DataFrame({"count": [3, 4]}, index=pd.MultiIndex.from_tuples([("cnn_noise0.1", "a"),
                                                                               ("cnn_noise0.1", "b")]))
    counts.to_csv(tmp_path / outputs.SSFT_QUADRANTS)
    (ssft.study_folder(tmp_path, "cnn_noise0.1")).mkdir(parents=True)   # no settings, no runs: not a row
    t = ssft.load(tmp_path)
    assert t["quadrants"].columns.tolist() == ["study", "quadrant", "count"]
    assert t["quadrants"]["quadrant"].tolist() == ["a", "b"]
    assert t["runs"].empty and t["detection"] is None
    assert list(t["unsupervised_best"]) == list(ssft.UNSUPERVISED)
