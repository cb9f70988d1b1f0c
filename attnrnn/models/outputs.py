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
    """

    logits: torch.Tensor
    attention: torch.Tensor
    penalty: torch.Tensor
