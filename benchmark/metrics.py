"""Full-ranking metrics with one held-out item per user, computed from the models' top-K lists.

Everything derives from the target's rank r in a user's list (1-based, 0 = not in the list):
Recall@K = [r <= K], NDCG@K = 1 / log2(r + 1) if r <= K, MRR@K = 1 / r if r <= K.
The per-user ranks are stored in each record so significance tests can be run later.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmark.errors import BenchmarkError

METRICS = ("recall", "ndcg", "mrr")


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
    for k in ks:
        if int(k) <= 0:
            raise BenchmarkError(f"K must be a positive integer, got {k}")
    ranks = np.asarray(ranks, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        hit = (ranks > 0) & (ranks <= k)
        safe = np.where(hit, ranks, 1.0)
        out[f"recall@{k}"] = hit.astype(np.float64)
        out[f"ndcg@{k}"] = np.where(hit, 1.0 / np.log2(safe + 1.0), 0.0)
        out[f"mrr@{k}"] = np.where(hit, 1.0 / safe, 0.0)
    return out
