"""Wiegreffe & Pinter's (2019) baselines for a classifier's attention.

Jain & Wallace's tests ask whether other weights *could* give the same output; these ask
whether the model's own weights *carry* information:

- :func:`uniform_pooling`: the same model with uniform weights over the valid tokens. If
  accuracy barely drops, the task does not need attention and nothing it shows is evidence.
- :func:`mlp_transfer`: a fresh model without recurrence (per-token MLP, weighted average,
  linear output) trained with the attention frozen to the trained model's weights, and the
  same with uniform weights. Weights that beat uniform ones in a model that cannot
  redistribute them itself carry information about the label.

Seed variance (the third baseline) compares the attention of runs that differ only in the
seed; see :func:`attnrnn.diagnostics.run.seed_variance`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from attnrnn.data.batching import pad_sequences
from attnrnn.diagnostics.classifier import encoder_states, logits_from_weights
from attnrnn.diagnostics.common import evaluating
from attnrnn.models.classifier import TextClassifier
from attnrnn.nn.masking import lengths_to_mask

BATCH = 64


def _batches(ids: Sequence[Sequence[int]], size: int = BATCH) -> list[list[int]]:
    """Indices grouped into batches of similar length (less padding), in length order."""
    order = sorted(range(len(ids)), key=lambda index: len(ids[index]))
    return [order[start : start + size] for start in range(0, len(order), size)]


def uniform_weights(lengths: torch.Tensor, size: int, hops: int) -> torch.Tensor:
    """(B,) lengths -> (B, r, S) weights 1/length on the valid tokens, 0 on padding."""
    mask = lengths_to_mask(lengths, size).to(torch.float32)  # (B, S)
    weights = mask / lengths.unsqueeze(1).to(torch.float32)
    return weights.unsqueeze(1).expand(-1, hops, -1)


@dataclass
class UniformPooling:
    """Class probabilities of the model with its own attention and with uniform weights,
    one row per text: ``own`` and ``uniform`` (N, C), and the model's ``attention`` per text
    ((r, L) each), in input order."""

    own: torch.Tensor
    uniform: torch.Tensor
    attention: list[torch.Tensor]


def uniform_pooling(
    model: TextClassifier, ids: Sequence[Sequence[int]], pad: int
) -> UniformPooling:
    """Run ``model`` on every text twice: with its attention and with uniform weights."""
    device = model.embedding.weight.device
    own: list[torch.Tensor] = [torch.empty(0)] * len(ids)
    uniform: list[torch.Tensor] = [torch.empty(0)] * len(ids)
    attention: list[torch.Tensor] = [torch.empty(0)] * len(ids)
    with evaluating(model, no_grad=True):
        for batch in _batches(ids):
            tokens, lengths = pad_sequences([ids[i] for i in batch], pad)
            tokens, lengths = tokens.to(device), lengths.to(device)  # (B, S), (B,)
            output = model(tokens, lengths)
            states = encoder_states(model, tokens, lengths)  # (B, S, H')
            weights = uniform_weights(lengths, tokens.size(1), output.attention.size(1))
            flat = logits_from_weights(model, states, weights.to(states.dtype)).softmax(-1)
            for row, index in enumerate(batch):
                own[index] = output.logits[row].softmax(-1).cpu()
                uniform[index] = flat[row].cpu()
                attention[index] = output.attention[row, :, : int(lengths[row])].cpu()
    return UniformPooling(torch.stack(own), torch.stack(uniform), attention)


class PooledMLP(nn.Module):
    """Embedding -> tanh(linear) per token -> weighted average with given weights -> linear.

    No recurrence and no attention of its own: what it learns from the pooling weights it
    is handed is what those weights tell about the label.
    """

    def __init__(self, embedding: torch.Tensor, hidden_size: int, num_classes: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(embedding.clone(), freeze=False)
        self.token = nn.Linear(embedding.size(1), hidden_size)
        self.output = nn.Linear(hidden_size, num_classes)

    def forward(self, tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """tokens (B, S), weights (B, S) summing to 1 over the valid tokens -> (B, C) logits."""
        hidden = torch.tanh(self.token(self.embedding(tokens)))  # (B, S, H)
        return self.output(torch.bmm(weights.unsqueeze(1), hidden).squeeze(1))  # (B, C)


def _pooling_weights(
    attention: Sequence[torch.Tensor] | None, batch: list[int], lengths: torch.Tensor, size: int
) -> torch.Tensor:
    """(B, S) weights of a batch: the given attention (mean over hops) or uniform."""
    if attention is None:
        return uniform_weights(lengths, size, 1)[:, 0]
    weights = torch.zeros(len(batch), size)
    for row, index in enumerate(batch):
        weights[row, : attention[index].size(-1)] = attention[index].mean(dim=0)
    return weights


def train_pooled_mlp(
    model: TextClassifier,
    ids: Sequence[Sequence[int]],
    labels: Sequence[int],
    attention: Sequence[torch.Tensor] | None,
    pad: int,
    num_classes: int,
    epochs: int = 3,
    seed: int = 0,
) -> PooledMLP:
    """Train a :class:`PooledMLP` (embeddings started from ``model``'s, on the CPU) with
    the pooling weights frozen to ``attention`` ((r, L) per text) or uniform (None)."""
    torch.manual_seed(seed)
    embedding = model.embedding.weight.detach().float().cpu()
    mlp = PooledMLP(embedding, 128, num_classes)
    optimizer = torch.optim.Adam(mlp.parameters(), lr=2e-3)
    batches = _batches(ids, 32)
    shuffle = random.Random(seed)
    for _ in range(epochs):
        shuffle.shuffle(batches)
        for batch in batches:
            tokens, lengths = pad_sequences([ids[i] for i in batch], pad)  # (B, S), (B,)
            weights = _pooling_weights(attention, batch, lengths, tokens.size(1))
            target = torch.tensor([labels[i] for i in batch])
            loss = F.cross_entropy(mlp(tokens, weights), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return mlp.eval()


def pooled_mlp_accuracy(
    mlp: PooledMLP,
    ids: Sequence[Sequence[int]],
    labels: Sequence[int],
    attention: Sequence[torch.Tensor] | None,
    pad: int,
) -> float:
    """Accuracy of ``mlp`` pooling with ``attention`` (or uniform weights) on these texts."""
    correct = 0
    with torch.no_grad():
        for batch in _batches(ids):
            tokens, lengths = pad_sequences([ids[i] for i in batch], pad)
            weights = _pooling_weights(attention, batch, lengths, tokens.size(1))
            predicted = mlp(tokens, weights).argmax(dim=-1)
            correct += sum(int(predicted[row]) == labels[i] for row, i in enumerate(batch))
    return correct / max(1, len(ids))


@dataclass
class Transfer:
    """Test accuracy of the pooled MLP with uniform and with the model's frozen weights."""

    uniform_accuracy: float
    frozen_attention_accuracy: float
    training_texts: int


def mlp_transfer(
    model: TextClassifier,
    train: tuple[Sequence[Sequence[int]], Sequence[int]],
    test: tuple[Sequence[Sequence[int]], Sequence[int]],
    pad: int,
    num_classes: int,
    epochs: int = 3,
) -> Transfer:
    """Wiegreffe & Pinter's "guiding a simpler model": train the pooled MLP twice on
    ``train`` (ids, labels), with uniform weights and with the model's attention frozen,
    and score both on ``test`` with the same kind of weights."""
    train_attention = uniform_pooling(model, train[0], pad).attention
    test_attention = uniform_pooling(model, test[0], pad).attention
    accuracies = []
    for train_weights, test_weights in ((None, None), (train_attention, test_attention)):
        mlp = train_pooled_mlp(model, *train, train_weights, pad, num_classes, epochs)
        accuracies.append(pooled_mlp_accuracy(mlp, *test, test_weights, pad))
    return Transfer(accuracies[0], accuracies[1], len(train[0]))
