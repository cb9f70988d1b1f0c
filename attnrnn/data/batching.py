"""Length-bucketed batches under a token budget, and padding.

Sequences of similar length go together so that little compute is spent on
padding. A batch holds at most ``batch_tokens`` tokens counted with padding
(``batch size x longest length``) and at most ``max_batch_size`` sequences.

The order of batches is a pure function of ``(seed, epoch)``, so training can
resume in the middle of an epoch by skipping the batches already seen. With
``world_size > 1`` the shuffle keeps groups of ``world_size`` batches of similar length
together and each rank takes its batch of every group: at every step the ranks work on
batches of about the same size.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import torch

B = TypeVar("B", bound="DeviceBatch")


def make_batches(
    lengths: Sequence[int],
    batch_tokens: int,
    max_batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    bucket_size_factor: int = 50,
    group: int = 1,
) -> list[list[int]]:
    """Group example indices into batches of similar length.

    Args:
        lengths: length of every example (after truncation).
        batch_tokens: budget of padded tokens per batch.
        max_batch_size: most examples in one batch.
        shuffle: shuffle within large buckets and shuffle the batch order
            (training); without it batches go by length (evaluation).
        seed, epoch: determine the shuffle.
        bucket_size_factor: a bucket holds ``factor x max_batch_size``
            examples before sorting; larger means less padding, less randomness.
        group: the batches one training step takes (processes x accumulated batches):
            the shuffle moves groups of ``group`` neighbouring batches, which are of
            similar length, together, and puts an incomplete last group at the end;
            :func:`steps` then hands each group to one step, so that no process waits on
            a much longer batch than the others. With 1 the order is as without it.

    Returns:
        a list of batches, each a list of example indices.
    """
    indices = list(range(len(lengths)))
    generator = random.Random(seed * 1_000_003 + epoch)
    if shuffle:
        generator.shuffle(indices)
        bucket = max(max_batch_size * bucket_size_factor, 1)
        chunks = [indices[start : start + bucket] for start in range(0, len(indices), bucket)]
        ordered = [i for chunk in chunks for i in sorted(chunk, key=lambda i: lengths[i])]
    else:
        ordered = sorted(indices, key=lambda i: lengths[i])
    batches = _split_by_budget(ordered, lengths, batch_tokens, max_batch_size)
    if shuffle:
        groups = [batches[start : start + group] for start in range(0, len(batches), group)]
        incomplete = groups.pop() if groups and len(groups[-1]) < group else []
        generator.shuffle(groups)
        batches = [batch for together in groups for batch in together] + incomplete
    return batches


def _split_by_budget(
    ordered: list[int], lengths: Sequence[int], batch_tokens: int, max_batch_size: int
) -> list[list[int]]:
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in ordered:
        candidate_longest = max(longest, lengths[index])
        too_many_tokens = candidate_longest * (len(current) + 1) > batch_tokens
        if current and (too_many_tokens or len(current) >= max_batch_size):
            batches.append(current)
            current, candidate_longest = [], lengths[index]
        current.append(index)
        longest = candidate_longest
    if current:
        batches.append(current)
    return batches


def steps(batches: list[list[int]], group: int) -> list[list[list[int]]]:
    """The batches of each training step: consecutive groups of ``group`` (an incomplete
    last group is left out, to be trained on in another epoch's order)."""
    return [batches[start : start + group] for start in range(0, len(batches) - group + 1, group)]


def share(step: list[list[int]], rank: int, world_size: int) -> list[list[int]]:
    """The batches of one step that process ``rank`` of ``world_size`` trains on: the
    ``rank``-th, ``rank + world_size``-th... (its accumulated micro-batches)."""
    return step[rank::world_size]


def round_up(length: int, multiple: int) -> int:
    """``length`` rounded up to a multiple of ``multiple``."""
    return -(-length // multiple) * multiple


def pad_sequences(
    sequences: Sequence[Sequence[int]], pad_index: int, multiple: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token id lists into a batch.

    Returns:
        tokens: (B, S) long, padded with ``pad_index``; S is the longest sequence rounded
            up to a multiple of ``multiple`` (see
            :func:`attnrnn.training.runtime.shape_multiple`).
        lengths: (B,) long.
    """
    lengths = torch.tensor([len(sequence) for sequence in sequences], dtype=torch.long)
    longest = round_up(int(lengths.max().item()), multiple) if len(sequences) else 0
    tokens = torch.full((len(sequences), longest), pad_index, dtype=torch.long)  # (B, S)
    for row, sequence in enumerate(sequences):
        tokens[row, : len(sequence)] = torch.as_tensor(sequence, dtype=torch.long)
    return tokens, lengths


def teacher_forcing(
    targets: Sequence[Sequence[int]],
    pad_index: int,
    bos_index: int,
    eos_index: int,
    multiple: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's input ``BOS y`` and expected output ``y EOS`` of every target,
    padded: (B, T + 1) each, T the longest target (T + 1 rounded up to a multiple of
    ``multiple``)."""
    inputs = [[bos_index, *target] for target in targets]
    target_input, _ = pad_sequences(inputs, pad_index, multiple)
    outputs = [[*target, eos_index] for target in targets]
    target_output, _ = pad_sequences(outputs, pad_index, multiple)
    return target_input, target_output


def iterate_from(batches: list[list[int]], start: int) -> Iterator[tuple[int, list[int]]]:
    """Enumerate ``batches`` from position ``start`` (used to resume mid-epoch)."""
    for position in range(start, len(batches)):
        yield position, batches[position]


class DeviceBatch:
    """Base of the batch dataclasses: :meth:`to` moves every tensor field to a device."""

    def to(self: B, device: torch.device | str) -> B:
        moved: dict[str, Any] = {}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if isinstance(value, torch.Tensor):
                moved[field.name] = value.to(device)
        return dataclasses.replace(self, **moved)  # type: ignore[type-var]
