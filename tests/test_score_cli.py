"""`python -m utils.score PATH --out DIR`: the table, the action lists and the report, from an image folder."""
import base64
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from utils.data.datasets import load_dataset
from utils.engine.cache import load_table
from utils.score import main

TINY = ["--set", "folds=2", "epochs=2", "el2n_epoch=1", "ssft_epochs=0", "ae_epochs=1", "ae_ssft_epochs=0",
        "bt_epochs=1", "--quiet"]
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """160 MNIST-5k digits in class folders named by the digit, one exact copy and one all-black image."""
    root = tmp_path_factory.mktemp("imgs")
    x, y, _ = load_dataset("mnist-5k", "test")
    for i in range(0, 1000, 6):
        d = root / NAMES[int(y[i])]
        d.mkdir(exist_ok=True)
        Image.fromarray((x[i, 0].numpy() * 255).astype(np.uint8)).save(d / f"{i:04d}.png")
    (root / "three" / "copy.png").write_bytes((root / NAMES[int(y[0])] / "0000.png").read_bytes())
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(root / "zero" / "black.png")
    return root


def test_a_labeled_folder_gives_the_table_the_lists_and_the_report(folder, tmp_path):
    assert main([str(folder), "--out", str(tmp_path), "--families", "pixels", "supervised", "self-supervised",
                 *TINY]) == 0
    scores = load_table(tmp_path / "scores.parquet")
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.png"))
    assert scores["file"].tolist() == files and len(scores) == 169
    assert scores["class_name"].tolist() == [f.split("/")[0] for f in files]    # every row names file and class
    # the copy and its source form one duplicate group, of which keep.csv keeps one
    dups = pd.read_csv(tmp_path / "duplicates.csv")
    group = dups[dups["file"].isin(["three/copy.png", "zero/0000.png"])]
    assert len(group) == 2 and group["duplicate_group"].nunique() == 1 and group["keep"].sum() == 1
    keep = pd.read_csv(tmp_path / "keep.csv")
    dropped = set(scores.index) - set(keep["sample_id"])
    flagged = scores["flag_label_issue"] | scores["flag_outlier"]
    assert set(scores.index[flagged]) <= dropped and len(dropped) == flagged.sum() + (~flagged[group["sample_id"]
                                                                                      [~group["keep"]]]).sum()
    relabel = pd.read_csv(tmp_path / "relabel.csv")
    assert len(relabel) == scores["flag_label_issue"].sum()
    assert set(relabel["given_name"]) <= set(NAMES) and relabel["label_quality"].is_monotonic_increasing
    assert (relabel["suggested"] == scores.loc[relabel["sample_id"], "cl_predicted_label"].to_numpy()).all()
    page = (tmp_path / "report.html").read_text()
    assert "Label issues" in page and "Near-duplicates" in page and "relabel.csv" in page
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) >= 5 and all(base64.b64decode(b)[:4] == b"\x89PNG" for b in images)


def test_an_unlabeled_folder_and_bad_input_say_what_happened(folder, tmp_path, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in sorted((folder / "one").glob("*.png"))[:40]:
        (flat / p.name).write_bytes(p.read_bytes())
    assert main([str(flat), "--out", str(tmp_path / "o"), "--families", "pixels", *TINY]) == 0
    scores = load_table(tmp_path / "o" / "scores.parquet")
    assert "label" not in scores and not (tmp_path / "o" / "relabel.csv").exists()
    assert main(["no-such-folder", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "is neither a folder nor a known dataset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(flat), "--out", str(tmp_path / "x"), "--set", "k=2.5"])
