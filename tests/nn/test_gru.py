"""attnrnn.nn.gru: the hand-written GRU backward pass gives nn.GRU's values and
gradients, and the encoder takes it only for training a plain one-layer GRU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnrnn.nn import RNNEncoder, hand_written
from attnrnn.nn.gru import GRURecurrence, gru_states, runs_hand_written


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_same_values_and_gradients_as_nn_gru(dtype):
    torch.manual_seed(0)
    rnn = nn.GRU(5, 7, batch_first=True).to(dtype)
    inputs = torch.randn(3, 6, 5, dtype=dtype)
    grad = torch.randn(3, 6, 7, dtype=dtype)
    results = []
    for hand in (True, False):
        rnn.zero_grad(set_to_none=True)
        x = inputs.clone().requires_grad_()
        states = gru_states(rnn, x.transpose(0, 1)).transpose(0, 1) if hand else rnn(x)[0]
        (states * grad).sum().backward()
        results.append([states.detach(), x.grad] + [p.grad for p in rnn.parameters()])
    tolerance = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {}
    for got, want in zip(*results, strict=True):
        assert want.abs().max() > 0
        torch.testing.assert_close(got, want, **tolerance)


@pytest.mark.parametrize("reverse", [False, True])
def test_gradcheck(reverse):
    torch.manual_seed(1)
    H = 4
    arguments = (
        torch.randn(3, 2, 3 * H, dtype=torch.float64, requires_grad=True),
        torch.randn(3 * H, H, dtype=torch.float64, requires_grad=True),
        torch.randn(H, dtype=torch.float64, requires_grad=True),
        torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0]], dtype=torch.float64).unsqueeze(-1),
        reverse,
    )
    assert torch.autograd.gradcheck(GRURecurrence.apply, arguments)


def test_reverse_reads_each_row_from_its_last_valid_step():
    torch.manual_seed(3)
    rnn = nn.GRU(5, 4, batch_first=True).double()
    inputs = torch.randn(6, 3, 5, dtype=torch.float64)  # time-major
    lengths = [6, 2, 4]
    valid = (torch.arange(6).unsqueeze(1) < torch.tensor(lengths)).unsqueeze(-1).double()
    states = gru_states(rnn, inputs, valid, reverse=True)
    for row, length in enumerate(lengths):
        alone = rnn(inputs[:length, row].flip(0).unsqueeze(0))[0].squeeze(0).flip(0)
        torch.testing.assert_close(states[:length, row], alone)
        assert states[length:, row].abs().sum() == 0  # held at zero over the padding


def test_taken_only_for_training_a_plain_one_layer_gru():
    x = torch.randn(2, 3, 5)
    assert runs_hand_written(nn.GRU(5, 4, batch_first=True), x)
    assert not runs_hand_written(nn.LSTM(5, 4, batch_first=True), x)
    assert not runs_hand_written(nn.GRU(5, 4, num_layers=2, batch_first=True), x)
    assert not runs_hand_written(nn.GRU(5, 4, batch_first=True), x.double())
    with torch.no_grad():
        assert not runs_hand_written(nn.GRU(5, 4, batch_first=True), x)
    with hand_written(False):  # the switch of attnrnn.nn.fast_paths
        assert not runs_hand_written(nn.GRU(5, 4, batch_first=True), x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not runs_hand_written(nn.GRU(5, 4, batch_first=True), x)


def test_bidirectional_encoder_matches_the_autograd_path():
    torch.manual_seed(2)
    encoder = RNNEncoder(6, 5, num_layers=2, cell="gru", bidirectional=True).double()
    inputs = torch.randn(3, 7, 6, dtype=torch.float64)
    lengths = torch.tensor([7, 4, 1])
    results = []
    for hand in (True, False):
        encoder.zero_grad(set_to_none=True)
        x = inputs.clone().requires_grad_()
        with hand_written(hand):
            assert all(runs_hand_written(rnn, x) is hand for rnn in encoder.layers[0])
            output = encoder(x, lengths)
        (output.outputs.square().sum() + output.final.sum()).backward()
        results.append([output.outputs.detach(), x.grad] + [p.grad for p in encoder.parameters()])
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want)
