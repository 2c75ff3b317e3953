"""Dropout with a cheaper random mask on CPU.

``nn.Dropout`` on CPU draws its mask with ``bernoulli_`` on a float tensor, and that took 15%
of a TIGER-sized T5 training step on this project's machine (one ``torch.profiler`` run of the
step, batch 256, Beauty histories). :class:`FastDropout` draws 32-bit integers with ``random_``
(the same seeded generator), keeps 15 random bits of each half and compares them with
``p * 2**15``: two mask elements per draw, no float mask. ``scripts/bench_train_throughput.py``
(1 thread) measured the training step at 2.95x plain Hugging Face T5 before it (commit 75c80bb)
and 3.20x after (d744383).

It is the same operation as ``nn.Dropout``: each element is zeroed independently with
probability ``p`` (rounded to a multiple of 2^-15, e.g. 0.1 -> 0.100006) and survivors are
scaled by ``1 / (1 - p)`` (of the rounded ``p``). On other devices, and for ``p`` below 2^-16 or
above 1 - 2^-16, it calls ``F.dropout`` (already fused on GPUs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_BITS = 15
_LOW_15_OF_EACH_HALF = 0x7FFF7FFF


class FastDropout(nn.Module):
    """Drop-in for ``nn.Dropout(p)`` (training mode zeroes, eval mode is the identity)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.threshold = round(p * 2**_BITS)
        # 15 bits cannot express p below 2^-16 or above 1 - 2^-16: torch's dropout does those
        self.exact = 0 < self.threshold < 2**_BITS
        kept = 1.0 - self.threshold / 2**_BITS if self.exact else 1.0 - p
        self.scale = 1.0 / kept  # unbiased for the rounded p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu" or not self.exact:
            return F.dropout(x, self.p, training=True)
        n = x.numel()
        draws = torch.empty((n + 1) // 2, dtype=torch.int32, device=x.device).random_()
        draws &= _LOW_15_OF_EACH_HALF  # both int16 halves uniform on [0, 2**15)
        keep = draws.view(torch.int16)[:n].view(x.shape) >= self.threshold
        mask = keep * self.scale
        return x * (mask if mask.dtype == x.dtype else mask.to(x.dtype))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_fast_dropout(module: nn.Module) -> nn.Module:
    """Replace every ``nn.Dropout`` inside ``module`` by :class:`FastDropout` (in place)."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, FastDropout(child.p))
    return module
