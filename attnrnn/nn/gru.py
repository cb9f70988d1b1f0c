"""A one-layer GRU over a padded batch with a hand-written backward pass.

``nn.GRU`` on the CPU runs its recurrence as a chain of small autograd
operations per time step (the gate chunks, their concatenation in the backward
pass, an add per step to accumulate the recurrent weight's gradient). For
training, :func:`gru_states` projects the inputs of all steps in one matmul
(through autograd, like ``nn.GRU``) and runs the recurrence in
:class:`GRURecurrence`, whose backward pass carries only the hidden-state
gradient from step to step and computes the recurrent weight's gradient as
one matmul over all steps. Same equations and gate order as ``nn.GRU``
(r, z, n; ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``); the tests
compare values and gradients with it.

Everything is time-major, (S, B, .): each step then reads and writes whole
contiguous blocks (a batch-first slice ``x[:, t]`` is B rows scattered over the
whole tensor, several times slower to read in these small elementwise passes),
and the backward direction of a bidirectional encoder reads its rows
backwards in place instead of gathering a reversed copy of its input and
output.
"""

from __future__ import annotations

import typing
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attnrnn.nn import fast_paths

GateCache = tuple[torch.Tensor, torch.Tensor]
"""What one GRU step keeps for its backward pass: the gates [r | z | n] (B, 3H)
and the recurrent projection ``W_hh h + [0, 0, b_hn]`` (B, 3H)."""


def gru_step(
    projected: torch.Tensor,
    previous: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_hn: torch.Tensor,
    out: torch.Tensor,
) -> GateCache:
    """One GRU step without autograd: writes h_t (B, H) into ``out``.

    Args:
        projected: (B, 3H) ``W_ih x_t + b_ih + [b_hr, b_hz, 0]``: the recurrent
            biases of r and z are folded into the input projection (see
            :func:`fold_recurrent_bias`), so the recurrent matmul adds no bias.
        previous: (B, H) h_{t-1}; bias_hn: (H,) the recurrent bias of n.
    """
    recurrent = torch.mm(previous, weight_hh.t())  # (B, 3H)
    return gru_gates(projected, recurrent, previous, bias_hn, out)


def gru_gates(
    projected: torch.Tensor,
    recurrent: torch.Tensor,
    previous: torch.Tensor,
    bias_hn: torch.Tensor,
    out: torch.Tensor,
) -> GateCache:
    """The elementwise half of :func:`gru_step`, from the recurrent projection
    ``recurrent`` = ``W_hh h`` (B, 3H) without bias (it gains ``b_hn`` here, in place);
    writes h_t (B, H) into ``out``."""
    H = previous.size(1)
    recurrent[:, 2 * H :] += bias_hn
    gates = torch.empty_like(recurrent)
    # r and z in one pass each, written side by side
    torch.add(projected[:, : 2 * H], recurrent[:, : 2 * H], out=gates[:, : 2 * H]).sigmoid_()
    r, z = gates[:, :H], gates[:, H : 2 * H]
    n = torch.addcmul(projected[:, 2 * H :], r, recurrent[:, 2 * H :], out=gates[:, 2 * H :])
    n.tanh_()
    torch.addcmul(n, z, previous - n, out=out)  # (1 - z) n + z h
    return gates, recurrent


def gru_step_backward(
    grad_hidden: torch.Tensor,
    previous: torch.Tensor,
    cache: GateCache,
    weight_hh: torch.Tensor,
    grad_projected: torch.Tensor,
    grad_recurrent: torch.Tensor,
) -> torch.Tensor:
    """Backward of :func:`gru_step` for the gradient of h_t (B, H).

    Writes the gradients of ``projected`` and of ``W_hh h + b_hh`` into
    ``grad_projected`` and ``grad_recurrent`` (B, 3H each; the weight gradients
    are matmuls over all steps, for the caller) and returns the gradient of
    h_{t-1}. Fused multiply-adds keep it to a dozen elementwise passes.
    """
    H = previous.size(1)
    gates, recurrent = cache
    r, z, n = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H :]
    grad_n = grad_projected[:, 2 * H :]  # dh (1 - z) (1 - n^2)
    torch.addcmul(grad_hidden, grad_hidden, z, value=-1.0, out=grad_n)
    grad_n.addcmul_(grad_n * n, n, value=-1.0)
    grad_z = grad_projected[:, H : 2 * H]  # dh (h - n) z (1 - z)
    torch.sub(previous, n, out=grad_z).mul_(grad_hidden)
    grad_z.mul_(torch.addcmul(z, z, z, value=-1.0))
    grad_r = grad_projected[:, :H]  # d(pre n) (W_hn h + b_hn) r (1 - r)
    torch.mul(grad_n, recurrent[:, 2 * H :], out=grad_r)
    grad_r.mul_(torch.addcmul(r, r, r, value=-1.0))
    grad_recurrent[:, : 2 * H] = grad_projected[:, : 2 * H]
    torch.mul(grad_n, r, out=grad_recurrent[:, 2 * H :])
    return torch.addmm(grad_hidden * z, grad_recurrent, weight_hh)


class GRURecurrence(torch.autograd.Function):
    """States (S, B, H) of the recurrence over time-major projected inputs
    (S, B, 3H) (``x W_ih^T + b_ih``) from the zero state, with ``weight_hh``
    (3H, H) and ``bias_hn`` (H,), the recurrent bias of n (those of r and z are
    folded into ``projected``, see :func:`fold_recurrent_bias`).

    ``reverse`` reads the steps from last to first. With ``valid`` (S, B, 1),
    1.0 on a row's valid steps and 0.0 on its padding (at the end), a reversed
    row then starts from the zero state at its last valid step, as if it were
    read alone: the state is held at zero over the padding. (The forward
    direction reaches the padding only after the valid steps, so it needs no
    mask.)
    """

    @staticmethod
    def forward(
        ctx: Any,
        projected: torch.Tensor,
        weight_hh: torch.Tensor,
        bias_hn: torch.Tensor,
        valid: torch.Tensor | None = None,
        reverse: bool = False,
    ) -> torch.Tensor:
        S, B, _ = projected.shape
        H = weight_hh.size(1)
        # states[0] is the zero state forward, states[S] backward; step t reads
        # states[t] (forward) or states[t + 1] (backward) and writes the other.
        states = projected.new_empty(S + 1, B, H)
        states[S if reverse else 0] = 0.0
        full = steps_without_padding(valid, S) if reverse else S
        caches: list[GateCache] = [None] * S  # type: ignore[list-item]
        for t in reversed(range(S)) if reverse else range(S):
            previous, current = states[t + reverse], states[t + 1 - reverse]
            caches[t] = gru_step(projected[t], previous, weight_hh, bias_hn, out=current)
            if t >= full:
                current.mul_(valid[t])  # type: ignore[index]
        ctx.save_for_backward(weight_hh, states, valid)
        ctx.caches, ctx.reverse, ctx.full = caches, reverse, full
        return states[:S] if reverse else states[1:]

    @staticmethod
    def backward(ctx: Any, grad_states: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        weight_hh, states, valid = ctx.saved_tensors
        caches, reverse, full = ctx.caches, ctx.reverse, ctx.full
        S, B, H = states.size(0) - 1, states.size(1), states.size(2)
        grad_states = grad_states.contiguous()
        grad_projected = grad_states.new_empty(S, B, 3 * H)
        grad_recurrent = grad_states.new_empty(S, B, 3 * H)
        grad_hidden = grad_states.new_zeros(B, H)
        previous_states = states[1:] if reverse else states[:S]
        for t in range(S) if reverse else reversed(range(S)):
            grad = grad_hidden + grad_states[t]
            if t >= full:
                grad.mul_(valid[t])
            grad_hidden = gru_step_backward(
                grad,
                previous_states[t],
                caches[t],
                weight_hh,
                grad_projected[t],
                grad_recurrent[t],
            )
        flat = grad_recurrent.view(S * B, 3 * H)
        grad_weight_hh = flat.t() @ previous_states.reshape(S * B, H)
        return grad_projected, grad_weight_hh, flat[:, 2 * H :].sum(0), None, None


def fold_recurrent_bias(bias_ih: torch.Tensor, bias_hh: torch.Tensor) -> torch.Tensor:
    """``b_ih + [b_hr, b_hz, 0]`` (3H,): the input bias with the recurrent biases of
    r and z, which only ever add to it. The recurrent matmul of every step then
    needs no bias (no broadcast copy per step); only ``b_hn``, which r scales,
    stays with it."""
    H = bias_ih.size(0) // 3
    return torch.cat([bias_ih[: 2 * H] + bias_hh[: 2 * H], bias_ih[2 * H :]])


def steps_without_padding(valid: torch.Tensor | None, steps: int) -> int:
    """How many leading steps are valid in every row of ``valid`` (S, B, 1)."""
    if valid is None:
        return steps
    return int(valid.view(steps, -1).amin(1).sum().item())


def runs_hand_written(rnn: nn.Module, inputs: torch.Tensor) -> bool:
    """True when :func:`gru_states` may run ``rnn`` over ``inputs``: the fast-path
    switch is on for training (:mod:`attnrnn.nn.fast_paths`), on the CPU (CUDA
    keeps cuDNN's GRU) in the weights' dtype, for a plain one-layer GRU."""
    return (
        fast_paths.gradients_wanted()
        and inputs.device.type == "cpu"
        and type(rnn) is nn.GRU
        and rnn.num_layers == 1
        and not rnn.bidirectional
        and rnn.bias
        and fast_paths.runs_in(typing.cast(torch.Tensor, rnn.weight_hh_l0).dtype, inputs)
    )


def gru_states(
    rnn: nn.Module,
    inputs: torch.Tensor,
    valid: torch.Tensor | None = None,
    reverse: bool = False,
) -> torch.Tensor:
    """States (S, B, H) of a one-layer ``nn.GRU`` (any ``batch_first``; only its
    weights are used) over time-major ``inputs`` (S, B, E) from the zero state,
    through :class:`GRURecurrence` (see there for ``valid`` and ``reverse``).
    For callers that checked :func:`runs_hand_written`."""
    gru = typing.cast(nn.GRU, rnn)
    weight_ih = typing.cast(torch.Tensor, gru.weight_ih_l0)
    bias_ih = typing.cast(torch.Tensor, gru.bias_ih_l0)
    bias_hh = typing.cast(torch.Tensor, gru.bias_hh_l0)
    projected = F.linear(inputs, weight_ih, fold_recurrent_bias(bias_ih, bias_hh))  # (S, B, 3H)
    H = gru.hidden_size
    states: torch.Tensor = GRURecurrence.apply(
        projected, gru.weight_hh_l0, bias_hh[2 * H :], valid, reverse
    )
    return states
