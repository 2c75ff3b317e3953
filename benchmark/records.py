"""Result records: one JSON per run, written atomically, with provenance."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import torch

from benchmark.paths import check_name, under

SCHEMA_VERSION = 1
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


def git_commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
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
