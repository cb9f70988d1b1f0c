"""The numpy search of the ONNX runtime gives the PyTorch search's outputs: the same
tokens, scores and attention for every setting, on a step model both can run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from attnrnn.decoding import SearchConfig
from attnrnn.decoding import search as torch_search
from attnrnn.onnx.search import SearchSettings
from attnrnn.onnx.search import search as numpy_search

PAD, UNK, BOS, EOS = 0, 1, 2, 3
V, S = 9, 6


def tables(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-probabilities (source, step, previous token, next token) and attention logits
    (source, step, position) of a decoder that depends on the prefix only through the
    previous token and the step: enough to make beams diverge and rejoin."""
    generator = np.random.default_rng(seed)
    logits = 1.5 * generator.standard_normal((4, 12, V, V)).astype(np.float32)
    logits[..., EOS] -= 1.0  # longer outputs
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    attention = generator.standard_normal((4, 12, S)).astype(np.float32)
    return log_probs.astype(np.float32), attention


@dataclass
class NumpyState:
    source: np.ndarray
    step: np.ndarray

    def select(self, rows):
        return NumpyState(self.source[rows], self.step[rows])


@dataclass
class TorchState:
    source: torch.Tensor
    step: torch.Tensor

    def select(self, rows):
        return TorchState(self.source[rows], self.step[rows])


class NumpyModel:
    bos_index, eos_index, pad_index = BOS, EOS, PAD

    def __init__(self, seed: int, lengths: list[int]) -> None:
        self.log_probs, self.attention = tables(seed)
        self.lengths = np.array(lengths)

    def step(self, prev, state):
        step = np.minimum(state.step, 11)
        scores = self.attention[state.source, step]  # (N, S)
        scores = np.where(np.arange(S) < self.lengths[state.source][:, None], scores, -np.inf)
        weights = np.exp(scores - scores.max(1, keepdims=True))
        weights = (weights / weights.sum(1, keepdims=True)).astype(np.float32)
        log_probs = self.log_probs[state.source, step, prev]
        return log_probs, NumpyState(state.source, state.step + 1), weights


class TorchModel(NumpyModel):
    def step(self, prev, state):
        numpy_state = NumpyState(state.source.numpy(), state.step.numpy())
        log_probs, new, weights = super().step(prev.numpy(), numpy_state)
        torch_state = TorchState(torch.from_numpy(new.source), torch.from_numpy(new.step))
        return torch.from_numpy(log_probs), torch_state, torch.from_numpy(weights)


SETTINGS = [
    {"beam_size": 1},
    {"beam_size": 3, "length_penalty": 0.0},
    {"beam_size": 5, "n_best": 3},
    {"beam_size": 4, "coverage_penalty": 0.3, "n_best": 2},
    {"beam_size": 3, "min_length": 3, "no_repeat_ngram_size": 2},
    {"beam_size": 1, "min_length": 2, "no_repeat_ngram_size": 2, "length_penalty": 0.6},
    {"beam_size": 6, "max_length_ratio": 0.5, "max_length_offset": 1},
]


@pytest.fixture(scope="module")
def onnx_top_k(tmp_path_factory):
    """Beam search's candidate choice through the export's topk.onnx in ONNX Runtime."""
    pytest.importorskip("onnxruntime")
    import onnxruntime

    from attnrnn.onnx.export import write_top_k_graph

    path = tmp_path_factory.mktemp("topk") / "topk.onnx"
    write_top_k_graph(path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def top_k(scores, k):
        return tuple(session.run(None, {"scores": scores, "k": np.array([k], dtype=np.int64)}))

    return top_k


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("selection", ["numpy", "onnx"])
def test_numpy_search_equals_the_pytorch_search(settings, seed, selection, request):
    lengths = [6, 3, 5, 1]
    torch_config = SearchConfig(**settings)
    numpy_config = SearchSettings(**dataclasses.asdict(torch_config))
    sources = np.arange(4)
    expected = torch_search(
        TorchModel(seed, lengths),
        TorchState(torch.arange(4), torch.zeros(4, dtype=torch.long)),
        torch.tensor(lengths),
        torch_config,
    )
    got = numpy_search(
        NumpyModel(seed, lengths),
        NumpyState(sources, np.zeros(4, dtype=np.int64)),
        np.array(lengths),
        numpy_config,
        request.getfixturevalue("onnx_top_k") if selection == "onnx" else None,
    )
    assert len(got) == len(expected) == 4
    for ours, theirs in zip(got, expected, strict=True):
        assert [h.tokens for h in ours] == [h.tokens for h in theirs]
        for mine, reference in zip(ours, theirs, strict=True):
            assert mine.score == pytest.approx(reference.score, rel=1e-6, abs=1e-6)
            assert mine.log_prob == pytest.approx(reference.log_prob, rel=1e-6, abs=1e-6)
            np.testing.assert_allclose(mine.attention, reference.attention.numpy(), atol=1e-7)


def test_search_settings_mirror_search_config():
    assert [f.name for f in dataclasses.fields(SearchSettings)] == [
        f.name for f in dataclasses.fields(SearchConfig)
    ]
    assert dataclasses.asdict(SearchSettings()) == dataclasses.asdict(SearchConfig())
