"""Run specs, the harness side of the model contract, and the batch runner.

A run is (model, dataset, profile + resolved config, seed, protocol); its id is a hash of that
canonical spec. Completed runs are skipped unless forced; a failing run is recorded with its error
and the batch goes on.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.atomic import torch_save_atomic
from benchmark.cache import DiskCache, key_hash
from benchmark.checkpoints import (
    RunCheckpoints,
    drop_capped,
    extend_from_capped,
    extended_from,
    keep_capped,
)
from benchmark.claims import Claim, claim_owner, try_claim
from benchmark.data import Protocol, cache_root, dataset_stats, load_sequence_data
from benchmark.datasets import check_dataset
from benchmark.embeddings import DEFAULT_ENCODER, encode_texts, encoder_stamp
from benchmark.errors import BenchmarkError, ConfigError, DataError
from benchmark.log import SUMMARY, logger
from benchmark.metrics import headline_metrics, metrics_from_ranks, target_ranks
from benchmark.paths import check_name, check_writable_folder, under
from benchmark.records import (
    ARTIFACT_BUILDS,
    BUDGET_EXCLUDES,
    PeakMemory,
    RecordError,
    RunRecord,
    environment,
    git_commit,
    now,
    read_record,
    record_path,
    save_code_patch,
)
from benchmark.registry import Registry, UnknownNameError
from models.base import Model, ModelConfig, ModelPlugin, SequenceData
from models.catalog import MODELS, PLUGINS
from models.training import STAGE_CAPS, capped_stages, device_key, device_name, seed_everything

TEACHER_MODEL = "sasrec"
TEACHER_PROFILE = "quick"
TEACHER_SEED = 0


class ModelRegistry(Registry[type[Model]]):
    """The catalogue's models (``MODELS``) plus ``<backbone>+<plugin>`` compositions
    (``PLUGINS``), built on request by the plug-in for every backbone it accepts."""

    def __init__(self) -> None:
        super().__init__("model")
        for name, entry in MODELS.items():
            self.register(name, entry)
        self.plugins: Registry[ModelPlugin] = Registry("plugin")
        for name, entry in PLUGINS.items():
            self.plugins.register(name, entry)

    def get(self, name: str) -> type[Model]:
        backbone, plus, plugin_name = name.rpartition("+")
        if not plus:
            return super().get(name)
        if plugin_name not in self.plugins:
            raise UnknownNameError(
                f"cannot build model {name!r}: {self.plugins.unknown_message(plugin_name)} "
                f"Valid compositions: {', '.join(self.compositions()) or 'none'}."
            )
        base = self.get(backbone)
        plugin = self.plugins.get(plugin_name)
        reason = plugin.incompatibility(base)
        if reason is not None:
            valid = [n for n in self.compositions() if n.endswith(f"+{plugin_name}")]
            raise BenchmarkError(
                f"cannot build model {name!r}: {reason}. "
                f"Valid {plugin_name} compositions: {', '.join(valid) or 'none'}."
            )
        return plugin.compose(base)

    def compositions(self) -> list[str]:
        """Every valid ``<backbone>+<plugin>`` name. Imports each backbone; one that fails to
        import is left out here (its own name still reports the error)."""
        names = []
        for plugin_name in self.plugins.names():
            plugin = self.plugins.get(plugin_name)
            for backbone in super().names():
                try:
                    cls = super().get(backbone)
                except ImportError:
                    continue
                if plugin.incompatibility(cls) is None:
                    names.append(f"{backbone}+{plugin_name}")
        return names

    def names(self) -> list[str]:
        return sorted([*super().names(), *self.compositions()])

    def __contains__(self, name: object) -> bool:
        return name in self.names()


def model_registry() -> ModelRegistry:
    return ModelRegistry()


def resolve_model(name: str) -> type[Model]:
    return model_registry().get(name)


def split_overrides(pairs: list[str], model: str) -> dict[str, str]:
    """``--set key=value`` applies to every model; ``--set tiger.key=value`` only to tiger."""
    out: dict[str, str] = {}
    keys = [pair.split("=", 1)[0] for pair in pairs]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise BenchmarkError(f"--set {twice[0]}=... is given more than once; keep one")
    for pair in pairs:
        if "=" not in pair:
            raise BenchmarkError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        scope, dot, bare = key.partition(".")
        if dot:
            if scope == model:
                out[bare] = value
        else:
            out[key] = value
    return out


def build_config(model_cls: type[Model], profile: str, overrides: dict[str, Any]) -> ModelConfig:
    return model_cls.Config.build(profile, model_cls.PROFILES, overrides)


@dataclass
class RunSpec:
    model: str
    dataset: str
    profile: str
    seed: int
    config: dict[str, Any]
    protocol: dict[str, Any]
    budget_minutes: float | None = None  # wall-clock training budget; None = until early stop
    label: str | None = None  # leaderboard name of a variant, e.g. "tiger (LETTER IDs)"

    @property
    def run_id(self) -> str:
        spec = {k: v for k, v in asdict(self).items() if v is not None}  # stable ids of old runs
        return key_hash(spec)[:12]

    @property
    def capped_key(self) -> str | None:
        """The checkpoint key without the epoch caps (``STAGE_CAPS``): where a finished run
        whose stage ended at its cap leaves its checkpoints, for the same run with a larger
        cap. None when the schedule reads the cap (cosine): a larger one changes every step."""
        if self.config.get("lr_schedule") == "cosine":
            return None
        config = {k: v for k, v in self.config.items() if k not in STAGE_CAPS.values()}
        spec = {k: v for k, v in asdict(self).items() if k not in ("budget_minutes", "label")}
        return key_hash({**spec, "config": config})[:12]

    def stage_caps(self) -> dict[str, int]:
        return {stage: self.config[key] for stage, key in STAGE_CAPS.items() if key in self.config}

    @property
    def checkpoint_key(self) -> str:
        """The run id without budget and label: runs that differ only in their wall-clock
        budget share epoch checkpoints, so a budget-stopped run can be extended."""
        spec = {k: v for k, v in asdict(self).items() if k not in ("budget_minutes", "label")}
        return key_hash(spec)[:12]


def changed_inputs(made_from: dict[str, str], now: dict[str, str]) -> list[str]:
    """The inputs whose fingerprints differ between a saved result or checkpoint and this run,
    as ``name was -> now``; an input either side does not name (older records) is not compared."""
    return [
        f"{name} {made_from[name]} -> {value}"
        for name, value in now.items()
        if name in made_from and made_from[name] != value
    ]


def record_inputs(record: dict[str, Any]) -> dict[str, str]:
    """What a record was made from; records written before ``inputs`` name the interactions."""
    if record.get("inputs"):
        return record["inputs"]
    fingerprint = (record.get("dataset") or {}).get("fingerprint")
    return {"interactions": fingerprint} if fingerprint else {}


def progress_of(curve: list[dict[str, Any]], selection: str, stage: str) -> dict[str, Any]:
    """How far a run got, from its validation curve: what ``status`` shows for a run in
    flight (from its claim) or paused (from its record)."""
    scored = [point for point in curve if point.get(selection) is not None]
    best = max(scored, key=lambda point: point[selection], default=None)
    return {
        "stage": stage,
        "epochs": len(curve),
        "train_minutes": round((curve[-1].get("seconds") or 0) / 60, 1) if curve else 0.0,
        "last": scored[-1][selection] if scored else None,
        "best": best[selection] if best else None,
        "best_at": scored.index(best) + 1 if best else None,  # 1-based, over all stages
        "updated": now(),
    }


class Pruned(Exception):
    """Raised from ``validate`` when a tuner stops a trial early."""


class RunPaused(Exception):
    """Raised from ``checkpoint`` once ``run --stop-after`` has passed: the epoch is saved and
    re-running the same command continues after it. Carries the curve and training time so far
    for the paused record, and this invocation's peak memory (long runs share a machine)."""

    def __init__(self, message: str, curve: list[dict[str, Any]], train_seconds: float):
        super().__init__(message)
        self.curve, self.train_seconds = curve, train_seconds
        self.peak_rss_mb: float | None = None


@dataclass
class HarnessContext:
    """The :class:`models.base.FitContext` the harness lends a model."""

    model: Model
    data: SequenceData
    protocol: Protocol
    seed: int
    cache: DiskCache
    device: torch.device
    valid_sample: int | None = 5000
    on_validate: Callable[[int, float], None] | None = None  # Optuna pruning hook
    curve: list[dict[str, Any]] = field(default_factory=list)
    quiet: bool = False
    budget_minutes: float | None = None
    checkpoints: RunCheckpoints | None = None  # None: no epoch checkpoints (teacher, tests)
    stop_at: float | None = None  # time.monotonic() after which the run pauses (--stop-after)
    on_progress: Callable[..., None] | None = None  # after every epoch (the claim's notes)
    inputs: dict[str, str] | None = None  # Model.input_fingerprints: checkpoints carry them

    def __post_init__(self) -> None:
        self._clock_start = time.monotonic()
        self._clock_offset = 0.0  # training seconds of earlier invocations (resumed runs)
        # artifact seconds (cache misses) of earlier invocations, and the cache's count when
        # this invocation's clock restarted: the budget leaves them out (artifact_seconds)
        self._artifact_offset, self._artifact_base = 0.0, self.cache.build_seconds
        self._embeddings: dict[str, np.ndarray] = {}
        # resumed from a checkpoint written before artifact builds were timed apart: the record
        # then has no artifact_seconds (its budget, if any, counted them, as the old rule did)
        self.artifacts_untracked = False
        self.stopped_by_budget = False
        self.resumed_from: dict[str, int] = {}
        # the code version of every invocation that trained this run (a resumed run spans
        # several); the record's environment holds the one that finished it
        self.commits: list[str] = [git_commit()]
        users = np.arange(len(self.data.valid_users))
        if self.valid_sample and len(users) > self.valid_sample:
            users = np.random.default_rng(self.seed).choice(users, self.valid_sample, replace=False)
            users.sort()
        self._valid_rows = users

    def elapsed(self) -> float:
        """Training seconds so far, earlier invocations of a resumed run included."""
        return self._clock_offset + time.monotonic() - self._clock_start

    def progress(self, iterable: Any = None, *, desc: str, total: int | None = None) -> Any:
        return tqdm(iterable, desc=desc, total=total, leave=False, disable=self.quiet or None)

    def log(self, message: str) -> None:
        if not self.quiet:  # a library caller's quiet=True; the CLI also sets the log level
            logger.info(message)

    def artifact_seconds(self) -> float:
        """Of :meth:`elapsed`, the seconds spent building (or waiting for) artifacts that were
        not cached: text embeddings, teacher, tokenizers."""
        return self._artifact_offset + self.cache.build_seconds - self._artifact_base

    def out_of_budget(self) -> bool:
        """Whether the training budget is spent. It counts training, not artifact builds: with
        those in, a run on a cold cache would get fewer epochs than the same run on a warm one,
        and the budgeted tables would depend on the order the runs came in."""
        budget_seconds = self.elapsed() - self.artifact_seconds()
        if self.budget_minutes and budget_seconds > 60 * self.budget_minutes:
            self.stopped_by_budget = True
        return self.stopped_by_budget

    def resume(self, stage: str) -> dict[str, Any] | None:
        if self.checkpoints is None:
            return None
        saved = self.checkpoints.load(stage)
        for warning in self.checkpoints.warnings:
            logger.warning(warning)
        self.checkpoints.warnings.clear()
        if saved is None:
            return None
        changed = changed_inputs(saved.get("inputs") or {}, self.inputs or {})
        if changed:  # the data changed under a paused run: its epochs are not this run's
            logger.warning(
                f"ignored checkpoint of {stage} made from other inputs ({'; '.join(changed)}); "
                "the stage starts over"
            )
            return None
        self.curve[:] = saved.pop("curve")
        self._clock_offset, self._clock_start = saved.pop("elapsed"), time.monotonic()
        if "artifact_seconds" not in saved or saved.pop("artifacts_untracked", False):
            self.artifacts_untracked = True  # an older checkpoint (or one resumed from one)
        self._artifact_offset = saved.pop("artifact_seconds", 0.0)
        self._artifact_base = self.cache.build_seconds
        self.resumed_from[stage] = saved["epoch"]
        earlier = [c for c in saved.pop("commits", []) if c not in self.commits]
        self.commits = earlier + [c for c in self.commits if c not in earlier]
        if not saved["finished"]:
            self.log(f"  resuming {stage} after epoch {saved['epoch']}")
        if self.on_progress is not None:  # `status` shows the epochs so far from the start
            self.on_progress(**progress_of(self.curve, self.protocol.selection, stage))
        return saved

    def checkpoint(self, stage: str, state: dict[str, Any], final: bool = False) -> None:
        if self.on_progress is not None:
            self.on_progress(**progress_of(self.curve, self.protocol.selection, stage))
        if self.checkpoints is None:
            return
        extra = {"curve": self.curve, "elapsed": self.elapsed(), "commits": self.commits}
        extra["artifact_seconds"] = self.artifact_seconds()
        extra["artifacts_untracked"] = self.artifacts_untracked  # sticks across resumes
        if self.inputs is not None:
            extra["inputs"] = self.inputs
        self.checkpoints.save(stage, {**state, **extra})
        if not final and self.stop_at is not None and time.monotonic() > self.stop_at:
            raise RunPaused(  # epochs counted from 1 over all stages, as status and tables do
                f"paused after epoch {state['epoch'] + 1} ({stage} stage)",
                list(self.curve),
                self.elapsed(),
            )

    def validate(self, epoch: int, extra: dict[str, Any] | None = None) -> float:
        started = time.monotonic()
        rows = self._valid_rows
        histories = [self.data.valid_histories[i] for i in rows]
        ranks = rank_users(self.model, histories, self.data.valid_targets[rows], self.protocol)
        scores = metrics_from_ranks(ranks, self.protocol.ks)
        selection = self.protocol.selection
        entry: dict[str, Any] = {"epoch": epoch, selection: scores[selection]}
        for name in headline_metrics(selection)[1:]:
            entry[name] = scores[name]
        entry["seconds"] = round(self.elapsed(), 2)  # training clock at the end of this epoch
        entry["valid_seconds"] = round(time.monotonic() - started, 2)
        entry.update(
            {k: float(v) if isinstance(v, (int, float)) else v for k, v in (extra or {}).items()}
        )
        self.curve.append(entry)
        self.log(
            f"  epoch {epoch}: valid {selection} {entry[selection]:.4f}"
            + "".join(f", {k} {v:.4g}" for k, v in (extra or {}).items() if isinstance(v, float))
        )
        if self.on_validate is not None:
            self.on_validate(epoch, entry[selection])
        return entry[selection]

    def item_embeddings(self, encoder: str | None = None) -> np.ndarray:
        if not any(self.data.item_text[1:]):
            raise DataError(
                f"dataset {self.data.name!r} has no item text (no NAME.item file, or its "
                "columns are empty), and this model builds semantic IDs from item text: add "
                "NAME.item with text columns, or give IDs with --set tokenizer=external "
                "--set sid_file=PATH"
            )
        encoder = encoder or DEFAULT_ENCODER
        stamp = encoder_stamp(encoder)
        key = {
            "fingerprint": self.data.fingerprint,
            "encoder": encoder,
            "text": key_hash({"text": self.data.item_text}),
            **({"encoder_files": stamp} if stamp else {}),
        }

        def create() -> np.ndarray:
            self.log(f"  embedding {self.data.n_items} item texts with {encoder}")
            vectors = encode_texts(self.data.item_text[1:], encoder, progress=not self.quiet)
            return np.concatenate([np.zeros((1, vectors.shape[1]), np.float32), vectors])

        if key_hash(key) not in self._embeddings:  # read once per run, however often asked
            self._embeddings[key_hash(key)] = self.cache.get_or_create(
                "text-embeddings", key, create
            )
        return self._embeddings[key_hash(key)]

    def teacher_embeddings(self) -> np.ndarray:
        """Item table of a SASRec trained under the same protocol (cached per dataset)."""
        teacher_cls = resolve_model(TEACHER_MODEL)
        config = build_config(teacher_cls, TEACHER_PROFILE, {})
        key = teacher_key(self.data, self.protocol, config.to_dict(), self.device)

        def create() -> np.ndarray:
            self.log(f"  training the {TEACHER_MODEL} teacher ({TEACHER_PROFILE} profile)")
            seed_everything(TEACHER_SEED)
            teacher = teacher_cls(config)
            ctx = HarnessContext(
                teacher,
                self.data,
                self.protocol,
                TEACHER_SEED,
                self.cache,
                self.device,
                self.valid_sample,
                quiet=self.quiet,
            )
            teacher.fit(self.data, ctx)
            return teacher.item_embeddings().numpy()

        return self.cache.get_or_create("teacher-embeddings", key, create)


def teacher_key(
    data: SequenceData, protocol: Protocol, config: dict[str, Any], device: torch.device
) -> dict[str, Any]:
    """Cache key of the teacher's item table; a baseline run with the same config fills it."""
    return {
        "fingerprint": data.fingerprint,
        "protocol": protocol.to_dict(),
        "model": TEACHER_MODEL,
        "config": config,
        "seed": TEACHER_SEED,
        # a teacher trained on a GPU is not bit-identical to a CPU one or another GPU's (as for
        # tokenizers): a shared cache must not hand a LETTER run whichever was cached first
        **device_key(device),
    }


def rank_users(
    model: Model,
    histories: list[list[int]],
    targets: np.ndarray,
    protocol: Protocol,
    batch_size: int = 512,
    progress: Callable[..., Any] | None = None,
) -> np.ndarray:
    """Rank of each user's target in the model's top ``max(ks)`` (0 = not in the list);
    ``progress`` (e.g. :meth:`HarnessContext.progress`) wraps the batches in a bar."""
    k = max(protocol.ks)
    ranks = []
    starts = range(0, len(histories), batch_size)
    if progress is not None:
        starts = progress(starts, desc="decoding")
    for start in starts:
        chunk = histories[start : start + batch_size]
        top = model.recommend(chunk, k)
        ranks.append(
            target_ranks(torch.as_tensor(top).cpu().numpy(), targets[start : start + batch_size])
        )
    return np.concatenate(ranks) if ranks else np.zeros(0, np.int64)


def execute_run(
    spec: RunSpec,
    model_cls: type[Model],
    config: ModelConfig,
    data: SequenceData,
    protocol: Protocol,
    device: torch.device,
    quiet: bool = False,
    on_validate: Callable[[int, float], None] | None = None,
    save_model_to: Path | None = None,
    checkpoints: RunCheckpoints | None = None,
    stop_at: float | None = None,
    on_progress: Callable[..., None] | None = None,
) -> dict[str, Any]:
    """Train, evaluate and describe one run; exceptions propagate to the caller (``RunPaused``
    when ``stop_at`` passed: the last epoch is in ``checkpoints``). With ``save_model_to``, the
    trained model is saved there (:func:`save_checkpoint`); with ``checkpoints``, training
    resumes from and saves epoch checkpoints there."""
    seed_everything(spec.seed)
    model = model_cls(config)
    cache = DiskCache(cache_root() / "artifacts")
    ctx = HarnessContext(
        model,
        data,
        protocol,
        spec.seed,
        cache,
        device,
        quiet=quiet,
        on_validate=on_validate,
        budget_minutes=spec.budget_minutes,
        checkpoints=checkpoints,
        stop_at=stop_at,
        on_progress=on_progress,
        inputs=model_cls.input_fingerprints(config, data),
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with PeakMemory() as memory:
        try:
            model.fit(data, ctx)
        except RunPaused as paused:
            paused.peak_rss_mb = memory.peak_mb
            raise
        # read together: caching this run as the teacher below (or waiting for another
        # worker's lock on it) is neither training nor an artifact of this run
        train_seconds, artifact_seconds = ctx.elapsed(), ctx.artifact_seconds()
        if spec.model == TEACHER_MODEL and spec.seed == TEACHER_SEED and not ctx.stopped_by_budget:
            # this run is the teacher LETTER / UniGRec would train (a budget that never bit
            # changes nothing): cache it, don't train twice
            key = teacher_key(data, protocol, spec.config, device)
            cache.get_or_create("teacher-embeddings", key, lambda: model.item_embeddings().numpy())

        if save_model_to is not None:
            save_checkpoint(model, spec, save_model_to)
        valid_ranks = rank_users(
            model, data.valid_histories, data.valid_targets, protocol, progress=ctx.progress
        )
        started = time.perf_counter()
        test_ranks = rank_users(
            model, data.test_histories, data.test_targets, protocol, progress=ctx.progress
        )
        eval_seconds = time.perf_counter() - started
    diagnostics = {
        "train_seconds": round(train_seconds, 2),
        # of train_seconds: artifacts built on a cold cache (outside any time budget)
        **({} if ctx.artifacts_untracked else {"artifact_seconds": round(artifact_seconds, 2)}),
        "eval_seconds": round(eval_seconds, 2),
        "test_users_per_second": round(len(test_ranks) / max(eval_seconds, 1e-9), 1),
        "peak_rss_mb": round(memory.peak_mb, 1),
        **(
            {"peak_gpu_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}
            if device.type == "cuda"
            else {}
        ),
        "cache_hits": cache.hits,
        "stopped_by_budget": ctx.stopped_by_budget,
        "resumed_from": ctx.resumed_from,
        "trained_at_commits": ctx.commits,
        **model.diagnostics,
    }
    return {
        "valid": metrics_from_ranks(valid_ranks, protocol.ks),
        "test": metrics_from_ranks(test_ranks, protocol.ks),
        "test_users": data.test_users.tolist(),
        "test_ranks": test_ranks.tolist(),
        "curve": ctx.curve,
        "diagnostics": diagnostics,
        "num_parameters": int(model.num_parameters()),
        "parameters": model.parameter_counts(),
    }


def save_checkpoint(model: Model, spec: RunSpec, path: Path) -> None:
    """The trained model's ``state_dict`` with its run spec and, for semantic-ID models, their
    ``decoding_state`` (T5 size, weights, SID table), written atomically with ``torch.save``."""
    payload: dict[str, Any] = {"spec": asdict(spec), "run_id": spec.run_id}
    payload["state"] = model.state_dict()
    decoding = model.decoding_state() if hasattr(model, "decoding_state") else None
    if decoding is not None:
        payload["decoding"] = decoding
    torch_save_atomic(path, payload)


@dataclass
class RunOutcome:
    spec: RunSpec
    # ok | failed | paused | skipped (done before) | claimed (another worker's) | other data
    # (a finished record made from other inputs: neither reused nor overwritten)
    status: str
    record: dict[str, Any] | None
    path: Path
    note: str | None = None  # why, for "other data"


def run_batch(
    models: list[str],
    datasets: list[str],
    *,
    profile: str = "quick",
    seeds: list[int] | None = None,
    results_dir: Path = Path("results"),
    data_dir: Path | None = None,
    force: bool = False,
    overrides: list[str] | None = None,
    protocol: Protocol | None = None,
    device: torch.device | None = None,
    quiet: bool = False,
    tuned: Callable[[str, str], dict[str, Any]] | None = None,
    budget_minutes: float | None = None,
    label: str | None = None,
    save_models: Path | None = None,
    stop_after_minutes: float | None = None,
) -> list[RunOutcome]:
    """Run every (dataset, model, seed); returns one outcome per run, failures included.

    ``budget_minutes`` caps each run's training wall-clock time, summed over all its stages and
    invocations: the model stops after the epoch that exceeds it and keeps its best checkpoint
    (recorded as ``stopped_by_budget``). Every run saves an epoch checkpoint and continues from
    it when re-run after a kill or a pause; ``stop_after_minutes`` pauses this invocation's
    runs after the epoch that passes it (wall-clock from now; not part of the run spec), so a
    long run can span several invocations of the same command.
    ``save_models``: a folder that receives each trained model as
    ``<dataset>/<model>/<run_id>.pt`` (path in the record's ``checkpoint``)."""
    seeds = seeds if seeds is not None else [0]
    check_writable_folder(results_dir, "results folder", "--results-dir")
    for sub in ("runs", ".claims"):  # a file where a folder belongs fails before training
        check_writable_folder(Path(results_dir) / sub, f"results folder's {sub}/", "--results-dir")
    check_writable_folder(cache_root(), "cache folder", "GENREC_CACHE_DIR")
    if save_models is not None:
        check_writable_folder(save_models, "model folder", "--save-models")
    protocol = protocol or Protocol()
    stop_at = time.monotonic() + 60 * stop_after_minutes if stop_after_minutes else None
    device = device or default_device()
    overrides = overrides or []
    # Resolve every model, config and dataset before any work, so a typo fails fast and costs
    # nothing.
    configs = resolve_configs(models, datasets, profile, overrides, tuned)
    # the teacher's module too, now: code imported hours later (after an edit) would not be
    # the code the records' commit names, read at the command's start
    resolve_model(TEACHER_MODEL)
    for dataset in datasets:
        check_dataset(dataset, data_dir)
    specs = plan_runs(
        models,
        datasets,
        profile=profile,
        seeds=seeds,
        overrides=overrides,
        protocol=protocol,
        budget_minutes=budget_minutes,
        label=label,
        configs=configs,
    )
    try:
        save_code_patch(results_dir)  # uncommitted code: its diff, named in every record's commit
    except OSError as exc:
        raise BenchmarkError(
            f"could not write the code patch under {results_dir}/patches ({exc.strerror or exc})"
        ) from None
    outcomes: list[RunOutcome] = []
    not_started: list[RunSpec] = []
    for dataset in datasets:
        if out_of_time(outcomes, stop_at):
            not_started += [s for s in specs if s.dataset == dataset]
            continue
        data = load_sequence_data(dataset, data_dir, protocol.max_history)
        protocol.check_against(data)
        stats = dataset_stats(data)
        for spec in (s for s in specs if s.dataset == dataset):
            if out_of_time(outcomes, stop_at):  # no tokenizer build and epoch past the slot
                not_started.append(spec)
                continue
            name = spec.model
            cls, config = configs[(dataset, name)]
            checkpoint = (
                None
                if save_models is None
                else under(
                    save_models,
                    save_models
                    / check_name(data.name, "dataset")
                    / check_name(name, "model")
                    / f"{spec.run_id}.pt",
                    "saved model",
                )
            )
            outcomes.append(
                _run_one(
                    spec,
                    cls,
                    config,
                    data,
                    stats,
                    protocol,
                    results_dir,
                    device,
                    force,
                    quiet,
                    checkpoint,
                    stop_at,
                )
            )
    if not_started:
        logger.log(
            SUMMARY,
            f"  {len(not_started)} more run(s) not started: --stop-after has passed; run the "
            "same command again",
        )
    return outcomes


def out_of_time(outcomes: list[RunOutcome], stop_at: float | None) -> bool:
    """Whether ``--stop-after`` has passed in this invocation, so no further run may start.

    It has when a run paused at it, or when a run of this invocation trained (finished or
    failed) and the clock is past it: the next run would otherwise start only to pause after
    its first epoch. Until a run has trained, one starts even past the deadline, so a tiny
    ``--stop-after`` means "one epoch" (runs already done are skipped, costing nothing)."""
    if outcomes and outcomes[-1].status == "paused":
        return True
    trained = any(o.status in ("ok", "failed") for o in outcomes)
    return trained and stop_at is not None and time.monotonic() >= stop_at


def claim_path(results_dir: Path, spec: RunSpec) -> Path:
    """The lock file a worker holds while it trains ``spec`` (see :mod:`benchmark.claims`)."""
    record = record_path(results_dir, spec.dataset, spec.model, spec.run_id)
    return Path(results_dir) / ".claims" / record.relative_to(Path(results_dir) / "runs")


def resolve_configs(
    models: list[str],
    datasets: list[str],
    profile: str,
    overrides: list[str],
    tuned: Callable[[str, str], dict[str, Any]] | None = None,
) -> dict[tuple[str, str], tuple[type[Model], ModelConfig]]:
    """``(dataset, model) -> (class, config)`` for a grid; raises on any unknown name or value."""
    registry = model_registry()
    for pair in overrides:
        scope, dot, _ = pair.split("=", 1)[0].partition(".")
        if dot and scope not in models:
            raise BenchmarkError(f"--set {pair}: {scope!r} is not one of the models being run")
    configs: dict[tuple[str, str], tuple[type[Model], ModelConfig]] = {}
    for dataset in datasets:
        for name in models:
            cls = registry.get(name)
            values = dict(tuned(name, dataset)) if tuned else {}
            values.update(split_overrides(overrides, name))
            try:
                configs[(dataset, name)] = (cls, build_config(cls, profile, values))
            except ConfigError as exc:
                raise _scoping_hint(exc, values, name, models, registry) from None
    return configs


def _scoping_hint(
    exc: ConfigError,
    values: dict[str, Any],
    name: str,
    models: list[str],
    registry: ModelRegistry,
) -> ConfigError:
    """An unscoped ``--set key=...`` that only some of the models know: say how to scope it."""

    def keys(model: str) -> set[str]:  # the keys the model reads
        config = registry.get(model).Config
        return {f.name for f in dataclasses.fields(config)} - config.INERT

    unknown = [key for key in values if key not in keys(name)]
    owners = [m for m in models if unknown and unknown[0] in keys(m)]
    if not owners:
        return exc
    return ConfigError(
        f"--set {unknown[0]}=... applies to every model, but {name} has no {unknown[0]!r}; "
        f"scope it: --set {owners[0]}.{unknown[0]}=..."
    )


def plan_runs(
    models: list[str],
    datasets: list[str],
    *,
    profile: str,
    seeds: list[int],
    overrides: list[str],
    protocol: Protocol,
    budget_minutes: float | None = None,
    label: str | None = None,
    tuned: Callable[[str, str], dict[str, Any]] | None = None,
    configs: dict[tuple[str, str], tuple[type[Model], ModelConfig]] | None = None,
) -> list[RunSpec]:
    """The run specs of a grid, in the order ``run`` trains them (dataset, model, seed);
    ``configs``: already resolved by :func:`resolve_configs`."""
    if label is not None and len(models) > 1:
        raise BenchmarkError(
            f"--label {label!r} names one variant, but {len(models)} models run; "
            "run each labelled model with its own command"
        )
    configs = configs or resolve_configs(models, datasets, profile, overrides, tuned)
    return [
        RunSpec(
            name,
            dataset,
            profile,
            seed,
            configs[(dataset, name)][1].to_dict(),
            protocol.to_dict(),
            budget_minutes,
            label,
        )
        for dataset in datasets
        for name in models
        for seed in seeds
    ]


def run_state(results_dir: Path, spec: RunSpec) -> str:
    """``done``, ``failed``, ``paused``, ``running`` (claimed by a live worker) or ``pending``."""
    if claim_owner(claim_path(results_dir, spec).with_suffix(".lock")) is not None:
        return "running"
    record = read_record(record_path(results_dir, spec.dataset, spec.model, spec.run_id))
    status = (record or {}).get("status")
    return {"ok": "done", "failed": "failed", "paused": "paused"}.get(status, "pending")


def _run_one(spec, cls, config, data, stats, protocol, results_dir, *args, **kwargs) -> RunOutcome:
    """Claim the run, so that workers sharing ``results_dir`` train it once; a run claimed by
    a live worker is left to it (status ``claimed``)."""
    lock = claim_path(results_dir, spec).with_suffix(".lock")
    claim = try_claim(lock)
    if claim is None:
        path = record_path(results_dir, spec.dataset, spec.model, spec.run_id)
        owner = claim_owner(lock) or {}
        logger.log(
            SUMMARY,
            f"  {spec.model} on {spec.dataset} seed {spec.seed}: being trained by "
            f"{owner.get('host', '?')} pid {owner.get('pid', '?')}; left to it",
        )
        return RunOutcome(spec, "claimed", read_record(path), path)
    # reports_outcome: this worker notes the outcome when done, so a claim without one was
    # killed (``status``; claims of older workers carry neither)
    claim.note(
        dataset=spec.dataset, model=spec.model, seed=spec.seed, run_id=spec.run_id,
        reports_outcome=True,
    )  # fmt: skip
    try:
        outcome = _run_claimed(
            spec, cls, config, data, stats, protocol, results_dir, *args, **kwargs, claim=claim
        )
        # the worker is done with the run (trained, skipped, paused or failed): a claim without
        # this note is one whose worker was killed while it held it (``status``: interrupted)
        claim.note(outcome=outcome.status)
        return outcome
    finally:
        claim.release()


def _run_claimed(
    spec,
    cls,
    config,
    data,
    stats,
    protocol,
    results_dir,
    device,
    force,
    quiet,
    checkpoint=None,
    stop_at=None,
    claim: Claim | None = None,
) -> RunOutcome:
    path = record_path(results_dir, spec.dataset, spec.model, spec.run_id)
    existing = None
    if path.exists():
        try:  # validated like the leaderboard reads it: a damaged record is not a done run
            existing = RunRecord.load(path).to_dict()
        except RecordError as exc:  # unreadable: keep it for inspection, run again
            stamp = int(time.time())
            aside = path.with_name(f"{path.name}.unreadable-{stamp}")
            for n in range(1, 1000):  # never over one set aside earlier in the same second
                if not aside.exists():
                    break
                aside = path.with_name(f"{path.name}.unreadable-{stamp}-{n}")
            path.replace(aside)
            logger.warning(f"{exc}; moved to {aside.name} and re-running")
    checkpoints = RunCheckpoints(cache_root() / "checkpoints", spec.checkpoint_key)
    inputs = cls.input_fingerprints(config, data)
    changed = changed_inputs(record_inputs(existing or {}), inputs)
    if existing and existing.get("status") == "ok" and changed and not force:
        note = (
            f"{path} was trained on other inputs ({'; '.join(changed)}); not reused and not "
            "overwritten: give the new data its own --results-dir, or add --force to replace it"
        )
        logger.log(SUMMARY, f"  {spec.model} on {spec.dataset} seed {spec.seed}: {note}")
        return RunOutcome(spec, "other data", existing, path, note)
    if existing and existing.get("status") == "ok" and not force:
        if checkpoint is not None and not Path(existing.get("checkpoint", checkpoint)).exists():
            logger.warning(
                f"{spec.model} on {spec.dataset} seed {spec.seed}: already done, so no model "
                f"is saved to {checkpoint}; add --force to retrain and save it"
            )
        return RunOutcome(spec, "skipped", existing, path)
    # The epoch checkpoints are keyed by the spec, not the results folder: the same run into
    # another folder must not write them at the same time (claims are per results folder).
    slot = try_claim(checkpoints.folder.with_name(f"{checkpoints.folder.name}.lock"))
    if slot is None:
        logger.log(
            SUMMARY,
            f"  {spec.model} on {spec.dataset} seed {spec.seed}: its epoch checkpoints "
            f"({checkpoints.folder}) are in use by another worker (the same run into another "
            "results folder); left to it, run again when it is done",
        )
        return RunOutcome(spec, "claimed", existing, path)
    try:
        if force:  # only once the slot is held: never under another worker's feet
            checkpoints.clear()
        return _train_and_record(
            spec, cls, config, data, stats, protocol, path, inputs, checkpoints, device, quiet,
            checkpoint, stop_at, claim, force,
        )  # fmt: skip
    finally:
        slot.release()


def budget_rule(spec: RunSpec) -> dict[str, str]:
    return {BUDGET_EXCLUDES: ARTIFACT_BUILDS} if spec.budget_minutes else {}


def capped_root(spec: RunSpec) -> Path:
    return cache_root() / "checkpoints" / "capped" / str(spec.capped_key)


def _train_and_record(
    spec, cls, config, data, stats, protocol, path, inputs, checkpoints, device, quiet,
    checkpoint, stop_at, claim, force,
) -> RunOutcome:  # fmt: skip
    # Continue a stage of the same run that ended at a smaller cap. Not under a time budget
    # (the capped run's epochs would count against it, and an uninterrupted budgeted run may
    # have stopped before them), nor with --force (from scratch means from scratch).
    extendable = spec.capped_key and spec.budget_minutes is None and not force
    extended = copied = None  # copied: seeded from the capped run in this invocation
    if extendable:
        root = capped_root(spec)
        extended = copied = extend_from_capped(
            checkpoints, root, spec.stage_caps(), device_name(device)
        )
        for warning in checkpoints.warnings:
            logger.warning(warning)
        checkpoints.warnings.clear()
        if extended:
            logger.info(f"  continuing stage {extended[0]} of the same run under a smaller cap")
        else:  # resumed after a pause or kill of a run that began as an extension
            extended = extended_from(checkpoints)
    record = RunRecord(
        run_id=spec.run_id,
        status="running",
        spec=asdict(spec),
        model={"name": spec.model, "config": spec.config, "num_parameters": None},
        dataset=stats,
        # the budget leaves artifact builds out: said in failed and paused records too, so the
        # leaderboard files them with their rule's table (a finished one's diagnostics decide)
        protocol=protocol.to_dict() | budget_rule(spec),
        seed=spec.seed,
        environment=environment(device),
        inputs=inputs,
        started_at=now(),
    )
    logger.info(
        f"[{spec.dataset}] {spec.model} seed {spec.seed} ({spec.profile}) run {spec.run_id}"
    )
    try:
        result = execute_run(
            spec,
            cls,
            config,
            data,
            protocol,
            device,
            quiet=quiet,
            save_model_to=checkpoint,
            checkpoints=checkpoints,
            stop_at=stop_at,
            on_progress=claim.note if claim is not None else None,
        )
        record.model["num_parameters"] = result.pop("num_parameters")
        record.model["parameters"] = result.pop("parameters")
        if checkpoint is not None:
            record.checkpoint = str(checkpoint)
        for key, value in result.items():
            setattr(record, key, value)
        record.status = "ok"
    except (KeyboardInterrupt, BrokenPipeError):
        raise  # stopped from outside (or its reader left): as a kill, resumable, no record
    except RunPaused as paused:
        # not a result: the leaderboard skips it, and re-running continues from the checkpoint
        record.status, record.error = "paused", str(paused)
        record.curve = paused.curve
        record.diagnostics = {"train_seconds": round(paused.train_seconds, 2)}
        if paused.peak_rss_mb is not None:
            record.diagnostics["peak_rss_mb"] = round(paused.peak_rss_mb, 1)
    except Exception as exc:  # noqa: BLE001 - a failed run is recorded and the batch goes on
        if type(exc).__module__.startswith("submitit."):
            # a cluster job's time limit past its last requeue, raised by submitit's signal
            # handler inside training: a kill too (no record; a relaunch resumes the run)
            raise
        record.status = "failed"
        record.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        record.traceback = traceback.format_exc()
    record.finished_at = now()
    try:
        record.save(path)
    except OSError as exc:  # a full disk or a read-only folder: say so, keep the checkpoints
        raise BenchmarkError(
            f"could not write the run record {path} ({exc.strerror or exc}); the run's epoch "
            "checkpoints are kept: free space or fix permissions and re-run the same command"
        ) from None
    if record.status == "ok" and not record.diagnostics["stopped_by_budget"]:
        _settle_checkpoints(spec, record.diagnostics, checkpoints, device, extended)
    elif record.status == "failed" and copied:
        checkpoints.clear()  # the next try starts over rather than failing on the same copy
    payload = record.to_dict()
    logger.log(SUMMARY, summary_line(payload))  # --quiet drops bars and epoch lines, not this
    return RunOutcome(spec, record.status, payload, path)


def _settle_checkpoints(
    spec: RunSpec,
    diagnostics: dict[str, Any],
    checkpoints: RunCheckpoints,
    device: torch.device,
    extended: tuple[str, dict[str, int]] | None,
) -> None:
    """After a finished, recorded run: keep its checkpoints where a larger cap can continue
    them (a stage ended at its cap), else delete them. Never fails the run: it is recorded."""
    try:
        if capped_stages(diagnostics) and spec.capped_key and spec.budget_minutes is None:
            keep_capped(checkpoints, capped_root(spec), diagnostics["stopped_by"],
                        spec.stage_caps(), device_name(device))  # fmt: skip
            return
        checkpoints.clear()  # converged: nothing left to continue
        if extended:  # it outgrew the capped run it continued: nothing left to extend there
            drop_capped(capped_root(spec), extended[1])
    except OSError as exc:
        logger.warning(f"could not keep or clear the checkpoints of run {spec.run_id}: {exc}")


def summary_line(record: dict[str, Any]) -> str:
    spec = record["spec"]
    head = f"  {spec['model']} on {spec['dataset']} seed {spec['seed']}"
    if record["status"] == "paused":
        return f"{head}: {record['error']}; re-run the same command to continue"
    if record["status"] != "ok":
        return f"{head}: FAILED ({record['error']})"
    test, diag = record["test"], record["diagnostics"]
    shown = headline_metrics((record.get("protocol") or {}).get("selection", "ndcg@10"))
    metrics = " ".join(f"{m} {test[m]:.4f}" for m in shown if m in test)
    best, curve = diag.get("best_epoch"), record.get("curve") or []
    # counted from 1, as `status` and the tables' "Epochs to best" count
    epochs = f", best epoch {best + 1} of {len(curve)}" if best is not None else ""
    capped = capped_stages(diag)
    if capped and not diag.get("stopped_by_budget"):
        cosine = (spec.get("config") or {}).get("lr_schedule") == "cosine"
        more = "raise its cap" if cosine else "a larger cap continues it"
        epochs += f" (stage {', '.join(capped)} ended at the epoch cap: {more})"
    return (
        f"{head}: test {metrics} | train {diag['train_seconds']:.0f}s{epochs}, "
        f"eval {diag['eval_seconds']:.0f}s, peak {diag['peak_rss_mb']:.0f} MB"
    )


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
