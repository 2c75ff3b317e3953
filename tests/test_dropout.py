import pytest
import torch
from torch import nn

from models.components.dropout import FastDropout, use_fast_dropout
from models.components.seq2seq import T5Spec, build_t5


def test_fast_dropout_zeroes_at_rate_p_and_rescales_survivors():
    torch.manual_seed(0)
    x = torch.ones(1001, 999)  # odd size: the last int32 draw is half used
    y = FastDropout(0.1).train()(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.003
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.9))


def test_fast_dropout_is_identity_in_eval_and_seeded_in_training():
    layer = FastDropout(0.3)
    x = torch.randn(64, 33)
    assert layer.eval()(x) is x
    layer.train()
    torch.manual_seed(5)
    first = layer(x)
    torch.manual_seed(5)
    assert torch.equal(first, layer(x))
    assert not torch.equal(first, layer(x))


def test_fast_dropout_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(0)
    x = torch.randn(50, 20, requires_grad=True)
    y = FastDropout(0.25).train()(x)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.allclose(x.grad, kept.float() / 0.75)


def test_fast_dropout_rejects_invalid_probability():
    with pytest.raises(ValueError, match="dropout probability"):
        FastDropout(1.0)


def test_t5_is_built_with_fast_dropout_everywhere():
    t5 = build_t5(
        T5Spec(num_layers=1, num_decoder_layers=1, d_model=8, d_ff=16, num_heads=2, d_kv=4), 20
    )
    kinds = {type(m) for m in t5.modules()}
    assert FastDropout in kinds and nn.Dropout not in kinds
    assert use_fast_dropout(nn.Sequential(nn.Dropout(0.2)))[0].p == 0.2


@pytest.mark.parametrize("p", [1e-6, 0.99999])
def test_probabilities_15_bits_cannot_express_fall_back_to_torch(p):
    torch.manual_seed(0)
    y = FastDropout(p).train()(torch.ones(4000))
    assert abs((y == 0).float().mean().item() - p) < 0.01
    assert torch.isfinite(y).all() and y.max() <= 1 / (1 - p) * 1.0001


def test_fast_dropout_keeps_the_input_dtype():
    assert FastDropout(0.1).train()(torch.ones(10, dtype=torch.bfloat16)).dtype == torch.bfloat16
