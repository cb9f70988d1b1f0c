"""Attention decoders: Bahdanau-style and Luong-style recurrent decoders.

Both read an encoded source ("memory", (B, S, M)) and produce one
*attentional vector* per target step, ``tanh(W_c [c_t; h_t])`` (B, T, A),
from which the model's output layer predicts the next token.

- ``bahdanau`` (Bahdanau et al. 2014): attend with the previous state
  ``h_{t-1}``, then feed the context into the RNN step:
  ``c_t = attend(h_{t-1})``, ``h_t = RNN([y_{t-1}; c_t], h_{t-1})``.
- ``luong`` (Luong et al. 2015): step the RNN first, then attend with the new
  state: ``h_t = RNN([y_{t-1}; a_{t-1}], h_{t-1})``, ``c_t = attend(h_t)``,
  ``a_t = tanh(W_c [c_t; h_t])``; feeding ``a_{t-1}`` back in is *input feeding*.

One step is a pure function of tensors (:meth:`RNNDecoder.step` on a
:class:`DecoderState`), which is what search and an exported decoder step
need. Teacher-forced training (:meth:`RNNDecoder.forward`) runs the RNN over
the whole target in one fused call when nothing recurrent but the RNN itself
links the steps (Luong style without input feeding, attention that reads
neither its previous weights nor its coverage); otherwise it loops over :meth:`step`, so the two
are the same computation by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal, cast

import torch
from torch import nn

from attnrnn.nn import fast_paths
from attnrnn.nn.attention import AdditiveAttention, Attention
from attnrnn.nn.encoders import RNN_CELLS
from attnrnn.nn.fused_decoder import LuongGRUAdditive

DecoderStyle = Literal["bahdanau", "luong"]


@dataclass
class DecoderState:
    """Everything one decoder step reads, as tensors whose first dimension is the row N.

    hidden: (N, L, H) RNN hidden state per layer (row-first so that every
        field reorders along dimension 0).
    cell: (N, L, H) LSTM cell state, or None for GRU / RNN.
    input_feed: (N, A) the previous attentional vector (Luong input feeding), or None.
    previous_weights: (N, S) the previous step's attention (location-aware), or None.
    coverage: (N, S) the sum of all previous attention weights.
    memory: (N, S, M) encoder outputs.
    projected_keys: (N, S, A') the attention's precomputed keys, or None.
    memory_mask: (N, S) bool, True on valid source positions.
    """

    hidden: torch.Tensor
    cell: torch.Tensor | None
    input_feed: torch.Tensor | None
    previous_weights: torch.Tensor | None
    coverage: torch.Tensor
    memory: torch.Tensor
    projected_keys: torch.Tensor | None
    memory_mask: torch.Tensor

    def select(self, indices: torch.Tensor) -> DecoderState:
        """The state of rows ``indices`` (N',), in that order."""
        return self.reorder(indices, indices)

    def reorder(self, indices: torch.Tensor, sources: torch.Tensor | None) -> DecoderState:
        """:meth:`select`, with the source-only fields (memory, keys, mask) taken from
        rows ``sources``, or kept when None (see :func:`attnrnn.decoding.protocol.reorder`)."""
        chosen: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            rows = sources if item.name in SOURCE_FIELDS else indices
            chosen[item.name] = (
                None if value is None or rows is None else value.index_select(0, rows)
            )
            if value is not None and rows is None:
                chosen[item.name] = value
        return DecoderState(**chosen)


# The fields of DecoderState that depend only on the source.
SOURCE_FIELDS = frozenset({"memory", "projected_keys", "memory_mask"})


class RNNDecoder(nn.Module):
    """A multi-layer GRU / LSTM / RNN decoder with attention over the memory.

    Args:
        style: "bahdanau" or "luong" (see the module docstring).
        input_size: E, the size of the target embeddings.
        memory_size: M, the size of each encoder output.
        hidden_size: H of the decoder RNN.
        attention: any module of :mod:`attnrnn.nn.attention`, built for
            query size H and key size M.
        attentional_size: A, the size of ``tanh(W_c [c; h])``.
        num_layers, cell, dropout: the RNN; dropout applies between layers.
        input_feeding: Luong input feeding (ignored for Bahdanau style).
    """

    def __init__(
        self,
        style: DecoderStyle,
        input_size: int,
        memory_size: int,
        hidden_size: int,
        attention: Attention,
        attentional_size: int,
        num_layers: int = 1,
        cell: str = "gru",
        dropout: float = 0.0,
        input_feeding: bool = True,
    ) -> None:
        super().__init__()
        if style not in ("bahdanau", "luong"):
            raise ValueError(f"unknown decoder style {style!r}; valid: bahdanau, luong")
        self.style = style
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.attentional_size = attentional_size
        self.input_feeding = input_feeding and style == "luong"
        if style == "bahdanau":
            rnn_input_size = input_size + memory_size
        else:
            rnn_input_size = input_size + (attentional_size if self.input_feeding else 0)
        self.rnn = RNN_CELLS[cell](
            rnn_input_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.attention = attention
        self.attentional_layer = nn.Linear(memory_size + hidden_size, attentional_size)

    @property
    def fused(self) -> bool:
        """True when teacher forcing can run the RNN over all steps in one call."""
        return (
            self.style == "luong"
            and not self.input_feeding
            and not self.attention.uses_previous_weights
            and not self.attention.uses_coverage
        )

    def _runs_hand_written(self, embedded: torch.Tensor, state: DecoderState) -> bool:
        """True when teacher forcing takes :class:`LuongGRUAdditive`: the fast-path switch
        is on for training (:mod:`attnrnn.nn.fast_paths`), on the CPU (on CUDA the
        autograd loop's cuDNN steps were measured, this was not), in the weights'
        dtype, for a one-layer Luong GRU with input feeding and plain additive attention."""
        return (
            fast_paths.gradients_wanted()
            and embedded.device.type == "cpu"
            and self.input_feeding
            and self.cell == "gru"
            and self.num_layers == 1
            and type(self.attention) is AdditiveAttention
            and state.projected_keys is not None
            and fast_paths.runs_in(
                cast(torch.Tensor, self.rnn.weight_ih_l0).dtype, embedded, state.memory
            )
        )

    def initial_state(
        self, memory: torch.Tensor, memory_mask: torch.Tensor, hidden: torch.Tensor
    ) -> DecoderState:
        """The state before the first step.

        Args:
            memory: (B, S, M) encoder outputs.
            memory_mask: (B, S) bool.
            hidden: (B, L, H) initial hidden state (from the model's bridge).
        """
        B, S, _ = memory.shape
        zeros = memory.new_zeros
        return DecoderState(
            hidden=hidden,
            cell=torch.zeros_like(hidden) if self.cell == "lstm" else None,
            input_feed=zeros(B, self.attentional_size) if self.input_feeding else None,
            previous_weights=zeros(B, S) if self.attention.uses_previous_weights else None,
            coverage=zeros(B, S),
            memory=memory,
            projected_keys=self.attention.precompute(memory),
            memory_mask=memory_mask,
        )

    def _attend(
        self, query: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Context (N, T, M) and weights (N, T, S) for queries (N, T, H)."""
        return self.attention(
            query,
            state.memory,
            state.memory,
            state.memory_mask,
            projected_keys=state.projected_keys,
            previous_weights=state.previous_weights,
            coverage=state.coverage if self.attention.uses_coverage else None,
        )

    def _run_rnn(
        self, inputs: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Run the RNN over inputs (N, T, I) from ``state``; outputs (N, T, H), new h, c."""
        hidden = state.hidden.transpose(0, 1).contiguous()  # (L, N, H)
        if state.cell is not None:
            cell = state.cell.transpose(0, 1).contiguous()  # (L, N, H)
            outputs, (hidden, cell) = self.rnn(inputs, (hidden, cell))
            return outputs, hidden.transpose(0, 1), cell.transpose(0, 1)  # (N, L, H) each
        outputs, hidden = self.rnn(inputs, hidden)
        return outputs, hidden.transpose(0, 1), None  # (N, T, H), (N, L, H)

    def step(
        self, embedded: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One decoder step.

        Args:
            embedded: (N, E) embedding of the previous target token.

        Returns:
            attentional vector (N, A), the new state, attention weights (N, S).
        """
        if self.style == "bahdanau":
            query = state.hidden[:, -1:]  # (N, 1, H) top layer of h_{t-1}
            context, weights = self._attend(query, state)  # (N, 1, M), (N, 1, S)
            rnn_input = torch.cat([embedded.unsqueeze(1), context], dim=-1)  # (N, 1, E + M)
            output, hidden, cell = self._run_rnn(rnn_input, state)  # (N, 1, H)
        else:
            rnn_input = embedded.unsqueeze(1)  # (N, 1, E)
            if state.input_feed is not None:
                rnn_input = torch.cat([rnn_input, state.input_feed.unsqueeze(1)], dim=-1)
            output, hidden, cell = self._run_rnn(rnn_input, state)  # (N, 1, H)
            context, weights = self._attend(output, state)  # (N, 1, M), (N, 1, S)
        attentional = torch.tanh(
            self.attentional_layer(torch.cat([context, output], dim=-1))
        ).squeeze(1)  # (N, A)
        weights = weights.squeeze(1)  # (N, S)
        new_state = replace(
            state,
            hidden=hidden,
            cell=cell,
            input_feed=attentional if state.input_feed is not None else None,
            previous_weights=weights if state.previous_weights is not None else None,
            coverage=state.coverage + weights,
        )
        return attentional, new_state, weights

    def forward(
        self, embedded: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced pass over a whole target.

        Args:
            embedded: (B, T, E) embeddings of the target input (BOS y_1 ... y_{T-1}).
            state: from :meth:`initial_state`.

        Returns:
            attentional vectors (B, T, A) and attention weights (B, T, S).
        """
        if self._runs_hand_written(embedded, state):
            attention = cast(AdditiveAttention, self.attention)
            attentional, weights = LuongGRUAdditive.apply(
                embedded,
                state.hidden[:, 0],
                state.memory,
                state.projected_keys,
                state.memory_mask,
                self.rnn.weight_ih_l0,
                self.rnn.weight_hh_l0,
                self.rnn.bias_ih_l0,
                self.rnn.bias_hh_l0,
                attention.query_projection.weight,
                attention.energy.weight,
                self.attentional_layer.weight,
                self.attentional_layer.bias,
            )
            return attentional, weights  # (B, T, A), (B, T, S)
        if self.fused:
            outputs, _, _ = self._run_rnn(embedded, state)  # (B, T, H)
            context, weights = self._attend(outputs, state)  # (B, T, M), (B, T, S)
            attentional = torch.tanh(self.attentional_layer(torch.cat([context, outputs], -1)))
            return attentional, weights  # (B, T, A), (B, T, S)
        vectors, all_weights = [], []
        for position in range(embedded.size(1)):
            attentional, state, weights = self.step(embedded[:, position], state)
            vectors.append(attentional)
            all_weights.append(weights)
        return torch.stack(vectors, dim=1), torch.stack(all_weights, dim=1)  # (B,T,A), (B,T,S)
