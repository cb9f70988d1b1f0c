"""Dropout with a cheaper mask on the CPU.

``nn.Dropout`` on the CPU draws one Bernoulli sample per element from a
float (about 8 ms per million elements on one core of the development
machine); the Multi30k model drops out some five million elements per
training step, a few percent of the step. Here one 64-bit draw of the
generator gives four 15-bit uniform numbers, and an element is dropped when
its number is below ``round(p * 2**15)`` (about 1.5 ms per million). The
drop probability is therefore ``p`` rounded to a multiple of 1/32768, and the
kept elements are scaled by ``1 / (1 - that probability)``, so the layer stays
unbiased. Other devices use ``F.dropout``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_LEVELS = 1 << 15


def dropout_keep_mask(
    shape: torch.Size | tuple[int, ...], p: float, device: torch.device | None = None
) -> tuple[torch.Tensor, float]:
    """A bool mask of ``shape``, True where an element is kept, and the drop
    probability it was drawn with (``p`` rounded to a multiple of 2**-15)."""
    count = 1
    for size in shape:
        count *= size
    threshold = round(p * _LEVELS)
    draws = torch.empty((count + 3) // 4, dtype=torch.int64, device=device).random_()
    numbers = draws.view(torch.int16)[:count].bitwise_and_(_LEVELS - 1)  # 15-bit uniform
    return numbers.ge(threshold).view(shape), threshold / _LEVELS


def dropout(inputs: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(inputs, p, training)`` with the cheaper mask on the CPU."""
    if not training or p == 0.0:
        return inputs
    if inputs.device.type != "cpu" or p >= 1.0 or not inputs.is_floating_point():
        return F.dropout(inputs, p, training)
    keep, dropped = dropout_keep_mask(inputs.shape, p, inputs.device)
    return inputs * keep.to(inputs.dtype).mul_(1.0 / (1.0 - dropped))


class Dropout(nn.Module):
    """``nn.Dropout`` (same argument, no parameters) with :func:`dropout`."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return dropout(inputs, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
