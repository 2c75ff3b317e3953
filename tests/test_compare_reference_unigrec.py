"""scripts/compare_reference_unigrec.py: the parts that need neither the authors' code nor a run."""

from __future__ import annotations

import argparse

import pytest
import torch

from models.components.quantizer import RQVAE, RQVAEConfig
from scripts import compare_reference_unigrec as cu


def test_their_rqvae_state_renames_every_weight_onto_their_layout():
    """Linear i of our MLPs sits at index 2i (Linear, ReLU); theirs at 3i + 1 (Dropout,
    Linear, ReLU); our [L, K, d] codebooks become one embedding table per level."""
    cfg = RQVAEConfig(levels=3, codebook_size=16, hidden=(32, 16), latent=8)
    ours = RQVAE.from_config(cfg, 24).state_dict()
    theirs = cu.their_rqvae_state(ours)
    assert theirs["encoder.mlp_layers.1.weight"].shape == (32, 24)
    assert theirs["encoder.mlp_layers.7.weight"].shape == (8, 16)
    assert theirs["decoder.mlp_layers.1.weight"].shape == (16, 8)
    assert theirs["decoder.mlp_layers.7.bias"].shape == (24,)
    for level in range(3):
        book = theirs[f"rq.vq_layers.{level}.embedding.weight"]
        assert (book == ours["quantizer.codebooks"][level].numpy()).all()
    assert len(theirs) == 2 * 2 * 3 + 3  # 3 linears x (weight, bias) per MLP, 3 codebooks


def test_their_rqvae_state_refuses_a_weight_it_cannot_place():
    with pytest.raises(SystemExit, match="no place for 'quantizer.scale'"):
        cu.their_rqvae_state({"quantizer.scale": torch.ones(1)})


def _settings(joint=12, finetune=4, batch=327, pairs=38543):
    args = argparse.Namespace(
        tokenizer_seed=0, batch_size=batch, joint_epochs=joint, finetune_epochs=finetune
    )
    return cu.shared_settings(args, pairs)


def test_warmup_is_their_int_of_ten_percent_and_finetuning_gets_the_same_steps():
    s = _settings()
    steps = -(-38543 // 327)
    assert s["warmup_steps"] == int(0.1 * 12 * steps) == 141
    # their finetune warmup: int(ratio x finetune steps) must give ours (re-warmed per stage)
    assert int(s["finetune_warmup_ratio"] * 4 * steps) == s["warmup_steps"]
    assert 4905 % s["batch_size"] == 0  # full eval batches: mean of batch means = user mean


def test_our_overrides_train_without_early_stop_and_with_the_shared_tokenizer():
    o = cu.our_overrides(_settings())
    assert o["patience"] == o["epochs"] == 12 and o["finetune_patience"] == 4
    assert o["tokenizer_seed"] == 0 and o["codebook_size"] == 256
    assert o["rq_hidden"] == "512,256,128" and o["lr_schedule"] == "constant"


LOG = """0.5\tLoading RQVAE
10.0\tInitial validation performance:
10.0\t  Recall@10: 0.0000  NDCG@10: 0.0000
10.1\t[Epoch 1] Joint training
20.0\tEpoch 1/2: 100%|##########| 3/3
50.0\t  Total Loss: 3.9368 (train time: 40.00s)
55.0\tEvaluating:  50%|#####     | 1/2
60.0\t    Recall@10: 0.0100  NDCG@10: 0.0050
60.0\t  Epoch wall time: 50.00s
60.1\t[Epoch 2] Joint training
90.0\t  Total Loss: 3.0000 (train time: 30.00s)
99.0\t    Recall@10: 0.0200  NDCG@10: 0.0100
99.0\t  Epoch wall time: 39.00s
99.5\tBest model performance on test set:
99.5\t  Recall@10: 0.0150  NDCG@10: 0.0070
100.0\t[Finetune Epoch 1/2]
120.0\t  Total Loss: 2.5000 (train time: 20.00s)
125.0\t  [Epoch 1] Val Results:
125.0\t    Recall@10: 0.0300  NDCG@10: 0.0150
125.0\t  Epoch wall time: 25.00s
125.1\t[Finetune Epoch 2/2]
145.0\t  Total Loss: 2.4000 (train time: 19.00s)
150.0\t    Recall@10: 0.0300  NDCG@10: 0.0150
150.0\t  Epoch wall time: 24.00s
150.5\t[Finetune] Evaluating best model on test set...
151.0\tEvaluating: 100%|##########| 2/2
157.5\tBest finetune model performance on test set:
157.5\t  Recall@10: 0.0250  NDCG@10: 0.0125
158.0\tFinetune stage completed!
"""


def test_reference_log_gives_the_curve_the_final_test_and_the_times():
    result = cu.parse_reference_log(LOG, {"joint_epochs": 2})
    curve = result["curve"]
    assert [e["epoch"] for e in curve] == [0, 1, 2, 3]
    assert [e["stage"] for e in curve] == ["joint", "joint", "finetune", "finetune"]
    assert curve[0]["recall@10"] == 0.01 and curve[0]["train_seconds"] == 40.0
    assert curve[0]["valid_seconds"] == pytest.approx(10.0)
    assert result["joint_test"]["ndcg@10"] == 0.007
    assert result["test"] == {"recall@10": 0.025, "ndcg@10": 0.0125}
    assert result["best_epoch"] == 2  # the first of two equal fine-tuning epochs (strict >)
    assert result["test_seconds"] == pytest.approx(7.0)  # from the line before the bars


def test_a_log_without_the_final_test_is_an_error():
    cut = LOG.split("150.5")[0]
    with pytest.raises(SystemExit, match="no fine-tuned test result"):
        cu.parse_reference_log(cut, {"joint_epochs": 2})


def test_patches_refuse_a_changed_checkout(tmp_path):
    ref = tmp_path / "ref"
    (ref / "model").mkdir(parents=True)
    (ref / "model" / "train.py").write_text("print('changed')\n")
    with pytest.raises(SystemExit, match="train.py.*expected one"):
        cu.patched_copy(ref, tmp_path / "work" / "UniGRec")
