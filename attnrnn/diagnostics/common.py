"""What the diagnostics modules share: running a model in eval mode, and the report's
sections as diagnostics.json stores them.

A section is a plain JSON-able dict: ``name``, ``title``, ``explanation``, ``summary``
(headline numbers), ``distributions`` (one value per example or step, drawn as
histograms) and ``notes``. Its floats are rounded to 4 decimals, and a missing, NaN or
infinite value is None in the summary and left out of a distribution: the JSON never
holds NaN.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch

DECIMALS = 4


@contextlib.contextmanager
def evaluating(model: torch.nn.Module, no_grad: bool = False) -> Iterator[None]:
    """Run ``model`` in eval mode (no dropout), also without gradients when ``no_grad``;
    restore its mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad() if no_grad else contextlib.nullcontext():
            yield
    finally:
        model.train(was_training)


def number(value: float | None) -> float | None:
    """A JSON number: ``value`` rounded to 4 decimals; None for None, NaN or infinity."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), DECIMALS)


def numbers(values: Iterable[float]) -> list[float]:
    """``values`` rounded to 4 decimals, NaN and infinities left out."""
    return [rounded for value in values if (rounded := number(value)) is not None]


def median(values: Sequence[float]) -> float | None:
    """The median of ``values`` as a JSON number; None when there are none."""
    return number(statistics.median(values)) if values else None


def mean(values: Sequence[float]) -> float | None:
    """The mean of ``values`` as a JSON number; None when there are none."""
    return number(statistics.fmean(values)) if values else None


def share(count: int, total: int) -> float | None:
    """``count / total`` as a JSON number; None when the total is 0."""
    return number(count / total) if total else None


def section(
    name: str,
    title: str,
    explanation: str,
    summary: Mapping[str, float | int | None],
    distributions: Mapping[str, Iterable[float]] | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """One section of a diagnosis, as diagnostics.json stores it: ints (and bools) of the
    summary kept as they are, every other number through :func:`number` and
    :func:`numbers`."""
    return {
        "name": name,
        "title": title,
        "explanation": explanation,
        "summary": {
            key: value if isinstance(value, int) else number(value)
            for key, value in summary.items()
        },
        "distributions": {key: numbers(values) for key, values in (distributions or {}).items()},
        "notes": list(notes),
    }
