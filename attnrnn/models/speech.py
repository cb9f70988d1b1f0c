"""Speech recognizer: Listen, Attend and Spell (Chan et al. 2016) with a joint CTC head.

    features (B, T, F) -> listener -> memory (B, T', M)      T' = T / 4 (conv) or T / 8 (pyramid)
                                     |-> CTC layer -> frame posteriors (B, T', V)
    previous token -> speller (attention decoder over the memory) -> next-token scores (B, V)

The listener is either convolutional subsampling (two 3x3 convolutions with
stride 2) followed by a bidirectional LSTM, or a pyramidal BiLSTM whose layers
each halve the frame rate by concatenating neighbouring frames. The speller is
the attention decoder of :mod:`attnrnn.nn.decoders`, by default with
location-aware attention (Chorowski et al. 2015). Training minimises
``lambda * CTC + (1 - lambda) * cross-entropy`` (Watanabe et al. 2017,
:meth:`SpeechRecognizer.joint_loss`); the
CTC head also scores hypotheses in joint decoding
(:mod:`attnrnn.decoding.ctc`).

The model implements the search protocol (``init_state``, ``step``), so greedy
and beam search decode it exactly as they decode a translation model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from attnrnn.config import check_positive, check_probability
from attnrnn.errors import ConfigError
from attnrnn.models.seq2seq import EncodedSource
from attnrnn.models.target_side import DecoderConfig, TargetSide
from attnrnn.nn.decoders import DecoderState
from attnrnn.nn.dropout import Dropout
from attnrnn.nn.encoders import RNNEncoder
from attnrnn.nn.masking import lengths_to_mask


@dataclasses.dataclass(frozen=True)
class ListenerConfig:
    """The acoustic encoder.

    type: "conv" (2 strided convolutions, frame rate / 4, then BiLSTM layers)
        or "pyramidal" (BiLSTM layers, each after the first halving the frame rate).
    conv_channels: channels of the convolutions.
    hidden_size: per direction.
    """

    type: Literal["conv", "pyramidal"] = "conv"
    conv_channels: int = 32
    hidden_size: int = 256
    num_layers: int = 3
    cell: Literal["gru", "lstm"] = "lstm"
    dropout: float = 0.2

    def __post_init__(self) -> None:
        check_positive(self, "conv_channels", "hidden_size", "num_layers")
        check_probability(self, "dropout")


@dataclasses.dataclass(frozen=True)
class SpeechModelConfig:
    """Hyperparameters of :class:`SpeechRecognizer`.

    ctc_weight: lambda of the joint loss (0: attention only; 1: CTC only).
    diagonal_weight: weight of the guided-attention loss (Tachibana et al. 2017),
        which charges attention far from the diagonal of (output step, frame): a
        prior that speech is read from left to right at a roughly even pace. With
        little data the attention otherwise settles on a few frames (the leading
        silence) and the decoder learns a sequence prior instead of listening.
        0: off.
    diagonal_width: g, how far (as a share of the lengths) attention may stray
        from the diagonal cheaply: the charge is ``1 - exp(-d^2 / 2g^2)``.
    """

    listener: ListenerConfig = ListenerConfig()
    embedding_size: int = 64
    embedding_dropout: float = 0.1
    decoder: DecoderConfig = DecoderConfig(
        style="bahdanau", cell="lstm", hidden_size=256, attention="location", output_dropout=0.2
    )
    ctc_weight: float = 0.3
    diagonal_weight: float = 0.0
    diagonal_width: float = 0.3

    def __post_init__(self) -> None:
        check_positive(self, "embedding_size", "diagonal_width")
        check_probability(self, "embedding_dropout")
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise ConfigError(f"ctc_weight must be in [0, 1], got {self.ctc_weight}")
        if self.diagonal_weight < 0.0:
            raise ConfigError(f"diagonal_weight must be >= 0, got {self.diagonal_weight}")


class ConvSubsampling(nn.Module):
    """Two 3x3 convolutions with stride 2 over (time, frequency): frame rate / 4.

    The first convolution's output is zeroed beyond each utterance's length, so
    the second sees the same zeros there as an utterance decoded alone: the
    listener's valid outputs do not depend on the batch's padding.
    """

    def __init__(self, num_mel_bins: int, channels: int, output_size: int) -> None:
        super().__init__()
        self.first = nn.Conv2d(1, channels, 3, stride=2, padding=1)
        self.second = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        reduced_bins = subsampled_lengths(subsampled_lengths(torch.tensor([num_mel_bins])))
        self.projection = nn.Linear(channels * int(reduced_bins), output_size)

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F) -> (B, T', output_size) and lengths (B,)."""
        hidden = torch.relu(self.first(features.unsqueeze(1)))  # (B, C, T/2, F/2)
        lengths = subsampled_lengths(lengths)
        valid = lengths_to_mask(lengths, hidden.size(2)).view(hidden.size(0), 1, -1, 1)
        hidden = torch.relu(self.second(hidden * valid))  # (B, C, T/4, F/4)
        B, C, T, Fr = hidden.shape
        hidden = hidden.permute(0, 2, 1, 3).reshape(B, T, C * Fr)  # (B, T', C * F')
        return self.projection(hidden), subsampled_lengths(lengths)


def subsampled_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Output lengths of a 3-wide convolution with stride 2 and padding 1."""
    return torch.div(lengths - 1, 2, rounding_mode="floor") + 1


class Listener(nn.Module):
    """Features (B, T, F) -> memory (B, T', 2H) with lengths (B,)."""

    def __init__(self, num_mel_bins: int, config: ListenerConfig) -> None:
        super().__init__()
        self.config = config
        H = config.hidden_size
        if config.type == "conv":
            self.subsampling: ConvSubsampling | None = ConvSubsampling(
                num_mel_bins, config.conv_channels, 2 * H
            )
            self.layers = nn.ModuleList(
                [RNNEncoder(2 * H, H, config.num_layers, config.cell, True, config.dropout)]
            )
        else:
            self.subsampling = None
            sizes = [num_mel_bins] + [4 * H] * (config.num_layers - 1)
            self.layers = nn.ModuleList(RNNEncoder(size, H, 1, config.cell) for size in sizes)
        self.dropout = Dropout(config.dropout)

    @property
    def output_size(self) -> int:
        return 2 * self.config.hidden_size

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.subsampling is not None:
            hidden, lengths = self.subsampling(features, lengths)  # (B, T/4, 2H)
            return self.layers[0](hidden, lengths).outputs, lengths
        hidden = features
        for index, layer in enumerate(self.layers):
            if index > 0:  # halve the frame rate: concatenate frames 2i and 2i + 1
                B, T, size = hidden.shape
                if T % 2:
                    hidden = F.pad(hidden, (0, 0, 0, 1))  # (B, T + 1, size)
                hidden = hidden.reshape(B, (T + 1) // 2, 2 * size)  # (B, T/2, 2 * size)
                lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
                hidden = self.dropout(hidden)
            hidden = layer(hidden, lengths).outputs  # (B, T', 2H)
        return hidden, lengths


@dataclass
class SpeechOutput:
    """A teacher-forced pass.

    attentional: (B, U, A) attentional vectors (``output_logits`` makes scores).
    attention: (B, U, T') attention over the listener frames.
    ctc_log_probs: (B, T', V) CTC log-posteriors; ctc_lengths: (B,).
    """

    attentional: torch.Tensor
    attention: torch.Tensor
    ctc_log_probs: torch.Tensor
    ctc_lengths: torch.Tensor


class SpeechRecognizer(TargetSide):
    """Listener + CTC head + attention speller (the shared target side).

    Args:
        num_mel_bins: F of the input features.
        vocab_size: V of the output units (characters or subwords); the
            padding id doubles as the CTC blank.
    """

    def __init__(
        self,
        num_mel_bins: int,
        vocab_size: int,
        config: SpeechModelConfig,
        pad_index: int,
        bos_index: int,
        eos_index: int,
    ) -> None:
        super().__init__()
        self.config = config
        self.pad_index, self.bos_index, self.eos_index = pad_index, bos_index, eos_index
        self.listener = Listener(num_mel_bins, config.listener)
        memory_size = self.listener.output_size
        self.ctc_layer = nn.Linear(memory_size, vocab_size)
        self.target_embedding = nn.Embedding(
            vocab_size, config.embedding_size, padding_idx=pad_index
        )
        self.embedding_dropout = Dropout(config.embedding_dropout)
        self.build_target_side(
            config.decoder, config.embedding_size, memory_size, memory_size, vocab_size
        )

    def encode(self, features: torch.Tensor, lengths: torch.Tensor) -> EncodedSource:
        """Listen to features (B, T, F) with valid frames (B,).

        ``final`` of the result holds the mean listener output per utterance,
        (1, B, M), which the bridge reads.
        """
        memory, memory_lengths = self.listener(features, lengths.to(features.device))
        mask = lengths_to_mask(memory_lengths, memory.size(1))  # (B, T')
        mean = (memory * mask.unsqueeze(-1)).sum(1) / memory_lengths.unsqueeze(1)  # (B, M)
        return EncodedSource(memory, mask, mean.unsqueeze(0))

    def ctc_log_probs(self, encoded: EncodedSource) -> tuple[torch.Tensor, torch.Tensor]:
        """CTC log-posteriors (B, T', V) in float32 and valid frames (B,)."""
        log_probs = F.log_softmax(self.ctc_layer(encoded.memory).float(), dim=-1)
        return log_probs, encoded.memory_mask.sum(dim=1)

    def init_state(self, encoded: EncodedSource) -> DecoderState:
        """The speller's state before the first token (search protocol); the bridge
        reads the mean listener output."""
        return self.target_state(encoded.memory, encoded.memory_mask, encoded.final[0])

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, target_input: torch.Tensor
    ) -> SpeechOutput:
        """Teacher-forced pass over features (B, T, F) and target input (B, U)."""
        encoded = self.encode(features, lengths)
        ctc_log_probs, ctc_lengths = self.ctc_log_probs(encoded)
        attentional, attention = self.teacher_forced(target_input, self.init_state(encoded))
        return SpeechOutput(attentional, attention, ctc_log_probs, ctc_lengths)

    def joint_loss(
        self,
        features: torch.Tensor,
        lengths: torch.Tensor,
        target_input: torch.Tensor,
        target_output: torch.Tensor,
        label_smoothing: float,
    ) -> tuple[torch.Tensor, int]:
        """The training loss ``lambda * CTC + (1 - lambda) * cross-entropy``
        (lambda = ``config.ctc_weight``), both per target token, plus
        ``config.diagonal_weight`` times :func:`diagonal_attention_loss`, and the
        number of target tokens (EOS included).

        The cross-entropy is the label-smoothed one every task model trains with
        (:meth:`~attnrnn.models.target_side.TargetSide.output_loss`), over the valid
        target positions only; CTC is summed over the utterances and divided by
        their labels (EOS excluded), with the padding id as the blank.

        Args:
            features: (B, T, F) padded features; lengths: (B,) valid frames.
            target_input: (B, U) BOS y_1 ... y_n, padded.
            target_output: (B, U) y_1 ... y_n EOS, padded with ``pad_index``.
            label_smoothing: epsilon of the cross-entropy.
        """
        output = self(features, lengths, target_input)
        valid = target_output != self.pad_index  # (B, U) tokens and EOS
        tokens = int(valid.sum())
        attention_loss = self.output_loss(
            output.attentional[valid], target_output[valid], label_smoothing
        )  # (N, A) rows against (N,) targets
        weight = self.config.ctc_weight
        loss = attention_loss
        if weight > 0.0:
            loss = weight * self.ctc_loss(output, target_output) + (1.0 - weight) * loss
        if self.config.diagonal_weight > 0.0:
            diagonal = diagonal_attention_loss(
                output.attention, valid, output.ctc_lengths, self.config.diagonal_width
            )
            loss = loss + self.config.diagonal_weight * diagonal
        return loss, tokens

    def ctc_loss(self, output: SpeechOutput, target_output: torch.Tensor) -> torch.Tensor:
        """CTC loss of a teacher-forced pass per label: summed over the utterances,
        divided by their labels (the tokens of ``target_output`` (B, U), without EOS
        and padding). An utterance too short for its labels adds 0, not inf."""
        labelled = (target_output != self.pad_index) & (target_output != self.eos_index)  # (B, U)
        label_lengths = labelled.sum(dim=1)  # (B,)
        loss = F.ctc_loss(
            output.ctc_log_probs.transpose(0, 1),  # (T', B, V)
            target_output.masked_select(labelled),  # (sum of label_lengths,)
            output.ctc_lengths,
            label_lengths,
            blank=self.pad_index,
            reduction="sum",
            zero_infinity=True,
        )
        return loss / max(int(label_lengths.sum()), 1)


def diagonal_attention_loss(
    attention: torch.Tensor, valid: torch.Tensor, frames: torch.Tensor, width: float
) -> torch.Tensor:
    """The guided-attention loss of Tachibana et al. (2017): the mean, over the valid
    output steps, of the attention's expected charge ``1 - exp(-(s/S - u/U)^2 / 2g^2)``,
    with u/U and s/S the step's and the frame's relative positions (their centres).

    Args:
        attention: (B, U, T') weights over the frames.
        valid: (B, U) the output steps that count (tokens and EOS).
        frames: (B,) valid frames T'_b (the attention is zero beyond them).
        width: g.
    """
    steps = valid.sum(dim=1, keepdim=True).clamp(min=1)  # (B, 1)
    U, T = attention.shape[1:]
    step_position = (torch.arange(U, device=attention.device) + 0.5) / steps  # (B, U)
    frame_position = (torch.arange(T, device=attention.device) + 0.5) / frames.unsqueeze(1)
    distance = frame_position.unsqueeze(1) - step_position.unsqueeze(2)  # (B, U, T')
    charge = 1.0 - torch.exp(-(distance**2) / (2 * width**2))
    expected = (attention * charge.to(attention.dtype)).sum(dim=-1)  # (B, U)
    return expected[valid].mean() if bool(valid.any()) else expected.sum() * 0.0
