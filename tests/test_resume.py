"""Epoch-level resume, pauses, cold = warm cache, the selection metric, shared budgets."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import torch

from benchmark import runner
from benchmark.cli import main
from benchmark.runner import run_batch
from models.errors import TrainingDiverged
from models.training import train_epochs_with_resume
from tests.conftest import FIXTURE_DIR
from tests.stub_context import StubContext

SMOKE = dict(datasets=["ml-tiny"], profile="smoke", data_dir=FIXTURE_DIR, quiet=True)
# long enough that a kill after epoch 1 leaves epochs to resume, no early stop in between
LONG = ["epochs=4", "patience=10"]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Artifacts of these runs stay out of the session cache that other test files inspect."""
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache"))


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no record is written."""


def kill_after(monkeypatch, stage: str, epoch: int) -> None:
    original = runner.HarnessContext.checkpoint

    def checkpoint(self, name, state, final=False):
        original(self, name, state, final)
        if name == stage and state["epoch"] == epoch and not final:
            raise Killed

    monkeypatch.setattr(runner.HarnessContext, "checkpoint", checkpoint)


def record(outcome) -> dict:
    return json.loads(outcome.path.read_text())


def same_result(a: dict, b: dict) -> None:
    """Same ranks, metrics and curve (wall-clock timings aside)."""
    assert a["test_ranks"] == b["test_ranks"]
    assert a["valid"] == b["valid"]
    timing = ("seconds", "valid_seconds")
    strip = [{k: v for k, v in e.items() if k not in timing} for e in a["curve"]]
    assert strip == [{k: v for k, v in e.items() if k not in timing} for e in b["curve"]]


@pytest.mark.parametrize(
    ("model", "stage", "overrides"),
    [
        ("tiger", "recommender", LONG),
        ("sasrec", "recommender", LONG),
        ("diger", "recommender", LONG),
        # killed inside the second stage: the finished first stage is loaded, not retrained
        ("unigrec", "finetune", [*LONG, "finetune_epochs=3", "finetune_patience=10"]),
    ],
)
def test_killed_run_resumes_to_the_uninterrupted_record(
    tmp_path, monkeypatch, model, stage, overrides
):
    whole = run_batch([model], results_dir=tmp_path / "a", overrides=overrides, **SMOKE)[0]
    assert whole.status == "ok", whole.record.get("traceback")

    with monkeypatch.context() as patch:
        kill_after(patch, stage, epoch=1 if stage == "recommender" else 5)
        with pytest.raises(Killed):
            run_batch([model], results_dir=tmp_path / "b", overrides=overrides, **SMOKE)
    resumed = run_batch([model], results_dir=tmp_path / "b", overrides=overrides, **SMOKE)[0]
    assert resumed.status == "ok", resumed.record.get("traceback")
    assert resumed.record["diagnostics"]["resumed_from"][stage] >= 1
    assert resumed.record["diagnostics"]["trained_at_commits"]  # every invocation's code
    same_result(record(whole), record(resumed))


def test_stop_after_pauses_and_the_same_command_continues(tmp_path):
    overrides = LONG
    whole = run_batch(["tiger"], results_dir=tmp_path / "a", overrides=overrides, **SMOKE)[0]
    pauses = 0
    while True:  # pause after every epoch
        out = run_batch(
            ["tiger"],
            results_dir=tmp_path / "b",
            overrides=overrides,
            stop_after_minutes=1e-9,
            **SMOKE,
        )[0]
        if out.status != "paused":
            break
        pauses += 1
        paused = record(out)
        assert paused["status"] == "paused" and len(paused["curve"]) == pauses
        assert paused["diagnostics"]["peak_rss_mb"] > 0  # what a long run needs, known early
    assert out.status == "ok" and pauses == 3  # epochs 0, 1, 2 paused; 3 is the last
    same_result(record(whole), record(out))


def test_no_new_run_starts_once_stop_after_has_passed(tmp_path):
    out = run_batch(["sasrec", "gru4rec"], results_dir=tmp_path, stop_after_minutes=1e-9, **SMOKE)
    assert [o.status for o in out] == ["paused"]  # gru4rec was not started past the slot
    assert not list(tmp_path.glob("runs/*/gru4rec/*.json"))


def test_no_new_run_starts_after_a_run_finishes_past_stop_after(tmp_path):
    # pop finishes (nothing to pause) past the deadline: sasrec is not started only to pause
    out = run_batch(["pop", "sasrec"], results_dir=tmp_path, stop_after_minutes=1e-9, **SMOKE)
    assert [o.status for o in out] == ["ok"]
    assert not list(tmp_path.glob("runs/*/sasrec/*.json"))
    again = run_batch(["pop", "sasrec"], results_dir=tmp_path, **SMOKE)  # the same command
    assert [o.status for o in again] == ["skipped", "ok"]


def test_status_shows_a_run_in_flight_then_paused_then_nothing(tmp_path, monkeypatch):
    from benchmark.claims import Claim
    from benchmark.status import unfinished_runs

    seen, note = [], Claim.note

    def noting(self, **details):  # what `status` shows after every epoch, while it trains
        note(self, **details)
        seen.append(unfinished_runs(tmp_path))

    monkeypatch.setattr(Claim, "note", noting)
    first = run_batch(["sasrec"], results_dir=tmp_path, stop_after_minutes=1e-9, **SMOKE)[0]
    assert first.status == "paused"
    (training,) = seen[-1]
    assert training["state"] == "training" and training["model"] == "sasrec"
    assert training["epochs"] == 1 and training["best (epoch)"].endswith("(1)")
    (paused,) = unfinished_runs(tmp_path)
    assert paused["state"] == "paused" and paused["epochs"] == 1
    assert paused["run"] == training["run"] == first.spec.run_id
    seen.clear()
    assert run_batch(["sasrec"], results_dir=tmp_path, **SMOKE)[0].status == "ok"
    assert seen[1][0]["epochs"] == 1  # a resumed run shows its epochs before its next one ends
    assert unfinished_runs(tmp_path) == []


def test_status_names_a_killed_run_and_how_far_it_got(tmp_path, monkeypatch):
    from benchmark.runner import run_state
    from benchmark.status import unfinished_runs

    with monkeypatch.context() as patch:
        kill_after(patch, "recommender", epoch=1)
        with pytest.raises(Killed):
            run_batch(["sasrec"], results_dir=tmp_path, overrides=LONG, **SMOKE)
    (row,) = unfinished_runs(tmp_path)
    assert row["state"] == "interrupted" and row["model"] == "sasrec" and row["seed"] == 0
    assert row["epochs"] == 2 and "re-run" in row["worker"]  # epochs 0 and 1 checkpointed
    (spec,) = runner.plan_runs(["sasrec"], ["ml-tiny"], profile="smoke", seeds=[0],
                               overrides=LONG, protocol=runner.Protocol())  # fmt: skip
    assert run_state(tmp_path, spec) == "pending"  # probing must not rewrite the notes
    assert unfinished_runs(tmp_path)[0]["epochs"] == 2
    assert run_batch(["sasrec"], results_dir=tmp_path, overrides=LONG, **SMOKE)[0].status == "ok"
    assert unfinished_runs(tmp_path) == []


def test_status_names_a_run_killed_after_an_earlier_failure(tmp_path, monkeypatch):
    from benchmark.status import unfinished_runs

    with monkeypatch.context() as patch:
        patch.setattr(runner.HarnessContext, "validate", lambda *a, **k: 1 / 0)
        failed = run_batch(["sasrec"], results_dir=tmp_path, overrides=LONG, **SMOKE)[0]
    assert failed.status == "failed" and unfinished_runs(tmp_path) == []  # a failure is no pause
    with monkeypatch.context() as patch:
        kill_after(patch, "recommender", epoch=0)
        with pytest.raises(Killed):
            run_batch(["sasrec"], results_dir=tmp_path, overrides=LONG, **SMOKE)
    (row,) = unfinished_runs(tmp_path)  # the failed record is older than the new claim
    assert row["state"] == "interrupted" and row["epochs"] == 1


def test_status_does_not_take_a_skipped_finished_run_for_an_interrupted_one(tmp_path):
    """A later invocation claims a done run for an instant to skip it; that newer claim must not
    read as a worker killed mid-run (it did, and named the live worker "died")."""
    from benchmark.status import unfinished_runs

    assert run_batch(["pop"], results_dir=tmp_path, **SMOKE)[0].status == "ok"
    time.sleep(0.05)  # the skip's claim is newer than the record file
    assert run_batch(["pop"], results_dir=tmp_path, **SMOKE)[0].status == "skipped"
    assert unfinished_runs(tmp_path) == []


def test_status_names_a_forced_rerun_killed_before_its_first_epoch(tmp_path, monkeypatch):
    from benchmark.status import unfinished_runs

    assert run_batch(["sasrec"], results_dir=tmp_path, **SMOKE)[0].status == "ok"
    time.sleep(0.05)
    with monkeypatch.context() as patch:

        def killed(*args, **kwargs):
            raise Killed

        patch.setattr(runner.HarnessContext, "validate", killed)
        with pytest.raises(Killed):
            run_batch(["sasrec"], results_dir=tmp_path, force=True, **SMOKE)
    (row,) = unfinished_runs(tmp_path)
    assert row["state"] == "interrupted"


DAMAGED = {"best": "x", "last": [1], "best_at": "1", "epochs": "3", "seed": True,
           "train_minutes": None, "pid": "7", "since": "yesterday"}  # fmt: skip


def test_status_shows_what_it_can_of_a_damaged_claim_file(tmp_path, capsys):
    from benchmark.status import unfinished_runs

    lock = tmp_path / ".claims" / "ml-tiny" / "sasrec" / "abc.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"run_id": "abc", **DAMAGED, "best": 0.5, "best_at": 2}))
    (row,) = unfinished_runs(tmp_path)
    assert row["state"] == "interrupted" and row["best (epoch)"] == "0.5000 (2)"
    lock.write_text(json.dumps({"run_id": "abc", **DAMAGED}))
    (row,) = unfinished_runs(tmp_path)
    assert row["state"] == "interrupted" and row["run"] == "abc"
    assert (row["epochs"], row["best (epoch)"], row["last"], row["seed"]) == ("?", "-", "-", "?")
    assert "pid ? died" in row["worker"]
    assert main(["status", "--results-dir", str(tmp_path)]) == 0
    assert "abc" in capsys.readouterr().out


def test_status_of_a_paused_run_reads_past_damaged_notes(tmp_path):
    from benchmark.status import unfinished_runs

    paused = run_batch(["sasrec"], results_dir=tmp_path, stop_after_minutes=1e-9, **SMOKE)[0]
    (lock,) = (tmp_path / ".claims").rglob("*.lock")
    lock.write_text(json.dumps({"run_id": paused.spec.run_id, **DAMAGED}))
    (row,) = unfinished_runs(tmp_path)
    assert row["state"] == "paused" and row["epochs"] == 1 and row["seed"] == 0


def test_cold_and_warm_cache_give_the_same_record(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache"))
    cold = run_batch(["tiger"], results_dir=tmp_path / "r", **SMOKE)[0]
    assert not any("semantic-ids" in hit for hit in cold.record["diagnostics"]["cache_hits"])
    warm = run_batch(["tiger"], results_dir=tmp_path / "r", force=True, **SMOKE)[0]
    assert any("semantic-ids" in hit for hit in warm.record["diagnostics"]["cache_hits"])
    same_result(record(cold), record(warm))


def test_records_and_checkpoints_of_other_data_are_never_reused(tmp_path, monkeypatch, capsys):
    """The run id hashes the spec, not the files: a run whose data changed under it (here an
    edited item title) neither resumes the old epochs, nor takes the old record for its
    result, nor overwrites it; a model that does not read the text is not affected."""
    data = tmp_path / "data"
    shutil.copytree(FIXTURE_DIR, data)
    edited = {**SMOKE, "data_dir": data}
    results = tmp_path / "r"
    sasrec = run_batch(["sasrec"], results_dir=results, **edited)[0]
    with monkeypatch.context() as patch:
        kill_after(patch, "recommender", epoch=1)
        with pytest.raises(Killed):
            run_batch(["tiger"], results_dir=results, overrides=LONG, **edited)

    item = data / "ml-tiny" / "ml-tiny.item"
    item.write_text(item.read_text().replace("Toy Story", "Toy Story (edited)", 1))
    capsys.readouterr()
    tiger = run_batch(["tiger"], results_dir=results, overrides=LONG, **edited)[0]
    assert tiger.status == "ok" and tiger.record["diagnostics"]["resumed_from"] == {}
    assert "made from other inputs (item_text" in capsys.readouterr().err
    assert not any("semantic-ids" in hit for hit in tiger.record["diagnostics"]["cache_hits"])
    assert set(tiger.record["inputs"]) == {"interactions", "item_text"}
    assert run_batch(["sasrec"], results_dir=results, **edited)[0].status == "skipped"

    item.write_text(item.read_text().replace("GoldenEye", "GoldenEye (edited)", 1))
    before = tiger.path.read_text()
    again = run_batch(["tiger"], results_dir=results, overrides=LONG, **edited)[0]
    assert again.status == "other data" and "item_text" in again.note
    assert tiger.path.read_text() == before  # kept, not overwritten
    forced = run_batch(["tiger"], results_dir=results, overrides=LONG, force=True, **edited)[0]
    assert forced.status == "ok" and forced.record["inputs"] != tiger.record["inputs"]
    assert sasrec.record["inputs"] == {"interactions": sasrec.record["dataset"]["fingerprint"]}


def test_selection_metric_must_be_computable(tmp_path, capsys):
    base = ["run", "--models", "pop", "--dataset", "ml-tiny", "--data-dir", str(FIXTURE_DIR)]
    base += ["--results-dir", str(tmp_path), "--quiet"]
    assert main([*base, "--ks", "5"]) == 2
    err = capsys.readouterr().err
    assert "ndcg@10 needs K=10 in --ks" in err and "Traceback" not in err
    assert not list(tmp_path.glob("runs/**/*.json"))  # nothing written
    assert main([*base, "--ks", "5", "--select", "mrr@6"]) == 2
    assert main([*base, "--ks", "5", "--select", "recall@5"]) == 0
    (path,) = tmp_path.glob("runs/**/*.json")
    rec = json.loads(path.read_text())
    assert rec["protocol"]["selection"] == "recall@5" and "recall@5" in rec["curve"][0]


def test_budget_is_shared_across_stages_and_a_skipped_stage_is_marked(tmp_path):
    out = run_batch(["unigrec"], results_dir=tmp_path, budget_minutes=1e-6, **SMOKE)[0]
    assert out.status == "ok", out.record.get("traceback")
    diagnostics = out.record["diagnostics"]
    assert diagnostics["stopped_by_budget"] and diagnostics["skipped_stages"] == ["finetune"]
    assert len(out.record["curve"]) == 1  # one joint epoch, then the budget was spent


def test_building_a_cached_artifact_leaves_the_callers_random_streams_alone(tmp_path):
    import random

    import numpy as np
    import torch

    from benchmark.cache import DiskCache

    def create():  # consumes every generator, as model construction or training would
        return [torch.rand(3), np.random.rand(3), random.random()]

    cache = DiskCache(tmp_path)
    torch.manual_seed(7), np.random.seed(7), random.seed(7)
    built = cache.get_or_create("thing", {"k": 1}, create)  # cold: builds
    after_cold = (torch.rand(2), np.random.rand(2), random.random())
    torch.manual_seed(7), np.random.seed(7), random.seed(7)
    loaded = cache.get_or_create("thing", {"k": 1}, create)  # warm: loads
    after_warm = (torch.rand(2), np.random.rand(2), random.random())
    assert torch.equal(built[0], loaded[0])
    assert torch.equal(after_cold[0], after_warm[0])
    assert np.array_equal(after_cold[1], after_warm[1]) and after_cold[2] == after_warm[2]


def test_a_planted_pickle_in_the_cache_is_refused_and_rebuilt(tmp_path, capsys):
    import pickle

    import numpy as np

    from benchmark.cache import DiskCache

    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))  # would create a file if unpickled

    cache = DiskCache(tmp_path / "cache")
    path = cache.path("text-embeddings", {"k": 1})
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps(Payload()))
    value = cache.get_or_create("text-embeddings", {"k": 1}, lambda: np.ones(3))
    assert not (tmp_path / "pwned").exists()
    assert "warning: cache artifact" in capsys.readouterr().err
    assert np.array_equal(value, np.ones(3))
    assert np.array_equal(cache.get_or_create("text-embeddings", {"k": 1}, None), np.ones(3))


def test_a_truncated_cache_artifact_is_rebuilt(tmp_path):
    import numpy as np

    from benchmark.cache import DiskCache

    cache = DiskCache(tmp_path)
    cache.get_or_create("thing", {"k": 2}, lambda: np.arange(1000))
    path = cache.path("thing", {"k": 2})
    path.write_bytes(path.read_bytes()[:100])  # cut, as a full disk or a crash would
    value = cache.get_or_create("thing", {"k": 2}, lambda: np.arange(1000))
    assert np.array_equal(value, np.arange(1000)) and not cache.hits


def test_tokenizer_seed_fixes_the_tokenizer_and_leaves_the_recommender_seeded(tmp_path):
    """``tokenizer_seed=0`` on seed 1 reuses seed 0's cached tokenizer (same IDs), while the
    recommender still trains under seed 1; unset, the field stays out of the config dict."""
    base = run_batch(["tiger"], results_dir=tmp_path / "a", seeds=[0], **SMOKE)[0]
    assert "tokenizer_seed" not in base.record["model"]["config"]
    fixed = run_batch(
        ["tiger"], results_dir=tmp_path / "b", seeds=[1], overrides=["tokenizer_seed=0"], **SMOKE
    )[0]
    own = run_batch(["tiger"], results_dir=tmp_path / "c", seeds=[1], **SMOKE)[0]
    assert fixed.record["model"]["config"]["tokenizer_seed"] == 0
    assert any("semantic-ids" in hit for hit in fixed.record["diagnostics"]["cache_hits"])
    assert fixed.record["diagnostics"]["sid"] == base.record["diagnostics"]["sid"]
    assert own.record["diagnostics"]["sid"] != base.record["diagnostics"]["sid"]
    assert fixed.record["curve"][0]["loss"] != base.record["curve"][0]["loss"]


class _ScriptedScores(StubContext):
    """Validation scores from a list; optionally out of budget from the first epoch."""

    def __init__(self, scores: list[float], budget_spent: bool = False):
        super().__init__(3)
        self.scores, self.budget_spent = scores, budget_spent

    def validate(self, epoch: int, extra: dict | None = None) -> float:
        return self.scores[epoch]

    def out_of_budget(self) -> bool:
        return self.budget_spent


class _TinyModel(torch.nn.Linear):
    def __init__(self):
        super().__init__(2, 2)
        self.diagnostics: dict = {}

    def resume_extras(self) -> dict:
        return {}

    def load_resume_extras(self, extras: dict) -> None:
        pass


@pytest.mark.parametrize(
    ("scores", "budget_spent", "stopped_by", "best"),
    [
        ([1, 2, 3, 4], False, "epoch cap", 3),  # still rising when the cap came
        ([4, 3, 2, 1], False, "early stopping", 0),  # patience 2 runs out after epoch 2
        ([1, 2, 3, 4], True, "time budget", 0),
    ],
)
def test_what_ended_a_stage_is_recorded(scores, budget_spent, stopped_by, best):
    model = _TinyModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    stopper = train_epochs_with_resume(
        model,
        _ScriptedScores(scores, budget_spent),
        stage="joint",
        epochs=4,
        patience=2,
        optimizer=optimizer,
        scheduler=None,
        run_epoch=lambda epoch: {},
    )
    assert stopper.best_epoch == best and stopper.stopped_by == stopped_by
    assert model.diagnostics["stopped_by"] == {"joint": stopped_by}


def test_a_diverged_loss_fails_the_stage_instead_of_ranking_with_garbage():
    model = _TinyModel()
    with pytest.raises(TrainingDiverged, match="joint diverged at epoch 1: mean loss is nan"):
        train_epochs_with_resume(
            model,
            _ScriptedScores([1, 2, 3, 4], False),
            stage="joint",
            epochs=4,
            patience=2,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            scheduler=None,
            run_epoch=lambda epoch: {"loss": [0.5, float("nan")][min(epoch, 1)]},
        )


def test_a_run_whose_loss_turns_nan_is_recorded_as_failed(tmp_path, monkeypatch):
    from models.generative import GenerativeRecommender

    original = GenerativeRecommender.training_loss

    def nan_loss(self, histories, targets):
        return original(self, histories, targets) * float("nan")

    monkeypatch.setattr(GenerativeRecommender, "training_loss", nan_loss)
    out = run_batch(["tiger"], results_dir=tmp_path, **SMOKE)[0]
    assert out.status == "failed" and "diverged at epoch 0" in out.record["error"]


def test_the_time_budget_leaves_out_building_artifacts(tmp_path, tiny_data):
    """A cold cache must not cost a budgeted run epochs: the budget counts training only."""
    import time

    from benchmark.cache import DiskCache
    from benchmark.data import Protocol
    from benchmark.runner import HarnessContext

    cache = DiskCache(tmp_path / "artifacts")
    ctx = HarnessContext(
        None, tiny_data, Protocol(), 0, cache, torch.device("cpu"), budget_minutes=0.6 / 60
    )

    def slow_build(seconds: float, inner: bool = False):
        time.sleep(seconds)
        if inner:  # a nested build (LETTER's teacher inside its tokenizer) counts once
            cache.get_or_create("inner", {"k": 1}, lambda: slow_build(0.2))
        return torch.zeros(1)

    cache.get_or_create("outer", {"k": 1}, lambda: slow_build(0.8, inner=True))
    assert 1.0 <= ctx.artifact_seconds() <= ctx.elapsed()
    assert not ctx.out_of_budget()  # 1 s spent, all of it building
    hits = cache.build_seconds
    cache.get_or_create("outer", {"k": 1}, lambda: slow_build(5))  # cached: free, no build
    assert cache.build_seconds == hits
    time.sleep(0.7)
    assert ctx.out_of_budget()


def test_the_same_run_into_two_results_folders_never_shares_its_checkpoints_at_once(tmp_path):
    """Claims are per results folder; the epoch checkpoints are per spec: a second worker
    training the same spec into another folder leaves the run to the first."""
    from benchmark.claims import try_claim
    from benchmark.data import cache_root
    from benchmark.runner import plan_runs, resolve_configs

    protocol = runner.Protocol()
    configs = resolve_configs(["pop"], ["ml-tiny"], "smoke", [])
    (spec,) = plan_runs(["pop"], ["ml-tiny"], profile="smoke", seeds=[0], overrides=[],
                        protocol=protocol, configs=configs)  # fmt: skip
    slot = try_claim(cache_root() / "checkpoints" / f"{spec.checkpoint_key}.lock")
    try:
        held = run_batch(["pop"], results_dir=tmp_path / "b", **SMOKE)[0]
    finally:
        slot.release()
    assert held.status == "claimed" and not (tmp_path / "b" / "runs").exists()
    from benchmark.status import unfinished_runs

    assert unfinished_runs(tmp_path / "b") == []  # left to the other worker: not a dead one
    assert run_batch(["pop"], results_dir=tmp_path / "b", **SMOKE)[0].status == "ok"


def test_a_run_resumed_from_a_checkpoint_older_than_artifact_timing_stays_marked(
    tmp_path, tiny_data
):
    """Its clock charged artifact builds before: every later resume keeps it an old-rule run
    (no artifact_seconds in its record), not only the first."""
    from benchmark.cache import DiskCache
    from benchmark.checkpoints import RunCheckpoints
    from benchmark.data import Protocol
    from benchmark.runner import HarnessContext

    slot = RunCheckpoints(tmp_path / "checkpoints", "k")
    slot.save("recommender", {"epoch": 0, "finished": False, "curve": [], "elapsed": 1.0})

    def resumed() -> HarnessContext:
        ctx = HarnessContext(None, tiny_data, Protocol(), 0, DiskCache(tmp_path / "a"),
                             torch.device("cpu"), checkpoints=slot)  # fmt: skip
        assert ctx.resume("recommender") is not None
        return ctx

    first = resumed()
    assert first.artifacts_untracked
    first.checkpoint("recommender", {"epoch": 1, "finished": False})
    assert resumed().artifacts_untracked


@pytest.mark.parametrize(
    ("model", "short", "long", "reopened"),
    [
        ("tiger", ["epochs=2"], ["epochs=4"], "recommender"),
        # UniGRec: its joint stage keeps its cap, the fine-tuning stage gets a larger one
        ("unigrec", ["epochs=2", "finetune_epochs=2"], ["epochs=2", "finetune_epochs=3"],
         "finetune"),
    ],
)  # fmt: skip
def test_a_run_capped_by_epochs_continues_under_a_larger_cap(
    tmp_path, monkeypatch, model, short, long, reopened
):
    """Raising the cap of a run whose stage ended at it trains only the extra epochs, and gives
    the record an uninterrupted run with the larger cap gives."""
    patience = ["patience=10", "finetune_patience=10"] if model == "unigrec" else ["patience=10"]
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "fresh"))
    whole = run_batch([model], results_dir=tmp_path / "a", overrides=[*long, *patience], **SMOKE)
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache"))
    capped = run_batch([model], results_dir=tmp_path / "b", overrides=[*short, *patience], **SMOKE)
    assert capped[0].record["diagnostics"]["stopped_by"][reopened] == "epoch cap"
    longer = run_batch([model], results_dir=tmp_path / "b", overrides=[*long, *patience], **SMOKE)
    assert longer[0].status == "ok", longer[0].record.get("traceback")
    resumed = longer[0].record["diagnostics"]["resumed_from"]
    assert reopened in resumed and resumed[reopened] >= 1  # continued, not started over
    same_result(record(whole[0]), record(longer[0]))


def test_a_capped_run_is_not_extended_with_force_or_when_its_description_is_damaged(
    tmp_path, capsys
):
    short, long = ["epochs=2", "patience=10"], ["epochs=3", "patience=10"]
    run_batch(["sasrec"], results_dir=tmp_path / "a", overrides=short, **SMOKE)
    forced = run_batch(["sasrec"], results_dir=tmp_path / "b", overrides=long, force=True, **SMOKE)
    assert forced[0].record["diagnostics"]["resumed_from"] == {}  # from scratch means it

    run_batch(["sasrec"], results_dir=tmp_path / "c", overrides=short, **SMOKE)
    (meta,) = (tmp_path / "cache" / "checkpoints" / "capped").glob("*/capped.json")
    meta.write_text(json.dumps({"stages": ["recommender"], "stopped_by": {}, "caps": {
        "recommender": None}, "device": runner.device_name(torch.device("cpu"))}))  # fmt: skip
    capsys.readouterr()
    damaged = run_batch(["sasrec"], results_dir=tmp_path / "d", overrides=long, **SMOKE)[0]
    assert damaged.status == "ok" and damaged.record["diagnostics"]["resumed_from"] == {}
    assert "ignored capped run" in capsys.readouterr().err


def test_an_extended_run_paused_and_resumed_drops_the_capped_run_it_outgrew(tmp_path):
    """The capped run a longer run continued is deleted once that run early-stops, also when
    the longer run was paused in between (its later invocation no longer extends anything)."""
    short, long = ["epochs=2", "patience=3"], ["epochs=40", "patience=3"]  # 2 epochs: no early stop
    run_batch(["sasrec"], results_dir=tmp_path, overrides=short, **SMOKE)

    def capped_folders() -> list:
        return list((tmp_path / "cache" / "checkpoints" / "capped").glob("*/capped.json"))

    assert capped_folders()
    paused = run_batch(["sasrec"], results_dir=tmp_path, overrides=long, stop_after_minutes=1e-9,
                       **SMOKE)[0]  # fmt: skip
    assert paused.status == "paused" and capped_folders()
    done = run_batch(["sasrec"], results_dir=tmp_path, overrides=long, **SMOKE)[0]
    assert done.status == "ok", done.record.get("traceback")
    assert done.record["diagnostics"]["stopped_by"]["recommender"] == "early stopping"
    assert not capped_folders()
