"""The small protocol every search algorithm talks to.

Search code (greedy, beam, and later CTC prefix scoring) only ever asks a
model for the next step and reorders the model's state by beam index; it never
looks inside the state or branches on the model type::

    state = model.init_state(encoder_output)          # batch of B sources
    log_probs, state, attention = model.step(prev_tokens, state)
    state = state.select(indices)                      # reorder / expand / shrink rows

    prev_tokens: (N,) long, the token chosen at the previous step (BOS at first)
    log_probs:   (N, V) log-probabilities of the next token
    attention:   (N, S) attention weights of this step over the source
    indices:     (N',) long, rows of the state to keep, in their new order

N is the number of rows the state holds: B at first, B x K once beam search
has expanded every source into K hypotheses, fewer once finished sources are
dropped. The state is a bag of tensors whose first dimension is N, so it can
be exported step by step (ONNX) and reordered with one ``index_select``.

Part of a state depends only on the source (the encoder's memory, its projected
keys and mask: the largest tensors), and a beam step that finishes no source
moves every row within its own source. A state may therefore offer
``state.reorder(indices, sources)`` (see :func:`reorder`), which leaves those
tensors as they are when ``sources`` is None and otherwise takes them from the
rows ``sources``; search calls it through :func:`reorder`, which falls back to
``select``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import torch

from attnrnn.config import check_non_negative, check_positive
from attnrnn.errors import ConfigError

StateT = TypeVar("StateT", bound="DecoderState")


class DecoderState(Protocol):
    """A decoder's state between steps: every tensor's first dimension is the row."""

    def select(self: StateT, indices: torch.Tensor) -> StateT:
        """The state of rows ``indices`` (N',), in that order (rows may repeat)."""
        ...


def reorder(state: Any, indices: torch.Tensor, sources: torch.Tensor | None) -> Any:
    """``state.select(indices)``, where the source-only tensors of row j come from row
    ``sources[j]`` (a row of the same source as ``indices[j]``) or, when ``sources`` is
    None, stay as they are (every row keeps its source): through ``state.reorder`` when
    the state has it."""
    method = getattr(state, "reorder", None)
    return state.select(indices) if method is None else method(indices, sources)


class StepModel(Protocol):
    """What a model offers to search: special tokens, the first state and one step."""

    bos_index: int
    eos_index: int
    pad_index: int

    def init_state(self, encoder_output: Any) -> Any:
        """The decoder state for a batch of B encoded sources."""
        ...

    def step(self, prev_tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """``(log_probs (N, V), new state, attention (N, S))`` for ``prev_tokens`` (N,)."""
        ...


@dataclass(frozen=True)
class SearchConfig:
    """How to decode.

    beam_size: K; 1 is greedy search.
    n_best: hypotheses returned per source (<= beam_size).
    length_penalty: GNMT alpha; scores are ``log P / ((5 + |y|) / 6) ** alpha``
        (0 = raw log-probability).
    coverage_penalty: GNMT beta; adds ``beta * sum_s log(min(sum_t a_ts, 1))``
        (0 = off).
    max_length_ratio, max_length_offset: at most ``ratio * |x| + offset``
        output tokens, EOS not counted.
    min_length: EOS is forbidden before this many output tokens.
    no_repeat_ngram_size: an n-gram is never produced twice in one output
        (0 = off).
    """

    beam_size: int = 5
    n_best: int = 1
    length_penalty: float = 1.0
    coverage_penalty: float = 0.0
    max_length_ratio: float = 1.5
    max_length_offset: int = 10
    min_length: int = 1
    no_repeat_ngram_size: int = 0

    def __post_init__(self) -> None:
        check_positive(self, "beam_size", "n_best", "max_length_ratio")
        check_non_negative(
            self,
            "length_penalty",
            "coverage_penalty",
            "max_length_offset",
            "min_length",
            "no_repeat_ngram_size",
        )
        if self.n_best > self.beam_size:
            raise ConfigError(f"n_best ({self.n_best}) cannot exceed beam_size ({self.beam_size})")


@dataclass
class Hypothesis:
    """One decoded output.

    tokens: output token ids, without BOS and EOS.
    score: the search score (length- and coverage-penalised log-probability).
    log_prob: the model's total log-probability of ``tokens`` + EOS.
    attention: (len(tokens) + 1, S) attention of every output step (the
        last row is the step that produced EOS, when it was produced).
    """

    tokens: list[int]
    score: float
    log_prob: float
    attention: torch.Tensor = field(repr=False)


def max_output_lengths(source_lengths: torch.Tensor, config: SearchConfig) -> list[int]:
    """The most output tokens each source may get (B,), EOS not counted."""
    limits = source_lengths.float() * config.max_length_ratio + config.max_length_offset
    return [max(int(limit), 1) for limit in limits.tolist()]
