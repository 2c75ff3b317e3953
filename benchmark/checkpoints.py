"""Epoch-level checkpoints of one run, so a killed, paused or budget-stopped run continues after
its last finished epoch instead of starting over.

One folder per run under the cache (``<cache>/checkpoints/<key>/``), one file per training
stage (``<stage>.pt``), each replaced atomically after every epoch. The key is the run id
computed without the training budget, so a budget-stopped run can be extended by re-running it
with a larger ``--time-budget``. Files hold only tensors and plain data and are loaded with
``torch.load(weights_only=True)``: nothing read back can execute code. A file that cannot be
read that way is reported and ignored (the stage starts over).

A finished run whose stage ended at its epoch cap (its curve may still have been rising) keeps
its final checkpoints under ``<cache>/checkpoints/capped/<key without the caps>/``: the same run
with a larger cap (``--set epochs=...``) then continues that stage from its last epoch instead
of starting over (:func:`extend_from_capped`), and gives the record an uninterrupted run with
the larger cap gives (the schedules read no cap, except the cosine, which is never extended).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from benchmark.atomic import torch_save_atomic
from models.training import EPOCH_CAP

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


def keep_capped(checkpoints: RunCheckpoints, root: Path, stopped_by: dict[str, str],
                caps: dict[str, int]) -> Path:  # fmt: skip
    """Move a finished run's checkpoints to ``root`` (replacing what was there), with the
    order in which its stages ended, what ended each and each one's cap."""
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(checkpoints.folder), str(root))
    meta = {"stages": list(stopped_by), "stopped_by": stopped_by, "caps": caps}
    (root / "capped.json").write_text(json.dumps(meta))
    return root


def extend_from_capped(checkpoints: RunCheckpoints, root: Path, caps: dict[str, int]) -> str | None:
    """Seed an empty ``checkpoints`` from a capped run under ``root`` whose only difference is
    its caps: stages with the same cap are taken as finished; the first one that ended at a
    smaller cap than ``caps`` says is reopened after its last epoch; later stages start over
    (they trained after a shorter one). Returns the reopened stage (None: nothing to extend)."""
    meta_path = root / "capped.json"
    if checkpoints.exists() or not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        stages, stopped_by, old_caps = meta["stages"], meta["stopped_by"], meta["caps"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    capped = RunCheckpoints(root.parent, root.name)
    copies: list[tuple[str, dict]] = []
    reopened = None
    for stage in stages:
        payload = capped.load(stage) if stage in caps and stage in old_caps else None
        if payload is None or not payload.get("finished"):
            break
        if caps[stage] == old_caps[stage]:
            copies.append((stage, payload))
            continue
        if stopped_by.get(stage) == EPOCH_CAP and caps[stage] > old_caps[stage]:
            if payload.get("optimizer") is not None:  # kept since extension exists
                copies.append((stage, {**payload, "finished": False}))
                reopened = stage
        break
    if reopened is None:
        return None
    for stage, payload in copies:
        checkpoints.save(stage, payload)
    return reopened
