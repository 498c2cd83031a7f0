"""Every notebook (ssl-ae and ssft) runs top to bottom in quick mode through the headless runner."""
import json

import numpy as np
import pandas as pd

from utils import run_notebooks


def test_all_notebooks_run_in_quick_mode(tmp_path, capsys):
    args = ["--mode", "quick", "--epochs", "3", "--ssft-epochs", "1", "--out", str(tmp_path), "--quiet"]
    assert run_notebooks.main(args) == 0
    printed = capsys.readouterr().out
    assert "seed mixing" in printed and "matched mixing" in printed and "auroc_best" in printed
    assert "SSFT mislabeled detection" in printed
    for name in run_notebooks.SSL_AE + run_notebooks.SSFT:
        nb = json.loads((tmp_path / "notebooks" / f"{name}.ipynb").read_text())
        outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
        assert not [o for o in outputs if o["output_type"] == "error"], name
    for mode in ("seed", "matched"):
        table = pd.read_csv(tmp_path / f"score_table_{mode}.csv", index_col=0)
        assert {"loss__last", "H__mean_from_0", "LID__mean_from_10", "image__total_variation"} <= set(table.index)
        assert table["auroc_best"].between(0.5, 1).all()
    # seed mixing carries the intensity confound, matched mixing does not
    sep = pd.read_csv(tmp_path / "separability.csv", index_col=0, header=[0, 1])
    assert sep.loc["min", ("seed", "auroc")] > 0.99
    assert sep.loc[["mean", "std", "min", "max", "ink_fraction"], ("matched", "auroc")].max() <= 0.55
    assert (tmp_path / "images" / "score_bars_matched.png").is_file()
    _ssft_checks(tmp_path)  # the same run: training SSFT twice would double the test time


def _ssft_checks(out):
    # every sample of MNIST-5k train scored exactly once, keyed by its id, with the flipped flag aligned
    scores = pd.read_csv(out / "ssft_scores_cnn_noise0.1.csv", index_col="sample_id")
    assert scores.index.is_unique and sorted(scores.index) == list(range(4000))
    assert scores["is_flipped"].sum() == 400 and (scores["n_seeds"] == 3).all()
    detection = pd.read_csv(out / "ssft_detection.csv", index_col=[0, 1])
    # even one epoch per stage separates 10 % flipped labels: forgotten at once in stage 2
    assert detection.loc[("cnn 0.1", "SSFT (forgetting time)"), "auroc"] > 0.9
    assert set(detection.index.get_level_values(0)) == {"cnn 0.1", "cnn 0.001", "lenet 0.1"}
    ae = pd.read_csv(out / "ssft_ae_detection.csv", index_col=[0, 1])
    assert {"seed ssim>0.5", "matched ssim>0.5", "seed ssim>0.15"} <= set(ae.index.get_level_values(0))
    bt = pd.read_csv(out / "ssft_bt_detection.csv", index_col=[0, 1])
    assert {"matched self_corr", "matched cross_corr"} <= set(bt.index.get_level_values(0))
    assert ae["auroc"].between(0, 1).all() and bt["auroc"].between(0, 1).all()
    corr = pd.read_csv(out / "ssft_correlations.csv", index_col=0)
    # constant scores (e.g. the background pixel) have no rank correlation: NaN, not a number made up
    finite = corr["max_abs"].dropna()
    assert np.isfinite(corr.loc["loss__last", "max_abs"]) and len(finite) > 10 and finite.between(0, 1).all()
