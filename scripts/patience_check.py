"""Did early stopping cut a run short? Compare runs retrained with a longer patience (or a
higher epoch cap) against the grid runs they repeat.

A check run is the grid run's spec with other ``patience`` / ``epochs``; with a learning-rate
schedule that does not depend on the planned length, its first epochs must reproduce the grid
run's curve exactly, and what it trains beyond the grid run's stop says whether a later epoch
would have been chosen. For each pair the table gives both stops, whether the shared epochs
are identical, the best epoch of each, and both test scores (the same ranks when the best
epoch did not move).

    python -m scripts.patience_check --check results/patience --grid results \
        [--markdown results/patience/check.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tabulate import tabulate

from benchmark.records import RecordError, RunRecord

STOPPING_KEYS = ("patience", "epochs", "finetune_patience", "finetune_epochs")
TIMING = ("seconds", "valid_seconds")


def stripped(record: RunRecord) -> tuple[str, ...]:
    """What identifies the run apart from its stopping rule."""
    spec = dict(record.spec)
    config = {k: v for k, v in spec.pop("config").items() if k not in STOPPING_KEYS}
    return repr(sorted(spec.items())), repr(sorted(config.items()))


def load_ok(results_dir: Path) -> list[RunRecord]:
    out = []
    for path in sorted((results_dir / "runs").rglob("*.json")):
        try:
            record = RunRecord.load(path)
        except RecordError as exc:
            print(f"skipped {path}: {exc}", file=sys.stderr)
            continue
        if record.status == "ok" and record.curve:  # (pop trains no epochs: nothing to check)
            out.append(record)
    return out


def best_epoch(record: RunRecord, selection: str) -> int:
    scores = [point.get(selection) for point in record.curve]
    return max(range(len(scores)), key=lambda i: (scores[i] is not None, scores[i] or 0.0))


def compare(check: RunRecord, grid: RunRecord) -> dict[str, Any]:
    selection = check.protocol.get("selection", "ndcg@10")
    shared = min(len(check.curve), len(grid.curve))

    def points(record: RunRecord) -> list[dict[str, Any]]:
        return [{k: v for k, v in p.items() if k not in TIMING} for p in record.curve[:shared]]

    config = check.spec["config"]
    old, new = best_epoch(grid, selection), best_epoch(check, selection)
    return {
        "dataset": check.dataset["name"] if isinstance(check.dataset, dict) else check.dataset,
        "model": check.spec["model"],
        "seed": check.seed,
        "check rule": f"patience {config.get('patience')}, cap {config.get('epochs')}",
        "epochs (grid -> check)": f"{len(grid.curve)} -> {len(check.curve)}",
        "shared epochs identical": points(check) == points(grid),
        "best epoch (grid -> check)": f"{old + 1} -> {new + 1}",
        f"valid {selection} (grid -> check)": (
            f"{grid.curve[old][selection]:.4f} -> {check.curve[new][selection]:.4f}"
        ),
        "test recall@10 (grid -> check)": f"{grid.test['recall@10']:.4f} -> "
        f"{check.test['recall@10']:.4f}",
        "test ndcg@10 (grid -> check)": f"{grid.test['ndcg@10']:.4f} -> "
        f"{check.test['ndcg@10']:.4f}",
        "same test ranks": check.test_ranks == grid.test_ranks,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", type=Path, required=True, help="results folder of the check runs")
    p.add_argument("--grid", type=Path, default=Path("results"), help="results of the grid")
    p.add_argument("--markdown", type=Path, help="also write the table here")
    args = p.parse_args(argv)
    grid: dict[tuple[str, ...], RunRecord] = {}
    for record in load_ok(args.grid):
        twin = grid.setdefault(stripped(record), record)
        if twin is not record:  # two stopping rules of one run: which one was checked?
            p.error(
                f"{args.grid} holds {twin.run_id} and {record.run_id}, the same run under two "
                "stopping rules; point --grid at a folder with one of them"
            )
    rows, unmatched = [], []
    for check in load_ok(args.check):
        twin = grid.get(stripped(check))
        if twin is None:
            unmatched.append(f"{check.spec['model']} seed {check.seed} ({check.run_id})")
        else:
            rows.append(compare(check, twin))
    rows.sort(key=lambda r: (r["dataset"], r["model"], r["seed"]))
    table = tabulate(rows, headers="keys", tablefmt="github")
    print(table)
    if unmatched:
        print(f"no grid run under {args.grid} repeats: {', '.join(unmatched)}", file=sys.stderr)
    if args.markdown:
        args.markdown.write_text(
            "<!-- python -m scripts.patience_check "
            f"--check {args.check} --grid {args.grid} --markdown {args.markdown} -->\n\n"
            + table
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
