"""Attention pooling (the article's model) and the recurrent encoder."""

from __future__ import annotations

import pytest
import torch

from attnrnn.nn import AttentionPooling, RNNEncoder, lengths_to_mask


def test_pooling_matches_the_article_formula():
    torch.manual_seed(0)
    pooling = AttentionPooling(input_size=6, attention_size=4, hops=1)
    hidden = torch.randn(2, 5, 6)
    lengths = torch.tensor([5, 3])
    output = pooling(hidden, lengths_to_mask(lengths, 5))
    for b in range(2):
        n = int(lengths[b])
        scores = torch.stack(
            [
                pooling.energy.weight[0]
                @ torch.tanh(pooling.projection.weight @ hidden[b, t] + pooling.projection.bias)
                for t in range(n)
            ]
        )  # e_t = v^T tanh(W h_t + b)
        weights = torch.softmax(scores, dim=0)
        pooled = (weights.unsqueeze(1) * hidden[b, :n]).sum(0)  # c = sum_t a_t h_t
        torch.testing.assert_close(output.weights[b, 0, :n], weights)
        assert torch.all(output.weights[b, 0, n:] == 0)
        torch.testing.assert_close(output.pooled[b], pooled)
    assert output.penalty.item() == 0.0


def test_multi_hop_shapes_and_penalty():
    torch.manual_seed(1)
    pooling = AttentionPooling(input_size=6, attention_size=4, hops=3)
    hidden = torch.randn(2, 5, 6)
    mask = lengths_to_mask(torch.tensor([5, 2]), 5)
    output = pooling(hidden, mask)
    assert output.pooled.shape == (2, 18)
    assert output.weights.shape == (2, 3, 5)
    torch.testing.assert_close(output.weights.sum(-1), torch.ones(2, 3))
    A = output.weights
    expected = ((A @ A.transpose(1, 2) - torch.eye(3)) ** 2).sum(dim=(1, 2)).mean()
    torch.testing.assert_close(output.penalty, expected)
    assert output.penalty > 0


def test_penalty_is_zero_for_orthogonal_one_hot_hops():
    pooling = AttentionPooling(input_size=3, attention_size=3, hops=3)
    weights = torch.eye(3).unsqueeze(0)  # (1, 3, 3): each hop on its own step
    assert pooling._penalty(weights).item() == 0.0


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_encoder_padding_invariance_and_gradients(cell, bidirectional, num_layers):
    torch.manual_seed(2)
    encoder = RNNEncoder(4, 5, num_layers=num_layers, cell=cell, bidirectional=bidirectional)
    short = torch.randn(1, 3, 4)
    batch = torch.cat([torch.cat([short, torch.zeros(1, 4, 4)], dim=1), torch.randn(1, 7, 4)])
    alone = encoder(short, torch.tensor([3])).outputs
    together = encoder(batch, torch.tensor([3, 7])).outputs
    assert together.shape == (2, 7, encoder.output_size)
    torch.testing.assert_close(together[0, :3], alone[0], atol=1e-6, rtol=1e-5)
    assert torch.all(together[0, 3:] == 0)
    together.sum().backward()
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_encoder_equals_torch_rnn_with_packed_sequences():
    """Same weights, same outputs and final states as PyTorch's packed bidirectional RNN."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    torch.manual_seed(5)
    encoder = RNNEncoder(4, 5, num_layers=2, cell="lstm", bidirectional=True)
    reference = torch.nn.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True)
    with torch.no_grad():
        for layer in range(2):
            for direction, suffix in enumerate(("", "_reverse")):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    source = getattr(encoder.layers[layer][direction], f"{name}_l0")
                    getattr(reference, f"{name}_l{layer}{suffix}").copy_(source)
    inputs, lengths = torch.randn(3, 6, 4), torch.tensor([6, 2, 4])
    packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
    expected, (h, _) = reference(packed)
    expected, _ = pad_packed_sequence(expected, batch_first=True, total_length=6)
    output = encoder(inputs, lengths)
    torch.testing.assert_close(output.outputs, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(output.final, h, atol=1e-6, rtol=1e-5)


def test_reverse_within_lengths_keeps_padding_in_place():
    from attnrnn.nn.encoders import reverse_within_lengths

    sequences = torch.tensor([[1, 2, 3, 0], [4, 5, 6, 7]]).unsqueeze(-1)
    reversed_ = reverse_within_lengths(sequences, torch.tensor([3, 4])).squeeze(-1)
    assert reversed_.tolist() == [[3, 2, 1, 0], [7, 6, 5, 4]]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("reverse", [False, True])
def test_the_exported_rnn_layer_operator_equals_the_module(cell, reverse):
    """attnrnn::rnn_layer (what the ONNX export writes as ONNX's GRU / LSTM) gives the
    module's states on valid steps, reading backwards within each length in reverse,
    and zeros on padding."""
    from attnrnn.nn.encoders import RNN_WEIGHTS, reverse_within_lengths

    torch.manual_seed(0)
    rnn = (torch.nn.GRU if cell == "gru" else torch.nn.LSTM)(5, 4, batch_first=True)
    inputs, lengths = torch.randn(3, 6, 5), torch.tensor([6, 3, 1])
    with torch.no_grad():
        if reverse:
            expected = reverse_within_lengths(
                rnn(reverse_within_lengths(inputs, lengths))[0], lengths
            )
        else:
            expected = rnn(inputs)[0]
        weights = [getattr(rnn, name) for name in RNN_WEIGHTS]
        states = torch.ops.attnrnn.rnn_layer(inputs, lengths, *weights, cell, 4, reverse)
    mask = lengths_to_mask(lengths, 6).unsqueeze(-1)
    torch.testing.assert_close(states, expected * mask, atol=1e-6, rtol=1e-5)
    assert not states[~mask.squeeze(-1)].any()


def test_reverse_within_lengths_carries_gradients_to_the_rows_it_moved():
    from attnrnn.nn.encoders import reverse_within_lengths

    sequences = torch.arange(12.0).view(2, 3, 2).requires_grad_()
    weights = torch.arange(12.0).view(2, 3, 2)
    (reverse_within_lengths(sequences, torch.tensor([2, 3])) * weights).sum().backward()
    # row 0: steps 0 and 1 swap, step 2 (padding) stays; row 1: all three reverse
    expected = torch.stack([weights[0, [1, 0, 2]], weights[1, [2, 1, 0]]])
    torch.testing.assert_close(sequences.grad, expected)
