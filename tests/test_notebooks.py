"""Every ssl-ae notebook runs top to bottom in quick mode (3 epochs) through the headless runner."""
import json

import pandas as pd

from utils import run_notebooks


def test_ssl_ae_notebooks_run_in_quick_mode(tmp_path, capsys):
    assert run_notebooks.main(["--mode", "quick", "--epochs", "3", "--out", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "seed mixing" in printed and "matched mixing" in printed and "auroc_best" in printed
    for name in run_notebooks.SSL_AE:
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
