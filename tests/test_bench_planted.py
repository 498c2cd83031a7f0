"""benchmarks/bench_planted.py: the planted folder holds exactly what it says, and the comparison counts right."""
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmarks import bench_planted as bp
from utils.data.datasets import load_dataset

SMALL = {"wrong_label": 5, "exact_copy": 3, "near_copy": 2, "blank": 2, "foreign": 2, "blurred": 2, "odd_size": 1}


def _fashion_available():
    try:
        load_dataset("fashion-mnist", "test")
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _fashion_available(), reason="Fashion-MNIST is not installed")
def test_the_planted_folder_holds_what_the_truth_says(tmp_path):
    truth = bp.build_folder(tmp_path, n=60, seed=1, planted=SMALL)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.png"))
    assert truth["file"].tolist() == files and len(files) == 60 + sum(SMALL.values()) - SMALL["wrong_label"]
    counts = truth["planted"].value_counts()
    assert all(counts[k] == v for k, v in SMALL.items())
    for r in truth[truth["planted"] == "exact_copy"].itertuples():
        assert (tmp_path / r.file).read_bytes() == (tmp_path / r.source).read_bytes()
    wrong = truth[truth["planted"] == "wrong_label"]
    assert (wrong["file"].str.split("/").str[0] != [bp.CLASSES[t] for t in wrong["true"]]).all()
    sizes = {r.planted: Image.open(tmp_path / r.file).size for r in truth.itertuples()}
    assert sizes["odd_size"] == (32, 32) and sizes["clean"] == (28, 28)
    blanks = [np.asarray(Image.open(tmp_path / f)) for f in truth.loc[truth["planted"] == "blank", "file"]]
    assert all(b.min() == b.max() for b in blanks)


def test_compare_counts_flags_and_copies():
    truth = pd.DataFrame({"file": list("abcdef"), "planted": ["clean", "wrong_label", "exact_copy", "clean", "foreign",
                                                              "clean"], "source": ["", "", "a", "", "", ""]})
    ours = pd.DataFrame({"file": list("abcdef"), "flag_label_issue": [False, True, False, True, False, False],
                         "cl_label_quality": [0.9, 0.1, 0.8, 0.5, 0.7, 0.6],
                         "flag_near_duplicate": [True, False, True, False, False, False],
                         "flag_outlier": [False] * 6, "px_knn_distance": [1, 1, 1, 1, 9, 1.0]})
    theirs = pd.DataFrame({"file": list("abcdef"), "is_label_issue": [False] * 6})
    t = bp.compare(truth, ours, theirs).set_index(["planted", "tool"])
    assert t.loc[("wrong_label", "ours"), "precision"] == 0.5 and t.loc[("wrong_label", "ours"), "recall"] == 1
    assert t.loc[("wrong_label", "ours"), "auroc"] == 1.0
    assert t.loc[("duplicates", "ours"), "recall"] == 1.0 and t.loc[("duplicates", "ours"), "n"] == 2  # copy + source
    assert t.loc[("foreign", "ours"), "recall"] == 0 and t.loc[("foreign", "ours"), "auroc"] == 1.0
    assert t.loc[("wrong_label", "peer"), "flagged"] == 0


def test_keep_quality_counts_justified_drops_and_one_member_per_pair():
    truth = pd.DataFrame({"file": list("abcdefg"),
                          "planted": ["clean", "wrong_label", "exact_copy", "clean", "foreign", "blank", "clean"],
                          "source": ["", "", "a", "", "", "", ""]})
    # drops: b (wrong label), a (the source of the kept copy c: justified), d (clean: not justified); keeps the
    # blank f (missed) and the foreign e (listed, not dropped)
    keep = pd.DataFrame({"file": ["c", "e", "f", "g"]})
    q = bp.keep_quality(truth, keep)
    assert q["dropped"] == 3 and q["clean_dropped"] == 1 and q["foreign_dropped"] == 0
    assert q["precision"] == pytest.approx(2 / 3)
    assert q["recall"] == pytest.approx(2 / 3)   # wrong label and the pair found, the blank missed
    assert bp.keep_quality(truth, pd.DataFrame({"file": list("abcdefg")}))["recall"] == 0


def test_the_planted_section_states_the_ratio_to_the_peer_and_every_tool():
    from utils.report.sections import planted_markdown

    rows = [dict(planted="wrong_label", tool=t, n=90, flagged=f, precision=p, recall=r, auroc=a)
            for t, f, p, r, a in (("ours", 100, 0.8, 0.9, 0.99), ("peer", 120, 0.7, 0.9, 0.95),
                                  ("ours_thorough", 99, 0.81, 0.9, 0.991))]
    bench = dict(n=3000, seed=0, cores=2, planted={"wrong_label": 90},
                 runs={"ours": dict(wall_s=30.0, cpu_s=40.0), "peer": dict(wall_s=20.0, cpu_s=30.0),
                       "ours_thorough": dict(wall_s=60.0, cpu_s=100.0)}, table=rows,
                 keep={"ours": dict(dropped=10, precision=0.9, recall=0.8, clean_dropped=1, foreign_dropped=0)},
                 steps={"ours": {"pixels": 3.04, "supervised": 11.0},
                        "ours_thorough": {"pixels": 3.0, "supervised": 11.2, "ssft": 6.4}})
    md = planted_markdown(bench)
    assert re.search(r"ours \(default tier\)\s*\|\s*30\s*\|\s*40\s*\|\s*1\.5\s*\|", md)   # 30 s / 20 s
    assert re.search(r"wrong_label\s*\|\s*90\s*\|\s*ours \(thorough\)\s*\|\s*99\s*\|\s*0\.81\s*\|\s*0\.9\s*\|\s*0\.991", md)
    assert re.search(r"wrong_label\s*\|\s*90\s*\|\s*peer\s*\|\s*120\s*\|\s*0\.7\s*\|", md)
    assert re.search(r"\| ssft\s*\| -\s*\|\s*6\.4 \|", md) and re.search(r"\| pixels\s*\|\s*3\.0\s*\|\s*3\s*\|", md)
    assert "`keep.csv` against the planted problems" in md and "ours (default tier)" in md.split("`keep.csv`")[1]


def test_the_outlier_section_lists_every_rule_and_the_peer():
    from utils.report.sections import outlier_markdown

    rows = [dict(case="planted", rule=r, n=100, positives=8, flagged=f, precision=p, recall=q)
            for r, f, p, q in (("declared", 20, 0.4, 1.0), ("datalab fence in every space", 50, 0.16, 1.0),
                               ("peer (Datalab, PCA-50)", 30, 0.1, 0.375))]
    md = outlier_markdown({"rows": rows, "rules": {"declared": {}, "datalab fence in every space":
                                                   {"cos_threshold": 0.37037}}, "cores": 2})
    assert "`declared`: the declared settings; `datalab fence in every space`: cos_threshold=0.37037" in md
    assert re.search(r"planted\s*\|\s*peer \(Datalab, PCA-50\)\s*\|\s*8\s*\|\s*30\s*\|\s*0\.1\s*\|\s*0\.375", md)
