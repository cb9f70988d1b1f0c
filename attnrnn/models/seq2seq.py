"""Sequence-to-sequence model: embeddings -> RNN encoder -> attention decoder -> output layer.

The encoder-decoder of Bahdanau et al. (2014) and Luong et al. (2015), used
for translation and (with copying, later) summarization. It implements the
search protocol of :mod:`attnrnn.decoding.protocol` (``init_state``,
``step``), so greedy and beam search drive it without knowing what it is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from attnrnn.config import EncoderConfig, check_positive, check_probability
from attnrnn.errors import ConfigError
from attnrnn.models.outputs import Seq2SeqOutput
from attnrnn.nn.attention import Attention, LocationAwareAttention, build_attention
from attnrnn.nn.decoders import DecoderState, RNNDecoder
from attnrnn.nn.encoders import RNNEncoder
from attnrnn.nn.masking import lengths_to_mask


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """The attention decoder (see :mod:`attnrnn.nn.decoders`).

    attention: additive, dot, general, scaled_dot, multi_head or location.
    attention_size: hidden size of additive / location / multi-head
        attention (None: the decoder's hidden size).
    attentional_size: size of ``tanh(W_c [c; h])`` (None: the hidden size).
    bridge: "linear" initialises the decoder from the encoder's final states
        through ``tanh(W [h_fwd; h_bwd])``; "zeros" starts from zeros.
    """

    style: Literal["bahdanau", "luong"] = "luong"
    cell: Literal["gru", "lstm", "rnn"] = "gru"
    hidden_size: int = 512
    num_layers: int = 1
    attention: str = "additive"
    attention_size: int | None = None
    num_heads: int = 4
    location_channels: int = 10
    location_kernel_size: int = 31
    input_feeding: bool = True
    attentional_size: int | None = None
    bridge: Literal["linear", "zeros"] = "linear"
    dropout: float = 0.0
    output_dropout: float = 0.3

    def __post_init__(self) -> None:
        check_positive(self, "hidden_size", "num_layers", "num_heads")
        check_positive(self, "location_channels", "location_kernel_size")
        check_probability(self, "dropout", "output_dropout")


@dataclasses.dataclass(frozen=True)
class Seq2SeqConfig:
    """Hyperparameters of :class:`Seq2Seq`.

    share_embeddings: one embedding matrix for source and target (needs a
        joint vocabulary).
    tie_output: the output layer reuses the target embedding matrix (needs
        attentional size == embedding size).
    """

    embedding_size: int = 256
    embedding_dropout: float = 0.2
    share_embeddings: bool = False
    tie_output: bool = False
    encoder: EncoderConfig = EncoderConfig(hidden_size=256, num_layers=2)
    decoder: DecoderConfig = DecoderConfig()

    def __post_init__(self) -> None:
        check_positive(self, "embedding_size")
        check_probability(self, "embedding_dropout")
        attentional = self.decoder.attentional_size or self.decoder.hidden_size
        if self.tie_output and attentional != self.embedding_size:
            raise ConfigError(
                "tie_output needs decoder.attentional_size equal to embedding_size "
                f"({attentional} != {self.embedding_size})"
            )


def build_attention_for(decoder: DecoderConfig, memory_size: int) -> Attention:
    """The attention module a decoder configuration asks for, over memory of size M."""
    attention_size = decoder.attention_size or decoder.hidden_size
    if decoder.attention == "location":
        return LocationAwareAttention(
            decoder.hidden_size,
            memory_size,
            attention_size,
            decoder.location_channels,
            decoder.location_kernel_size,
        )
    return build_attention(
        decoder.attention, decoder.hidden_size, memory_size, attention_size, decoder.num_heads
    )


@dataclass
class EncodedSource:
    """The encoder's view of a batch of sources.

    memory: (B, S, M) encoder outputs (zero on padding).
    memory_mask: (B, S) bool, True on valid positions.
    final: (layers * directions, B, H) final hidden states (see RNNEncoder).
    """

    memory: torch.Tensor
    memory_mask: torch.Tensor
    final: torch.Tensor


class Seq2Seq(nn.Module):
    """Attention encoder-decoder.

    Args:
        source_vocab_size, target_vocab_size: V of each side (equal when shared).
        config: the hyperparameters.
        pad_index, bos_index, eos_index: special target ids (pad is also the
            source padding id).
    """

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        config: Seq2SeqConfig,
        pad_index: int,
        bos_index: int,
        eos_index: int,
    ) -> None:
        super().__init__()
        self.config = config
        self.pad_index, self.bos_index, self.eos_index = pad_index, bos_index, eos_index
        E = config.embedding_size
        self.source_embedding = nn.Embedding(source_vocab_size, E, padding_idx=pad_index)
        if config.share_embeddings:
            if source_vocab_size != target_vocab_size:
                raise ConfigError("share_embeddings needs one joint vocabulary")
            self.target_embedding = self.source_embedding
        else:
            self.target_embedding = nn.Embedding(target_vocab_size, E, padding_idx=pad_index)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.encoder = RNNEncoder.from_config(E, config.encoder)
        self.decoder = self._build_decoder(config)
        decoder = config.decoder
        bridge_input = config.encoder.hidden_size * (2 if config.encoder.bidirectional else 1)
        self.bridge = (
            nn.Linear(bridge_input, decoder.num_layers * decoder.hidden_size)
            if decoder.bridge == "linear"
            else None
        )
        self.output_dropout = nn.Dropout(decoder.output_dropout)
        self.output_layer = nn.Linear(self.decoder.attentional_size, target_vocab_size)
        if config.tie_output:
            self.output_layer.weight = self.target_embedding.weight

    def _build_decoder(self, config: Seq2SeqConfig) -> RNNDecoder:
        decoder = config.decoder
        memory_size = self.encoder.output_size
        return RNNDecoder(
            decoder.style,
            config.embedding_size,
            memory_size,
            decoder.hidden_size,
            build_attention_for(decoder, memory_size),
            decoder.attentional_size or decoder.hidden_size,
            num_layers=decoder.num_layers,
            cell=decoder.cell,
            dropout=decoder.dropout,
            input_feeding=decoder.input_feeding,
        )

    # ------------------------------------------------------------------ encoder side

    def encode(self, source: torch.Tensor, source_lengths: torch.Tensor) -> EncodedSource:
        """Encode source ids (B, S) with lengths (B,)."""
        embedded = self.embedding_dropout(self.source_embedding(source))  # (B, S, E)
        encoded = self.encoder(embedded, source_lengths)
        mask = lengths_to_mask(source_lengths.to(source.device), source.size(1))  # (B, S)
        return EncodedSource(encoded.outputs, mask, encoded.final)

    def init_state(self, encoded: EncodedSource) -> DecoderState:
        """The decoder state before the first target token (search protocol)."""
        B = encoded.memory.size(0)
        decoder = self.config.decoder
        if self.bridge is None:
            hidden = encoded.memory.new_zeros(B, decoder.num_layers, decoder.hidden_size)
        else:
            directions = 2 if self.config.encoder.bidirectional else 1
            last_layer = encoded.final[-directions:]  # (D, B, H_enc)
            summary = last_layer.transpose(0, 1).reshape(B, -1)  # (B, D * H_enc)
            hidden = torch.tanh(self.bridge(summary)).view(
                B, decoder.num_layers, decoder.hidden_size
            )  # (B, L, H)
        return self.decoder.initial_state(encoded.memory, encoded.memory_mask, hidden)

    # ------------------------------------------------------------------ decoder side

    def output_logits(self, attentional: torch.Tensor) -> torch.Tensor:
        """Next-token scores (..., V) for attentional vectors (..., A)."""
        return self.output_layer(self.output_dropout(attentional))

    def step(
        self, prev_tokens: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One decoding step (search protocol).

        Args:
            prev_tokens: (N,) the previous target token of every row.

        Returns:
            log-probabilities (N, V) in float32, the new state, attention (N, S).
        """
        embedded = self.embedding_dropout(self.target_embedding(prev_tokens))  # (N, E)
        attentional, state, weights = self.decoder.step(embedded, state)
        log_probs = F.log_softmax(self.output_logits(attentional).float(), dim=-1)  # (N, V)
        return log_probs, state, weights

    def forward(
        self, source: torch.Tensor, source_lengths: torch.Tensor, target_input: torch.Tensor
    ) -> Seq2SeqOutput:
        """Teacher-forced pass.

        Args:
            source: (B, S) source ids; source_lengths: (B,).
            target_input: (B, T) BOS followed by the target without its last token.

        Returns:
            attentional vectors (B, T, A) and attention (B, T, S); see
            :class:`Seq2SeqOutput`.
        """
        state = self.init_state(self.encode(source, source_lengths))
        embedded = self.embedding_dropout(self.target_embedding(target_input))  # (B, T, E)
        attentional, attention = self.decoder(embedded, state)
        return Seq2SeqOutput(attentional, attention)
