"""Sequence-to-sequence model: embeddings -> RNN encoder -> attention decoder -> output layer.

The encoder-decoder of Bahdanau et al. (2014) and Luong et al. (2015), used
for translation and (with copying, :mod:`attnrnn.models.pointer_generator`)
summarization. The target side (decoder, bridge, output layer, ``step``) is
:class:`attnrnn.models.target_side.TargetSide`, shared with the speech model. It implements the
search protocol of :mod:`attnrnn.decoding.protocol` (``init_state``,
``step``), so greedy and beam search drive it without knowing what it is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from attnrnn.config import EncoderConfig, check_positive, check_probability
from attnrnn.errors import ConfigError
from attnrnn.models.outputs import Seq2SeqOutput
from attnrnn.models.target_side import DecoderConfig, TargetSide
from attnrnn.nn.decoders import DecoderState
from attnrnn.nn.dropout import Dropout
from attnrnn.nn.encoders import RNNEncoder
from attnrnn.nn.masking import lengths_to_mask


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


class Seq2Seq(TargetSide):
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
        self.embedding_dropout = Dropout(config.embedding_dropout)
        self.encoder = RNNEncoder.from_config(E, config.encoder)
        directions = 2 if config.encoder.bidirectional else 1
        self.build_target_side(
            config.decoder,
            E,
            self.encoder.output_size,
            config.encoder.hidden_size * directions,
            target_vocab_size,
        )
        if config.tie_output:
            self.output_layer.weight = self.target_embedding.weight

    # ------------------------------------------------------------------ encoder side

    def encode(
        self, source: torch.Tensor, source_lengths: torch.Tensor, encoder: nn.Module | None = None
    ) -> EncodedSource:
        """Encode source ids (B, S) with lengths (B,); ``encoder``: a copy of the encoder
        to run instead, in its own dtype (inference's bf16 copy,
        :mod:`attnrnn.nn.decoder_step`)."""
        embedded = self.embedding_dropout(self.source_embedding(source))  # (B, S, E)
        if encoder is None:
            encoded = self.encoder(embedded, source_lengths)
        else:
            dtype = next(encoder.parameters()).dtype
            encoded = encoder(embedded.to(dtype), source_lengths)
        mask = lengths_to_mask(source_lengths.to(source.device), source.size(1))  # (B, S)
        return EncodedSource(encoded.outputs, mask, encoded.final)

    def init_state(self, encoded: EncodedSource) -> DecoderState:
        """The decoder state before the first target token (search protocol); the
        bridge reads the last encoder layer's final states of both directions."""
        B = encoded.memory.size(0)
        directions = 2 if self.config.encoder.bidirectional else 1
        last_layer = encoded.final[-directions:]  # (D, B, H_enc)
        summary = last_layer.transpose(0, 1).reshape(B, -1)  # (B, D * H_enc)
        return self.target_state(encoded.memory, encoded.memory_mask, summary)

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
        attentional, attention = self.teacher_forced(target_input, state)
        return Seq2SeqOutput(attentional, attention)
