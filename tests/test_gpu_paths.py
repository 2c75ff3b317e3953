"""The GPU path's correctness, checked on the CPU: what would differ or crash on a GPU."""

from __future__ import annotations

import os

import numpy as np
import torch

from models.components.kmeans import squared_distances
from models.components.quantizer import RQVAE, RQVAEConfig
from models.soda import code_logits


def tokenizer(assignment: str) -> tuple[RQVAE, torch.Tensor]:
    torch.manual_seed(0)
    cfg = RQVAEConfig(
        levels=3, codebook_size=64, hidden=(64, 32), latent=16, assignment=assignment, tau=1e-3
    )
    model = RQVAE.from_config(cfg, 48).eval()
    x = torch.randn(2000, 48)
    model.init_codebooks(x[:512], seed=0)
    return model, x


def test_codes_under_bf16_autocast_equal_the_fp32_codes():
    for assignment in ("hard", "soft", "gumbel"):
        model, x = tokenizer(assignment)
        reference = model.encode_codes(x)
        z = model.encode(x).detach()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            inside = model(x).codes.numpy()
            distances = squared_distances(z, model.quantizer.codebooks[0])
            logits = code_logits(z[:, None].expand(-1, 3, -1), model.quantizer.codebooks)
        assert np.array_equal(inside, reference), assignment
        assert distances.dtype == logits.dtype == torch.float32


class DeviceTensor(torch.Tensor):
    """Stands for a CUDA tensor: numpy cannot read it (``np.asarray`` raises)."""

    def __array__(self, *args, **kwargs):
        raise TypeError("can't convert cuda:0 device type tensor to numpy")


def test_encode_codes_reads_device_tensors_without_numpy():
    """DIGER and UniGRec re-derive codes from inputs on the run's device after every epoch;
    this would have caught DIGER's crash after epoch 0 on a GPU."""
    model, x = tokenizer("gumbel")
    codes = model.encode_codes(x.as_subclass(DeviceTensor))
    assert np.array_equal(codes, model.encode_codes(x.numpy()))


def test_recbole_config_leaves_cuda_visible_devices_alone(monkeypatch):
    from models.recbole_compat import build_model

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")

    class Stub:
        def num(self, field):
            return 10

    settings = {"hidden_size": 8, "n_layers": 1, "n_heads": 1, "inner_size": 8, "device": "cpu"}
    settings |= {"train_neg_sample_args": None}
    build_model("SASRec", {**settings, "MAX_ITEM_LIST_LENGTH": 5, "loss_type": "CE"}, Stub())
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"


def test_training_reads_the_device_once_per_epoch_not_once_per_step(tiny_data, monkeypatch):
    """Every ``.item()`` / ``float(tensor)`` / ``int(tensor)`` / ``bool(tensor)`` / ``.tolist()``
    of a device tensor in our training code waits for the GPU; the loop of each semantic-ID
    family (and SODA's statistics) may read once per epoch. (Optimizer internals read CPU-side
    step counters, which never wait for a GPU. Out of this counter's reach: torch ops whose
    output size depends on the data, such as the ``torch.unique`` of DIGER's and UniGRec's
    batches, which wait for the GPU inside torch.)"""
    import traceback

    from tests.conftest import REPO
    from tests.stub_context import StubContext, fitted

    ours = (str(REPO / "models"), str(REPO / "benchmark"))
    # helpers that by contract read host tensors only (batch order, batch width): no GPU wait
    HOST_SIDE = {"length_bucketed_batches", "trim_to_longest"}
    reads: list[str] = []

    def counting(method):
        original = getattr(torch.Tensor, method)

        def counted(self, *args, **kwargs):
            caller = traceback.extract_stack(limit=2)[0]
            if caller.filename.startswith(ours) and caller.name not in HOST_SIDE:
                reads.append(f"{caller.filename}:{caller.lineno}")
            return original(self, *args, **kwargs)

        return counted

    # UniGRec in its joint stage, code distillation on from the first epoch
    for name, extra in (("tiger", {}), ("diger", {}), ("tiger+soda", {}),
                        ("unigrec", {"distill_start_epoch": 0, "finetune_epochs": 0})):  # fmt: skip
        model = fitted(name, tiny_data, batch_size=8, **extra)
        reads.clear()
        with monkeypatch.context() as patch:
            for method in ("item", "__float__", "tolist", "__int__", "__bool__", "__index__"):
                patch.setattr(torch.Tensor, method, counting(method))
            model.train_epochs(tiny_data, StubContext(tiny_data.n_items), epochs=2, patience=5)
        steps = -(-len(tiny_data.train_targets) // 8)
        assert steps >= 10, steps
        assert len(reads) <= 2 * 4, (name, reads)  # a few per epoch, not one per step
