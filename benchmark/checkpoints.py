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

from benchmark.atomic import torch_save_atomic, write_json_atomic
from benchmark.claims import exclusive
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
                caps: dict[str, int], device: str) -> Path:  # fmt: skip
    """Publish a finished run's checkpoints as ``root`` (replacing what was there), with the
    order in which its stages ended, what ended each, each one's cap and the device: staged
    in a sibling folder and swapped in under ``root``'s lock, so a reader never pairs one
    run's description with another's files."""
    meta = {"stages": list(stopped_by), "stopped_by": stopped_by, "caps": caps, "device": device}
    write_json_atomic(checkpoints.folder / "capped.json", meta)
    with exclusive(_lock(root)):
        staged, old = _swap_names(root)
        shutil.rmtree(staged, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
        shutil.move(str(checkpoints.folder), str(staged))
        if root.exists():
            root.rename(old)
        staged.rename(root)
        shutil.rmtree(old, ignore_errors=True)
    return root


def _swap_names(root: Path) -> tuple[Path, Path]:
    """The staging and the set-aside names of ``root``'s swap (fixed: under the lock, one swap
    at a time; a killed swap's leftovers are removed by the next, or restored by a reader)."""
    return root.with_name(f".{root.name}.new"), root.with_name(f".{root.name}.old")


def drop_capped(root: Path, caps: dict[str, int]) -> None:
    """Forget the capped run with ``caps`` (a longer one has finished from it without reaching
    its cap); one published there since, under other caps, stays."""
    with exclusive(_lock(root)):
        try:
            current = json.loads((root / "capped.json").read_text())["caps"]
        except (OSError, ValueError, KeyError, TypeError):
            return
        if current == caps:
            shutil.rmtree(root, ignore_errors=True)


def extend_from_capped(
    checkpoints: RunCheckpoints, root: Path, caps: dict[str, int], device: str
) -> tuple[str, dict[str, int]] | None:
    """Seed an empty ``checkpoints`` from a capped run under ``root`` whose only difference is
    its caps: stages with the same cap are taken as finished; the first one that ended at a
    smaller cap than ``caps`` says is reopened after its last epoch; later stages start over
    (they trained after a shorter one). Returns the reopened stage and the capped run's caps;
    None (nothing extended) also for anything unreadable, or a run trained on another device."""
    if checkpoints.exists():
        return None
    try:
        with exclusive(_lock(root)):
            staged, old = _swap_names(root)
            if not root.exists() and old.exists():  # a swap killed half-way: undo it
                old.rename(root)
            if not (root / "capped.json").is_file():
                return None
            copies, reopened, old_caps = _extension(root, caps, device)
        if reopened:  # a pause and resume of this run must still know what it extended; first,
            # so no kill leaves copies without it (a marker alone is ignored: no .pt files)
            write_json_atomic(checkpoints.folder / EXTENDED, {"stage": reopened, "caps": old_caps})
        for stage, payload in copies:
            checkpoints.save(stage, payload)
    except Exception as exc:  # noqa: BLE001 - a damaged capped run, a full disk: from scratch
        checkpoints.warnings.append(f"ignored capped run {root} ({type(exc).__name__}: {exc})")
        checkpoints.clear()
        return None
    return (reopened, old_caps) if reopened else None


def extended_from(checkpoints: RunCheckpoints) -> tuple[str, dict[str, int]] | None:
    """The reopened stage and the capped run's caps when ``checkpoints`` began as an extension
    (:func:`extend_from_capped`, in this or an earlier invocation of the run), else None."""
    try:
        meta = json.loads((checkpoints.folder / EXTENDED).read_text())
        return str(meta["stage"]), {str(k): int(v) for k, v in meta["caps"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


EXTENDED = "extended_from.json"


def _extension(root: Path, caps: dict[str, int], device: str) -> tuple[list, str | None, dict]:
    meta = json.loads((root / "capped.json").read_text())
    stages, stopped_by, old_caps = meta["stages"], meta["stopped_by"], meta["caps"]
    if meta.get("device") != device:
        return [], None, old_caps
    capped = RunCheckpoints(root.parent, root.name)
    copies: list[tuple[str, dict]] = []
    for stage in stages:
        payload = capped.load(stage) if stage in caps and stage in old_caps else None
        if capped.warnings:
            raise ValueError(capped.warnings[0])
        if payload is None or not payload.get("finished"):
            break
        missing = [key for key in RESUMED_KEYS if key not in payload]
        if missing:  # written by other code: resuming it would fail the run
            raise ValueError(f"stage {stage} lacks {', '.join(missing)}")
        if int(caps[stage]) == int(old_caps[stage]):
            copies.append((stage, payload))
            continue
        if stopped_by.get(stage) == EPOCH_CAP and int(caps[stage]) > int(old_caps[stage]):
            if payload.get("optimizer") is not None:  # finished stages keep it since extension
                return [*copies, (stage, {**payload, "finished": False})], stage, old_caps
        break
    return [], None, old_caps


# what resuming a stage reads from its checkpoint (models.training, HarnessContext.resume)
RESUMED_KEYS = ("epoch", "model", "extras", "stopper", "rng", "optimizer", "scheduler", "curve",
                "elapsed")  # fmt: skip


def _lock(root: Path) -> Path:
    return root.with_name(f"{root.name}.lock")
