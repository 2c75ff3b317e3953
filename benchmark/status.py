"""What is training now, paused or interrupted: ``python -m benchmark status``.

A run in flight is a claim held by a live worker (:mod:`benchmark.claims`); its worker notes
in the claim file how far it got after every epoch. A paused run (``run --stop-after``, or a
budget) is a record with status ``paused`` and its curve so far. An interrupted run is a claim
file nobody holds whose run has no finished record: its worker died (killed, out of memory, a
cluster job past its time) after the epochs its notes count, all of them checkpointed, so
re-running the same command resumes it. None of this needs the worker's log, so it works for
background and cluster workers alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmark.claims import claim_notes, claim_owner
from benchmark.errors import BenchmarkError
from benchmark.records import RecordError, RunRecord
from benchmark.runner import progress_of

COLUMNS = ("state", "dataset", "model", "seed", "run", "epochs", "best (epoch)", "last",
           "train min", "worker")  # fmt: skip


def unfinished_runs(results_dir: Path) -> list[dict[str, Any]]:
    """One row per run in flight (claimed by a live worker), interrupted or paused, in flight
    first."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise BenchmarkError(f"--results-dir {results_dir} is not a folder of run records")
    rows, in_flight, left = [], set(), {}
    for lock in sorted((results_dir / ".claims").rglob("*.lock")):
        dataset, model = lock.parent.parent.name, lock.parent.name
        owner = claim_owner(lock)
        if owner is None:  # nobody holds it: a finished, paused or killed run's leftover file
            notes = claim_notes(lock)
            if notes.get("run_id") == lock.stem:  # (files older than the notes say nothing)
                left[(dataset, model, lock.stem)] = notes
            continue
        in_flight.add((dataset, model, lock.stem))
        rows.append(
            _row("training", dataset, model, owner.get("seed", "?"), lock.stem, owner,
                 f"{owner.get('host', '?')} pid {owner.get('pid', '?')} since {_since(owner)}")
        )  # fmt: skip
    records: dict[tuple[str, str, str], tuple[RunRecord, float]] = {}
    for path in sorted((results_dir / "runs").rglob("*.json")):
        try:
            record = RunRecord.load(path)
        except RecordError:
            continue  # `leaderboard` names unreadable records
        key = (record.spec["dataset"], record.spec["model"], record.run_id)
        records[key] = record, path.stat().st_mtime
    for key in sorted(set(left) | set(records)):
        (record, written), notes = records.get(key, (None, 0.0)), left.get(key, {})
        if key in in_flight:
            continue
        if notes.get("outcome") == "claimed" and record is None:
            continue  # that worker left the run to another one and trained nothing here
        if record is not None and record.status != "paused":
            # a worker done with the run notes its outcome; claims of workers from before that
            # note say nothing, and one of those that only skipped a finished run noted no
            # progress either
            legacy_skip = (
                record.status == "ok" and "epochs" not in notes and not notes.get("reports_outcome")
            )
            if notes.get("outcome") or legacy_skip or not _claimed_after(notes, written):
                continue  # finished, skipped or failed (and not started again since)
            record = None  # re-run (--force, or after a failure) and killed
        paused = None
        if record is not None:
            selection = record.protocol.get("selection", "ndcg@10")
            paused = progress_of(record.curve, selection, stage="")
        if paused is not None and paused["epochs"] >= notes.get("epochs", 0):
            rows.append(_row("paused", *key[:2], record.seed, key[2], paused, "re-run"))
        else:  # killed after its pause (or before any): the checkpoints are ahead of a record
            seed = notes.get("seed", record.seed if record is not None else "?")
            died = f"re-run to resume (worker pid {notes.get('pid', '?')} died)"
            rows.append(_row("interrupted", *key[:2], seed, key[2], notes, died))
    return rows


def _claimed_after(notes: dict[str, Any], written: float) -> bool:
    """Whether a worker claimed the run again after its record was written (the file's mtime:
    the record's own times keep whole seconds, a smoke run takes less)."""
    since = notes.get("since")
    return isinstance(since, (int, float)) and since > written


def _since(owner: dict[str, Any]) -> str:
    since = owner.get("since")
    if not isinstance(since, (int, float)):
        return "?"
    try:
        return datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, ValueError, OSError):  # a damaged file's time beyond the calendar
        return "?"


def _row(state, dataset, model, seed, run_id, progress, worker) -> dict[str, Any]:
    best, best_at, last = (progress.get(k) for k in ("best", "best_at", "last"))
    return dict(
        zip(
            COLUMNS,
            (
                state,
                dataset,
                model,
                seed,
                run_id,
                progress.get("epochs", "?"),
                f"{best:.4f} ({best_at})" if best is not None else "-",
                f"{last:.4f}" if last is not None else "-",
                progress.get("train_minutes", "-"),
                worker,
            ),
            strict=True,
        )
    )
