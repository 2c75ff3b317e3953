"""Residual-quantised autoencoder (RQ-VAE) with the code assignments the methods differ by.

Common skeleton (TIGER Sec. 3.1; METHODS.md Sec. 4): MLP encoder ``x -> z``; L levels of K
codewords; level l assigns the residual ``r_{l-1}`` (``r_0 = z``) to a code, quantises it to
``q_l`` and passes ``r_l = r_{l-1} - q_l`` on; the decoder reconstructs ``x`` from ``z_q``.

Assignments (:class:`Assignment`):

* ``hard`` (TIGER): ``c = argmin_k ||r - E[k]||^2``, ``q = E[c]``, decoder input
  ``z + sg(sum_l q_l - z)`` (straight-through); loss ``||sg(r) - q||^2 + beta ||r - sg(q)||^2``.
* ``soft`` (UniGRec, METHODS.md Sec. 7): ``p = softmax(-d / tau)``, ``q = p E``, code
  ``argmax p``; residuals stay soft; no codebook/commitment loss; ``tau`` is annealed by the caller.
* ``gumbel`` (DIGER DRIL, METHODS.md Sec. 6): logits ``-d`` (optionally min-max centred over the
  batch into [-1, 1] as DIGER's code does), Gumbel noise scaled by ``|sigma|`` and restricted to a
  per-item mask (FrqUD), ``y = softmax((logits + noise) / tau)``,
  ``Ind = onehot(argmax(logits + noise)) - sg(y) + y``, ``q = Ind E``: hard forward, every
  codeword gets gradient through ``y``; same VQ loss as ``hard``; no noise in eval mode.

Deviation: the VQ loss is summed over levels (TIGER's formula); LETTER and DIGER average. The
loss terms are element means (``F.mse_loss``), as in every port.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.base import Progress
from models.components.kmeans import kmeans, squared_distances
from models.components.tokenizer_losses import (
    FrequencyTracker,
    cluster_codewords,
    codeword_uniformity_loss,
    collaborative_loss,
    diversity_loss,
    sdud_loss,
)
from models.errors import TrainingDiverged

__all__ = [
    "Assignment",
    "FrequencyTracker",
    "Quantized",
    "RQVAE",
    "RQVAEConfig",
    "RQVAEOutput",
    "ResidualQuantizer",
    "cluster_codewords",
    "codeword_uniformity_loss",
    "collaborative_loss",
    "diversity_loss",
    "residual_kmeans",
    "sdud_loss",
    "train_rqvae",
]

NoiseMask = torch.Tensor | Callable[[torch.Tensor], torch.Tensor] | None
MIN_NOISE = 1e-4  # DIGER's code draws no noise below this scale


class Assignment(StrEnum):
    HARD = "hard"
    SOFT = "soft"
    GUMBEL = "gumbel"


DEFAULT_TAU = {Assignment.HARD: 1.0, Assignment.SOFT: 0.01, Assignment.GUMBEL: 2.0}


@dataclass
class Quantized:
    """What the residual quantizer returns for a batch of ``B`` latents."""

    codes: torch.Tensor  # [B, L] long, the hard codes used in the forward pass
    z_q: torch.Tensor  # [B, d] decoder input
    quantized: torch.Tensor  # [B, L, d] per-level q_l, usable as token embeddings (hard: E[c])
    residuals: torch.Tensor  # [B, L, d] input r_{l-1} of each level
    logits: torch.Tensor  # [B, L, K] noise-free logits (-distance, centred if asked)
    probs: torch.Tensor | None  # [B, L, K] soft: p; gumbel: y; hard: None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class RQVAEOutput(Quantized):
    z: torch.Tensor | None = None  # [B, d] encoder output
    recon: torch.Tensor | None = None  # [B, in_dim]

    @property
    def loss(self) -> torch.Tensor:
        """Sum of :attr:`losses` (reconstruction + VQ terms)."""
        return torch.stack(list(self.losses.values())).sum()


class ResidualQuantizer(nn.Module):
    """L codebooks of K codewords of dimension ``dim``, one :class:`Assignment` for all levels.

    ``tau`` is a plain attribute: set it between steps to anneal (UniGRec) or change it.
    """

    def __init__(
        self,
        levels: int,
        codebook_size: int,
        dim: int,
        assignment: Assignment | str = Assignment.HARD,
        tau: float | None = None,
        beta: float = 0.25,
        centre_logits: bool = False,
    ):
        super().__init__()
        self.assignment = Assignment(assignment)
        self.tau = DEFAULT_TAU[self.assignment] if tau is None else tau
        self.beta = beta
        self.centre_logits = centre_logits
        bound = 1.0 / codebook_size
        self.codebooks = nn.Parameter(
            torch.empty(levels, codebook_size, dim).uniform_(-bound, bound)
        )

    @property
    def levels(self) -> int:
        return self.codebooks.shape[0]

    @property
    def codebook_size(self) -> int:
        return self.codebooks.shape[1]

    @torch.no_grad()
    def init_codebooks(self, z: torch.Tensor, seed: int = 0, iters: int = 20) -> None:
        """k-means each level's codebook on the hard residuals of ``z`` (TIGER Sec. 3.1)."""
        residual = z.detach().float()
        for level in range(self.levels):
            centres, labels = kmeans(residual, self.codebook_size, iters, seed + level)
            self.codebooks[level] = centres.to(self.codebooks)
            residual = residual - centres[labels]

    def forward(
        self,
        z: torch.Tensor,
        noise_scale: torch.Tensor | float | None = None,
        noise_mask: NoiseMask = None,
    ) -> Quantized:
        """Quantise ``z`` ``[B, d]``, in fp32 whatever the autocast (codes must not depend on
        the precision the recommender trains in)."""
        with torch.autocast(z.device.type, enabled=False):
            return self._quantize(z.float(), noise_scale, noise_mask)

    def _quantize(
        self,
        z: torch.Tensor,
        noise_scale: torch.Tensor | float | None,
        noise_mask: NoiseMask,
    ) -> Quantized:
        """Quantise ``z`` ``[B, d]`` (fp32).

        ``gumbel`` only, training mode only: ``noise_scale`` (scalar or ``[L]``, may require
        grad; default 1) scales the Gumbel noise; ``noise_mask`` is a boolean ``[B]`` (items that
        get noise) or a callable mapping the noise-free level-1 codes to one (FrqUD).
        """
        residual, mask = z, noise_mask
        codes, quantized, residuals, logits_all, probs_all = [], [], [], [], []
        codebook_loss = commitment_loss = z.new_zeros(())
        for level in range(self.levels):
            book = self.codebooks[level]
            logits = -squared_distances(residual, book)
            if self.centre_logits:
                low, high = logits.min(), logits.max()
                logits = (logits - (high + low) / 2) / ((high - low) / 2 + 1e-5)
            if callable(mask):
                mask = mask(logits.argmax(1))
            code, q, probs = self._assign(logits, book, level, noise_scale, mask)
            if self.assignment != Assignment.SOFT:
                codebook_loss = codebook_loss + F.mse_loss(q, residual.detach())
                commitment_loss = commitment_loss + F.mse_loss(residual, q.detach())
            codes.append(code)
            quantized.append(q)
            residuals.append(residual)
            logits_all.append(logits)
            probs_all.append(probs)
            residual = residual - q

        q_sum = torch.stack(quantized, 1).sum(1)
        losses = {}
        if self.assignment == Assignment.HARD:
            q_sum = z + (q_sum - z).detach()
        if self.assignment != Assignment.SOFT:
            losses = {"codebook": codebook_loss, "commitment": self.beta * commitment_loss}
        return Quantized(
            codes=torch.stack(codes, 1),
            z_q=q_sum,
            quantized=torch.stack(quantized, 1),
            residuals=torch.stack(residuals, 1),
            logits=torch.stack(logits_all, 1),
            probs=None if self.assignment == Assignment.HARD else torch.stack(probs_all, 1),
            losses=losses,
        )

    def _assign(
        self,
        logits: torch.Tensor,
        book: torch.Tensor,
        level: int,
        noise_scale: torch.Tensor | float | None,
        mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Code ``[B]``, quantised vector ``[B, d]`` and probabilities ``[B, K]`` of one level."""
        if self.assignment == Assignment.HARD:
            code = logits.argmax(1)
            return code, book[code], None
        if self.assignment == Assignment.SOFT:
            probs = torch.softmax(logits / self.tau, 1)
            return probs.argmax(1), probs @ book, probs
        noisy = logits + self._gumbel_noise(logits, level, noise_scale, mask)
        probs = torch.softmax(noisy / self.tau, 1)
        code = noisy.argmax(1)
        indicator = F.one_hot(code, self.codebook_size).to(probs) - probs.detach() + probs
        return code, indicator @ book, probs

    def _gumbel_noise(
        self,
        logits: torch.Tensor,
        level: int,
        noise_scale: torch.Tensor | float | None,
        mask: torch.Tensor | None,
    ) -> torch.Tensor | float:
        if not self.training:
            return 0.0
        if isinstance(noise_scale, torch.Tensor):
            # a (learnable) scale on the device: the caller has decided that noise is on, and
            # reading the value here would wait for the GPU at every level of every step
            scale = noise_scale.to(logits).abs()
            if scale.dim() > 0:
                scale = scale[level]
        else:
            scale = 1.0 if noise_scale is None else abs(float(noise_scale))
            if scale < MIN_NOISE:
                return 0.0
        noise = -torch.empty_like(logits).exponential_().log() * scale
        return noise if mask is None else noise * mask[:, None].to(noise)


def _mlp(dims: Sequence[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@dataclass
class RQVAEConfig:
    """Tokenizer hyperparameters; defaults are TIGER's sizes (Sec. 4.1) and LETTER's optimiser."""

    levels: int = 3
    codebook_size: int = 256
    hidden: tuple[int, ...] = (512, 256, 128)
    latent: int = 32
    beta: float = 0.25
    lr: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 200
    batch_size: int = 1024
    assignment: str = "hard"
    tau: float | None = None  # None: 0.01 for soft (UniGRec tau_max), 2.0 for gumbel (DIGER)
    tau_end: float | None = None  # linear per-epoch annealing tau -> tau_end (UniGRec stage 1)
    centre_logits: bool = False  # gumbel: DIGER's min-max centring of distances
    uniformity_weight: float = 0.0  # UniGRec L_CU weight (1e-4 in its stage 1)
    kmeans_init: bool = True  # k-means on the first batch (TIGER; kmeans_init_items)
    kmeans_iters: int = 20


class RQVAE(nn.Module):
    """MLP encoder ``in_dim -> hidden -> latent``, :class:`ResidualQuantizer`, mirrored decoder."""

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int] = (512, 256, 128),
        latent: int = 32,
        levels: int = 3,
        codebook_size: int = 256,
        assignment: Assignment | str = Assignment.HARD,
        tau: float | None = None,
        beta: float = 0.25,
        centre_logits: bool = False,
    ):
        super().__init__()
        dims = [in_dim, *hidden, latent]
        self.encoder = _mlp(dims)
        self.decoder = _mlp(dims[::-1])
        self.quantizer = ResidualQuantizer(
            levels, codebook_size, latent, assignment, tau, beta, centre_logits
        )

    @classmethod
    def from_config(cls, cfg: RQVAEConfig, in_dim: int) -> RQVAE:
        return cls(
            in_dim,
            cfg.hidden,
            cfg.latent,
            cfg.levels,
            cfg.codebook_size,
            cfg.assignment,
            cfg.tau,
            cfg.beta,
            cfg.centre_logits,
        )

    def forward(
        self,
        x: torch.Tensor,
        noise_scale: torch.Tensor | float | None = None,
        noise_mask: NoiseMask = None,
    ) -> RQVAEOutput:
        """Encode, quantise, decode; ``losses`` holds ``recon`` plus the quantizer's terms. The
        whole tokenizer runs in fp32, also inside a recommender's bf16 autocast."""
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            z = self.encoder(x)
            out = self.quantizer(z, noise_scale, noise_mask)
            recon = self.decoder(out.z_q)
        losses = {"recon": F.mse_loss(recon, x), **out.losses}
        return RQVAEOutput(**{**vars(out), "losses": losses}, z=z, recon=recon)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The latent ``z`` of ``x``, in fp32 whatever the autocast."""
        with torch.autocast(x.device.type, enabled=False):
            return self.encoder(x.float())

    @torch.no_grad()
    def init_codebooks(self, x: torch.Tensor, seed: int = 0, iters: int = 20) -> None:
        """k-means initialisation of every level from the encoded batch ``x``."""
        self.quantizer.init_codebooks(self.encode(x), seed, iters)

    @torch.no_grad()
    def encode_codes(self, x: np.ndarray | torch.Tensor, batch_size: int = 8192) -> np.ndarray:
        """Deterministic (eval-mode, noise-free) codes ``[N, L]`` as int64."""
        was_training = self.training
        self.eval()
        device = self.quantizer.codebooks.device
        # a tensor stays a tensor (it may live on a GPU, where numpy cannot read it)
        x = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
        with torch.no_grad():
            codes = [self(chunk.to(device)).codes.cpu() for chunk in x.float().split(batch_size)]
        self.train(was_training)
        return torch.cat(codes).numpy().astype(np.int64)


ExtraLoss = Callable[[RQVAE, RQVAEOutput, torch.Tensor, int], torch.Tensor]


def kmeans_init_items(cfg: RQVAEConfig) -> int:
    """How many items the codebooks' k-means initialisation sees: the first batch (TIGER), but
    at least 4 per codeword. With a batch of K items or fewer, k-means gives every item its own
    level-1 centre, the residuals are all zero, and the deeper levels start as K copies of one
    codeword and stay collapsed (measured on office, 3 x 256 codes, batch 256: levels 2 and 3
    used 1 code each)."""
    return max(cfg.batch_size, 4 * cfg.codebook_size)


def train_rqvae(
    embeddings: np.ndarray,
    cfg: RQVAEConfig,
    seed: int,
    progress: Progress | None = None,
    extra_loss: ExtraLoss | None = None,
    extra_parameters: Sequence[nn.Parameter] = (),
    device: torch.device | str = "cpu",
) -> RQVAE:
    """Train an RQ-VAE on item embeddings ``[N, in_dim]``; returns it in eval mode.

    AdamW over shuffled mini-batches of the whole catalogue; codebooks k-means initialised on
    the first batch (:func:`kmeans_init_items`). ``extra_loss(model, output, item_index,
    epoch)`` adds a method's terms (LETTER: collaborative and diversity losses; ``item_index``
    are the batch's rows of ``embeddings``); its own parameters go in ``extra_parameters``.
    Deterministic under ``seed`` on CPU; the global RNG state is left untouched.
    """
    if cfg.uniformity_weight and Assignment(cfg.assignment) == Assignment.HARD:
        raise ValueError(
            "uniformity_weight needs code probabilities: use a soft or gumbel assignment"
        )
    x = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32, device=device)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RQVAE.from_config(cfg, x.shape[1]).to(device)
        if cfg.kmeans_init:
            first = torch.randperm(len(x), generator=generator)[: kmeans_init_items(cfg)]
            model.init_codebooks(x[first.to(device)], seed, cfg.kmeans_iters)
        optimizer = torch.optim.AdamW(
            [*model.parameters(), *extra_parameters], lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        tau = model.quantizer.tau
        epochs = range(cfg.epochs)
        if progress is not None:
            epochs = progress(epochs, desc="rq-vae", total=cfg.epochs)
        model.train()
        for epoch in epochs:
            if cfg.tau_end is not None:
                model.quantizer.tau = tau + (cfg.tau_end - tau) * epoch / max(cfg.epochs - 1, 1)
            total = torch.zeros((), device=device)  # summed on device: one read per epoch
            for index in torch.randperm(len(x), generator=generator).split(cfg.batch_size):
                index = index.to(device)
                out = model(x[index])
                loss = out.loss
                if cfg.uniformity_weight:
                    loss = loss + cfg.uniformity_weight * codeword_uniformity_loss(out.probs)
                if extra_loss is not None:
                    loss = loss + extra_loss(model, out, index, epoch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach()
            if not torch.isfinite(total):  # before the tokenizer is cached and shared
                raise TrainingDiverged(
                    f"the RQ-VAE tokenizer diverged at epoch {epoch} (loss {float(total)}); lower "
                    "rq_lr (--set rq_lr=...) or check the item embeddings"
                )
    return model.eval()


def residual_kmeans(
    embeddings: np.ndarray, levels: int, codebook_size: int, seed: int, iters: int = 20
) -> np.ndarray:
    """Codes ``[N, levels]`` from k-means on the raw embeddings, then on their residuals.

    A training-free tokenizer (RQ-KMeans, as in GRID's tokenizer menu).
    """
    residual = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
    codes = []
    for level in range(levels):
        centres, labels = kmeans(residual, codebook_size, iters, seed + level)
        codes.append(labels)
        residual = residual - centres[labels]
    return torch.stack(codes, 1).numpy().astype(np.int64)
