"""Command line: ``python -m benchmark run|ls|datasets|leaderboard|tune``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.errors import BenchmarkError, ConfigError
from benchmark.registry import split_names

DEFAULT_DATASET = "ml-100k"


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in split_names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds must be integers like 0,1,2, got {text!r}"
        ) from None
    if not seeds or any(not 0 <= s < 2**32 for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(
            f"seeds must be distinct integers in 0..{2**32 - 1}, like 0,1,2; got {text!r}"
        )
    return seeds


def _ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(s) for s in split_names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"K values must be integers like 5,10,20, got {text!r}"
        ) from None
    if not ks or any(k <= 0 for k in ks):
        raise argparse.ArgumentTypeError(f"every K must be a positive integer, got {text!r}")
    return ks


def _names(text: str, flag: str, what: str) -> list[str]:
    """Comma-separated names: at least one, no duplicates."""
    names = split_names(text)
    if not names:
        raise BenchmarkError(f"{flag} is empty; give at least one {what} name (see `ls`)")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BenchmarkError(f"{flag} names {', '.join(duplicates)} more than once; list each once")
    return names


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train and evaluate models; one result record per run")
    run.add_argument("--models", required=True, help="comma-separated model names (see `ls`)")
    run.add_argument("--dataset", default=DEFAULT_DATASET, help="comma-separated dataset names")
    run.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder holding dataset files (default: $GENREC_DATA_DIR)",
    )
    run.add_argument("--profile", default="quick", choices=["smoke", "quick", "paper"])
    run.add_argument("--seeds", type=_seeds, default=[0])
    run.add_argument("--results-dir", type=Path, default=Path("results"))
    run.add_argument("--force", action="store_true", help="re-run completed runs")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for all models, or MODEL.KEY=VALUE for one",
    )
    run.add_argument("--max-history", type=int, default=20)
    run.add_argument("--ks", type=_ks, default=(5, 10, 20))
    run.add_argument(
        "--select",
        default="ndcg@10",
        metavar="METRIC@K",
        help="validation metric for early stopping (default ndcg@10; K must be in --ks)",
    )
    run.add_argument(
        "--stop-after",
        type=_positive_float,
        default=None,
        metavar="MINUTES",
        help="pause runs after the epoch that passes MINUTES of wall-clock in this invocation; "
        "the same command continues them (default: no pause)",
    )
    run.add_argument(
        "--tuned",
        action="store_true",
        help="start from results/tuned/<dataset>/<model>.yaml (see `tune`)",
    )
    run.add_argument(
        "--quiet", action="store_true", help="no progress bars or epoch lines; one line per run"
    )
    run.add_argument(
        "--time-budget",
        type=_positive_float,
        default=None,
        metavar="MINUTES",
        help="cap each run's training time; it stops after the epoch that exceeds it",
    )
    run.add_argument(
        "--label", default=None, help="leaderboard name for this variant (default: the model name)"
    )
    run.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch CPU threads (default: torch's choice)",
    )
    run.add_argument(
        "--save-models",
        type=Path,
        default=None,
        metavar="DIR",
        help="save each trained model to DIR/<dataset>/<model>/<run_id>.pt",
    )

    tune = sub.add_parser(
        "tune", help="Optuna search over a model's SEARCH_SPACE; writes results/tuned/..."
    )
    tune.add_argument("--model", required=True, help="one model name (see `ls`)")
    tune.add_argument("--dataset", default=DEFAULT_DATASET, help="one dataset name")
    tune.add_argument(
        "--trials",
        type=int,
        default=30,
        help="finished trials the study should hold (a resumed study counts its earlier ones)",
    )
    tune.add_argument(
        "--timeout",
        type=_positive_float,
        default=None,
        help="stop starting trials after S seconds (default: no limit)",
    )
    tune.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL shared by workers (default: sqlite file under results/tune/)",
    )
    tune.add_argument("--profile", default="quick", choices=["smoke", "quick", "paper"])
    tune.add_argument("--seed", type=int, default=0, help="training seed and sampler seed")
    tune.add_argument("--data-dir", type=Path, default=None)
    tune.add_argument("--results-dir", type=Path, default=Path("results"))
    tune.add_argument("--quiet", action="store_true")
    tune.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")

    ls = sub.add_parser("ls", help="list registered models and datasets")
    ls.add_argument("--names", action="store_true", help="only model names, comma-separated")
    datasets = sub.add_parser("datasets", help="dataset statistics and whether files are found")
    datasets.add_argument("--data-dir", type=Path, default=None)

    board = sub.add_parser("leaderboard", help="regenerate tables and figures from result records")
    board.add_argument("--results-dir", type=Path, default=Path("results"))
    board.add_argument("--no-figures", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (BenchmarkError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def cmd_run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from benchmark.data import Protocol
    from benchmark.datasets import default_data_dir
    from benchmark.runner import run_batch

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    tuned = None
    if args.tuned:
        from benchmark.tuning import load_tuned

        tuned = lambda model, dataset: load_tuned(args.results_dir, model, dataset)  # noqa: E731
    outcomes = run_batch(
        _names(args.models, "--models", "model"),
        _names(args.dataset, "--dataset", "dataset"),
        profile=args.profile,
        seeds=args.seeds,
        results_dir=args.results_dir,
        data_dir=args.data_dir or default_data_dir(),
        force=args.force,
        overrides=args.overrides,
        protocol=Protocol(max_history=args.max_history, ks=args.ks, selection=args.select),
        quiet=args.quiet,
        tuned=tuned,
        budget_minutes=args.time_budget,
        label=args.label,
        save_models=args.save_models,
        stop_after_minutes=args.stop_after,
    )
    rows = []
    for out in outcomes:
        rec = out.record or {}
        test, diag = rec.get("test") or {}, rec.get("diagnostics") or {}
        rows.append(
            [
                out.spec.dataset,
                out.spec.model,
                out.spec.seed,
                out.status,
                *(
                    f"{test[m]:.4f}" if m in test else ""
                    for m in ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
                ),
                diag.get("train_seconds", ""),
                rec.get("error") or "",
            ]
        )
    print(
        tabulate(
            rows,
            headers=[
                "dataset",
                "model",
                "seed",
                "status",
                "R@10",
                "N@10",
                "R@20",
                "N@20",
                "train s",
                "error",
            ],
        )
    )
    paused = [o for o in outcomes if o.status == "paused"]
    if paused:
        print(
            f"{len(paused)} run(s) paused by --stop-after; run the same command again to "
            "continue them from their last epoch",
            file=sys.stderr,
        )
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        print(
            f"{len(failed)} run(s) failed; their records hold the error and traceback:",
            *(f"  {o.path}" for o in failed),
            sep="\n",
            file=sys.stderr,
        )
    return 1 if failed else 0


def cmd_tune(args: argparse.Namespace) -> int:
    from benchmark.datasets import default_data_dir
    from benchmark.tuning import tune

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = tune(
        args.model,
        args.dataset,
        trials=args.trials,
        timeout=args.timeout,
        profile=args.profile,
        seed=args.seed,
        data_dir=args.data_dir or default_data_dir(),
        results_dir=args.results_dir,
        storage=args.storage,
        quiet=args.quiet,
    )
    counts = ", ".join(f"{n} {state}" for state, n in result.counts.items())
    print(f"study {result.study_name}: {counts}")
    print(f"best validation NDCG@10 {result.best_value:.4f} (trial {result.best_trial}):")
    for key, value in result.best_params.items():
        print(f"  {key}: {value}")
    print(f"tuned config: {result.path}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from benchmark.datasets import load_cards
    from benchmark.runner import model_registry

    registry = model_registry()
    if args.names:
        print(",".join(registry.names()))
        return 0
    print("models:")
    for name in registry.names():
        cls = registry.get(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"  {name:<12} {doc}")
    print("datasets:")
    cards = load_cards()
    for name in cards.names():
        print(f"  {name:<14} {cards.get(name).description}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from benchmark.data import dataset_stats, load_sequence_data
    from benchmark.datasets import default_data_dir, load_cards

    data_dir = args.data_dir or default_data_dir()
    rows = []
    cards = load_cards()
    for name in cards.names():
        card = cards.get(name)
        missing = card.missing_files(data_dir)
        if missing:
            rows.append([name, "no", "", "", "", "", f"missing: {', '.join(missing)}"])
            continue
        stats = dataset_stats(load_sequence_data(name, data_dir))
        rows.append(
            [
                name,
                "yes",
                stats["n_users"],
                stats["n_items"],
                stats["n_interactions"],
                stats["avg_history"],
                stats["fingerprint"],
            ]
        )
    print(
        tabulate(
            rows,
            headers=[
                "dataset",
                "found",
                "users",
                "items",
                "interactions",
                "avg history",
                "fingerprint / note",
            ],
        )
    )
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from benchmark.leaderboard import write_leaderboard

    written = write_leaderboard(args.results_dir)
    if not args.no_figures:
        from benchmark.figures import write_figures

        written += write_figures(args.results_dir, args.results_dir / "figures")
    for path in written:
        print(path)
    return 0


COMMANDS = {
    "run": cmd_run,
    "tune": cmd_tune,
    "ls": cmd_ls,
    "datasets": cmd_datasets,
    "leaderboard": cmd_leaderboard,
}
