"""Lexical shortlists: for every source token, the target tokens its translations use
(Marian's ``--shortlist``; Schwenk et al. 2007, Jean et al. 2015), without PyTorch, so
that the ONNX predictor reads them too. How decoding uses them:
:mod:`attnrnn.decoding.shortlist` (PyTorch) and :mod:`attnrnn.onnx.runtime`.

A shortlist keeps, for every source token, the ``per_word`` target tokens most
associated with it in the training pairs, and the ``frequent`` most common target tokens
for everything else (function words, punctuation). Association is the Dice coefficient
of co-occurrence in a pair, ``2 c(s, t) / (c(s) + c(t))`` (each pair counted once per
token pair): word alignment would rank a little better, but the Dice table needs no
aligner and keeps the words a sentence's translation needs in practice.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnrnn.data.io import read_run_json
from attnrnn.errors import RunError

SHORTLIST_FILE = "shortlist.json"


@dataclass
class Shortlist:
    """``per_source[s]``: the target ids kept for source id s, best first;
    ``always``: the target ids every batch keeps (the most frequent, and the specials)."""

    per_source: dict[int, list[int]]
    always: list[int]

    def candidates(self, sources: Iterable[Sequence[int]]) -> list[int]:
        """The sorted target ids a batch of sources may produce."""
        kept = set(self.always)
        for source in sources:
            for token in source:
                kept.update(self.per_source.get(token, ()))
        return sorted(kept)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "attnrnn-shortlist",
            "version": 1,
            "always": self.always,
            "per_source": {str(source): targets for source, targets in self.per_source.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Shortlist:
        if data.get("format") != "attnrnn-shortlist" or data.get("version") != 1:
            raise ValueError("not an attnrnn shortlist (format attnrnn-shortlist, version 1)")
        per_source = {int(source): list(targets) for source, targets in data["per_source"].items()}
        return cls(per_source, list(data["always"]))


def build_shortlist(
    pairs: Iterable[tuple[Sequence[int], Sequence[int]]],
    per_word: int = 50,
    frequent: int = 500,
    specials: Sequence[int] = (),
) -> Shortlist:
    """The shortlist of training pairs of (source ids, target ids)."""
    source_counts: Counter[int] = Counter()
    target_counts: Counter[int] = Counter()
    joint: Counter[tuple[int, int]] = Counter()
    for source, target in pairs:
        source_set, target_set = set(source), set(target)
        source_counts.update(source_set)
        target_counts.update(target_set)
        joint.update((s, t) for s in source_set for t in target_set)
    scores: dict[int, list[tuple[float, int]]] = {}
    for (s, t), count in joint.items():
        dice = 2.0 * count / (source_counts[s] + target_counts[t])
        scores.setdefault(s, []).append((dice, -t))
    per_source = {
        s: [-negative for _, negative in heapq.nlargest(per_word, candidates)]
        for s, candidates in scores.items()
    }
    common = [t for t, _ in sorted(target_counts.items(), key=lambda item: (-item[1], item[0]))]
    always = sorted(set(common[:frequent]) | set(specials))
    return Shortlist(per_source, always)


def read_shortlist(directory: Path) -> Shortlist | None:
    """The run's shortlist (``shortlist.json``), or None when it has none."""
    if not (directory / SHORTLIST_FILE).is_file():
        return None
    data = read_run_json(directory, SHORTLIST_FILE, "lexical shortlist")
    try:
        return Shortlist.from_dict(data)
    except (KeyError, TypeError, ValueError) as error:
        raise RunError(f"{directory / SHORTLIST_FILE}: {error}") from None
