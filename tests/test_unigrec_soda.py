"""UniGRec and the SODA plug-in: soft identifiers at low temperature, distillation gradients,
the SODA loss and its composition with backbones in the registry, and end-to-end smoke runs.

The codeword uniformity term being lowest for uniform usage is tested for the shared component
in tests/test_quantizer.py (``test_uniformity_loss_lowest_for_uniform_usage``); here we check
that UniGRec's stage 1 uses it with its annealed soft assignment.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.cli import main
from benchmark.errors import BenchmarkError
from benchmark.registry import UnknownNameError
from benchmark.runner import build_config, model_registry, resolve_model, run_batch
from models.base import ConfigError
from models.components.beam_search import constrained_beam_search
from models.components.quantizer import RQVAE, ResidualQuantizer
from models.soda import SodaMixin, code_logits, distribution_scores, ordered_pairs, soda_loss
from models.tiger import TIGER
from models.unigrec import UniGRec
from tests.conftest import FIXTURE_DIR
from tests.stub_context import fitted, training_batch

SMOKE = dict(datasets=["ml-tiny"], profile="smoke", data_dir=FIXTURE_DIR, quiet=True)


def batch(data, n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    return training_batch(data, n)


# ---------------------------------------------------------------------- UniGRec


def test_soft_identifiers_become_one_hot_and_match_hard_codes():
    torch.manual_seed(0)
    z = torch.randn(64, 4)
    soft = ResidualQuantizer(3, 8, 4, assignment="soft")
    hard = ResidualQuantizer(3, 8, 4, assignment="hard")
    soft.init_codebooks(z)
    hard.codebooks.data.copy_(soft.codebooks.data)
    reference = hard(z)
    peaks = []
    for tau in (1.0, 0.1, 0.01, 1e-4):
        soft.tau = tau
        out = soft(z)
        peaks.append(out.probs.max(-1).values.mean().item())
    assert peaks == sorted(peaks) and peaks[-1] > 0.999
    assert torch.equal(out.codes, reference.codes)
    assert torch.allclose(out.quantized, reference.quantized, atol=1e-3)


def test_unigrec_soft_inputs_match_hard_decoding_at_low_temperature(tiny_data):
    model = fitted("unigrec", tiny_data, finetune_epochs=0)
    model.tokenizer.quantizer.tau = 1e-6
    model.set_semantic_ids(model.id_table(model.current_codes()[0]))
    model.train_mode(False)
    histories, _ = batch(tiny_data, 16)
    _, embeds, mask = model.encoder_inputs(histories)
    input_ids, hard_mask = model.net.encode_inputs(histories, model.item_tokens)
    hard = model.net.token_embedding(input_ids) * hard_mask[..., None]
    assert torch.equal(mask, hard_mask)
    assert torch.allclose(embeds, hard, atol=1e-4)
    soft_top, _ = constrained_beam_search(model.net, None, mask, model.trie, inputs_embeds=embeds)
    hard_top, _ = constrained_beam_search(model.net, input_ids, mask, model.trie)
    assert torch.equal(soft_top, hard_top)


def test_unigrec_stage1_anneals_a_soft_tokenizer_with_uniformity(tiny_data):
    model = fitted("unigrec", tiny_data, finetune_epochs=0)
    cfg = model.rqvae_config(24)
    assert (cfg.assignment, cfg.tau, cfg.tau_end) == ("soft", 0.01, 0.001)
    assert cfg.uniformity_weight == 1e-4
    assert model.tokenizer.quantizer.tau == 0.001  # held after stage 1
    assert model.sids.level_sizes == [8, 8, 8, 101]  # fixed: the vocabulary never changes


def test_distillation_gradients_reach_the_tokenizer_and_ignore_padding(tiny_data):
    model = fitted("unigrec", tiny_data, finetune_epochs=0)
    model.train_mode(False)
    histories, targets = batch(tiny_data)
    embeds, mask, _ = model.soft_inputs(histories, targets)
    tokens = model.item_tokens[targets]
    decoded = model.net(tokens, mask, inputs_embeds=embeds, return_hidden=True)
    tokenizer_side, rec_side = model.distillation_losses(targets, decoded, mask)
    tokenizer_side.backward(retain_graph=True)
    assert model.tokenizer.quantizer.codebooks.grad.abs().sum() > 0
    assert model.tokenizer.encoder[0].weight.grad.abs().sum() > 0  # via the soft history tokens
    for part in ("encoder", "teacher"):  # the adapters are trained (authors': never)
        assert model.adapters[part][0].weight.grad.abs().sum() > 0
    rec_side.backward()
    assert model.adapters["decoder"][0].weight.grad.abs().sum() > 0

    decoded.encoded = decoded.encoded.detach().masked_fill(~mask.bool()[..., None], 1e3)
    with torch.no_grad():
        padded, _ = model.distillation_losses(targets, decoded, mask)
    assert padded.item() == pytest.approx(tokenizer_side.item(), rel=1e-5)


# ---------------------------------------------------------------------- SODA


def test_soda_loss_reaches_the_tokenizer_and_learns_to_prefer_the_positive():
    torch.manual_seed(0)
    tokenizer = RQVAE(6, hidden=(8,), latent=4, levels=2, codebook_size=4, assignment="soft")
    tokenizer.quantizer.tau = 0.1
    inputs = torch.randn(5, 6)
    user = torch.nn.Parameter(torch.zeros(1, 2, 4))
    optimizer = torch.optim.Adam([user, *tokenizer.parameters()], lr=0.05)

    def step() -> tuple[torch.Tensor, torch.Tensor]:
        out = tokenizer.quantizer(tokenizer.encoder(inputs[[0, 3]]))  # positive 0, negative 3
        logits = code_logits(out.residuals, tokenizer.quantizer.codebooks)[None]
        scores = distribution_scores(list(user.log_softmax(-1).unbind(1)), logits)
        return soda_loss(scores), scores.detach()

    first, _ = step()
    first.backward()
    assert tokenizer.quantizer.codebooks.grad.abs().sum() > 0
    assert tokenizer.encoder[0].weight.grad.abs().sum() > 0
    for _ in range(30):
        optimizer.zero_grad()
        loss, scores = step()
        loss.backward()
        optimizer.step()
    loss, scores = step()
    assert scores[0, 0] > scores[0, 1] + 1.0 and loss < first - 0.3


def test_soda_scores_are_negative_kl_in_the_chosen_direction():
    user = torch.log(torch.tensor([[0.7, 0.2, 0.1]]))
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.1, 0.8]]))[None, :, None, :]
    p, q = user.exp()[0], logits[0, :, 0].exp()
    forward = -(p * (p / q).log()).sum(-1)
    backward = -(q * (q / p).log()).sum(-1)
    assert torch.allclose(distribution_scores([user], logits)[0], forward)
    assert torch.allclose(distribution_scores([user], logits, direction="item_user")[0], backward)
    assert forward[0] > forward[1]  # the matching item scores higher


def test_soda_item_side_follows_the_backbone_tokenizer(tiny_data):
    frozen = fitted("tiger+soda", tiny_data)
    joint = fitted("unigrec+soda", tiny_data, finetune_epochs=0)
    items = torch.tensor([1, 2, 3])
    assert not frozen.item_code_logits(items).requires_grad  # TIGER: frozen distances
    assert joint.item_code_logits(items).requires_grad  # UniGRec: differentiable
    assert frozen.diagnostics["soda"]["tokenizer"] == "frozen"
    # tiger+soda derives its IDs from the same RQ-VAE training as tiger's
    assert np.array_equal(frozen.sids.codes.numpy(), fitted("tiger", tiny_data).sids.codes.numpy())

    in_batch = fitted("tiger+soda", tiny_data, soda_sampling="in-batch")
    _, targets = batch(tiny_data)
    negatives = in_batch.sample_negatives(targets)
    assert negatives.shape == (len(targets), 4) and set(negatives.flatten().tolist()) <= set(
        targets.tolist()
    )


def test_plugin_compositions_resolve_and_invalid_ones_fail_clearly():
    registry = model_registry()
    tiger_soda = registry.get("tiger+soda")
    assert tiger_soda is resolve_model("tiger+soda")  # one class per composition
    assert issubclass(tiger_soda, TIGER) and issubclass(tiger_soda, SodaMixin)
    assert tiger_soda.name == "tiger+soda" and "SODA-style" in tiger_soda.__doc__
    unigrec_soda = registry.get("unigrec+soda")
    assert issubclass(unigrec_soda, UniGRec) and not unigrec_soda.soda_frozen_tokenizer
    config = build_config(unigrec_soda, "smoke", {"soda_kl": "item_user"})
    assert config.soda_kl == "item_user" and config.distill_start_epoch == 1
    assert config.soda_negatives == 4  # SODA's smoke profile merged with UniGRec's
    names = registry.names()
    for name in ("tiger+soda", "letter+soda", "diger+soda", "unigrec+soda"):
        assert name in names and name in registry
    assert "sasrec+soda" not in names

    with pytest.raises(BenchmarkError, match="not a semantic-ID GenerativeRecommender") as info:
        registry.get("sasrec+soda")
    assert "tiger+soda" in str(info.value)
    with pytest.raises(UnknownNameError, match="unknown plugin 'nope'") as info:
        registry.get("tiger+nope")
    assert "Known: soda" in str(info.value)
    with pytest.raises(BenchmarkError, match="already has soda"):
        registry.get("tiger+soda+soda")
    with pytest.raises(ConfigError, match="soda_sampling"):
        build_config(tiger_soda, "smoke", {"soda_sampling": "hard"})
    with pytest.raises(ConfigError, match="rqvae"):
        build_config(tiger_soda, "smoke", {"tokenizer": "rkmeans"})


def test_ls_lists_compositions(capsys):
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    assert "tiger+soda" in out and "unigrec+soda" in out and "sasrec+soda" not in out


# ---------------------------------------------------------------------- end to end


def test_unigrec_and_tiger_soda_smoke_runs(tmp_path):
    outcomes = run_batch(["unigrec", "tiger+soda"], results_dir=tmp_path, **SMOKE)
    unigrec, tiger_soda = (outcome.record for outcome in outcomes)
    for record in (unigrec, tiger_soda):
        assert record["status"] == "ok", record.get("traceback")
        sid = record["diagnostics"]["sid"]
        assert len(sid["levels"]) == 3 and sid["invalid_rate"] == 0
        assert all(level["entropy_bits"] > 0 for level in sid["levels"])

    # UniGRec: joint epochs 0-1 (IDs re-derived, drift recorded), then fine-tuning epoch 2
    drift = unigrec["diagnostics"]["sid_drift"]
    assert [entry["epoch"] for entry in drift] == [0, 1]
    assert all(0 <= entry["sid_drift_cumulative"] <= 1 for entry in drift)
    assert [row["distilling"] for row in unigrec["curve"][:2]] == [0.0, 1.0]
    assert [row["epoch"] for row in unigrec["curve"]] == [0, 1, 2]
    assert unigrec["diagnostics"]["sid"]["tau"] == pytest.approx(0.001)

    soda = tiger_soda["diagnostics"]["soda"]
    assert (
        soda["label"].startswith("SODA-style (reconstructed")
        and len(soda["item_entropy_bits"]) == 3
    )
    assert 0 <= tiger_soda["curve"][0]["soda_accuracy"] <= 1
    assert tiger_soda["curve"][0]["soda_loss"] > 0


def test_soda_accuracy_counts_the_positive_ranked_above_valid_negatives():
    scores = torch.tensor([[0.0, -1.0, 1.0, -2.0], [5.0, 6.0, 4.0, 5.0]])
    valid = torch.tensor([[True, True, False], [True, True, True]])
    # row 0: above -1 only (-2 is masked); row 1: above 4 only (a tie does not count)
    assert tuple(int(v) for v in ordered_pairs(scores, valid)) == (2, 5)
