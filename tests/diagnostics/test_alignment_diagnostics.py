"""Alignment diagnostics on attention whose links are known by construction: reference
links read from Pharaoh lines, subword attention moved to words, scores of argmax and
threshold links, and the report's alignment section."""

from __future__ import annotations

import pytest
import torch

from attnrnn.diagnostics.alignment import (
    Reference,
    alignment_scores,
    alignment_section,
    word_attention,
    word_index_of_pieces,
)


def test_rows_without_reference_links_are_not_linked_unless_asked():
    attention = torch.eye(3)  # (T, S); row 1 (a "-" separator) has no reference link
    sure = {(0, 0), (2, 2)}
    assert alignment_scores(attention, sure)["aer_argmax"] == 0.0
    every_row = alignment_scores(attention, sure, all_rows=True)
    assert every_row["aer_argmax"] == pytest.approx(1 - 4 / 5)  # 1 - (2 + 2) / (3 + 2)
    assert every_row["precision_argmax"] == pytest.approx(2 / 3)
    assert every_row["recall_argmax"] == 1.0


def test_possible_links_count_for_precision_and_threshold_links_can_be_several():
    attention = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]])  # (T, S)
    scores = alignment_scores(attention, sure={(1, 2)}, possible={(0, 0), (0, 1)}, threshold=0.5)
    # threshold links: (0, 0), (0, 1), (1, 2), all in P; S = {(1, 2)} recalled.
    assert scores["aer_threshold"] == 0.0
    assert scores["precision_threshold"] == scores["recall_threshold"] == 1.0
    # argmax links: (0, 0) (the first of a tie) and (1, 2).
    assert scores["aer_argmax"] == 0.0


def test_pharaoh_links_are_source_target_and_flipped_to_target_source():
    reference = Reference.from_pharaoh("0-1 2-0 1?1", [0, 1, 2], [0, 1])
    assert reference.sure == {(1, 0), (0, 2)}
    assert reference.possible == {(1, 1)}
    assert reference.source_words == (0, 1, 2)
    for bad in ("0:1", "0-", "a-1"):
        with pytest.raises(ValueError, match="Pharaoh"):
            Reference.from_pharaoh(bad)
    with pytest.raises(ValueError, match="both word maps"):
        Reference(frozenset(), source_words=(0,))


def test_word_index_of_sentencepiece_pieces_and_of_word_tokens():
    pieces = ["▁The", "▁cat", "s", "▁", "(", "sat", "▁."]
    assert word_index_of_pieces(pieces) == [0, 1, 1, 2, 2, 2, 3]
    assert word_index_of_pieces(["s", "▁a"]) == [0, 1]  # the first piece always starts a word
    assert word_index_of_pieces(["the", "cat"], word_start=None) == [0, 1]


def test_word_attention_sums_source_pieces_and_averages_target_pieces():
    attention = torch.tensor(
        [
            [0.1, 0.2, 0.3, 0.4],
            [0.4, 0.3, 0.2, 0.1],
            [0.0, 0.5, 0.5, 0.0],
            [0.25, 0.25, 0.25, 0.25],  # the EOS row: dropped
        ]
    )  # (T+1, S)
    words = word_attention(attention, [0, 0, 1, 2], [0, 0, 1])
    expected = torch.tensor(
        [
            [0.5, 0.25, 0.25],  # mean of [0.3, 0.3, 0.4] and [0.7, 0.2, 0.1]
            [0.5, 0.5, 0.0],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(words, expected)
    with pytest.raises(ValueError, match="without gaps"):
        word_attention(attention, [0, 0, 2, 2], [0, 0, 1])


def test_the_alignment_section_pools_pairs_in_tokens_and_words():
    diagonal = torch.cat([torch.eye(3), torch.full((1, 3), 1 / 3)])  # (T+1, S), EOS row last
    in_tokens = Reference(frozenset({(0, 0), (1, 1), (2, 2)}))
    # words: source pieces (0, 0, 1), target pieces (0, 0, 1); the diagonal links word to word
    in_words = Reference(
        frozenset({(0, 0), (1, 1)}), source_words=(0, 0, 1), target_words=(0, 0, 1)
    )
    section = alignment_section([diagonal, diagonal], [in_tokens, in_words], skipped=1)
    assert section["name"] == "alignment"
    summary = section["summary"]
    assert summary["pairs"] == 2 and summary["threshold"] == 0.5
    for name in ("argmax", "threshold"):
        assert summary[f"aer_{name}"] == 0.0
        assert summary[f"precision_{name}"] == summary[f"recall_{name}"] == 1.0
    assert summary["median_aer_argmax"] == 0.0
    assert section["distributions"]["aer_argmax_per_pair"] == [0.0, 0.0]
    assert any("moved to words" in note for note in section["notes"])
    assert "1 pairs without a reference were skipped." in section["notes"]


def test_an_alignment_section_without_pairs_has_no_scores():
    section = alignment_section([], [], skipped=2)
    assert section["summary"]["pairs"] == 0
    assert section["summary"]["aer_argmax"] is None
    assert section["summary"]["median_aer_argmax"] is None
    assert section["distributions"]["aer_argmax_per_pair"] == []
