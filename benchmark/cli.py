"""Command line: ``python -m benchmark run|ls|datasets|leaderboard|tune``."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmark.errors import BenchmarkError, ConfigError
from benchmark.registry import split_names

DEFAULT_DATASET = "ml-100k"

EXAMPLES = {
    "run": """examples:
  python -m benchmark run --models pop,sasrec
  python -m benchmark run --models tiger,letter --dataset office --data-dir ../shared/data \\
      --seeds 0,1,2 --threads 1
  python -m benchmark run --models tiger --set lr=1e-3 --set tiger.beam_size=30
  python -m benchmark run --models unigrec --dataset beauty --stop-after 170   # again to resume
  python -m benchmark run --models sasrec --time-budget 2.5 --label "sasrec (2.5 min)"
""",
    "tune": """examples:
  python -m benchmark tune --models sasrec --dataset office --trials 30
  python -m benchmark tune --models tiger --storage journal:results/tune/tiger.journal
  python -m benchmark run --models sasrec --dataset office --tuned
""",
    "launch": """examples:
  python -m benchmark launch --models tiger,letter --dataset office --seeds 0,1,2 \\
      --executor slurm --partition gpu --gpus-per-job 1 --runs-per-job 4
  python -m benchmark launch --models tiger,letter --dataset office --seeds 0,1,2 --status
  python -m benchmark launch --models pop,sasrec --executor local --workers 2 --wait
  python -m benchmark launch --tune tiger --dataset office --workers 4 --trials 40
""",
    "ls": "example:\n  python -m benchmark ls --names\n",
    "status": "example:\n  python -m benchmark status --results-dir results\n",
    "datasets": "example:\n  python -m benchmark datasets --data-dir ../shared/data\n",
    "leaderboard": """examples:
  python -m benchmark leaderboard                        # results/leaderboard.md, site/, ...
  python -m benchmark leaderboard --results-dir results/schedules --no-figures
""",
}


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


def _seed(text: str) -> int:
    seeds = _seeds(text)
    if len(seeds) != 1:
        raise argparse.ArgumentTypeError(f"one seed, like 0; got {text!r}")
    return seeds[0]


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


def idle_cores() -> int:
    """Cores not busy with other work (cores minus the 1-minute load average), at least 1.

    torch defaults to one OpenMP thread per core; next to another busy process those threads
    spin and wait for each other (the README's first run took about 12x longer at 2 threads on
    a 2-core machine with one core taken), so the default uses only idle cores."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        return cores
    return max(1, min(cores, round(cores - load)))


def _set_threads(threads: int | None) -> None:
    import torch

    torch.set_num_threads(threads or idle_cores())


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


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive whole number, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _grid_args(parser: argparse.ArgumentParser, models_required: bool = True) -> None:
    """The flags that define a grid's runs (and so their run ids): shared by run and launch."""
    parser.add_argument(
        "--models", required=models_required, help="comma-separated model names (see `ls`)"
    )
    parser.add_argument(
        "--dataset",
        default=DEFAULT_DATASET,
        help=f"comma-separated dataset names (default {DEFAULT_DATASET})",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder holding dataset files (default: $GENREC_DATA_DIR)",
    )
    parser.add_argument(
        "--profile",
        default="quick",
        choices=["smoke", "quick", "paper"],
        help="hyperparameter profile (default quick)",
    )
    parser.add_argument("--seeds", type=_seeds, default=[0], help="comma-separated (default 0)")
    parser.add_argument(
        "--results-dir", type=Path, default=Path("results"), help="default: results"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for all models, or MODEL.KEY=VALUE for one; repeatable "
        "(default: the profile's values)",
    )
    _add_protocol_flags(parser, "validation metric for early stopping")
    parser.add_argument(
        "--time-budget",
        type=_positive_float,
        default=None,
        metavar="MINUTES",
        help="cap each run's training time; it stops after the epoch that exceeds it "
        "(default: train to early stopping)",
    )
    parser.add_argument(
        "--stop-after",
        type=_positive_float,
        default=None,
        metavar="MINUTES",
        help="pause runs after the epoch that passes MINUTES of wall-clock in this invocation; "
        "the same command continues them (default: no pause)",
    )
    parser.add_argument(
        "--label", default=None, help="leaderboard name for this variant (default: the model name)"
    )
    parser.add_argument(
        "--tuned",
        action="store_true",
        help="start from the config `tune` searched under this profile and protocol "
        "(<results-dir>/tuned/<dataset>/<profile>/<model>[.<protocol hash>].yaml)",
    )
    parser.add_argument(
        "--save-models",
        type=Path,
        default=None,
        metavar="DIR",
        help="save each trained model to DIR/<dataset>/<model>/<run_id>.pt",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug messages too (default: info)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="train and evaluate models; one result record per run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES["run"],
    )
    _grid_args(run)
    run.add_argument("--force", action="store_true", help="re-run completed runs from scratch")
    run.add_argument(
        "--quiet", action="store_true", help="no progress bars or epoch lines; one line per run"
    )
    run.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch CPU threads (default: the idle cores, cores minus the load average)",
    )

    launch = sub.add_parser(
        "launch",
        help="submit a grid (or a search) as Slurm array jobs or local worker processes",
        description=(
            "Expand the grid as `run` would (same flags, same run ids) and submit the runs that "
            "are not done and not held by a live worker."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES["launch"],
    )
    _grid_args(launch, models_required=False)
    launch.add_argument(
        "--executor",
        choices=["slurm", "local"],
        default="slurm",
        help="slurm job array or local processes (default slurm)",
    )
    launch.add_argument("--partition", default=None, help="Slurm partition (default: cluster's)")
    launch.add_argument(
        "--gpus-per-job",
        type=_non_negative_int,
        default=0,
        help="GPUs per Slurm job (default 0; local workers share this machine's GPUs, one each)",
    )
    launch.add_argument(
        "--cpus-per-job", type=_positive_int, default=4, help="CPUs per Slurm job (default 4)"
    )
    launch.add_argument(
        "--time", type=_positive_int, default=240, help="job time limit in minutes (default 240)"
    )
    launch.add_argument(
        "--array-parallelism",
        type=_positive_int,
        default=32,
        help="Slurm array tasks running at once (default 32)",
    )
    launch.add_argument(
        "--sbatch",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra #SBATCH option, repeatable, e.g. --sbatch account=proj (default: none)",
    )
    launch.add_argument(
        "--runs-per-job",
        type=_positive_int,
        default=1,
        help="runs packed into one Slurm job, run one after another (default 1)",
    )
    launch.add_argument(
        "--workers",
        type=_positive_int,
        default=2,
        help="local processes (--executor local) or tune workers (--tune) (default 2)",
    )
    launch.add_argument(
        "--log-dir",
        type=Path,
        default=None,
        help="job logs (default: <results-dir>/launch/<date-time>)",
    )
    launch.add_argument(
        "--status",
        action="store_true",
        help="only summarise the grid: done, running, pending (with --tune: the study's trials)",
    )
    launch.add_argument(
        "--wait", action="store_true", help="wait for the jobs and report their outcome"
    )
    launch.add_argument("--tune", default=None, metavar="MODEL", help="run a search instead")
    launch.add_argument(
        "--trials", type=_positive_int, default=30, help="--tune: finished trials (default 30)"
    )
    launch.add_argument(
        "--storage",
        default=None,
        help="--tune: shared study storage "
        "(default journal:<results-dir>/tune/<dataset>/<model>.journal)",
    )

    tune = sub.add_parser(
        "tune",
        help="Optuna search over a model's SEARCH_SPACE; writes results/tuned/...",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES["tune"],
    )
    tune.add_argument(
        "--model", "--models", dest="model", required=True, help="one model name (see `ls`)"
    )
    tune.add_argument(
        "--dataset", default=DEFAULT_DATASET, help=f"one dataset name (default {DEFAULT_DATASET})"
    )
    tune.add_argument(
        "--trials",
        type=int,
        default=30,
        help="finished trials the study should hold; a resumed study counts its earlier ones "
        "(default 30)",
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
    tune.add_argument(
        "--profile",
        default="quick",
        choices=["smoke", "quick", "paper"],
        help="hyperparameter profile the search starts from (default quick)",
    )
    tune.add_argument("--seed", type=_seed, default=0, help="training seed and sampler seed")
    # the protocol the search selects under; `run --tuned` refuses a config searched under another
    _add_protocol_flags(tune, "validation metric the search maximises")
    tune.add_argument(
        "--data-dir", type=Path, default=None, help="dataset files (default: $GENREC_DATA_DIR)"
    )
    tune.add_argument("--results-dir", type=Path, default=Path("results"), help="default: results")
    tune.add_argument("--quiet", action="store_true", help="one line per trial at most")
    tune.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch CPU threads (default: the idle cores)",
    )

    ls = sub.add_parser(
        "ls",
        help="list registered models and datasets",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES["ls"],
    )
    ls.add_argument("--names", action="store_true", help="only model names, comma-separated")
    status = sub.add_parser(
        "status",
        help="runs training now (with their epoch and best validation score) and paused runs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES["status"],
    )
    status.add_argument(
        "--results-dir", type=Path, default=Path("results"), help="default: results"
    )
    datasets = sub.add_parser(
        "datasets",
        help="dataset statistics and whether files are found",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES["datasets"],
    )
    datasets.add_argument(
        "--data-dir", type=Path, default=None, help="dataset files (default: $GENREC_DATA_DIR)"
    )

    board = sub.add_parser(
        "leaderboard",
        help="regenerate tables, figures and the web page from result records",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES["leaderboard"],
    )
    board.add_argument("--results-dir", type=Path, default=Path("results"), help="default: results")
    board.add_argument("--no-figures", action="store_true", help="tables and web page only")
    return parser


def main(argv: list[str] | None = None) -> int:
    from benchmark.log import configure
    from benchmark.records import git_commit

    args = build_parser().parse_args(argv)
    configure(quiet=getattr(args, "quiet", False), verbose=getattr(args, "verbose", False))
    git_commit()  # the code version is the one loaded now, not HEAD when a later run starts
    try:
        status = COMMANDS[args.command](args)
        sys.stdout.flush()  # a pipe's buffered output meets a closed reader here, not at exit
        return status
    except (BenchmarkError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `status | head`: the reader left; say nothing more (Python docs'
        devnull = os.open(os.devnull, os.O_WRONLY)  # recipe: stdout's flush at exit would fail)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _add_protocol_flags(parser: argparse.ArgumentParser, select_help: str) -> None:
    """--max-history, --ks and --select: the evaluation protocol (``_protocol`` reads them)."""
    parser.add_argument(
        "--max-history", type=_positive_int, default=20, help="items per history (default 20)"
    )
    parser.add_argument(
        "--ks", type=_ks, default=(5, 10, 20), help="cut-offs K of the metrics (default 5,10,20)"
    )
    parser.add_argument(
        "--select",
        default="ndcg@10",
        metavar="METRIC@K",
        help=f"{select_help} (default ndcg@10; K must be in --ks)",
    )


def _protocol(args: argparse.Namespace):
    from benchmark.data import Protocol

    return Protocol(max_history=args.max_history, ks=args.ks, selection=args.select)


def _tuned(args: argparse.Namespace):
    """``--tuned``'s loader (optuna is imported only when it is asked for)."""
    if not args.tuned:
        return None
    from benchmark.tuning import tuned_loader

    return tuned_loader(args.results_dir, args.profile, _protocol(args))


def cmd_run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from benchmark.datasets import default_data_dir
    from benchmark.runner import run_batch

    _set_threads(args.threads)
    outcomes = run_batch(
        _names(args.models, "--models", "model"),
        _names(args.dataset, "--dataset", "dataset"),
        profile=args.profile,
        seeds=args.seeds,
        results_dir=args.results_dir,
        data_dir=args.data_dir or default_data_dir(),
        force=args.force,
        overrides=args.overrides,
        protocol=_protocol(args),
        quiet=args.quiet,
        tuned=_tuned(args),
        budget_minutes=args.time_budget,
        label=args.label,
        save_models=args.save_models,
        stop_after_minutes=args.stop_after,
    )
    rows = []
    for out in outcomes:
        rec = out.record or {}
        test, diag = rec.get("test") or {}, rec.get("diagnostics") or {}
        if out.note:  # a record of other data: its numbers are not this run's
            test, diag, rec = {}, {}, {"error": out.note}
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
    other = [o for o in outcomes if o.status == "other data"]
    if other:
        print(
            f"{len(other)} run(s) not run: their records were made from other data, and are "
            "kept; give the new data its own --results-dir, or add --force to replace them:",
            *(f"  {o.path}" for o in other),
            sep="\n",
            file=sys.stderr,
        )
    return 1 if failed or other else 0


def cmd_tune(args: argparse.Namespace) -> int:
    from benchmark.datasets import default_data_dir
    from benchmark.tuning import tune

    datasets = _names(args.dataset, "--dataset", "dataset")
    if len(datasets) != 1:
        raise BenchmarkError("tune searches on one --dataset at a time; run one search per dataset")
    _set_threads(args.threads)
    result = tune(
        args.model,
        datasets[0],
        trials=args.trials,
        timeout=args.timeout,
        profile=args.profile,
        protocol=_protocol(args),
        seed=args.seed,
        data_dir=args.data_dir or default_data_dir(),
        results_dir=args.results_dir,
        storage=args.storage,
        quiet=args.quiet,
    )
    counts = ", ".join(f"{n} {state}" for state, n in result.counts.items())
    print(f"study {result.study_name}: {counts}")
    print(f"best validation {args.select} {result.best_value:.4f} (trial {result.best_trial}):")
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


def cmd_status(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from benchmark.status import unfinished_runs

    rows = unfinished_runs(args.results_dir)
    if not rows:
        print(f"nothing is training or paused under {args.results_dir}")
        return 0
    print(tabulate(rows, headers="keys"))
    print("epochs: finished so far, all stages; best: validation selection metric (epoch)")
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
    from benchmark.leaderboard import build_leaderboard, load_records, summarize, write_leaderboard
    from benchmark.site import write_site

    board = build_leaderboard(load_records(args.results_dir))  # loaded once, for every view
    summaries = [summarize(table) for table in board.tables]
    written = write_leaderboard(args.results_dir, board=board, summaries=summaries)
    figures: list[Path] = []
    if not args.no_figures:
        from benchmark.figures import write_figures

        figures = write_figures(args.results_dir, args.results_dir / "figures", board=board)
    written += figures + write_site(board, summaries, args.results_dir, figures)
    for path in written:
        print(path)
    return 0


def cmd_launch(args: argparse.Namespace) -> int:
    from benchmark.launch import Grid, Resources, grid_status, job_results, launch_grid

    resources = Resources(
        executor=args.executor,
        partition=args.partition,
        gpus_per_job=args.gpus_per_job,
        cpus_per_job=args.cpus_per_job,
        time_minutes=args.time,
        array_parallelism=args.array_parallelism,
        sbatch=args.sbatch,
        runs_per_job=args.runs_per_job,
        workers=args.workers,
    )
    if args.tune:
        return _launch_tune(args, resources)
    if not args.models:
        raise BenchmarkError("launch needs --models (or --tune MODEL)")
    grid = Grid(
        models=_names(args.models, "--models", "model"),
        datasets=_names(args.dataset, "--dataset", "dataset"),
        profile=args.profile,
        seeds=args.seeds,
        overrides=args.overrides,
        max_history=args.max_history,
        ks=args.ks,
        selection=args.select,
        budget_minutes=args.time_budget,
        label=args.label,
        results_dir=args.results_dir,
        data_dir=args.data_dir or _default_data_dir(),
        stop_after_minutes=args.stop_after,
        tuned=args.tuned,
        save_models=args.save_models,
    )
    counts, states = grid_status(grid)
    summary = ", ".join(
        f"{counts[s]} {s}" for s in ("done", "running", "paused", "failed", "pending")
    )
    if args.status:
        for spec, state in states:
            print(
                f"{state:8} {spec.dataset:12} {spec.model:14} seed {spec.seed}  run {spec.run_id}"
            )
        print(f"{len(states)} runs: {summary}")
        return 0
    with submitted(launch_grid(grid, resources, args.log_dir)) as jobs:
        if not jobs:
            print(f"nothing to launch ({summary})")
            return 0
        first = jobs[0].job_id
        print(f"{len(jobs)} job(s) submitted for {len(states)} runs ({summary}); first {first}")
        if not args.wait:
            return 0
        results, lost = job_results(jobs)
    totals: dict[str, int] = {}
    for result in results:
        for status, n in result.items():
            totals[status] = totals.get(status, 0) + n
    print("jobs finished: " + ", ".join(f"{n} {s}" for s, n in sorted(totals.items())))
    for line in lost:
        print(f"error: {line}", file=sys.stderr)
    return 1 if totals.get("failed") or lost else 0


@contextlib.contextmanager
def submitted(jobs: list[Any]) -> Iterator[list[Any]]:
    """The submitit jobs, dropped on leaving: a frame of this command can outlive it (optuna
    keeps the traceback of an optional import made under it), and jobs still referenced at
    interpreter exit print a TypeError from their ``__del__``."""
    try:
        yield jobs
    finally:
        jobs.clear()


# launch flags that only shape a grid of runs: a search refuses them rather than drop them
GRID_ONLY = {"models": None, "overrides": [], "time_budget": None, "stop_after": None,
             "label": None, "tuned": False, "save_models": None, "runs_per_job": 1}  # fmt: skip


def _launch_tune(args: argparse.Namespace, resources: Any) -> int:
    from benchmark.launch import job_results, launch_tune
    from benchmark.paths import check_writable_folder
    from benchmark.tuning import check_search_inputs, study_counts, study_name

    given = [name for name, default in GRID_ONLY.items() if getattr(args, name) != default]
    if given:
        flags = ", ".join(
            "--" + ("set" if n == "overrides" else n.replace("_", "-")) for n in given
        )
        raise BenchmarkError(f"launch --tune does not take {flags} (they shape a grid of runs)")
    if len(args.seeds) != 1:
        raise BenchmarkError("launch --tune takes one --seeds value: the search's seed")
    datasets = _names(args.dataset, "--dataset", "dataset")
    if len(datasets) != 1:
        raise BenchmarkError("--tune searches on one --dataset at a time")
    folder = args.results_dir / "tune" / datasets[0]
    storage = args.storage or f"journal:{folder / (args.tune + '.journal')}"
    protocol = _protocol(args)
    if args.status:
        name = study_name(args.tune, datasets[0], args.profile, protocol)
        counts = study_counts(storage, name)
        summary = ", ".join(f"{n} {state}" for state, n in counts.items()) or "no trials yet"
        print(f"study {name} on {storage}: {summary}")
        return 0
    log_dir = args.log_dir or args.results_dir / "launch" / f"tune-{args.tune}"
    kwargs = dict(
        trials=args.trials,
        profile=args.profile,
        protocol=protocol,
        seed=args.seeds[0],
        data_dir=args.data_dir or _default_data_dir(),
        results_dir=args.results_dir,
        storage=storage,
        quiet=True,
    )
    check_writable_folder(args.results_dir, "results folder", "--results-dir")
    check_search_inputs(args.tune, datasets[0], args.profile, kwargs["data_dir"])
    with submitted(
        launch_tune(args.tune, datasets[0], args.workers, resources, kwargs, log_dir)
    ) as jobs:
        print(f"{len(jobs)} tune worker(s) on study storage {storage}; logs in {log_dir}")
        if not args.wait:
            return 0
        names, lost = job_results(jobs)
    if names:
        print(f"study {', '.join(sorted(set(names)))}: done")
    for line in lost:
        print(f"error: {line}", file=sys.stderr)
    return 1 if lost else 0


def _default_data_dir():
    from benchmark.datasets import default_data_dir

    return default_data_dir()


COMMANDS = {
    "run": cmd_run,
    "launch": cmd_launch,
    "tune": cmd_tune,
    "ls": cmd_ls,
    "status": cmd_status,
    "datasets": cmd_datasets,
    "leaderboard": cmd_leaderboard,
}
