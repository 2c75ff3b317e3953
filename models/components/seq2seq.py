"""The sequence-to-sequence recommender shared by the semantic-ID methods.

A user's history is the flattened semantic IDs (SIDs) of its items followed by ``eos``; the model
emits the next item's SID one column at a time (TIGER, Rajput et al. 2023, Sec. 3.2). Token ids
follow :class:`models.components.semantic_ids.SemanticIDTable`: 0 = pad (also the decoder
start), 1 = eos, code ``x`` of column ``c`` is ``2 + sum(level_sizes[:c]) + x``; ``item_tokens``
below is its ``tokens()``.

Training cost is dominated by the encoder, so inputs are padded only to the longest history of
the batch, and :func:`length_bucketed_batches` groups histories of similar length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

from models.components.dropout import use_fast_dropout
from models.components.semantic_ids import EOS, N_SPECIAL, PAD
from models.training import pad_histories

Histories = list[list[int]] | torch.Tensor


@dataclass
class T5Spec:
    """T5 size; the defaults are TIGER's (Sec. 4.1) and LETTER-TIGER's (METHODS.md Sec. 4-5)."""

    num_layers: int = 4
    num_decoder_layers: int = 4
    d_model: int = 128
    d_ff: int = 1024
    num_heads: int = 6
    d_kv: int = 64
    dropout: float = 0.1
    feed_forward: str = "relu"


def build_t5(spec: T5Spec, vocab_size: int) -> T5ForConditionalGeneration:
    """A randomly initialised T5 (no pretrained weights) with tied input/output embeddings and
    :class:`~models.components.dropout.FastDropout` (same dropout, cheaper mask on CPU)."""
    config = T5Config(
        vocab_size=vocab_size,
        d_model=spec.d_model,
        d_kv=spec.d_kv,
        d_ff=spec.d_ff,
        num_layers=spec.num_layers,
        num_decoder_layers=spec.num_decoder_layers,
        num_heads=spec.num_heads,
        dropout_rate=spec.dropout,
        feed_forward_proj=spec.feed_forward,
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=PAD,
    )
    return use_fast_dropout(T5ForConditionalGeneration(config))


def trim_to_longest(items: torch.Tensor) -> torch.Tensor:
    """Right-padded histories ``[B, S]`` without the columns no history reaches (at least one)."""
    width = int((items > 0).sum(1).max()) if len(items) else 1
    return items[:, : max(width, 1)]


def _layout(
    histories: Histories, n_columns: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Histories, their eos positions and the attention mask. Host histories are trimmed to
    the batch's longest first; histories already on an accelerator are taken as they come
    (trim them on the host, :func:`trim_to_longest`: reading their width there would make the
    host wait for the device on every step)."""
    items = histories if isinstance(histories, torch.Tensor) else pad_histories(histories)
    if items.device.type == "cpu":
        items = trim_to_longest(items)
    items = items.to(device)
    lengths = (items > 0).sum(1)
    eos_at = lengths * n_columns
    width = items.shape[1] * n_columns + 1
    mask = torch.arange(width, device=device) <= eos_at[:, None]
    return items, eos_at, mask.long()


@dataclass
class DecoderOutput:
    """Teacher-forced outputs: ``logits [B, L', vocab]``; on request the decoder states
    ``hidden [B, L', d_model]`` and encoder states ``encoded [B, S, d_model]``."""

    logits: torch.Tensor
    hidden: torch.Tensor | None = None
    encoded: torch.Tensor | None = None


class SIDRecommender(nn.Module):
    """T5 over SID tokens. Targets are the L' tokens of the next item, without a trailing eos:
    constrained decoding always stops after L' tokens, so eos would only cost decoder work."""

    def __init__(self, spec: T5Spec, level_sizes: list[int], unused_tokens: int = 0):
        super().__init__()
        self.level_sizes = list(level_sizes)
        self.offsets = [N_SPECIAL + sum(self.level_sizes[:c]) for c in range(len(level_sizes))]
        # ``unused_tokens`` rows after the codes: in the training softmax, never a target or an
        # input, never decoded (decoding normalises over each column's codes)
        self.vocab_size = N_SPECIAL + sum(self.level_sizes) + unused_tokens
        self.t5 = build_t5(spec, self.vocab_size)

    @property
    def n_columns(self) -> int:
        return len(self.level_sizes)

    @property
    def token_embedding(self) -> nn.Embedding:
        """The embedding matrix shared by encoder, decoder and (tied) output layer."""
        return self.t5.shared

    def column_embedding(self, column: int) -> torch.Tensor:
        """Rows of the shared embedding for column ``column``'s codes, ``[K_c, d_model]``.

        Soft inputs (DIGER, UniGRec): ``probs_c @ column_embedding(c)``.
        """
        start = self.offsets[column]
        return self.t5.shared.weight[start : start + self.level_sizes[column]]

    def encode_inputs(
        self, histories: Histories, item_tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``input_ids, attention_mask`` for histories (lists, or a right-padded id tensor).

        Each item contributes its L' tokens, then one eos; rows are padded to the batch's longest.
        Outputs live on ``item_tokens``' device.
        """
        items, eos_at, mask = _layout(histories, self.n_columns, item_tokens.device)
        flat = item_tokens[items].flatten(1)
        ids = torch.cat([flat, flat.new_zeros(len(flat), 1)], 1)
        ids.scatter_(1, eos_at[:, None], EOS)
        return ids * mask, mask

    def encode_embeds(
        self, histories: Histories, item_embeds: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``inputs_embeds, attention_mask`` in the layout of :meth:`encode_inputs`, from a table
        ``item_embeds [n_rows, L', d_model]`` indexed by the history's item ids (row 0 unused)."""
        items, eos_at, mask = _layout(histories, self.n_columns, item_embeds.device)
        flat = item_embeds[items].flatten(1, 2)
        embeds = torch.cat([flat, flat.new_zeros(len(flat), 1, flat.shape[-1])], 1)
        is_eos = (torch.arange(embeds.shape[1], device=mask.device) == eos_at[:, None])[..., None]
        embeds = torch.where(is_eos, self.t5.shared.weight[EOS], embeds)
        return embeds * mask[..., None], mask

    def encode(
        self,
        attention_mask: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encoder states ``[B, S, d_model]``."""
        out = self.t5.encoder(
            input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds
        )
        return out.last_hidden_state

    def encode_by_length(
        self,
        attention_mask: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        rows_per_chunk: int = 32,
    ) -> torch.Tensor:
        """:meth:`encode` over chunks of rows of similar length, each trimmed to its longest
        row, so a batch with mixed history lengths costs the encoder its real tokens rather than
        ``B x`` the longest (right-padded inputs; padded outputs are zero). Equal to
        :meth:`encode` on the real positions: padded keys get zero attention weight either way."""
        lengths = attention_mask.sum(1)
        encoded = None
        for rows in torch.argsort(lengths, stable=True).split(rows_per_chunk):
            width = max(int(lengths[rows].max()), 1)
            out = self.encode(
                attention_mask[rows, :width],
                None if input_ids is None else input_ids[rows, :width],
                None if inputs_embeds is None else inputs_embeds[rows, :width],
            )
            if encoded is None:
                encoded = out.new_zeros(len(attention_mask), attention_mask.shape[1], out.shape[-1])
            encoded[rows, :width] = out
        return encoded

    def output_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits from decoder states (T5 scales states by d_model^-0.5 when tied)."""
        if self.t5.config.scale_decoder_outputs:
            hidden = hidden * self.t5.config.d_model**-0.5
        return self.t5.lm_head(hidden)

    def forward(
        self,
        target_tokens: torch.Tensor,
        attention_mask: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        return_hidden: bool = False,
    ) -> DecoderOutput:
        """Teacher-forced decoding of ``target_tokens [B, L']`` (e.g. ``item_tokens[targets]``)."""
        encoded = self.encode(attention_mask, input_ids, inputs_embeds)
        start = target_tokens.new_full((len(target_tokens), 1), PAD)
        hidden = self.t5.decoder(
            input_ids=torch.cat([start, target_tokens[:, :-1]], 1),
            encoder_hidden_states=encoded,
            encoder_attention_mask=attention_mask,
            use_cache=False,
        ).last_hidden_state
        if not return_hidden:
            return DecoderOutput(self.output_logits(hidden))
        return DecoderOutput(self.output_logits(hidden), hidden, encoded)

    def loss(
        self,
        target_tokens: torch.Tensor,
        attention_mask: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Mean cross-entropy over the L' target tokens of ``logits / temperature`` (LETTER's
        ranking-guided loss; 1.0 is TIGER's plain CE)."""
        logits = self(target_tokens, attention_mask, input_ids, inputs_embeds).logits
        return token_cross_entropy(logits, target_tokens, temperature)

    def column_log_probs(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """Per position c, log-softmax over column c's codes only: L' tensors ``[B, K_c]``."""
        return [
            logits[:, c, start : start + size].log_softmax(-1)
            for c, (start, size) in enumerate(zip(self.offsets, self.level_sizes))
        ]


def token_cross_entropy(
    logits: torch.Tensor, target_tokens: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Mean CE of ``logits [B, L', V] / temperature`` against ``target_tokens [B, L']``."""
    return F.cross_entropy((logits / temperature).flatten(0, 1), target_tokens.flatten())


def length_bucketed_batches(
    lengths: torch.Tensor,
    batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    chunk_batches: int = 64,
) -> list[torch.Tensor]:
    """Index batches whose histories have similar lengths, so padding to the batch's longest is
    cheap. With ``shuffle``, samples are permuted, sorted by length inside chunks of
    ``chunk_batches`` batches, cut into batches, and the batch order is permuted; otherwise all
    samples are sorted by length (for evaluation)."""
    lengths = torch.as_tensor(lengths)
    if not shuffle:
        return list(torch.argsort(lengths, stable=True).split(batch_size))
    gen = torch.Generator().manual_seed(seed)
    batches = [
        batch
        for chunk in torch.randperm(len(lengths), generator=gen).split(batch_size * chunk_batches)
        for batch in chunk[torch.argsort(lengths[chunk], stable=True)].split(batch_size)
    ]
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
