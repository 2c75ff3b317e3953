"""Hyperparameter search with Optuna, under the same budget for every model.

``python -m benchmark tune --model M --dataset D --trials N`` searches ``M.SEARCH_SPACE`` (declared
next to the model's config) with a seeded TPE sampler. Each trial is one training run of the
benchmark protocol; its objective is the protocol's validation selection metric (``--select``,
default NDCG@10; the test split is removed from the data a trial sees, so selection can never look
at it). The validation callback of every epoch reports to
the trial, and a median pruner stops trials that fall behind.

The study lives in Optuna storage (default: ``results/tune/<dataset>/<model>.db``, SQLite) under
the name ``<model>-<dataset>-<profile>``. Running the command again resumes it: finished
(complete or pruned) trials count toward ``--trials``. Several processes given the same
``--storage`` URL work on one study. Trials write no result records; their validation metrics are
trial user attributes. The best configuration goes to
``results/tuned/<dataset>/<profile>/<model>.yaml`` (with the protocol it was searched under beside
it, ``<model>.json``), which ``run --tuned`` reads through :func:`load_tuned`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy
import torch
import yaml
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from benchmark.atomic import write_json_atomic, write_text_atomic
from benchmark.cache import key_hash
from benchmark.data import Protocol, cache_root, load_sequence_data
from benchmark.datasets import check_dataset
from benchmark.errors import BenchmarkError, ConfigError
from benchmark.log import logger
from benchmark.paths import check_name, check_writable_folder
from benchmark.records import now
from benchmark.runner import (
    Pruned,
    RunSpec,
    build_config,
    default_device,
    execute_run,
    resolve_model,
)
from models.base import Model, SequenceData

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # the states that use up the trial budget
# Identity of a study: resuming it with any of these changed would mix incomparable trials.
IDENTITY = ("model", "dataset", "profile", "seed", "fingerprint", "protocol", "search_space")


# ---------------------------------------------------------------------------- search space
def check_search_space(model_cls: type[Model]) -> dict[str, tuple]:
    """Return ``model_cls.SEARCH_SPACE`` after checking every entry; empty spaces are errors."""
    space = model_cls.SEARCH_SPACE
    if not space:
        raise BenchmarkError(
            f"model {model_cls.name!r} declares no SEARCH_SPACE, so there is nothing to tune; add "
            f"one next to its Config in {model_cls.__module__} (format: see models/base.py)"
        )
    fields = {f.name for f in dataclasses.fields(model_cls.Config)}
    for key, spec in space.items():
        where = f"{model_cls.__qualname__}.SEARCH_SPACE[{key!r}]"
        if key not in fields:
            raise ConfigError(f"{where}: {key!r} is not a field of {model_cls.Config.__name__}")
        kind, *args = spec
        ok = (kind in ("float", "int") and len(args) in (2, 3) and args[2:] in ([], ["log"])) or (
            kind == "categorical" and len(args) == 1 and isinstance(args[0], list | tuple)
        )
        if not ok:
            raise ConfigError(
                f"{where} = {spec!r}; expected ('float'|'int', low, high[, 'log']) "
                "or ('categorical', [choice, ...])"
            )
    return space


def suggest(trial: optuna.Trial, space: dict[str, tuple]) -> dict[str, Any]:
    """Draw one configuration (config key -> value) from a checked search space."""
    params: dict[str, Any] = {}
    for key, (kind, *args) in space.items():
        if kind == "categorical":
            params[key] = trial.suggest_categorical(key, list(args[0]))
        else:
            draw = trial.suggest_float if kind == "float" else trial.suggest_int
            params[key] = draw(key, args[0], args[1], log=args[2:] == ["log"])
    return params


# ---------------------------------------------------------------------------- Optuna parts
class TrialSeededTPE(BaseSampler):
    """TPE whose random draws for trial ``n`` come from the seed ``(seed, n)``.

    A plain ``TPESampler(seed=s)`` repeats its first random configurations whenever a study is
    resumed or a second worker joins it. Trial numbers are unique within a study, so seeding per
    trial avoids the repeats and keeps a single-process study reproducible.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._number, self._tpe = -1, TPESampler(seed=seed)

    def _for(self, trial: FrozenTrial) -> TPESampler:
        if trial.number != self._number:
            trial_seed = int(np.random.SeedSequence([self.seed, trial.number]).generate_state(1)[0])
            self._number, self._tpe = trial.number, TPESampler(seed=trial_seed)
        return self._tpe

    # The sampler interface, delegated to this trial's TPESampler.
    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, name: str, distribution: BaseDistribution
    ) -> Any:
        return self._for(trial).sample_independent(study, trial, name, distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._for(trial).after_trial(study, trial, state, values)


def make_pruner() -> optuna.pruners.BasePruner:
    """Median pruning once 5 trials have finished, never on a trial's first epoch."""
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


def pruning_hook(trial: optuna.Trial) -> Callable[[int, float], None]:
    """The ``on_validate`` callback of one trial: report the validation selection metric per
    epoch, stop when told."""

    def on_validate(epoch: int, value: float) -> None:
        trial.report(value, epoch)
        if trial.should_prune():
            raise Pruned(f"trial {trial.number} pruned at epoch {epoch} (selection {value:.4f})")

    return on_validate


# A worker beats every HEARTBEAT_SECONDS; a trial without a beat for two intervals is failed.
HEARTBEAT_SECONDS = int(os.environ.get("GENREC_TUNE_HEARTBEAT", "60"))


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Optuna storage for ``url``: ``journal:PATH`` is a journal file (append-only, works for
    many workers on a shared filesystem); anything else a database URL (RDB storage, with a
    heartbeat that marks trials of killed workers as failed)."""
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.removeprefix("journal:")).expanduser()
        if not path.name or path.is_dir():
            raise BenchmarkError(f"--storage {url!r}: give a file path, e.g. journal:study.log")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise BenchmarkError(f"--storage {url!r}: cannot open the journal ({exc})") from None
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}

    def connect() -> optuna.storages.RDBStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_SECONDS
            )

    for delay in (1.0, 2.0, 0.0):
        try:
            return connect()
        except ImportError as exc:  # the URL's database driver is not installed
            raise BenchmarkError(
                f"--storage {url!r}: {exc}; install the driver (e.g. pip install psycopg2-binary "
                "for postgresql://) or use a sqlite:/// file"
            ) from None
        except sqlalchemy.exc.NoSuchModuleError:
            raise BenchmarkError(
                f"--storage {url!r} is not a database URL optuna knows; use e.g. "
                "sqlite:///path/study.db or postgresql://user@host/db"
            ) from None
        except (sqlalchemy.exc.ArgumentError, ValueError) as exc:
            raise BenchmarkError(f"--storage {url!r} cannot be parsed ({exc})") from None
        except sqlalchemy.exc.SQLAlchemyError as exc:
            if not delay:
                reason = str(exc).splitlines()[0][:200]
                raise BenchmarkError(
                    f"--storage {url!r}: cannot open the database ({reason}); check that the "
                    "path or server exists and is writable"
                ) from None
            # Workers that start together race to create the tables of a new database; the
            # loser finds them there on its next attempt.
            time.sleep(delay)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------- paths
class JournalHeartbeat:
    """Beats for one trial in a journal study, as Optuna's database storages do on their own.

    Optuna's ``JournalStorage`` (the storage for several workers on a shared filesystem) has no
    heartbeat (optuna 5.0), so a killed worker's trial would stay RUNNING forever. A daemon
    thread writes the time into the trial's ``heartbeat`` user attribute every
    ``HEARTBEAT_SECONDS``; :func:`fail_stale_trials` reads it.
    """

    def __init__(self, trial: optuna.Trial) -> None:
        self._trial, self._stop = trial, threading.Event()
        self._beat()
        self._thread = threading.Thread(target=self._run, name="tune-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        self._trial.set_user_attr("heartbeat", time.time())

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self._beat()
            except Exception:  # the journal is unreachable now; the next beat may get through
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def fail_stale_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> list[int]:
    """Mark failed the RUNNING trials whose worker has not beaten for two intervals; returns
    their numbers. Database storages use Optuna's own heartbeat; a journal study uses the
    ``heartbeat`` user attribute of :class:`JournalHeartbeat` (or the trial's start time, for
    a worker killed before its first beat)."""
    if not isinstance(storage, optuna.storages.JournalStorage):
        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        with warnings.catch_warnings():  # experimental in Optuna: warned on every call
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        return sorted(before - after)
    failed, now_s = [], time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        started = trial.datetime_start.timestamp() if trial.datetime_start else now_s
        last = trial.user_attrs.get("heartbeat", started)
        if now_s - last > 2 * HEARTBEAT_SECONDS:
            try:
                storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another worker resuming the study failed it first
            failed.append(trial.number)
    return failed


def check_search_inputs(
    model: str, dataset: str, profile: str, data_dir: Path | None
) -> tuple[type[Model], dict[str, tuple]]:
    """The model class and its search space, after checking every name a search needs (model,
    search space, profile, dataset files, converted once: cached) without splitting the data:
    ``launch --tune`` calls it before it submits workers, so a typo or a malformed file is an
    error here, not in each worker's log."""
    model_cls = resolve_model(model)
    space = check_search_space(model_cls)
    build_config(model_cls, profile, {})
    check_dataset(dataset, data_dir)
    return model_cls, space


def study_name(model: str, dataset: str, profile: str, protocol: Protocol | None = None) -> str:
    """``<model>-<dataset>-<profile>``, plus the protocol's hash when it is not the default:
    searches under different protocols are different studies (and tuned files)."""
    return f"{model}-{dataset}-{profile}{_protocol_tag(protocol)}"


def _protocol_tag(protocol: Protocol | None) -> str:
    if protocol is None or protocol.to_dict() == Protocol().to_dict():
        return ""
    return f".{key_hash(protocol.to_dict())[:8]}"


FILE_STORAGES = ("journal:", "sqlite:///")


def _file_storage(url: str) -> tuple[str, Path] | None:
    """The prefix and file of a journal or SQLite storage URL; None for a database server."""
    prefix = next((p for p in FILE_STORAGES if url.startswith(p)), None)
    return None if prefix is None else (prefix, Path(url.removeprefix(prefix)).expanduser())


def canonical_storage(url: str) -> str:
    """``url`` with a journal or SQLite file as an absolute path: one study reached as
    ``results/...`` or ``./results/...`` or from another folder is one storage."""
    file = _file_storage(url)
    return url if file is None else file[0] + str(file[1].resolve())


def default_storage(results_dir: Path, model: str, dataset: str) -> str:
    path = (
        Path(results_dir)
        / "tune"
        / check_name(dataset, "dataset")
        / f"{check_name(model, 'model')}.db"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def tuned_path(
    results_dir: Path, model: str, dataset: str, profile: str, protocol: Protocol | None = None
) -> Path:
    """``<results>/tuned/<dataset>/<profile>/<model>.yaml``: a search under one profile says
    nothing about another's sizes, so each profile keeps its own; a search under another than
    the default protocol is ``<model>.<protocol hash>.yaml`` beside it (never overwriting)."""
    name = check_name(model, "model") + _protocol_tag(protocol)
    return (
        Path(results_dir)
        / "tuned"
        / check_name(dataset, "dataset")
        / check_name(profile, "profile")
        / f"{name}.yaml"
    )


def tuned_loader(
    results_dir: Path, profile: str, protocol: Protocol
) -> Callable[[str, str], dict[str, Any]]:
    """``--tuned`` (``run`` and ``launch``): each (model, dataset)'s searched config under
    ``profile``, refused when it was searched under another protocol."""
    return functools.partial(load_tuned, results_dir, profile=profile, protocol=protocol)


def load_tuned(
    results_dir: Path,
    model: str,
    dataset: str,
    profile: str,
    protocol: Protocol | None = None,
) -> dict[str, Any]:
    """The tuned config keys of ``model`` on ``dataset`` under ``profile`` (``run --tuned``
    starts from them); with ``protocol``, checked against the one the search selected on (its
    identity is kept beside the YAML, ``<model>.json``)."""
    path = tuned_path(results_dir, model, dataset, profile, protocol)
    if not path.exists():
        flags = _protocol_flags(protocol.to_dict()) if protocol is not None else ""
        raise BenchmarkError(
            f"no tuned configuration for {model} on {dataset} with profile {profile} ({path} is "
            f"missing); create it with `python -m benchmark tune --model {model} --dataset "
            f"{dataset} --profile {profile}{flags} --results-dir {results_dir}`"
        )
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f":{where.line + 1}" if where is not None else ""
        reason = getattr(exc, "problem", None) or exc
        raise BenchmarkError(
            f"{path}{line} is not valid YAML ({reason}); fix it or re-run `tune` to rewrite it"
        ) from None
    if not isinstance(values, dict) or not values:
        raise BenchmarkError(f"{path} holds no `key: value` lines; re-run `tune` to rewrite it")
    searched = _searched_under(path.with_suffix(".json"))
    if protocol is not None and searched is not None and searched != protocol.to_dict():
        differ = sorted(k for k in {**searched, **protocol.to_dict()}
                        if searched.get(k) != protocol.to_dict().get(k))  # fmt: skip
        raise BenchmarkError(
            f"{path} was searched under another protocol ({', '.join(differ)} differ: "
            f"{ {k: searched.get(k) for k in differ} }); run with those flags, or re-run `tune` "
            "with this run's"
        )
    return values


def _searched_under(path: Path) -> dict[str, Any] | None:
    """The protocol a tuned YAML was searched under (None: no identity file, e.g. hand-written)."""
    if not path.exists():
        return None
    try:
        protocol = json.loads(path.read_text(encoding="utf-8")).get("protocol")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        raise BenchmarkError(f"{path} is not the JSON `tune` writes; re-run `tune`") from None
    return protocol if isinstance(protocol, dict) else None


# ---------------------------------------------------------------------------- tune
@dataclass
class TuneResult:
    study_name: str
    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    counts: dict[str, int]  # trials per state name
    path: Path  # the tuned YAML


def tune(
    model: str,
    dataset: str,
    *,
    trials: int = 30,
    timeout: float | None = None,
    profile: str = "quick",
    seed: int = 0,
    data_dir: Path | None = None,
    results_dir: Path = Path("results"),
    storage: str | None = None,
    protocol: Protocol | None = None,
    device: torch.device | None = None,
    quiet: bool = False,
) -> TuneResult:
    """Add trials to the study of (model, dataset, profile) until ``trials`` have finished or
    ``timeout`` seconds pass, then write the best configuration. See the module docstring."""
    if trials <= 0:
        raise BenchmarkError(f"--trials must be positive, got {trials}")
    model_cls, space = check_search_inputs(model, dataset, profile, data_dir)
    check_writable_folder(results_dir, "results folder", "--results-dir")
    check_writable_folder(cache_root(), "cache folder", "GENREC_CACHE_DIR")
    protocol = protocol or Protocol()
    device = device or default_device()
    data = load_sequence_data(dataset, data_dir, protocol.max_history)
    protocol.check_against(data)
    if quiet:
        optuna.logging.set_verbosity(optuna.logging.WARNING)

    name = study_name(model, dataset, profile, protocol)
    storage = canonical_storage(storage or default_storage(results_dir, model, dataset))
    opened = open_storage(storage)
    study = optuna.create_study(
        study_name=name,
        storage=opened,
        sampler=TrialSeededTPE(seed),
        pruner=make_pruner(),
        direction="maximize",
        load_if_exists=True,
    )
    identity = {
        "model": model,
        "dataset": dataset,
        "profile": profile,
        "seed": seed,
        "fingerprint": data.fingerprint,
        "protocol": protocol.to_dict(),
        "search_space": json.loads(json.dumps(space)),  # as the storage gives it back
    }
    _record_identity(study, identity)
    study.set_user_attr("budget", {"trials": trials, "timeout_s": timeout})
    # Trials whose worker died (no heartbeat for two intervals) are marked failed now, so the
    # summary never shows them RUNNING and the trial count is right.
    fail_stale_trials(study, opened)

    remaining = trials - len(study.get_trials(deepcopy=False, states=FINISHED))
    if remaining > 0:
        objective = _objective(
            model_cls,
            space,
            data,
            profile,
            seed,
            protocol,
            device,
            quiet,
            beat=isinstance(opened, optuna.storages.JournalStorage),
        )
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=timeout,
            catch=(Exception,),  # a failing configuration is recorded and the search goes on
            callbacks=[
                # and after every trial (Optuna does this itself only for database storages): a
                # worker that died mid-search leaves no RUNNING trial in the summary
                lambda study, _trial: fail_stale_trials(study, opened),
                optuna.study.MaxTrialsCallback(trials, states=FINISHED),
            ],
        )
    return _save_best(study, results_dir, model, dataset, storage)


def _record_identity(study: optuna.Study, identity: dict[str, Any]) -> None:
    stored = study.user_attrs
    changed = [k for k in IDENTITY if k in stored and stored[k] != identity[k]]
    if changed:
        raise BenchmarkError(
            f"study {study.study_name} was started with a different {', '.join(changed)}; "
            "resuming would mix incomparable trials. Use another --storage or delete the study"
        )
    for key, value in identity.items():
        study.set_user_attr(key, value)


def _objective(
    model_cls: type[Model],
    space: dict[str, tuple],
    data: SequenceData,
    profile: str,
    seed: int,
    protocol: Protocol,
    device: torch.device,
    quiet: bool,
    beat: bool = False,
) -> Callable[[optuna.Trial], float]:
    # Trials never see the test split: selection must rest on validation metrics only.
    no_test = dataclasses.replace(
        data, test_users=data.test_users[:0], test_histories=[], test_targets=data.test_targets[:0]
    )
    worker = f"{platform.node()}:{os.getpid()}"

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker)
        heartbeat = JournalHeartbeat(trial) if beat else None
        try:
            config = build_config(model_cls, profile, suggest(trial, space))
            spec = RunSpec(
                model_cls.name, data.name, profile, seed, config.to_dict(), protocol.to_dict()
            )
            result = execute_run(
                spec, model_cls, config, no_test, protocol, device, quiet, pruning_hook(trial)
            )
        except Pruned as exc:
            raise optuna.TrialPruned(str(exc)) from None
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
            raise
        finally:
            if heartbeat is not None:
                heartbeat.stop()  # before optuna finishes the trial: no beat after that
        trial.set_user_attr("valid", result["valid"])
        trial.set_user_attr("best_epoch", result["diagnostics"].get("best_epoch"))
        trial.set_user_attr("train_seconds", result["diagnostics"]["train_seconds"])
        return result["valid"][protocol.selection]

    return objective


def _protocol_flags(protocol: dict[str, Any]) -> str:
    """The ``run`` flags that give ``protocol`` where it is not the default one."""
    default, flags = Protocol().to_dict(), []
    if protocol.get("max_history") != default["max_history"]:
        flags.append(f" --max-history {protocol['max_history']}")
    if list(protocol.get("ks", [])) != list(default["ks"]):
        flags.append(f" --ks {','.join(map(str, protocol['ks']))}")
    if protocol.get("selection") != default["selection"]:
        flags.append(f" --select {protocol['selection']}")
    return "".join(flags)


def _counts(trials: Sequence[optuna.trial.FrozenTrial]) -> dict[str, int]:
    """Trials per state name (``complete``, ``pruned``, ``fail``, ``running``), non-zero only."""
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    return {state: n for state, n in counts.items() if n}


def study_counts(storage: str, name: str) -> dict[str, int]:
    """Trials per state of study ``name`` in ``storage``; empty when there is no such study
    (a storage file that does not exist yet is not created)."""
    file = _file_storage(storage)
    if file is not None and not file[1].is_file():
        return {}
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(storage))
    except KeyError:  # the storage holds other studies only
        return {}
    return _counts(study.get_trials(deepcopy=False))


def _warn_if_another_study_wrote(identity: Path, storage: str) -> None:
    """`tune` (SQLite by default) and `launch --tune` (a journal file) keep separate studies of
    the same name that write the same tuned file: say so when one replaces the other's."""
    try:
        before = json.loads(identity.read_text(encoding="utf-8")).get("storage")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return
    if before and before != storage:
        logger.warning(
            f"{identity.with_suffix('.yaml')} held the best of the study in {before}; "
            f"it now holds the best of {storage} (pass the same --storage to continue one study)"
        )


def _save_best(
    study: optuna.Study, results_dir: Path, model: str, dataset: str, storage: str
) -> TuneResult:
    all_trials = study.get_trials(deepcopy=False)
    counts = _counts(all_trials)
    complete = [t for t in all_trials if t.state == TrialState.COMPLETE]
    if not complete:
        errors = [t.user_attrs["error"] for t in all_trials if "error" in t.user_attrs]
        last = f"; last error: {errors[-1]}" if errors else ""
        raise BenchmarkError(f"no trial of study {study.study_name} has completed {counts}{last}")
    best = study.best_trial
    attrs = study.user_attrs
    fields_ = {f.name for f in dataclasses.fields(Protocol)}
    searched = {k: v for k, v in attrs["protocol"].items() if k in fields_}
    searched = Protocol(**{**searched, "ks": tuple(searched.get("ks", Protocol().ks))})
    path = tuned_path(results_dir, model, dataset, attrs["profile"], searched)
    header = [
        f"tuned by `python -m benchmark tune --model {model} --dataset {dataset} --profile "
        f"{attrs['profile']}{_protocol_flags(attrs['protocol'])}`; "
        f"use with `run --models {model} --dataset {dataset} --profile {attrs['profile']}"
        f"{_protocol_flags(attrs['protocol'])} --tuned`",
        f"study: {study.study_name} (profile {attrs['profile']}, seed {attrs['seed']}, "
        f"dataset fingerprint {attrs['fingerprint']})",
        f"best validation {attrs['protocol'].get('selection', 'ndcg@10')}: {best.value:.6f} "
        f"(trial {best.number})",
        f"trials: {sum(counts.get(s.name.lower(), 0) for s in FINISHED)} finished {counts}, "
        f"budget {attrs['budget']}",
        f"date: {now()}",
    ]
    text = "".join(f"# {line}\n" for line in header)
    text += yaml.safe_dump(dict(best.params), sort_keys=True)
    _warn_if_another_study_wrote(path.with_suffix(".json"), storage)
    write_text_atomic(path, text)
    identity = {k: attrs[k] for k in ("profile", "protocol", "fingerprint", "seed")}
    write_json_atomic(
        path.with_suffix(".json"), {"study": study.study_name, "storage": storage, **identity}
    )
    return TuneResult(study.study_name, dict(best.params), best.value, best.number, counts, path)
