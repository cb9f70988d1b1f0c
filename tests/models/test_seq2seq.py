"""Seq2Seq invariants: step-by-step decoding equals the teacher-forced pass for every
decoder variant; padding and batching change no sequence's output or hypotheses; beam
size 1 is greedy; gradients reach every parameter; the bridge, tied and shared
embeddings and the loss do what they say; a toy reversal task trains in seconds.

Models are small and random, in float64 and eval mode, so equal computations compare
tightly (``step`` returns float32 log-probabilities by contract).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from attnrnn.config import EncoderConfig
from attnrnn.data.batching import pad_sequences
from attnrnn.decoding import Hypothesis, SearchConfig, beam_search, greedy_search, search
from attnrnn.errors import ConfigError
from attnrnn.models.seq2seq import DecoderConfig, Seq2Seq, Seq2SeqConfig
from attnrnn.tasks.translation import ParallelSplit, TranslationBatch, collate, sequence_loss

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SOURCE_VOCAB, TARGET_VOCAB = 11, 13
E, H, A = 16, 12, 14  # embedding, decoder hidden, attentional sizes

# Unsorted lengths, so that the longest source is not the first.
SOURCES = [[4, 5], [6, 7, 8, 9, 10, 4, 5], [10, 9, 8, 5], [7]]
TARGETS = [[4, 6, 8, 10], [12], [5, 5, 7], [11, 9, 4, 6, 8]]


def make_model(
    style: str = "luong",
    cell: str = "gru",
    attention: str = "additive",
    input_feeding: bool = True,
    num_layers: int = 1,
    bridge: str = "linear",
    seed: int = 0,
) -> Seq2Seq:
    """A random float64 model in eval mode. Dot attention needs the memory size
    (2 x encoder hidden) equal to H; the others get M = 16 != H."""
    encoder_hidden = H // 2 if attention in ("dot", "scaled_dot") else 8
    config = Seq2SeqConfig(
        embedding_size=E,
        embedding_dropout=0.2,  # eval mode: no effect, but proves it is switched off
        encoder=EncoderConfig(
            cell=cell,  # type: ignore[arg-type]
            hidden_size=encoder_hidden,
            num_layers=num_layers,
        ),
        decoder=DecoderConfig(
            style=style,  # type: ignore[arg-type]
            cell=cell,  # type: ignore[arg-type]
            hidden_size=H,
            num_layers=num_layers,
            attention=attention,
            attention_size=8 if attention == "multi_head" else 10,
            location_channels=3,
            location_kernel_size=5,
            input_feeding=input_feeding,
            attentional_size=A,
            bridge=bridge,  # type: ignore[arg-type]
            dropout=0.2,
            output_dropout=0.2,
        ),
    )
    torch.manual_seed(seed)
    model = Seq2Seq(SOURCE_VOCAB, TARGET_VOCAB, config, PAD, BOS, EOS)
    return model.double().eval()


def make_batch(sources: list[list[int]], targets: list[list[int]]) -> TranslationBatch:
    split = ParallelSplit(sources, targets, [""] * len(sources))
    return collate(split, range(len(sources)), PAD, BOS, EOS)


def teacher_forced_log_probs(model: Seq2Seq, batch: TranslationBatch) -> torch.Tensor:
    """(B, T, V) log-probabilities of the teacher-forced pass."""
    output = model(batch.source, batch.source_lengths, batch.target_input)
    return F.log_softmax(model.output_logits(output.attentional), dim=-1)


def decode(
    model: Seq2Seq, sources: list[list[int]], config: SearchConfig
) -> list[list[Hypothesis]]:
    batch = make_batch(sources, [[]] * len(sources))
    state = model.init_state(model.encode(batch.source, batch.source_lengths))
    return search(model, state, batch.source_lengths, config)


def assert_same_hypotheses(actual: list[Hypothesis], expected: list[Hypothesis]) -> None:
    assert [hypothesis.tokens for hypothesis in actual] == [h.tokens for h in expected]
    for hypothesis, reference in zip(actual, expected, strict=True):
        assert hypothesis.score == pytest.approx(reference.score, abs=1e-5)
        assert hypothesis.log_prob == pytest.approx(reference.log_prob, abs=1e-5)
        torch.testing.assert_close(hypothesis.attention, reference.attention)


# ------------------------------------------------------------------ step == teacher forcing

STYLES = [("bahdanau", False), ("luong", True), ("luong", False)]  # Bahdanau has no input feeding


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize(
    "attention", ["additive", "dot", "general", "scaled_dot", "multi_head", "location"]
)
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize(("style", "input_feeding"), STYLES)
def test_step_by_step_equals_teacher_forced_pass(style, input_feeding, cell, attention, num_layers):
    model = make_model(style, cell, attention, input_feeding, num_layers)
    fused = style == "luong" and not input_feeding and attention != "location"
    assert model.decoder.fused is fused
    batch = make_batch(SOURCES, TARGETS)
    with torch.no_grad():
        output = model(batch.source, batch.source_lengths, batch.target_input)
        expected = F.log_softmax(model.output_logits(output.attentional), dim=-1)  # (B, T, V)
        state = model.init_state(model.encode(batch.source, batch.source_lengths))
        for position in range(batch.target_input.size(1)):
            log_probs, state, weights = model.step(batch.target_input[:, position], state)
            assert log_probs.dtype == torch.float32
            torch.testing.assert_close(log_probs, expected[:, position].float())
            torch.testing.assert_close(weights, output.attention[:, position])


# ------------------------------------------------------------------ padding and batching

VARIANTS = [
    {"style": "luong", "cell": "gru", "attention": "additive"},
    {"style": "luong", "cell": "lstm", "attention": "dot", "input_feeding": False, "num_layers": 2},
    {"style": "bahdanau", "cell": "rnn", "attention": "location"},
    {"style": "bahdanau", "cell": "lstm", "attention": "general", "num_layers": 2},
]


def short_search(**settings: Any) -> SearchConfig:
    """Search settings with at most |x| + 3 output tokens, to keep decoding short."""
    return SearchConfig(max_length_ratio=1.0, max_length_offset=3, **settings)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"{v['style']}-{v['attention']}")
def test_padding_changes_no_output(variant):
    model = make_model(**variant)
    batch = make_batch(SOURCES, TARGETS)
    greedy = short_search(beam_size=1)
    beam = short_search(beam_size=3, n_best=3)
    with torch.no_grad():
        encoded = model.encode(batch.source, batch.source_lengths)
        log_probs = teacher_forced_log_probs(model, batch)
        batched = {config: decode(model, SOURCES, config) for config in (greedy, beam)}
        for row, (source, target) in enumerate(zip(SOURCES, TARGETS, strict=True)):
            alone = make_batch([source], [target])
            S_i, T_i = len(source), len(target) + 1
            encoded_alone = model.encode(alone.source, alone.source_lengths)
            torch.testing.assert_close(encoded.memory[row, :S_i], encoded_alone.memory[0])
            assert torch.all(encoded.memory[row, S_i:] == 0)
            torch.testing.assert_close(
                log_probs[row, :T_i], teacher_forced_log_probs(model, alone)[0]
            )
            for config, hypotheses in batched.items():
                assert_same_hypotheses(hypotheses[row], decode(model, [source], config)[0])


SEARCH_SOURCES = [[4, 5, 6], [7, 8, 9, 10, 4, 6], [5], [9, 9, 4, 7], [10, 6, 8, 5, 4, 7, 9]]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"{v['style']}-{v['attention']}")
def test_a_batch_of_n_gives_the_hypotheses_of_n_batches_of_one(variant):
    model = make_model(**variant, seed=1)
    config = short_search(beam_size=4, n_best=4, length_penalty=0.6, coverage_penalty=0.2)
    with torch.no_grad():
        batched = decode(model, SEARCH_SOURCES, config)
        for source, hypotheses in zip(SEARCH_SOURCES, batched, strict=True):
            assert len(hypotheses) == 4
            assert_same_hypotheses(hypotheses, decode(model, [source], config)[0])
    # Not a degenerate model: sources get different best outputs.
    assert len({tuple(hypotheses[0].tokens) for hypotheses in batched}) > 1


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"{v['style']}-{v['attention']}")
@pytest.mark.parametrize(
    "settings",
    [{}, {"length_penalty": 0.0, "min_length": 2, "coverage_penalty": 0.5}],
    ids=["default", "penalties"],
)
def test_beam_size_one_equals_greedy(variant, settings):
    model = make_model(**variant, seed=2)
    config = short_search(beam_size=1, **settings)
    batch = make_batch(SEARCH_SOURCES, [[]] * len(SEARCH_SOURCES))
    with torch.no_grad():
        state = model.init_state(model.encode(batch.source, batch.source_lengths))
        greedy = greedy_search(model, state, batch.source_lengths, config)
        beam = beam_search(model, state, batch.source_lengths, config)
    for greedy_hypotheses, beam_hypotheses in zip(greedy, beam, strict=True):
        assert_same_hypotheses(beam_hypotheses, greedy_hypotheses)


# ------------------------------------------------------------------ gradients


@pytest.mark.parametrize(
    ("style", "attention", "input_feeding"),
    [("luong", "general", True), ("bahdanau", "location", False), ("luong", "dot", False)],
)
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_gradients_reach_every_parameter(cell, style, attention, input_feeding):
    model = make_model(style, cell, attention, input_feeding, num_layers=2).train()
    loss, tokens = sequence_loss(model, make_batch(SOURCES, TARGETS), label_smoothing=0.1)
    assert tokens == sum(len(target) + 1 for target in TARGETS)
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


# ------------------------------------------------------------------ bridge, tying, sharing


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_zero_bridge_starts_from_zeros(cell):
    model = make_model(cell=cell, bridge="zeros", num_layers=2)
    assert model.bridge is None
    batch = make_batch(SOURCES, TARGETS)
    state = model.init_state(model.encode(batch.source, batch.source_lengths))
    zeros = torch.zeros(len(SOURCES), 2, H, dtype=torch.float64)
    assert torch.equal(state.hidden, zeros)
    if cell == "gru":
        assert state.cell is None
    else:
        assert state.cell is not None and torch.equal(state.cell, zeros)


def test_linear_bridge_reads_the_encoders_final_states():
    model = make_model(num_layers=2)
    batch = make_batch(SOURCES, TARGETS)
    with torch.no_grad():
        encoded = model.encode(batch.source, batch.source_lengths)
        state = model.init_state(encoded)
    # The top layer ends forward at each source's last token, backward at its first.
    half = model.config.encoder.hidden_size
    rows = torch.arange(len(SOURCES))
    forward_final = encoded.memory[rows, batch.source_lengths - 1, :half]  # (B, H_enc)
    backward_final = encoded.memory[:, 0, half:]  # (B, H_enc)
    torch.testing.assert_close(encoded.final[-2], forward_final)
    torch.testing.assert_close(encoded.final[-1], backward_final)
    summary = torch.cat([forward_final, backward_final], dim=-1)  # (B, 2 H_enc)
    assert model.bridge is not None
    expected = torch.tanh(model.bridge(summary)).view(len(SOURCES), 2, H)  # (B, L, H)
    torch.testing.assert_close(state.hidden, expected)
    assert not torch.allclose(state.hidden[0], state.hidden[1])  # it depends on the source


def test_tie_output_shares_the_target_embedding_matrix():
    config = Seq2SeqConfig(
        embedding_size=E,
        tie_output=True,
        encoder=EncoderConfig(hidden_size=8),
        decoder=DecoderConfig(hidden_size=H, attentional_size=E),
    )
    model = Seq2Seq(SOURCE_VOCAB, TARGET_VOCAB, config, PAD, BOS, EOS)
    assert model.output_layer.weight is model.target_embedding.weight
    assert model.source_embedding.weight is not model.target_embedding.weight
    shared = [p for p in model.parameters() if p is model.target_embedding.weight]
    assert len(shared) == 1  # counted (and optimised) once
    with pytest.raises(ConfigError, match="tie_output"):
        Seq2SeqConfig(embedding_size=E, tie_output=True, decoder=DecoderConfig(hidden_size=H))
    with pytest.raises(ConfigError, match="tie_output"):
        Seq2SeqConfig(
            embedding_size=E,
            tie_output=True,
            decoder=DecoderConfig(hidden_size=E, attentional_size=H),
        )


def test_share_embeddings_uses_one_matrix_and_needs_one_vocabulary():
    config = Seq2SeqConfig(
        embedding_size=E,
        share_embeddings=True,
        encoder=EncoderConfig(hidden_size=8),
        decoder=DecoderConfig(hidden_size=H),
    )
    model = Seq2Seq(TARGET_VOCAB, TARGET_VOCAB, config, PAD, BOS, EOS)
    assert model.source_embedding is model.target_embedding
    with pytest.raises(ConfigError, match="share_embeddings"):
        Seq2Seq(SOURCE_VOCAB, TARGET_VOCAB, config, PAD, BOS, EOS)


def test_multi_head_attention_needs_divisible_size():
    config = Seq2SeqConfig(
        embedding_size=E,
        encoder=EncoderConfig(hidden_size=8),
        decoder=DecoderConfig(hidden_size=H, attention="multi_head", attention_size=10),
    )
    with pytest.raises(ConfigError, match="divisible"):
        Seq2Seq(SOURCE_VOCAB, TARGET_VOCAB, config, PAD, BOS, EOS)


# ------------------------------------------------------------------ loss


def manual_token_losses(model: Seq2Seq, batch: TranslationBatch) -> tuple[torch.Tensor, ...]:
    """Per real target token: its negative log-probability, and the mean over V of all."""
    log_probs = teacher_forced_log_probs(model, batch)  # (B, T, V)
    valid = batch.target_output != PAD  # (B, T)
    gold = log_probs.gather(-1, batch.target_output.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return -gold[valid], -log_probs.mean(dim=-1)[valid]  # (N,), (N,)


def test_loss_without_smoothing_is_cross_entropy_over_real_tokens():
    model = make_model()
    batch = make_batch(SOURCES, TARGETS)
    with torch.no_grad():
        loss, tokens = sequence_loss(model, batch, label_smoothing=0.0)
        negative_log_likelihood, _ = manual_token_losses(model, batch)
    assert tokens == negative_log_likelihood.numel() == sum(len(t) + 1 for t in TARGETS)
    assert float(loss) == pytest.approx(float(negative_log_likelihood.mean()), rel=1e-6)


def test_label_smoothing_mixes_in_the_uniform_distribution():
    model = make_model()
    batch = make_batch(SOURCES, TARGETS)
    epsilon = 0.1
    with torch.no_grad():
        loss, _ = sequence_loss(model, batch, label_smoothing=epsilon)
        negative_log_likelihood, uniform = manual_token_losses(model, batch)
    expected = (1 - epsilon) * negative_log_likelihood.mean() + epsilon * uniform.mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)


def test_output_layer_runs_only_on_real_target_positions(monkeypatch):
    from attnrnn.models import target_side

    model = make_model()
    batch = make_batch(SOURCES, TARGETS)
    rows: list[int] = []
    fused = target_side.linear_cross_entropy

    def recording(inputs, *arguments):  # the fused output layer + loss (training)
        rows.append(inputs.shape[0])
        return fused(inputs, *arguments)

    monkeypatch.setattr(target_side, "linear_cross_entropy", recording)
    handle = model.output_layer.register_forward_hook(
        lambda module, inputs, output: rows.append(inputs[0].shape[0])
    )
    try:
        _, tokens = sequence_loss(model, batch, label_smoothing=0.1)
        with torch.no_grad():  # the plain output layer (evaluation)
            sequence_loss(model, batch, label_smoothing=0.1)
    finally:
        handle.remove()
    assert rows == [tokens, tokens]
    assert tokens < batch.target_output.numel()  # the batch does hold padding


# ------------------------------------------------------------------ a toy task

DIGITS = range(4, 14)  # ten digit tokens after the four specials
TOY_VOCAB = 14


def random_digit_sequences(
    generator: torch.Generator, count: int, shortest: int = 3, longest: int = 8
) -> list[list[int]]:
    lengths = torch.randint(shortest, longest + 1, (count,), generator=generator).tolist()
    digits = torch.randint(DIGITS[0], DIGITS[-1] + 1, (count, longest), generator=generator)
    return [row[:length] for row, length in zip(digits.tolist(), lengths, strict=True)]


def train_reverser(
    seed: int, steps: int = 400, batch_size: int = 64
) -> tuple[Seq2Seq, set[tuple[int, ...]]]:
    """A small Luong GRU model with additive attention, trained to reverse digit
    sequences with Adam and a linearly decaying learning rate; and the sources it saw."""
    torch.manual_seed(seed)
    config = Seq2SeqConfig(
        embedding_size=16,
        embedding_dropout=0.0,
        encoder=EncoderConfig(cell="gru", hidden_size=16),
        decoder=DecoderConfig(
            style="luong",
            cell="gru",
            hidden_size=32,
            attention="additive",
            attention_size=16,
            output_dropout=0.0,
        ),
    )
    model = Seq2Seq(TOY_VOCAB, TOY_VOCAB, config, PAD, BOS, EOS)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    generator = torch.Generator().manual_seed(seed)
    seen: set[tuple[int, ...]] = set()
    for _ in range(steps):
        sources = random_digit_sequences(generator, batch_size)
        seen.update(tuple(source) for source in sources)
        batch = make_batch(sources, [source[::-1] for source in sources])
        loss, _ = sequence_loss(model, batch, label_smoothing=0.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model, seen


def test_reversal_task_trains_to_exact_match_with_antidiagonal_attention():
    model, seen = train_reverser(seed=0)
    candidates = random_digit_sequences(torch.Generator().manual_seed(100), 200, shortest=4)
    held_out = [source for source in candidates if tuple(source) not in seen]
    assert len(held_out) > 100
    search_config = SearchConfig(beam_size=1)
    padded, lengths = pad_sequences(held_out, PAD)  # (B, S), (B,)
    with torch.no_grad():
        state = model.init_state(model.encode(padded, lengths))
        hypotheses = search(model, state, lengths, search_config)
    outputs = [n_best[0].tokens for n_best in hypotheses]
    assert outputs == [source[::-1] for source in held_out]

    # Output step t (predicting x_{L-1-t}) attends most to source position L-1-t.
    batch = make_batch(held_out, [source[::-1] for source in held_out])
    with torch.no_grad():
        attention = model(batch.source, batch.source_lengths, batch.target_input).attention
    hits = total = 0
    for row, source in enumerate(held_out):
        length = len(source)
        focus = attention[row, :length].argmax(dim=-1)  # (L,) source position per output step
        hits += int((focus == torch.arange(length - 1, -1, -1)).sum())
        total += length
    assert hits / total > 0.9
