"""The loop under torch.distributed: a 2-process gloo run on CPU through ``torchrun`` (the README's command)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from utils.engine import launch
from utils.engine.distributed import shard
from utils.engine.loop import load_run

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--task", "cnn", "--dataset", "mnist-5k", "--limit", "301", "--epochs", "2", "--batch-size", "16",
        "--measure", "--test-split", ""]


def test_shard_pads_like_distributed_sampler_and_marks_the_padding():
    order = torch.randperm(11, generator=torch.Generator().manual_seed(0))
    parts = [shard(order, r, 3) for r in range(3)]
    assert all(len(rows) == 4 for rows, _ in parts)                      # same number of steps on every rank
    real = torch.cat([rows[keep] for rows, keep in parts])
    assert sorted(real.tolist()) == list(range(11))                      # every sample exactly once, padding excluded
    padded = torch.cat([rows[~keep] for rows, keep in parts])
    assert padded.tolist() == order[:1].tolist()                         # the padding repeats the first rows


def test_two_gloo_processes_record_every_sample_once_and_match_a_single_process_eval(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "utils.engine.launch", *ARGS, "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es), 301 samples" in done.stdout

    task, _, data, _ = launch.build(launch.parse(ARGS + ["--out", str(out)]))
    run = load_run(out, task.make_model())
    # in-loop records: every sample exactly once per epoch, although the 301 samples were padded to 302
    for name in ("loss", "given_logit", "other_logit", "prob", "correct"):
        assert run.records[name].shape == (2, 301)
        assert (run.records.counts(name) == 1).all(), name
    assert (run.records.sample_ids == data.ids).all()
    assert (run.measures.counts("loss") == 1).all()
    # the gathered eval-pass losses equal one process evaluating the same final weights
    single = task.measure(run.model, task.prepare(data.images), data.labels, {}, 0)
    np.testing.assert_allclose(run.measures["loss"][-1], single["loss"].numpy(), atol=1e-5)
    np.testing.assert_array_equal(run.measures["correct"][-1], single["correct"].numpy())
    # the recorded training accuracy is the share of correct in-loop records, summed over both ranks
    assert abs(run.history["train_acc"].iloc[-1] - run.records["correct"][-1].mean()) < 1e-6
