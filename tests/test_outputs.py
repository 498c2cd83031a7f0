"""The output-name registry: the names the report and the committed README read stay what they were."""
import pytest

from utils.report import run_notebooks
from utils.studies import outputs


def test_names_the_report_and_readme_read():
    assert outputs.score_table("seed") == "score_table_seed.csv"
    assert outputs.score_table_mode("results/x/score_table_matched.csv") == "matched"
    assert outputs.score_table_mode(outputs.score_table("a_b")) == "a_b"
    with pytest.raises(ValueError, match="not a score table"):
        outputs.score_table_mode("summary.csv")
    assert (outputs.SUMMARY, outputs.SEPARABILITY, outputs.STUDY_CONFIG) == ("summary.csv", "separability.csv",
                                                                             "study.json")
    assert outputs.ssft_supervised_scores("cnn", 0.001) == "ssft_scores_cnn_noise0.001.parquet"
    assert outputs.ssft_scores_file(outputs.ssft_supervised_study("cnn", 0.1)) == "ssft_scores_cnn_noise0.1.parquet"
    assert outputs.ssft_unsupervised_detection("autoencoder") == "ssft_ae_detection.csv"
    assert outputs.ssft_unsupervised_detection("barlow_twins") == "ssft_bt_detection.csv"
    assert outputs.ssft_unsupervised_best("barlow_twins") == "ssft_bt_best.csv"
    assert outputs.ssft_unsupervised_scores("autoencoder", "seed", "ssim0.5") == "ssft_scores_autoencoder_seed_ssim0.5.parquet"
    assert outputs.fig_score_bars("matched") == "score_bars_matched.png"
    assert outputs.fig_ssft_supervised_times("cnn", 0.1) == "ssft_supervised_cnn_noise0.1.png"
    assert outputs.fig_ssft_quadrants("cnn", 0.001) == "ssft_quadrants_cnn_noise0.001.png"


def test_unknown_unsupervised_model_is_a_clear_error():
    with pytest.raises(ValueError, match="autoencoder, barlow_twins"):
        outputs.ssft_unsupervised_detection("cnn")


def test_every_unsupervised_task_has_its_outputs_and_an_executed_notebook():
    from utils.studies.ssft import UNSUPERVISED

    assert set(UNSUPERVISED) == set(outputs.UNSUPERVISED_PREFIX) == set(run_notebooks.UNSUPERVISED_TASKS)
    assert run_notebooks.SSFT == ("ssft-supervised", "ssft-unsupervised", "ssft-unsupervised-barlow-twins")
    for name in run_notebooks.SSL_AE + run_notebooks.SSFT:
        assert run_notebooks.source(name).is_file(), name
        assert name in run_notebooks.SSFT_QUICK and name in run_notebooks.SSFT_FULL or name in run_notebooks.SSL_AE
    assert run_notebooks.source("ssft-unsupervised-barlow-twins").name == "ssft-unsupervised.ipynb"


def test_runner_parameters_name_the_task():
    import argparse

    args = argparse.Namespace(mode="quick", ssft_epochs=None, dataset="mnist", split="test")
    assert run_notebooks.ssft_parameters(args, "ssft-unsupervised-barlow-twins") == dict(
        MAX_EPOCHS=1, DATASET="mnist-5k", SPLIT="train", TASK="barlow_twins")
    args = argparse.Namespace(mode="full", ssft_epochs=4, dataset="mnist", split="test")
    assert run_notebooks.ssft_parameters(args, "ssft-unsupervised") == dict(
        MAX_EPOCHS=4, DATASET="mnist", SPLIT="test", TASK="autoencoder")
    assert "TASK" not in run_notebooks.ssft_parameters(args, "ssft-supervised")
