"""Shallow fusion with a language model through the step protocol (Gulcehre et al. 2015).

Beam search ranks the candidates of every step by

    score(c | h) = log p_model(c | h, x) + beta * log p_LM(c | h)

where the language model was trained on text alone, over the same output units
(``units_from`` in its config). It knows which spellings and word sequences are
likely, which an acoustic model trained on a few hours of speech cannot learn
from its transcripts. ``beta`` (``lm_weight``) is tuned on dev data: too large
and the search prefers short, frequent outputs.

:class:`ShallowFusion` wraps any step model (also :class:`~attnrnn.decoding.ctc.JointCTCAttention`)
and is itself a step model, like that one: search code stays unaware of the
language model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from attnrnn.decoding.protocol import reorder


class LanguageModelStep(Protocol):
    """A left-to-right language model, one token at a time."""

    def step(self, previous_tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """(N, V) log-probabilities of the next token and the new state (``state`` None:
        the empty prefix; the state has ``select(indices)``)."""
        ...


@dataclass
class FusionState:
    """The wrapped model's state and the language model's (None before the first step)."""

    model: Any
    language_model: Any

    def select(self, indices: torch.Tensor) -> FusionState:
        chosen = None if self.language_model is None else self.language_model.select(indices)
        return FusionState(self.model.select(indices), chosen)

    def reorder(self, indices: torch.Tensor, sources: torch.Tensor | None) -> FusionState:
        chosen = None if self.language_model is None else self.language_model.select(indices)
        return FusionState(reorder(self.model, indices, sources), chosen)


class ShallowFusion:
    """A step model scoring ``model log-probs + weight * language-model log-probs``.

    Args:
        model: any step model (its ``bos_index``, ``eos_index`` and ``pad_index`` are
            this one's).
        language_model: a :class:`LanguageModelStep` over the same vocabulary, trained
            with ``<s>`` before and ``</s>`` after every text, so that it scores the
            first token and the end of the output too.
        weight: beta >= 0.
    """

    def __init__(self, model: Any, language_model: LanguageModelStep, weight: float) -> None:
        if weight < 0.0:
            raise ValueError(f"the language-model weight must be >= 0, got {weight}")
        self.model = model
        self.language_model = language_model
        self.weight = weight
        self.bos_index, self.eos_index, self.pad_index = (
            model.bos_index,
            model.eos_index,
            model.pad_index,
        )

    def init_state(self, encoded: Any) -> FusionState:
        return FusionState(self.model.init_state(encoded), None)

    def step(
        self, prev_tokens: torch.Tensor, state: FusionState
    ) -> tuple[torch.Tensor, FusionState, torch.Tensor]:
        log_probs, model_state, attention = self.model.step(prev_tokens, state.model)
        lm_log_probs, lm_state = self.language_model.step(prev_tokens, state.language_model)
        scores = log_probs + self.weight * lm_log_probs.to(log_probs.dtype)  # (N, V)
        return scores, FusionState(model_state, lm_state), attention
