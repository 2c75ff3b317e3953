"""Popularity: every user gets the items most often interacted with in the training data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from models.base import FitContext, Model, ModelConfig, SequenceData


@dataclass
class PopConfig(ModelConfig):
    ZERO_ALLOWED: ClassVar[frozenset[str]] = frozenset({"epochs"})  # nothing to train
    INERT: ClassVar[frozenset[str]] = frozenset({"batch_size", "lr", "epochs", "patience"})

    epochs: int = 0


class Popularity(Model):
    """Most popular training items, the same list for every user."""

    name = "pop"
    Config = PopConfig
    PROFILES = {"smoke": {}, "quick": {}, "paper": {}}

    def fit(self, data: SequenceData, ctx: FitContext) -> None:
        counts = torch.as_tensor(data.item_popularity(), dtype=torch.float64)
        counts[0] = -1.0  # never recommend padding
        # stable order: ties broken by item id
        self.ranking = torch.argsort(-counts, stable=True)
        ctx.validate(0)

    def recommend(self, histories: Sequence[Sequence[int]], k: int) -> torch.Tensor:
        return self.ranking[:k].unsqueeze(0).expand(len(histories), -1).clone()

    def state_dict(self):
        return {"ranking": self.ranking}

    def load_state_dict(self, state):
        self.ranking = state["ranking"]
