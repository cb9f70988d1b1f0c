"""The hand-written backward pass of the Luong GRU decoder with additive attention
(attnrnn.nn.fused_decoder): the same values and gradients as the steps run through
autograd, for every input and parameter, with padding, with a gradient on the
attention weights, and inside a whole Seq2Seq training step; and it is only taken
where it applies. ``hand_written(False)`` (attnrnn.nn.fast_paths) gives the autograd path.
"""

from __future__ import annotations

import pytest
import torch

from attnrnn.config import EncoderConfig
from attnrnn.models.seq2seq import Seq2Seq, Seq2SeqConfig
from attnrnn.models.target_side import DecoderConfig
from attnrnn.nn import build_attention, hand_written, lengths_to_mask
from attnrnn.nn.decoders import RNNDecoder
from attnrnn.nn.fused_decoder import LuongGRUAdditive

B, S, T = 4, 7, 6
E, M, H, K, A = 9, 10, 12, 8, 11
LENGTHS = torch.tensor([7, 3, 5, 1])


def make_decoder(dtype: torch.dtype = torch.float64) -> RNNDecoder:
    torch.manual_seed(0)
    attention = build_attention("additive", H, M, K)
    decoder = RNNDecoder("luong", E, M, H, attention, A, input_feeding=True)
    return decoder.to(dtype)


def run(decoder: RNNDecoder, hand: bool, dtype: torch.dtype, weight_gradient: bool):
    """Outputs and every gradient (inputs, then parameters in order) of one pass."""
    generator = torch.Generator().manual_seed(1)
    memory = torch.randn(B, S, M, generator=generator, dtype=dtype)
    embedded = torch.randn(B, T, E, generator=generator, dtype=dtype)
    hidden = torch.randn(B, 1, H, generator=generator, dtype=dtype)
    grad_vectors = torch.randn(B, T, A, generator=generator, dtype=dtype)
    grad_weights = torch.randn(B, T, S, generator=generator, dtype=dtype)
    inputs = [x.requires_grad_() for x in (memory, embedded, hidden)]
    mask = lengths_to_mask(LENGTHS, S)
    decoder.zero_grad(set_to_none=True)
    with hand_written(hand):
        state = decoder.initial_state(memory, mask, hidden)
        assert decoder._runs_hand_written(embedded, state) is hand
        vectors, weights = decoder(embedded, state)
    assert (type(vectors.grad_fn).__name__ == "LuongGRUAdditiveBackward") is hand
    loss = (vectors * grad_vectors).sum()
    if weight_gradient:
        loss = loss + (weights * grad_weights).sum()
    loss.backward()
    gradients = [x.grad for x in inputs] + [p.grad for p in decoder.parameters()]
    return vectors.detach(), weights.detach(), gradients


@pytest.mark.parametrize("weight_gradient", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_same_values_and_gradients_as_autograd(dtype, weight_gradient):
    decoder = make_decoder(dtype)
    names = ["memory", "embedded", "hidden"] + [n for n, _ in decoder.named_parameters()]
    vectors, weights, gradients = run(decoder, True, dtype, weight_gradient)
    expected_vectors, expected_weights, expected = run(decoder, False, dtype, weight_gradient)
    tolerance = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {}
    torch.testing.assert_close(vectors, expected_vectors, **tolerance)
    torch.testing.assert_close(weights, expected_weights, **tolerance)
    assert weights[1, :, 3:].abs().max() == 0  # padding gets no attention
    for name, got, want in zip(names, gradients, expected, strict=True):
        assert got is not None and want is not None, name
        assert want.abs().max() > 0, name  # every gradient is exercised
        torch.testing.assert_close(got, want, **tolerance, msg=lambda m, n=name: f"{n}: {m}")


def test_gradcheck():
    decoder = make_decoder()
    generator = torch.Generator().manual_seed(2)
    small_b, small_s, small_t = 2, 3, 3
    memory = torch.randn(small_b, small_s, M, generator=generator, dtype=torch.float64)
    keys = decoder.attention.precompute(memory).detach()
    mask = lengths_to_mask(torch.tensor([3, 2]), small_s)
    weights = [
        decoder.rnn.weight_ih_l0,
        decoder.rnn.weight_hh_l0,
        decoder.rnn.bias_ih_l0,
        decoder.rnn.bias_hh_l0,
        decoder.attention.query_projection.weight,
        decoder.attention.energy.weight,
        decoder.attentional_layer.weight,
        decoder.attentional_layer.bias,
    ]
    arguments = (
        torch.randn(small_b, small_t, E, generator=generator, dtype=torch.float64),
        torch.randn(small_b, H, generator=generator, dtype=torch.float64),
        memory,
        keys,
        mask,
        *[w.detach().clone() for w in weights],
    )
    for argument in arguments:
        if argument.is_floating_point():
            argument.requires_grad_()
    assert torch.autograd.gradcheck(LuongGRUAdditive.apply, arguments)


def test_taken_only_where_it_applies():
    decoder = make_decoder()
    memory = torch.randn(B, S, M, dtype=torch.float64)
    state = decoder.initial_state(memory, lengths_to_mask(LENGTHS, S), torch.zeros(B, 1, H))
    embedded = torch.randn(B, T, E, dtype=torch.float64)
    assert decoder._runs_hand_written(embedded, state)
    with torch.no_grad():  # search and evaluation step through autograd-free code
        assert not decoder._runs_hand_written(embedded, state)
    with hand_written(False):  # the switch of attnrnn.nn.fast_paths
        assert not decoder._runs_hand_written(embedded, state)
    assert not decoder._runs_hand_written(embedded.float(), state)  # mixed precision
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not decoder._runs_hand_written(embedded, state)
    for attention in ("general", "location", "coverage"):
        other = RNNDecoder(
            "luong", E, M, H, build_attention(attention, H, M, K), A, input_feeding=True
        ).double()
        assert not other._runs_hand_written(
            embedded,
            other.initial_state(
                memory, state.memory_mask, torch.zeros(B, 1, H, dtype=torch.float64)
            ),
        )
    lstm = RNNDecoder("luong", E, M, H, build_attention("additive", H, M, K), A, cell="lstm")
    lstm = lstm.double()
    lstm_state = lstm.initial_state(memory, state.memory_mask, torch.zeros(B, 1, H).double())
    assert not lstm._runs_hand_written(embedded, lstm_state)


def test_seq2seq_training_step_matches_autograd():
    """The whole model (shared and tied embeddings, BiGRU encoder, bridge, dropout,
    fused output layer and label-smoothed loss) gets the same loss and gradients
    with every hand-written path (encoder, decoder, output loss) and with none."""
    config = Seq2SeqConfig(
        embedding_size=A,
        embedding_dropout=0.3,
        share_embeddings=True,
        tie_output=True,
        encoder=EncoderConfig(hidden_size=5, num_layers=2),
        decoder=DecoderConfig(
            hidden_size=H, attention="additive", attention_size=K, attentional_size=A
        ),
    )
    model = Seq2Seq(20, 20, config, 0, 1, 2).double().train()
    assert model.decoder.input_feeding
    source = torch.randint(3, 20, (3, 5))
    lengths = torch.tensor([5, 4, 2])
    target_input = torch.randint(3, 20, (3, 4))
    target_output = torch.randint(3, 20, (3, 4))
    results = []
    for hand in (True, False):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(5)  # the same dropout masks
        with hand_written(hand):
            output = model(source, lengths, target_input)
            attentional = output.attentional.flatten(0, 1)
            loss = model.output_loss(attentional, target_output.flatten(), 0.1)
        assert (type(loss.grad_fn).__name__ == "_LinearCrossEntropyBackward") is hand
        loss.backward()
        results.append([loss.detach()] + [p.grad for p in model.parameters()])
    for got, want in zip(*results, strict=True):
        assert got is not None and want is not None
        torch.testing.assert_close(got, want)
