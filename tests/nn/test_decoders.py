"""RNNDecoder and location-aware attention: the fused teacher-forced path equals the loop
over ``step``, state reordering touches every field, and location-aware attention keeps
the attention contract while reading (and the decoder carrying) the previous weights.

Models are small, random and in float64, so that equal computations compare tightly.
"""

from __future__ import annotations

from dataclasses import fields, replace

import pytest
import torch
import torch.nn.functional as F

from attnrnn.errors import ConfigError
from attnrnn.nn import build_attention, lengths_to_mask, masked_softmax
from attnrnn.nn.attention import LocationAwareAttention
from attnrnn.nn.decoders import DecoderState, RNNDecoder

B, S, T = 3, 6, 5  # batch, source length, target length
E, M, H, A = 16, 10, 12, 14  # embedding, memory, decoder hidden, attentional sizes
LENGTHS = torch.tensor([6, 3, 1])
ATTENTION_NAMES = ["additive", "dot", "general", "scaled_dot", "location"]


def make_attention(name: str, memory_size: int) -> torch.nn.Module:
    if name == "location":
        return LocationAwareAttention(H, memory_size, 8, channels=3, kernel_size=5)
    return build_attention(name, H, memory_size, 8)


def make_decoder(
    style: str = "luong",
    cell: str = "gru",
    attention: str = "additive",
    input_feeding: bool = True,
    num_layers: int = 1,
) -> RNNDecoder:
    """A random float64 decoder in eval mode; dot attention gets memory size M = H."""
    torch.manual_seed(0)
    memory_size = H if attention in ("dot", "scaled_dot") else M
    decoder = RNNDecoder(
        style,  # type: ignore[arg-type]
        E,
        memory_size,
        H,
        make_attention(attention, memory_size),  # type: ignore[arg-type]
        A,
        num_layers=num_layers,
        cell=cell,
        dropout=0.3,  # eval mode: no effect
        input_feeding=input_feeding,
    )
    return decoder.double().eval()


def make_inputs(decoder: RNNDecoder) -> tuple[DecoderState, torch.Tensor]:
    """An initial state over random memory (zero on padding) and target embeddings (B, T, E)."""
    generator = torch.Generator().manual_seed(1)
    memory_size = decoder.attentional_layer.in_features - H
    mask = lengths_to_mask(LENGTHS, S)  # (B, S)
    memory = torch.randn(B, S, memory_size, generator=generator, dtype=torch.float64)
    memory = memory * mask.unsqueeze(-1)  # (B, S, M)
    hidden = torch.randn(B, decoder.num_layers, H, generator=generator, dtype=torch.float64)
    embedded = torch.randn(B, T, E, generator=generator, dtype=torch.float64)
    return decoder.initial_state(memory, mask, hidden), embedded


def loop_over_steps(
    decoder: RNNDecoder, embedded: torch.Tensor, state: DecoderState
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attentional vectors (B, T, A) and weights (B, T, S), one ``step`` at a time."""
    vectors, weights = [], []
    for position in range(embedded.size(1)):
        attentional, state, step_weights = decoder.step(embedded[:, position], state)
        vectors.append(attentional)
        weights.append(step_weights)
    return torch.stack(vectors, dim=1), torch.stack(weights, dim=1)


# ------------------------------------------------------------------ fused path


@pytest.mark.parametrize("attention", ATTENTION_NAMES)
@pytest.mark.parametrize("input_feeding", [True, False])
@pytest.mark.parametrize("style", ["bahdanau", "luong"])
def test_fused_exactly_for_luong_without_input_feeding_or_location(style, input_feeding, attention):
    decoder = make_decoder(style, attention=attention, input_feeding=input_feeding)
    expected = style == "luong" and not input_feeding and attention != "location"
    assert decoder.fused is expected
    assert decoder.input_feeding is (style == "luong" and input_feeding)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("attention", ["additive", "dot", "general", "scaled_dot"])
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_fused_forward_equals_loop_over_step(cell, attention, num_layers, monkeypatch):
    decoder = make_decoder("luong", cell, attention, input_feeding=False, num_layers=num_layers)
    assert decoder.fused
    state, embedded = make_inputs(decoder)
    with torch.no_grad():
        expected_vectors, expected_weights = loop_over_steps(decoder, embedded, state)
        # The fused path must not fall back on step (or the comparison would prove nothing).
        with monkeypatch.context() as patch:
            patch.setattr(decoder, "step", lambda *args: pytest.fail("fused forward called step"))
            vectors, weights = decoder(embedded, state)
    assert vectors.shape == (B, T, A) and weights.shape == (B, T, S)
    torch.testing.assert_close(vectors, expected_vectors)
    torch.testing.assert_close(weights, expected_weights)


@pytest.mark.parametrize(
    ("style", "attention", "input_feeding"),
    [("bahdanau", "additive", False), ("luong", "general", True), ("luong", "location", False)],
)
def test_looped_forward_equals_loop_over_step(style, attention, input_feeding):
    decoder = make_decoder(style, "lstm", attention, input_feeding, num_layers=2)
    assert not decoder.fused
    state, embedded = make_inputs(decoder)
    with torch.no_grad():
        vectors, weights = decoder(embedded, state)
        expected_vectors, expected_weights = loop_over_steps(decoder, embedded, state)
    torch.testing.assert_close(vectors, expected_vectors, rtol=0, atol=0)
    torch.testing.assert_close(weights, expected_weights, rtol=0, atol=0)


def test_bahdanau_ignores_input_feeding():
    decoder = make_decoder("bahdanau", input_feeding=True)
    state, embedded = make_inputs(decoder)
    assert not decoder.input_feeding and state.input_feed is None
    assert decoder.rnn.input_size == E + M  # [y_{t-1}; c_t]
    _, new_state, _ = decoder.step(embedded[:, 0], state)
    assert new_state.input_feed is None


def test_input_feeding_carries_the_attentional_vector():
    decoder = make_decoder("luong", input_feeding=True)
    state, embedded = make_inputs(decoder)
    assert decoder.rnn.input_size == E + A
    assert state.input_feed is not None and torch.equal(
        state.input_feed, torch.zeros(B, A).double()
    )
    attentional, new_state, _ = decoder.step(embedded[:, 0], state)
    assert new_state.input_feed is attentional
    # The fed vector changes the next step: feeding zeros instead gives another output.
    next_vector, _, _ = decoder.step(embedded[:, 1], new_state)
    zero_fed, _, _ = decoder.step(embedded[:, 1], replace(new_state, input_feed=state.input_feed))
    assert not torch.allclose(next_vector, zero_fed)


def test_weights_keep_the_contract_and_coverage_sums_them():
    decoder = make_decoder("bahdanau", "gru", "additive")
    state, embedded = make_inputs(decoder)
    mask = lengths_to_mask(LENGTHS, S)
    total = torch.zeros(B, S, dtype=torch.float64)
    for position in range(T):
        _, state, weights = decoder.step(embedded[:, position], state)
        assert torch.all(weights[~mask] == 0)
        torch.testing.assert_close(weights.sum(-1), torch.ones(B, dtype=torch.float64))
        total = total + weights
    torch.testing.assert_close(state.coverage, total)


# ------------------------------------------------------------------ DecoderState.select


def stepped_state(decoder: RNNDecoder) -> tuple[DecoderState, torch.Tensor]:
    """The state after one step (so input feed and previous weights are not all zero)."""
    state, embedded = make_inputs(decoder)
    _, state, _ = decoder.step(embedded[:, 0], state)
    return state, embedded


def test_select_reorders_and_expands_every_field():
    decoder = make_decoder("luong", "lstm", "location", input_feeding=True, num_layers=2)
    state, embedded = stepped_state(decoder)
    assert all(getattr(state, item.name) is not None for item in fields(state))
    indices = torch.tensor([2, 0, 0, 1, 2])  # reorder and repeat rows
    selected = state.select(indices)
    for item in fields(state):
        torch.testing.assert_close(
            getattr(selected, item.name), getattr(state, item.name)[indices], rtol=0, atol=0
        )
    # A step on the selected rows equals the selected rows of a step on all of them.
    expected, expected_state, expected_weights = decoder.step(embedded[:, 1], state)
    vectors, new_state, weights = decoder.step(embedded[indices, 1], selected)
    torch.testing.assert_close(vectors, expected[indices])
    torch.testing.assert_close(weights, expected_weights[indices])
    torch.testing.assert_close(new_state.hidden, expected_state.hidden[indices])
    assert new_state.cell is not None and expected_state.cell is not None
    torch.testing.assert_close(new_state.cell, expected_state.cell[indices])


def test_select_keeps_none_fields_none():
    decoder = make_decoder("luong", "gru", "dot", input_feeding=False)
    state, _ = stepped_state(decoder)
    none_fields = {"cell", "input_feed", "previous_weights", "projected_keys"}
    assert {item.name for item in fields(state) if getattr(state, item.name) is None} == none_fields
    indices = torch.tensor([1, 1, 2])
    selected = state.select(indices)
    for item in fields(state):
        value = getattr(selected, item.name)
        if item.name in none_fields:
            assert value is None
        else:
            torch.testing.assert_close(value, getattr(state, item.name)[indices], rtol=0, atol=0)


# ------------------------------------------------------------------ location-aware attention


def make_location(key_size: int = M) -> LocationAwareAttention:
    torch.manual_seed(2)
    return LocationAwareAttention(H, key_size, 8, channels=4, kernel_size=5).double()


def location_inputs() -> tuple[torch.Tensor, ...]:
    """query (B, 1, H), keys (B, S, M), mask (B, S), previous weights (B, S) valid on the mask."""
    generator = torch.Generator().manual_seed(3)
    query = torch.randn(B, 1, H, generator=generator, dtype=torch.float64)
    keys = torch.randn(B, S, M, generator=generator, dtype=torch.float64)
    mask = lengths_to_mask(LENGTHS, S)
    scores = torch.randn(B, S, generator=generator, dtype=torch.float64)
    return query, keys, mask, masked_softmax(scores, mask)


def test_location_attention_respects_the_mask():
    attention = make_location()
    query, keys, mask, previous = location_inputs()
    for previous_weights in (previous, None):
        context, weights = attention(query, keys, keys, mask, previous_weights=previous_weights)
        assert context.shape == (B, 1, M) and weights.shape == (B, 1, S)
        assert torch.all(weights[~mask.unsqueeze(1)] == 0)
        torch.testing.assert_close(weights.sum(-1), torch.ones(B, 1, dtype=torch.float64))
        torch.testing.assert_close(context, weights @ keys)


def test_location_attention_equals_its_formula():
    attention = make_location()
    query, keys, mask, previous = location_inputs()
    _, weights = attention(query, keys, keys, mask, previous_weights=previous)
    # f = conv(previous) (B, C, S); score_s = v^T tanh(W_q q + W_k k_s + b + U f_s)
    features = F.conv1d(previous.unsqueeze(1), attention.location_convolution.weight, padding=2)
    hidden = (
        query @ attention.query_projection.weight.T
        + keys @ attention.key_projection.weight.T
        + attention.key_projection.bias
        + features.transpose(1, 2) @ attention.location_projection.weight.T
    )  # (B, S, 8)
    scores = (torch.tanh(hidden) @ attention.energy.weight.T).squeeze(-1)  # (B, S)
    torch.testing.assert_close(weights.squeeze(1), masked_softmax(scores, mask))


def test_location_first_step_without_previous_weights_is_all_zero_history():
    attention = make_location()
    query, keys, mask, _ = location_inputs()
    without = attention(query, keys, keys, mask)
    zeros = attention(query, keys, keys, mask, previous_weights=torch.zeros(B, S).double())
    torch.testing.assert_close(without, zeros)


def test_location_weights_shift_with_the_previous_weights():
    """With identical keys only the location features tell positions apart, so moving
    the previous attention one position right moves the new attention with it."""
    attention = make_location()
    length = 12
    generator = torch.Generator().manual_seed(4)
    query = torch.randn(1, 1, H, generator=generator, dtype=torch.float64)
    keys = torch.randn(1, 1, M, generator=generator, dtype=torch.float64).expand(1, length, M)
    mask = torch.ones(1, length, dtype=torch.bool)
    one_hot = torch.eye(length, dtype=torch.float64)
    _, first = attention(query, keys, keys, mask)
    _, at_four = attention(query, keys, keys, mask, previous_weights=one_hot[4:5])
    _, at_five = attention(query, keys, keys, mask, previous_weights=one_hot[5:6])
    uniform = torch.full((1, 1, length), 1.0 / length, dtype=torch.float64)
    torch.testing.assert_close(first, uniform)  # no history, no preference
    assert (at_four - uniform).abs().max() > 1e-5  # the convolution sees the history
    torch.testing.assert_close(at_five, at_four.roll(1, dims=-1))


def test_location_attention_scores_one_step_at_a_time():
    attention = make_location()
    query, keys, mask, previous = location_inputs()
    with pytest.raises(ValueError, match="one step"):
        attention(query.expand(B, 2, H), keys, keys, mask, previous_weights=previous)
    with pytest.raises(ConfigError, match="odd"):
        LocationAwareAttention(H, M, 8, kernel_size=4)


def test_location_decoder_carries_previous_weights():
    decoder = make_decoder("bahdanau", "gru", "location")
    state, embedded = make_inputs(decoder)
    assert decoder.attention.uses_previous_weights
    assert state.previous_weights is not None
    assert torch.equal(state.previous_weights, torch.zeros(B, S).double())
    _, state, first = decoder.step(embedded[:, 0], state)
    assert state.previous_weights is first
    second_vector, second_state, second = decoder.step(embedded[:, 1], state)
    assert second_state.previous_weights is second
    torch.testing.assert_close(second_state.coverage, first + second)
    # The carried weights reach the attention: other previous weights, other attention.
    moved = replace(state, previous_weights=first.roll(1, dims=-1) * lengths_to_mask(LENGTHS, S))
    other_vector, _, other = decoder.step(embedded[:, 1], moved)
    assert not torch.allclose(other[0], second[0])
    assert not torch.allclose(other_vector[0], second_vector[0])


def test_decoders_without_location_attention_keep_no_previous_weights():
    decoder = make_decoder("luong", "gru", "general")
    state, embedded = make_inputs(decoder)
    assert state.previous_weights is None
    _, state, _ = decoder.step(embedded[:, 0], state)
    assert state.previous_weights is None
