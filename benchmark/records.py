"""Result records: one JSON per run, written atomically, with provenance.

:class:`RunRecord` is the record's one declared shape: the runner writes it, the leaderboard,
figures, site and tests read it. ``schema_version`` 2 added ``parameters`` (parameter counts
with one meaning for every method) and the protocol's ``selection``; records of version 1 (the
committed ones under ``results/runs/``) still load, upgraded on reading.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import re
import subprocess
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import torch

from benchmark.atomic import write_atomic, write_json_atomic
from benchmark.paths import check_name, under

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
STATUSES = ("running", "ok", "failed", "paused")
# A budgeted record's protocol holds BUDGET_EXCLUDES: ARTIFACT_BUILDS when its budget left
# cold-cache artifact builds out (every record since that rule; earlier ones charged them).
BUDGET_EXCLUDES, ARTIFACT_BUILDS = "budget_excludes", "artifact builds"


class RecordError(ValueError):
    """A file that is not a readable run record; the message names the file and the defect."""


@dataclass
class RunRecord:
    run_id: str
    status: str  # running | ok | failed | paused
    spec: dict[str, Any]  # the RunSpec: model, dataset, profile, seed, config, protocol, ...
    model: dict[str, Any]  # name, config, num_parameters, parameters (see Model.parameter_counts)
    dataset: dict[str, Any]  # name, sizes, fingerprint
    protocol: dict[str, Any]
    seed: int
    environment: dict[str, Any]  # git commit, library versions, machine, device, threads
    # fingerprints of the files the run read besides its spec (Model.input_fingerprints):
    # a record made from other data is never taken for this run's result
    inputs: dict[str, str] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    traceback: str | None = None
    valid: dict[str, float] | None = None
    test: dict[str, float] | None = None
    test_users: list[int] | None = None
    test_ranks: list[int] | None = None
    curve: list[dict[str, Any]] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: v for k, v in out.items() if v is not None or k in ("error",)}

    @classmethod
    def from_dict(cls, raw: Any, source: str = "record") -> RunRecord:
        """Validate and upgrade a parsed record; :class:`RecordError` says what is wrong."""
        if not isinstance(raw, dict):
            raise RecordError(f"{source}: a record must be a JSON object")
        version = raw.get("schema_version")
        if isinstance(version, bool) or version not in READABLE_VERSIONS:
            raise RecordError(
                f"{source}: schema_version {version!r}; this version reads {READABLE_VERSIONS}"
            )
        spec = raw.get("spec")
        missing = [k for k in ("run_id", "status") if not raw.get(k)]
        if not (isinstance(spec, dict) and spec.get("model") and spec.get("dataset")):
            missing.append("spec.model/spec.dataset")
        if raw.get("status") == "ok":
            shapes = {"test": dict, "curve": list}
            missing += [k for k, shape in shapes.items() if not isinstance(raw.get(k), shape)]
        if missing:
            raise RecordError(f"{source}: record lacks {', '.join(missing)}")
        problems = _problems(raw)
        if problems:
            more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
            raise RecordError(f"{source}: {'; '.join(problems[:3])}{more}")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values.setdefault("model", {"name": spec["model"], "config": spec.get("config", {})})
        values.setdefault("dataset", {"name": spec["dataset"]})
        values.setdefault("protocol", spec.get("protocol") or {})
        values.setdefault("seed", spec.get("seed", 0))
        values.setdefault("environment", {})
        record = cls(**values)
        if version == 1:  # early stopping and tuning selected on NDCG@10 before it was a flag
            record.protocol = {**record.protocol, "selection": "ndcg@10"}
            record.schema_version = SCHEMA_VERSION
        return record

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RecordError(f"{path}: not a readable JSON record ({exc})") from None
        return cls.from_dict(raw, str(path))

    def save(self, path: Path) -> None:
        write_json_atomic(path, self.to_dict())


# ---------------------------------------------------------------- validation
# The types and values the runner, leaderboard, figures and site rely on. A field that is
# absent gets its default (or the leaderboard shows it as missing); one that is present must
# have its declared shape, so that a hand-edited or damaged record is refused here, naming the
# field, instead of failing deep inside pandas.

METRIC_NAME = re.compile(r"[A-Za-z_]\w*@[1-9]\d*")  # <metric>@<K>, e.g. ndcg@10
EXAMPLE_TIME = "2025-01-01T00:00:00+00:00"
Kind = tuple[Callable[[Any], bool], str]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A JSON number that is finite or NaN (a missing value); not a bool, not infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isinf(value)


def _is_time(value: Any) -> bool:
    """ISO 8601 as Python reads it and as the leaderboard's pandas reads it (which alone would
    take "now"; Python alone would take week dates and years pandas cannot hold)."""
    if not isinstance(value, str):
        return False
    import pandas as pd

    try:
        datetime.fromisoformat(value)
        pd.to_datetime(value, utc=True, format="ISO8601")
    except (ValueError, OverflowError):  # pandas' OutOfBoundsDatetime is a ValueError
        return False
    return True


STRING: Kind = (lambda v: isinstance(v, str), "a string")
NAME: Kind = (lambda v: isinstance(v, str) and bool(v), "a non-empty string")
INT: Kind = (_is_int, "an integer")
RUN_ID: Kind = (
    lambda v: isinstance(v, str) and re.fullmatch(r"[\w.+-]{1,100}", v) is not None,
    "letters, digits, '_', '.', '+' or '-' (as the runner writes, e.g. 3f9a0c1b2d4e)",
)
NUMBER: Kind = (_is_number, "a number (finite, or NaN for missing)")
OBJECT: Kind = (lambda v: isinstance(v, dict), "a JSON object")
LIST: Kind = (lambda v: isinstance(v, list), "a list")
TIME: Kind = (_is_time, f"an ISO 8601 time such as {EXAMPLE_TIME} (years 1678 to 2261)")
RANK: Kind = (lambda v: _is_int(v) and v >= 0, "a non-negative integer (0: not in the top K)")
POSITIVE: Kind = (lambda v: _is_int(v) and v > 0, "a positive integer")
METRIC: Kind = (
    lambda v: isinstance(v, str) and METRIC_NAME.fullmatch(v) is not None,
    "a metric name such as ndcg@10",
)


def _show(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:56] + " ..."


class _Checks(list[str]):
    """Problems found so far, one phrase each (field, what it must be, what it is)."""

    def field(self, where: str, parent: Any, key: str, kind: Kind, null: bool = False) -> Any:
        """Check ``parent[key]`` when present; return it when it passed (else None)."""
        if not isinstance(parent, dict) or key not in parent:
            return None
        value = parent[key]
        if null and value is None:
            return None
        ok, what = kind
        if not ok(value):
            self.append(f"{where} must be {what}{' or null' if null else ''}, not {_show(value)}")
            return None
        return value

    def items(self, where: str, values: Any, kind: Kind) -> None:
        """Every element of a list (the first bad one is reported)."""
        ok, what = kind
        for i, value in enumerate(values or []):
            if not ok(value):
                self.append(f"{where}[{i}] must be {what}, not {_show(value)}")
                return

    def metrics(self, where: str, values: Any) -> None:
        """A ``<metric>@<K> -> number`` mapping (``valid``, ``test``)."""
        for name, value in (values or {}).items():
            if not METRIC[0](name):
                self.append(f"{where} key {_show(name)} is not {METRIC[1]}")
            elif not NUMBER[0](value):
                self.append(f"{where}[{_show(name)}] must be {NUMBER[1]}, not {_show(value)}")


def _problems(raw: dict[str, Any]) -> list[str]:
    """What is wrong with a parsed record whose required keys are there (empty: nothing)."""
    c = _Checks()
    c.field("run_id", raw, "run_id", RUN_ID)
    status = raw["status"]
    if status not in STATUSES:
        c.append(f"status must be one of {', '.join(STATUSES)}, not {_show(status)}")

    spec = raw["spec"]
    for key in ("model", "dataset", "profile"):
        c.field(f"spec.{key}", spec, key, NAME)
    c.field("spec.seed", spec, "seed", INT)
    c.field("spec.label", spec, "label", STRING, null=True)
    if c.field("spec.budget_minutes", spec, "budget_minutes", NUMBER, null=True) is not None:
        if not spec["budget_minutes"] > 0:
            c.append(f"spec.budget_minutes must be positive, not {_show(spec['budget_minutes'])}")
    c.field("spec.config", spec, "config", OBJECT)
    c.field("spec.protocol", spec, "protocol", OBJECT)

    model = c.field("model", raw, "model", OBJECT)
    c.field("model.name", model, "name", NAME)
    c.field("model.config", model, "config", OBJECT)
    c.field("model.num_parameters", model, "num_parameters", INT, null=True)
    parameters = c.field("model.parameters", model, "parameters", OBJECT, null=True)
    for key in parameters or {}:
        c.field(f"model.parameters.{key}", parameters, key, NUMBER, null=True)

    dataset = c.field("dataset", raw, "dataset", OBJECT)
    c.field("dataset.name", dataset, "name", NAME)
    c.field("dataset.fingerprint", dataset, "fingerprint", STRING, null=True)

    protocol = c.field("protocol", raw, "protocol", OBJECT)
    if c.field("protocol.ks", protocol, "ks", LIST) is not None:
        c.items("protocol.ks", protocol["ks"], POSITIVE)
    c.field("protocol.selection", protocol, "selection", METRIC)

    inputs = c.field("inputs", raw, "inputs", OBJECT, null=True)
    for key in inputs or {}:
        c.field(f"inputs.{key}", inputs, key, NAME)

    c.field("seed", raw, "seed", INT)
    c.field("environment", raw, "environment", OBJECT)
    for key in ("started_at", "finished_at"):
        c.field(key, raw, key, TIME, null=True)
    for key in ("error", "traceback", "checkpoint"):
        c.field(key, raw, key, STRING, null=True)

    for key in ("valid", "test"):
        c.metrics(key, c.field(key, raw, key, OBJECT, null=True))
    users = c.field("test_users", raw, "test_users", LIST, null=True)
    ranks = c.field("test_ranks", raw, "test_ranks", LIST, null=True)
    c.items("test_users", users, INT)
    c.items("test_ranks", ranks, RANK)
    if users is not None and ranks is not None and len(users) != len(ranks):
        c.append(f"test_users has {len(users)} entries but test_ranks {len(ranks)}")

    for i, point in enumerate(c.field("curve", raw, "curve", LIST) or []):
        if not OBJECT[0](point):
            c.append(f"curve[{i}] must be {OBJECT[1]}, not {_show(point)}")
            break
        c.field(f"curve[{i}].epoch", point, "epoch", INT)
        c.field(f"curve[{i}].seconds", point, "seconds", NUMBER, null=True)
        for key in point:
            if METRIC[0](key):
                c.field(f"curve[{i}].{key}", point, key, NUMBER, null=True)

    diagnostics = c.field("diagnostics", raw, "diagnostics", OBJECT)
    for key in ("best_epoch", "best_epoch_joint"):
        c.field(f"diagnostics.{key}", diagnostics, key, INT, null=True)
    for key in (
        "train_seconds",
        "eval_seconds",
        "test_users_per_second",
        "peak_rss_mb",
        "peak_gpu_mb",
    ):
        c.field(f"diagnostics.{key}", diagnostics, key, NUMBER, null=True)
    stages = c.field("diagnostics.skipped_stages", diagnostics, "skipped_stages", LIST)
    c.items("diagnostics.skipped_stages", stages, NAME)
    c.field("diagnostics.stopped_by", diagnostics, "stopped_by", OBJECT, null=True)
    soda = c.field("diagnostics.soda", diagnostics, "soda", OBJECT, null=True)
    c.field("diagnostics.soda.label", soda, "label", STRING, null=True)
    sid = c.field("diagnostics.sid", diagnostics, "sid", OBJECT, null=True)
    for key in ("collision_rate", "invalid_rate"):
        c.field(f"diagnostics.sid.{key}", sid, key, NUMBER, null=True)
    for i, level in enumerate(c.field("diagnostics.sid.levels", sid, "levels", LIST) or []):
        if not OBJECT[0](level):
            c.append(f"diagnostics.sid.levels[{i}] must be {OBJECT[1]}, not {_show(level)}")
            break
        for key in ("usage", "entropy_bits"):
            c.field(f"diagnostics.sid.levels[{i}].{key}", level, key, NUMBER, null=True)
    return c


REPO_ROOT = Path(__file__).resolve().parent.parent


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record_path(results_dir: Path, dataset: str, model: str, run_id: str) -> Path:
    path = Path(results_dir) / "runs" / check_name(dataset, "dataset") / check_name(model, "model")
    return under(results_dir, path / f"{check_name(run_id, 'run id')}.json", "run record")


def read_record(path: Path) -> dict[str, Any] | None:
    """The record at ``path`` through :class:`RunRecord` (validated, older versions upgraded);
    None when it is missing or unreadable (not JSON, or not the shape :class:`RunRecord`
    declares). :meth:`RunRecord.load` says what is wrong."""
    try:
        return RunRecord.load(path).to_dict()
    except RecordError:
        return None


# a plain, applicable patch whatever the user's git configuration (colour, external diff
# drivers, textconv filters, prefixes)
_DIFF = ["git", "-c", "color.ui=never", "diff", "--no-ext-diff", "--no-textconv", "--binary",
         "--src-prefix=a/", "--dst-prefix=b/"]  # fmt: skip


@functools.cache
def code_state() -> tuple[str, bytes]:
    """The commit of the code this process runs and the uncommitted changes to its files outside
    ``results/`` (records and logs that running jobs write are not code): tracked files' diff
    plus untracked, not ignored files as new-file patches. Read once, at the first call (the CLI
    makes it before it imports any model), so a commit made while a long invocation trains is
    not credited with runs it did not train."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        diff = subprocess.run(
            [*_DIFF, "HEAD", "--", ".", ":!results"], cwd=REPO_ROOT, capture_output=True
        ).stdout
        untracked = subprocess.run(
            ["git", "ls-files", "-z", "--others", "--exclude-standard", "--", ".", ":!results"],
            cwd=REPO_ROOT,
            capture_output=True,
        ).stdout
        for name in filter(None, untracked.split(b"\0")):
            diff += subprocess.run(  # exit status 1: the file differs from nothing, as expected
                [*_DIFF, "--no-index", "--", "/dev/null", name.decode(errors="surrogateescape")],
                cwd=REPO_ROOT,
                capture_output=True,
            ).stdout
        return sha, diff
    except (OSError, subprocess.CalledProcessError):
        return "unknown", b""


def git_commit() -> str:
    """The commit, with ``-dirty.<hash of the diff>`` when the code differed from it: the diff
    itself is kept as ``results/patches/<hash>.diff`` (:func:`save_code_patch`), so a run
    trained on uncommitted code can still be traced to the code that trained it."""
    sha, diff = code_state()
    return sha + (f"-dirty.{patch_name(diff)}" if diff else "")


def patch_name(diff: bytes) -> str:
    return hashlib.sha1(diff).hexdigest()[:10]


def save_code_patch(results_dir: Path) -> Path | None:
    """Write this process's uncommitted diff under ``results_dir/patches/`` (once per diff);
    None when the code is committed."""
    _, diff = code_state()
    if not diff:
        return None
    path = Path(results_dir) / "patches" / f"{patch_name(diff)}.diff"
    if not path.exists():
        write_atomic(path, lambda handle: handle.write(diff))
    return path


def environment(device: torch.device) -> dict[str, Any]:
    import numpy
    import transformers

    try:
        import recbole

        recbole_version = recbole.__version__
    except Exception:  # noqa: BLE001 - version lookup only
        recbole_version = "unavailable"
    cpu = platform.processor() or platform.machine()
    if device.type == "cuda":
        cpu = torch.cuda.get_device_name(device)
    return {
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "recbole": recbole_version,
        "numpy": numpy.__version__,
        "device": str(device),
        "machine": f"{platform.system()} {platform.machine()} {cpu}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
        "threads": torch.get_num_threads(),
    }


class PeakMemory:
    """Peak resident memory of this process while the block runs (sampled every 0.1 s)."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._process = psutil.Process()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 2**20)
            self._stop.wait(0.1)

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 2**20)
