"""The language model that pretrains a classifier's embedding and RNN encoder on raw text.

ULMFiT / ELMo in small: the embedding and a one-layer bidirectional RNN read
unlabelled text; the forward direction's state at position t predicts token
t + 1 and the backward direction's state at t predicts token t - 1. A
classifier with the same embedding size and encoder then starts from these
weights (``pretrained.encoder`` in its config), which helps most when labelled
data is scarce.

Each direction has its own :class:`torch.nn.AdaptiveLogSoftmaxWithLoss`: the
two directions are different RNNs whose states live in different spaces, so
a shared output layer would need an extra direction input to tell them apart,
while two heads cost nothing extra per token (each prediction goes through
exactly one head). The adaptive softmax keeps a 50,000-word output affordable
on a CPU: frequent words get the full hidden size, rare ones a smaller
projection. The first and last tokens of a chunk are not predicted by the
direction that has no context for them, so no sentence-boundary tokens are
needed.

A run directory holds::

    lm_config.json      the LanguageModelConfig
    tokenizer.json      the WordTokenizer settings
    vocab.json          the vocabulary (most frequent words first)
    final/              the weights (model.safetensors) and state.json
    results.json        tokens, time, throughput and dev perplexity
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from attnrnn.config import (
    EncoderConfig,
    check_non_negative,
    check_positive,
    check_probability,
)
from attnrnn.errors import ConfigError
from attnrnn.nn.dropout import Dropout
from attnrnn.nn.encoders import RNNEncoder
from attnrnn.nn.masking import lengths_to_mask

CONFIG_FILE = "lm_config.json"
TOKENIZER_FILE = "tokenizer.json"
VOCAB_FILE = "vocab.json"
RESULTS_FILE = "results.json"
WEIGHTS_DIRECTORY = "final"
DEV_FRACTION = 0.01
# Each rarer word cluster of the adaptive softmax gets a projection this many times smaller.
ADAPTIVE_DIVISOR = 4


# --------------------------------------------------------------------------- configuration

# A frozen (immutable) instance, so every LanguageModelConfig can share it.
DEFAULT_ENCODER = EncoderConfig(cell="gru", hidden_size=256, num_layers=1, bidirectional=True)


@dataclass(frozen=True)
class LanguageModelConfig:
    """Settings of ``attnrnn pretrain --method lm``.

    ``embedding_size`` and ``encoder`` must equal the classifier's
    ``model.embedding_size`` and ``model.encoder`` for the weights to transfer.
    """

    embedding_size: int = 300
    encoder: EncoderConfig = DEFAULT_ENCODER
    dropout: float = 0.1
    lowercase: bool = True
    vocab_max_size: int = 50000
    vocab_min_freq: int = 3
    max_length: int = 256
    batch_tokens: int = 8000
    max_batch_size: int = 128
    epochs: int = 1
    max_minutes: float | None = None
    learning_rate: float = 2e-3
    warmup_steps: int = 200
    clip_norm: float = 1.0
    seed: int = 1
    num_threads: int | None = None
    device: str = "auto"
    adaptive_cutoffs: tuple[int, ...] = (2000, 10000)
    log_every_steps: int = 100

    def __post_init__(self) -> None:
        check_positive(
            self, "embedding_size", "vocab_max_size", "vocab_min_freq", "batch_tokens",
            "max_batch_size", "epochs", "learning_rate", "log_every_steps",
        )  # fmt: skip
        check_non_negative(self, "warmup_steps", "clip_norm")
        check_probability(self, "dropout")
        if self.max_length < 2:
            raise ConfigError(f"max_length must be at least 2, got {self.max_length}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ConfigError(f"max_minutes must be positive or null, got {self.max_minutes}")
        if self.num_threads is not None and self.num_threads <= 0:
            raise ConfigError(f"num_threads must be positive or null, got {self.num_threads}")
        if self.device != "auto" and not self.device.startswith(("cpu", "cuda", "mps")):
            raise ConfigError(f"device must be auto, cpu, cuda[:N] or mps, got {self.device!r}")
        cutoffs = list(self.adaptive_cutoffs)
        if not cutoffs or min(cutoffs) <= 0 or cutoffs != sorted(set(cutoffs)):
            raise ConfigError(
                f"adaptive_cutoffs must be increasing positive integers, got {cutoffs}"
            )
        smallest_projection = self.encoder.hidden_size // ADAPTIVE_DIVISOR ** len(cutoffs)
        if smallest_projection < 1:
            raise ConfigError(
                f"encoder.hidden_size {self.encoder.hidden_size} is too small for "
                f"{len(cutoffs)} adaptive_cutoffs: the last word cluster would get a "
                f"{smallest_projection}-dimensional projection; use fewer cutoffs"
            )
        if self.encoder.bidirectional and self.encoder.num_layers > 1:
            raise ConfigError(
                "encoder.num_layers must be 1 when encoder.bidirectional is true: a stacked "
                "bidirectional RNN feeds both directions of one layer into the next, so the "
                "forward language model would see the very tokens it has to predict; set "
                "encoder.num_layers=1 or encoder.bidirectional=false"
            )


def clip_cutoffs(cutoffs: Sequence[int], vocab_size: int) -> list[int]:
    """The adaptive-softmax cluster boundaries that fit a vocabulary of ``vocab_size``."""
    kept = [cutoff for cutoff in cutoffs if cutoff < vocab_size - 1]
    return kept or [vocab_size - 1]


# --------------------------------------------------------------------------- model


@dataclass
class LanguageModelOutput:
    """What :class:`BidirectionalLanguageModel` returns.

    loss: () mean negative log-likelihood per predicted token, both directions.
    forward_loss: () mean NLL of the forward (next-token) predictions.
    backward_loss: () mean NLL of the backward (previous-token) predictions,
        None for a unidirectional encoder.
    predicted_tokens: N, predictions per direction (``sum(lengths - 1)``).
    """

    loss: torch.Tensor
    forward_loss: torch.Tensor
    backward_loss: torch.Tensor | None
    predicted_tokens: int


class BidirectionalLanguageModel(nn.Module):
    """Embedding -> dropout -> RNN encoder -> one adaptive softmax per direction.

    The ``embedding`` and ``encoder`` have the structure of
    :class:`~attnrnn.models.classifier.TextClassifier`'s, so their weights
    transfer. A unidirectional encoder trains only the forward language model.

    Args:
        vocab_size: V.
        config: the settings (embedding size, encoder, dropout, cutoffs).
        pad_index: the padding token id (its embedding stays zero).
    """

    def __init__(self, vocab_size: int, config: LanguageModelConfig, pad_index: int) -> None:
        super().__init__()
        encoder = config.encoder
        self.embedding = nn.Embedding(vocab_size, config.embedding_size, padding_idx=pad_index)
        self.dropout = Dropout(config.dropout)
        self.encoder = RNNEncoder.from_config(config.embedding_size, config.encoder)
        cutoffs = clip_cutoffs(config.adaptive_cutoffs, vocab_size)
        H = encoder.hidden_size
        self.forward_head = nn.AdaptiveLogSoftmaxWithLoss(H, vocab_size, cutoffs, ADAPTIVE_DIVISOR)
        self.backward_head = (
            nn.AdaptiveLogSoftmaxWithLoss(H, vocab_size, cutoffs, ADAPTIVE_DIVISOR)
            if encoder.bidirectional
            else None
        )

    def encode(
        self, tokens: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The hidden states of each direction.

        Args:
            tokens: (B, S) token ids, padded.
            lengths: (B,) valid tokens per row, each >= 1.

        Returns:
            forward_states: (B, S, H), position t has read tokens 0..t.
            backward_states: (B, S, H), position t has read tokens t..end;
                None for a unidirectional encoder.
        """
        embedded = self.dropout(self.embedding(tokens))  # (B, S, E)
        outputs = self.dropout(self.encoder(embedded, lengths).outputs)  # (B, S, H * directions)
        H = self.encoder.hidden_size
        forward_states = outputs[..., :H]  # (B, S, H)
        backward_states = outputs[..., H:] if self.encoder.bidirectional else None  # (B, S, H)
        return forward_states, backward_states

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> LanguageModelOutput:
        """Language-model losses of a padded batch.

        Args:
            tokens: (B, S) token ids, padded; S >= 2.
            lengths: (B,) valid tokens per row, each >= 2.
        """
        forward_states, backward_states = self.encode(tokens, lengths)
        # Forward state t predicts token t + 1; backward state t + 1 predicts token t.
        pairs = lengths_to_mask(lengths - 1, tokens.size(1) - 1).to(tokens.device)  # (B, S-1)
        next_tokens = tokens[:, 1:][pairs]  # (N,)
        forward_loss = self.forward_head(forward_states[:, :-1][pairs], next_tokens).loss
        if backward_states is None or self.backward_head is None:
            return LanguageModelOutput(forward_loss, forward_loss, None, next_tokens.numel())
        previous_tokens = tokens[:, :-1][pairs]  # (N,)
        backward_loss = self.backward_head(backward_states[:, 1:][pairs], previous_tokens).loss
        loss = (forward_loss + backward_loss) / 2
        return LanguageModelOutput(loss, forward_loss, backward_loss, next_tokens.numel())
