"""Word alignments: Pharaoh files, symmetrisation, and eflomal alignment of a parallel corpus.

A word alignment links source word positions to target word positions of one sentence
pair. Here links are Pharaoh pairs ``(source_index, target_index)`` (:data:`Pair`),
0-based, as in the files of Moses, fast_align and eflomal; the attention diagnostics use
the other order, ``(target_index, source_index)`` (:data:`~attnrnn.diagnostics.measures.Link`,
the (T, S) layout of an attention matrix), and :func:`measure_links` turns one into the
other.

- Files (:func:`read_links`, :func:`write_links`): one line per sentence pair, links
  separated by spaces, ``i-j`` a sure link and ``i?j`` a possible one (the convention of
  hand-aligned test sets, whose alignment error rate counts the two differently); an empty
  line is a pair without links.
- Symmetrisation (:func:`grow_diag_final_and`): one-directional aligners give each word of
  one side at most one partner; combining both directions gives many-to-many links.
- :func:`align_corpus` and :func:`align_files` align a whitespace-tokenized corpus with
  eflomal in both directions and symmetrise: the silver reference for translation runs
  whose data comes without hand alignments (Multi30k).
"""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Iterable, Set
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from attnrnn.data.parallel import read_parallel_files
from attnrnn.data.readers import PathLike, _decoded_lines, _display_name
from attnrnn.errors import DataError
from attnrnn.extras import require
from attnrnn.training.files import write_text_atomic

if TYPE_CHECKING:  # only the type: data files need no torch
    from attnrnn.diagnostics.measures import Link

Pair = tuple[int, int]  # (source_index, target_index), the Pharaoh order

_LINK = re.compile(r"([0-9]+)([-?])([0-9]+)")
# eflomal gives no links to a sentence pair with 1024 or more tokens on either side (and
# such a pair can take the links of its neighbours with it), so longer pairs are not sent.
MAX_EFLOMAL_TOKENS = 1023


@dataclass(frozen=True)
class Alignment:
    """The reference links of one sentence pair: ``sure`` ones and ``possible`` ones.

    Possible links include the sure ones (P ⊇ S, as in Och & Ney's alignment error rate);
    build one with :meth:`of`, which adds the sure links to the possible ones.
    """

    sure: frozenset[Pair]
    possible: frozenset[Pair]

    def __post_init__(self) -> None:
        if not self.sure <= self.possible:
            raise ValueError("the possible links must include the sure links")

    @classmethod
    def of(cls, sure: Iterable[Pair], possible: Iterable[Pair] = ()) -> Alignment:
        """An alignment with ``sure`` links and ``possible`` ∪ ``sure`` possible links."""
        sure_links = frozenset(sure)
        return cls(sure_links, sure_links | frozenset(possible))


def measure_links(alignment: Alignment) -> tuple[set[Link], set[Link]]:
    """The ``(sure, possible)`` links of ``alignment`` as ``(target_index, source_index)``
    links, ready for :func:`~attnrnn.diagnostics.measures.alignment_error_rate`."""
    return links_of(alignment.sure), links_of(alignment.possible)


def links_of(pairs: Iterable[Pair]) -> set[Link]:
    """Pharaoh ``(source_index, target_index)`` pairs as ``(target_index, source_index)``
    links."""
    return {(target, source) for source, target in pairs}


# --- Pharaoh files -------------------------------------------------------------------------


def _parse_line(text: str, number: int, name: str) -> Alignment:
    """The alignment on one line of a links file."""
    sure: set[Pair] = set()
    possible: set[Pair] = set()
    for item in text.split():
        match = _LINK.fullmatch(item)
        if match is None:
            raise DataError(
                f"bad link {item!r}: a link is SOURCE-TARGET (sure) or SOURCE?TARGET "
                "(possible), two 0-based word positions, e.g. 0-1 or 2?3",
                name,
                number,
            )
        pair = (int(match[1]), int(match[3]))
        (sure if match[2] == "-" else possible).add(pair)
    return Alignment.of(sure, possible)


def read_links(path: PathLike) -> list[Alignment]:
    """The alignments of a Pharaoh links file, one per line (``-`` reads standard input).

    Lines are decoded as every attnrnn data file is (strict UTF-8, ``.gz`` gunzipped); a
    malformed link is a :class:`~attnrnn.errors.DataError` naming the file, the line and
    the link.
    """
    name = _display_name(path)
    return [_parse_line(text, number, name) for number, text in _decoded_lines(path)]


def format_links(alignment: Alignment) -> str:
    """One line of a links file (no line ending): sure links ``i-j``, then the possible-only
    ones ``i?j``, each group sorted."""
    sure = [f"{source}-{target}" for source, target in sorted(alignment.sure)]
    maybe = alignment.possible - alignment.sure
    return " ".join(sure + [f"{source}?{target}" for source, target in sorted(maybe)])


def write_links(path: PathLike, alignments: Iterable[Alignment]) -> None:
    """Write ``alignments`` to ``path`` in the format :func:`read_links` reads, atomically:
    a reader sees the old file or the whole new one (a failed write is a
    :class:`~attnrnn.errors.RunError` naming ``path``)."""
    text = "".join(format_links(alignment) + "\n" for alignment in alignments)
    write_text_atomic(Path(path), text)


# --- symmetrisation ------------------------------------------------------------------------

_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def intersection(forward: Set[Pair], reverse: Set[Pair]) -> set[Pair]:
    """Links both directions agree on: high precision, low recall."""
    return set(forward) & set(reverse)


def union(forward: Set[Pair], reverse: Set[Pair]) -> set[Pair]:
    """Links either direction found: high recall, low precision."""
    return set(forward) | set(reverse)


def _check_bounds(links: Set[Pair], source_length: int, target_length: int) -> None:
    for source, target in links:
        if not (0 <= source < source_length and 0 <= target < target_length):
            raise ValueError(
                f"link {source}-{target} is outside a pair of {source_length} source and "
                f"{target_length} target words"
            )


def grow_diag_final_and(
    forward: Set[Pair], reverse: Set[Pair], source_length: int, target_length: int
) -> set[Pair]:
    """Koehn et al.'s grow-diag-final-and symmetrisation of two one-directional alignments.

    ``forward`` and ``reverse`` are the Pharaoh pairs of one sentence pair of
    ``source_length`` and ``target_length`` words, both in ``(source_index, target_index)``
    order; a link outside the pair raises ``ValueError``. Starting from their
    intersection, *grow-diag* adds a link of their union when it neighbours a chosen link
    (8 directions, diagonals included) and one of its two words is still unaligned,
    sweeping the candidates in (source, target) order until a sweep adds nothing;
    *final-and* then adds a link of ``forward``, then of ``reverse``, when neither of its
    words is aligned yet. The result lies between the intersection and the union.

    Written here because its reference implementations are programs, not libraries:
    fast_align's ``atools`` (whose order of sweeps this follows, so its results match) and
    Moses' ``symal`` are C++ tools that are not on PyPI.
    """
    _check_bounds(forward, source_length, target_length)
    _check_bounds(reverse, source_length, target_length)
    chosen = intersection(forward, reverse)
    aligned_sources = {source for source, _ in chosen}
    aligned_targets = {target for _, target in chosen}

    def add(link: Pair) -> None:
        chosen.add(link)
        aligned_sources.add(link[0])
        aligned_targets.add(link[1])

    candidates = sorted(union(forward, reverse) - chosen)
    grown = True
    while grown:
        grown = False
        for source, target in candidates:
            if (source, target) in chosen:
                continue
            one_unaligned = source not in aligned_sources or target not in aligned_targets
            near = any((source + ds, target + dt) in chosen for ds, dt in _NEIGHBOURS)
            if one_unaligned and near:
                add((source, target))
                grown = True
    for direction in (forward, reverse):
        for source, target in sorted(direction):
            if source not in aligned_sources and target not in aligned_targets:
                add((source, target))
    return chosen


# --- eflomal -------------------------------------------------------------------------------


def _encoded(sentences: list[list[str]]) -> io.StringIO:
    """``sentences`` as eflomal input: one line per sentence, each token replaced by its
    vocabulary number.

    Numbers, not words: eflomal splits lines and lowercases tokens its own way, and
    numbers keep both from disagreeing with the whitespace tokens (and the casing) used
    here.
    """
    vocabulary: dict[str, int] = {}
    lines = []
    for sentence in sentences:
        numbers = [vocabulary.setdefault(token, len(vocabulary)) for token in sentence]
        lines.append(" ".join(map(str, numbers)) + "\n")
    return io.StringIO("".join(lines))


def _read_eflomal_links(path: Path, count: int) -> list[set[Pair]]:
    """The ``count`` lines of links that eflomal wrote to ``path``."""
    if not path.is_file():
        raise RuntimeError(f"eflomal failed: it wrote no {path.name} links file")
    alignments = read_links(path)
    if len(alignments) != count:
        raise RuntimeError(f"eflomal wrote {len(alignments)} lines of links for {count} pairs")
    return [set(alignment.sure) for alignment in alignments]


def _token_pairs(
    sources: list[str], targets: list[str], lowercase: bool
) -> list[tuple[list[str], list[str]]]:
    """The whitespace tokens of each pair; a pair too long for eflomal loses them all."""
    if len(sources) != len(targets):
        raise ValueError(f"{len(sources)} sources but {len(targets)} targets")
    pairs = []
    for source, target in zip(sources, targets, strict=True):
        source_tokens = (source.lower() if lowercase else source).split()
        target_tokens = (target.lower() if lowercase else target).split()
        if max(len(source_tokens), len(target_tokens)) > MAX_EFLOMAL_TOKENS:
            source_tokens, target_tokens = [], []
        pairs.append((source_tokens, target_tokens))
    return pairs


def _eflomal_links(
    pairs: list[tuple[list[str], list[str]]],
) -> tuple[list[set[Pair]], list[set[Pair]]]:
    """eflomal's forward and reverse links of each pair, both in Pharaoh order; its files
    live in a temporary folder that is removed whatever happens."""
    eflomal = require("eflomal")
    with tempfile.TemporaryDirectory(prefix="attnrnn-align-") as directory:
        forward, reverse = Path(directory, "forward"), Path(directory, "reverse")
        eflomal.Aligner().align(
            _encoded([source for source, _ in pairs]),
            _encoded([target for _, target in pairs]),
            links_filename_fwd=str(forward),
            links_filename_rev=str(reverse),
        )
        return _read_eflomal_links(forward, len(pairs)), _read_eflomal_links(reverse, len(pairs))


def align_corpus(
    sources: list[str], targets: list[str], *, lowercase: bool = True
) -> list[set[Pair]]:
    """Word alignments of sentence pairs: ``sources[n]`` with ``targets[n]``, one Pharaoh
    link set per pair (``(source_index, target_index)`` of their whitespace tokens).

    eflomal (Östling & Tiedemann 2016, a Bayesian HMM aligner with fertility, sampled by
    MCMC) aligns the whole corpus in both directions, and :func:`grow_diag_final_and`
    symmetrises each pair. ``lowercase`` folds case first, so "Der" and "der" are one word.
    A pair with an empty side or with more than :data:`MAX_EFLOMAL_TOKENS` tokens on either
    side gets no links. eflomal seeds its sampler from the system's randomness and takes no
    seed, so two runs can differ in a few links; the more sentences, the fewer.
    """
    pairs = _token_pairs(sources, targets, lowercase)
    if not any(source and target for source, target in pairs):
        return [set() for _ in pairs]  # eflomal fails when there is nothing to align
    forward, reverse = _eflomal_links(pairs)
    return [
        grow_diag_final_and(links, back, len(source), len(target))
        for links, back, (source, target) in zip(forward, reverse, pairs, strict=True)
    ]


@dataclass(frozen=True)
class AlignedFiles:
    """What :func:`align_files` wrote: ``sentences`` lines holding ``links`` links, of which
    ``without_links`` lines are empty."""

    sentences: int
    links: int
    without_links: int


def align_files(
    source_path: PathLike, target_path: PathLike, output_path: PathLike, *, lowercase: bool = True
) -> AlignedFiles:
    """Align two line-aligned files (one whitespace-tokenized sentence per line, as read by
    :func:`~attnrnn.data.parallel.read_parallel_files`) with :func:`align_corpus` and write
    the sure links to ``output_path`` (:func:`write_links`), one line per pair."""
    examples = read_parallel_files(source_path, target_path)
    sources = [example.source for example in examples]
    targets = [example.target or "" for example in examples]
    alignments = align_corpus(sources, targets, lowercase=lowercase)
    write_links(output_path, (Alignment.of(links) for links in alignments))
    return AlignedFiles(
        sentences=len(alignments),
        links=sum(len(links) for links in alignments),
        without_links=sum(1 for links in alignments if not links),
    )
