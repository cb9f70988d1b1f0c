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
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from attnrnn.config import EncoderConfig, check_positive, check_probability
from attnrnn.errors import ConfigError
from attnrnn.nn import fast_paths
from attnrnn.nn.dropout import Dropout
from attnrnn.nn.encoders import RNNEncoder
from attnrnn.nn.losses import adaptive_cross_entropy
from attnrnn.nn.masking import lengths_to_mask

# Each rarer word cluster of the adaptive softmax gets a projection this many times smaller.
ADAPTIVE_DIVISOR = 4


@dataclass(frozen=True)
class LanguageModelConfig:
    """Hyperparameters of :class:`BidirectionalLanguageModel`.

    ``embedding_size`` and ``encoder`` must equal the classifier's
    ``model.embedding_size`` and ``model.encoder`` for the weights to transfer.
    ``adaptive_cutoffs``: the word ranks where the adaptive softmax starts a new,
    rarer cluster (clipped to the vocabulary).
    """

    embedding_size: int = 300
    encoder: EncoderConfig = EncoderConfig()
    dropout: float = 0.1
    adaptive_cutoffs: tuple[int, ...] = (2000, 10000)

    def __post_init__(self) -> None:
        check_positive(self, "embedding_size")
        check_probability(self, "dropout")
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


@dataclass
class LanguageModelOutput:
    """What :class:`BidirectionalLanguageModel` returns.

    The N predictions of a batch are its (row, position) pairs with position
    t < length - 1, row by row: the forward direction predicts token t + 1 from
    tokens 0..t, the backward direction token t from tokens t + 1..end.

    loss: () mean negative log-likelihood per predicted token, both directions.
    forward_loss: () mean NLL of the forward (next-token) predictions.
    backward_loss: () mean NLL of the backward (previous-token) predictions,
        None for a unidirectional encoder.
    predicted_tokens: N, predictions per direction (``sum(lengths - 1)``).
    forward_log_probs: (N,) log-probability of each forward prediction's token.
    backward_log_probs: (N,) the same for the backward direction, or None.
    """

    loss: torch.Tensor
    forward_loss: torch.Tensor
    backward_loss: torch.Tensor | None
    predicted_tokens: int
    forward_log_probs: torch.Tensor
    backward_log_probs: torch.Tensor | None


RNNState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass
class LanguageModelState:
    """The forward RNN's state after a prefix, one entry per layer: (1, N, H), or the
    (hidden, cell) pair of an LSTM. Selecting rows is a beam-search step."""

    layers: list[RNNState]

    def select(self, indices: torch.Tensor) -> LanguageModelState:
        """The state of rows ``indices`` (N',)."""

        def rows(state: RNNState) -> RNNState:
            if isinstance(state, tuple):
                return (state[0].index_select(1, indices), state[1].index_select(1, indices))
            return state.index_select(1, indices)

        return LanguageModelState([rows(layer) for layer in self.layers])


class BidirectionalLanguageModel(nn.Module):
    """Embedding -> dropout -> RNN encoder -> one adaptive softmax per direction.

    The ``embedding`` and ``encoder`` have the structure of
    :class:`~attnrnn.models.classifier.TextClassifier`'s, so their weights
    transfer. A unidirectional encoder trains only the forward language model.

    Args:
        vocab_size: V.
        config: the hyperparameters (embedding size, encoder, dropout, cutoffs).
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

    def _predictions(
        self, tokens: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The N (state, target) pairs of each direction, row by row: forward state t
        with token t + 1, backward state t + 1 with token t.

        Returns:
            forward_states: (N, H); next_tokens: (N,);
            backward_states: (N, H), None for a unidirectional encoder;
            previous_tokens: (N,).
        """
        forward_states, backward_states = self.encode(tokens, lengths)
        pairs = lengths_to_mask(lengths - 1, tokens.size(1) - 1).to(tokens.device)  # (B, S-1)
        backward = None if backward_states is None else backward_states[:, 1:][pairs]
        return (
            forward_states[:, :-1][pairs],
            tokens[:, 1:][pairs],
            backward,
            tokens[:, :-1][pairs],
        )

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> LanguageModelOutput:
        """Language-model losses and per-prediction log-probabilities of a padded batch.

        Args:
            tokens: (B, S) token ids, padded; S >= 2.
            lengths: (B,) valid tokens per row, each >= 2.
        """
        forward_states, next_tokens, backward_states, previous_tokens = self._predictions(
            tokens, lengths
        )
        # torch's adaptive softmax mixes dtypes under autocast: the heads run in their
        # weights' dtype.
        dtype = self.forward_head.head.weight.dtype
        with torch.autocast(tokens.device.type, enabled=False):
            forward = self.forward_head(forward_states.to(dtype), next_tokens)
            if backward_states is None or self.backward_head is None:
                return LanguageModelOutput(
                    forward.loss, forward.loss, None, next_tokens.numel(), forward.output, None
                )
            backward = self.backward_head(backward_states.to(dtype), previous_tokens)
        loss = (forward.loss + backward.loss) / 2
        return LanguageModelOutput(
            loss,
            forward.loss,
            backward.loss,
            next_tokens.numel(),
            forward.output,
            backward.output,
        )

    def training_loss(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``forward(tokens, lengths).loss`` for a training step: when the fast paths
        are wanted (:mod:`attnrnn.nn.fast_paths`), each head's loss comes through
        :func:`~attnrnn.nn.losses.adaptive_cross_entropy`, which keeps no per-token
        log-probabilities (half the step time of a 50,000-word model on a CPU)."""
        if not fast_paths.gradients_wanted():
            return self(tokens, lengths).loss
        forward_states, next_tokens, backward_states, previous_tokens = self._predictions(
            tokens, lengths
        )
        loss = adaptive_cross_entropy(self.forward_head, forward_states, next_tokens)
        if backward_states is None or self.backward_head is None:
            return loss
        backward = adaptive_cross_entropy(self.backward_head, backward_states, previous_tokens)
        return (loss + backward) / 2

    def step(
        self, previous_tokens: torch.Tensor, state: LanguageModelState | None
    ) -> tuple[torch.Tensor, LanguageModelState]:
        """One step of the forward language model, for decoding: the log-probabilities
        (N, V) of the token after ``previous_tokens`` (N,) given the prefix read so far
        (``state``; None: the empty prefix). Equals row t of :meth:`forward`'s forward
        predictions, one token at a time (in eval mode)."""
        inputs = self.embedding(previous_tokens).unsqueeze(1)  # (N, 1, E)
        layers: list[RNNState] = []
        for layer, directions in enumerate(self.encoder.layers):
            rnn = typing.cast(nn.ModuleList, directions)[0]  # the forward direction
            inputs, layer_state = rnn(inputs, None if state is None else state.layers[layer])
            layers.append(layer_state)
        states = inputs.squeeze(1).to(self.forward_head.head.weight.dtype)  # (N, H)
        return self.forward_head.log_prob(states), LanguageModelState(layers)
