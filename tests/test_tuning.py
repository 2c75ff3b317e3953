"""Tuning: resumable studies, workers sharing one study, the tuned YAML, pruning, clear errors."""

import json
import os
import subprocess
import sys

import optuna
import pytest
import torch
from optuna.trial import TrialState

from benchmark import tuning
from benchmark.cli import main
from benchmark.data import Protocol
from benchmark.errors import BenchmarkError, ConfigError
from benchmark.runner import Pruned
from models.recbole_baselines import SASRec
from tests.conftest import FIXTURE_DIR, REPO

TINY = dict(profile="smoke", data_dir=FIXTURE_DIR, quiet=True)
# In-process tests search a space that keeps the smoke profile's small network (the CPU is shared).
SMALL_SPACE = {"lr": ("float", 1e-4, 1e-2, "log"), "dropout": ("float", 0.1, 0.5)}
CLI_TINY = ["--dataset", "ml-tiny", "--data-dir", str(FIXTURE_DIR), "--profile", "smoke"]


def load_study(results_dir):
    url = tuning.default_storage(results_dir, "sasrec", "ml-tiny")
    return optuna.load_study(study_name="sasrec-ml-tiny-smoke", storage=url)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models train faster on one thread, much faster when other jobs share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_space(monkeypatch):
    monkeypatch.setattr(SASRec, "SEARCH_SPACE", SMALL_SPACE)


def test_resume_counts_earlier_trials_and_run_tuned_uses_the_yaml(tmp_path, small_space, capsys):
    first = tuning.tune("sasrec", "ml-tiny", trials=2, results_dir=tmp_path, **TINY)
    assert first.counts == {"complete": 2}
    second = tuning.tune("sasrec", "ml-tiny", trials=3, results_dir=tmp_path, **TINY)
    assert second.counts == {"complete": 3}

    study = load_study(tmp_path)
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert trials[2].params != trials[0].params  # the resumed sampler does not repeat itself
    for t in trials:  # validation metrics only, from the trial's own run
        assert t.user_attrs["valid"]["ndcg@10"] == pytest.approx(t.value)
        assert set(t.params) == set(SMALL_SPACE)
    attrs = study.user_attrs
    assert attrs["budget"] == {"trials": 3, "timeout_s": None}
    assert attrs["model"] == "sasrec" and attrs["dataset"] == "ml-tiny"
    assert attrs["profile"] == "smoke" and attrs["fingerprint"] and attrs["protocol"]["ks"]
    assert not (tmp_path / "runs").exists()  # trials are tuning, not results

    # The best configuration, only the tuned keys, with metadata comments.
    text = second.path.read_text()
    assert second.path == tmp_path / "tuned" / "ml-tiny" / "smoke" / "sasrec.yaml"
    assert "# study: sasrec-ml-tiny-smoke" in text and "best validation ndcg@10:" in text
    tuned = tuning.load_tuned(tmp_path, "sasrec", "ml-tiny", "smoke", Protocol())
    assert tuned == study.best_params == second.best_params
    # a search under another protocol would have its own file: none here, and the error says
    # which `tune` makes it; a file that says it was searched under another one is refused
    with pytest.raises(BenchmarkError, match="--profile smoke --max-history 50"):
        tuning.load_tuned(tmp_path, "sasrec", "ml-tiny", "smoke", Protocol(max_history=50))
    identity = second.path.with_suffix(".json")
    saved = json.loads(identity.read_text())
    identity.write_text(json.dumps({**saved, "protocol": Protocol(max_history=50).to_dict()}))
    with pytest.raises(BenchmarkError, match="searched under another protocol .max_history"):
        tuning.load_tuned(tmp_path, "sasrec", "ml-tiny", "smoke", Protocol())
    identity.write_text(json.dumps(saved))
    with pytest.raises(BenchmarkError, match="--profile quick"):  # another profile's search
        tuning.load_tuned(tmp_path, "sasrec", "ml-tiny", "quick", Protocol())

    # Resuming with another seed (or data, protocol, space) would mix incomparable trials.
    with pytest.raises(BenchmarkError, match="different seed"):
        tuning.tune("sasrec", "ml-tiny", trials=4, seed=1, results_dir=tmp_path, **TINY)

    # `run --tuned` starts from the YAML.
    args = ["run", "--models", "sasrec", *CLI_TINY, "--results-dir", str(tmp_path)]
    assert main([*args, "--tuned", "--quiet"]) == 0
    (record_path,) = (tmp_path / "runs" / "ml-tiny" / "sasrec").glob("*.json")
    config = json.loads(record_path.read_text())["model"]["config"]
    assert {key: config[key] for key in tuned} == tuned
    capsys.readouterr()
    assert main([*args, "--tuned", "--max-history", "10", "--quiet"]) == 2  # another protocol
    assert "tune --model sasrec --dataset ml-tiny --profile smoke --max-history 10" in (
        capsys.readouterr().err
    )

    # `launch --tuned` expands the same runs (a tuned grid on a cluster), plain `launch` others.
    status = ["launch", "--models", "sasrec", *CLI_TINY, "--results-dir", str(tmp_path), "--status"]
    capsys.readouterr()
    assert main([*status, "--tuned"]) == 0
    assert "1 runs: 1 done" in capsys.readouterr().out
    assert main(status) == 0
    assert "1 runs: 0 done, 0 running, 0 paused, 0 failed, 1 pending" in capsys.readouterr().out


def test_a_tuned_file_replaced_by_another_storages_study_says_so(tmp_path, small_space, capsys):
    """`tune` (SQLite) and `launch --tune` (journal) keep separate studies of one name."""
    tuning.tune("sasrec", "ml-tiny", trials=1, results_dir=tmp_path, **TINY)
    assert "held the best of the study" not in capsys.readouterr().err
    journal = f"journal:{tmp_path / 'other.journal'}"
    result = tuning.tune("sasrec", "ml-tiny", trials=1, results_dir=tmp_path, storage=journal,
                         **TINY)  # fmt: skip
    err = capsys.readouterr().err
    assert "held the best of the study in sqlite:///" in err and journal in err
    assert json.loads(result.path.with_suffix(".json").read_text())["storage"] == journal


def test_two_workers_add_trials_to_one_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    command = [sys.executable, "-m", "benchmark", "tune", "--model", "sasrec", *CLI_TINY]
    # A timeout (not a trial count) makes each worker run at least one trial, however the two
    # interleave; --trials is far away.
    command += ["--trials", "50", "--timeout", "2", "--storage", url, "--threads", "1"]
    command += ["--results-dir", str(tmp_path), "--quiet", "--max-history", "10"]
    workers = [
        subprocess.Popen(command, cwd=REPO, env=os.environ.copy(), stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=300)[0].decode() for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs

    # another protocol than the default: its own study (and tuned file)
    name = tuning.study_name("sasrec", "ml-tiny", "smoke", Protocol(max_history=10))
    assert name.startswith("sasrec-ml-tiny-smoke.")
    study = optuna.load_study(study_name=name, storage=url)
    trials = study.get_trials()
    assert trials and all(t.state in tuning.FINISHED for t in trials)
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers contributed
    assert study.user_attrs["budget"] == {"trials": 50, "timeout_s": 2.0}
    assert study.user_attrs["protocol"]["max_history"] == 10  # tune's protocol flags reach it
    assert not (tmp_path / "tune").exists()  # --storage replaces the default SQLite file
    protocol = Protocol(max_history=10)
    assert tuning.load_tuned(tmp_path, "sasrec", "ml-tiny", "smoke", protocol) == study.best_params
    assert tuning.tuned_path(tmp_path, "sasrec", "ml-tiny", "smoke", protocol).name.startswith(
        "sasrec."
    )  # beside the default protocol's file, not over it


def test_model_without_search_space_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(BenchmarkError, match="'pop' declares no SEARCH_SPACE"):
        tuning.tune("pop", "ml-tiny", results_dir=tmp_path, **TINY)
    assert main(["tune", "--model", "pop", *CLI_TINY, "--results-dir", str(tmp_path)]) == 2
    assert "no SEARCH_SPACE" in capsys.readouterr().err


def test_search_space_entries_are_checked():
    class Misspelled(SASRec):
        SEARCH_SPACE = {"dropuot": ("float", 0.1, 0.5)}

    class BadKind(SASRec):
        SEARCH_SPACE = {"dropout": ("uniform", 0.1, 0.5)}

    with pytest.raises(ConfigError, match="'dropuot' is not a field"):
        tuning.check_search_space(Misspelled)
    with pytest.raises(ConfigError, match="expected"):
        tuning.check_search_space(BadKind)
    assert tuning.check_search_space(SASRec) == SASRec.SEARCH_SPACE


def test_missing_tuned_yaml_says_which_command_creates_it(tmp_path):
    with pytest.raises(BenchmarkError, match="python -m benchmark tune --model narm --dataset x"):
        tuning.load_tuned(tmp_path, "narm", "x", "quick")


class FakeTrial:
    def __init__(self, prune_from_epoch):
        self.number, self.prune_from_epoch, self.reports = 7, prune_from_epoch, []

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        return self.reports[-1][0] >= self.prune_from_epoch


def test_pruning_hook_reports_each_epoch_and_raises_when_told():
    trial = FakeTrial(prune_from_epoch=1)
    hook = tuning.pruning_hook(trial)
    hook(0, 0.25)
    with pytest.raises(Pruned, match="trial 7 pruned at epoch 1"):
        hook(1, 0.125)
    assert trial.reports == [(0, 0.25), (1, 0.125)]


def test_pruned_trial_is_recorded_as_pruned(tmp_path, monkeypatch, small_space):
    # A pruner that stops every trial after its first report.
    monkeypatch.setattr(tuning, "make_pruner", lambda: optuna.pruners.ThresholdPruner(lower=1.0))
    with pytest.raises(BenchmarkError, match="no trial .* has completed"):
        tuning.tune("sasrec", "ml-tiny", trials=1, results_dir=tmp_path, **TINY)
    (trial,) = load_study(tmp_path).get_trials()
    assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [0]


def test_sampler_is_reproducible_and_a_resumed_study_continues_it():
    space = {"x": ("float", -1.0, 1.0), "n": ("categorical", [1, 2, 3])}

    def objective(trial):
        params = tuning.suggest(trial, space)
        return -(params["x"] ** 2) + params["n"]

    def study(sampler):
        return optuna.create_study(direction="maximize", sampler=sampler)

    straight = study(tuning.TrialSeededTPE(0))
    straight.optimize(objective, n_trials=14)  # past TPE's 10 random startup trials
    resumed = study(tuning.TrialSeededTPE(0))
    resumed.optimize(objective, n_trials=8)
    resumed.sampler = tuning.TrialSeededTPE(0)  # a new process on the same study
    resumed.optimize(objective, n_trials=6)
    xs = [t.params["x"] for t in straight.trials]
    assert xs == [t.params["x"] for t in resumed.trials]
    assert len(set(xs)) == len(xs)


def test_a_trial_of_a_dead_worker_is_failed_on_resume(tmp_path, small_space, monkeypatch):
    import time

    monkeypatch.setattr(tuning, "HEARTBEAT_SECONDS", 1)
    tuning.tune("sasrec", "ml-tiny", trials=1, results_dir=tmp_path, **TINY)
    url = tuning.default_storage(tmp_path, "sasrec", "ml-tiny")
    storage = tuning.open_storage(url)
    study = optuna.load_study(study_name="sasrec-ml-tiny-smoke", storage=storage)
    dead = study.ask()  # a worker that started a trial, beat once and was killed
    storage.record_heartbeat(dead._trial_id)
    time.sleep(3)
    result = tuning.tune("sasrec", "ml-tiny", trials=2, results_dir=tmp_path, **TINY)
    assert result.counts.get("running", 0) == 0 and result.counts["fail"] == 1
    states = {t.number: t.state for t in load_study(tmp_path).get_trials()}
    assert states[dead.number] == TrialState.FAIL


def test_a_journal_study_beats_and_fails_a_dead_workers_trial(tmp_path, small_space, monkeypatch):
    """Optuna's JournalStorage has no heartbeat of its own; ours beats from a thread."""
    import time

    monkeypatch.setattr(tuning, "HEARTBEAT_SECONDS", 1)
    url = f"journal:{tmp_path / 'study.journal'}"
    tuning.tune("sasrec", "ml-tiny", trials=1, results_dir=tmp_path, storage=url, **TINY)
    storage = tuning.open_storage(url)
    study = optuna.load_study(study_name="sasrec-ml-tiny-smoke", storage=storage)
    (done,) = study.get_trials()
    assert done.state == TrialState.COMPLETE and "heartbeat" in done.user_attrs
    dead = study.ask()  # a worker killed right after it beat once
    storage.set_trial_user_attr(dead._trial_id, "heartbeat", time.time())
    alive = study.ask()  # a live worker that beats now
    time.sleep(2.5)
    storage.set_trial_user_attr(alive._trial_id, "heartbeat", time.time())
    assert tuning.fail_stale_trials(study, storage) == [dead.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states[dead.number] == TrialState.FAIL and states[alive.number] == TrialState.RUNNING


def test_a_worker_dying_mid_search_leaves_no_running_trial(tmp_path, monkeypatch):
    """A journal trial that goes stale while another worker searches is failed after that
    worker's next trial, not only when a worker (re)starts."""
    import time

    monkeypatch.setattr(tuning, "HEARTBEAT_SECONDS", 1)
    url = f"journal:{tmp_path / 'study.journal'}"
    objective = tuning._objective

    def with_a_dying_worker(*args, **kwargs):
        inner = objective(*args, **kwargs)

        def run(trial):
            if trial.number == 0:  # another worker starts a trial, beats once long ago, dies
                dead = trial.study.ask()
                trial.study._storage.set_trial_user_attr(
                    dead._trial_id, "heartbeat", time.time() - 60
                )
            return inner(trial)

        return run

    monkeypatch.setattr(tuning, "_objective", with_a_dying_worker)
    result = tuning.tune("sasrec", "ml-tiny", trials=2, results_dir=tmp_path, storage=url, **TINY)
    assert result.counts == {"complete": 2, "fail": 1}  # a failed trial uses no budget


def test_the_heartbeat_thread_beats_until_stopped(monkeypatch):
    import threading
    import time

    class Trial:
        def __init__(self):
            self.beats = []

        def set_user_attr(self, key, value):
            self.beats.append(value)

    monkeypatch.setattr(tuning, "HEARTBEAT_SECONDS", 0.05)
    trial = Trial()
    heartbeat = tuning.JournalHeartbeat(trial)
    time.sleep(0.4)
    heartbeat.stop()
    beats = len(trial.beats)
    assert beats >= 4 and trial.beats == sorted(trial.beats)
    time.sleep(0.15)
    assert len(trial.beats) == beats
    assert not any(t.name == "tune-heartbeat" for t in threading.enumerate())


def test_two_workers_failing_the_same_stale_trial_do_not_crash(tmp_path, monkeypatch):
    """Every worker of a resumed journal study fails stale trials when it starts; the second
    to fail one finds it failed already."""
    monkeypatch.setattr(tuning, "HEARTBEAT_SECONDS", 0)
    url = f"journal:{tmp_path / 'study.journal'}"
    first, second = tuning.open_storage(url), tuning.open_storage(url)
    study = optuna.create_study(study_name="s", storage=first)
    dead = study.ask()
    seen_by_second = optuna.load_study(study_name="s", storage=second)
    stale = seen_by_second.get_trials(states=(TrialState.RUNNING,))  # before the first acts
    assert tuning.fail_stale_trials(study, first) == [dead.number]
    monkeypatch.setattr(seen_by_second, "get_trials", lambda **_: stale)
    assert tuning.fail_stale_trials(seen_by_second, second) == []
