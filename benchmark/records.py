"""Result records: one JSON per run, written atomically, with provenance.

:class:`RunRecord` is the record's one declared shape: the runner writes it, the leaderboard,
figures, site and tests read it. ``schema_version`` 2 added ``parameters`` (parameter counts
with one meaning for every method) and the protocol's ``selection``; records of version 1 (the
committed ones under ``results/runs/``) still load, upgraded on reading.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import threading
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import torch

from benchmark.atomic import write_json_atomic
from benchmark.paths import check_name, under

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
STATUSES = ("running", "ok", "failed", "paused")


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
        if version not in READABLE_VERSIONS:
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


REPO_ROOT = Path(__file__).resolve().parent.parent


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record_path(results_dir: Path, dataset: str, model: str, run_id: str) -> Path:
    path = Path(results_dir) / "runs" / check_name(dataset, "dataset") / check_name(model, "model")
    return under(results_dir, path / f"{check_name(run_id, 'run id')}.json", "run record")


def read_record(path: Path) -> dict[str, Any] | None:
    """The record at ``path``; None when it is missing or unreadable (not JSON, not an object)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


@functools.cache
def git_commit() -> str:
    """The commit of the code this process runs: read once, at the first call (the CLI makes it
    before it imports any model), so a commit made while a long invocation trains is not
    credited with runs it did not train. ``-dirty``: tracked files outside ``results/`` differed
    from the commit."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(  # results/ (records, logs that running jobs append to) is not code
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


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
