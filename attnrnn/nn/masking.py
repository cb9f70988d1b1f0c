"""Masks and the masked softmax shared by every attention module."""

from __future__ import annotations

import torch


def lengths_to_mask(lengths: torch.Tensor, max_length: int | None = None) -> torch.Tensor:
    """Boolean mask of valid positions.

    Args:
        lengths: (B,) number of valid steps per sequence.
        max_length: S; defaults to ``lengths.max()``.

    Returns:
        (B, S) bool, True where the position holds a real token.
    """
    if max_length is None:
        max_length = int(lengths.max().item()) if lengths.numel() else 0
    positions = torch.arange(max_length, device=lengths.device)  # (S,)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)  # (B, S)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None, dim: int = -1) -> torch.Tensor:
    """Softmax over ``dim`` that puts exactly zero weight where ``mask`` is False.

    Args:
        scores: any shape, e.g. (B, T, S).
        mask: bool, broadcastable to ``scores``; None means every position is valid.

    Returns:
        weights of the shape of ``scores``; a row whose positions are all masked
        gets all-zero weights instead of NaN.
    """
    if mask is None:
        return torch.softmax(scores, dim=dim)
    lowest = torch.finfo(scores.dtype).min
    filled = scores.masked_fill(~mask, lowest)
    weights = torch.softmax(filled, dim=dim)
    return weights.masked_fill(~mask, 0.0)


def expand_mask(mask: torch.Tensor | None, query_length: int) -> torch.Tensor | None:
    """Turn a (B, S) key mask into (B, T, S); a (B, T, S) mask is returned as is."""
    if mask is None or mask.dim() == 3:
        return mask
    return mask.unsqueeze(1).expand(-1, query_length, -1)  # (B, T, S)
