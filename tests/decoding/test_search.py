"""Greedy and beam search on a fake step model with hand-written probabilities.

The fake model follows the step protocol: its state holds, per row, the source
id and the tokens fed so far, and ``step`` looks the next-token distribution
up by (source, prefix). Because the prefix comes from the tokens search feeds
back, any mistake in reordering the state shows up as a wrong distribution.

Vocabulary of every test: pad 0, BOS 1, EOS 2, then a 3, b 4, c 5, d 6, e 7.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
import torch

from attnrnn.decoding import Hypothesis, SearchConfig, beam_search, greedy_search, search
from attnrnn.decoding.hypotheses import coverage_penalty

PAD, BOS, EOS, A, B, C, D = 0, 1, 2, 3, 4, 5, 6
VOCAB_SIZE = 8

Prefix = tuple[int, ...]
# (source id, output prefix) -> (log-probabilities (V,), attention (S_source,))
Distribution = Callable[[int, Prefix], tuple[torch.Tensor, torch.Tensor]]
SearchFunction = Callable[..., list[list[Hypothesis]]]


@dataclass
class FakeState:
    """sources: (N,) source id of each row; fed: (N, t) tokens fed so far (BOS first)."""

    sources: torch.Tensor
    fed: torch.Tensor
    source_size: int

    def select(self, indices: torch.Tensor) -> FakeState:
        return FakeState(self.sources[indices], self.fed[indices], self.source_size)


class FakeModel:
    """A step model whose distributions come from a function of (source, prefix)."""

    bos_index = BOS
    eos_index = EOS
    pad_index = PAD

    def __init__(self, distribution: Distribution, source_lengths: list[int]) -> None:
        self.distribution = distribution
        self.source_lengths = source_lengths
        self.rows_per_step: list[int] = []

    def init_state(self, sources: torch.Tensor) -> FakeState:
        source_size = max(self.source_lengths[source] for source in sources.tolist())
        fed = torch.zeros(len(sources), 0, dtype=torch.long)  # (B, 0)
        return FakeState(sources, fed, source_size)

    def step(
        self, prev_tokens: torch.Tensor, state: FakeState
    ) -> tuple[torch.Tensor, FakeState, torch.Tensor]:
        self.rows_per_step.append(prev_tokens.numel())
        fed = torch.cat([state.fed, prev_tokens.unsqueeze(1)], dim=1)  # (N, t + 1)
        log_probs, attention = [], []
        for source, tokens in zip(state.sources.tolist(), fed.tolist(), strict=True):
            assert tokens[0] == BOS and BOS not in tokens[1:] and EOS not in tokens
            row_log_probs, row_attention = self.distribution(source, tuple(tokens[1:]))
            padded = torch.zeros(state.source_size)  # (S,)
            padded[: row_attention.numel()] = row_attention
            log_probs.append(row_log_probs)
            attention.append(padded)
        new_state = FakeState(state.sources, fed, state.source_size)
        return torch.stack(log_probs), new_state, torch.stack(attention)  # (N, V), (N, S)


def table(
    probabilities: dict[Prefix, dict[int, float]],
    source_length: int = 2,
    attention: dict[Prefix, list[float]] | None = None,
) -> Callable[[Prefix], tuple[torch.Tensor, torch.Tensor]]:
    """Hand-written next-token probabilities per prefix (unlisted tokens: 0;
    unlisted prefixes: EOS) and attention per prefix (default uniform)."""

    def lookup(prefix: Prefix) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs = torch.full((VOCAB_SIZE,), float("-inf"))
        for token, probability in probabilities.get(prefix, {EOS: 1.0}).items():
            log_probs[token] = math.log(probability)
        weights = (attention or {}).get(prefix, [1.0 / source_length] * source_length)
        return log_probs, torch.tensor(weights)

    return lookup


def per_source(*lookups: Callable[[Prefix], tuple[torch.Tensor, torch.Tensor]]) -> Distribution:
    return lambda source, prefix: lookups[source](prefix)


def random_distribution(
    seed: int, source_lengths: list[int], repeat_bias: float = 0.0
) -> Distribution:
    """A random but fixed distribution per (source, prefix); EOS grows likelier as the
    output outgrows the source."""

    def lookup(source: int, prefix: Prefix) -> tuple[torch.Tensor, torch.Tensor]:
        key = zlib.crc32(repr((seed, source, prefix)).encode())
        generator = torch.Generator().manual_seed(key)
        logits = torch.randn(VOCAB_SIZE, generator=generator) * 1.5  # (V,)
        logits[EOS] += len(prefix) - source_lengths[source]
        if prefix:
            logits[prefix[-1]] += repeat_bias
        attention = torch.softmax(torch.randn(source_lengths[source], generator=generator), 0)
        return torch.log_softmax(logits, dim=0), attention

    return lookup


def decode(
    function: SearchFunction, model: FakeModel, sources: list[int], config: SearchConfig
) -> list[list[Hypothesis]]:
    source_ids = torch.tensor(sources)  # (B,)
    lengths = torch.tensor([model.source_lengths[source] for source in sources])  # (B,)
    return function(model, model.init_state(source_ids), lengths, config)


def tokens_of(hypotheses: list[Hypothesis]) -> list[list[int]]:
    return [hypothesis.tokens for hypothesis in hypotheses]


def assert_same(left: list[list[Hypothesis]], right: list[list[Hypothesis]]) -> None:
    assert len(left) == len(right)
    for left_n_best, right_n_best in zip(left, right, strict=True):
        assert tokens_of(left_n_best) == tokens_of(right_n_best)
        for one, other in zip(left_n_best, right_n_best, strict=True):
            assert one.score == other.score
            assert one.log_prob == other.log_prob
            assert torch.equal(one.attention, other.attention)


# --------------------------------------------------------------------------- (a) hand table

# K = 2, min_length 1 (EOS banned at step 1), source length 2.
# step 1: a .5, b .4                      -> beams a .5, b .4
# step 2: b c .36, a EOS .30, a c .20, b EOS .04
#         a EOS ranks 2nd (within K)      -> finished [a], p .30, 2 steps
#         beams b c .36, a c .20
# step 3: b c EOS .27, a c EOS .18, b c a .09, a c b .02
#         both EOS within K               -> finished [b c] .27, [a c] .18 (3 steps)
#         3 >= K finished: done.
TABLE_A = {
    (): {A: 0.5, B: 0.4, EOS: 0.1},
    (A,): {EOS: 0.6, C: 0.4},
    (B,): {C: 0.9, EOS: 0.1},
    (B, C): {EOS: 0.75, A: 0.25},
    (A, C): {EOS: 0.9, B: 0.1},
}


def test_beam_hand_table_without_length_penalty():
    model = FakeModel(per_source(table(TABLE_A)), [2])
    config = SearchConfig(beam_size=2, n_best=2, length_penalty=0.0)
    (n_best,) = decode(beam_search, model, [0], config)
    # alpha = 0: score = raw log-probability; log .30 > log .27.
    assert tokens_of(n_best) == [[A], [B, C]]
    assert [hypothesis.score for hypothesis in n_best] == pytest.approx(
        [math.log(0.30), math.log(0.27)]
    )
    assert [hypothesis.log_prob for hypothesis in n_best] == pytest.approx(
        [math.log(0.30), math.log(0.27)]
    )
    # Ended with EOS: one attention row per token plus the EOS step.
    assert [tuple(hypothesis.attention.shape) for hypothesis in n_best] == [(2, 2), (3, 2)]
    assert model.rows_per_step == [2, 2, 2]


def test_beam_hand_table_with_length_penalty():
    model = FakeModel(per_source(table(TABLE_A)), [2])
    config = SearchConfig(beam_size=2, n_best=2, length_penalty=1.0)
    (n_best,) = decode(beam_search, model, [0], config)
    # alpha = 1: lp(2) = 7/6, lp(3) = 8/6.
    # [b c]: log .27 / (8/6) = -0.98200 beats [a]: log .30 / (7/6) = -1.03198.
    assert tokens_of(n_best) == [[B, C], [A]]
    assert [hypothesis.score for hypothesis in n_best] == pytest.approx(
        [-0.98200, -1.03198], abs=1e-5
    )
    assert [hypothesis.log_prob for hypothesis in n_best] == pytest.approx(
        [math.log(0.27), math.log(0.30)]
    )


# --------------------------------------------------------------------------- (b) K = 1 is greedy


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "settings",
    [
        {"length_penalty": 0.0},
        {"length_penalty": 1.0, "coverage_penalty": 0.5, "min_length": 2},
        {"length_penalty": 0.6, "no_repeat_ngram_size": 2, "max_length_offset": 3},
    ],
)
def test_beam_size_one_equals_greedy(seed, settings):
    lengths = [3, 5, 2, 4]
    model = FakeModel(random_distribution(seed, lengths, repeat_bias=1.0), lengths)
    greedy = decode(greedy_search, model, [0, 1, 2, 3], SearchConfig(beam_size=1, **settings))
    beam = decode(beam_search, model, [0, 1, 2, 3], SearchConfig(beam_size=1, **settings))
    assert_same(greedy, beam)
    assert all(len(n_best) == 1 for n_best in greedy)


def test_search_dispatches_on_beam_size():
    lengths = [3, 5]
    model = FakeModel(random_distribution(0, lengths), lengths)
    for beam_size, function in [(1, greedy_search), (3, beam_search)]:
        config = SearchConfig(beam_size=beam_size)
        assert_same(decode(search, model, [0, 1], config), decode(function, model, [0, 1], config))


# --------------------------------------------------------------------------- (c) early EOS

# K = 2, min_length 0, source length 2 -> max length int(1.5 * 2 + 10) = 13.
# step 1: EOS .45, a .44, b .11 -> EOS ranks 1st: finished [] (log .45 / lp(1) = -0.7985);
#         beams a .44, b .11 keep going.
# step 2: a c .4356, b c .077, b d .033, a d .0044 -> beams a c, b c
# step 3: a c EOS .431244, b c EOS .0616 -> finished [a c]: log .431244 / (8/6) = -0.63081,
#         better than [] under alpha = 1.
TABLE_C = {
    (): {EOS: 0.45, A: 0.44, B: 0.11},
    (A,): {C: 0.99, D: 0.01},
    (B,): {C: 0.7, D: 0.3},
    (A, C): {EOS: 0.99, D: 0.01},
    (B, C): {EOS: 0.8, D: 0.2},
}


def test_finished_best_hypothesis_does_not_stop_the_other_beams():
    model = FakeModel(per_source(table(TABLE_C)), [2])
    config = SearchConfig(beam_size=2, n_best=1, length_penalty=1.0, min_length=0)
    (n_best,) = decode(beam_search, model, [0], config)
    assert tokens_of(n_best) == [[A, C]]
    assert n_best[0].log_prob == pytest.approx(math.log(0.44 * 0.99 * 0.99))
    assert n_best[0].score == pytest.approx(math.log(0.44 * 0.99 * 0.99) * 6 / 8)
    assert model.rows_per_step == [2, 2, 2]


def test_search_stops_when_no_live_beam_can_win():
    # alpha = 0: after step 1 the best live beam (a, .44) is already below the
    # finished [] (.45) and can only fall, so the search stops there.
    model = FakeModel(per_source(table(TABLE_C)), [2])
    config = SearchConfig(beam_size=2, n_best=1, length_penalty=0.0, min_length=0)
    (n_best,) = decode(beam_search, model, [0], config)
    assert tokens_of(n_best) == [[]]
    assert n_best[0].log_prob == pytest.approx(math.log(0.45))
    assert tuple(n_best[0].attention.shape) == (1, 2)
    assert model.rows_per_step == [2]


# --------------------------------------------------------------------------- (d) batching


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("function, beam_size", [(beam_search, 3), (greedy_search, 1)])
def test_batch_gives_the_same_hypotheses_as_one_by_one(seed, function, beam_size):
    lengths = [4, 2, 6, 3, 5]
    model = FakeModel(random_distribution(seed, lengths, repeat_bias=0.5), lengths)
    config = SearchConfig(
        beam_size=beam_size,
        n_best=beam_size,
        length_penalty=0.8,
        coverage_penalty=0.3,
        no_repeat_ngram_size=3,
    )
    batched = decode(function, model, [0, 1, 2, 3, 4], config)
    one_by_one = [decode(function, model, [source], config)[0] for source in range(5)]
    assert_same(batched, one_by_one)
    for source, n_best in enumerate(batched):
        assert all(hypothesis.attention.size(1) == lengths[source] for hypothesis in n_best)


# --------------------------------------------------------------------------- (e) constraints

TABLE_MIN = {
    (): {EOS: 0.6, A: 0.4},
    (A,): {EOS: 0.7, A: 0.3},
    (A, A): {EOS: 0.8, B: 0.2},
}


def test_min_length_forbids_early_eos():
    model = FakeModel(per_source(table(TABLE_MIN)), [2])
    free = SearchConfig(beam_size=1, length_penalty=0.0, min_length=0)
    assert tokens_of(decode(greedy_search, model, [0], free)[0]) == [[]]
    (n_best,) = decode(greedy_search, model, [0], SearchConfig(beam_size=1, min_length=2))
    # EOS banned at steps 1 and 2: a (.4), a (.3), then EOS (.8).
    assert tokens_of(n_best) == [[A, A]]
    assert n_best[0].log_prob == pytest.approx(math.log(0.4 * 0.3 * 0.8))


@pytest.mark.parametrize("seed", range(3))
def test_min_length_holds_for_every_beam_hypothesis(seed):
    lengths = [3, 4]
    model = FakeModel(random_distribution(seed, lengths), lengths)
    config = SearchConfig(beam_size=3, n_best=3, min_length=4)
    for n_best in decode(beam_search, model, [0, 1], config):
        assert all(len(hypothesis.tokens) >= 4 for hypothesis in n_best)


def never_ends(prefix: Prefix) -> tuple[torch.Tensor, torch.Tensor]:
    """a .5, b .3, c .2 after every prefix; EOS never."""
    return table({prefix: {A: 0.5, B: 0.3, C: 0.2}}, source_length=3)(prefix)


def test_max_length_ends_without_eos():
    model = FakeModel(per_source(never_ends), [3])
    # At most 1.0 * 3 + 0 = 3 output tokens.
    limits = SearchConfig(length_penalty=0.0, max_length_ratio=1.0, max_length_offset=0)
    (greedy,) = decode(greedy_search, model, [0], replace(limits, beam_size=1))
    assert tokens_of(greedy) == [[A, A, A]]
    assert greedy[0].log_prob == pytest.approx(3 * math.log(0.5))
    assert tuple(greedy[0].attention.shape) == (3, 3)  # no EOS row
    model.rows_per_step.clear()
    (beam,) = decode(beam_search, model, [0], replace(limits, beam_size=2, n_best=2))
    # a .5, b .3 -> a a .25, a b .15 -> a a a .125, a a b .075: both live beams end at length 3.
    assert tokens_of(beam) == [[A, A, A], [A, A, B]]
    assert [hypothesis.log_prob for hypothesis in beam] == pytest.approx(
        [math.log(0.125), math.log(0.075)]
    )
    assert model.rows_per_step == [2, 2, 2]


def test_no_repeat_ngram_blocks_by_hand():
    model = FakeModel(per_source(never_ends), [3])
    config = SearchConfig(
        beam_size=1,
        length_penalty=0.0,
        max_length_ratio=1.0,
        max_length_offset=2,
        no_repeat_ngram_size=2,
    )
    (n_best,) = decode(greedy_search, model, [0], config)
    # a, a; then "a a" is taken -> b; after b -> a; after a, "a a" and "a b" are taken -> c.
    assert tokens_of(n_best) == [[A, A, B, A, C]]
    assert n_best[0].log_prob == pytest.approx(math.log(0.5 * 0.5 * 0.3 * 0.5 * 0.2))


def has_repeated_ngram(tokens: list[int], size: int) -> bool:
    ngrams = [tuple(tokens[i : i + size]) for i in range(len(tokens) - size + 1)]
    return len(ngrams) != len(set(ngrams))


@pytest.mark.parametrize("size", [1, 2, 3])
def test_no_repeat_ngram_holds_for_every_beam_hypothesis(size):
    lengths = [3, 5, 4]
    model = FakeModel(random_distribution(7, lengths, repeat_bias=4.0), lengths)
    settings = {"beam_size": 3, "n_best": 3, "max_length_offset": 4}
    unconstrained = decode(beam_search, model, [0, 1, 2], SearchConfig(**settings))
    assert any(  # the repeat bias makes repeats likely without the constraint
        has_repeated_ngram(hypothesis.tokens, size)
        for n_best in unconstrained
        for hypothesis in n_best
    )
    config = SearchConfig(no_repeat_ngram_size=size, **settings)
    for n_best in decode(beam_search, model, [0, 1, 2], config):
        assert not any(has_repeated_ngram(hypothesis.tokens, size) for hypothesis in n_best)


@pytest.mark.parametrize("beam_size, n_best", [(4, 3), (4, 4), (3, 1)])
def test_n_best_count_and_order(beam_size, n_best):
    lengths = [3, 5, 4]
    model = FakeModel(random_distribution(3, lengths), lengths)
    config = SearchConfig(beam_size=beam_size, n_best=n_best, length_penalty=0.7)
    for hypotheses in decode(beam_search, model, [0, 1, 2], config):
        assert len(hypotheses) == n_best
        scores = [hypothesis.score for hypothesis in hypotheses]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(hypothesis.tokens) for hypothesis in hypotheses}) == n_best


# --------------------------------------------------------------------------- (f) coverage

# TABLE_A with attention over source 0 (2 positions), decoded beside a longer
# source 1 (3 positions), so source 0's attention is padded to S = 3.
# Finished (same search path as above, selection ignores coverage):
#   [a]   steps (), (a):         coverage [1.6, 0.4] -> log .4 = -0.91629
#         score log .30 - 0.91629 = -2.12026
#   [b c] steps (), (b), (b c):  coverage [1.5, 1.5] -> min 1 -> 0; score log .27 = -1.30933
#   [a c] steps (), (a), (a c):  coverage [1.6, 1.4] -> 0;          score log .18 = -1.71480
ATTENTION_A = {
    (): [1.0, 0.0],
    (A,): [0.6, 0.4],
    (B,): [0.0, 1.0],
    (B, C): [0.5, 0.5],
    (A, C): [0.0, 1.0],
}


def test_coverage_penalty_changes_the_ranking():
    lookup = table(TABLE_A, attention=ATTENTION_A)
    other = random_distribution(0, [2, 3])
    model = FakeModel(
        lambda source, prefix: lookup(prefix) if source == 0 else other(1, prefix), [2, 3]
    )
    plain = SearchConfig(beam_size=2, n_best=2, length_penalty=0.0)
    assert tokens_of(decode(beam_search, model, [0, 1], plain)[0]) == [[A], [B, C]]
    covered = SearchConfig(beam_size=2, n_best=2, length_penalty=0.0, coverage_penalty=1.0)
    n_best = decode(beam_search, model, [0, 1], covered)[0]
    assert tokens_of(n_best) == [[B, C], [A, C]]
    assert [hypothesis.score for hypothesis in n_best] == pytest.approx(
        [-1.30933, -1.71480], abs=1e-5
    )
    assert tuple(n_best[0].attention.shape) == (3, 2)  # cropped to the source's 2 positions


def test_coverage_of_a_never_attended_position_is_floored():
    attention = torch.tensor([[1.0, 0.0], [0.5, 0.0]])  # (T, S)
    assert coverage_penalty(attention, 0.5) == pytest.approx(0.5 * math.log(1e-6))
    assert coverage_penalty(attention, 0.0) == 0.0


# --------------------------------------------------------------------------- (g) shrinking


def test_finished_sources_are_dropped_from_the_batch():
    # Source 0 ends at step 1 (EOS .9; its live beam a .1 cannot win);
    # source 1 never ends and stops at its max length 1.0 * 3 + 0 = 3.
    ends_at_once = table({(): {EOS: 0.9, A: 0.1}}, source_length=1)
    model = FakeModel(per_source(ends_at_once, never_ends), [1, 3])
    settings = SearchConfig(
        length_penalty=0.0, min_length=0, max_length_ratio=1.0, max_length_offset=0
    )
    beam = decode(beam_search, model, [0, 1], replace(settings, beam_size=2))
    assert model.rows_per_step == [4, 2, 2]  # 2 sources x K = 2, then source 1 only
    assert tokens_of(beam[0]) == [[]] and tokens_of(beam[1]) == [[A, A, A]]
    model.rows_per_step.clear()
    decode(greedy_search, model, [0, 1], replace(settings, beam_size=1))
    assert model.rows_per_step == [2, 1, 1]


@pytest.mark.parametrize("beam_size", [1, 3])
def test_rows_shrink_as_sources_finish(beam_size):
    lengths = [2, 6, 3, 5, 4]
    model = FakeModel(random_distribution(11, lengths), lengths)
    decode(search, model, list(range(5)), SearchConfig(beam_size=beam_size))
    rows = model.rows_per_step
    assert rows[0] == 5 * beam_size
    assert all(later <= earlier for earlier, later in itertools.pairwise(rows))
    assert rows[-1] < rows[0]
