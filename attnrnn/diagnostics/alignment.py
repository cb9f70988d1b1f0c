"""How well an encoder-decoder's attention aligns with a reference alignment.

The attention of the model teacher-forced on a reference pair (``forced_attention`` of
:mod:`attnrnn.diagnostics.seq2seq`) is read as links, each target token to a source
token: the argmax of every row, and every weight of at least a threshold.
:func:`alignment_scores` scores them against the :class:`Reference`'s sure and possible
links (AER, precision, recall); :func:`alignment_section` pools the links of many pairs
into the report's ``alignment`` section. A statistical word aligner links words, not
subword tokens: :func:`word_index_of_pieces` maps tokens to words and
:func:`word_attention` moves the token attention to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from attnrnn.diagnostics.common import median, section
from attnrnn.diagnostics.measures import (
    Link,
    alignment_error_rate,
    argmax_links,
    link_precision_recall,
    threshold_links,
)

WORD_START = "\u2581"  # SentencePiece's mark of a piece that starts a word


@dataclass(frozen=True)
class Reference:
    """Reference links of one pair, ``(target_index, source_index)``.

    In token units of the model, or in words when ``source_words`` and ``target_words``
    (the word index of every source / target token, see :func:`word_index_of_pieces`) are
    given: the attention is then moved to words by :func:`word_attention`. ``possible``
    may hold only the ambiguous links; P is taken as ``possible ∪ sure``.

    The date task's character links are token links of its character model:
    ``Reference(links.sure, links.possible)`` for ``links = date_links(pair)``. A word
    aligner's Pharaoh output is read by :meth:`from_pharaoh`.
    """

    sure: frozenset[Link]
    possible: frozenset[Link] = frozenset()
    source_words: tuple[int, ...] | None = None
    target_words: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if (self.source_words is None) != (self.target_words is None):
            raise ValueError("give both word maps (source_words and target_words) or neither")

    @classmethod
    def from_pharaoh(
        cls,
        text: str,
        source_words: Sequence[int] | None = None,
        target_words: Sequence[int] | None = None,
    ) -> Reference:
        """The links of one line in Pharaoh format: ``i-j`` a sure and ``i?j`` a possible
        link of source unit i to target unit j (0-based, source first, as aligners such as
        eflomal and fast_align write them), separated by spaces."""
        links: dict[str, set[Link]] = {"-": set(), "?": set()}
        for item in text.split():
            separator = "?" if "?" in item else "-"
            source, _, target = item.partition(separator)
            if not source.isdigit() or not target.isdigit():
                raise ValueError(f"not a Pharaoh link (i-j or i?j): {item!r}")
            links[separator].add((int(target), int(source)))
        return cls(
            frozenset(links["-"]),
            frozenset(links["?"]),
            None if source_words is None else tuple(source_words),
            None if target_words is None else tuple(target_words),
        )


@dataclass(frozen=True)
class _PredictedLinks:
    """Links read off one attention matrix, and the reference they are scored against."""

    argmax: frozenset[Link]
    threshold: frozenset[Link]
    sure: frozenset[Link]
    possible: frozenset[Link]  # P = possible ∪ sure


def _predicted_links(
    attention: Any,
    sure: Sequence[Link] | frozenset[Link],
    possible: Sequence[Link] | frozenset[Link],
    threshold: float,
    all_rows: bool,
) -> _PredictedLinks:
    sure_set = frozenset(sure)
    possible_set = sure_set | frozenset(possible)
    argmax, above = argmax_links(attention), threshold_links(attention, threshold)
    if not all_rows:
        rows = {target for target, _ in possible_set}
        argmax = {link for link in argmax if link[0] in rows}
        above = {link for link in above if link[0] in rows}
    return _PredictedLinks(frozenset(argmax), frozenset(above), sure_set, possible_set)


_SCORE_NAMES = tuple(
    f"{measure}_{links}"
    for links in ("argmax", "threshold")
    for measure in ("aer", "precision", "recall")
)


def _scores(links: _PredictedLinks) -> dict[str, float]:
    scores = {}
    for name, predicted in (("argmax", links.argmax), ("threshold", links.threshold)):
        scores[f"aer_{name}"] = alignment_error_rate(predicted, links.sure, links.possible)
        precision = link_precision_recall(predicted, links.possible).precision
        scores[f"precision_{name}"] = precision
        scores[f"recall_{name}"] = link_precision_recall(predicted, links.sure).recall
    return scores


def alignment_scores(
    attention: Any,
    sure: Sequence[Link] | frozenset[Link],
    possible: Sequence[Link] | frozenset[Link] = (),
    threshold: float = 0.5,
    all_rows: bool = False,
) -> dict[str, float]:
    """Alignment quality of attention (T, S) against reference links (target, source).

    Links are read off the attention two ways: the argmax of every row, and every weight
    of at least ``threshold``. As is standard for AER, only target rows with at least one
    reference link (sure or possible) get links: a row the reference leaves unaligned (the
    "-" of a date, a function word) is not counted against precision; ``all_rows=True``
    links every row. Returns ``aer_``, ``precision_`` (against sure ∪ possible) and
    ``recall_`` (against sure) for ``argmax`` and ``threshold`` (Och & Ney; see
    :mod:`attnrnn.diagnostics.measures` for empty sets).
    """
    return _scores(_predicted_links(attention, sure, possible, threshold, all_rows))


def word_index_of_pieces(pieces: Sequence[str], word_start: str | None = WORD_START) -> list[int]:
    """The word index (0-based) of every token.

    SentencePiece (``word_start="▁"``): a piece starting with "▁" starts a new word, any
    other continues the word before it (the first piece always starts word 0); the words
    are those of the whitespace-split text. ``word_start=None``: every token is a word (word
    tokenizers).
    """
    if word_start is None:
        return list(range(len(pieces)))
    words, index = [], -1
    for position, piece in enumerate(pieces):
        if position == 0 or piece.startswith(word_start):
            index += 1
        words.append(index)
    return words


def word_map(name: str, words: Sequence[int], size: int) -> torch.Tensor:
    """A checked word map (size,): every word 0 ... W-1 has at least one token."""
    if len(words) != size:
        raise ValueError(f"{name} has {len(words)} entries for {size} tokens")
    if size and sorted(set(words)) != list(range(max(words) + 1)):
        raise ValueError(f"{name} must number the words 0, 1, ... without gaps")
    return torch.tensor(list(words), dtype=torch.long)


def word_attention(
    attention: Any, source_word_of_token: Sequence[int], target_word_of_token: Sequence[int]
) -> torch.Tensor:
    """Token attention (T, S) as word attention (T_words, S_words), float64.

    A source word gets the sum of its pieces' weights, a target word the mean of its
    pieces' rows; rows are renormalised to sum to 1. An attention with one row more than
    ``target_word_of_token`` has its last row (the EOS step) dropped.
    """
    matrix = torch.as_tensor(attention).detach().to("cpu", torch.float64)
    T = len(target_word_of_token)
    if matrix.dim() == 2 and matrix.size(0) == T + 1:
        matrix = matrix[:T]  # the EOS row has no target word
    if matrix.dim() != 2 or matrix.size(0) != T:
        raise ValueError(f"need attention (T, S) with T = {T}, got {tuple(matrix.shape)}")
    source = word_map("source_word_of_token", source_word_of_token, matrix.size(1))
    target = word_map("target_word_of_token", target_word_of_token, T)
    source_count = int(source.max()) + 1 if source.numel() else 0
    target_count = int(target.max()) + 1 if target.numel() else 0
    by_source = matrix.new_zeros(T, source_count).index_add_(1, source, matrix)  # (T, Sw)
    summed = by_source.new_zeros(target_count, source_count).index_add_(0, target, by_source)
    counts = torch.bincount(target, minlength=target_count).clamp_min(1)  # (Tw,)
    mean = summed / counts.unsqueeze(1)  # (Tw, Sw)
    return mean / mean.sum(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)


# --------------------------------------------------------------------------- the report


def _offset(links: frozenset[Link], targets: int, sources: int) -> set[Link]:
    return {(target + targets, source + sources) for target, source in links}


def _pooled(
    pairs: Sequence[_PredictedLinks], shapes: Sequence[tuple[int, int]]
) -> dict[str, float]:
    """Corpus-level scores: the links of all pairs in one block-diagonal alignment."""
    pooled: dict[str, set[Link]] = {"argmax": set(), "threshold": set(), "sure": set(), "P": set()}
    targets = sources = 0
    for links, (T, S) in zip(pairs, shapes, strict=True):
        for key, value in (
            ("argmax", links.argmax),
            ("threshold", links.threshold),
            ("sure", links.sure),
            ("P", links.possible),
        ):
            pooled[key] |= _offset(value, targets, sources)
        targets, sources = targets + T, sources + S
    frozen = {key: frozenset(value) for key, value in pooled.items()}
    return _scores(
        _PredictedLinks(frozen["argmax"], frozen["threshold"], frozen["sure"], frozen["P"])
    )


def _in_reference_units(attention: torch.Tensor, reference: Reference) -> torch.Tensor:
    """Teacher-forced attention (T+1, S) in the reference's units: words (T_words, S_words)
    when it has word maps, else tokens (T, S); the EOS row has no reference and is dropped."""
    if reference.source_words is not None and reference.target_words is not None:
        return word_attention(attention, reference.source_words, reference.target_words)
    return attention[:-1]  # (T, S)


def alignment_section(
    attentions: Sequence[torch.Tensor],
    references: Sequence[Reference],
    threshold: float = 0.5,
    skipped: int = 0,
) -> dict[str, Any]:
    """The report's ``alignment`` section: the teacher-forced attention (T+1, S) of each
    pair (the EOS step last) against its reference, links of at least ``threshold`` as
    threshold links; ``skipped``: the pairs left out for want of a reference (a note).
    The summary pools the links of all pairs (corpus-level AER), the distributions are
    per pair."""
    pairs, shapes, per_pair = [], [], []
    for attention, reference in zip(attentions, references, strict=True):
        attention = _in_reference_units(attention, reference)
        links = _predicted_links(attention, reference.sure, reference.possible, threshold, False)
        pairs.append(links)
        shapes.append((attention.size(0), attention.size(1)))
        per_pair.append(_scores(links))
    summary: dict[str, float | int | None] = {"pairs": len(pairs), "threshold": threshold}
    summary.update(_pooled(pairs, shapes) if pairs else dict.fromkeys(_SCORE_NAMES))
    summary["median_aer_argmax"] = median([scores["aer_argmax"] for scores in per_pair])
    notes = [
        "Links come from the attention of the model teacher-forced on the reference target "
        "(the EOS step left out); target rows without any reference link are not linked.",
        "Summary scores pool the links of all pairs (corpus-level AER); the distributions "
        "are per pair.",
    ]
    if any(reference.source_words is not None for reference in references):
        notes.append(
            "Token attention was moved to words (source pieces summed, target pieces "
            "averaged); a statistical aligner's links are a silver reference: read the "
            "numbers as agreement with that aligner."
        )
    if skipped:
        notes.append(f"{skipped} pairs without a reference were skipped.")
    return section(
        "alignment",
        "Alignment with the reference",
        "Alignment error rate (0 is perfect) and precision / recall of the links read off the "
        f"attention: each target token's most-attended source token (argmax) and every "
        f"weight of at least {threshold} (threshold), against sure and possible reference links.",
        summary,
        {
            "aer_argmax_per_pair": [s["aer_argmax"] for s in per_pair],
            "aer_threshold_per_pair": [s["aer_threshold"] for s in per_pair],
        },
        notes,
    )
