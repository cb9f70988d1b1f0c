"""attnrnn.nn.Dropout: the cheaper CPU mask drops the asked fraction, uniformly over
positions, keeps the expectation, passes gradients through the same mask, follows
the seed, and behaves like nn.Dropout at the edges (eval, p = 0, p = 1)."""

from __future__ import annotations

import pytest
import torch

from attnrnn.nn import Dropout
from attnrnn.nn.dropout import dropout, dropout_keep_mask


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_drops_the_asked_fraction_at_every_position(p):
    torch.manual_seed(0)
    keep, dropped = dropout_keep_mask((400_000,), p)
    assert abs(dropped - p) <= 2**-16
    assert keep.dtype == torch.bool and keep.shape == (400_000,)
    # Each 64-bit draw gives four numbers: every one of the four slots is fair.
    slots = keep.view(-1, 4).float().mean(0)
    assert torch.all((slots - (1 - p)).abs() < 0.006), slots
    # Neighbours are independent: P(both kept) = (1 - p)^2.
    pairs = (keep[:-1] & keep[1:]).float().mean().item()
    assert abs(pairs - (1 - p) ** 2) < 0.006


def test_keeps_the_expectation_and_shape():
    torch.manual_seed(1)
    inputs = torch.full((50, 40, 30), 2.0)
    outputs = dropout(inputs, 0.3)
    assert outputs.shape == inputs.shape
    assert abs(outputs.mean().item() - 2.0) < 0.02
    kept = outputs[outputs != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 2.0 / (1 - 0.3)), rtol=1e-4, atol=0)


def test_gradient_goes_through_the_same_mask():
    torch.manual_seed(2)
    inputs = torch.randn(64, 33, requires_grad=True)
    outputs = dropout(inputs, 0.4)
    outputs.sum().backward()
    assert inputs.grad is not None
    scale = outputs.detach() / inputs.detach()
    torch.testing.assert_close(inputs.grad, scale)


def test_same_seed_same_mask_and_odd_sizes():
    inputs = torch.ones(3, 7, 5)  # 105 elements: not a multiple of four
    torch.manual_seed(3)
    first = dropout(inputs, 0.5)
    torch.manual_seed(3)
    second = dropout(inputs, 0.5)
    assert torch.equal(first, second)
    assert 0 < (first == 0).sum() < first.numel()


def test_module_edges():
    inputs = torch.randn(10, 10)
    layer = Dropout(0.5)
    layer.eval()
    assert layer(inputs) is inputs
    layer.train()
    assert torch.equal(Dropout(0.0)(inputs), inputs)
    assert torch.count_nonzero(Dropout(1.0)(inputs)) == 0
    assert "p=0.5" in repr(layer)
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.5)
    integers = torch.arange(6)
    assert torch.equal(dropout(integers, 0.0), integers)
