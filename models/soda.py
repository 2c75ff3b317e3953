"""SODA-style distribution-level contrastive supervision as a plug-in loss (reconstructed).

Xue et al., "Distribution-Level Contrastive Supervision for Generative Recommendation", arXiv
2603.00700 (RecSys 2026 short paper). The paper supervises the recommender with probability
distributions over the multi-level codebooks instead of hard codes, scores a (user, item) pair
by a negative KL divergence, and trains with a BPR-style loss; it is a plug-in for TIGER, LETTER
and ETEGRec. Its code (github.com/freyasa/SODA, named on a co-author's page) could not be
retrieved here, and the paper's text gives no distribution definitions, KL direction, negatives,
weights or temperatures (METHODS.md Sec. 8), so this is our reconstruction [I];
label its results "SODA-style (reconstructed)" (recorded as ``diagnostics["soda"]["label"]``).

* Item side, per level ``l``: ``q_l(i) = softmax(-||r_{l-1}(i) - E_l[k]||^2 / soda_tau)`` over
  the codes ``k``, with ``r_{l-1}(i)`` the item's residual entering level ``l`` of the backbone's
  RQ-VAE (:func:`code_logits`). Backbones that train the tokenizer jointly (UniGRec, DIGER) keep
  it as ``self.tokenizer`` with its inputs ``self.inputs``: q is computed from the live tokenizer,
  so the SODA gradient reaches its encoder and codebooks (DIGER: noise-free pass; UniGRec:
  soft residuals at tau_min). Frozen-tokenizer backbones (TIGER, LETTER) get their RQ-VAE from
  the artifact cache (``pretrained_rqvae``, the same training as their codes) and q is a
  constant of the frozen distances.
* User side: the recommender's teacher-forced distribution at SID position ``l``, restricted to
  level ``l``'s codes (``column_log_probs``); the collision-digit position is not used. Teacher
  forcing conditions positions ``l > 1`` on the positive item's prefix, for negatives too.
* ``score(u, i) = -sum_l KL(p_l(u) || q_l(i))`` (``soda_kl="user_item"``; ``"item_user"`` swaps
  the arguments); the item distribution is renormalised over the codes the vocabulary holds.
* ``L = L_backbone + soda_weight * mean(-log sigmoid(score(u, i+) - score(u, i-)))`` over
  ``soda_negatives`` negatives per row, drawn uniformly from the catalogue or from the other
  rows' targets (``soda_sampling``); negatives equal to the positive are dropped.

Composition: :data:`SODA` (a :class:`models.base.ModelPlugin`) turns a backbone class into a
subclass ``<backbone>+soda`` whose config adds the ``soda_*`` fields, whose profiles are the
backbone's plus :data:`SODA_PROFILES`, and whose tokenizer cache is the backbone's. The
backbone's teacher-forced pass is read with a forward hook on the recommender, so backbones need
no change; each must run exactly one such pass per batch.

Deviations and choices of ours (the paper's are unknown):

* Updates are simultaneous (one summed loss) where the paper alternates tokenizer and
  recommender updates; for frozen-tokenizer backbones the tokenizer is not trained at all.
* Negatives share the positive's teacher-forced prefix (one decoder pass per row).
* Defaults (``soda_weight`` 0.1, 8 uniform negatives) are guesses, not tuned; ``soda_weight``
  is in the tuning search space. ``soda_tau`` 0.1 because distances vary by backbone and level:
  on ml-tiny (``quick``) it gives item-side entropies of 0.2 / 1.4 / 3.7 bits (of 6) on TIGER's
  levels and 1.6 / 1.9 / 2.9 on UniGRec's, while tau 1 is near uniform for TIGER's lower levels.
  ``diagnostics["soda"]["item_entropy_bits"]`` reports it per run. With ``user_item`` and peaked
  item distributions, KL is large wherever the user puts mass the item nearly excludes: the
  term started near 14.5 on ml-tiny ``quick`` (``item_user``, bounded by the user's
  log-probabilities: near 1.2). ``soda_kl`` and ``soda_tau`` are worth tuning per backbone.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from models.base import ConfigError, FitContext, Model, SequenceData
from models.components.quantizer import RQVAE
from models.components.semantic_ids import SemanticIDTable, add_collision_digit, sid_diagnostics
from models.generative import GenerativeConfig, GenerativeRecommender

# (kept as written in every record so far; read "public" as "available to us", see above)
LABEL = "SODA-style (reconstructed: the paper's code is not public, see models/soda.py)"
KL_DIRECTIONS = ("user_item", "item_user")
SAMPLINGS = ("uniform", "in-batch")
SODA_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"soda_negatives": 4},
    "quick": {},
    "paper": {},
}


def code_logits(residuals: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    """``-||r_{l-1} - E_l[k]||^2`` ``[U, L, K]`` from residuals ``[U, L, d]`` (the quantizer's
    ``residuals``) and codebooks ``[L, K, d]``; in fp32 whatever the autocast (see
    :func:`models.components.kmeans.squared_distances`)."""
    with torch.autocast(residuals.device.type, enabled=False):
        residuals, codebooks = residuals.float(), codebooks.float()
        cross = torch.einsum("uld,lkd->ulk", residuals, codebooks)
        return 2 * cross - residuals.pow(2).sum(-1, keepdim=True) - codebooks.pow(2).sum(-1)[None]


def distribution_scores(
    user_log_probs: Sequence[torch.Tensor],
    item_logits: torch.Tensor,
    tau: float = 1.0,
    direction: str = "user_item",
) -> torch.Tensor:
    """``score(u, i) = -sum_l KL`` ``[B, M]`` between each row's user distributions and its M
    candidate items.

    ``user_log_probs``: per level ``l`` log-probabilities ``[B, K_l]``; ``item_logits``
    ``[B, M, L, K]`` with ``K >= K_l`` (:func:`code_logits`); item level ``l`` is
    ``softmax(logits[..., :K_l] / tau)``. ``direction``: ``"user_item"`` is
    ``KL(p_u || q_i)``, ``"item_user"`` is ``KL(q_i || p_u)``.
    """
    if direction not in KL_DIRECTIONS:
        raise ValueError(f"direction must be one of {KL_DIRECTIONS}, not {direction!r}")
    score = item_logits.new_zeros(item_logits.shape[:2])
    for level, user in enumerate(user_log_probs):
        log_q = (item_logits[:, :, level, : user.shape[-1]] / tau).log_softmax(-1)
        log_p = user[:, None, :]
        if direction == "user_item":
            kl = (log_p.exp() * (log_p - log_q)).sum(-1)
        else:
            kl = (log_q.exp() * (log_q - log_p)).sum(-1)
        score = score - kl
    return score


def soda_loss(scores: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """BPR ``mean(-log sigmoid(s+ - s-))`` from scores ``[B, 1 + n]`` (positive first) over the
    negatives where ``valid [B, n]`` holds (all when ``None``)."""
    losses = F.softplus(scores[:, 1:] - scores[:, :1])
    if valid is None:
        return losses.mean()
    weights = valid.to(losses)
    return (losses * weights).sum() / weights.sum().clamp_min(1.0)


def ordered_pairs(scores: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How many valid (positive, negative) pairs of ``scores [B, 1 + n]`` rank the positive
    strictly above the negative, and how many valid pairs there are (0-d tensors on the
    scores' device: the training loop reads them once per epoch, not once per step)."""
    ordered = (scores[:, :1] > scores[:, 1:]) & valid
    return ordered.sum(), valid.sum()


@dataclass
class SodaFields:
    """The ``soda_*`` config fields, added to a backbone's config by :func:`soda_config`."""

    soda_weight: float = 0.1
    soda_tau: float = 0.1  # temperature of the item-side code distributions
    soda_negatives: int = 8
    soda_sampling: str = "uniform"  # "uniform" over the catalogue or "in-batch" targets
    soda_kl: str = "user_item"  # KL(p_user || q_item); "item_user" swaps the arguments


def soda_config(base: type[GenerativeConfig], name: str) -> type[GenerativeConfig]:
    """A dataclass extending ``base`` with :class:`SodaFields`; validates them on creation."""

    @dataclass
    class Config(base, SodaFields):  # type: ignore[valid-type, misc]
        CHOICES = {**base.CHOICES, "soda_kl": KL_DIRECTIONS, "soda_sampling": SAMPLINGS}

        def __post_init__(self) -> None:
            getattr(base, "__post_init__", lambda self: None)(self)
            if self.soda_tau <= 0:
                raise ConfigError(f"soda_tau={self.soda_tau} must be > 0")
            if self.tokenizer != "rqvae":
                raise ConfigError(
                    f"soda reads the RQ-VAE's code distances: tokenizer must be 'rqvae', "
                    f"not {self.tokenizer!r}"
                )

    Config.__name__ = Config.__qualname__ = name
    return Config


class SodaMixin(GenerativeRecommender):
    """Adds the SODA term to a backbone's :meth:`training_loss` (see the module docstring)."""

    soda_backbone: ClassVar[str] = ""  # registry name of the backbone (shares its tokenizer cache)
    soda_frozen_tokenizer: ClassVar[bool] = True

    tokenizer: RQVAE
    inputs: torch.Tensor

    def tokenizer_key(self, data: SequenceData, ctx: FitContext) -> dict[str, Any]:
        return {**super().tokenizer_key(data, ctx), "method": self.soda_backbone}

    def build_semantic_ids(self, data: SequenceData, ctx: FitContext) -> SemanticIDTable:
        """Joint backbones build their own IDs and keep their tokenizer; for frozen ones the
        RQ-VAE is loaded (or trained and cached) and kept, frozen, for the item side."""
        if not self.soda_frozen_tokenizer:
            table = super().build_semantic_ids(data, ctx)
            if not isinstance(getattr(self, "tokenizer", None), RQVAE):
                raise ConfigError(
                    f"{self.name}: the backbone keeps no RQ-VAE as `tokenizer` for SODA to read"
                )
            return table
        self.tokenizer, self.inputs = self.pretrained_rqvae(data, ctx)
        self.tokenizer.requires_grad_(False)
        codes = self.tokenizer.encode_codes(self.inputs)
        self.diagnostics["sid"] = sid_diagnostics(codes, self.config.codebook_size)
        return SemanticIDTable.from_codes(add_collision_digit(codes))

    def prepare(self, data: SequenceData, ctx: FitContext) -> None:
        super().prepare(data, ctx)
        device = self.net.token_embedding.weight.device
        self.tokenizer.to(device)
        self.inputs = self.inputs.to(device)
        # loss sum, batches, correctly ordered pairs, pairs: summed on the device
        self.soda_totals = torch.zeros(4, device=device)

    def item_code_logits(self, items: torch.Tensor) -> torch.Tensor:
        """``-d`` ``[U, L, K]`` of items ``[U]`` (ids 1..n) from the tokenizer, noise-free;
        differentiable where the tokenizer's parameters require grad."""
        quantizer = self.tokenizer.quantizer
        out = quantizer(self.tokenizer.encode(self.inputs[items - 1]), noise_scale=0.0)
        return code_logits(out.residuals, quantizer.codebooks)

    def sample_negatives(self, targets: torch.Tensor) -> torch.Tensor:
        """Negative item ids ``[B, soda_negatives]`` (may equal the positive: masked later)."""
        c = self.config
        shape = (len(targets), c.soda_negatives)
        if c.soda_sampling == "uniform":
            return torch.randint(1, self.sids.n_items + 1, shape, device=targets.device)
        shift = torch.randint(1, max(len(targets), 2), shape, device=targets.device)
        rows = (torch.arange(len(targets), device=targets.device)[:, None] + shift) % len(targets)
        return targets[rows]

    def training_loss(self, histories: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        c = self.config
        captured: list[torch.Tensor] = []
        hook = self.net.register_forward_hook(lambda net, args, out: captured.append(out.logits))
        try:
            loss = super().training_loss(histories, targets)
        finally:
            hook.remove()
        if len(captured) != 1:
            raise RuntimeError(
                f"{self.name}: SODA needs one teacher-forced recommender pass per batch, "
                f"the backbone ran {len(captured)}"
            )
        user = self.net.column_log_probs(captured[0])[: c.levels]
        targets = targets.to(self.inputs.device)
        negatives = self.sample_negatives(targets)
        candidates = torch.cat([targets[:, None], negatives], 1)  # positive first
        items, inverse = torch.unique(candidates, return_inverse=True)
        logits = self.item_code_logits(items)[inverse]
        scores = distribution_scores(user, logits, c.soda_tau, c.soda_kl)
        valid = negatives != targets[:, None]
        term = soda_loss(scores, valid)
        ordered, pairs = ordered_pairs(scores.detach(), valid)
        one = torch.ones((), device=ordered.device)
        self.soda_totals += torch.stack(
            [term.detach().float(), one, ordered.float(), pairs.float()]
        )
        return loss + c.soda_weight * term

    def end_epoch(self, epoch: int, data: SequenceData, ctx: FitContext) -> dict[str, Any]:
        """The backbone's epoch hook, plus the epoch's SODA loss and the share of sampled
        pairs ranked correctly (``score(u, i+) > score(u, i-)``)."""
        total, batches, ordered, pairs = self.soda_totals.tolist()
        self.soda_totals = torch.zeros_like(self.soda_totals)
        soda = {"soda_loss": total / max(batches, 1.0), "soda_accuracy": ordered / max(pairs, 1.0)}
        return {**super().end_epoch(epoch, data, ctx), **soda}

    def fit(self, data: SequenceData, ctx: FitContext) -> None:
        super().fit(data, ctx)
        self.diagnostics["soda"] = {
            "label": LABEL,
            "backbone": self.soda_backbone,
            "tokenizer": "frozen" if self.soda_frozen_tokenizer else "joint",
            "item_entropy_bits": self.item_entropy_bits(),
        }

    @torch.no_grad()
    def item_entropy_bits(self) -> list[float]:
        """Mean entropy (bits) of the item-side distributions ``q_l`` per level over the
        catalogue: how soft SODA's targets are at ``soda_tau``."""
        items = torch.arange(1, self.sids.n_items + 1, device=self.inputs.device)
        totals = torch.zeros(self.config.levels, device=items.device)
        for chunk in items.split(4096):
            log_q = (self.item_code_logits(chunk) / self.config.soda_tau).log_softmax(-1)
            totals += -(log_q.exp() * log_q).sum(-1).sum(0)
        return (totals / len(items) / np.log(2)).tolist()


class SodaPlugin:
    """The :class:`models.base.ModelPlugin` registered as ``soda``."""

    name = "soda"

    def incompatibility(self, backbone: type[Model]) -> str | None:
        if not issubclass(backbone, GenerativeRecommender):
            return (
                f"{backbone.name!r} is not a semantic-ID GenerativeRecommender; SODA needs "
                "a tokenizer's per-level code distances and a recommender decoding semantic IDs"
            )
        if issubclass(backbone, SodaMixin):
            return f"{backbone.name!r} already has soda"
        own = GenerativeRecommender.build_semantic_ids
        if backbone.build_semantic_ids is own and backbone.train_tokenizer is not (
            GenerativeRecommender.train_tokenizer
        ):
            return f"{backbone.name!r} trains its tokenizer in its own way, SODA cannot read it"
        return None

    def compose(self, backbone: type[Model]) -> type[Model]:
        reason = self.incompatibility(backbone)
        if reason is not None:
            raise ConfigError(reason)
        return _with_soda(backbone)


@functools.cache
def _with_soda(backbone: type[GenerativeRecommender]) -> type[GenerativeRecommender]:
    doc = (backbone.__doc__ or backbone.name).strip().splitlines()[0].rstrip(".")
    return type(
        f"{backbone.__name__}Soda",
        (SodaMixin, backbone),
        {
            "__doc__": f"{doc}; plus the {LABEL} distribution-level BPR loss.",
            "__module__": __name__,
            "name": f"{backbone.name}+soda",
            "Config": soda_config(backbone.Config, f"{backbone.Config.__name__}+soda"),
            "PROFILES": {
                profile: {**values, **SODA_PROFILES.get(profile, {})}
                for profile, values in backbone.PROFILES.items()
            },
            "SEARCH_SPACE": {**backbone.SEARCH_SPACE, "soda_weight": ("float", 0.01, 1.0, "log")},
            "soda_backbone": backbone.name,
            "BUILDS_ON": backbone.name,
            "soda_frozen_tokenizer": backbone.build_semantic_ids
            is GenerativeRecommender.build_semantic_ids,
        },
    )


SODA = SodaPlugin()
