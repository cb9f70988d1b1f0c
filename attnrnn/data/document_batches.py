"""Padded batches of documents in a copy (extended) vocabulary, for the
pointer-generator (:mod:`attnrnn.models.pointer_generator`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from attnrnn.data.batching import DeviceBatch, pad_sequences, teacher_forcing
from attnrnn.data.documents import DocumentSplit


class CopyIds(Protocol):
    """What batching needs to know of a copy model (a PointerGenerator)."""

    vocab_size: int
    pad_index: int
    bos_index: int
    eos_index: int
    unk_index: int
    copy: bool


@dataclass
class CopyBatch(DeviceBatch):
    """source (B, S) extended ids, lengths (B,), target input / output (B, T), V + X."""

    source: torch.Tensor
    source_lengths: torch.Tensor
    target_input: torch.Tensor
    target_output: torch.Tensor
    extended_size: int


def collate(
    split: DocumentSplit, indices: Sequence[int], model: CopyIds, multiple: int = 1
) -> CopyBatch:
    """Pad the documents ``indices`` (both sides to a multiple of ``multiple``); without
    copying, extended ids become ``<unk>``."""
    documents = [split.documents[i] for i in indices]
    unk, size = model.unk_index, model.vocab_size

    def ids(values: list[int]) -> list[int]:
        return values if model.copy else [unk if v >= size else v for v in values]

    pad, bos, eos = model.pad_index, model.bos_index, model.eos_index
    source, lengths = pad_sequences([ids(d.source) for d in documents], pad, multiple)  # (B, S)
    targets = [ids(d.target) for d in documents]
    target_input, target_output = teacher_forcing(targets, pad, bos, eos, multiple)  # (B, T)
    extra = max((len(d.unknown) for d in documents), default=0) if model.copy else 0
    return CopyBatch(source, lengths, target_input, target_output, size + extra)
