"""The numpy CTC prefix scorer of the ONNX speech predictor equals the PyTorch one, step
by step and inside joint CTC / attention beam search."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from attnrnn.decoding import SearchConfig
from attnrnn.decoding import search as torch_search
from attnrnn.decoding.ctc import CTCPrefixScorer as TorchScorer
from attnrnn.decoding.ctc import JointCTCAttention as TorchJoint
from attnrnn.onnx.ctc import CTCPrefixScorer, JointCTCAttention
from attnrnn.onnx.search import SearchSettings
from attnrnn.onnx.search import search as numpy_search

BLANK, UNK, BOS, EOS = 0, 1, 2, 3
V = 7


def posteriors(seed: int, rows: int, frames: int) -> np.ndarray:
    generator = np.random.default_rng(seed)
    logits = 2.0 * generator.standard_normal((rows, frames, V)).astype(np.float32)
    logits[:, :, EOS] = -1e4  # EOS is no CTC label
    logits[:, :, BOS] = -1e4
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prefix_scores_equal_step_by_step(seed):
    log_probs = posteriors(seed, 3, 9)
    lengths = np.array([9, 5, 7])
    ours, theirs = CTCPrefixScorer(BLANK, EOS), TorchScorer(BLANK, EOS)
    state = ours.initial_state(log_probs, lengths)
    reference = theirs.initial_state(torch.from_numpy(log_probs), torch.from_numpy(lengths))
    generator = np.random.default_rng(seed)
    for step in range(5):
        scores, state = ours.score(state)
        expected, reference = theirs.score(reference)
        np.testing.assert_allclose(scores, expected.numpy(), rtol=1e-5, atol=1e-4)
        tokens = generator.integers(4, V, size=3)  # repeats happen: a blank is needed between
        rows = np.array([2, 0, 0]) if step % 2 else np.arange(3)  # beams reorder
        state = ours.advance(state, tokens).select(rows)
        reference = theirs.advance(reference, torch.from_numpy(tokens)).select(
            torch.from_numpy(rows)
        )


@dataclass
class Rows:
    values: np.ndarray

    def select(self, rows):
        return Rows(self.values[rows])


class Uniform:
    """An attention model with no opinion (numpy and torch flavours)."""

    bos_index, eos_index, pad_index = BOS, EOS, BLANK

    def __init__(self, torch_outputs: bool, frames: int) -> None:
        self.torch_outputs, self.frames = torch_outputs, frames

    def init_state(self, encoded):
        return encoded

    def step(self, prev, state):
        rows = len(prev)
        log_probs = np.full((rows, V), -np.log(V), dtype=np.float32)
        attention = np.full((rows, self.frames), 1.0 / self.frames, dtype=np.float32)
        if self.torch_outputs:
            return torch.from_numpy(log_probs), state, torch.from_numpy(attention)
        return log_probs, state, attention


@dataclass
class TorchRows:
    values: torch.Tensor

    def select(self, rows):
        return TorchRows(self.values[rows])


@pytest.mark.parametrize("weight", [0.3, 0.7, 1.0])
@pytest.mark.parametrize("beam", [1, 4])
def test_joint_search_equals_pytorchs(weight, beam):
    log_probs = posteriors(5, 3, 8)
    lengths = np.array([8, 6, 3])
    config = SearchConfig(beam_size=beam, n_best=beam, max_length_ratio=1.0, max_length_offset=0)
    settings = SearchSettings(**dataclasses.asdict(config))
    ours = JointCTCAttention(Uniform(False, 8), log_probs, lengths, weight, BLANK)
    theirs = TorchJoint(
        Uniform(True, 8), torch.from_numpy(log_probs), torch.from_numpy(lengths), weight, BLANK
    )
    got = numpy_search(ours, ours.init_state(Rows(np.arange(3))), lengths, settings)
    expected = torch_search(
        theirs,
        theirs.init_state(TorchRows(torch.arange(3))),
        torch.from_numpy(lengths),
        config,
    )
    assert any(len(h.tokens) > 1 for n_best in got for h in n_best)
    for mine, reference in zip(got, expected, strict=True):
        assert [h.tokens for h in mine] == [h.tokens for h in reference]
        for a, b in zip(mine, reference, strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-4)
