"""`launch` on the local executor: a grid as worker processes, relaunches, a search on a
journal file shared by two workers."""

from __future__ import annotations

import json

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
