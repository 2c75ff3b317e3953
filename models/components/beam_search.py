"""Beam search constrained to real items (TIGER, Rajput et al. 2023, Sec. 3.2 and 4.3).

:class:`PrefixTrie` holds, per decoding step, a dense table from (prefix state, code) to the next
state, so masking invalid continuations is one gather for all users and beams.
:func:`constrained_beam_search` encodes once, computes the cross-attention keys and values once
per user (beams of a user share them, nothing is copied per beam), keeps a self-attention cache
reordered by ``index_select``, and loops in Python only over the L' decoding steps.
:func:`reference_generate` runs Hugging Face ``generate`` over the same trie, for tests and
benchmarks.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.components.semantic_ids import EOS, PAD
from models.components.seq2seq import SIDRecommender

NEG_INF = float("-inf")


@dataclass
class PrefixTrie:
    """All items' SIDs as transition tables.

    ``next_state[t][s, x]`` is the state reached from prefix state ``s`` (after ``t`` codes) by
    code ``x`` of column ``t``, or -1 when no item continues that way; the root is state 0.
    ``state_item[s]`` is the item of a full SID (the smallest id when items share a SID).
    """

    level_sizes: list[int]
    next_state: list[torch.Tensor]
    state_item: torch.Tensor
    n_aliased: int  # items not reachable because another item has the same full SID

    @classmethod
    def from_codes(cls, sid_codes: torch.Tensor, level_sizes: list[int]) -> PrefixTrie:
        """Build from per-column codes ``[n_items + 1, L']`` (row 0, the padding item, skipped)."""
        codes = sid_codes[1:].long()
        items = torch.arange(1, len(sid_codes))
        states = torch.zeros(len(codes), dtype=torch.long)
        n_states, tables = 1, []
        for column, size in enumerate(level_sizes):
            keys = states * size + codes[:, column]
            unique, child = torch.unique(keys, return_inverse=True)
            table = torch.full((n_states, size), -1, dtype=torch.long)
            table.view(-1)[unique] = torch.arange(len(unique))
            tables.append(table)
            states, n_states = child, len(unique)
        state_item = torch.full((n_states,), len(sid_codes), dtype=torch.long)
        state_item.scatter_reduce_(0, states, items, reduce="amin")
        return cls(list(level_sizes), tables, state_item, len(codes) - n_states)

    def to(self, device: torch.device | str) -> PrefixTrie:
        """The same trie with its tables on ``device`` (the search's device)."""
        return PrefixTrie(
            self.level_sizes,
            [table.to(device) for table in self.next_state],
            self.state_item.to(device),
            self.n_aliased,
        )

    def allowed(self, step: int, states: torch.Tensor) -> torch.Tensor:
        """Boolean ``[..., K_step]``: which codes of column ``step`` continue each state."""
        return self.next_state[step][states] >= 0

    def state_of(self, codes: torch.Tensor) -> torch.Tensor:
        """State after each row of the first ``t`` codes ``[N, t]``; -1 where no item has that
        prefix."""
        state = torch.zeros(len(codes), dtype=torch.long, device=codes.device)
        for column in range(codes.shape[1]):
            table, code = self.next_state[column], codes[:, column]
            valid = (state >= 0) & (code >= 0) & (code < table.shape[1])
            step = table[state.clamp(min=0), code.clamp(0, table.shape[1] - 1)]
            state = torch.where(valid, step, -1)
        return state

    def items_of(self, codes: torch.Tensor) -> torch.Tensor:
        """Item id of each row of per-column codes ``[N, L']``; 0 where no item has that SID."""
        state = self.state_of(codes)
        return torch.where(state >= 0, self.state_item[state.clamp(min=0)], 0)


class _StepDecoder:
    """One-token-at-a-time T5 decoder for ``B`` users with ``n`` beams each (rows ``b * n + j``).

    Reads the weights of ``model.t5``'s modules and equals its decoder in eval mode: pre-norm
    blocks, unscaled dot-product attention, layer 0's relative position bias shared by all
    layers. Work shared by a user's beams is done once per user: the cross-attention keys and
    values, and the whole first step (every beam starts from the same start token), whose
    self-attention keys and values stay one row per user. Later positions keep one key/value row
    per beam, as a list per position (no concatenation), reordered by ``index_select`` when
    beams are re-ranked.
    """

    def __init__(
        self,
        model: SIDRecommender,
        encoded: torch.Tensor,
        attention_mask: torch.Tensor,
        users_per_chunk: int = 32,
    ):
        self.model = model
        self.blocks = model.t5.decoder.block
        config = model.t5.config
        self.heads, self.d_kv = config.num_heads, config.d_kv
        self.relu_ff = config.feed_forward_proj == "relu"
        self.batch = len(attention_mask)
        # Cross-attention runs over chunks of consecutive users, each trimmed to its longest
        # history: users come sorted by length, so the keys hold (almost) no padding.
        lengths = attention_mask.sum(1).tolist()
        self.chunks = [
            (start, min(start + users_per_chunk, self.batch))
            for start in range(0, self.batch, users_per_chunk)
        ]
        widths = [max(max(lengths[a:b]), 1) for a, b in self.chunks]
        floor = torch.finfo(encoded.dtype).min
        self.cross_bias = [
            ((1 - attention_mask[a:b, None, None, :w]) * floor).to(encoded.dtype)
            for (a, b), w in zip(self.chunks, widths)
        ]
        # per layer, per chunk: keys [b, heads, d_kv, S_chunk] and values [b, heads, S_chunk, d_kv]
        self.cross: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        for block in self.blocks:
            attn = block.layer[1].EncDecAttention
            per_chunk = []
            for (a, b), w in zip(self.chunks, widths):
                states = encoded[a:b, :w]
                k = attn.k(states).view(b - a, w, self.heads, self.d_kv).permute(0, 2, 3, 1)
                v = attn.v(states).view(b - a, w, self.heads, self.d_kv).transpose(1, 2)
                per_chunk.append((k.contiguous(), v.contiguous()))
            self.cross.append(per_chunk)
        steps = model.n_columns
        bias = self.blocks[0].layer[0].SelfAttention.compute_bias(steps, steps)[0]
        self.self_bias = bias.permute(1, 0, 2)  # [query position, head, key position]
        # per layer: position 0's keys / values [B, 1, heads, d_kv] (one row per user), then
        # one [B * n, heads, d_kv] pair per later position
        self.first: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.later: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in self.blocks]
        self.rows_per_step: list[int] | None = None  # if a list: decoder rows run per step

    def _cross_attention(self, layer: int, q: torch.Tensor) -> torch.Tensor:
        """Attention of queries ``[B, n, heads, d_kv]`` over each user's encoder states, chunk
        by chunk; returns ``[B * n, heads * d_kv]``."""
        outs = []
        for (a, b), (keys_t, values), bias in zip(self.chunks, self.cross[layer], self.cross_bias):
            weights = (q[a:b].transpose(1, 2) @ keys_t + bias).softmax(-1)
            outs.append((weights @ values).transpose(1, 2))
        return torch.cat(outs).reshape(len(q) * q.shape[1], -1)

    def _feed_forward(self, ff_layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        h = ff_layer.layer_norm(x)
        dense = ff_layer.DenseReluDense
        if self.relu_ff:  # in-place ReLU: no second [rows, d_ff] buffer
            return dense.wo(torch.relu_(dense.wi(h)))
        return dense(h)

    def step(self, tokens: torch.Tensor, t: int) -> torch.Tensor:
        """Log-probabilities over the vocabulary at position ``t`` for ``tokens`` (``[B]`` at
        ``t = 0``, ``[B * n]`` after)."""
        rows, n = len(tokens), len(tokens) // self.batch
        if self.rows_per_step is not None:
            self.rows_per_step[t] += rows
        heads, d_kv = self.heads, self.d_kv
        x = self.model.t5.decoder.embed_tokens(tokens)
        for i, block in enumerate(self.blocks):
            self_layer, cross_layer, ff_layer = block.layer
            attn = self_layer.SelfAttention
            h = self_layer.layer_norm(x)
            k = attn.k(h).view(rows, heads, d_kv)
            v = attn.v(h).view(rows, heads, d_kv)
            if t == 0:
                self.first.append((k.view(rows, 1, heads, d_kv), v.view(rows, 1, heads, d_kv)))
                out = v
            else:
                self.later[i].append((k, v))
                q = attn.q(h).view(rows, heads, d_kv)
                k0, v0 = self.first[i]
                bias = self.self_bias[t, :, : t + 1]
                first = (q.view(self.batch, n, heads, d_kv) * k0).sum(-1).view(rows, heads)
                scores = [first] + [(q * k_s).sum(-1) for k_s, _ in self.later[i]]
                weights = (torch.stack(scores, -1) + bias).softmax(-1)
                out = (weights[..., 0, None].view(self.batch, n, heads, 1) * v0).view(
                    rows, heads, d_kv
                )
                for s, (_, v_s) in enumerate(self.later[i], start=1):
                    out = out + weights[..., s, None] * v_s
            x = x + attn.o(out.reshape(rows, -1))

            attn = cross_layer.EncDecAttention
            q = attn.q(cross_layer.layer_norm(x)).view(self.batch, n, heads, d_kv)
            x = x + attn.o(self._cross_attention(i, q))
            x = x + self._feed_forward(ff_layer, x)
        hidden = self.model.t5.decoder.final_layer_norm(x)
        return self.model.output_logits(hidden).log_softmax(-1)

    def select(self, users: torch.Tensor | None, beams: slice, width: int) -> _StepDecoder:
        """A decoder over beams ``beams`` (of ``width`` per user) of the users where ``users``
        (bool ``[B]``; None = all) is true. Shares this one's weights; copies only the kept
        rows of the per-beam and per-user caches."""
        every = torch.arange(self.batch * width, device=self.self_bias.device).view(-1, width)
        rows = (every if users is None else every[users])[:, beams].flatten()
        sub = copy.copy(self)
        sub.later = self._later_rows(rows)
        if users is None:
            return sub
        sub.batch = int(users.sum())
        sub.first = [(k[users], v[users]) for k, v in self.first]
        sub.chunks, sub.cross_bias, sub.cross = [], [], [[] for _ in self.blocks]
        for c, (a, b) in enumerate(self.chunks):
            local = users[a:b].nonzero().flatten()
            if len(local) == 0:
                continue
            start = sub.chunks[-1][1] if sub.chunks else 0
            sub.chunks.append((start, start + len(local)))
            sub.cross_bias.append(self.cross_bias[c][local])
            for layer, per_chunk in enumerate(self.cross):
                k, v = per_chunk[c]
                sub.cross[layer].append((k[local], v[local]))
        return sub

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep the per-beam keys / values of ``rows`` (flat parent row per new beam); position
        0's stay per user, since a beam never changes user."""
        self.later = self._later_rows(rows)

    def _later_rows(self, rows: torch.Tensor) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
        """The per-beam keys / values of flat beam rows ``rows``, every layer and position."""
        return [
            [(k.index_select(0, rows), v.index_select(0, rows)) for k, v in layer]
            for layer in self.later
        ]


def _candidates(scores: torch.Tensor, log_probs: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
    """Scores ``[B, n, K]`` of every beam's continuations; -inf where no item continues."""
    return (scores[..., None] + log_probs).masked_fill(nxt < 0, NEG_INF)


def _last_step_candidates(
    decoder: _StepDecoder,
    tokens: torch.Tensor,
    scores: torch.Tensor,
    nxt: torch.Tensor,
    t: int,
    topk: int,
    users_per_group: int = 32,
) -> torch.Tensor:
    """The last step's candidates, computing only beams that can still reach the top ``topk``.

    Exact: log-probabilities are <= 0, so a beam's continuations score at most its own score.
    The best ``topk`` beams (beams are sorted) are decoded first; the ``topk``-th best of their
    candidates is a floor that the final top ``topk`` reach, and any other beam scoring below
    it is left at -inf. A trained model puts nearly all mass on one last token (TIGER's
    collision digit is 0 for most items), so most of the other beams fall below the floor."""
    batch, width = scores.shape
    offset, size = decoder.model.offsets[t], decoder.model.level_sizes[t]
    tokens = tokens.view(batch, width)
    cand = torch.full(nxt.shape, NEG_INF, dtype=scores.dtype, device=scores.device)
    head = decoder.select(None, slice(0, topk), width).step(tokens[:, :topk].flatten(), t)
    head = head[:, offset : offset + size].view(batch, topk, size)
    cand[:, :topk] = _candidates(scores[:, :topk], head, nxt[:, :topk])
    floor = cand[:, :topk].reshape(batch, -1).topk(topk, dim=1).values[:, -1]
    # Beams are sorted, so each user's beams at or above the floor come first. Users that have
    # any are decoded in groups of similar counts, each group as many beams as its largest.
    reach = (scores[:, topk:] >= floor[:, None]).sum(1)
    tail = reach.nonzero().flatten()
    for group in tail[torch.argsort(reach[tail], stable=True)].split(users_per_group):
        users = torch.zeros(batch, dtype=torch.bool, device=scores.device)
        users[group] = True
        extra = int(reach[group].max())
        beams = slice(topk, topk + extra)
        sub = decoder.select(users, beams, width)
        log_probs = sub.step(tokens[users, beams].flatten(), t)[:, offset : offset + size]
        cand[users, beams] = _candidates(
            scores[users, beams], log_probs.view(-1, extra, size), nxt[users, beams]
        )
    return cand


@torch.no_grad()
def constrained_beam_search(
    model: SIDRecommender,
    input_ids: torch.Tensor | None,
    attention_mask: torch.Tensor,
    trie: PrefixTrie,
    beam_size: int = 20,
    topk: int = 10,
    inputs_embeds: torch.Tensor | None = None,
    rows_per_step: list[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``topk`` items per user, best first, as ``(item_ids [B, topk], scores [B, topk])``.

    A beam's score is the sum of its tokens' full-vocabulary log-probabilities (no length
    penalty). Codes that no item continues are masked at every step, so every returned id is a
    real item; where fewer than ``topk`` items are reachable, ids are 0 and scores -inf.
    ``trie`` must be on the inputs' device (:meth:`PrefixTrie.to`). ``rows_per_step`` (one
    int per column), if given, accumulates the decoder rows run at each step (benchmarks).
    """
    # users sorted by history length, so the decoder's cross-attention chunks carry no padding
    order = torch.argsort(attention_mask.sum(1), stable=True)
    attention_mask = attention_mask[order]
    input_ids = None if input_ids is None else input_ids[order]
    inputs_embeds = None if inputs_embeds is None else inputs_embeds[order]
    was_training = model.training
    model.eval()
    try:
        encoded = model.encode_by_length(attention_mask, input_ids, inputs_embeds)
        decoder = _StepDecoder(model, encoded, attention_mask)
        decoder.rows_per_step = rows_per_step
        batch, device = len(attention_mask), attention_mask.device
        scores = encoded.new_zeros(batch, 1)
        states = torch.zeros(batch, 1, dtype=torch.long, device=device)
        tokens = torch.full((batch,), PAD, dtype=torch.long, device=device)
        last = model.n_columns - 1
        for t, (offset, size) in enumerate(zip(model.offsets, model.level_sizes)):
            width = scores.shape[1]
            nxt = trie.next_state[t][states]
            if t == last and width > topk:
                cand = _last_step_candidates(decoder, tokens, scores, nxt, t, topk)
            else:
                log_probs = decoder.step(tokens, t)[:, offset : offset + size]
                cand = _candidates(scores, log_probs.view(batch, width, size), nxt)
            keep = min(topk, beam_size) if t == last else beam_size  # as generate: <= beams
            scores, pick = cand.view(batch, -1).topk(min(keep, width * size), dim=1)
            states = nxt.view(batch, -1).gather(1, pick).clamp(min=0)
            if t + 1 < model.n_columns:
                tokens = (pick % size + offset).flatten()
                parents = pick // size + torch.arange(batch, device=device)[:, None] * width
                decoder.reorder(parents.flatten())
    finally:
        model.train(was_training)
    items = trie.state_item[states].masked_fill(scores == NEG_INF, 0)
    if items.shape[1] < topk:
        missing = topk - items.shape[1]
        items = F.pad(items, (0, missing), value=0)
        scores = F.pad(scores, (0, missing), value=NEG_INF)
    unsort = torch.empty_like(order)
    unsort[order] = torch.arange(len(order), device=order.device)
    return items[unsort, :topk], scores[unsort, :topk]


@torch.no_grad()
def reference_generate(
    model: SIDRecommender,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    trie: PrefixTrie,
    beam_size: int = 20,
    topk: int = 10,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same search through ``transformers``' ``generate`` with ``prefix_allowed_tokens_fn``
    (slow; per-beam Python). ``length_penalty=0`` makes its score the sum of log-probabilities."""
    offsets = torch.tensor(model.offsets, device=input_ids.device)

    def allowed(_: int, prefix: torch.Tensor) -> list[int]:
        step = len(prefix) - 1  # generate stops after L' codes, so step < L'
        state = int(trie.state_of(prefix[None, 1:] - offsets[:step])[0])
        if state < 0:
            return [EOS]
        return (trie.allowed(step, state).nonzero().flatten() + offsets[step]).tolist()

    was_training = model.training
    model.eval()
    try:
        out = model.t5.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            num_beams=beam_size,
            num_return_sequences=topk,
            max_new_tokens=model.n_columns,
            length_penalty=0.0,
            early_stopping=False,
            do_sample=False,
            prefix_allowed_tokens_fn=allowed,
            return_dict_in_generate=True,
            output_scores=True,
        )
    finally:
        model.train(was_training)
    codes = out.sequences[:, 1 : 1 + model.n_columns] - offsets
    items = trie.items_of(codes).view(-1, topk)
    scores = out.sequences_scores.view(-1, topk)
    return items.masked_fill(scores == NEG_INF, 0), scores
