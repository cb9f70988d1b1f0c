"""Recurrent encoders over variable-length, padded batches.

Why not ``pack_padded_sequence``: on the CPU, PyTorch runs a packed RNN one
time step at a time, and the backward pass of every step allocates and fills
a gradient buffer as large as the whole packed batch, so a training step grows
with the square of the sequence length. Measured on this project's 2-core
machine (B=40, S=300, E=300, H=256, forward + backward): a packed
bidirectional LSTM took 7.5 s per step, two unidirectional LSTMs over padded
input 0.42 s (oneDNN's fused kernel); for a GRU 2.1 s against 0.45 s.

So each direction of each layer is a unidirectional RNN over the padded
batch. Padding sits at the end of every row, where the forward direction reads
it only after the valid steps, so valid outputs never see it. The backward
direction reads each row reversed *within its length* (padding stays at the
end), and its outputs are reversed back. A sequence therefore gives the same
outputs alone and in a batch with longer sequences, exactly as with packing.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from attnrnn.config import EncoderConfig
from attnrnn.errors import ConfigError
from attnrnn.nn.dropout import Dropout
from attnrnn.nn.gru import gru_states, runs_hand_written
from attnrnn.nn.masking import lengths_to_mask

RNN_CELLS: dict[str, Callable[..., nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


@dataclass
class EncoderOutput:
    """What :class:`RNNEncoder` returns.

    outputs: (B, S, H * directions), zero on padded steps.
    final: (layers * directions, B, H) hidden state of every layer and
        direction after reading each sequence's valid steps (forward: at its
        last token; backward: at its first), in ``torch.nn.RNN``'s order
        (layer 0 forward, layer 0 backward, layer 1 forward, ...). For an
        LSTM this is the hidden state h; the cell state is not returned.
    """

    outputs: torch.Tensor
    final: torch.Tensor


def reverse_within_lengths(sequences: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first ``length`` steps, leaving the padding where it is.

    Args:
        sequences: (B, S, ...) padded at the end.
        lengths: (B,).

    Returns:
        (B, S, ...), row b is ``sequences[b, length_b - 1 :: -1]`` then its padding.
    """
    B, S = sequences.shape[:2]
    device = sequences.device
    positions = torch.arange(S, device=device).unsqueeze(0)  # (1, S)
    lengths = lengths.to(device).unsqueeze(1)  # (B, 1)
    source = torch.where(positions < lengths, lengths - 1 - positions, positions)  # (B, S)
    # Whole rows of the flattened (B * S, ...) tensor: several times faster than a
    # gather whose index is expanded over the feature axes.
    rows = (source + torch.arange(B, device=device).unsqueeze(1) * S).view(-1)  # (B * S,)
    return sequences.reshape(B * S, -1).index_select(0, rows).view(sequences.shape)


class RNNEncoder(nn.Module):
    """A (bi)directional multi-layer RNN / GRU / LSTM over padded batches.

    Args:
        input_size: E, the size of each input vector.
        hidden_size: H per direction.
        num_layers: stacked layers; layer l > 0 reads both directions of layer l - 1.
        cell: "rnn", "gru" or "lstm".
        bidirectional: run a backward RNN too and concatenate.
        dropout: dropout on the input of every layer but the first.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        cell: str = "gru",
        bidirectional: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if cell not in RNN_CELLS:
            raise ConfigError(f"unknown RNN cell {cell!r}; valid: {', '.join(RNN_CELLS)}")
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        directions = 2 if bidirectional else 1
        self.layers = nn.ModuleList(
            nn.ModuleList(
                RNN_CELLS[cell](
                    input_size if layer == 0 else hidden_size * directions,
                    hidden_size,
                    batch_first=True,
                )
                for _ in range(directions)
            )
            for layer in range(num_layers)
        )
        self.dropout = Dropout(dropout)

    @classmethod
    def from_config(cls, input_size: int, config: EncoderConfig) -> RNNEncoder:
        """Build from an :class:`attnrnn.config.EncoderConfig`."""
        return cls(
            input_size,
            config.hidden_size,
            num_layers=config.num_layers,
            cell=config.cell,
            bidirectional=config.bidirectional,
            dropout=config.dropout,
        )

    @property
    def output_size(self) -> int:
        """H * directions, the size of each output vector."""
        return self.hidden_size * (2 if self.bidirectional else 1)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        """Encode a padded batch.

        Args:
            inputs: (B, S, E) input vectors, padded at the end.
            lengths: (B,) valid steps per sequence, each >= 1.
        """
        B, S, _ = inputs.shape
        lengths = lengths.to(inputs.device)
        rnns = [rnn for layer in self.layers for rnn in typing.cast(nn.ModuleList, layer)]
        if all(runs_hand_written(rnn, inputs) for rnn in rnns):
            return self._forward_time_major(inputs, lengths)
        exporting = torch.compiler.is_exporting()
        last = (lengths - 1).view(B, 1, 1).expand(B, 1, self.hidden_size)  # (B, 1, H)
        mask = lengths_to_mask(lengths, S).unsqueeze(-1).to(inputs.dtype)  # (B, S, 1)
        layer_input, finals = inputs, []
        for layer, directions in enumerate(self.layers):
            if layer > 0:
                layer_input = self.dropout(layer_input)
            outputs = []
            for direction, rnn in enumerate(typing.cast(nn.ModuleList, directions)):
                if exporting:  # a loop over time that the exported graph keeps
                    states = exported_states(rnn, layer_input, lengths, reverse=direction == 1)
                elif direction == 0:
                    states = rnn(layer_input)[0]  # (B, S, H)
                else:
                    reversed_states = rnn(reverse_within_lengths(layer_input, lengths))[0]
                    states = reverse_within_lengths(reversed_states, lengths)  # (B, S, H)
                # The last step read: the final token forward, the first token backward.
                final = states.gather(1, last) if direction == 0 else states[:, :1]  # (B, 1, H)
                finals.append(final.squeeze(1))
                outputs.append(states)
            layer_input = torch.cat(outputs, dim=-1) * mask  # (B, S, H * directions)
        return EncoderOutput(layer_input, torch.stack(finals))  # (B,S,H*D), (L*D, B, H)

    def _forward_time_major(self, inputs: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        """:meth:`forward` for training GRUs on the CPU: the same computation through
        :func:`attnrnn.nn.gru.gru_states`, time-major between the layers, the
        backward direction reversed in place (no gathers)."""
        B, S, _ = inputs.shape
        last = (lengths - 1).view(1, B, 1).expand(1, B, self.hidden_size)  # (1, B, H)
        valid = lengths_to_mask(lengths, S).t().unsqueeze(-1).to(inputs.dtype)  # (S, B, 1)
        layer_input, finals = inputs.transpose(0, 1), []  # (S, B, E)
        outputs: list[torch.Tensor] = []
        for layer, directions in enumerate(self.layers):
            if layer > 0:
                layer_input = self.dropout(torch.cat(outputs, dim=-1) * valid)
            outputs = []
            for direction, rnn in enumerate(typing.cast(nn.ModuleList, directions)):
                states = gru_states(rnn, layer_input, valid, reverse=direction == 1)  # (S, B, H)
                final = states.gather(0, last) if direction == 0 else states[:1]  # (1, B, H)
                finals.append(final.squeeze(0))
                outputs.append(states)
        # batch-first again for the attention: the concatenation writes it so
        joined = torch.cat([states.transpose(0, 1) for states in outputs], dim=-1)
        return EncoderOutput(joined * valid.transpose(0, 1), torch.stack(finals))


def exported_states(
    rnn: nn.Module, inputs: torch.Tensor, lengths: torch.Tensor, reverse: bool = False
) -> torch.Tensor:
    """The states (B, S, H) of a one-layer ``nn.GRU`` / ``nn.LSTM`` / ``nn.RNN`` over
    ``inputs`` (B, S, E), as :func:`torch.export` (and so the ONNX export) should keep
    them: a loop of dynamic length. Exporting the module itself would fix the length of
    its output to the example's (torch.export specializes it). A GRU or an LSTM becomes
    :func:`rnn_layer`, which the ONNX export writes as ONNX's own GRU / LSTM operator
    (a loop inside ONNX Runtime, with each row's length); a plain RNN a ``scan`` over
    time (:func:`scanned_states`). ``reverse``: the backward direction, each row read
    backwards within its length. States on padded steps are not used."""
    module = typing.cast(nn.RNNBase, rnn)
    if isinstance(module, nn.RNN) or not module.bias:
        return scanned_states(module, inputs, lengths, reverse)
    cell = "lstm" if isinstance(module, nn.LSTM) else "gru"
    weights = [getattr(module, name) for name in RNN_WEIGHTS]
    return torch.ops.attnrnn.rnn_layer(inputs, lengths, *weights, cell, module.hidden_size, reverse)


RNN_WEIGHTS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


@torch.library.custom_op("attnrnn::rnn_layer", mutates_args=())
def rnn_layer(
    inputs: torch.Tensor,
    lengths: torch.Tensor,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor,
    bias_hh: torch.Tensor,
    cell: str,
    hidden_size: int,
    reverse: bool,
) -> torch.Tensor:
    """One direction of one GRU or LSTM layer (PyTorch's weights and gate order) over
    ``inputs`` (B, S, E) padded at the end, from the zero state: states (B, S, H), zero
    on padded steps. An operator of its own so that the exported graph keeps it whole
    (:func:`attnrnn.onnx.export.rnn_layer_onnx` writes it as ONNX's GRU / LSTM); run
    eagerly, it is :func:`scan_states`."""
    weights = (weight_ih, weight_hh, bias_ih, bias_hh)
    states = scan_states(cell, *weights, inputs, lengths, reverse)
    mask = lengths_to_mask(lengths.to(inputs.device), inputs.size(1)).unsqueeze(-1)
    return states * mask.to(states.dtype)


@rnn_layer.register_fake
def _rnn_layer_shape(
    inputs: torch.Tensor,
    lengths: torch.Tensor,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor,
    bias_hh: torch.Tensor,
    cell: str,
    hidden_size: int,
    reverse: bool,
) -> torch.Tensor:
    return inputs.new_empty(inputs.size(0), inputs.size(1), hidden_size)


def scanned_states(
    rnn: nn.Module, inputs: torch.Tensor, lengths: torch.Tensor, reverse: bool = False
) -> torch.Tensor:
    """The states (B, S, H) of a one-layer ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` (its
    weights only) over ``inputs`` (B, S, E) from the zero state, as a ``scan`` over
    time, which :func:`torch.export` keeps as a loop of dynamic length.
    ``reverse``: read each row backwards within its length (the backward direction)."""
    module = typing.cast(nn.RNNBase, rnn)
    kind = str(getattr(module, "nonlinearity", ""))  # tanh | relu for nn.RNN
    if isinstance(module, nn.LSTM | nn.GRU):
        kind = "lstm" if isinstance(module, nn.LSTM) else "gru"
    weight_ih = typing.cast(torch.Tensor, module.weight_ih_l0)
    weight_hh = typing.cast(torch.Tensor, module.weight_hh_l0)
    bias_ih, bias_hh = (getattr(module, name, None) for name in RNN_WEIGHTS[2:])
    return scan_states(kind, weight_ih, weight_hh, bias_ih, bias_hh, inputs, lengths, reverse)


def scan_states(
    kind: str,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor | None,
    bias_hh: torch.Tensor | None,
    inputs: torch.Tensor,
    lengths: torch.Tensor,
    reverse: bool,
) -> torch.Tensor:
    """:func:`scanned_states` from the weights of a cell of ``kind`` (lstm, gru, tanh,
    relu): the same equations as PyTorch's cells (gate order i, f, g, o and r, z, n)."""
    from torch._higher_order_ops.scan import scan

    x = reverse_within_lengths(inputs, lengths) if reverse else inputs
    projected = torch.nn.functional.linear(x, weight_ih, bias_ih).transpose(0, 1)  # (S, B, G * H)
    H = weight_hh.size(1)
    zeros = inputs.new_zeros(inputs.size(0), H)  # (B, H)

    def recurrent(hidden: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(hidden, weight_hh, bias_hh)  # (B, G * H)

    if kind == "lstm":

        def lstm_step(
            carry: tuple[torch.Tensor, torch.Tensor], step: torch.Tensor
        ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
            hidden, cell = carry
            i, f, g, o = (step + recurrent(hidden)).chunk(4, dim=-1)
            cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
            hidden = torch.sigmoid(o) * torch.tanh(cell)
            return (hidden, cell), hidden.clone()

        _, states = scan(lstm_step, (zeros, zeros.clone()), projected)
    elif kind == "gru":

        def gru_step(hidden: torch.Tensor, step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            gates = recurrent(hidden)
            reset, update = torch.sigmoid(step[:, : 2 * H] + gates[:, : 2 * H]).chunk(2, dim=-1)
            candidate = torch.tanh(step[:, 2 * H :] + reset * gates[:, 2 * H :])
            hidden = (1 - update) * candidate + update * hidden
            return hidden, hidden.clone()

        _, states = scan(gru_step, zeros, projected)
    else:
        activation = torch.tanh if kind == "tanh" else torch.relu

        def rnn_step(hidden: torch.Tensor, step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            hidden = activation(step + recurrent(hidden))
            return hidden, hidden.clone()

        _, states = scan(rnn_step, zeros, projected)
    states = states.transpose(0, 1)  # (B, S, H)
    return reverse_within_lengths(states, lengths) if reverse else states
