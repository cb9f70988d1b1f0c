"""A one-layer GRU over a padded batch with a hand-written backward pass.

``nn.GRU`` on the CPU runs its recurrence as a chain of small autograd
operations per time step (the gate chunks, their concatenation in the backward
pass, an add per step to accumulate the recurrent weight's gradient). For
training, :func:`gru_layer` projects the inputs of all steps in one matmul
(through autograd, like ``nn.GRU``) and runs the recurrence in
:class:`GRURecurrence`, whose backward pass carries only the hidden-state
gradient from step to step and computes the recurrent weight's gradient as
one matmul over all steps. Same equations and gate order as ``nn.GRU``
(r, z, n; ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``); the tests
compare values and gradients with it.
"""

from __future__ import annotations

import typing
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class GRURecurrence(torch.autograd.Function):
    """States (B, S, H) of the recurrence over projected inputs (B, S, 3H)
    (``x W_ih^T + b_ih``) from ``hidden`` (B, H), with ``weight_hh`` (3H, H) and
    ``bias_hh`` (3H,)."""

    @staticmethod
    def forward(
        ctx: Any,
        projected: torch.Tensor,
        hidden: torch.Tensor,
        weight_hh: torch.Tensor,
        bias_hh: torch.Tensor,
    ) -> torch.Tensor:
        B, S, _ = projected.shape
        H = hidden.size(1)
        states = projected.new_empty(S + 1, B, H)  # h_0 .. h_S
        states[0] = hidden
        gates = []  # (4, B, H) per step: r, z, n, W_hn h + b_hn
        for t in range(S):
            previous = states[t]
            recurrent = torch.addmm(bias_hh, previous, weight_hh.t())  # (B, 3H)
            i_r, i_z, i_n = projected[:, t].chunk(3, dim=1)
            h_r, h_z, h_n = recurrent.chunk(3, dim=1)
            gate = projected.new_empty(4, B, H)
            gates.append(gate)
            r = torch.sigmoid(i_r + h_r, out=gate[0])
            z = torch.sigmoid(i_z + h_z, out=gate[1])
            gate[3] = h_n
            n = torch.tanh(torch.addcmul(i_n, r, h_n), out=gate[2])
            torch.addcmul(n, z, previous - n, out=states[t + 1])  # (1 - z) n + z h
        ctx.save_for_backward(weight_hh, states)
        ctx.gates = gates
        return states[1:].transpose(0, 1)  # (B, S, H)

    @staticmethod
    def backward(ctx: Any, grad_states: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        weight_hh, states = ctx.saved_tensors
        gates = ctx.gates
        S, B, H = states.size(0) - 1, states.size(1), states.size(2)
        grad_projected = grad_states.new_empty(B, S, 3 * H)
        grad_recurrent = grad_states.new_empty(S, B, 3 * H)
        grad_hidden = grad_states.new_zeros(B, H)
        for t in reversed(range(S)):
            grad_hidden = grad_hidden + grad_states[:, t]
            previous = states[t]
            r, z, n, h_n = gates[t].unbind(0)
            grad_n = grad_hidden * (1.0 - z) * (1.0 - n * n)
            grad_z = grad_hidden * (previous - n) * z * (1.0 - z)
            grad_r = grad_n * h_n * r * (1.0 - r)
            grad_in = grad_projected[:, t]
            grad_in[:, :H], grad_in[:, H : 2 * H], grad_in[:, 2 * H :] = grad_r, grad_z, grad_n
            grad_rec = grad_recurrent[t]
            grad_rec[:, : 2 * H] = grad_in[:, : 2 * H]
            torch.mul(grad_n, r, out=grad_rec[:, 2 * H :])
            grad_hidden = torch.addmm(grad_hidden * z, grad_rec, weight_hh)
        flat = grad_recurrent.view(S * B, 3 * H)
        grad_weight_hh = flat.t() @ states[:S].reshape(S * B, H)
        return grad_projected, grad_hidden, grad_weight_hh, flat.sum(0)


def uses_hand_backward(rnn: nn.Module, inputs: torch.Tensor) -> bool:
    """True when :func:`gru_layer` takes the hand-written backward pass for ``rnn``."""
    return (
        torch.is_grad_enabled()
        and type(rnn) is nn.GRU
        and rnn.num_layers == 1
        and not rnn.bidirectional
        and rnn.batch_first
        and rnn.bias
        and inputs.dtype == rnn.weight_hh_l0.dtype
        and not torch.is_autocast_enabled(inputs.device.type)
    )


def gru_layer(rnn: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """``rnn(inputs)[0]`` for a batch-first RNN from zero state: through
    :class:`GRURecurrence` when :func:`uses_hand_backward`, else the module itself."""
    if not uses_hand_backward(rnn, inputs):
        states: torch.Tensor = rnn(inputs)[0]
        return states
    gru = typing.cast(nn.GRU, rnn)
    weight_ih = typing.cast(torch.Tensor, gru.weight_ih_l0)
    bias_ih = typing.cast(torch.Tensor, gru.bias_ih_l0)
    projected = F.linear(inputs, weight_ih, bias_ih)  # (B, S, 3H)
    hidden = inputs.new_zeros(inputs.size(0), gru.hidden_size)
    result: torch.Tensor = GRURecurrence.apply(projected, hidden, gru.weight_hh_l0, gru.bias_hh_l0)
    return result
