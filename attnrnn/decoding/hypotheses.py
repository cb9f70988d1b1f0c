"""The bookkeeping shared by greedy and beam search (:mod:`attnrnn.decoding.greedy`,
:mod:`attnrnn.decoding.beam`): both use exactly these pieces, so beam search with
K = 1 gives exactly the tokens and scores of greedy search.

- :func:`allowed_log_probs`: the constraints (no padding token, no EOS before
  ``min_length`` tokens, no repeated n-gram, :func:`repeated_ngram_mask`);
- :class:`Prefixes`: the tokens and attention every row has produced so far;
- :class:`FinishedHypotheses`: finished outputs, scored with the GNMT length
  and coverage penalties (:func:`score_hypothesis`, :func:`length_penalty`,
  :func:`coverage_penalty`).

None of it looks inside the model or its state: the model appears only as the
holder of its special token ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnrnn.decoding.protocol import Hypothesis, SearchConfig, StepModel

# A source position that was never attended has coverage 0 and log(0) = -inf;
# its coverage is clamped to this floor, so it costs beta * log(1e-6) ~ -13.8 beta.
COVERAGE_FLOOR = 1e-6


# --------------------------------------------------------------------------- scoring


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty ``((5 + length) / 6) ** alpha``; ``length`` counts EOS when produced."""
    return ((5.0 + length) / 6.0) ** alpha


def coverage_penalty(attention: torch.Tensor, beta: float) -> float:
    """GNMT coverage term ``beta * sum_s log(min(sum_t a_ts, 1))`` (<= 0).

    Args:
        attention: (T, S_i) attention of every output step over the valid
            source positions only (padding already cropped).
    """
    if beta == 0.0:
        return 0.0
    coverage = attention.sum(dim=0).clamp(min=COVERAGE_FLOOR, max=1.0)  # (S_i,)
    return beta * float(coverage.log().sum())


def score_hypothesis(
    tokens: list[int], log_prob: float, attention: torch.Tensor, config: SearchConfig
) -> Hypothesis:
    """A finished output with its search score ``log_prob / lp(T) + coverage``.

    Args:
        tokens: output tokens without EOS.
        log_prob: their total raw log-probability (with EOS when produced).
        attention: (T, S_i), one row per output step; T (tokens + EOS when
            produced) is the length the penalty counts.
    """
    length = attention.size(0)
    score = log_prob / length_penalty(length, config.length_penalty)
    score += coverage_penalty(attention, config.coverage_penalty)
    return Hypothesis(tokens=tokens, score=score, log_prob=log_prob, attention=attention)


# --------------------------------------------------------------------------- constraints


def allowed_log_probs(
    log_probs: torch.Tensor, prefixes: torch.Tensor, config: SearchConfig, model: StepModel
) -> torch.Tensor:
    """``log_probs`` with every forbidden next token set to -inf, in place (a step's
    log-probabilities are the search's to change; a full copy of (N, V) every step had
    cost a tenth of beam search).

    Forbidden: the padding and BOS tokens (never outputs, unless one doubles
    as EOS); EOS while fewer than ``min_length`` tokens were produced; any
    token that would complete an n-gram already in the prefix
    (``no_repeat_ngram_size``).

    Args:
        log_probs: (N, V) next-token log-probabilities.
        prefixes: (N, L) output tokens so far (BOS excluded), L the same for all rows.
    """
    for special in (model.pad_index, model.bos_index):
        if special != model.eos_index:
            log_probs[:, special] = float("-inf")
    if prefixes.size(1) < config.min_length:
        log_probs[:, model.eos_index] = float("-inf")
    if config.no_repeat_ngram_size > 0:
        banned = repeated_ngram_mask(prefixes, config.no_repeat_ngram_size, log_probs.size(1))
        log_probs.masked_fill_(banned, float("-inf"))
    return log_probs


def repeated_ngram_mask(prefixes: torch.Tensor, size: int, vocab_size: int) -> torch.Tensor:
    """(N, V) True on the tokens that would repeat an n-gram of ``prefixes`` (N, L).

    The next n-gram is the last ``size - 1`` tokens plus the next token; every
    earlier n-gram whose first ``size - 1`` tokens match bans its last token.
    """
    rows, length = prefixes.shape
    banned = torch.zeros(rows, vocab_size, dtype=torch.long, device=prefixes.device)  # (N, V)
    if length < size:
        return banned.bool()
    ngrams = prefixes.unfold(1, size, 1)  # (N, L - size + 1, size)
    context = prefixes[:, length - size + 1 :].unsqueeze(1)  # (N, 1, size - 1)
    matches = (ngrams[:, :, :-1] == context).all(dim=2)  # (N, L - size + 1)
    banned.scatter_add_(1, ngrams[:, :, -1], matches.long())  # (N, V) hits per token
    return banned > 0


# --------------------------------------------------------------------------- bookkeeping


@dataclass
class Prefixes:
    """What every row has produced so far.

    tokens: (N, t) output tokens (BOS excluded; the last may be EOS).
    attention: (N, t, S) attention of each of those steps; None before the first.
    """

    tokens: torch.Tensor
    attention: torch.Tensor | None = None

    @classmethod
    def empty(cls, rows: int, device: torch.device) -> Prefixes:
        return cls(torch.zeros(rows, 0, dtype=torch.long, device=device))

    def last_tokens(self, bos_index: int) -> torch.Tensor:
        """(N,) the tokens to feed the next step: BOS before the first."""
        if self.tokens.size(1) == 0:
            rows = self.tokens.size(0)
            return torch.full((rows,), bos_index, dtype=torch.long, device=self.tokens.device)
        return self.tokens[:, -1]

    def select(self, rows: torch.Tensor) -> Prefixes:
        """The prefixes of ``rows`` (N',), in that order."""
        attention = None if self.attention is None else self.attention[rows]  # (N', t, S)
        return Prefixes(self.tokens[rows], attention)

    def extend(self, tokens: torch.Tensor, attention: torch.Tensor) -> Prefixes:
        """Append one step: ``tokens`` (N,) and its ``attention`` (N, S)."""
        new_tokens = torch.cat([self.tokens, tokens.unsqueeze(1)], dim=1)  # (N, t + 1)
        step = attention.unsqueeze(1)  # (N, 1, S)
        if self.attention is not None:
            step = torch.cat([self.attention, step], dim=1)  # (N, t + 1, S)
        return Prefixes(new_tokens, step)


class FinishedHypotheses:
    """The finished hypotheses of every source, scored as they finish."""

    def __init__(self, config: SearchConfig, eos_index: int, source_lengths: list[int]) -> None:
        self.config = config
        self.eos_index = eos_index
        self.source_lengths = source_lengths
        self.hypotheses: list[list[Hypothesis]] = [[] for _ in source_lengths]

    def add(self, sources: list[int], prefixes: Prefixes, log_probs: list[float]) -> None:
        """Finish row j of ``prefixes`` as an output of source ``sources[j]``.

        A trailing EOS is dropped from the tokens but its attention row is kept;
        attention is cropped to the source's valid positions (S_i).
        """
        assert prefixes.attention is not None, "finish rows only after a step"
        rows = zip(sources, prefixes.tokens.tolist(), log_probs, strict=True)
        for row, (source, tokens, log_prob) in enumerate(rows):
            if tokens and tokens[-1] == self.eos_index:
                tokens = tokens[:-1]
            length = self.source_lengths[source]
            attention = prefixes.attention[row, :, :length].clone()  # (T, S_i)
            self.hypotheses[source].append(
                score_hypothesis(tokens, log_prob, attention, self.config)
            )

    def best(self, count: int) -> list[list[Hypothesis]]:
        """The ``count`` best hypotheses of every source, best first (ties: finished first)."""
        return [
            sorted(hypotheses, key=lambda hypothesis: hypothesis.score, reverse=True)[:count]
            for hypotheses in self.hypotheses
        ]
