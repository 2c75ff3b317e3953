"""Runner: records, skip/force, failures recorded and the batch goes on, determinism."""

import json

import pytest
import torch

from benchmark.cli import main
from benchmark.runner import run_batch
from models.base import Model
from tests.conftest import FIXTURE_DIR

SMOKE = dict(datasets=["ml-tiny"], profile="smoke", data_dir=FIXTURE_DIR, quiet=True)


class Exploding(Model):
    """A model whose fit fails, to check failures are recorded and the batch goes on."""

    name = "exploding"

    def fit(self, data, ctx):
        raise RuntimeError("boom")

    def recommend(self, histories, k):
        raise AssertionError("unreachable")


def test_record_fields_skip_and_force(tmp_path):
    outcomes = run_batch(["pop"], results_dir=tmp_path, **SMOKE)
    assert [o.status for o in outcomes] == ["ok"]
    record = json.loads(outcomes[0].path.read_text())
    for key in (
        "schema_version",
        "run_id",
        "spec",
        "model",
        "dataset",
        "protocol",
        "seed",
        "valid",
        "test",
        "test_users",
        "test_ranks",
        "curve",
        "diagnostics",
        "environment",
        "started_at",
        "finished_at",
    ):
        assert key in record, key
    assert record["dataset"]["fingerprint"] and record["environment"]["git_commit"]
    assert record["diagnostics"]["peak_rss_mb"] > 0
    assert len(record["test_ranks"]) == record["dataset"]["n_users"] == 60
    assert set(record["test"]) >= {"recall@10", "ndcg@10", "mrr@10", "ndcg@20"}
    assert run_batch(["pop"], results_dir=tmp_path, **SMOKE)[0].status == "skipped"
    assert run_batch(["pop"], results_dir=tmp_path, force=True, **SMOKE)[0].status == "ok"


def test_failed_run_recorded_and_others_go_on(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("models.catalog").catalog.MODELS, "exploding", Exploding)
    outcomes = run_batch(["exploding", "pop"], results_dir=tmp_path, **SMOKE)
    assert [o.status for o in outcomes] == ["failed", "ok"]
    failed = json.loads(outcomes[0].path.read_text())
    assert failed["error"] == "RuntimeError: boom" and "Traceback" in failed["traceback"]
    code = main(
        [
            "run",
            "--models",
            "exploding,pop",
            "--dataset",
            "ml-tiny",
            "--data-dir",
            str(FIXTURE_DIR),
            "--profile",
            "smoke",
            "--results-dir",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert code == 1  # non-zero when any run failed


def test_same_seed_same_numbers(tmp_path):
    a = run_batch(["sasrec"], results_dir=tmp_path / "a", seeds=[3], **SMOKE)[0].record
    b = run_batch(["sasrec"], results_dir=tmp_path / "b", seeds=[3], **SMOKE)[0].record
    assert a["status"] == b["status"] == "ok"
    assert a["test_ranks"] == b["test_ranks"] and a["test"] == b["test"]
    assert a["curve"][-1]["loss"] == pytest.approx(b["curve"][-1]["loss"], rel=0, abs=0)


def test_scoped_override_and_config_in_run_id(tmp_path):
    a = run_batch(["sasrec"], results_dir=tmp_path, overrides=["sasrec.epochs=1"], **SMOKE)[0]
    assert a.record["spec"]["config"]["epochs"] == 1
    assert len(a.record["curve"]) == 1
    b = run_batch(["sasrec"], results_dir=tmp_path, overrides=["sasrec.epochs=2"], **SMOKE)[0]
    assert a.spec.run_id != b.spec.run_id


def test_time_budget_stops_after_the_epoch_that_exceeds_it(tmp_path):
    outcome = run_batch(
        ["sasrec"],
        results_dir=tmp_path,
        overrides=["sasrec.epochs=5", "sasrec.patience=5"],
        budget_minutes=1e-6,
        **SMOKE,
    )[0]
    assert outcome.status == "ok"
    assert len(outcome.record["curve"]) == 1
    assert outcome.record["diagnostics"]["stopped_by_budget"] is True
    assert outcome.record["spec"]["budget_minutes"] == 1e-6
    unbudgeted = run_batch(["sasrec"], results_dir=tmp_path, **SMOKE)[0]
    assert unbudgeted.spec.run_id != outcome.spec.run_id


def test_sasrec_baseline_run_fills_the_teacher_cache(tmp_path, tiny_data, monkeypatch):
    from benchmark.cache import DiskCache
    from benchmark.data import Protocol, cache_root
    from benchmark.runner import build_config, resolve_model, teacher_key

    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache"))  # other tests fill the shared
    config = build_config(resolve_model("sasrec"), "quick", {}).to_dict()
    key = teacher_key(tiny_data, Protocol(), config, torch.device("cpu"))
    path = DiskCache(cache_root() / "artifacts").path("teacher-embeddings", key)
    assert not path.exists()
    outcome = run_batch(["sasrec"], results_dir=tmp_path / "r", **{**SMOKE, "profile": "quick"})[0]
    assert outcome.status == "ok"
    assert path.exists()
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    on_gpu = teacher_key(tiny_data, Protocol(), config, torch.device("cuda"))
    assert on_gpu != key and on_gpu["device"].startswith("NVIDIA H200, torch ")


def test_label_names_a_variant_in_the_leaderboard(tmp_path):
    from benchmark.leaderboard import write_leaderboard

    plain = run_batch(["pop"], results_dir=tmp_path, **SMOKE)[0]
    variant = run_batch(["pop"], results_dir=tmp_path, label="pop (variant)", **SMOKE)[0]
    assert plain.spec.run_id != variant.spec.run_id
    write_leaderboard(tmp_path)
    table = (tmp_path / "leaderboard.md").read_text()
    assert "| pop (variant)" in table and "| pop " in table


def test_an_unreadable_record_is_moved_aside_and_the_run_redone(tmp_path):
    first = run_batch(["pop"], results_dir=tmp_path, **SMOKE)[0]
    first.path.write_text('{"status": "ok", "trunc')  # a record cut by a crash
    again = run_batch(["pop"], results_dir=tmp_path, **SMOKE)[0]
    assert again.status == "ok" and json.loads(again.path.read_text())["status"] == "ok"
    assert len(list(first.path.parent.glob(f"{first.path.name}.unreadable-*"))) == 1


def test_files_are_published_readable_by_others(tmp_path):
    """mkstemp creates private files; the atomic helper publishes them with the usual mode."""
    import os

    from benchmark.atomic import write_text_atomic

    path = write_text_atomic(tmp_path / "board.md", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_the_recorded_commit_is_read_once_per_process(monkeypatch, tmp_path):
    """A commit made while a long invocation trains must not be credited with its later runs;
    uncommitted code is named by its diff's hash, and the diff kept beside the records."""
    import subprocess

    from benchmark import records

    heads = iter(["a" * 40, "b" * 40])
    diffs = iter([b"", b"diff --git a/models/tiger.py b/models/tiger.py\n"])

    def fake_git(command, **kwargs):
        if command[1] == "rev-parse":
            out = next(heads)
        else:  # the tracked files' diff; no untracked files
            out = next(diffs) if "diff" in command else b""
        return subprocess.CompletedProcess(command, 0, stdout=out, stderr="")

    records.code_state.cache_clear()
    monkeypatch.setattr(records.subprocess, "run", fake_git)
    try:
        assert records.git_commit() == "a" * 40
        assert records.git_commit() == "a" * 40  # HEAD moved on; the loaded code did not
        assert records.save_code_patch(tmp_path) is None  # committed code: nothing to keep
        records.code_state.cache_clear()  # a new process, on edited code
        commit = records.git_commit()
        assert commit.startswith("b" * 40 + "-dirty.")
        patch = records.save_code_patch(tmp_path)
        assert patch.name == commit.split(".")[-1] + ".diff"
        assert patch.read_text().startswith("diff --git a/models/tiger.py")
    finally:
        records.code_state.cache_clear()


def test_caching_the_teacher_after_training_counts_as_neither_training_nor_artifacts(
    tmp_path, monkeypatch
):
    """SASRec seed 0 stores itself as the teacher after training (possibly waiting for another
    worker's lock): that time must not be subtracted from its training time as artifact time."""
    import time

    from benchmark.cache import DiskCache

    original = DiskCache.get_or_create

    def slow_teacher(self, kind, key, create):
        if kind != "teacher-embeddings":
            return original(self, kind, key, create)

        def waited():
            time.sleep(1.0)  # as if another worker held the lock
            return create()

        return original(self, kind, key, waited)

    monkeypatch.setattr(DiskCache, "get_or_create", slow_teacher)
    (out,) = run_batch(["sasrec"], results_dir=tmp_path, **SMOKE)
    assert out.status == "ok" and out.record["diagnostics"]["artifact_seconds"] < 0.5
