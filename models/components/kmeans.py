"""Seeded, vectorised k-means on torch tensors (codebook initialisation, residual k-means IDs).

Plain Lloyd iterations; an empty cluster is re-seeded with the point farthest from its centre.
:func:`balanced_kmeans` replaces the nearest-centre step by a Sinkhorn transport plan with equal
cluster masses, an approximate stand-in for LETTER's size-constrained k-means.
"""

from __future__ import annotations

import torch


def squared_distances(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """``||x_i - c_k||^2`` as ``[N, K]``, by the expanded form (one matmul), always in fp32:
    under bf16 autocast the expanded form picks another nearest code for a few percent of
    items (measured on office), so autocast is switched off here."""
    with torch.autocast(x.device.type, enabled=False):
        x, centres = x.float(), centres.float()
        return (
            x.pow(2).sum(1, keepdim=True) - 2 * x @ centres.T + centres.pow(2).sum(1)[None, :]
        ).clamp_min(0)


def _initial_centres(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` distinct points when there are enough, else points drawn with replacement."""
    if len(x) >= k:
        index = torch.randperm(len(x), generator=generator)[:k]
    else:
        index = torch.randint(len(x), (k,), generator=generator)
    return x[index].clone()


def _update(x: torch.Tensor, labels: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Cluster means; empty clusters take the points farthest from their current centre."""
    k = len(centres)
    counts = torch.bincount(labels, minlength=k).to(x.dtype)
    sums = torch.zeros_like(centres).index_add_(0, labels, x)
    new = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centres)
    empty = torch.nonzero(counts == 0).flatten()
    if len(empty):
        farthest = (x - centres[labels]).pow(2).sum(1).argsort(descending=True)
        new[empty] = x[farthest[torch.arange(len(empty)) % len(x)]]
    return new


def kmeans(
    x: torch.Tensor, k: int, iters: int = 20, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means; returns ``(centres [k, d], labels [N])``. Deterministic given ``seed``."""
    x = x.detach().float()
    generator = torch.Generator().manual_seed(seed)
    centres = _initial_centres(x, k, generator)
    for _ in range(iters):
        labels = squared_distances(x, centres).argmin(1)
        centres = _update(x, labels, centres)
    return centres, squared_distances(x, centres).argmin(1)


def sinkhorn(cost: torch.Tensor, epsilon: float = 0.05, iters: int = 50) -> torch.Tensor:
    """Entropic transport plan ``[N, K]`` with uniform row and column masses.

    ``cost`` is scaled to ``[0, 1]`` first, so ``epsilon`` is relative to the cost range.
    """
    cost = cost.double()
    cost = (cost - cost.min()) / (cost.max() - cost.min()).clamp_min(1e-12)
    log_plan = -cost / epsilon
    n, k = cost.shape
    for _ in range(iters):
        log_plan = log_plan - log_plan.logsumexp(1, keepdim=True) - torch.log(torch.tensor(n))
        log_plan = log_plan - log_plan.logsumexp(0, keepdim=True) - torch.log(torch.tensor(k))
    return log_plan.exp()


def balanced_kmeans(x: torch.Tensor, k: int, iters: int = 10, seed: int = 0) -> torch.Tensor:
    """Labels ``[N]`` of a k-means whose assignment step balances cluster sizes (Sinkhorn).

    LETTER (Sec. 3.2, code) clusters codewords with ``k_means_constrained`` (hard size bounds);
    here sizes are only approximately equal: rows of the balanced plan are rounded by argmax.
    """
    x = x.detach().float()
    generator = torch.Generator().manual_seed(seed)
    centres = _initial_centres(x, k, generator)
    for _ in range(iters):
        centres = _update(x, sinkhorn(squared_distances(x, centres)).argmax(1), centres)
    return sinkhorn(squared_distances(x, centres)).argmax(1)
