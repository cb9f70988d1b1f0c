"""Text classifier: embedding -> RNN encoder -> attention pooling -> MLP -> logits.

This is the article's model: the RNN reads the text into hidden states
``h_1..h_S``, a fully connected layer scores each time step, a softmax over
the valid steps gives one weight per step, and the weighted sum of hidden
states goes through fully connected output layers.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from attnrnn.config import EncoderConfig, check_positive, check_probability
from attnrnn.errors import ConfigError
from attnrnn.models.outputs import ClassifierOutput
from attnrnn.nn.dropout import Dropout
from attnrnn.nn.encoders import RNNEncoder
from attnrnn.nn.masking import lengths_to_mask
from attnrnn.nn.pooling import AttentionPooling


@dataclasses.dataclass(frozen=True)
class PoolingConfig:
    """Attention pooling over the encoder outputs.

    penalty_weight: weight of the multi-hop redundancy penalty ``||AA^T - I||^2``.
    diversity_weight: weight of the conicity of the attended states in the loss (the
        Diversity LSTM of Mohankumar et al. 2020): pushing the states apart makes each
        weight matter, so the attention explains more of the prediction.
    importance_weight: weight of the KL divergence from the gradient x input importance of
        the gold label's log-probability (positive part, normalised over the tokens) to the
        attention: the attention is pulled towards the tokens that drive the decision
        (:func:`gradient_importance`; one more forward and backward pass per step).
    """

    attention_size: int = 128
    hops: int = 1
    penalty_weight: float = 0.0
    diversity_weight: float = 0.0
    importance_weight: float = 0.0

    def __post_init__(self) -> None:
        check_positive(self, "attention_size", "hops")
        for name in ("diversity_weight", "importance_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Hyperparameters of :class:`TextClassifier`."""

    embedding_size: int = 300
    embedding_dropout: float = 0.3
    freeze_embeddings: bool = False
    encoder: EncoderConfig = EncoderConfig()
    encoder_dropout: float = 0.3
    pooling: PoolingConfig = PoolingConfig()
    hidden_size: int = 256
    dropout: float = 0.3

    def __post_init__(self) -> None:
        check_positive(self, "embedding_size")
        check_probability(self, "embedding_dropout", "encoder_dropout", "dropout")
        if self.hidden_size < 0:
            raise ConfigError(f"hidden_size must not be negative, got {self.hidden_size}")


class TextClassifier(nn.Module):
    """Attention-pooled RNN classifier.

    Args:
        vocab_size: V.
        num_classes: C.
        config: the hyperparameters.
        pad_index: the padding token id (its embedding stays zero).
    """

    def __init__(self, vocab_size: int, num_classes: int, config: ClassifierConfig, pad_index: int):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(vocab_size, config.embedding_size, padding_idx=pad_index)
        self.embedding.weight.requires_grad_(not config.freeze_embeddings)
        self.embedding_dropout = Dropout(config.embedding_dropout)
        self.encoder = RNNEncoder.from_config(config.embedding_size, config.encoder)
        self.encoder_dropout = Dropout(config.encoder_dropout)
        self.pooling = AttentionPooling(
            self.encoder.output_size, config.pooling.attention_size, config.pooling.hops
        )
        pooled_size = self.encoder.output_size * config.pooling.hops
        if config.hidden_size:
            self.head: nn.Module = nn.Sequential(
                nn.Linear(pooled_size, config.hidden_size),
                nn.Tanh(),
                Dropout(config.dropout),
                nn.Linear(config.hidden_size, num_classes),
            )
        else:
            self.head = nn.Sequential(Dropout(config.dropout), nn.Linear(pooled_size, num_classes))

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """The parameters from the input up, for fine-tuning (discriminative learning rates,
        gradual unfreezing): the embedding, each encoder layer, then attention and MLP."""
        groups = [list(self.embedding.parameters())]
        groups += [list(layer.parameters()) for layer in self.encoder.layers]
        groups.append([*self.pooling.parameters(), *self.head.parameters()])
        return groups

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> ClassifierOutput:
        """Classify a padded batch.

        Args:
            tokens: (B, S) token ids, padded.
            lengths: (B,) valid tokens per row, each >= 1.
        """
        return self.classify_embedded(self.embedding(tokens), lengths)

    def classify_embedded(self, embedded: torch.Tensor, lengths: torch.Tensor) -> ClassifierOutput:
        """:meth:`forward` from the token embeddings (B, S, E) on: what gradients with
        respect to the input are taken of."""
        encoded = self.encoder(self.embedding_dropout(embedded), lengths).outputs  # (B, S, H')
        mask = lengths_to_mask(lengths, embedded.size(1)).to(embedded.device)  # (B, S)
        pooling = self.pooling(self.encoder_dropout(encoded), mask)  # pooled (B, r*H')
        logits = self.head(pooling.pooled)  # (B, C)
        diversity = (
            conicity(encoded, mask).mean()
            if self.config.pooling.diversity_weight
            else logits.new_zeros(())
        )
        return ClassifierOutput(logits, pooling.weights, pooling.penalty, diversity)


def gradient_importance(
    model: TextClassifier, tokens: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Where the decision comes from, as a distribution over each text's tokens.

    Gradient x input of the gold label's log-probability at each token's embedding (summed
    over E); the positive part (the tokens that support the label), normalised to sum to 1
    over the valid tokens (uniform when no token supports it). Detached: a target.

    Args:
        tokens: (B, S) token ids; lengths: (B,); labels: (B,) gold class indices.
    Returns:
        (B, S) weights, zero on padding.
    """
    embedded = model.embedding(tokens).detach().requires_grad_(True)  # (B, S, E)
    with torch.enable_grad():
        logits = model.classify_embedded(embedded, lengths).logits  # (B, C)
        chosen = logits.log_softmax(dim=-1).gather(1, labels.unsqueeze(1)).sum()
        (gradient,) = torch.autograd.grad(chosen, embedded)
    mask = lengths_to_mask(lengths, tokens.size(1)).to(tokens.device)  # (B, S)
    scores = (gradient * embedded).sum(dim=-1).clamp(min=0) * mask  # (B, S)
    total = scores.sum(dim=-1, keepdim=True)
    uniform = mask / mask.sum(dim=-1, keepdim=True)
    return torch.where(total > 0, scores / total.clamp(min=1e-12), uniform).detach()


def importance_loss(attention: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean KL(target || attention) over a batch: attention (B, r, S) averaged over the
    hops against target (B, S) from :func:`gradient_importance`."""
    weights = attention.mean(dim=1).clamp(min=1e-9)  # (B, S)
    positive = target > 0
    terms = torch.where(positive, target * (target.clamp(min=1e-12).log() - weights.log()), 0.0)
    return terms.sum(dim=-1).mean()


def conicity(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """How much a text's states point the same way (Mohankumar et al. 2020).

    The mean cosine similarity of each valid state to the mean of the text's valid states:
    near 1 when the states lie in a narrow cone (any weighting of them pools to nearly the
    same vector, so the attention can hardly matter), near 0 when they are spread out.

    Args:
        states: (B, S, H) encoder states; mask: (B, S) bool, True on valid steps.
    Returns:
        (B,) conicity of each text.
    """
    weights = mask.to(states.dtype).unsqueeze(-1)  # (B, S, 1)
    mean = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)  # (B, H)
    cosine = F.cosine_similarity(states, mean.unsqueeze(1).expand_as(states), dim=-1)  # (B, S)
    return (cosine * weights.squeeze(-1)).sum(dim=1) / weights.squeeze(-1).sum(dim=1).clamp(min=1)
