"""Epoch-level checkpoints of one run, so a killed, paused or budget-stopped run continues after
its last finished epoch instead of starting over.

One folder per run under the cache (``<cache>/checkpoints/<key>/``), one file per training
stage (``<stage>.pt``), each replaced atomically after every epoch. The key is the run id
computed without the training budget, so a budget-stopped run can be extended by re-running it
with a larger ``--time-budget``. Files hold only tensors and plain data and are loaded with
``torch.load(weights_only=True)``: nothing read back can execute code. A file that cannot be
read that way is reported and ignored (the stage starts over).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import torch

from benchmark.atomic import torch_save_atomic

_STAGE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class RunCheckpoints:
    def __init__(self, root: Path, key: str):
        self.folder = Path(root) / key
        self.warnings: list[str] = []

    def path(self, stage: str) -> Path:
        if not _STAGE.match(stage):
            raise ValueError(f"stage name {stage!r} must be 1-64 letters, digits, '_' or '-'")
        return self.folder / f"{stage}.pt"

    def save(self, stage: str, payload: dict[str, Any]) -> None:
        torch_save_atomic(self.path(stage), payload)

    def load(self, stage: str) -> dict[str, Any] | None:
        path = self.path(stage)
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - unreadable or unsafe: start the stage over
            self.warnings.append(
                f"ignored checkpoint {path} ({type(exc).__name__}); stage restarts"
            )
            return None

    def exists(self) -> bool:
        return self.folder.is_dir() and any(self.folder.glob("*.pt"))

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
