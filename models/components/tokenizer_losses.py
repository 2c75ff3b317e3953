"""Tokenizer regularisers of the semantic-ID methods (METHODS.md Sec. 5-7).

* :func:`codeword_uniformity_loss`: UniGRec's L_CU.
* :class:`FrequencyTracker`, :func:`sdud_loss`: DIGER's two uncertainty-decay schedules (FrqUD,
  SDUD).
* :func:`collaborative_loss`, :func:`cluster_codewords`, :func:`diversity_loss`: LETTER's
  collaborative and code-diversity regularisers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.components.kmeans import balanced_kmeans


def codeword_uniformity_loss(probs: torch.Tensor) -> torch.Tensor:
    """UniGRec L_CU = sum_l sum_k pbar_l(k) log pbar_l(k), pbar = batch-mean assignment.

    ``probs`` is ``[B, L, K]``. Lowest (``-L log K``) when every level uses its codes uniformly.
    UniGRec's code averages over levels instead of summing: divide the weight by L to match.
    """
    mean = probs.mean(0)
    return (mean * mean.clamp_min(1e-12).log()).sum()


class FrequencyTracker(nn.Module):
    """DIGER FrqUD: EMA of code usage per level, ``f <- m f + (1 - m) f_batch`` (init 1/K).

    Feed :meth:`update` the noise-free codes (``output.logits.argmax(-1)``), as DIGER's code
    does. :meth:`hot_mask` can be passed as ``noise_mask`` to the quantizer, which calls it with
    the level-1 codes, so only items on over-used level-1 codes receive Gumbel noise.
    """

    def __init__(self, levels: int, codebook_size: int, momentum: float = 0.99):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("frequency", torch.full((levels, codebook_size), 1.0 / codebook_size))

    @torch.no_grad()
    def update(self, codes: torch.Tensor) -> None:
        """Fold the usage of one batch of codes ``[B, L]`` into the EMA."""
        levels, size = self.frequency.shape
        counts = torch.zeros(levels, size, device=codes.device)
        counts.scatter_add_(1, codes.T.long(), torch.ones(codes.T.shape, device=codes.device))
        self.frequency.mul_(self.momentum).add_((1 - self.momentum) * counts / len(codes))

    def hot_mask(self, level1_codes: torch.Tensor, ratio: float = 1.5) -> torch.Tensor:
        """Boolean ``[B]``: items whose level-1 code has usage above ``ratio / K``."""
        return self.frequency[0, level1_codes] > ratio / self.frequency.shape[1]


def sdud_loss(loss: torch.Tensor, sigma: torch.Tensor, lam: float = 1.7) -> torch.Tensor:
    """DIGER SDUD: ``loss / (2 (|sigma| + lam)^2) + log(|sigma| + lam)``.

    Minimised in sigma at ``|sigma|* = max(0, sqrt(loss) - lam)``, so the noise decays as the
    generation loss falls. ``|sigma|`` follows DIGER's code, which also scales noise by it.
    """
    scale = sigma.abs() + lam
    return loss / (2 * scale**2) + scale.log()


def collaborative_loss(
    z_q: torch.Tensor, teacher: torch.Tensor, projection: nn.Module | None = None
) -> torch.Tensor:
    """LETTER L_CF: in-batch CE of raw dot products between quantised latents and teacher vectors.

    Row ``i`` of ``z_q`` ``[B, d]`` and ``teacher`` ``[B, d']`` belong to the same item; the other
    rows are its negatives. When ``d != d'`` pass a ``projection`` (e.g. ``nn.Linear(d, d')``,
    trained with the tokenizer: give its parameters to ``train_rqvae(extra_parameters=...)``).
    """
    if projection is not None:
        z_q = projection(z_q)
    if z_q.shape[1] != teacher.shape[1]:
        raise ValueError(
            f"collaborative_loss: latent dim {z_q.shape[1]} != teacher dim {teacher.shape[1]}; "
            "pass a projection"
        )
    logits = z_q @ teacher.T
    return F.cross_entropy(logits, torch.arange(len(z_q), device=z_q.device))


def cluster_codewords(codebooks: torch.Tensor, n_clusters: int = 10, seed: int = 0) -> torch.Tensor:
    """Cluster labels ``[L, K]`` of each level's codewords (LETTER re-clusters every epoch)."""
    return torch.stack(
        [
            balanced_kmeans(book, n_clusters, seed=seed + level)
            for level, book in enumerate(codebooks)
        ]
    )


def diversity_loss(
    query: torch.Tensor,
    codebook: torch.Tensor,
    codes: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """LETTER L_div for one level: pull an item on code c toward a random c+ != c of c's cluster.

    CE over ``query @ codebook.T`` with the own-code logit masked, target c+. LETTER's code uses
    ``query = codebook[codes]`` (the quantised vector); the paper writes the latent ``z``. Items
    whose cluster holds only their own code are skipped. ``labels`` ``[K]`` from
    :func:`cluster_codewords`; ``generator`` (CPU) seeds the draw of c+.
    """
    size = len(codebook)
    order = torch.argsort(labels, stable=True)
    sizes = torch.bincount(labels, minlength=int(labels.max()) + 1)
    starts = sizes.cumsum(0) - sizes
    rank = torch.empty_like(order)
    rank[order] = torch.arange(size, device=labels.device) - starts[labels[order]]

    cluster = labels[codes]
    valid = sizes[cluster] > 1
    draw = torch.rand(len(codes), generator=generator).to(codes.device)
    offset = (draw * (sizes[cluster] - 1)).long()
    offset = offset + (offset >= rank[codes]).long()
    positive = order[torch.where(valid, starts[cluster] + offset, 0)]

    logits = query @ codebook.T
    logits = logits.masked_fill(F.one_hot(codes, size).bool(), float("-inf"))
    if not valid.any():
        return logits.new_zeros(())
    return F.cross_entropy(logits[valid], positive[valid])
