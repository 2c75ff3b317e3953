"""Spread a grid of runs, or one hyperparameter search, over many jobs with submitit.

``launch`` expands the grid exactly as ``run`` does (same flags, same run ids), leaves out runs
that are done or held by a live worker, and submits the rest:

* ``--executor slurm``: a Slurm job array, ``--runs-per-job`` runs per array task (one small
  model leaves a GPU mostly idle, so several runs share a job), with partition, GPUs, CPUs,
  time limit, array parallelism and extra ``#SBATCH`` options;
* ``--executor local``: ``--workers`` local processes sharing this machine's cores, the torch
  threads split between them.

A job runs its runs through :func:`benchmark.runner.run_batch`, so each run is claimed before it
trains (a run is trained once however many jobs overlap), a killed job's claim expires with its
process and a relaunch continues its run from the last epoch checkpoint. A job at its time
limit (or preempted) is requeued by submitit and continues likewise (:class:`_Requeued`);
local workers get this machine's GPUs one each (:func:`local_gpus`). Logs go to one folder
per launch (``<results>/launch/<time>/``); ``--status`` summarises done / running / paused /
failed / pending for the grid. ``--tune MODEL --workers N`` starts N workers on one Optuna study
(by default a journal file, which works on a shared filesystem).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from benchmark.errors import BenchmarkError


@dataclass
class Grid:
    """What ``run`` would do: the flags that define the run ids, and where results go."""

    models: list[str]
    datasets: list[str]
    profile: str = "quick"
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: list[str] = field(default_factory=list)
    max_history: int = 20
    ks: tuple[int, ...] = (5, 10, 20)
    selection: str = "ndcg@10"
    budget_minutes: float | None = None
    label: str | None = None
    results_dir: Path = Path("results")
    data_dir: Path | None = None
    stop_after_minutes: float | None = None
    tuned: bool = False  # start from <results_dir>/tuned/<dataset>/<profile>/<model>.yaml
    save_models: Path | None = None

    def tuned_loader(self):
        from benchmark.tuning import tuned_loader

        return tuned_loader(self.results_dir, self.profile, self.protocol()) if self.tuned else None

    def protocol(self):
        from benchmark.data import Protocol

        return Protocol(max_history=self.max_history, ks=self.ks, selection=self.selection)

    def specs(self):
        from benchmark.runner import plan_runs

        return plan_runs(
            self.models,
            self.datasets,
            profile=self.profile,
            seeds=self.seeds,
            overrides=self.overrides,
            protocol=self.protocol(),
            budget_minutes=self.budget_minutes,
            label=self.label,
            tuned=self.tuned_loader(),
        )


@dataclass
class Resources:
    executor: str = "slurm"  # slurm | local
    partition: str | None = None
    gpus_per_job: int = 0
    cpus_per_job: int = 1
    time_minutes: int = 240
    array_parallelism: int = 32
    sbatch: list[str] = field(default_factory=list)  # KEY=VALUE extra #SBATCH options
    runs_per_job: int = 1
    workers: int = 2  # local executor: parallel processes


def grid_status(grid: Grid) -> tuple[Counter, list[tuple[Any, str]]]:
    """State of every run of the grid (see :func:`benchmark.runner.run_state`)."""
    from benchmark.runner import run_state

    states = [(spec, run_state(grid.results_dir, spec)) for spec in grid.specs()]
    return Counter(state for _, state in states), states


def run_job(
    grid: Grid, runs: list[tuple[str, str, int]], threads: int, gpu: str | None = None
) -> dict[str, int]:
    """One job: train ``runs`` (dataset, model, seed) of ``grid`` one after another.

    ``gpu``: the ``CUDA_VISIBLE_DEVICES`` of a local worker (see :func:`local_gpus`).
    ``grid.stop_after_minutes`` counts from the job's start, as ``run --stop-after`` does from
    the command's: no run starts after it once one has trained, and a run pauses at it."""
    _use_gpu(gpu)
    import torch

    from benchmark.runner import out_of_time, run_batch

    torch.set_num_threads(max(threads, 1))
    stop_at = time.monotonic() + 60 * grid.stop_after_minutes if grid.stop_after_minutes else None
    outcomes: list = []
    for dataset, model, seed in runs:
        if out_of_time(outcomes, stop_at):
            break
        left = None if stop_at is None else max((stop_at - time.monotonic()) / 60, 1e-9)
        outcomes += run_batch(
            [model],
            [dataset],
            profile=grid.profile,
            seeds=[seed],
            results_dir=grid.results_dir,
            data_dir=grid.data_dir,
            overrides=[o for o in grid.overrides if _applies(o, model)],
            protocol=grid.protocol(),
            quiet=True,
            budget_minutes=grid.budget_minutes,
            label=grid.label,
            stop_after_minutes=left,
            tuned=grid.tuned_loader(),
            save_models=grid.save_models,
        )
    return dict(Counter(o.status for o in outcomes))


def _use_gpu(gpu: str | None) -> None:
    """Show this worker process only its GPU(s): before torch first touches CUDA, which reads
    ``CUDA_VISIBLE_DEVICES`` once (submitit's local executor blanks it for its workers)."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu


def local_gpus(workers: int) -> list[str | None]:
    """The ``CUDA_VISIBLE_DEVICES`` of each local worker: this machine's visible GPUs dealt out
    one per worker, round robin (workers beyond the GPU count share them); None each without a
    GPU. The launching process's own ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs) is respected,
    so ``CUDA_VISIBLE_DEVICES= launch ...`` keeps the workers on the CPU."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        devices = [d.strip() for d in visible.split(",") if d.strip()]
    else:
        import torch

        devices = [str(i) for i in range(torch.cuda.device_count())]
    return [devices[i % len(devices)] if devices else None for i in range(workers)]


class _Requeued(submitit.helpers.Checkpointable):
    """A job function that submitit requeues with the same arguments when its time limit nears
    or it is preempted (Slurm's USR2, or the local executor's own timeout), instead of ending
    the job with an error: the run in training is killed, its claim dies with the process, and
    the requeued job skips finished runs and continues that one from its last epoch
    checkpoint. A tune worker's trial in flight fails (its heartbeat stops), the search goes on."""

    def __init__(self, function):
        self.function = function

    def __call__(self, *args):
        return self.function(*args)


# how often one job may be requeued at its time limit before submitit gives up on it (on the
# local executor its controller restarts a job at most 6 times, so 5 requeues)
MAX_REQUEUES, MAX_LOCAL_REQUEUES = 20, 5


def _applies(override: str, model: str) -> bool:
    scope, dot, _ = override.split("=", 1)[0].partition(".")
    return not dot or scope == model


def _executor(log_dir: Path, resources: Resources, threads: int):
    if resources.executor == "local":
        executor = submitit.LocalExecutor(
            folder=str(log_dir / "%j"), max_num_timeout=MAX_LOCAL_REQUEUES
        )
        executor.update_parameters(timeout_min=resources.time_minutes)
        return executor
    if resources.executor != "slurm":
        raise BenchmarkError(f"--executor must be slurm or local, not {resources.executor!r}")
    if shutil.which("sbatch") is None:
        raise BenchmarkError(
            "--executor slurm: no sbatch on this machine's PATH; run launch on a Slurm login "
            "node, or use --executor local --workers N here"
        )
    executor = submitit.AutoExecutor(
        folder=str(log_dir / "%j"), cluster="slurm", slurm_max_num_timeout=MAX_REQUEUES
    )
    extra: dict[str, str] = {}
    for option in resources.sbatch:
        key, eq, value = option.partition("=")
        if not eq or not key:
            raise BenchmarkError(
                f"--sbatch expects KEY=VALUE (e.g. account=myproj), got {option!r}"
            )
        extra[key.lstrip("-")] = value
    executor.update_parameters(
        timeout_min=resources.time_minutes,
        slurm_partition=resources.partition,
        gpus_per_node=resources.gpus_per_job or None,
        cpus_per_task=threads,
        slurm_array_parallelism=resources.array_parallelism,
        slurm_additional_parameters=extra,
        name="genrec-bench",
    )
    return executor


def done_on_other_data(grid: Grid, states: list[tuple[Any, str]]) -> list[str]:
    """Record paths of the grid's done runs that were made from other inputs than the data
    there now (a run id names the dataset, not its files): ``run`` would refuse to reuse them,
    so a launch must not count them as done. Loads each dataset with a done run once."""
    from benchmark.data import load_sequence_data
    from benchmark.records import read_record, record_path
    from benchmark.runner import changed_inputs, record_inputs, resolve_model

    done = [spec for spec, state in states if state == "done"]
    stale: list[str] = []
    for dataset in dict.fromkeys(spec.dataset for spec in done):
        data = load_sequence_data(dataset, grid.data_dir, grid.max_history)
        for spec in (s for s in done if s.dataset == dataset):
            cls = resolve_model(spec.model)
            inputs = cls.input_fingerprints(cls.Config(**spec.config), data)
            path = record_path(grid.results_dir, spec.dataset, spec.model, spec.run_id)
            if changed_inputs(record_inputs(read_record(path) or {}), inputs):
                stale.append(str(path))
    return stale


def launch_grid(grid: Grid, resources: Resources, log_dir: Path | None = None) -> list[Any]:
    """Submit the grid's unfinished runs; return the submitit jobs (empty: nothing to do)."""
    counts, states = grid_status(grid)  # also validates every name and value before submitting
    stale = done_on_other_data(grid, states)
    if stale:
        raise BenchmarkError(
            f"{len(stale)} done run(s) of this grid were made from other data than "
            f"{grid.data_dir or 'the data folder'} holds now ({', '.join(stale)}); give the new "
            "data its own --results-dir, or move those records aside"
        )
    todo = [spec for spec, state in states if state in ("pending", "failed", "paused")]
    if not todo:
        return []
    log_dir = log_dir or grid.results_dir / "launch" / time.strftime("%Y%m%d-%H%M%S")
    runs = [(spec.dataset, spec.model, spec.seed) for spec in todo]
    if resources.executor == "local":
        workers = max(1, min(resources.workers, len(runs)))
        chunks = [runs[i::workers] for i in range(workers)]
        threads = max(1, (os.cpu_count() or 1) // workers)
    else:
        size = max(1, resources.runs_per_job)
        chunks = [runs[i : i + size] for i in range(0, len(runs), size)]
        threads = resources.cpus_per_job
    executor = _executor(log_dir, resources, threads)
    n = len(chunks)
    return submit(executor, resources, run_job, [grid] * n, chunks, [threads] * n)


def submit(executor: Any, resources: Resources, function: Any, *columns: list) -> list[Any]:
    """``executor.map_array`` of ``function`` (requeued at its time limit), one job per row of
    ``columns``, plus each local worker's GPU as a last argument where this machine has GPUs;
    a refused submission (sbatch's error: partition, account, limits) is a clear error."""
    gpus = local_gpus(len(columns[0])) if resources.executor == "local" else []
    if any(gpus):
        columns = (*columns, gpus)
    try:
        return executor.map_array(_Requeued(function), *columns)
    except (submitit.core.utils.FailedSubmissionError, OSError) as exc:
        message = " ".join(str(exc).split())[:800]
        raise BenchmarkError(
            f"the cluster refused the jobs ({type(exc).__name__}: {message}); check "
            "--partition, --sbatch, --gpus-per-job and --time against what it allows"
        ) from None


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b.*")


def job_results(jobs: list[Any]) -> tuple[list[Any], list[str]]:
    """Each finished job's result, and one line per job that failed or ran out of time (its
    error's last line and its log), so one lost job neither hides the others nor ends in a
    traceback."""
    results, failures = [], []
    for job in jobs:
        try:
            results.append(job.result())
        except submitit.core.utils.UncompletedJobError as exc:
            # the exception's own line at the end of the job's traceback, else submitit's first
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            errors = [line for line in lines if _EXCEPTION_LINE.match(line)]
            reason = errors[-1] if errors else lines[0] if lines else type(exc).__name__
            failures.append(f"job {job.job_id}: {reason[:300]} (log: {job.paths.stderr})")
    return results, failures


def launch_tune(
    model: str,
    dataset: str,
    workers: int,
    resources: Resources,
    tune_kwargs: dict[str, Any],
    log_dir: Path,
) -> list[Any]:
    """``workers`` jobs, each a ``tune`` worker on the same study (``tune_kwargs["storage"]``
    must be shared: a ``journal:PATH`` file or a database URL)."""
    threads = max(1, (os.cpu_count() or 1) // max(workers, 1))
    if resources.executor != "local":
        threads = resources.cpus_per_job
    executor = _executor(log_dir, resources, threads)
    n = max(workers, 1)
    return submit(
        executor, resources, _tune_job, [model] * n, [dataset] * n, [tune_kwargs] * n, [threads] * n
    )


def _tune_job(
    model: str, dataset: str, kwargs: dict[str, Any], threads: int, gpu: str | None = None
) -> str:
    _use_gpu(gpu)
    import torch

    from benchmark.tuning import tune

    torch.set_num_threads(threads)
    return tune(model, dataset, **kwargs).study_name
