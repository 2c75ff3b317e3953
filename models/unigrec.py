"""UniGRec: Li et al., "UniGRec: Unified Generative Recommendation with Soft Identifiers for
End-to-End Optimization", arXiv 2601.17438 (2026); code Jialei-03/UniGRec (read at bc499ce).

What follows the paper (METHODS.md Sec. 7), and where:

* Soft identifiers: the RQ-VAE assigns per level ``p_l = softmax(-||r_{l-1} - E_l[k]||^2 / tau)``,
  quantises softly ``x_l = p_l E_l``, ``r_l = r_{l-1} - x_l``, and decodes ``sum_l x_l``
  (``Assignment.SOFT``). A history item's level-``l`` encoder token is ``p_l @ O_l``, with
  ``O_l`` that level's rows of the T5's shared (tied) token embedding, so the recommendation
  loss reaches the tokenizer through the history. Hard IDs are ``argmax p_l`` plus a collision
  digit; the decoder reads and emits hard IDs, decoded by the shared trie-constrained beam
  search.
* Annealed Inference Alignment: stage 1 anneals tau linearly from ``tau_max`` to ``tau_min``
  (0.01 -> 0.001); joint training, fine-tuning and inference hold ``tau_min``, so the soft
  tokens are nearly the hard codes' embeddings.
* Codeword Uniformity Regularisation ``L_CU = sum_l sum_k pbar_l(k) log pbar_l(k)`` (batch-mean
  assignment), weight 1e-4, in stage 1 (``codeword_uniformity_loss``).
* Dual Collaborative Distillation from the harness's SASRec teacher (``ctx.teacher_embeddings``),
  from epoch ``distill_start_epoch`` of joint training, on the batch's distinct targets:
  tokenizer side ``L^T_CD``: symmetric KL between the per-level code distributions
  ``softmax(-d / distill_tau)`` of the masked-mean-pooled encoder state and of the teacher's
  target embedding, each mapped to the latent by an MLP adapter (128-64-32 and 256-128-64-32 at
  paper sizes), weight 0.01; recommender side ``L^R_CD``: symmetric in-batch InfoNCE (cosine,
  temperature 0.07) between the first decoder state, mapped to the teacher's width, and the
  teacher embedding, weight 0.1.
* Stages: (1) the RQ-VAE on reconstruction + ``L_CU`` (cached, ``rqvae-state``); (2) joint
  training, ``L = 0.5 L_recon + L_rec + 0.01 L^T_CD + 0.1 L^R_CD``, two AdamW groups (tokenizer
  ``tokenizer_lr`` far below the recommender's ``lr``), IDs re-derived after every epoch on fixed
  column sizes (the vocabulary never changes), early stopping on validation NDCG@10; (3) the
  recommender fine-tuned alone (``finetune_*``) with the tokenizer frozen, soft inputs kept.
  The result is the best stage-3 checkpoint, as in the authors' scripts. ``state_dict`` holds
  the recommender, tokenizer, adapters and ID table, so early stopping restores consistent IDs.
* Diagnostics: ``sid`` (final IDs: per-level usage, entropy, collisions, aliased items),
  ``sid_initial`` (stage-1 IDs), ``sid_drift`` per joint epoch (vs previous and vs start, per
  level) with tau and the mean soft-assignment entropy (``soft_entropy_bits``).

``paper``: the authors' scripts (3 x 256 x 32-d, encoder 512-256-128-64, 3,000 stage-1 epochs,
T5 6+6, d_model 128, d_ff 512, 4 heads of 64, batch 512, lr 5e-3 / 2e-7, wd 0.05, 200 epochs,
patience 15, distillation from epoch 10, fine-tuning lr 4e-4 for <= 100 epochs, patience 10,
beam 30, 101 collision tokens).

Deviations:

* Authors' defects fixed (METHODS.md Sec. 9): code distributions use negative distances (their
  distillation takes a softmax over raw ``+d``, favouring far codewords); the pooled encoder
  state uses a proper padding mask (theirs applies bitwise NOT to an int mask); the three
  adapters are trained, with the recommender's learning rate (theirs are in no optimiser).
* Encoder input per history item: the L soft tokens, then the item's collision-digit token
  (its plain embedding) and, after the history, one eos (the shared layout); the authors feed
  the 3 soft tokens only. Pad items are not reconstructed; ``L_recon`` is the mean over the
  batch's distinct items (the authors average history and target reconstruction, pads included).
* Tokenizer-side code distributions follow the quantizer's soft residuals at ``tau_min`` (the
  authors' use hard argmin residuals; nearly equal at tau 0.001), temperature ``distill_tau``
  (authors: none, i.e. 1). ``L_CU`` is summed over levels (the paper's formula; the code
  averages).
* Stage 1 anneals per epoch (paper: per step; the code per epoch) without the code's warmup,
  decay and gradient clipping, and keeps the last epoch's weights (code: lowest training loss).
* Both training stages use the shared AdamW with linear warmup, then the harness's
  ``lr_schedule`` (default constant, as the authors' rate after its warmup; their warmup is 10%
  of the steps, ours ``warmup_steps``); the collision digit is capped at ``digit_size - 1``
  (aliasing counted); beams are constrained to real items by the shared trie (authors: per-step
  token ranges only, invalid tuples count as misses); adapters use PyTorch's default
  initialisation (authors: N(0, 0.02)).
* Text encoder all-MiniLM-L6-v2 (authors: sentence-t5-base); its embeddings stay L2-normalised
  as the authors' (``rq_standardize=False``, unlike TIGER's default). The temperatures are
  tied to that distance scale: on office (3 x 64 codes, 150 stage-1 epochs) standardised inputs
  made the annealed soft RQ-VAE collapse to 2.8 / 3.3 / 2.9 bits per level and 92% collisions,
  L2-normalised ones keep 5.85 / 5.90 / 5.87 bits of 6. The teacher is the harness's SASRec
  (``quick`` profile), not a 256-d one.
* ``quick`` shrinks everything as TIGER's does, starts distillation at epoch 1, fine-tunes for 3
  epochs, and uses tokenizer lr 1e-5 (authors: 2e-7 over up to 200 epochs) so IDs can move
  within a few epochs: on office one joint epoch moved 18.7% of IDs at 1e-5 (the paper reports
  23 / 15 / 11% per level over a run) and 76% at 1e-4.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.base import ConfigError, FitContext, SequenceData
from models.components.quantizer import RQVAE, RQVAEConfig, RQVAEOutput
from models.components.semantic_ids import (
    SemanticIDTable,
    sid_diagnostics,
    sid_drift,
)
from models.components.seq2seq import DecoderOutput, token_cross_entropy
from models.generative import GenerativeConfig, GenerativeRecommender, JointTokenizerMixin
from models.tiger import CPU_QUICK, SMOKE


@dataclass
class UniGRecConfig(GenerativeConfig):
    rq_standardize: bool = False  # the authors' L2-normalised inputs; tau is tuned to them
    tau_max: float = 0.01  # stage-1 start temperature (paper grid {0.01, 0.05})
    tau_min: float = 0.001  # stage-1 end; held in joint training, fine-tuning and inference
    uniformity_weight: float = 1e-4
    recon_weight: float = 0.5
    tokenizer_distill_weight: float = 0.01
    rec_distill_weight: float = 0.1
    distill_start_epoch: int = 10
    distill_tau: float = 1.0  # temperature of the tokenizer-side distillation distributions
    contrastive_temperature: float = 0.07
    tokenizer_lr: float = 2e-7
    finetune_epochs: int = 100
    finetune_lr: float = 4e-4
    finetune_patience: int = 10
    digit_size: int = 101  # collision-digit tokens (authors: indices 0..100)

    # finetune_epochs=0 skips stage 3; distillation may start at the first joint epoch
    ZERO_ALLOWED: ClassVar[frozenset[str]] = GenerativeConfig.ZERO_ALLOWED | {
        "finetune_epochs",
        "distill_start_epoch",
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tokenizer != "rqvae":
            raise ConfigError("unigrec trains its RQ-VAE jointly: tokenizer must be 'rqvae'")
        if not 0 < self.tau_min <= self.tau_max:
            raise ConfigError(f"need 0 < tau_min <= tau_max, got {self.tau_min}, {self.tau_max}")


def adapter(d_in: int, d_out: int, max_layers: int) -> nn.Sequential:
    """MLP ``d_in -> d_out`` whose hidden widths halve (or double) from ``d_in`` while they stay
    at least a factor 2 from ``d_out``; at most ``max_layers`` linear layers, ReLU between them.
    UniGRec's adapters: 128-64-32, 256-128-64-32, 128-256."""
    dims = [d_in]
    factor = 0.5 if d_in > d_out else 2.0
    while len(dims) < max_layers:
        width = int(dims[-1] * factor)
        if not 1 <= abs(np.log2(width / d_out)) < abs(np.log2(dims[-1] / d_out)):
            break
        dims.append(width)
    dims.append(d_out)
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def symmetric_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """``KL(a || b) + KL(b || a)`` of ``softmax`` over the last axis, mean over the others."""
    log_a, log_b = logits_a.log_softmax(-1), logits_b.log_softmax(-1)
    return ((log_a.exp() - log_b.exp()) * (log_a - log_b)).sum(-1).mean()


def symmetric_info_nce(query: torch.Tensor, key: torch.Tensor, temperature: float) -> torch.Tensor:
    """In-batch InfoNCE on cosine similarity / ``temperature``, both directions summed (row ``i``
    of ``query`` and ``key`` are a positive pair)."""
    sim = F.normalize(query, dim=-1) @ F.normalize(key, dim=-1).T / temperature
    labels = torch.arange(len(sim), device=sim.device)
    return F.cross_entropy(sim, labels) + F.cross_entropy(sim.T, labels)


class UniGRec(JointTokenizerMixin, GenerativeRecommender):
    """UniGRec (2026): soft identifiers, annealed temperature, codeword uniformity, distillation."""

    name = "unigrec"
    BUILDS_ON = "tiger"
    Config = UniGRecConfig
    needs_teacher: ClassVar[bool] = True
    tokenizer: RQVAE  # stage-1 RQ-VAE, trained on in stage 2 (SODA reads it too)
    inputs: torch.Tensor  # its inputs, row i = item i + 1
    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            **SMOKE,
            "epochs": 2,
            "distill_start_epoch": 1,
            "finetune_epochs": 1,
            "tokenizer_lr": 1e-4,
        },
        "quick": {
            **CPU_QUICK,
            "distill_start_epoch": 2,
            "finetune_epochs": 30,
            "finetune_patience": 3,
            "tokenizer_lr": 1e-5,
        },
        "paper": {
            "levels": 3,
            "codebook_size": 256,
            "rq_hidden": (512, 256, 128, 64),
            "rq_latent": 32,
            "rq_epochs": 3000,
            "rq_batch_size": 1024,
            "rq_lr": 1e-3,
            "num_layers": 6,
            "d_model": 128,
            "d_ff": 512,
            "num_heads": 4,
            "d_kv": 64,
            "dropout": 0.1,
            "batch_size": 512,
            "epochs": 200,
            "lr": 5e-3,
            "tokenizer_lr": 2e-7,
            "weight_decay": 0.05,
            "warmup_steps": 5000,  # 10% of 200 epochs x ~257 steps on Beauty
            "patience": 15,
            "finetune_epochs": 100,
            "finetune_lr": 4e-4,
            "finetune_patience": 10,
            "beam_size": 30,
        },
    }

    # ------------------------------------------------------------------ stage 1 and the IDs
    def rqvae_config(self, input_dim: int) -> RQVAEConfig:
        c = self.config
        return replace(
            super().rqvae_config(input_dim),
            assignment="soft",
            tau=c.tau_max,
            tau_end=c.tau_min,
            uniformity_weight=c.uniformity_weight,
        )

    def tokenizer_key(self, data: SequenceData, ctx: FitContext) -> dict[str, Any]:
        c = self.config
        return {
            **super().tokenizer_key(data, ctx),
            "tau": [c.tau_max, c.tau_min],
            "uniformity_weight": c.uniformity_weight,
        }

    def build_semantic_ids(self, data: SequenceData, ctx: FitContext) -> SemanticIDTable:
        """Stage 1 (cached): the soft RQ-VAE with tau annealed to ``tau_min``; its hard IDs."""
        self.tokenizer, self.inputs = self.pretrained_rqvae(data, ctx)
        self.tokenizer.quantizer.tau = self.config.tau_min
        codes, _ = self.current_codes()
        self.start_codes = self.previous_codes = codes
        self.diagnostics["sid_initial"] = sid_diagnostics(codes, self.config.codebook_size)
        self.diagnostics["sid_drift"] = []
        return self.id_table(codes)

    @torch.no_grad()
    def current_codes(self) -> tuple[np.ndarray, list[float]]:
        """Every item's hard codes ``[n_items, L]`` (argmax of ``p_l`` at the current tau) and
        the mean entropy of ``p_l`` per level in bits (how soft the identifiers still are)."""
        codes, entropy = [], torch.zeros(self.config.levels, device=self.inputs.device)
        for chunk in self.inputs.split(8192):
            out = self.tokenizer.quantizer(self.tokenizer.encode(chunk))
            codes.append(out.codes.cpu())
            entropy -= (out.probs * out.probs.clamp_min(1e-12).log2()).sum(-1).sum(0)
        return torch.cat(codes).numpy(), (entropy / len(self.inputs)).tolist()

    def prepare(self, data: SequenceData, ctx: FitContext) -> None:
        """Teacher table and the three distillation adapters, on the recommender's device."""
        c = self.config
        device = self.tokenizer_to_net_device()
        self.teacher = torch.as_tensor(ctx.teacher_embeddings(), dtype=torch.float32).to(device)
        width = self.teacher.shape[1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed)
            self.adapters = nn.ModuleDict(
                {
                    "encoder": adapter(c.d_model, c.rq_latent, 3),
                    "teacher": adapter(width, c.rq_latent, 4),
                    "decoder": adapter(c.d_model, width, 4),
                }
            ).to(device)
        self.stage, self.epoch = "joint", 0

    # ------------------------------------------------------------------ soft inputs
    def soft_inputs(
        self, histories: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, RQVAEOutput]:
        """Encoder ``inputs_embeds, attention_mask`` of right-padded histories ``[B, H]`` and the
        tokenizer's output over the distinct items of the histories (and targets).

        An item's tokens: ``p_l @ O_l`` for each level, then its collision digit's embedding.
        """
        c = self.config
        histories = histories.to(self.inputs.device)
        ids = [histories.new_zeros(1), histories.flatten()]
        if targets is not None:
            ids.append(targets.to(histories.device))
        items, inverse = torch.unique(torch.cat(ids), return_inverse=True)  # items[0] == 0
        local = inverse[1 : 1 + histories.numel()].view_as(histories)
        items = items[1:]
        out = self.tokenizer(self.inputs[items - 1])
        books = torch.stack([self.net.column_embedding(level) for level in range(c.levels)])
        codes = torch.einsum("ulk,lkd->uld", out.probs, books)
        digit = self.net.token_embedding(self.item_tokens[items, c.levels])
        rows = torch.cat([codes, digit[:, None]], 1)
        table = torch.cat([rows.new_zeros(1, *rows.shape[1:]), rows])
        embeds, mask = self.net.encode_embeds(local, table)
        return embeds, mask, out

    hard_id_inputs = False  # decodes from soft code embeddings (no hard-ID checkpoint)

    def encoder_inputs(
        self, histories: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        embeds, mask, _ = self.soft_inputs(histories)
        return None, embeds, mask

    # ------------------------------------------------------------------ stages 2 and 3
    def training_loss(self, histories: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Stage 2: ``recon_weight L_recon + L_rec (+ distillation)``; stage 3: ``L_rec``."""
        c = self.config
        embeds, mask, out = self.soft_inputs(histories, targets)
        tokens = self.item_tokens[targets]
        decoded = self.net(tokens, mask, inputs_embeds=embeds, return_hidden=True)
        loss = token_cross_entropy(decoded.logits, tokens, c.temperature)
        if self.stage != "joint":
            return loss
        loss = loss + c.recon_weight * out.losses["recon"]
        if self.epoch >= c.distill_start_epoch:
            tokenizer_side, rec_side = self.distillation_losses(targets, decoded, mask)
            loss = loss + c.tokenizer_distill_weight * tokenizer_side
            loss = loss + c.rec_distill_weight * rec_side
        return loss

    def distillation_losses(
        self, targets: torch.Tensor, decoded: DecoderOutput, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L^T_CD, L^R_CD)`` over the batch's distinct targets (first row of each).

        ``decoded`` is the teacher-forced pass with ``return_hidden=True``; ``mask`` its
        encoder attention mask.
        """
        c = self.config
        targets = targets.to(mask.device)
        distinct, inverse = torch.unique(targets, return_inverse=True)
        rows = torch.arange(len(targets), device=mask.device)
        # len(distinct): a shape the host already knows, not a read of the device's max
        first = rows.new_full((len(distinct),), len(targets))
        first = first.scatter_reduce(0, inverse, rows, reduce="amin")
        teacher = self.teacher[targets[first]]

        weights = mask[first, :, None].to(decoded.encoded)
        pooled = (decoded.encoded[first] * weights).sum(1) / weights.sum(1)
        quantizer = self.tokenizer.quantizer
        user_codes = quantizer(self.adapters["encoder"](pooled)).logits
        teacher_codes = quantizer(self.adapters["teacher"](teacher)).logits
        tokenizer_side = symmetric_kl(user_codes / c.distill_tau, teacher_codes / c.distill_tau)

        query = self.adapters["decoder"](decoded.hidden[first, 0])
        rec_side = symmetric_info_nce(query, teacher, c.contrastive_temperature)
        return tokenizer_side, rec_side

    def end_epoch(self, epoch: int, data: SequenceData, ctx: FitContext) -> dict[str, Any]:
        """Joint stage: re-derive every item's ID, rebuild the table and trie, record drift."""
        self.epoch = epoch + 1
        if self.stage != "joint":
            return {}
        codes, entropy = self.current_codes()
        step, total = sid_drift(self.previous_codes, codes), sid_drift(self.start_codes, codes)
        self.previous_codes = codes
        self.set_semantic_ids(self.id_table(codes))
        extra = {
            "sid_drift": step["changed"],
            "sid_drift_cumulative": total["changed"],
            "tau": self.tokenizer.quantizer.tau,
            "distilling": float(epoch >= self.config.distill_start_epoch),
        }
        self.diagnostics["sid_drift"].append(
            {
                "epoch": epoch,
                **extra,
                "levels": step["levels"],
                "cumulative_levels": total["levels"],
                "soft_entropy_bits": entropy,
            }
        )
        return extra

    def fit(self, data: SequenceData, ctx: FitContext) -> None:
        """Stage 2 (the shared loop, joint), then stage 3 with the tokenizer frozen. A budget
        is shared by all stages; one that ends before stage 3 is recorded in
        ``diagnostics["skipped_stages"]`` (the leaderboard keeps such runs out of its tables)."""
        c = self.config
        super().fit(data, ctx)
        self.diagnostics["best_epoch_joint"] = self.diagnostics["best_epoch"]
        if c.finetune_epochs:
            if ctx.out_of_budget():
                self.diagnostics["skipped_stages"] = ["finetune"]
            else:
                self.stage = "finetune"
                self.tokenizer.requires_grad_(False)
                stopper = self.train_epochs(
                    data,
                    ctx,
                    c.finetune_epochs,
                    c.finetune_patience,
                    first_epoch=self.epoch,
                    stage="finetune",
                )
                self.diagnostics["best_epoch"] = stopper.best_epoch
        codes = self.sids.codes[1:, : c.levels]
        _, entropy = self.current_codes()
        self.diagnostics["sid"] = {
            **sid_diagnostics(codes, c.codebook_size),
            "aliased": self.trie.n_aliased,
            "invalid_rate": 0.0,
            "tau": self.tokenizer.quantizer.tau,
            "soft_entropy_bits": entropy,
        }

    def resume_extras(self) -> dict[str, Any]:
        return {
            **super().resume_extras(),
            "stage": self.stage,
            "epoch": self.epoch,
            "previous_codes": torch.as_tensor(self.previous_codes),
        }

    def load_resume_extras(self, extras: dict[str, Any]) -> None:
        super().load_resume_extras(extras)
        self.stage, self.epoch = extras["stage"], extras["epoch"]
        self.previous_codes = extras["previous_codes"].numpy()
        self.tokenizer.requires_grad_(self.stage == "joint")

    def param_groups(self) -> list[dict[str, Any]]:
        if self.stage != "joint":
            return [{"params": list(self.net.parameters()), "lr": self.config.finetune_lr}]
        return [
            {"params": [*self.net.parameters(), *self.adapters.parameters()]},
            {"params": list(self.tokenizer.parameters()), "lr": self.config.tokenizer_lr},
        ]

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        def copy(module: nn.Module) -> dict[str, torch.Tensor]:
            return {k: v.detach().clone() for k, v in module.state_dict().items()}

        return {
            "net": copy(self.net),
            "tokenizer": copy(self.tokenizer),
            "adapters": copy(self.adapters),
            "codes": self.sids.codes.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.tokenizer.load_state_dict(state["tokenizer"])
        self.adapters.load_state_dict(state["adapters"])
        self.set_semantic_ids(SemanticIDTable(state["codes"].clone(), self.sids.level_sizes))

    def num_parameters(self) -> int:
        modules = (self.net, self.tokenizer, self.adapters)
        return sum(p.numel() for module in modules for p in module.parameters())

    def parameter_counts(self) -> dict[str, int]:
        """Inference feeds the T5 soft code embeddings, so the tokenizer counts there too; the
        distillation adapters train only."""
        tokenizer = sum(p.numel() for p in self.tokenizer.parameters())
        net = sum(p.numel() for p in self.net.parameters())
        return {"inference": net + tokenizer, "tokenizer": tokenizer}
