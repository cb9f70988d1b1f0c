"""An exponential moving average of the weights (``trainer.ema_decay``).

The weights an optimizer reaches jitter from update to update; their running average
sits nearer the middle of the valley the updates wander in, and on small or noisy data
scores a few tenths better on dev and test than the last weights (Polyak averaging;
the "EMA" of the weights that image and speech recipes keep). With ``ema_decay`` d, after
every update::

    average <- average + (1 - d_t) * (weights - average),   d_t = min(d, (1 + t) / (10 + t))

where t is the update count: early on (t small) the average follows the weights
closely, instead of remembering the random initialisation for thousands of updates.
Dev checks score the averaged weights, so the ``best`` checkpoint holds them (and
prediction, evaluation and export use them); training goes on from the live weights,
and the ``last`` checkpoint keeps both, so a resumed run continues exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

PREFIX = "average."  # of the averaged weights among a checkpoint's training tensors


class WeightAverage:
    """The moving average of ``model``'s floating-point parameters (its buffers, such as
    running statistics, are not averaged)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must lie in (0, 1), got {decay}")
        self.decay = decay
        named = [(name, p) for name, p in model.named_parameters() if p.is_floating_point()]
        self.names = [name for name, _ in named]
        self.parameters = [p for _, p in named]
        self.average = [p.detach().clone() for p in self.parameters]

    def decay_at(self, step: int) -> float:
        """d_t after update ``step`` (1, 2, ...)."""
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Move the average towards the weights after update ``step``."""
        weights = [p.detach() for p in self.parameters]
        torch._foreach_lerp_(self.average, weights, 1.0 - self.decay_at(step))

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own after."""
        with torch.no_grad():
            live = [p.detach().clone() for p in self.parameters]
            for p, average in zip(self.parameters, self.average, strict=True):
                p.copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, weights in zip(self.parameters, live, strict=True):
                    p.copy_(weights)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The average as named CPU tensors, for a checkpoint."""
        return {
            PREFIX + name: average.detach().to("cpu", copy=True).contiguous()
            for name, average in zip(self.names, self.average, strict=True)
        }

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        """Take the average from a checkpoint's ``tensors``; when the checkpoint has none
        (a run trained without averaging), start it from the current weights."""
        if not any(key.startswith(PREFIX) for key in tensors):
            self.average = [p.detach().clone() for p in self.parameters]
            return
        with torch.no_grad():
            for name, average in zip(self.names, self.average, strict=True):
                average.copy_(tensors[PREFIX + name])
