"""The fused label-smoothed cross-entropy equals PyTorch's, value and gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnrnn.nn.losses import (
    adaptive_cross_entropy,
    linear_cross_entropy,
    smoothed_cross_entropy,
)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equals_torch_cross_entropy_and_its_gradient(smoothing, dtype):
    generator = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(37, 11, generator=generator, dtype=dtype)).requires_grad_()
    targets = torch.randint(0, 11, (37,), generator=generator)
    expected_logits = logits.detach().clone().requires_grad_()
    loss = smoothed_cross_entropy(logits, targets, smoothing)
    expected = F.cross_entropy(expected_logits, targets, label_smoothing=smoothing)
    (2.5 * loss).backward()
    (2.5 * expected).backward()
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {}
    torch.testing.assert_close(loss, expected, **tolerance)
    torch.testing.assert_close(logits.grad, expected_logits.grad, **tolerance)


def test_gradcheck():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 4, 2, 2, 1, 3])
    assert torch.autograd.gradcheck(lambda x: smoothed_cross_entropy(x, targets, 0.2), (logits,))


def test_backward_twice_with_retained_graph_gives_the_same_gradient():
    logits = torch.randn(4, 7, requires_grad=True)
    loss = smoothed_cross_entropy(logits, torch.tensor([1, 2, 3, 6]), 0.1)
    loss.backward(retain_graph=True)
    first = logits.grad.clone()
    logits.grad = None
    loss.backward()
    torch.testing.assert_close(logits.grad, first)


def test_empty_batch_and_bad_shapes():
    empty = torch.zeros(0, 5, requires_grad=True)
    loss = smoothed_cross_entropy(empty, torch.zeros(0, dtype=torch.long), 0.1)
    loss.backward()
    assert loss.item() == 0.0 and empty.grad is not None
    with pytest.raises(ValueError, match="expected logits"):
        smoothed_cross_entropy(torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="smoothing"):
        smoothed_cross_entropy(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 1.5)


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("block_rows", [1, 4, 64])
def test_fused_linear_cross_entropy_equals_linear_then_loss(with_bias, smoothing, block_rows):
    generator = torch.Generator().manual_seed(2)
    N, A, V = 13, 6, 17
    inputs = torch.randn(N, A, generator=generator, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(V, A, generator=generator, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(V, generator=generator, dtype=torch.float64, requires_grad=with_bias)
    targets = torch.randint(0, V, (N,), generator=generator)
    used_bias = bias if with_bias else None
    fused = linear_cross_entropy(inputs, weight, used_bias, targets, smoothing, block_rows)
    (3.0 * fused).backward()
    fused_grads = [inputs.grad, weight.grad, bias.grad]
    inputs.grad = weight.grad = bias.grad = None
    expected = F.cross_entropy(
        F.linear(inputs, weight, used_bias), targets, label_smoothing=smoothing
    )
    (3.0 * expected).backward()
    torch.testing.assert_close(fused, expected)
    torch.testing.assert_close(fused_grads[0], inputs.grad)
    torch.testing.assert_close(fused_grads[1], weight.grad)
    if with_bias:
        torch.testing.assert_close(fused_grads[2], bias.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_loss_is_exact_where_the_target_probability_underflows(dtype):
    # logit gaps of thousands: softmax gives p_target = 0 for the wrong rows, whose
    # log-probabilities must still come out exactly (finite, equal to PyTorch's)
    generator = torch.Generator().manual_seed(4)
    N, A, V = 9, 5, 12
    inputs = (400 * torch.randn(N, A, generator=generator, dtype=dtype)).requires_grad_()
    weight = torch.randn(V, A, generator=generator, dtype=dtype, requires_grad=True)
    targets = torch.randint(0, V, (N,), generator=generator)
    fused = linear_cross_entropy(inputs, weight, None, targets, 0.1, block_rows=4)
    fused.backward()
    fused_grads = [inputs.grad, weight.grad]
    inputs.grad = weight.grad = None
    logits = F.linear(inputs, weight)
    assert (logits.softmax(-1).gather(1, targets.unsqueeze(1)) == 0).any()
    expected = F.cross_entropy(logits, targets, label_smoothing=0.1)
    expected.backward()
    assert torch.isfinite(fused)
    torch.testing.assert_close(fused, expected)
    torch.testing.assert_close(fused_grads[0], inputs.grad)
    torch.testing.assert_close(fused_grads[1], weight.grad)


def test_fused_linear_cross_entropy_trains_tied_weights_like_the_plain_path():
    torch.manual_seed(0)
    embedding = torch.nn.Embedding(11, 5)
    layer = torch.nn.Linear(5, 11)
    layer.weight = embedding.weight  # tied, as in translation models
    tokens = torch.randint(0, 11, (9,))
    targets = torch.randint(0, 11, (9,))
    hidden = torch.tanh(embedding(tokens))
    linear_cross_entropy(hidden, layer.weight, layer.bias, targets, 0.1).backward()
    fused = embedding.weight.grad.clone()
    embedding.weight.grad = None
    layer.bias.grad = None
    hidden = torch.tanh(embedding(tokens))
    F.cross_entropy(layer(hidden), targets, label_smoothing=0.1).backward()
    torch.testing.assert_close(fused, embedding.weight.grad)


def adaptive_head_and_batch(head_bias: bool) -> tuple[torch.nn.AdaptiveLogSoftmaxWithLoss, ...]:
    """A 60-word adaptive softmax with three clusters, 50 rows whose targets fall in
    the shortlist and the first two clusters only (the last one stays empty)."""
    generator = torch.Generator().manual_seed(5)
    torch.manual_seed(5)
    head = torch.nn.AdaptiveLogSoftmaxWithLoss(16, 60, [10, 25, 40], 2.0, head_bias=head_bias)
    head.double()
    inputs = torch.randn(50, 16, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 40, (50,), generator=generator)
    return head, inputs, targets


@pytest.mark.parametrize("head_bias", [False, True])
def test_adaptive_cross_entropy_equals_the_adaptive_softmax_loss_and_gradients(head_bias):
    head, inputs, targets = adaptive_head_and_batch(head_bias)
    inputs.requires_grad_()
    fused = adaptive_cross_entropy(head, inputs, targets)
    (3 * fused).backward()
    fused_grads = [inputs.grad.clone(), *(p.grad for p in head.parameters())]
    inputs.grad = None
    head.zero_grad(set_to_none=True)
    expected = head(inputs, targets).loss
    (3 * expected).backward()
    expected_grads = [inputs.grad, *(p.grad for p in head.parameters())]
    torch.testing.assert_close(fused, expected)
    for got, want in zip(fused_grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want)  # both None for the empty cluster
    assert head.tail[2][1].weight.grad is None and head.tail[0][1].weight.grad is not None


def test_adaptive_cross_entropy_of_an_empty_batch_is_zero_and_differentiable():
    head, inputs, _ = adaptive_head_and_batch(False)
    empty = inputs[:0].clone().requires_grad_()
    loss = adaptive_cross_entropy(head, empty, torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0 and empty.grad is not None
