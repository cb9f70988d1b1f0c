"""Shallow fusion: the search scores are the model's plus beta times the language
model's, with both states carried through the beam's reorderings."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from attnrnn.decoding import SearchConfig, search
from attnrnn.decoding.fusion import ShallowFusion

PAD, EOS, BOS = 0, 1, 2  # tokens 3 .. V-1 are words
V = 6


def table(*shape: int, seed: int) -> torch.Tensor:
    """Random log-probability tables over the V next tokens; PAD and BOS impossible."""
    generator = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(*shape, V, generator=generator, dtype=torch.float64)
    logits[..., PAD] = logits[..., BOS] = float("-inf")
    return logits.log_softmax(-1)


@dataclass
class Rows:
    values: torch.Tensor  # (N,)

    def select(self, indices: torch.Tensor) -> Rows:
        return Rows(self.values[indices])


class PositionModel:
    """A decoder whose next-token log-probabilities depend on the step and the source
    (B sources, 4 steps at most)."""

    bos_index, eos_index, pad_index = BOS, EOS, PAD

    def __init__(self, sources: int) -> None:
        self.log_probs = table(sources, 5, V, seed=1)  # (B, step, prev, next)

    def init_state(self, encoded: torch.Tensor) -> StepState:
        return StepState(torch.arange(encoded.size(0)), torch.zeros(encoded.size(0)).long())

    def step(self, prev_tokens, state):
        log_probs = self.log_probs[state.source, state.step.clamp(max=4), prev_tokens]
        return log_probs, state.advanced(), torch.ones(prev_tokens.size(0), 3) / 3


@dataclass
class StepState:
    source: torch.Tensor  # (N,)
    step: torch.Tensor  # (N,)

    def select(self, indices: torch.Tensor) -> StepState:
        return StepState(self.source[indices], self.step[indices])

    def advanced(self) -> StepState:
        return StepState(self.source, self.step + 1)


class PrefixLanguageModel:
    """A language model whose prediction depends on the whole prefix (the sum of its
    tokens mod 3) and the previous token: a state selected wrongly changes its scores."""

    def __init__(self) -> None:
        self.log_probs = table(3, V, seed=2)  # (prefix class, prev, next)
        self.calls = 0

    def step(self, previous_tokens, state):
        self.calls += 1
        total = torch.zeros_like(previous_tokens) if state is None else state.values
        total = total + previous_tokens
        return self.log_probs[total % 3, previous_tokens], Rows(total)


def walk(model: PositionModel, language_model: PrefixLanguageModel, source: int, hypothesis, beta):
    """The fused log-probability of BOS tokens (EOS, when the search produced it, and not
    the length limit ended the hypothesis), one step at a time."""
    score, total, previous = 0.0, 0, BOS
    ended = hypothesis.attention.size(0) > len(hypothesis.tokens)
    for step, token in enumerate(hypothesis.tokens + ([EOS] if ended else [])):
        total += previous
        score += float(model.log_probs[source, min(step, 4), previous, token])
        score += beta * float(language_model.log_probs[total % 3, previous, token])
        previous = token
    return score


@pytest.mark.parametrize("beam", [1, 3, 5])
@pytest.mark.parametrize("beta", [0.0, 0.5, 2.0])
def test_search_scores_are_model_plus_beta_language_model(beam, beta):
    model, language_model = PositionModel(sources=2), PrefixLanguageModel()
    fused = ShallowFusion(model, language_model, beta)
    config = SearchConfig(
        beam_size=beam, n_best=beam, length_penalty=0.0, max_length_ratio=1.0, max_length_offset=1
    )
    encoded = torch.zeros(2, 3)
    results = search(fused, fused.init_state(encoded), torch.tensor([3, 2]), config)
    assert language_model.calls > 0
    endings = set()
    for source, n_best in enumerate(results):
        assert len(n_best) == beam
        for hypothesis in n_best:
            expected = walk(model, language_model, source, hypothesis, beta)
            assert hypothesis.score == pytest.approx(expected, abs=1e-9)
            endings.add(hypothesis.attention.size(0) > len(hypothesis.tokens))
    if beam > 1:
        assert endings == {True, False}  # ended by EOS and by the length limit


def test_weight_zero_searches_like_the_model_alone():
    model = PositionModel(sources=2)
    fused = ShallowFusion(model, PrefixLanguageModel(), 0.0)
    config = SearchConfig(beam_size=4, n_best=4, length_penalty=0.0)
    encoded, lengths = torch.zeros(2, 3), torch.tensor([3, 2])
    alone = search(model, model.init_state(encoded), lengths, config)
    together = search(fused, fused.init_state(encoded), lengths, config)
    assert [[h.tokens for h in n_best] for n_best in alone] == [
        [h.tokens for h in n_best] for n_best in together
    ]


def test_a_strong_language_model_changes_the_output():
    model, language_model = PositionModel(sources=1), PrefixLanguageModel()
    language_model.log_probs[...] = float("-inf")
    language_model.log_probs[:, :, 3] = 0.0  # always word 3 ...
    language_model.log_probs[:, 3, EOS] = 0.0  # ... then the end
    fused = ShallowFusion(model, language_model, 50.0)
    config = SearchConfig(beam_size=3, length_penalty=0.0)
    (best,) = search(fused, fused.init_state(torch.zeros(1, 3)), torch.tensor([3]), config)[0]
    assert best.tokens[0] == 3


def test_negative_weight_is_refused():
    with pytest.raises(ValueError, match="must be >= 0"):
        ShallowFusion(PositionModel(1), PrefixLanguageModel(), -0.1)
