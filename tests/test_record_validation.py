"""A record whose fields have the wrong type or value is refused where it is read: the leaderboard
skips it with one warning line naming the file and the field, and ``run`` moves it aside and
runs it again, never treating it as done (no pandas traceback, no lost result)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmark.cli import main
from benchmark.records import RecordError, RunRecord, read_record
from benchmark.runner import run_batch, run_state
from tests.conftest import FIXTURE_DIR
from tests.test_leaderboard import build, write_run

SMOKE = dict(datasets=["ml-tiny"], profile="smoke", data_dir=FIXTURE_DIR, quiet=True)


def _set(path: str, value: Any):
    """An edit of one field of a parsed record; ``path`` like ``test.ndcg@10`` or ``curve.0``."""

    def edit(record: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for part in parents:
            record = record[int(part)] if isinstance(record, list) else record[part]
        if isinstance(record, list):
            record[int(last)] = value
        else:
            record[last] = value

    return edit


def _edit(path: Path, edit) -> None:
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))


BROKEN = {  # the audit's three, then their relatives
    "finished_yesterday": (_set("finished_at", "yesterday"), "finished_at must be an ISO 8601"),
    "metric_string": (_set("test.ndcg@10", "high"), 'test["ndcg@10"] must be a number'),
    "protocol_string": (_set("protocol", "loo"), "protocol must be a JSON object"),
    "metric_bool": (_set("test.ndcg@10", True), 'test["ndcg@10"] must be a number'),
    "metric_infinite": (_set("test.recall@10", math.inf), "not Infinity"),
    "metric_name": (_set("test.status", 0.5), 'test key "status" is not a metric name'),
    "finished_now": (_set("finished_at", "now"), "finished_at must be an ISO 8601"),
    "finished_far": (_set("finished_at", "9999-01-01T00:00:00+00:00"), "years 1678 to 2261"),
    "status_unknown": (
        _set("status", "done"),
        'status must be one of running, ok, failed, paused, not "done"',
    ),
    "seed_string": (_set("seed", "0"), 'seed must be an integer, not "0"'),
    "spec_seed_bool": (_set("spec.seed", False), "spec.seed must be an integer"),
    "diagnostics_list": (_set("diagnostics", []), "diagnostics must be a JSON object"),
    "model_config": (_set("model.config", "big"), "model.config must be a JSON object"),
    "ks_string": (_set("protocol.ks", "5,10"), "protocol.ks must be a list"),
    "ranks_short": (_set("test_ranks", [1, 2]), "test_users has 60 entries but test_ranks 2"),
    "rank_negative": (_set("test_ranks.3", -1), "test_ranks[3] must be a non-negative integer"),
    "curve_point": (_set("curve", [{"epoch": "one", "ndcg@10": 0.1}]), "curve[0].epoch"),
    "train_seconds": (_set("diagnostics.train_seconds", "10s"), "diagnostics.train_seconds"),
    "sid_levels": (_set("diagnostics.sid", {"levels": [3]}), "diagnostics.sid.levels[0]"),
    "parameters": (_set("model.parameters.inference", "1M"), "model.parameters.inference"),
    "inputs_list": (_set("inputs", ["a1b2"]), "inputs must be a JSON object"),
    "input_number": (_set("inputs", {"interactions": 7}), "inputs.interactions must be a non-"),
}


@pytest.fixture
def board_with_one_broken(tmp_path: Path) -> tuple[Path, Path]:
    """Two good runs; the second's record is the one each test breaks."""
    write_run(tmp_path, "a", 0, [1] * 60)
    write_run(tmp_path, "b", 0, [2] * 60)
    return tmp_path, next((tmp_path / "runs" / "toy" / "b").glob("*.json"))


@pytest.mark.parametrize("case", BROKEN)
def test_a_mistyped_record_is_refused_naming_the_field(board_with_one_broken, case) -> None:
    _, path = board_with_one_broken
    edit, message = BROKEN[case]
    _edit(path, edit)
    with pytest.raises(RecordError) as caught:
        RunRecord.load(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)
    assert read_record(path) is None  # what the runner's "is it done" looks at


@pytest.mark.parametrize("case", ["finished_yesterday", "metric_string", "protocol_string"])
def test_the_leaderboard_skips_it_with_one_warning(board_with_one_broken, capsys, case) -> None:
    root, path = board_with_one_broken
    edit, message = BROKEN[case]
    _edit(path, edit)
    md, csv, _ = build(root)
    err = capsys.readouterr().err
    assert set(csv["model"]) == {"a"}
    assert err.count("warning: skipped") == 1 and "Traceback" not in err
    assert f"skipped {path}: " in err and message in err and "fix or delete the file" in err


def test_the_leaderboard_command_skips_every_audited_defect(tmp_path: Path, capsys) -> None:
    write_run(tmp_path, "a", 0)
    for model, case in (
        ("b", "finished_yesterday"),
        ("c", "metric_string"),
        ("d", "protocol_string"),
    ):
        write_run(tmp_path, model, 0)
        _edit(next((tmp_path / "runs" / "toy" / model).glob("*.json")), BROKEN[case][0])
    assert main(["leaderboard", "--results-dir", str(tmp_path), "--no-figures"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: skipped") == 3 and "Traceback" not in err
    for model in "bcd":
        assert f"runs/toy/{model}/" in err


def test_missing_values_and_nulls_still_load(board_with_one_broken) -> None:
    """NaN is a missing metric; optional fields may be null or absent."""
    root, path = board_with_one_broken
    _edit(path, _set("test.ndcg@10", math.nan))
    _edit(path, _set("finished_at", None))
    _edit(path, _set("diagnostics", {"best_epoch": None, "sid": None}))
    assert math.isnan(RunRecord.load(path).test["ndcg@10"])
    build(root)


def test_run_moves_a_mistyped_record_aside_and_runs_again(tmp_path: Path, capsys) -> None:
    first = run_batch(["pop"], results_dir=tmp_path, **SMOKE)[0]
    good = json.loads(first.path.read_text())
    for broken in ({"status": "ok", "test": [1, 2]}, {**good, "finished_at": "yesterday"}):
        first.path.write_text(json.dumps(broken))
        assert run_state(tmp_path, first.spec) == "pending"  # not "done"
        again = run_batch(["pop"], results_dir=tmp_path, **SMOKE)[0]
        assert again.status == "ok"
        assert RunRecord.load(again.path).test == good["test"]
        assert run_state(tmp_path, first.spec) == "done"
    aside = sorted(first.path.parent.glob(f"{first.path.name}.unreadable-*"))
    assert len(aside) == 2  # both kept, even when set aside within one second
    assert {json.loads(p.read_text()).get("finished_at") for p in aside} == {None, "yesterday"}
    err = capsys.readouterr().err
    assert err.count(f"warning: {first.path}: ") == 2 and "Traceback" not in err
    assert "finished_at must be an ISO 8601" in err and "re-running" in err
