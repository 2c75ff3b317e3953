"""The seq2seq recommender: input layout, soft inputs, losses, outputs, length bucketing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.components.semantic_ids import SemanticIDTable
from models.components.seq2seq import (
    EOS,
    PAD,
    SIDRecommender,
    T5Spec,
    length_bucketed_batches,
)

TINY = T5Spec(num_layers=2, num_decoder_layers=2, d_model=32, d_ff=64, num_heads=2, d_kv=16)
LEVELS = [4, 5, 3]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny matmuls on two threads spend their time in thread synchronisation."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(seed: int = 0) -> SIDRecommender:
    torch.manual_seed(seed)
    return SIDRecommender(TINY, LEVELS)


def random_codes(n_items: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, k, (n_items + 1,), generator=gen) for k in LEVELS], 1)


def random_tokens(n_items: int = 10) -> torch.Tensor:
    return SemanticIDTable(random_codes(n_items), LEVELS).tokens()


def test_layout_matches_the_semantic_id_table():
    table = SemanticIDTable(torch.tensor([[3, 3, 3], [0, 0, 0], [3, 4, 2]]), LEVELS)
    model = SIDRecommender(TINY, LEVELS)
    assert model.offsets == table.token_offsets == [2, 6, 11]
    assert model.vocab_size == table.vocab_size == model.token_embedding.num_embeddings == 14
    start = model.offsets[1]
    assert torch.equal(model.column_embedding(1), model.token_embedding.weight[start : start + 5])


def test_encode_inputs_flattens_items_then_eos_and_pads_to_batch_longest():
    model = tiny_model()
    tokens = torch.tensor([[0, 0, 0], [2, 6, 11], [3, 7, 12], [4, 8, 13]])
    ids, mask = model.encode_inputs([[1, 2], [3]], tokens)
    assert ids.tolist() == [
        [2, 6, 11, 3, 7, 12, EOS],
        [4, 8, 13, EOS, PAD, PAD, PAD],
    ]
    assert mask.tolist() == [[1] * 7, [1, 1, 1, 1, 0, 0, 0]]
    wide = torch.tensor([[1, 2, 0, 0], [3, 0, 0, 0]])  # right-padded ids, wider than needed
    ids_t, mask_t = model.encode_inputs(wide, tokens)
    assert torch.equal(ids_t, ids) and torch.equal(mask_t, mask)


def test_inputs_embeds_of_hard_codes_equal_input_ids():
    model = tiny_model().eval()
    codes = random_codes(10)
    tokens = SemanticIDTable(codes, LEVELS).tokens()
    histories = [[1, 2, 3], [4], [5, 6]]
    targets = tokens[torch.tensor([7, 8, 9])]
    ids, mask = model.encode_inputs(histories, tokens)
    item_embeds = torch.stack([model.column_embedding(c)[codes[:, c]] for c in range(3)], 1)
    embeds, mask_e = model.encode_embeds(histories, item_embeds)
    assert torch.equal(mask_e, mask)
    from_ids = model(targets, mask, input_ids=ids).logits
    from_embeds = model(targets, mask, inputs_embeds=embeds).logits
    assert torch.allclose(from_ids, from_embeds, atol=1e-5)


def test_soft_inputs_carry_gradient_to_code_probabilities():
    model = tiny_model()
    logits = torch.randn(11, 3, max(LEVELS), requires_grad=True)
    item_embeds = torch.stack(
        [logits[:, c, :k].softmax(-1) @ model.column_embedding(c) for c, k in enumerate(LEVELS)],
        1,
    )
    embeds, mask = model.encode_embeds([[1, 2], [3]], item_embeds)
    targets = random_tokens()[torch.tensor([4, 5])]
    model.loss(targets, mask, inputs_embeds=embeds).backward()
    assert logits.grad[1:4].abs().sum() > 0
    assert logits.grad[4:].abs().sum() == 0


def test_loss_is_cross_entropy_over_target_tokens_with_temperature():
    model = tiny_model().eval()
    tokens = random_tokens()
    ids, mask = model.encode_inputs([[1, 2], [3, 4, 5]], tokens)
    targets = tokens[torch.tensor([6, 7])]
    out = model(targets, mask, input_ids=ids, return_hidden=True)
    assert out.logits.shape == (2, 3, model.vocab_size)
    assert out.hidden.shape == (2, 3, TINY.d_model)
    assert torch.allclose(model.output_logits(out.hidden), out.logits)
    for temp in (1.0, 0.5):
        expected = F.cross_entropy((out.logits / temp).flatten(0, 1), targets.flatten())
        assert torch.allclose(model.loss(targets, mask, ids, temperature=temp), expected)


def test_teacher_forcing_is_causal_and_padding_invariant():
    model = tiny_model().eval()
    tokens = random_tokens()
    targets = tokens[torch.tensor([6, 7])]
    ids, mask = model.encode_inputs([[1, 2, 3, 4], [5]], tokens)
    both = model(targets, mask, ids).logits
    alone_ids, alone_mask = model.encode_inputs([[5]], tokens)
    alone = model(targets[1:], alone_mask, alone_ids).logits
    assert torch.allclose(both[1], alone[0], atol=1e-5)
    changed = targets.clone()
    changed[:, -1] = tokens[8, -1]  # the last target token must not influence any position
    assert torch.equal(model(changed, mask, ids).logits, both)


def test_column_log_probs_are_distributions_over_each_columns_codes():
    model = tiny_model()
    logits = torch.randn(5, 3, model.vocab_size)
    per_column = model.column_log_probs(logits)
    assert [p.shape for p in per_column] == [(5, k) for k in LEVELS]
    for p in per_column:
        assert torch.allclose(p.exp().sum(-1), torch.ones(5))
    assert torch.allclose(per_column[1], logits[:, 1, 6:11].log_softmax(-1))


def test_training_steps_fit_a_tiny_batch():
    model = tiny_model().train()
    tokens = random_tokens()
    ids, mask = model.encode_inputs([[1, 2], [3], [4, 5, 6]], tokens)
    targets = tokens[torch.tensor([7, 8, 9])]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = model.loss(targets, mask, ids)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first


def test_length_bucketed_batches_cover_all_samples_with_similar_lengths():
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 21, (1000,), generator=gen)
    batches = length_bucketed_batches(lengths, 32, seed=1, chunk_batches=8)
    flat = torch.cat(batches)
    assert torch.equal(flat.sort().values, torch.arange(1000))
    assert all(len(b) <= 32 for b in batches)
    spread = torch.tensor([float(lengths[b].max() - lengths[b].min()) for b in batches])
    assert spread.mean() < 4  # random batches of 32 would span ~18
    again = length_bucketed_batches(lengths, 32, seed=1, chunk_batches=8)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    other = length_bucketed_batches(lengths, 32, seed=2, chunk_batches=8)
    assert not all(torch.equal(a, b) for a, b in zip(batches, other))
    ordered = torch.cat(length_bucketed_batches(lengths, 32, shuffle=False))
    assert torch.equal(lengths[ordered], lengths.sort(stable=True).values)


def test_unused_tokens_join_the_training_softmax_but_never_the_decoding():
    torch.manual_seed(0)
    model = SIDRecommender(TINY, LEVELS, unused_tokens=100).eval()
    assert model.vocab_size == tiny_model().vocab_size + 100
    tokens = random_tokens()
    ids, mask = model.encode_inputs([[1, 2], [3]], tokens)
    targets = tokens[torch.tensor([6, 7])]
    logits = model(targets, mask, ids).logits
    assert logits.shape[-1] == model.vocab_size
    # the loss normalises over every token, unused ones included ...
    expected = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    assert torch.allclose(model.loss(targets, mask, ids), expected)
    # ... decoding over each column's codes only
    assert torch.allclose(model.column_log_probs(logits)[0], logits[:, 0, 2:6].log_softmax(-1))


def test_a_config_field_added_later_keeps_recorded_run_ids_while_at_its_default():
    from models.generative import GenerativeConfig

    assert "unused_tokens" not in GenerativeConfig().to_dict()
    assert GenerativeConfig(unused_tokens=32100).to_dict()["unused_tokens"] == 32100
