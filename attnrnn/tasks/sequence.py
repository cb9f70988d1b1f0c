"""What the tasks that write a token sequence share (translation, speech recognition,
summarization): search options as keyword arguments and command-line flags, and
decoding encoded batches into n-best lists."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from attnrnn.decoding import Hypothesis, SearchConfig, search
from attnrnn.errors import ConfigError
from attnrnn.tasks.base import Option, TrainedModel

SEARCH_FIELDS = tuple(field.name for field in dataclasses.fields(SearchConfig))

SEARCH_OPTIONS = (
    Option(("--beam",), "beam", "beam size (default: the run's search.beam_size)", type=int),
    Option(
        ("--n-best",),
        "n_best",
        "alternatives to return per input; the beam grows to N when it is smaller",
        commands=("predict",),
        type=int,
    ),
    Option(
        ("--length-penalty",),
        "length_penalty",
        "GNMT length penalty alpha (default: the run's)",
        type=float,
    ),
)


@dataclass
class Alternative:
    """One hypothesis of the beam (n-best) with its search score, its output tokens
    (+ "</s>" when the search produced it) and their attention (T, S)."""

    text: str
    score: float
    target_tokens: list[str]
    attention: list[list[float]]


def search_config(base: SearchConfig, **options: Any) -> SearchConfig:
    """``base`` with search options given as keywords: ``beam`` (beam size), ``n_best``
    and any :class:`~attnrnn.decoding.SearchConfig` field (``length_penalty``...).

    ``n_best`` larger than the beam grows the beam to ``n_best``; ``None`` values keep
    the run's setting. An unknown keyword is a :class:`ConfigError` with a hint.
    """
    changes = {key: value for key, value in options.items() if value is not None}
    if "beam" in changes:
        changes["beam_size"] = changes.pop("beam")
    for key in changes:
        if key not in SEARCH_FIELDS:
            close = difflib.get_close_matches(key, [*SEARCH_FIELDS, "beam"], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown search option {key!r}{hint}")
    n_best = changes.get("n_best", base.n_best)
    beam = changes.get("beam_size", base.beam_size)
    if n_best > beam:
        if "beam_size" in changes:
            raise ConfigError(f"n_best ({n_best}) cannot exceed the beam ({beam})")
        changes["beam_size"] = n_best
    if "beam_size" in changes and "n_best" not in changes:
        changes["n_best"] = min(base.n_best, changes["beam_size"])
    try:
        return dataclasses.replace(base, **changes)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"search options: {error}") from None


def decode(
    trained: TrainedModel,
    lengths: Sequence[int],
    start: Callable[[list[int]], tuple[Any, Any, torch.Tensor]],
    config: SearchConfig,
    description: str = "decode",
) -> list[list[Hypothesis]]:
    """N-best lists of every input, in input order, through the shared batched loop.

    ``start(indices)`` encodes a batch and returns ``(step_model, state,
    source_lengths)``: what :func:`attnrnn.decoding.search` decodes (the model
    itself, or a wrapper such as joint CTC scoring). A step model with ``restore``
    (:class:`~attnrnn.decoding.shortlist.Shortlisted`) maps the hypotheses' tokens
    back to the model's ids.
    """

    def run(indices: list[int]) -> list[list[Hypothesis]]:
        step_model, state, source_lengths = start(indices)
        found = search(step_model, state, source_lengths, config)
        restore = getattr(step_model, "restore", None)  # a wrapper that renamed tokens
        return found if restore is None else restore(found)

    return trained.batched(lengths, run, rows_per_input=config.beam_size, description=description)
