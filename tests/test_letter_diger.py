"""LETTER and DIGER: regularisers, the rec-loss gradient path into DIGER's tokenizer, uncertainty
decay, per-epoch ID re-derivation, and end-to-end smoke runs on the tiny fixture.

The collaborative loss pulling quantised vectors toward the teacher is covered for the shared
component in tests/test_quantizer.py
(``test_collaborative_loss_pulls_quantized_vectors_to_the_teacher``); here it is checked through
LETTER's regulariser, with a projection as the harness needs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.runner import build_config, run_batch
from models.base import ConfigError
from models.components.quantizer import RQVAEConfig, collaborative_loss, sdud_loss, train_rqvae
from models.diger import DIGER
from models.letter import LETTER, LetterRegularizer
from models.tiger import TIGER
from tests.conftest import FIXTURE_DIR
from tests.stub_context import fitted, training_batch

SMOKE = dict(datasets=["ml-tiny"], profile="smoke", data_dir=FIXTURE_DIR, quiet=True)


def batch(data, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    return training_batch(data, n)


def graph_leaves(loss: torch.Tensor) -> set[int]:
    """ids of the leaf tensors (parameters) the autograd graph of ``loss`` reaches."""
    seen, leaves, stack = set(), set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if hasattr(node, "variable"):
            leaves.add(id(node.variable))
        stack.extend(next_node for next_node, _ in node.next_functions)
    return leaves


def test_letter_regularizer_aligns_with_the_teacher_through_a_projection():
    rng = np.random.default_rng(0)
    x = (rng.normal(scale=3.0, size=(8, 12))[rng.integers(8, size=128)]).astype(np.float32)
    x += rng.normal(size=x.shape).astype(np.float32)
    teacher = torch.from_numpy(rng.normal(size=(128, 6))).float()  # 6-d teacher, 4-d latent
    cfg = RQVAEConfig(
        levels=2, codebook_size=16, hidden=(16,), latent=4, epochs=30, batch_size=64, lr=3e-3
    )
    torch.manual_seed(0)
    projection = torch.nn.Linear(4, 6)
    regularizer = LetterRegularizer(teacher, projection, 1.0, 1e-2, n_clusters=4, seed=0)
    aligned = train_rqvae(
        x, cfg, seed=0, extra_loss=regularizer, extra_parameters=list(projection.parameters())
    )
    plain = train_rqvae(x, cfg, seed=0)
    with torch.no_grad():
        after = collaborative_loss(aligned(torch.from_numpy(x)).z_q, teacher, projection)
        before = collaborative_loss(plain(torch.from_numpy(x)).z_q, teacher, projection)
    assert after < before - 0.3
    assert regularizer.labels.shape == (2, 16) and regularizer.epoch == cfg.epochs - 1


@pytest.mark.parametrize("assignment", ["gumbel", "ste"])
def test_rec_loss_reaches_the_diger_tokenizer_but_not_tiger_s(tiny_data, assignment):
    diger = fitted(DIGER, tiny_data, assignment=assignment, freeze_encoder="none")
    diger.tokenizer_parameters()  # applies freeze_encoder
    histories, targets = batch(tiny_data)
    loss, _, _ = diger.generation_loss(histories, targets)
    loss.backward()
    tokenizer = diger.tokenizer
    assert tokenizer.encoder[0].weight.grad.abs().sum() > 0
    assert tokenizer.quantizer.codebooks.grad.abs().sum() > 0
    if assignment == "gumbel":  # every codeword of every level gets gradient through y
        assert (tokenizer.quantizer.codebooks.grad.abs().sum(-1) > 0).all()

    tiger = fitted(TIGER, tiny_data)
    leaves = graph_leaves(tiger.training_loss(histories, targets))
    assert leaves and leaves <= {id(p) for p in tiger.net.parameters()}
    assert {id(p) for p in tiger.parameters_to_train()} == {id(p) for p in tiger.net.parameters()}


@pytest.mark.parametrize(
    ("decay", "freeze", "trainable"),
    [("frqud", "scripts", 0), ("sdud", "scripts", 1), ("frqud", "none", 4), ("sdud", "all", 0)],
)
def test_diger_freezes_encoder_layers_as_the_authors_scripts(tiny_data, decay, freeze, trainable):
    diger = fitted(DIGER, tiny_data, decay=decay, freeze_encoder=freeze, rq_hidden=(16, 16, 16))
    params = {id(p) for p in diger.tokenizer_parameters()}
    layers = [m for m in diger.tokenizer.encoder if isinstance(m, torch.nn.Linear)]
    assert len(layers) == 4
    assert sum(id(layer.weight) in params for layer in layers) == trainable
    assert sum(layer.weight.requires_grad for layer in layers) == trainable
    assert id(diger.tokenizer.quantizer.codebooks) in params  # codebooks always train


def test_diger_history_embeddings_equal_the_hard_code_tokens(tiny_data):
    """Forward value of Ind @ E_rec is the token embedding of the (noise-free) code."""
    diger = fitted(DIGER, tiny_data, sigma_init=0.0, decay="none")
    diger.train_mode(False)  # no dropout, so both paths are deterministic
    diger.tokenizer.train()  # training-mode tokenizer, but sigma 0: no noise
    histories, targets = batch(tiny_data, 16)
    soft, _, _ = diger.generation_loss(histories, targets)
    input_ids, mask = diger.net.encode_inputs(histories, diger.item_tokens)
    hard = diger.net.loss(diger.item_tokens[targets], mask, input_ids=input_ids)
    assert soft.item() == pytest.approx(hard.item(), rel=1e-5)


def test_frqud_noises_only_items_on_overused_level1_codes(tiny_data):
    diger = fitted(DIGER, tiny_data, decay="frqud", sigma_init=3.0)
    items = torch.arange(1, tiny_data.n_items + 1)
    clean = torch.as_tensor(diger.previous_codes)
    hot_code = int(torch.mode(clean[:, 0]).values)
    size = diger.config.codebook_size
    diger.tracker.frequency[0] = 0.5 / (size - 1)
    diger.tracker.frequency[0, hot_code] = 0.5  # > 1.5 / K: over-used
    diger.train_mode(True)
    torch.manual_seed(0)
    out, _, mask = diger.quantize(items)
    assert torch.equal(mask, clean[:, 0] == hot_code)
    assert torch.equal(out.codes[~mask], clean[~mask])  # cold items keep their codes
    assert not torch.equal(out.codes[mask], clean[mask])  # hot items were perturbed
    assert diger.tracker.frequency[0, hot_code] != 0.5  # usage EMA updated
    # what the recommender is fed: codes other than the IDs it decodes, for noised items only
    changed = (out.codes != clean).any(1)
    assert 0 < int(diger.mismatched) == int(changed.sum()) and not changed[~mask].any()
    assert diger.end_epoch(0, tiny_data, None)["input_id_mismatch"] == pytest.approx(
        int(changed.sum()) / len(items)
    )


def test_sdud_noise_scale_falls_as_the_loss_falls():
    sigma = torch.nn.Parameter(torch.tensor(1.0))
    optimizer = torch.optim.SGD([sigma], lr=0.5)
    trace = []
    for gen_loss in (9.0, 6.0, 4.5, 3.5):  # optimum sqrt(L) - 1.7: 1.3, 0.75, 0.42, 0.17
        for _ in range(30):
            optimizer.zero_grad()
            sdud_loss(torch.tensor(gen_loss), sigma, 1.7).backward()
            optimizer.step()
        trace.append(sigma.item())
        assert sigma.item() == pytest.approx(gen_loss**0.5 - 1.7, abs=0.02)
    assert trace == sorted(trace, reverse=True) and trace[0] > trace[-1] + 1


def test_profiles_resolve_and_bad_diger_configs_fail_fast():
    for cls in (LETTER, DIGER):
        for profile in ("smoke", "quick", "paper"):
            build_config(cls, profile, {})
    assert build_config(LETTER, "paper", {}).levels == 4
    assert build_config(DIGER, "paper", {}).tokenizer_lr == 1e-5
    with pytest.raises(ConfigError, match="decay"):
        build_config(DIGER, "smoke", {"decay": "cosine"})
    with pytest.raises(ConfigError, match="rqvae"):
        build_config(DIGER, "smoke", {"tokenizer": "rkmeans"})


def test_letter_and_diger_smoke_runs(tmp_path):
    first = run_batch(
        ["letter", "diger"], results_dir=tmp_path, overrides=["diger.epochs=2"], **SMOKE
    )
    sdud_run = ["decay=sdud", "epochs=2"]
    second = run_batch(["diger"], results_dir=tmp_path, overrides=sdud_run, **SMOKE)
    letter, frqud, sdud = (outcome.record for outcome in first + second)
    for record in (letter, frqud, sdud):
        assert record["status"] == "ok", record.get("traceback")
        sid = record["diagnostics"]["sid"]
        assert 0 < sid["levels"][0]["usage"] <= 1 and sid["invalid_rate"] == 0
    assert any("rqvae-state" in hit for hit in sdud["diagnostics"]["cache_hits"])  # shared init
    for record in (frqud, sdud):
        drift = record["diagnostics"]["sid_drift"]
        assert [entry["epoch"] for entry in drift] == [0, 1]
        assert all(0 <= entry["sid_drift_cumulative"] <= 1 for entry in drift)
        assert len(drift[0]["levels"]) == 3 and "sid_initial" in record["diagnostics"]
        assert [row["sid_drift"] for row in record["curve"]] == [e["sid_drift"] for e in drift]
    assert sdud["curve"][0]["sigma"] != pytest.approx(1.0)  # sigma is learned under SDUD
    assert frqud["curve"][0]["sigma"] == pytest.approx(1.0)


def test_diger_pretrains_tiger_s_rqvae_once_for_both(tmp_path, monkeypatch):
    """DIGER's stage 1 is TIGER's RQ-VAE (same inputs, config, seed): one cache entry."""
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache"))
    tiger = run_batch(["tiger"], results_dir=tmp_path, **SMOKE)[0]
    assert not any(h.startswith("rqvae-state") for h in tiger.record["diagnostics"]["cache_hits"])
    for name in ("diger", "diger+soda"):
        out = run_batch([name], results_dir=tmp_path, **SMOKE)[0]
        assert out.status == "ok", out.record.get("traceback")
        hits = out.record["diagnostics"]["cache_hits"]
        assert any(h.startswith("rqvae-state") for h in hits), (name, hits)
    assert len(list((tmp_path / "cache" / "artifacts" / "rqvae-state").glob("*.pt"))) == 1
