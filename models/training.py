"""Training helpers shared by every model: the epoch loop with early stopping and epoch-level
resume, learning-rate schedules that do not depend on a planned length, RNG isolation, padding.

Resume contract: after every epoch the loop hands the harness (``ctx.checkpoint``) everything
that decides what happens next (model, optimizer, scheduler, early-stopping state with its best
weights, the RNG states of python / numpy / torch, the model's extra state). Restoring all of it
at an epoch boundary makes a resumed run take exactly the steps an uninterrupted one takes, so
both give the same record (checked in ``tests/test_resume.py``). Checkpoints hold only tensors
and plain data: they load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import json
import math
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from models.errors import TrainingDiverged

# Learning-rate schedules, all with linear warmup. None of them reads a planned run length, so
# early stopping or a wall-clock budget can cut a run anywhere without changing the steps
# before the cut (the cosine of the papers decays over its epoch cap and exists for fidelity).
SCHEDULES = ("constant", "inverse_sqrt", "cosine")


def device_name(device: torch.device) -> str:
    """The device as precise as bit-identical results need: another GPU model (or torch) is
    not the same arithmetic ("cpu, torch 2.x" on the CPU)."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    return f"{name}, torch {torch.__version__}"


def device_key(device: torch.device) -> dict[str, str]:
    """The cache-key entry of an artifact trained on ``device``: none on the CPU (the keys
    every cached CPU artifact has), the GPU model and torch otherwise, so a cache shared by
    machines never hands one GPU's artifact to another's run."""
    return {} if device.type == "cpu" else {"device": device_name(device)}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The python, numpy and torch (CPU and CUDA) generator states as tensors and plain data."""
    state = np.random.get_state(legacy=False)
    state["state"]["key"] = torch.as_tensor(state["state"]["key"].astype(np.int64))
    out = {"python": random.getstate(), "numpy": state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = copy.deepcopy(state["numpy"])
    numpy_state["state"]["key"] = numpy_state["state"]["key"].numpy().astype(np.uint32)
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Run a block under its own seeded python / numpy / torch generators and leave the caller's
    streams exactly as they were: a cached artifact then costs the run's random stream nothing
    whether it is built (cold cache) or loaded (warm cache)."""
    saved = rng_state()
    try:
        seed_everything(seed)
        yield
    finally:
        set_rng_state(saved)


def lr_schedule(
    optimizer: torch.optim.Optimizer, kind: str, warmup: int, cap_steps: int = 0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup over ``warmup`` steps, then

    * ``constant``: the peak rate;
    * ``inverse_sqrt``: ``sqrt(warmup / step)`` (TIGER Sec. 4.1's decay);
    * ``cosine``: cosine to zero at ``cap_steps`` (the LETTER / UniGRec scripts; depends on the
      epoch cap, so only for replicating them)."""
    if kind not in SCHEDULES:
        raise ValueError(f"unknown lr_schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
    warmup = max(int(warmup), 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if kind == "inverse_sqrt":
            return math.sqrt(warmup / (step + 1))
        if kind == "cosine":
            progress = min(1.0, (step - warmup) / max(1, cap_steps - warmup))
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


STOPPED_EARLY, EPOCH_CAP, TIME_BUDGET = "early stopping", "epoch cap", "time budget"
# the config key that caps each training stage's epochs
STAGE_CAPS = {"recommender": "epochs", "finetune": "finetune_epochs"}


def capped_stages(diagnostics: dict[str, Any]) -> list[str]:
    """Stages of a run (``diagnostics["stopped_by"]``) that ended at the epoch cap."""
    return [
        stage for stage, why in (diagnostics.get("stopped_by") or {}).items() if why == EPOCH_CAP
    ]


class EarlyStopping:
    """Keep the best validation score and a copy of the model's state; stop after ``patience``
    epochs without improvement. ``stopped_by`` says what ended the stage: early stopping, the
    epoch cap (the curve may still have been rising) or the time budget."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best = -float("inf")
        self.best_epoch = -1
        self.bad_epochs = 0
        self.best_state: dict[str, Any] | None = None
        self.stopped_by: str | None = None

    def step(self, score: float, epoch: int, model: Any) -> bool:
        """Record ``score``; return True when training should stop."""
        if score > self.best:
            self.best, self.best_epoch, self.bad_epochs = score, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def restore(self, model: Any) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "best_state": self.best_state,
            "stopped_by": self.stopped_by,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.bad_epochs, self.best_state = state["bad_epochs"], state["best_state"]
        self.stopped_by = state.get("stopped_by")  # checkpoints before it was kept: unknown


def train_epochs_with_resume(
    model: Any,
    ctx: Any,
    *,
    stage: str,
    epochs: int,
    patience: int,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    run_epoch: Callable[[int], dict[str, Any]],
    first_epoch: int = 0,
) -> EarlyStopping:
    """Up to ``epochs`` epochs of ``run_epoch(epoch) -> logged values`` (numbered from
    ``first_epoch``), each followed by ``ctx.validate``; stops after ``patience`` epochs without
    improvement or when ``ctx.out_of_budget()``; restores the best state and returns the stopper.
    What ended the stage goes into ``model.diagnostics["stopped_by"][stage]``.

    ``stage`` names the checkpoint: a multi-stage method calls this once per stage. A stage
    whose checkpoint says it finished is not trained again (its final state is loaded); an
    unfinished one continues after its last epoch. ``model`` is a :class:`models.base.Model`
    (``state_dict`` / ``resume_extras`` and their loaders)."""
    stopper = EarlyStopping(patience)
    start = first_epoch
    saved = ctx.resume(stage)
    if saved is not None:
        model.load_state_dict(saved["model"])
        model.load_resume_extras(saved["extras"])
        stopper.load_state_dict(saved["stopper"])
        if saved["finished"]:
            set_rng_state(saved["rng"])
            return _stopped(model, stopper, stage)
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        set_rng_state(saved["rng"])
        start = saved["epoch"] + 1
        if saved.get("stopped"):  # budget-stopped before: only continue if budget is left
            if ctx.out_of_budget():
                stopper.stopped_by = TIME_BUDGET
                return _stopped(model, stopper, stage)

    def snapshot(epoch: int, finished: bool, stopped: bool = False) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "finished": finished,
            "stopped": stopped,
            "model": model.state_dict(),
            "extras": model.resume_extras(),
            # kept when finished too: a stage that ended at its epoch cap can then go on under
            # a larger cap (benchmark.checkpoints.extend_from_capped)
            "optimizer": optimizer.state_dict(),
            "scheduler": None if scheduler is None else scheduler.state_dict(),
            "stopper": stopper.state_dict(),
            "rng": rng_state(),
        }

    epoch = start - 1
    stopper.stopped_by = EPOCH_CAP
    for epoch in range(start, first_epoch + epochs):
        extra = run_epoch(epoch)
        check_finite_losses(extra, stage, epoch)
        score = ctx.validate(epoch, extra)
        if stopper.step(score, epoch, model):
            stopper.stopped_by = STOPPED_EARLY
            break
        if ctx.out_of_budget():
            # keep the last epoch's state, so a larger budget can continue from here
            stopper.stopped_by = TIME_BUDGET
            ctx.checkpoint(stage, snapshot(epoch, finished=False, stopped=True), final=True)
            return _stopped(model, stopper, stage)
        if epoch + 1 < first_epoch + epochs:
            ctx.checkpoint(stage, snapshot(epoch, finished=False))
    ctx.checkpoint(stage, snapshot(epoch, finished=True), final=True)
    return _stopped(model, stopper, stage)


def check_finite_losses(logged: dict[str, Any], stage: str, epoch: int) -> None:
    """Raise :class:`TrainingDiverged` when an epoch's logged loss is NaN or infinite."""
    for key, value in logged.items():
        if "loss" in key and isinstance(value, float) and not math.isfinite(value):
            raise TrainingDiverged(
                f"{stage} diverged at epoch {epoch}: mean {key} is {value}; lower the learning "
                "rate (--set lr=...) or check the inputs"
            )


def _stopped(model: Any, stopper: EarlyStopping, stage: str) -> EarlyStopping:
    """Restore the best state and note what ended ``stage`` in the model's diagnostics."""
    stopper.restore(model)
    diagnostics = getattr(model, "diagnostics", None)
    if isinstance(diagnostics, dict) and stopper.stopped_by is not None:
        diagnostics.setdefault("stopped_by", {})[stage] = stopper.stopped_by
    return stopper


def jsonable(value: Any) -> Any:
    """``value`` as JSON-compatible plain data (numpy arrays and scalars become lists / numbers):
    how models put their diagnostics into a checkpoint."""
    return json.loads(
        json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    )


def pad_histories(histories: list[list[int]], length: int | None = None) -> torch.Tensor:
    """Right-padded LongTensor of item ids (0 = padding), as RecBole's sequential models expect."""
    width = length or max((len(h) for h in histories), default=1)
    out = torch.zeros(len(histories), max(width, 1), dtype=torch.long)
    for row, items in enumerate(histories):
        if items:
            out[row, : len(items)] = torch.as_tensor(items[-width:])
    return out
