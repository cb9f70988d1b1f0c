"""Attention pooling: the article's model, and its multi-hop form.

For hidden states ``h_1..h_S`` of one sequence (one hop)::

    e_t = v^T tanh(W h_t + b)          one score per time step
    a   = softmax(e) over valid steps  one weight per time step
    c   = sum_t a_t h_t                the pooled representation

With ``hops = r > 1`` this is the structured self-attention of Lin et al.
(2017): ``A = softmax(W_2 tanh(W_1 H^T))`` has r rows, the pooled output is the
concatenation of the r weighted sums, and ``||A A^T - I||_F^2`` is returned as
a penalty that pushes the hops to attend to different steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from attnrnn.nn.masking import masked_softmax


@dataclass
class PoolingOutput:
    """What :class:`AttentionPooling` returns.

    pooled: (B, r * H) concatenated weighted sums.
    weights: (B, r, S) attention per hop, rows sum to 1, zero on padding.
    penalty: () mean over the batch of ``||A A^T - I||_F^2`` (0 for one hop).
    """

    pooled: torch.Tensor
    weights: torch.Tensor
    penalty: torch.Tensor


class AttentionPooling(nn.Module):
    """Pool (B, S, H) hidden states into (B, hops * H) with learned attention.

    Args:
        input_size: H, the size of each hidden state.
        attention_size: size of the tanh layer (``W``: H -> attention_size).
        hops: r, the number of attention rows.
    """

    def __init__(self, input_size: int, attention_size: int = 128, hops: int = 1) -> None:
        super().__init__()
        self.hops = hops
        self.projection = nn.Linear(input_size, attention_size, bias=True)  # W, b
        self.energy = nn.Linear(attention_size, hops, bias=False)  # v (or W_2 for r hops)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> PoolingOutput:
        """Pool hidden states.

        Args:
            hidden: (B, S, H).
            mask: (B, S) bool, True on valid steps (None: all valid).
        """
        B = hidden.size(0)
        scores = self.energy(torch.tanh(self.projection(hidden)))  # (B, S, r)
        scores = scores.transpose(1, 2)  # (B, r, S)
        key_mask = None if mask is None else mask.unsqueeze(1)  # (B, 1, S)
        weights = masked_softmax(scores, key_mask, dim=-1)  # (B, r, S)
        pooled = torch.bmm(weights, hidden).reshape(B, -1)  # (B, r, H) -> (B, r*H)
        return PoolingOutput(pooled, weights, self._penalty(weights))

    def _penalty(self, weights: torch.Tensor) -> torch.Tensor:
        if self.hops == 1:
            return weights.new_zeros(())
        gram = torch.bmm(weights, weights.transpose(1, 2))  # (B, r, r)
        identity = torch.eye(self.hops, device=weights.device, dtype=weights.dtype)
        return ((gram - identity) ** 2).sum(dim=(1, 2)).mean()
