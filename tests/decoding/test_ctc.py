"""CTC prefix scores against brute-force enumeration, and joint decoding through search."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from attnrnn.decoding import SearchConfig, search
from attnrnn.decoding.ctc import CTCPrefixScorer, JointCTCAttention

BLANK, EOS = 0, 1  # labels 2 .. V-1


def sequence_probability(log_probs: torch.Tensor, labels: tuple[int, ...]) -> float:
    """P(labels | x) by PyTorch's CTC loss; log_probs (T, V)."""
    T = log_probs.size(0)
    if not labels:
        return math.exp(float(log_probs[:, BLANK].sum()))
    loss = F.ctc_loss(
        log_probs.unsqueeze(1).double(),
        torch.tensor([labels]),
        torch.tensor([T]),
        torch.tensor([len(labels)]),
        blank=BLANK,
        reduction="sum",
        zero_infinity=False,
    )
    return math.exp(-float(loss))


def brute_force_prefix(log_probs: torch.Tensor, prefix: tuple[int, ...], labels: list[int]):
    """Sum of P(y) over every label sequence y (length <= T) that starts with ``prefix``."""
    T = log_probs.size(0)
    total = 0.0
    for length in range(len(prefix), T + 1):
        for rest in itertools.product(labels, repeat=length - len(prefix)):
            total += sequence_probability(log_probs, prefix + rest)
    return total


def random_posteriors(T: int, V: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(T, V, generator=generator, dtype=torch.float64) * 2
    logits[:, EOS] = -1e9  # EOS is not a CTC label
    return logits.log_softmax(dim=-1)


def test_all_sequences_sum_to_one():
    log_probs = random_posteriors(4, 4, seed=0)
    labels = [2, 3]
    assert brute_force_prefix(log_probs, (), labels) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prefix_scores_match_brute_force(seed):
    T, V = 5, 4
    labels = [2, 3]
    log_probs = random_posteriors(T, V, seed)
    scorer = CTCPrefixScorer(BLANK, EOS)
    state = scorer.initial_state(log_probs.unsqueeze(0), torch.tensor([T]))
    prefix: tuple[int, ...] = ()
    for token in (2, 2, 3):  # includes a repeated label
        scores, state = scorer.score(state)
        log_psi_prefix = math.log(brute_force_prefix(log_probs, prefix, labels))
        for candidate in labels:
            expected = math.log(brute_force_prefix(log_probs, (*prefix, candidate), labels))
            assert float(scores[0, candidate]) + log_psi_prefix == pytest.approx(expected, abs=1e-8)
        whole = math.log(sequence_probability(log_probs, prefix))
        assert float(scores[0, EOS]) + log_psi_prefix == pytest.approx(whole, abs=1e-8)
        assert scores[0, BLANK] == float("-inf")
        state = scorer.advance(state, torch.tensor([token]))
        prefix = (*prefix, token)


def test_padded_frames_are_ignored():
    T, V = 5, 4
    log_probs = random_posteriors(T, V, seed=3)
    padded = torch.cat([log_probs, random_posteriors(3, V, seed=4)])  # 3 frames of junk
    scorer = CTCPrefixScorer(BLANK, EOS)
    batch = torch.stack([padded, torch.cat([log_probs, log_probs[:3]])])  # (2, 8, V)
    state = scorer.initial_state(batch, torch.tensor([T, T]))
    expected_state = scorer.initial_state(log_probs.unsqueeze(0), torch.tensor([T]))
    for token in (3, 2):
        scores, state = scorer.score(state)
        expected, expected_state = scorer.score(expected_state)
        torch.testing.assert_close(scores[0], expected[0])
        torch.testing.assert_close(scores[1], expected[0])
        state = scorer.advance(state, torch.tensor([token, token]))
        expected_state = scorer.advance(expected_state, torch.tensor([token]))


@dataclass
class UniformState:
    rows: torch.Tensor  # (N,)

    def select(self, indices: torch.Tensor) -> UniformState:
        return UniformState(self.rows[indices])


class UniformModel:
    """An attention model with no opinion: every token equally likely."""

    bos_index, eos_index, pad_index = 4, EOS, BLANK

    def __init__(self, vocab_size: int, source_length: int) -> None:
        self.vocab_size, self.source_length = vocab_size, source_length

    def init_state(self, encoded: torch.Tensor) -> UniformState:
        return UniformState(torch.arange(encoded.size(0)))

    def step(self, prev_tokens, state):
        N = prev_tokens.size(0)
        log_probs = torch.full((N, self.vocab_size), -math.log(self.vocab_size))
        return log_probs, state, torch.full((N, self.source_length), 1 / self.source_length)


def test_ctc_alone_decodes_the_frame_labels():
    """With weight 1 joint decoding follows CTC: frames say "2 2 _ 3 3" -> [2, 3]."""
    T, V = 5, 5
    frame_labels = [2, 2, BLANK, 3, 3]
    log_probs = torch.full((T, V), math.log(0.01))
    for t, label in enumerate(frame_labels):
        log_probs[t, label] = math.log(0.96)
    log_probs = log_probs.log_softmax(-1).unsqueeze(0)  # (1, T, V)
    model = JointCTCAttention(UniformModel(V, T), log_probs, torch.tensor([T]), 1.0, BLANK)
    state = model.init_state(torch.zeros(1, T))
    for beam in (1, 3):
        config = SearchConfig(beam_size=beam, length_penalty=0.0)
        hypothesis = search(model, state, torch.tensor([T]), config)[0][0]
        assert hypothesis.tokens == [2, 3]
