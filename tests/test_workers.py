"""Workers sharing a grid: every run is trained once, a dead worker's claim is taken over."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from benchmark.claims import claim_owner, try_claim
from tests.conftest import FIXTURE_DIR, REPO

GRID = ["--models", "pop,sasrec,gru4rec", "--dataset", "ml-tiny", "--seeds", "0,1"]


def worker(results, cache):
    cmd = [sys.executable, "-m", "benchmark", "run", *GRID, "--profile", "smoke"]
    cmd += ["--data-dir", str(FIXTURE_DIR), "--results-dir", str(results), "--threads", "1"]
    env = {**os.environ, "GENREC_CACHE_DIR": str(cache)}
    return subprocess.Popen(
        [*cmd, "--quiet"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def test_two_workers_on_one_grid_train_each_run_once(tmp_path):
    procs = [worker(tmp_path / "results", tmp_path / "cache") for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    trained = [line for out in outputs for line in out.splitlines() if ": test ndcg@10" in line]
    runs = {line.split(":")[0].strip() for line in trained}
    assert len(trained) == len(runs) == 6, outputs  # 3 models x 2 seeds, each trained once
    records = list((tmp_path / "results" / "runs").rglob("*.json"))
    assert len(records) == 6
    assert all(json.loads(p.read_text())["status"] == "ok" for p in records)


def test_a_dead_workers_claim_is_taken_over(tmp_path):
    lock = tmp_path / "run.lock"
    # a process that claims and dies without releasing (as kill -9 would)
    code = (
        "import os; from pathlib import Path; from benchmark.claims import try_claim; "
        f"c = try_claim(Path({str(lock)!r})); print(c is not None, flush=True); os._exit(0)"
    )
    held = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert held.stdout.strip() == "True"
    claim = try_claim(lock)  # the kernel released the dead process's lock
    assert claim is not None
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    claim.release()


def test_a_live_claim_is_respected(tmp_path):
    lock = tmp_path / "run.lock"
    code = (
        "import sys, time; from pathlib import Path; from benchmark.claims import try_claim; "
        f"c = try_claim(Path({str(lock)!r})); print('held', flush=True); time.sleep(30)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert try_claim(lock) is None
        assert claim_owner(lock)["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()
    assert try_claim(lock) is not None
