"""Greedy and beam search over numpy arrays, for the ONNX runtime (no PyTorch).

The same algorithm, bookkeeping and scores as :mod:`attnrnn.decoding` (greedy,
beam, :mod:`~attnrnn.decoding.hypotheses`), step for step, with numpy in place of
torch: a step model here takes and returns numpy arrays, and its state has
``select(rows)``. Read the PyTorch modules for the why of each rule; the tests
check that both searches give the same tokens and scores. Which of exactly equal
candidates at the edge of the best 2K enter is unspecified in both (``topk`` there,
``argpartition`` here); within the 2K, ties rank by the lower flat index (the earlier
beam, then the lower token id) in both.

:class:`SearchSettings` mirrors :class:`attnrnn.decoding.SearchConfig` field for
field (that one validates and imports torch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

COVERAGE_FLOOR = 1e-6  # = attnrnn.decoding.hypotheses.COVERAGE_FLOOR


@dataclass(frozen=True)
class SearchSettings:
    beam_size: int = 5
    n_best: int = 1
    length_penalty: float = 1.0
    coverage_penalty: float = 0.0
    max_length_ratio: float = 1.5
    max_length_offset: int = 10
    min_length: int = 1
    no_repeat_ngram_size: int = 0


@dataclass
class Hypothesis:
    """One decoded output: tokens (no BOS / EOS), the search score, the raw
    log-probability and the attention (T, S_i) of every output step."""

    tokens: list[int]
    score: float
    log_prob: float
    attention: np.ndarray = field(repr=False)


class StepModel(Protocol):
    bos_index: int
    eos_index: int
    pad_index: int

    def step(self, prev_tokens: np.ndarray, state: Any) -> tuple[np.ndarray, Any, np.ndarray]:
        """(log_probs (N, V) float32, new state, attention (N, S)) for ``prev_tokens`` (N,)."""
        ...


def reorder(state: Any, rows: np.ndarray, sources: np.ndarray | None) -> Any:
    """``state.select(rows)`` with the source-only arrays moved only as ``sources`` says
    (see :func:`attnrnn.decoding.protocol.reorder`), through ``state.reorder`` if any."""
    method = getattr(state, "reorder", None)
    return state.select(rows) if method is None else method(rows, sources)


def max_output_lengths(source_lengths: np.ndarray, config: SearchSettings) -> list[int]:
    limits = source_lengths.astype(np.float32) * np.float32(config.max_length_ratio)
    limits = limits + config.max_length_offset
    return [max(int(limit), 1) for limit in limits.tolist()]


def length_penalty(length: int, alpha: float) -> float:
    return ((5.0 + length) / 6.0) ** alpha


def score_hypothesis(
    tokens: list[int], log_prob: float, attention: np.ndarray, config: SearchSettings
) -> Hypothesis:
    score = log_prob / length_penalty(attention.shape[0], config.length_penalty)
    if config.coverage_penalty != 0.0:
        coverage = np.clip(attention.sum(axis=0), COVERAGE_FLOOR, 1.0)
        score += config.coverage_penalty * float(np.log(coverage).sum())
    return Hypothesis(tokens, score, log_prob, attention)


def allowed_log_probs(
    log_probs: np.ndarray, prefixes: np.ndarray, config: SearchSettings, model: StepModel
) -> np.ndarray:
    """``log_probs`` (N, V) with forbidden tokens at -inf, in place."""
    for special in (model.pad_index, model.bos_index):
        if special != model.eos_index:
            log_probs[:, special] = -np.inf
    if prefixes.shape[1] < config.min_length:
        log_probs[:, model.eos_index] = -np.inf
    size = config.no_repeat_ngram_size
    if size > 0 and prefixes.shape[1] >= size:
        length = prefixes.shape[1]
        context = prefixes[:, length - size + 1 :]  # (N, size - 1)
        for start in range(length - size + 1):
            matches = (prefixes[:, start : start + size - 1] == context).all(axis=1)  # (N,)
            rows = np.nonzero(matches)[0]
            log_probs[rows, prefixes[rows, start + size - 1]] = -np.inf
    return log_probs


@dataclass
class Prefixes:
    tokens: np.ndarray  # (N, t) int64
    attention: np.ndarray | None = None  # (N, t, S)

    @classmethod
    def empty(cls, rows: int) -> Prefixes:
        return cls(np.zeros((rows, 0), dtype=np.int64))

    def last_tokens(self, bos_index: int) -> np.ndarray:
        if self.tokens.shape[1] == 0:
            return np.full(self.tokens.shape[0], bos_index, dtype=np.int64)
        return self.tokens[:, -1].copy()

    def select(self, rows: np.ndarray) -> Prefixes:
        return Prefixes(self.tokens[rows], None if self.attention is None else self.attention[rows])

    def extend(self, tokens: np.ndarray, attention: np.ndarray) -> Prefixes:
        new_tokens = np.concatenate([self.tokens, tokens[:, None].astype(np.int64)], axis=1)
        step = attention[:, None]
        if self.attention is not None:
            step = np.concatenate([self.attention, step], axis=1)
        return Prefixes(new_tokens, step)


class FinishedHypotheses:
    def __init__(self, config: SearchSettings, eos_index: int, source_lengths: list[int]) -> None:
        self.config = config
        self.eos_index = eos_index
        self.source_lengths = source_lengths
        self.hypotheses: list[list[Hypothesis]] = [[] for _ in source_lengths]

    def add(self, sources: list[int], prefixes: Prefixes, log_probs: list[float]) -> None:
        assert prefixes.attention is not None
        rows = zip(sources, prefixes.tokens.tolist(), log_probs, strict=True)
        for row, (source, tokens, log_prob) in enumerate(rows):
            if tokens and tokens[-1] == self.eos_index:
                tokens = tokens[:-1]
            attention = prefixes.attention[row, :, : self.source_lengths[source]].copy()
            self.hypotheses[source].append(
                score_hypothesis(tokens, log_prob, attention, self.config)
            )

    def best(self, count: int) -> list[list[Hypothesis]]:
        return [
            sorted(hypotheses, key=lambda hypothesis: hypothesis.score, reverse=True)[:count]
            for hypotheses in self.hypotheses
        ]


# (scores (B, N), k) -> the k largest of every row and their indices (B, k), best first.
TopK = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def search(
    model: StepModel,
    state: Any,
    source_lengths: np.ndarray,
    config: SearchSettings,
    top_k: TopK | None = None,
) -> list[list[Hypothesis]]:
    """Greedy search when ``config.beam_size`` is 1, beam search otherwise; ``top_k``:
    how beam search picks its best 2K candidates (the export's ``topk.onnx``; default
    numpy's partial sort)."""
    if config.beam_size == 1:
        return greedy_search(model, state, source_lengths, config)
    return beam_search(model, state, source_lengths, config, top_k)


def greedy_search(
    model: StepModel, state: Any, source_lengths: np.ndarray, config: SearchSettings
) -> list[list[Hypothesis]]:
    batch_size = len(source_lengths)
    finished = FinishedHypotheses(config, model.eos_index, source_lengths.tolist())
    max_lengths = np.array(max_output_lengths(source_lengths, config))
    sources = np.arange(batch_size)
    prefixes = Prefixes.empty(batch_size)
    total = np.zeros(batch_size, dtype=np.float32)
    step = 0
    while True:
        step += 1
        log_probs, state, attention = model.step(prefixes.last_tokens(model.bos_index), state)
        log_probs = allowed_log_probs(log_probs, prefixes.tokens, config, model)
        best_tokens = log_probs.argmax(axis=1)  # the lowest id on ties, as torch's max
        total = total + log_probs[np.arange(len(best_tokens)), best_tokens]
        prefixes = prefixes.extend(best_tokens, attention)
        done = (best_tokens == model.eos_index) | (max_lengths[sources] <= step)
        ended = np.nonzero(done)[0]
        finished.add(sources[ended].tolist(), prefixes.select(ended), total[ended].tolist())
        remaining = np.nonzero(~done)[0]
        if remaining.size == 0:
            return finished.best(1)
        if remaining.size < done.size:  # rows never move otherwise
            state = state.select(remaining)
            sources, prefixes = sources[remaining], prefixes.select(remaining)
            total = total[remaining]


def _top_candidates(
    beam_log_probs: np.ndarray, next_log_probs: np.ndarray, beam_size: int, top_k: TopK | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best 2K of every source's K x V continuations, best first (ties: the lower
    flat index): cumulative log-probabilities, origin beams and tokens, each (b, 2K).
    ``top_k`` or a partial sort picks the 2K (as torch's ``topk``), a sort of those ranks
    them."""
    b, K = beam_log_probs.shape
    V = next_log_probs.shape[1]
    scores = (beam_log_probs[:, :, None] + next_log_probs.reshape(b, K, V)).reshape(b, K * V)
    count = min(2 * K, K * V)
    if count < K * V and top_k is not None:
        chosen = top_k(scores, count)[1]  # (b, 2K)
    elif count < K * V:
        chosen = np.argpartition(-scores, count - 1, axis=1)[:, :count]  # (b, 2K) unordered
    else:
        chosen = np.tile(np.arange(K * V), (b, 1))
    values = np.take_along_axis(scores, chosen, axis=1)
    order = np.lexsort((chosen, -values), axis=-1)  # by value, descending; then flat index
    chosen = np.take_along_axis(chosen, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    return values, chosen // V, chosen % V


def beam_search(
    model: StepModel,
    state: Any,
    source_lengths: np.ndarray,
    config: SearchSettings,
    top_k: TopK | None = None,
) -> list[list[Hypothesis]]:
    batch_size, K = len(source_lengths), config.beam_size
    finished = FinishedHypotheses(config, model.eos_index, source_lengths.tolist())
    max_lengths = max_output_lengths(source_lengths, config)
    sources = list(range(batch_size))
    state = state.select(np.repeat(np.arange(batch_size), K))
    beam_log_probs = np.full((batch_size, K), -np.inf, dtype=np.float32)
    beam_log_probs[:, 0] = 0.0
    prefixes = Prefixes.empty(batch_size * K)
    step = 0
    while True:
        step += 1
        log_probs, state, attention = model.step(prefixes.last_tokens(model.bos_index), state)
        log_probs = allowed_log_probs(log_probs, prefixes.tokens, config, model)
        values, origins, tokens = _top_candidates(beam_log_probs, log_probs, K, top_k)
        b = len(sources)
        # finish: EOS candidates ranked within the first K
        ending = (tokens[:, :K] == model.eos_index) & np.isfinite(values[:, :K])
        positions, ranks = np.nonzero(ending)
        if positions.size:
            rows = positions * K + origins[positions, ranks]
            ended = prefixes.select(rows).extend(tokens[positions, ranks], attention[rows])
            finished.add(
                [sources[p] for p in positions.tolist()],
                ended,
                values[positions, ranks].tolist(),
            )
        # advance: the first K non-EOS candidates
        chosen = np.argsort((tokens == model.eos_index).astype(np.int64), axis=1, kind="stable")
        chosen = chosen[:, :K]
        rows = (np.arange(b)[:, None] * K + np.take_along_axis(origins, chosen, 1)).reshape(-1)
        new_tokens = np.take_along_axis(tokens, chosen, 1).reshape(-1)
        prefixes = prefixes.select(rows).extend(new_tokens, attention[rows])
        beam_log_probs = np.take_along_axis(values, chosen, 1)
        # done sources
        at_limit = [step >= max_lengths[source] for source in sources]
        limit_rows = [i * K + k for i, limit in enumerate(at_limit) if limit for k in range(K)]
        if limit_rows:
            limit_array = np.array(limit_rows)
            limit_log_probs = beam_log_probs.reshape(-1)[limit_array]
            live = np.nonzero(np.isfinite(limit_log_probs))[0]
            finished.add(
                [sources[row // K] for row in limit_array[live].tolist()],
                prefixes.select(limit_array[live]),
                limit_log_probs[live].tolist(),
            )
        best_live = beam_log_probs.max(axis=1).tolist()
        done = [
            limit
            or len(finished.hypotheses[source]) >= K
            or _cannot_improve(finished.hypotheses[source], best, max_lengths[source], config)
            for source, limit, best in zip(sources, at_limit, best_live, strict=True)
        ]
        kept = [position for position, is_done in enumerate(done) if not is_done]
        if not kept:
            return finished.best(config.n_best)
        kept_rows = (np.array(kept)[:, None] * K + np.arange(K)).reshape(-1)
        sources_moved = kept_rows if len(kept) < len(done) else None
        state = reorder(state, rows[kept_rows], sources_moved)
        prefixes = prefixes.select(kept_rows)
        beam_log_probs = beam_log_probs[np.array(kept)]
        sources = [sources[position] for position in kept]


def _cannot_improve(
    hypotheses: list[Hypothesis], best_live: float, max_length: int, config: SearchSettings
) -> bool:
    if len(hypotheses) < config.n_best:
        return False
    scores = sorted((hypothesis.score for hypothesis in hypotheses), reverse=True)
    best_reachable = best_live / length_penalty(max_length, config.length_penalty)
    return best_reachable <= scores[config.n_best - 1]
