"""`launch` on the local executor: a grid as worker processes, relaunches, a search on a
journal file shared by two workers."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import optuna
import pytest

from benchmark.cli import main
from benchmark.launch import Grid, grid_status
from benchmark.runner import claim_path
from tests.conftest import FIXTURE_DIR

GRID = ["--models", "pop,sasrec", "--dataset", "ml-tiny", "--seeds", "0,1", "--profile", "smoke"]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache"))


def launch(tmp_path, *extra):
    args = ["launch", *GRID, "--data-dir", str(FIXTURE_DIR), "--results-dir", str(tmp_path / "r")]
    return main([*args, *extra])


def test_a_local_launch_trains_the_grid_once_and_a_relaunch_trains_nothing(tmp_path, capsys):
    grid = Grid(["pop", "sasrec"], ["ml-tiny"], "smoke", [0, 1], results_dir=tmp_path / "r")
    # a claim file left by a killed job (its lock died with it) must not block the run
    stale = claim_path(grid.results_dir, grid.specs()[2]).with_suffix(".lock")
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"host": "gone", "pid": 1}))

    assert launch(tmp_path, "--executor", "local", "--workers", "2", "--wait") == 0
    assert "jobs finished: 4 ok" in capsys.readouterr().out
    records = list((tmp_path / "r" / "runs").rglob("*.json"))
    assert len(records) == 4
    assert all(json.loads(p.read_text())["status"] == "ok" for p in records)

    assert launch(tmp_path, "--executor", "local") == 0
    assert "nothing to launch (4 done" in capsys.readouterr().out
    assert launch(tmp_path, "--status") == 0
    assert "4 runs: 4 done, 0 running, 0 paused, 0 failed, 0 pending" in capsys.readouterr().out
    counts, _ = grid_status(grid)
    assert counts == {"done": 4}

    # a record made from other data is not done: the launch says so and submits nothing
    record = json.loads(records[0].read_text())
    record["inputs"]["interactions"] = "0" * 16
    records[0].write_text(json.dumps(record))
    assert launch(tmp_path, "--executor", "local") == 2
    err = capsys.readouterr().err
    assert "1 done run(s) of this grid were made from other data" in err
    assert records[0].name in err and "Traceback" not in err


def test_two_tune_workers_share_one_journal_study(tmp_path, capsys):
    journal = tmp_path / "study.journal"
    args = ["launch", "--tune", "sasrec", "--dataset", "ml-tiny", "--profile", "smoke"]
    args += ["--data-dir", str(FIXTURE_DIR), "--results-dir", str(tmp_path / "r")]
    args += ["--executor", "local", "--workers", "2", "--trials", "4", "--wait"]
    assert main([*args, "--storage", f"journal:{journal}"]) == 0
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    study = optuna.load_study(study_name="sasrec-ml-tiny-smoke", storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 4  # each worker stops once the study holds 4 finished trials
    numbers = sorted(t.number for t in study.trials)
    assert numbers == list(range(len(numbers)))  # one consistent journal, no lost writes
    assert 1 <= len({t.user_attrs["worker"] for t in done}) <= 2
    assert (tmp_path / "r" / "tuned" / "ml-tiny" / "smoke" / "sasrec.yaml").exists()
    capsys.readouterr()
    assert main([*args, "--storage", f"journal:{journal}", "--status"]) == 0
    assert f"study sasrec-ml-tiny-smoke on journal:{journal}: {len(done)} complete" in (
        capsys.readouterr().out
    )
    missing = tmp_path / "none.journal"
    assert main([*args, "--storage", f"journal:{missing}", "--status"]) == 0
    assert "no trials yet" in capsys.readouterr().out and not missing.exists()


def test_a_job_interrupted_at_its_time_limit_is_requeued_and_continues_its_run(tmp_path):
    """submitit's timeout/preemption signal (USR2) requeues the job; the requeued job continues
    the run from its last epoch checkpoint instead of recording it failed."""
    import time

    from benchmark.launch import Resources, launch_grid

    grid = Grid(["sasrec"], ["ml-tiny"], "smoke", [0], overrides=["epochs=20", "patience=20"],
                results_dir=tmp_path / "r", data_dir=FIXTURE_DIR)  # fmt: skip
    (job,) = launch_grid(grid, Resources(executor="local", workers=1), tmp_path / "logs")
    checkpoints = tmp_path / "cache" / "checkpoints"
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("*/*.pt")) and time.monotonic() < deadline:
        time.sleep(0.2)  # until the run has finished an epoch
    assert job.done() is False, "the run finished before it could be interrupted"
    # the signal the local executor's controller sends its task before the time limit (Slurm's
    # USR2 likewise); LocalJob._interrupt would signal the controller itself
    controller = job._process.pid
    (task,) = Path(f"/proc/{controller}/task/{controller}/children").read_text().split()
    os.kill(int(task), signal.SIGUSR2)
    assert job.result() == {"ok": 1}
    (path,) = (tmp_path / "r" / "runs").rglob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok"
    assert "recommender" in record["diagnostics"]["resumed_from"]  # after its last epoch


def test_local_workers_get_this_machines_gpus_round_robin(monkeypatch):
    from benchmark.launch import local_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 3")
    assert local_gpus(3) == ["2", "3", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # hidden: the workers stay on the CPU
    assert local_gpus(2) == [None, None]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    assert local_gpus(3) == ["0", "1", "0"]


def test_a_failed_job_is_reported_with_its_log_not_a_traceback(tmp_path):
    from benchmark.launch import Resources, _executor, job_results, submit

    resources = Resources(executor="local")
    executor = _executor(tmp_path / "logs", resources, threads=1)
    jobs = submit(executor, resources, int, ["not a number"])  # a job whose function raises
    results, lost = job_results(jobs)
    assert results == [] and len(lost) == 1
    assert "ValueError: invalid literal for int()" in lost[0] and "log:" in lost[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--models", "pop"], "does not take --models"),
        (["--set", "epochs=2", "--time-budget", "5"], "does not take --set, --time-budget"),
        (["--seeds", "0,1"], "one --seeds value"),
    ],
)
def test_launch_tune_refuses_grid_flags(tmp_path, capsys, extra, message):
    args = ["launch", "--tune", "sasrec", "--dataset", "ml-tiny", "--profile", "smoke"]
    assert main([*args, "--results-dir", str(tmp_path), *extra]) == 2
    assert message in capsys.readouterr().err


def test_gpus_per_job_must_not_be_negative(capsys):
    with pytest.raises(SystemExit):
        main(["launch", "--models", "pop", "--gpus-per-job", "-1"])
    assert "expected 0 or a positive whole number" in capsys.readouterr().err


def test_a_local_launch_exits_without_submitit_noise(tmp_path):
    """Job objects must be gone before interpreter exit (their __del__ printed a TypeError)."""
    import subprocess
    import sys

    args = [sys.executable, "-m", "benchmark", "launch", "--models", "pop", "--dataset", "ml-tiny",
            "--profile", "smoke", "--data-dir", str(FIXTURE_DIR), "--results-dir",
            str(tmp_path / "r"), "--executor", "local", "--workers", "1", "--wait"]  # fmt: skip
    env = {**os.environ, "GENREC_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "jobs finished: 1 ok" in done.stdout
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr


def test_the_slurm_executor_is_built_with_its_requeue_limit(tmp_path, monkeypatch):
    """Built against stub sbatch/srun (no Slurm here): every parameter is one submitit takes."""
    from benchmark.launch import MAX_REQUEUES, Resources, _executor

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "srun"):
        (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    resources = Resources(executor="slurm", partition="gpu", gpus_per_job=1, sbatch=["account=x"])
    executor = _executor(tmp_path / "logs", resources, threads=4)
    assert executor._executor.max_num_timeout == MAX_REQUEUES
    assert executor._executor.parameters["additional_parameters"] == {"account": "x"}


def test_a_submitit_time_limit_inside_training_is_a_kill_not_a_failed_record(tmp_path, monkeypatch):
    """Past its last requeue, submitit raises from its signal handler inside training: no
    failed record (a relaunch resumes the run from its checkpoint)."""
    import submitit

    from benchmark import runner

    def out_of_time(*args, **kwargs):
        raise submitit.core.utils.UncompletedJobError("Job not requeued: timed-out too many times")

    monkeypatch.setattr(runner, "execute_run", out_of_time)
    with pytest.raises(submitit.core.utils.UncompletedJobError):
        runner.run_batch(["sasrec"], ["ml-tiny"], profile="smoke", data_dir=FIXTURE_DIR,
                         results_dir=tmp_path, quiet=True)  # fmt: skip
    assert not list(tmp_path.glob("runs/*/*/*.json"))
