"""The speed scripts run end to end on tiny synthetic settings and print their RESULT line."""

import json
import sys

import pytest
import torch

from scripts import bench_decode, bench_train_throughput


def result_of(main, argv, monkeypatch, capsys) -> dict:
    monkeypatch.setattr(sys, "argv", ["bench", *argv])
    threads = torch.get_num_threads()
    try:
        main()
    finally:
        torch.set_num_threads(threads)  # the scripts set it for the whole process
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def test_decode_benchmark_reports_identical_lists_and_a_ratio(monkeypatch, capsys):
    args = ["--synthetic", "--users", "12", "--ref-users", "4", "--batch-size", "12"]
    result = result_of(bench_decode.main, [*args, "--threads", "1"], monkeypatch, capsys)
    assert result["identical_top_k_users"] == 4
    assert result["speedup"] > 0 and result["environment"]["git_commit"]


def test_training_benchmark_reports_both_rates(monkeypatch, capsys):
    args = ["--synthetic", "--steps", "1", "--batch-size", "16", "--threads", "1"]
    result = result_of(bench_train_throughput.main, args, monkeypatch, capsys)
    assert result["ours_samples_per_s"] > 0 and result["baseline_samples_per_s"] > 0
    assert result["flop_counter_vs_analytic"] == pytest.approx(1.0, abs=0.05)


def test_epoch_profile_accounts_for_the_epoch(tmp_path):
    """Run in its own process: the script wraps torch and model functions for good."""
    import os
    import subprocess

    from tests.conftest import FIXTURE_DIR, REPO

    command = [sys.executable, "-m", "scripts.profile_epoch", "--model", "tiger", "--profile"]
    command += ["smoke", "--dataset", "ml-tiny", "--data-dir", str(FIXTURE_DIR), "--ops", "3"]
    env = {**os.environ, "GENREC_CACHE_DIR": str(tmp_path)}
    out = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, out.stderr[-2000:]
    result = json.loads(line[-1][len("RESULT ") :])
    seconds = result["seconds"]
    assert seconds["forward"] > 0 and seconds["backward"] > 0 and seconds["validation"] > 0
    assert result["training_steps"] >= 1 and seconds["other (batching, copies)"] >= 0
    ops = result["top_ops"]  # the operator table, heaviest first
    assert len(ops) == 3 and ops[0]["self_seconds"] >= ops[-1]["self_seconds"] > 0
