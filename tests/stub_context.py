"""A FitContext stand-in for tests that drive a model's stages directly."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class StubContext:
    """A FitContext with random item and teacher vectors and an in-memory cache."""

    seed = 0
    device = torch.device("cpu")

    def __init__(self, n_items: int):
        rng = np.random.default_rng(0)
        self.items = rng.normal(size=(n_items + 1, 24)).astype(np.float32)
        self.teacher = rng.normal(size=(n_items + 1, 12)).astype(np.float32)
        self.store: dict[str, Any] = {}

    @property
    def cache(self) -> StubContext:
        return self

    def get_or_create(self, kind: str, key: dict, create):
        name = kind + repr(sorted(key.items()))
        if name not in self.store:
            self.store[name] = create()
        return self.store[name]

    def progress(self, iterable=None, *, desc: str, total: int | None = None):
        return iterable

    def validate(self, epoch: int, extra: dict | None = None) -> float:
        return 0.0

    def item_embeddings(self, encoder: str | None = None) -> np.ndarray:
        return self.items

    def teacher_embeddings(self) -> np.ndarray:
        return self.teacher

    def log(self, message: str) -> None:
        pass

    def out_of_budget(self) -> bool:
        return False

    def resume(self, stage: str) -> dict | None:
        return None

    def checkpoint(self, stage: str, state: dict, final: bool = False) -> None:
        pass


def fitted(model: type | str, data: Any, **overrides: Any) -> Any:
    """A smoke-profile model (class or registry name) with its tokenizer, IDs and recommender
    built by ``fit`` on a :class:`StubContext`, but no training epochs."""
    from benchmark.runner import build_config, resolve_model

    cls = resolve_model(model) if isinstance(model, str) else model
    config = build_config(cls, "smoke", overrides)
    config.epochs = 0  # below the range a user may set: build the model without training it
    built = cls(config)
    built.fit(data, StubContext(data.n_items))
    return built


def training_batch(data: Any, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` training pairs as padded histories and targets."""
    from models.training import pad_histories

    histories = pad_histories(data.train_histories[:n], data.max_history)
    return histories, torch.as_tensor(data.train_targets[:n])
