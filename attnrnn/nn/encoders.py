"""Recurrent encoders over variable-length, padded batches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnrnn.config import EncoderConfig
from attnrnn.errors import ConfigError

RNN_CELLS: dict[str, Callable[..., nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}

RecurrentState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass
class EncoderOutput:
    """What :class:`RNNEncoder` returns.

    outputs: (B, S, H * directions), zero on padded steps.
    final: (layers * directions, B, H) last hidden state per layer and direction
        (for an LSTM a pair ``(h, c)`` of such tensors), taken at each
        sequence's own last valid step.
    """

    outputs: torch.Tensor
    final: RecurrentState


class RNNEncoder(nn.Module):
    """A (bi)directional multi-layer RNN / GRU / LSTM over packed sequences.

    Padding never enters the recurrence: a sequence gives the same outputs
    alone and in a batch with longer sequences.

    Args:
        input_size: E, the size of each input vector.
        hidden_size: H per direction.
        num_layers: stacked layers.
        cell: "rnn", "gru" or "lstm".
        bidirectional: run a backward RNN too and concatenate.
        dropout: dropout between layers (PyTorch applies none after the last).
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
        self.rnn = RNN_CELLS[cell](
            input_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )

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
            inputs: (B, S, E) padded input vectors.
            lengths: (B,) valid steps per sequence, each >= 1.
        """
        S = inputs.size(1)
        packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_outputs, final = self.rnn(packed)
        outputs, _ = pad_packed_sequence(packed_outputs, batch_first=True, total_length=S)
        return EncoderOutput(outputs, final)  # (B, S, H * directions)
