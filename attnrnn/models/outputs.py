"""Typed outputs of the task models."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ClassifierOutput:
    """What :class:`attnrnn.models.classifier.TextClassifier` returns.

    logits: (B, C) unnormalised class scores.
    attention: (B, r, S) attention over tokens per hop (r = 1 for the article's model).
    penalty: () the multi-hop redundancy penalty (0 for one hop).
    conicity: () mean conicity of the attended states when the model trains with the
        diversity objective (``pooling.diversity_weight``), else 0.
    """

    logits: torch.Tensor
    attention: torch.Tensor
    penalty: torch.Tensor
    conicity: torch.Tensor


@dataclass
class Seq2SeqOutput:
    """What :class:`attnrnn.models.seq2seq.Seq2Seq` returns for a teacher-forced pass.

    attentional: (B, T, A) the decoder's attentional vectors; the model's
        ``output_logits`` turns them into (B, T, V) scores. They are returned
        instead of the logits so that a loss can project only the positions
        it needs (no output layer on padding).
    attention: (B, T, S) attention of every target step over the source.
    """

    attentional: torch.Tensor
    attention: torch.Tensor
