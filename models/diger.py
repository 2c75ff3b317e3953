"""DIGER: Fu et al., "Differentiable Semantic ID for Generative Recommendation",
SIGIR 2026, arXiv 2601.19711.

TIGER's tokenizer and recommender trained jointly, so the recommendation loss reaches the
tokenizer (METHODS.md Sec. 6):

* Initialisation: TIGER's RQ-VAE (reconstruction, hard codes; ``rq_*`` fields, the authors'
  checkpoint is unreleased), pretrained once and cached; the joint stage starts from its weights
  and its deterministic IDs.
* DRIL (differentiable semantic IDs): per level ``l = -||r - E[k]||^2`` (min-max centred over the
  batch into [-1, 1] as the authors' code does, ``centre_logits``), Gumbel noise ``g``,
  ``y = softmax((l + g) / tau)``, ``Ind = onehot(argmax(l + g)) - sg(y) + y`` (tau 2.0). The
  recommender's input embedding of a history item's level-``l`` token is ``Ind @ E_rec_l``,
  where ``E_rec_l`` are that column's rows of the T5's shared (tied) token embedding: the forward
  value is exactly the hard code's token embedding, and the gradient reaches every code embedding,
  the codebooks and the encoder through ``y``. The collision-digit token keeps its plain
  embedding. Decoder targets are the hard IDs of the epoch's table.
* Losses: ``L_gen + L_vq + L_recon`` with ``L_vq`` the codebook + 0.25 x commitment terms and
  ``L_recon = ||z_q - z||^2`` in latent space (no decoder in the joint stage). Two AdamW
  parameter groups: recommender ``lr``, tokenizer ``tokenizer_lr`` (scripts: 1e-3 vs 1e-5).
* Uncertainty decay (``decay``): ``sdud`` learns the noise scale sigma (start ``sigma_init``)
  and replaces ``L_gen`` by ``L_gen / (2 (sigma + lambda)^2) + log(sigma + lambda)`` (lambda 1.7),
  whose optimum ``sigma* = max(0, sqrt(L_gen) - lambda)`` decays with the loss; ``frqud`` keeps an
  EMA of level-1 code usage (momentum 0.99) and gives Gumbel noise (scale ``sigma_init``) only to
  items whose noise-free level-1 code is over-used (usage > 1.5 / K), the rest use the noise-free
  ``softmax(l / tau)`` path; ``none`` noises every item at scale ``sigma_init`` (``sigma_init=0``
  is the "no Gumbel noise" ablation).
* ``assignment="ste"``: the naive straight-through ablation (the paper reports collapse, Beauty
  R@10 .0134): hard argmin codes, no noise, identity backward ``Ind = onehot(c) + l - sg(l)``.
  ``decay`` is ignored.
* Semantic IDs are re-derived after every epoch from the tokenizer in eval mode (no noise);
  the drift against the previous epoch and against the start is logged with the epoch and kept in
  ``diagnostics["sid_drift"]``, with sigma, the noised share of items and the share whose
  input code differed from the ID the recommender decodes (``input_id_mismatch``: with the
  code's min-max centred logits, Gumbel noise of scale 1 changes a noised item's level-1 code
  almost always, measured 97% on office, 18% on raw distances); ``diagnostics["sid"]``
  describes the final (best-epoch) IDs, ``diagnostics["sid_initial"]`` the pretrained ones.
  Measured consequence (office, ``quick``, seeds 0-2): as specified, Recall@10 0.0066, near
  popularity; with ``sigma_init=0`` 0.0533, TIGER's level (``results/diger-noise/README.md``).
  The defaults stay as specified; the variant is a flag.

The vocabulary never changes: every code column has ``codebook_size`` tokens and the
collision-digit column ``digit_size`` (DIGER: a conflict index below 256). Items beyond
``digit_size`` on one prefix share the last digit (aliased; counted by the trie and shown by
``max_items_per_prefix``).

``paper``: the scripts' values (3 levels x 256 x 256-d, encoder 2048-1024-512, T5 6+6, d_model
128, d_ff 512, 4 heads of 64, AdamW wd 0.05, lr 1e-3 / 1e-5, sigma lr 1e-3, 500 warmup steps,
batch 256, 120 epochs, patience 15, beam 20). DIGER's history cap of 50 is a protocol setting.

Deviations:

* The rec gradient reaches the tokenizer as in the paper; the authors' released code feeds the
  recommender integer IDs from a per-epoch table, so there it does not (METHODS.md Sec. 9a).
* The recommender is fed the current tokenizer's (noised) codes during an epoch while targets and
  decoding use the table derived at the end of the previous epoch.
* A single sigma (the code keeps one per level and uses their mean); SDUD's sigma trains under
  the shared warmup and learning-rate schedule (``lr_schedule``; the authors' is cosine); the
  FrqUD usage EMA counts the batch's distinct items (history and target) and is updated after
  the batch's forward; one gradient-norm clip of 1 per parameter group.
* The scripts' freezing of encoder layers is followed (``freeze_encoder="scripts"``: SDUD the
  first 3 of 4 linear layers, FrqUD all; codebooks always train). Measured on office (quick, one
  epoch): an unfrozen encoder at tokenizer lr 1e-4 changed every item's ID and collapsed level 1
  from 5.03 to 3.65 bits (49% collisions); frozen, 14.6% of IDs moved and usage held.
* Not implemented: the last-level Sinkhorn assignment and unconstrained decoding (we constrain
  beams to real items).
* VQ losses summed over levels (DIGER averages); TIGER-style k-means initialisation of the
  pretrained RQ-VAE; all-MiniLM-L6-v2 text embeddings instead of LLaMA-7B.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from models.base import ConfigError, FitContext, SequenceData
from models.components.kmeans import squared_distances
from models.components.quantizer import (
    MIN_NOISE,
    RQVAE,
    Assignment,
    FrequencyTracker,
    Quantized,
    sdud_loss,
    train_rqvae,
)
from models.components.semantic_ids import (
    SemanticIDTable,
    sid_diagnostics,
    sid_drift,
)
from models.generative import (
    GenerativeConfig,
    GenerativeRecommender,
    JointTokenizerMixin,
    standardize,
)
from models.tiger import CPU_QUICK, SMOKE

DECAYS = ("sdud", "frqud", "none")
FREEZE = ("scripts", "none", "all", "all-but-last")


@dataclass
class DigerConfig(GenerativeConfig):
    assignment: str = "gumbel"  # "gumbel" (DRIL) or "ste" (naive straight-through ablation)
    decay: str = "frqud"  # "sdud", "frqud" or "none" (gumbel only)
    tau: float = 2.0
    centre_logits: bool = True
    sigma_init: float = 1.0  # Gumbel noise scale (SDUD: its initial value)
    sigma_lambda: float = 1.7
    sigma_lr: float = 1e-3
    usage_momentum: float = 0.99
    hot_ratio: float = 1.5
    tokenizer_lr: float = 1e-5
    # "scripts": as the authors' run scripts (frqud: whole encoder frozen, sdud: all linear
    # layers but the last); or "none", "all", "all-but-last". Codebooks always train.
    freeze_encoder: str = "scripts"
    digit_size: int = 256

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        **GenerativeConfig.CHOICES,
        "assignment": ("gumbel", "ste"),
        "decay": DECAYS,
        "freeze_encoder": FREEZE,
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tokenizer != "rqvae":
            raise ConfigError("diger trains its RQ-VAE jointly: tokenizer must be 'rqvae'")

    @property
    def frozen_encoder_layers(self) -> str:
        """``freeze_encoder`` with ``scripts`` resolved for this decay strategy."""
        if self.freeze_encoder != "scripts":
            return self.freeze_encoder
        if self.assignment != "gumbel":
            return "none"
        return {"frqud": "all", "sdud": "all-but-last"}.get(self.decay, "none")


class DIGER(JointTokenizerMixin, GenerativeRecommender):
    """DIGER: Gumbel-perturbed differentiable semantic IDs trained with the recommender."""

    name = "diger"
    BUILDS_ON = "tiger"
    Config = DigerConfig
    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {**SMOKE, "tokenizer_lr": 1e-3, "sigma_lr": 1e-2},
        # A few epochs instead of 120: a larger sigma lr lets SDUD's sigma move; the tokenizer
        # keeps the scripts' lr 1e-5 (1e-4 with an unfrozen encoder collapsed the IDs).
        "quick": {**CPU_QUICK, "sigma_lr": 1e-2},
        "paper": {
            "levels": 3,
            "codebook_size": 256,
            "rq_hidden": (2048, 1024, 512),
            "rq_latent": 256,
            "rq_epochs": 3000,
            "num_layers": 6,
            "d_model": 128,
            "d_ff": 512,
            "num_heads": 4,
            "d_kv": 64,
            "dropout": 0.1,
            "lr": 1e-3,
            "tokenizer_lr": 1e-5,
            "sigma_lr": 1e-3,
            "weight_decay": 0.05,
            "warmup_steps": 500,
            "batch_size": 256,
            "epochs": 120,
            "patience": 15,
            "beam_size": 20,
        },
    }

    @property
    def learns_sigma(self) -> bool:
        return self.config.assignment == "gumbel" and self.config.decay == "sdud"

    # ------------------------------------------------------------------ tokenizer and IDs
    def build_semantic_ids(self, data: SequenceData, ctx: FitContext) -> SemanticIDTable:
        """Load (or pretrain and cache) TIGER's RQ-VAE; return its deterministic IDs."""
        c = self.config
        embeddings = ctx.item_embeddings(c.encoder)[1:]
        if c.rq_standardize:
            embeddings = standardize(embeddings)
        pretrain = self.rqvae_config(embeddings.shape[1])

        def create() -> dict[str, torch.Tensor]:
            seed = self.tokenizer_seed(ctx)
            rqvae = train_rqvae(
                embeddings, pretrain, seed, progress=ctx.progress, device=ctx.device
            )
            return rqvae.cpu().state_dict()

        # the pretrained RQ-VAE is TIGER's (same inputs, config and seed): one cache entry for
        # both, so a DIGER run after a TIGER run does not train it again
        key = {**self.tokenizer_key(data, ctx), "method": "tiger"}
        state = ctx.cache.get_or_create("rqvae-state", key, create)
        assignment = Assignment.HARD if c.assignment == "ste" else Assignment.GUMBEL
        joint = replace(pretrain, assignment=assignment, tau=c.tau, centre_logits=c.centre_logits)
        self.tokenizer = RQVAE.from_config(joint, embeddings.shape[1])
        self.tokenizer.load_state_dict(state)
        self.inputs = torch.as_tensor(embeddings, dtype=torch.float32)
        self.start_codes = self.previous_codes = self.tokenizer.encode_codes(self.inputs)
        self.diagnostics["sid_initial"] = sid_diagnostics(self.start_codes, c.codebook_size)
        self.diagnostics["sid_drift"] = []
        return self.id_table(self.start_codes)

    def prepare(self, data: SequenceData, ctx: FitContext) -> None:
        """Noise scale and usage tracker; the tokenizer follows the recommender's device."""
        c = self.config
        device = self.tokenizer_to_net_device()
        sigma = torch.tensor(c.sigma_init, device=device)
        self.sigma = nn.Parameter(sigma, requires_grad=self.learns_sigma)
        self.tracker = FrequencyTracker(c.levels, c.codebook_size, c.usage_momentum).to(device)
        self.noised, self.mismatched, self.seen = 0.0, 0.0, 0

    def noise_on(self) -> bool:
        """Whether the noise scale is still above ``MIN_NOISE``. Only SDUD learns sigma, so
        only SDUD reads it from the device each step; the other decays keep it fixed."""
        if self.learns_sigma:
            return self.sigma.abs().item() >= MIN_NOISE
        return abs(self.config.sigma_init) >= MIN_NOISE

    def quantize(self, items: torch.Tensor) -> tuple[Quantized, torch.Tensor, torch.Tensor]:
        """Train-time tokenizer pass over item ids ``[U]`` (1..n): the quantizer's output, the
        latent ``z`` ``[U, d]`` and which items got Gumbel noise ``[U]`` (bool)."""
        c = self.config
        z = self.tokenizer.encode(self.inputs[items - 1])
        noisy = self.tokenizer.training and c.assignment == "gumbel" and self.noise_on()
        frqud = noisy and c.decay == "frqud"
        if frqud:
            with torch.no_grad():
                level1 = squared_distances(z, self.tokenizer.quantizer.codebooks[0]).argmin(1)
            mask = self.tracker.hot_mask(level1, c.hot_ratio)
        else:
            mask = torch.full((len(items),), noisy, device=z.device)
        scale = self.sigma if noisy else 0.0  # 0.0: no noise drawn, and no device read
        out = self.tokenizer.quantizer(z, noise_scale=scale, noise_mask=mask)
        if frqud:
            self.tracker.update(out.logits.argmax(-1))
        # on the device, read once per epoch: the share of items noised, and of items whose
        # code fed to the recommender differs from the ID it decodes (the epoch's table)
        self.noised = self.noised + mask.sum()
        self.mismatched = self.mismatched + (out.codes != self.table_codes[items]).any(1).sum()
        self.seen += len(items)
        return out, z, mask

    # ------------------------------------------------------------------ joint training
    def generation_loss(
        self, histories: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, Quantized, torch.Tensor]:
        """CE of the next item's hard ID with the history fed through the tokenizer (DRIL).

        Returns ``L_gen``, the tokenizer output and latents of the batch's distinct items
        (targets included, so the VQ and reconstruction terms cover them too).
        """
        c = self.config
        ids = torch.cat([histories.new_zeros(1), targets, histories.flatten()])
        items, inverse = torch.unique(ids, return_inverse=True)  # items[0] == 0 (padding)
        local = inverse[1 + len(targets) :].view_as(histories)
        out, z, _ = self.quantize(items[1:])
        onehot = F.one_hot(out.codes, c.codebook_size).to(out.logits)
        soft = out.logits if c.assignment == "ste" else out.probs
        indicator = onehot + soft - soft.detach()
        books = torch.stack([self.net.column_embedding(level) for level in range(c.levels)])
        codes = torch.einsum("ulk,lkd->uld", indicator, books)
        digit = self.net.token_embedding(self.item_tokens[items[1:], c.levels])
        rows = torch.cat([codes, digit[:, None]], 1)
        table = torch.cat([rows.new_zeros(1, *rows.shape[1:]), rows])
        embeds, mask = self.net.encode_embeds(local, table)
        loss = self.net.loss(
            self.item_tokens[targets], mask, inputs_embeds=embeds, temperature=c.temperature
        )
        return loss, out, z

    def training_loss(self, histories: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        gen, out, z = self.generation_loss(histories, targets)
        if self.learns_sigma:
            gen = sdud_loss(gen, self.sigma, self.config.sigma_lambda)
        recon = F.mse_loss(out.quantized.sum(1), z)
        return gen + torch.stack(list(out.losses.values())).sum() + recon

    def end_epoch(self, epoch: int, data: SequenceData, ctx: FitContext) -> dict[str, Any]:
        """Re-derive every item's ID (no noise), rebuild the table and trie, record the drift."""
        codes = self.tokenizer.encode_codes(self.inputs)
        step, total = sid_drift(self.previous_codes, codes), sid_drift(self.start_codes, codes)
        self.previous_codes = codes
        self.set_semantic_ids(self.id_table(codes))
        extra = {
            "sid_drift": step["changed"],
            "sid_drift_cumulative": total["changed"],
            "sigma": abs(self.sigma.item()),
        }
        # one device read for both counts (each read waits for the GPU)
        counts = torch.stack(
            [torch.as_tensor(c, dtype=torch.float32) for c in (self.noised, self.mismatched)]
        )
        noised, mismatched = counts.tolist()
        extra["noised_fraction"] = noised / max(self.seen, 1)
        extra["input_id_mismatch"] = mismatched / max(self.seen, 1)
        self.noised, self.mismatched, self.seen = 0.0, 0.0, 0
        levels = {"levels": step["levels"], "cumulative_levels": total["levels"]}
        self.diagnostics["sid_drift"].append({"epoch": epoch, **extra, **levels})
        return extra

    def fit(self, data: SequenceData, ctx: FitContext) -> None:
        super().fit(data, ctx)
        codes = self.sids.codes[1:, : self.config.levels]
        self.diagnostics["sid"] = {
            **sid_diagnostics(codes, self.config.codebook_size),
            "aliased": self.trie.n_aliased,
            "invalid_rate": 0.0,
        }

    def tokenizer_parameters(self) -> list[nn.Parameter]:
        """Codebooks and the encoder layers ``freeze_encoder`` leaves trainable (the decoder
        has no part in the joint stage)."""
        layers = [m for m in self.tokenizer.encoder if isinstance(m, nn.Linear)]
        frozen = self.config.frozen_encoder_layers
        keep = {"none": layers, "all": [], "all-but-last": layers[-1:]}[frozen]
        for layer in layers:
            layer.requires_grad_(layer in keep)
        return [
            *(p for layer in keep for p in layer.parameters()),
            *self.tokenizer.quantizer.parameters(),
        ]

    def param_groups(self) -> list[dict[str, Any]]:
        groups = [
            {"params": list(self.net.parameters())},
            {"params": self.tokenizer_parameters(), "lr": self.config.tokenizer_lr},
        ]
        if self.learns_sigma:
            groups.append({"params": [self.sigma], "lr": self.config.sigma_lr, "weight_decay": 0})
        return groups

    def parameters_to_train(self) -> list[nn.Parameter]:
        return [p for group in self.param_groups() for p in group["params"]]

    def train_mode(self, on: bool) -> None:
        self.net.train(on)
        self.tokenizer.train(on)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "net": super().state_dict(),
            "tokenizer": {k: v.detach().clone() for k, v in self.tokenizer.state_dict().items()},
            "codes": self.sids.codes.clone(),
        }

    def set_semantic_ids(self, table: SemanticIDTable) -> None:
        super().set_semantic_ids(table)
        # the codes the recommender decodes, on its device once per table (not once per step)
        self.table_codes = table.codes[:, : self.config.levels].to(self.device)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state["net"])
        self.tokenizer.load_state_dict(state["tokenizer"])
        self.set_semantic_ids(SemanticIDTable(state["codes"].clone(), self.sids.level_sizes))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters_to_train())

    def resume_extras(self) -> dict[str, Any]:
        return {
            **super().resume_extras(),
            "sigma": self.sigma.detach().clone(),
            "tracker": {k: v.clone() for k, v in self.tracker.state_dict().items()},
            "previous_codes": torch.as_tensor(self.previous_codes),
        }

    def load_resume_extras(self, extras: dict[str, Any]) -> None:
        super().load_resume_extras(extras)
        with torch.no_grad():
            self.sigma.copy_(extras["sigma"])
        self.tracker.load_state_dict(extras["tracker"])
        self.previous_codes = extras["previous_codes"].numpy()
