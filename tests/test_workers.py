"""utils.engine.workers: one-thread workers, results in shard order, and no orphan left when the parent dies."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from utils.engine.workers import run_sharded, run_then_read


def _shard_and_threads(tag, shard):
    import torch
    return tag, shard, torch.get_num_threads()


def test_results_in_shard_order_with_one_thread_each():
    out = run_sharded(_shard_and_threads, 2, "x")
    assert out == [("x", (0, 2), 1), ("x", (1, 2), 1)]
    assert run_sharded(_shard_and_threads, 1, "y")[0][:2] == ("y", (0, 1))


def _cached_squares(folder, n, shard=(0, 1), tag="worker"):
    """Squares of 0..n-1, each cached as a file written by the process that computed it."""
    out = []
    for i in range(shard[0], n, shard[1]):
        f = Path(folder, f"{i}.txt")
        if not f.exists():
            f.write_text(f"{i * i} {tag} {os.getpid()}")
        out.append(f.read_text())
    return out


def test_run_then_read_computes_in_the_workers_and_reads_everything_back_here(tmp_path):
    out = run_then_read(_cached_squares, 2, tmp_path, 5, here=dict(tag="parent"))
    assert [int(r.split()[0]) for r in out] == [0, 1, 4, 9, 16]
    assert {r.split()[1] for r in out} == {"worker"}                     # every job ran in a worker ...
    assert str(os.getpid()) not in {r.split()[2] for r in out}          # ... none in this process
    (tmp_path / "one").mkdir()
    again = run_then_read(_cached_squares, 1, tmp_path / "one", 3, here=dict(tag="parent"))
    assert again == [f"{i * i} parent {os.getpid()}" for i in range(3)]  # workers=1: all here, with `here`


SLEEPER = """
import os, sys, time
from pathlib import Path
from utils.engine.workers import run_sharded

def nap(folder, shard):
    Path(folder, f"worker{shard[0]}").write_text(str(os.getpid()))
    time.sleep(120)

if __name__ == "__main__":
    run_sharded(nap, 2, sys.argv[1])
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_workers_exit_when_their_parent_is_killed(tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=root, env=env)
    try:
        deadline = time.time() + 60
        while len(list(tmp_path.glob("worker*"))) < 2 and time.time() < deadline:
            time.sleep(0.2)
        pids = [int(p.read_text()) for p in tmp_path.glob("worker*")]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        parent.send_signal(signal.SIGKILL)         # no cleanup runs in the parent
        parent.wait()
        deadline = time.time() + 15
        while any(_alive(p) for p in pids) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in pids)
    finally:
        parent.kill()
