"""Full-ranking metrics with one held-out item per user, computed from the models' top-K lists.

Everything derives from the target's rank r in a user's list (1-based, 0 = not in the list):
Recall@K = [r <= K], NDCG@K = 1 / log2(r + 1) if r <= K, MRR@K = 1 / r if r <= K.
The per-user ranks are stored in each record so significance tests can be run later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from benchmark.errors import BenchmarkError


@dataclass(frozen=True)
class Metric:
    """One row of the metric table: adding a metric is adding a row here. The runner, summary
    line, protocol check (``--select``), leaderboard, significance tests, figures and tuning
    all read :data:`METRIC_TABLE`."""

    name: str
    display: str
    # per-user value from 1-based ranks (0 = not in the list) and the cut-off K
    per_user: Callable[[np.ndarray, int], np.ndarray]
    higher_is_better: bool = True
    in_tables: bool = True  # a column of the leaderboard tables (all are in the records)


def _hits(ranks: np.ndarray, k: int) -> np.ndarray:
    return (ranks > 0) & (ranks <= k)


def _safe(ranks: np.ndarray, k: int) -> np.ndarray:
    return np.where(_hits(ranks, k), ranks, 1.0)


METRIC_TABLE: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("recall", "Recall", lambda r, k: _hits(r, k).astype(np.float64)),
        Metric(
            "ndcg",
            "NDCG",
            lambda r, k: np.where(_hits(r, k), 1.0 / np.log2(_safe(r, k) + 1.0), 0.0),
        ),
        Metric(
            "mrr", "MRR", lambda r, k: np.where(_hits(r, k), 1.0 / _safe(r, k), 0.0), True, False
        ),
    )
}
METRICS = tuple(METRIC_TABLE)


def headline_metrics(selection: str = "ndcg@10") -> list[str]:
    """The selection metric, then every table metric at its K (``ndcg@10``, ``recall@10``):
    what the curves log per epoch, the summary line prints and the figures draw."""
    k = selection.split("@")[1]
    others = [f"{m.name}@{k}" for m in METRIC_TABLE.values() if m.in_tables]
    return [selection, *(m for m in others if m != selection)]


def target_ranks(top_items: torch.Tensor | np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Rank (1-based) of each user's target in its list, 0 if absent."""
    top = np.asarray(top_items)
    targets = np.asarray(targets)
    if top.ndim != 2 or len(top) != len(targets):
        raise BenchmarkError(
            f"a model returned top-k lists of shape {top.shape} for {len(targets)} users"
        )
    hits = top == targets[:, None]
    first = hits.argmax(axis=1)
    return np.where(hits.any(axis=1), first + 1, 0).astype(np.int64)


def metrics_from_ranks(ranks: np.ndarray, ks: tuple[int, ...] | list[int]) -> dict[str, float]:
    """Mean Recall/NDCG/MRR@K over users."""
    per_user = per_user_metrics(ranks, ks)
    return {name: float(values.mean()) if len(values) else 0.0 for name, values in per_user.items()}


def per_user_metrics(ranks: np.ndarray, ks: tuple[int, ...] | list[int]) -> dict[str, np.ndarray]:
    """Every metric of :data:`METRIC_TABLE` at every K, per user."""
    for k in ks:
        if int(k) <= 0:
            raise BenchmarkError(f"K must be a positive integer, got {k}")
    ranks = np.asarray(ranks, dtype=np.float64)
    return {
        f"{metric.name}@{k}": metric.per_user(ranks, int(k))
        for k in ks
        for metric in METRIC_TABLE.values()
    }


def per_user_metric(ranks: np.ndarray, metric: str) -> np.ndarray:
    """Per-user values of one ``<metric>@<K>`` (e.g. ``ndcg@10``) from 1-based ranks."""
    name, k = metric.split("@")
    return METRIC_TABLE[name].per_user(np.asarray(ranks, dtype=np.float64), int(k))
