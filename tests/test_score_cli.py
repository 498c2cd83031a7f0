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


def test_a_step_cached_by_older_code_is_refused_and_force_recomputes_it(folder, tmp_path, capsys):
    """A cache written before step versions existed (no version beside a step) is refused with one sentence that
    names --force; with --force the stale steps are recomputed and overwritten, and the next call loads them."""
    import json
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in sorted((folder / "two").glob("*.png"))[:40]:
        (flat / p.name).write_bytes(p.read_bytes())
    args = [str(flat), "--out", str(tmp_path / "o"), "--families", "pixels", *TINY]
    assert main(args) == 0
    spec_path = tmp_path / "o" / "cache" / "scores_pixels.json"
    spec = json.loads(spec_path.read_text())
    del spec["version"]
    spec_path.write_text(json.dumps(spec))
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "scores_pixels.parquet was computed by code that saved no version" in err and "--force" in err
    assert err.count("\n") == 1
    assert main([*args, "--force"]) == 0
    assert "version" in json.loads(spec_path.read_text())
    assert main(args) == 0


def test_issue_settings_from_the_command_line_set_the_flags(folder, tmp_path):
    """--issue ISSUE.SETTING=VALUE reaches ScoringConfig.issue_types: a looser outlier rule flags more, lists them
    in outliers.csv in the configured space only, and a setting the rule does not have is refused."""
    from utils.scores.flags import outlier_fence
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in sorted((folder / "one").glob("*.png"))[:40]:
        (flat / p.name).write_bytes(p.read_bytes())
    assert main([str(flat), "--out", str(tmp_path / "o"), "--families", "pixels", "--issue", "outlier.threshold=0.9",
                 "outlier.spaces=px_knn_distance", *TINY]) == 0
    scores = load_table(tmp_path / "o" / "scores.parquet")
    d = scores["px_knn_distance"]
    assert scores["flag_outlier"].equals(d > outlier_fence(d, 0.9)) and scores["flag_outlier"].any()
    outliers = pd.read_csv(tmp_path / "o" / "outliers.csv")
    assert list(outliers.columns) == ["sample_id", "file", "px_knn_distance"]
    assert len(outliers) == scores["flag_outlier"].sum()
    for bad in ("outlier.k=20", "outlier=3"):
        with pytest.raises(SystemExit):
            main([str(flat), "--out", str(tmp_path / "x"), "--issue", bad, "--quiet"])


def test_two_gloo_processes_give_the_scores_of_one(folder, tmp_path):
    """``torchrun --nproc-per-node 2 -m utils.score``: the families spread over the ranks, each trained as one
    process would, so the table equals the one-process table (both runs on one thread each)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [str(folder), "--families", "pixels", "supervised", "autoencoder", "self-supervised", *TINY]
    one = subprocess.run([sys.executable, "-m", "utils.score", *args, "--out", str(tmp_path / "one")],
                         cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "utils.score", *args, "--out", str(tmp_path / "two")],
                         cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = (load_table(tmp_path / d / "scores.parquet") for d in ("one", "two"))
    assert a.index.equals(b.index) and list(a.columns) == list(b.columns)
    for c in a.columns:
        if pd.api.types.is_float_dtype(a[c]):
            np.testing.assert_allclose(b[c].to_numpy(), a[c].to_numpy(), rtol=1e-5, atol=1e-6, err_msg=c)
        else:
            assert (a[c] == b[c]).all(), c
    # each step's table was written once, by rank 0, and a rerun on one process loads every step
    steps = sorted((tmp_path / "two" / "cache").glob("scores_*.parquet"))
    assert len(steps) == 8   # pixels, image checks, supervised, suggested, label issues, autoencoder, ssl, ssl labels
    written = {p: p.stat().st_mtime_ns for p in steps}
    again = subprocess.run([sys.executable, "-m", "utils.score", *args, "--out", str(tmp_path / "two")],
                           cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert load_table(tmp_path / "two" / "scores.parquet").equals(b)
    assert {p: p.stat().st_mtime_ns for p in steps} == written


def test_to_label_on_an_unlabeled_folder_writes_the_list_and_the_report_section(folder, tmp_path, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    files = sorted(p for p in folder.rglob("*.png"))[:120]
    for p in files:
        (flat / f"{p.parent.name}_{p.name}").write_bytes(p.read_bytes())
    out = tmp_path / "o"
    assert main([str(flat), "--out", str(out), "--families", "pixels", "--to-label", "10%", *TINY]) == 0
    chosen = pd.read_csv(out / "to_label.csv")
    assert len(chosen) == 12 and chosen["id"].is_unique and chosen["order"].tolist() == list(range(12))
    assert list(chosen.columns) == ["order", "id", "file", "cluster", "method", "why"]
    scores = load_table(out / "scores.parquet")
    assert (scores.loc[chosen["id"], "file"].to_numpy() == chosen["file"].to_numpy()).all()   # id and file agree
    page = (out / "report.html").read_text()
    assert "What to label: 12 images chosen by" in page and "Cluster" in page
    # the same call again reads the encoder from the cache and chooses the same images
    assert main([str(flat), "--out", str(out), "--families", "pixels", "--to-label", "12", *TINY]) == 0
    assert pd.read_csv(out / "to_label.csv")["id"].tolist() == chosen["id"].tolist()
    # a bad budget stops before any training, in one sentence
    assert main([str(flat), "--out", str(tmp_path / "bad"), "--to-label", "1000", "--quiet"]) == 2
    assert "impossible with 120 in the pool" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "cache").exists()


def test_set_values_are_parsed_by_the_configs_own_field_types(tmp_path, capsys):
    for bad, message in ((["--set", "k=2.5"], "k takes an integer"), (["--set", "nope=3"], "not a setting"),
                         (["--set", "label_filter=7"], "label_filter must be one of")):
        with pytest.raises(SystemExit):
            main([str(tmp_path), "--out", str(tmp_path / "o"), *bad])
        assert message in capsys.readouterr().err


BARS = ("\r", "it/s", "%|", "\u2588", "\x1b[")   # what a tqdm bar writes: carriage returns, rates, blocks, escapes


def test_quiet_prints_no_bar_and_stdout_holds_only_the_summary(folder, tmp_path, capfd):
    """What a user sees (capfd: every byte written to the two file descriptors counts, C libraries' too), on 24
    labeled images with CleanVision's checks and a training (SSFT): with --quiet no bar at all, CleanVision's
    included, and no training line; stdout holds only the final summary."""
    small = tmp_path / "small"
    for name in ("zero", "one"):
        (small / name).mkdir(parents=True)
        for p in sorted((folder / name).glob("*.png"))[:12]:
            (small / name / p.name).write_bytes(p.read_bytes())
    capfd.readouterr()
    assert main([str(small), "--out", str(tmp_path / "o"), "--families", "pixels", "ssft", "--set", "ssft_epochs=1",
                 "--quiet"]) == 0
    done = capfd.readouterr()
    assert re.fullmatch(r"24 samples scored in \d+ s; flagged: [^\n]*; report: [^\n]*report\.html\n", done.out), \
        done.out[-2000:]
    for stream in (done.out, done.err):
        assert not [b for b in BARS if b in stream], stream[-2000:]
    assert "Computing" not in done.err and "seed 0" not in done.err

def test_cleanvision_shows_its_bars_on_stderr_only_with_progress(capfd):
    """What the quiet test looks for is there without it: CleanVision's tqdm bars, on stderr, with progress=True
    (its API cannot turn them off; image_checks does), and nothing on stdout either way."""
    from utils.scores.image_checks import image_checks
    x, _, _ = load_dataset("mnist-5k", "test")
    image_checks(x[:20], progress=True)
    loud = capfd.readouterr()
    assert "Computing scores" in loud.err and "\r" in loud.err and loud.out == ""
    image_checks(x[:20])
    quiet = capfd.readouterr()
    assert quiet.out == "" and not [b for b in BARS if b in quiet.err] and "Computing" not in quiet.err


def test_help_is_written_for_users(capsys):
    """--help says what the tool does, shows examples and the files it writes, groups the options, and carries none
    of the module docstring's developer wording (reST roles, double back-quotes, class and module names)."""
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m utils.score ")
    assert "Find the images of a dataset worth a second look" in out
    assert "python -m utils.score path/to/images --out results/my-report\n" in out            # an example
    files = re.findall(r"^  (\S+)\s{2,}\S", out[out.index("writes into --out:"):], flags=re.M)
    assert files == ["report.html", "relabel.csv", "duplicates.csv", "outliers.csv", "keep.csv", "scores.parquet",
                     "to_label.csv", "figure_*.png", "cache/"]
    groups = re.findall(r"^(\w[\w ]*):\n", out, flags=re.M)
    assert groups[:5] == ["options", "input", "output", "what to compute", "flags and lists"]
    section = {g: out[out.index(f"\n{g}:\n"):] for g in groups[1:5]}
    assert section["output"].index("--quiet") < section["output"].index("what to compute:")
    assert section["what to compute"].index("--set") < section["what to compute"].index("flags and lists:")
    assert "epochs=5" in out and "outlier.threshold=" in out                                 # settings, defaults
    for developer in (":func:", ":mod:", ":data:", "``", "entry point", "every layer", "ScoringConfig",
                      "issue_types", "utils.scores", "utils.data", "load_dataset"):
        assert developer not in out, developer


def test_tier_picks_what_is_trained(tmp_path, monkeypatch):
    """The default tier trains no SSFT and no self-supervised encoder; --tier thorough trains every family; --set
    applies on top of the tier; an unknown tier is refused by argparse."""
    import utils.scores.dataset as dataset

    seen = []

    def capture(*args, config=None, **kw):
        seen.append(config)
        raise ValueError("stop here")

    monkeypatch.setattr(dataset, "score_dataset", capture)
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(flat / "a.png")
    assert main([str(flat), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert main([str(flat), "--out", str(tmp_path / "o"), "--quiet", "--tier", "thorough", "--set", "bt_epochs=2"]) == 2
    default, thorough = seen
    assert (default.ssft_epochs, default.ae_ssft_epochs, default.bt_epochs) == (0, 0, 0) and default.epochs == 5
    assert (thorough.ssft_epochs, thorough.ae_ssft_epochs, thorough.bt_epochs) == (3, 3, 2)
    with pytest.raises(SystemExit):
        main([str(flat), "--out", str(tmp_path / "o"), "--tier", "fast"])


def _error(capsys):
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "Traceback" not in err and err.endswith(".")
    return err.split("error: ", 1)[1]


def test_a_bad_labels_csv_is_named_in_one_sentence(tmp_path, capsys):
    """The bugs this replaces: a labels CSV with a repeated row, an empty one, a missing one or one that is not a
    CSV stopped with pandas' or the OS's message, without naming the file."""
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(20):
        Image.fromarray(np.full((8, 8), i * 10, np.uint8)).save(flat / f"{i:02d}.png")
    rows = "".join(f"{i:02d}.png,{'ab'[i % 2]}\n" for i in range(20))
    csv, out = tmp_path / "labels.csv", ["--out", str(tmp_path / "o"), "--families", "pixels", "--quiet"]
    cases = {"file,label\n" + rows + "00.png,b\n": "gives 1 files two or more labels (e.g. '00.png')",
             "": "is empty", bytes(range(256)) * 4: "as a CSV"}
    for text, what in cases.items():
        csv.write_bytes(text if isinstance(text, bytes) else text.encode())
        assert main([str(flat), "--labels", str(csv), *out]) == 2
        err = _error(capsys)
        assert str(csv) in err and what in err, err
    assert main([str(flat), "--labels", str(tmp_path / "nope.csv"), *out]) == 2
    assert _error(capsys).startswith(f"{tmp_path / 'nope.csv'} does not exist")
    csv.write_text("file,label\n" + rows + "00.png,a\n")                  # the same row twice: counted once
    assert main([str(flat), "--labels", str(csv), *out]) == 0
    assert load_table(tmp_path / "o" / "scores.parquet")["class_name"].tolist() == ["ab"[i % 2] for i in range(20)]


def test_keep_and_to_label_arguments_are_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """The bugs this replaces: --keep-score naming an unknown score (or a family not run) stopped only after the
    whole run, with a KeyError for the latter; --to-label 200% chose 2 images and 100% chose 1."""
    import utils.scores.dataset as dataset
    from utils.scores.labeling import budget_count

    monkeypatch.setattr(dataset, "score_dataset", lambda *a, **k: pytest.fail("scored before the refusal"))
    args = ["mnist-5k:test", "--out", str(tmp_path / "o"), "--families", "pixels", "--quiet"]
    for keep, what in ((["--keep-fraction", "0.5", "--keep-score", "px_knn_distanc"], "did you mean px_knn_distance"),
                       (["--keep-fraction", "0.5", "--keep-score", "el2n"], "comes from the supervised family"),
                       (["--keep-fraction", "1.5", "--keep-score", "px_knn_distance"], "--keep-fraction: fraction"),
                       (["--keep-fraction", "0.5"], "go together")):
        with pytest.raises(SystemExit):
            main(args + keep)
        assert what in capsys.readouterr().err
    assert main(args + ["--to-label", "200%"]) == 2
    assert "a budget percentage must lie in (0, 100]" in _error(capsys)
    assert budget_count("100%", 40) == 40 and budget_count("5%", 1000) == 50
