"""Training helpers shared by every model: early stopping with best-state restore, seeding."""

from __future__ import annotations

import copy
import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class EarlyStopping:
    """Keep the best validation score and a copy of the model's state; stop after ``patience``
    epochs without improvement."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best = -float("inf")
        self.best_epoch = -1
        self.bad_epochs = 0
        self.best_state: dict[str, Any] | None = None

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


def pad_histories(histories: list[list[int]], length: int | None = None) -> torch.Tensor:
    """Right-padded LongTensor of item ids (0 = padding), as RecBole's sequential models expect."""
    width = length or max((len(h) for h in histories), default=1)
    out = torch.zeros(len(histories), max(width, 1), dtype=torch.long)
    for row, items in enumerate(histories):
        if items:
            out[row, : len(items)] = torch.as_tensor(items[-width:])
    return out
