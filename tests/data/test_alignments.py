"""Tests of word alignments: Pharaoh files, grow-diag-final-and on hand-worked cases, and
eflomal on a synthetic corpus whose true links are known."""

from __future__ import annotations

import gzip
import random
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnrnn.data.alignments import (
    MAX_EFLOMAL_TOKENS,
    Alignment,
    Pair,
    align_corpus,
    align_files,
    format_links,
    grow_diag_final_and,
    intersection,
    measure_links,
    read_links,
    union,
    write_links,
)
from attnrnn.diagnostics.measures import alignment_error_rate
from attnrnn.errors import DataError
from attnrnn.extras import MissingDependency

# --- Pharaoh files -------------------------------------------------------------------------


def test_alignment_possible_links_include_the_sure_ones():
    alignment = Alignment.of([(0, 0)], [(1, 2)])
    assert alignment.sure == {(0, 0)}
    assert alignment.possible == {(0, 0), (1, 2)}
    with pytest.raises(ValueError, match="include the sure"):
        Alignment(sure=frozenset({(0, 0)}), possible=frozenset())


def test_links_round_trip(tmp_path):
    alignments = [
        Alignment.of([(0, 0), (2, 1), (1, 3)], [(3, 3), (0, 1)]),
        Alignment.of([]),
        Alignment.of([], [(4, 0)]),
        Alignment.of([(10, 12)]),
    ]
    path = tmp_path / "links.txt"
    write_links(path, alignments)
    assert path.read_text() == "0-0 1-3 2-1 0?1 3?3\n\n4?0\n10-12\n"
    assert read_links(path) == alignments
    assert [p.name for p in tmp_path.iterdir()] == ["links.txt"]  # no temporary left behind
    write_links(path, alignments[:1])  # replaces the file
    assert read_links(path) == alignments[:1]


def test_reading_tolerates_spacing_and_gzip(tmp_path):
    path = tmp_path / "links.txt.gz"
    path.write_bytes(gzip.compress(b"  0-1\t1?1  0-1 \r\n\n1-1 1?1\n"))
    assert read_links(path) == [
        Alignment.of([(0, 1)], [(1, 1)]),
        Alignment.of([]),
        Alignment.of([(1, 1)]),  # a link both sure and possible is sure
    ]


@pytest.mark.parametrize("item", ["0-", "a-1", "-1-2", "0:1", "1-2-3", "0—1", "٣-1"])
def test_a_bad_link_names_the_file_the_line_and_the_link(tmp_path, item):
    path = tmp_path / "links.txt"
    path.write_text(f"0-0 1-1\n\n2-2 {item}\n")
    with pytest.raises(DataError) as error:
        read_links(path)
    assert str(error.value).startswith(f"{path}:3: bad link {item!r}")
    assert (error.value.path, error.value.line) == (str(path), 3)


def test_measure_links_are_target_then_source():
    alignment = Alignment.of([(0, 1)], [(2, 5)])
    sure, possible = measure_links(alignment)
    assert sure == {(1, 0)}
    assert possible == {(1, 0), (5, 2)}
    assert alignment_error_rate(sure, sure, possible) == 0.0


# --- grow-diag-final-and -------------------------------------------------------------------


def test_a_one_direction_link_beside_the_intersection_is_grown():
    # (0, 0) is agreed on; (1, 1) only forward, diagonal to it, both its words unaligned.
    assert grow_diag_final_and({(0, 0), (1, 1)}, {(0, 0)}, 2, 2) == {(0, 0), (1, 1)}


def test_growing_sweeps_until_nothing_is_added():
    # In (source, target) order (0, 0) comes first, but only touches the intersection
    # once (1, 1) is added: a second sweep adds it.
    forward, reverse = {(2, 2), (1, 1), (0, 0)}, {(2, 2)}
    assert grow_diag_final_and(forward, reverse, 3, 3) == {(0, 0), (1, 1), (2, 2)}


def test_grow_and_final_and_by_hand():
    # Intersection: (0, 0), (1, 1).
    # (0, 1): beside both, but source 0 and target 1 are aligned already: not grown.
    # (3, 0): far from the intersection; final-and refuses it, target 0 being aligned
    #         (grow-diag-final, without "and", would take it: source 3 is free).
    # (2, 3): far too, and both its words are free: final-and adds it.
    # (3, 3): far; at final-and, reverse comes after forward and (2, 3) took target 3.
    forward = {(0, 0), (1, 1), (0, 1), (3, 0), (2, 3)}
    reverse = {(0, 0), (1, 1), (3, 3)}
    assert grow_diag_final_and(forward, reverse, 4, 4) == {(0, 0), (1, 1), (2, 3)}
    # The forward direction goes first: swapped, (3, 3) wins target 3 and (2, 3) loses it.
    assert grow_diag_final_and(reverse, forward, 4, 4) == {(0, 0), (1, 1), (3, 3)}


def test_symmetrising_recovers_a_swap_each_direction_half_missed():
    # "das haus ist klein" / "the house small is": ist-is is (2, 3), klein-small (3, 2).
    # Forward (a source word per target word) misses (2, 3); reverse (a target word per
    # source word) misses (3, 2) and links klein to "is", (3, 3), by mistake.
    forward = {(0, 0), (1, 1), (3, 2)}
    reverse = {(0, 0), (1, 1), (2, 3), (3, 3)}
    # Grow: no candidate touches the agreed (0, 0) or (1, 1). Final-and: forward's (3, 2)
    # joins two free words; then reverse's (2, 3) does too, while (3, 3) finds klein taken.
    assert grow_diag_final_and(forward, reverse, 4, 4) == {(0, 0), (1, 1), (3, 2), (2, 3)}


def test_links_outside_the_pair_are_refused():
    with pytest.raises(ValueError, match="outside a pair of 2 source and 3 target"):
        grow_diag_final_and({(2, 0)}, set(), 2, 3)


def test_intersection_and_union():
    assert intersection({(0, 0), (1, 1)}, {(1, 1), (2, 2)}) == {(1, 1)}
    assert union({(0, 0)}, {(1, 1)}) == {(0, 0), (1, 1)}


_links = st.sets(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=20)


@settings(max_examples=200, deadline=None)
@given(forward=_links, reverse=_links)
def test_grow_diag_final_and_lies_between_intersection_and_union(forward, reverse):
    result = grow_diag_final_and(forward, reverse, 6, 6)
    assert intersection(forward, reverse) <= result <= union(forward, reverse)
    # No added link joins two words that the intersection had both aligned already.
    agreed = intersection(forward, reverse)
    for source, target in result - agreed:
        assert not (any(s == source for s, _ in agreed) and any(t == target for _, t in agreed))


# --- eflomal -------------------------------------------------------------------------------


def synthetic_corpus(pairs: int, seed: int = 0) -> tuple[list[str], list[str], list[set[Pair]]]:
    """Sentence pairs translated word by word from a 40-word dictionary, and their true links.

    Each source sentence holds 4 to 8 different words, so every link is unambiguous. About
    half the targets swap two neighbouring words; about a third of the sources hold the
    particle "ja", which has no translation and so no link; a fifth of the source words are
    capitalised, which lowercasing undoes.
    """
    rng = random.Random(seed)
    sources, targets, links = [], [], []
    for _ in range(pairs):
        words = rng.sample(range(40), rng.randint(4, 8))
        order = list(range(len(words)))  # order[j]: the word behind target word j
        if rng.random() < 0.5:
            j = rng.randrange(len(words) - 1)
            order[j], order[j + 1] = order[j + 1], order[j]
        tokens = [f"Quelle{w}" if rng.random() < 0.2 else f"quelle{w}" for w in words]
        particle = rng.randint(0, len(words)) if rng.random() < 0.3 else len(words) + 1
        tokens[particle:particle] = ["ja"] if particle <= len(words) else []
        sources.append(" ".join(tokens))
        targets.append(" ".join(f"target{words[i]}" for i in order))
        links.append({(i + (i >= particle), j) for j, i in enumerate(order)})
    return sources, targets, links


def test_align_files_recovers_the_dictionary_links(tmp_path):
    sources, targets, truth = synthetic_corpus(300)
    source_path, target_path = tmp_path / "train.de", tmp_path / "train.en"
    source_path.write_text("".join(line + "\n" for line in sources))
    target_path.write_text("".join(line + "\n" for line in targets))
    output = tmp_path / "train.align"

    counts = align_files(source_path, target_path, output)

    found = [set(alignment.sure) for alignment in read_links(output)]
    assert len(found) == counts.sentences == 300
    assert counts.links == sum(map(len, found))
    correct = sum(len(f & t) for f, t in zip(found, truth, strict=True))
    assert correct / counts.links > 0.8  # precision
    assert correct / sum(map(len, truth)) > 0.8  # recall


def test_align_corpus_edge_cases():
    assert align_corpus([], []) == []
    assert align_corpus(["a b", ""], ["", "x"]) == [set(), set()]  # nothing to align
    with pytest.raises(ValueError, match="2 sources but 1 targets"):
        align_corpus(["a", "b"], ["x"])


def test_a_too_long_pair_gets_no_links_and_leaves_the_others_alone():
    sources, targets, _ = synthetic_corpus(20)
    long_source = " ".join(["quelle1"] * (MAX_EFLOMAL_TOKENS + 1))
    alignments = align_corpus([long_source, *sources], ["target1", *targets])
    assert alignments[0] == set()
    assert all(alignments[1:])


def test_without_eflomal_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "eflomal", None)  # makes the import fail
    with pytest.raises(MissingDependency, match=r"attnrnn\[alignment\]"):
        align_corpus(["a"], ["x"])


def test_format_links_sorts_each_group():
    assert format_links(Alignment.of([(2, 0), (0, 2)], [(1, 1)])) == "0-2 2-0 1?1"


def test_read_links_from_a_path_string(tmp_path: Path):
    path = tmp_path / "a.txt"
    path.write_text("0-0\n")
    assert read_links(str(path)) == [Alignment.of([(0, 0)])]
    with pytest.raises(DataError, match=r"missing\.txt"):
        read_links(tmp_path / "missing.txt")
