"""The target side shared by the encoder-decoder models (translation, summarization,
speech): target embedding, attention decoder, bridge, output layer, and the search
protocol's ``step``. Each model builds its own encoder and calls :meth:`build_target_side`.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from attnrnn.config import check_positive, check_probability
from attnrnn.nn import fast_paths
from attnrnn.nn.attention import Attention, LocationAwareAttention, build_attention
from attnrnn.nn.decoders import DecoderState, RNNDecoder
from attnrnn.nn.dropout import Dropout
from attnrnn.nn.losses import linear_cross_entropy, smoothed_cross_entropy


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


class TargetSide(nn.Module):
    """Base of the models whose output is a token sequence decoded with attention.

    After :meth:`build_target_side` the model has ``target_embedding``,
    ``embedding_dropout``, ``decoder``, ``bridge`` (or None), ``output_dropout``
    and ``output_layer``, and ``pad_index``, ``bos_index``, ``eos_index``.
    """

    target_embedding: nn.Embedding
    embedding_dropout: nn.Module

    def build_target_side(
        self,
        decoder_config: DecoderConfig,
        embedding_size: int,
        memory_size: int,
        summary_size: int,
        vocab_size: int,
    ) -> None:
        """Create the decoder (attention over memory of size M), the bridge from a
        summary of the source (B, summary_size) and the output layer."""
        self.decoder_config = decoder_config
        self.decoder = RNNDecoder(
            decoder_config.style,
            embedding_size,
            memory_size,
            decoder_config.hidden_size,
            build_attention_for(decoder_config, memory_size),
            decoder_config.attentional_size or decoder_config.hidden_size,
            num_layers=decoder_config.num_layers,
            cell=decoder_config.cell,
            dropout=decoder_config.dropout,
            input_feeding=decoder_config.input_feeding,
        )
        self.bridge = (
            nn.Linear(summary_size, decoder_config.num_layers * decoder_config.hidden_size)
            if decoder_config.bridge == "linear"
            else None
        )
        self.output_dropout = Dropout(decoder_config.output_dropout)
        self.output_layer = nn.Linear(self.decoder.attentional_size, vocab_size)

    def target_state(
        self, memory: torch.Tensor, memory_mask: torch.Tensor, summary: torch.Tensor
    ) -> DecoderState:
        """The decoder state before the first token.

        Args:
            memory: (B, S, M); memory_mask: (B, S).
            summary: (B, summary_size), what the bridge reads.
        """
        B = memory.size(0)
        config = self.decoder_config
        if self.bridge is None:
            hidden = memory.new_zeros(B, config.num_layers, config.hidden_size)
        else:
            hidden = torch.tanh(self.bridge(summary)).view(
                B, config.num_layers, config.hidden_size
            )  # (B, L, H)
        return self.decoder.initial_state(memory, memory_mask, hidden)

    def output_logits(self, attentional: torch.Tensor) -> torch.Tensor:
        """Next-token scores (..., V) for attentional vectors (..., A)."""
        return self.output_layer(self.output_dropout(attentional))

    def output_loss(
        self, attentional: torch.Tensor, targets: torch.Tensor, label_smoothing: float
    ) -> torch.Tensor:
        """Mean label-smoothed cross-entropy of the next-token scores of ``attentional``
        (N, A) against ``targets`` (N,).

        When gradients are wanted (and the fast-path switch of
        :mod:`attnrnn.nn.fast_paths` is on) the output layer and the loss run fused, a
        block of rows at a time (:func:`attnrnn.nn.losses.linear_cross_entropy`, on
        any device): the (N, V) logits never exist, which saves most of the output
        layer's memory traffic. Otherwise the logits go through
        :func:`attnrnn.nn.losses.smoothed_cross_entropy` in at least float32 (a
        float64 model keeps float64, as the fused path does).
        """
        hidden = self.output_dropout(attentional)
        layer = self.output_layer
        if fast_paths.gradients_wanted() and layer.weight.requires_grad:
            return linear_cross_entropy(hidden, layer.weight, layer.bias, targets, label_smoothing)
        logits = layer(hidden)  # (N, V)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        return smoothed_cross_entropy(logits, targets, label_smoothing)

    def step(
        self,
        prev_tokens: torch.Tensor,
        state: DecoderState,
        outputs: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One decoding step (search protocol).

        Args:
            prev_tokens: (N,) the previous target token of every row.
            outputs: the output layer's weight (V', A) and bias (V',) rows of the only
                outputs to score (a lexical shortlist,
                :mod:`attnrnn.decoding.shortlist`); None: the whole vocabulary.

        Returns:
            log-probabilities (N, V) in float32 (normalized over the V' outputs given),
            the new state, attention (N, S).
        """
        attentional, state, weights = self.step_features(prev_tokens, state)
        if outputs is None:
            logits = self.output_logits(attentional)  # (N, V)
        else:
            logits = F.linear(self.output_dropout(attentional), *outputs)  # (N, V')
        log_probs = F.log_softmax(logits.float(), dim=-1)
        return log_probs, state, weights

    def step_features(
        self, prev_tokens: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """:meth:`step` up to the output layer: the attentional vectors (N, A) that the
        output layer scores, the new state and the attention (N, S)."""
        embedded = self.embedding_dropout(self.target_embedding(prev_tokens))  # (N, E)
        return self.decoder.step(embedded, state)

    def teacher_forced(
        self, target_input: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attentional vectors (B, T, A) and attention (B, T, S) for target input (B, T)."""
        embedded = self.embedding_dropout(self.target_embedding(target_input))  # (B, T, E)
        return self.decoder(embedded, state)
