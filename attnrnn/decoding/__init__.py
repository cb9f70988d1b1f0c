"""Search over the step protocol of :mod:`attnrnn.decoding.protocol`.

``search(model, state, source_lengths, config)`` returns, for each of the B
sources, its ``config.n_best`` best :class:`Hypothesis` (best first): greedy
search when ``config.beam_size`` is 1, beam search otherwise. Both keep their
hypotheses with the bookkeeping of :mod:`attnrnn.decoding.hypotheses`.
"""

from __future__ import annotations

from typing import Any

import torch

from attnrnn.decoding.beam import beam_search
from attnrnn.decoding.greedy import greedy_search
from attnrnn.decoding.protocol import Hypothesis, SearchConfig, StepModel

__all__ = ["Hypothesis", "SearchConfig", "beam_search", "greedy_search", "search"]


def search(
    model: StepModel, state: Any, source_lengths: torch.Tensor, config: SearchConfig
) -> list[list[Hypothesis]]:
    """Decode B sources: greedy when ``config.beam_size`` is 1 (same result, fewer rows).

    Args:
        model: anything following :class:`~attnrnn.decoding.protocol.StepModel`.
        state: the model's state for the B sources.
        source_lengths: (B,) valid source positions, on the model's device.
        config: the search settings.

    Returns:
        B lists of up to ``config.n_best`` hypotheses, best first.
    """
    if config.beam_size == 1:
        return greedy_search(model, state, source_lengths, config)
    return beam_search(model, state, source_lengths, config)
