"""What is training now and what is paused: ``python -m benchmark status``.

A run in flight is a claim held by a live worker (:mod:`benchmark.claims`); its worker notes
in the claim file how far it got after every epoch. A paused run (``run --stop-after``, or a
budget) is a record with status ``paused`` and its curve so far. Neither needs the worker's
log, so this works for background and cluster workers alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmark.claims import claim_owner
from benchmark.errors import BenchmarkError
from benchmark.records import RecordError, RunRecord
from benchmark.runner import progress_of

COLUMNS = ("state", "dataset", "model", "seed", "run", "epochs", "best (epoch)", "last",
           "train min", "worker")  # fmt: skip


def unfinished_runs(results_dir: Path) -> list[dict[str, Any]]:
    """One row per run in flight (claimed by a live worker) or paused, in flight first."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise BenchmarkError(f"--results-dir {results_dir} is not a folder of run records")
    rows, in_flight = [], set()
    for lock in sorted((results_dir / ".claims").rglob("*.lock")):
        owner = claim_owner(lock)
        if owner is None:  # nobody holds it: a finished or killed run's leftover file
            continue
        dataset, model = lock.parent.parent.name, lock.parent.name
        in_flight.add((dataset, model, lock.stem))
        since = owner.get("since")
        started = (
            datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M UTC")
            if isinstance(since, (int, float))
            else "?"
        )
        rows.append(
            _row(
                "training",
                dataset,
                model,
                owner.get("seed", "?"),
                lock.stem,
                owner,
                f"{owner.get('host', '?')} pid {owner.get('pid', '?')} since {started}",
            )
        )
    for path in sorted((results_dir / "runs").rglob("*.json")):
        try:
            record = RunRecord.load(path)
        except RecordError:
            continue  # `leaderboard` names unreadable records
        key = (record.spec["dataset"], record.spec["model"], record.run_id)
        if record.status != "paused" or key in in_flight:
            continue
        selection = record.protocol.get("selection", "ndcg@10")
        progress = progress_of(record.curve, selection, stage="")
        rows.append(_row("paused", *key[:2], record.seed, record.run_id, progress, "re-run"))
    return rows


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
