"""Tests of the vocabulary: building, lookups, and its JSON file."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attnrnn.data.vocab import Vocab
from attnrnn.errors import DataError

CORPUS = [
    ["the", "movie", "was", "good"],
    ["the", "plot", "was", "bad"],
    ["the", "movie", "was", "the", "best"],
    ["a", "good", "movie"],
]
# counts: the 4, movie 3, was 3, good 2, a 1, bad 1, best 1, plot 1


def test_specials_come_first_then_frequency_then_alphabetical_order():
    vocab = Vocab.build(CORPUS)
    assert vocab.tokens == [
        "<pad>", "<unk>", "the", "movie", "was", "good", "a", "bad", "best", "plot",
    ]  # fmt: skip
    assert (vocab.pad_index, vocab.unk_index) == (0, 1)
    assert vocab.specials == ("<pad>", "<unk>")


def test_build_is_deterministic_whatever_the_corpus_order():
    shuffled = [list(reversed(tokens)) for tokens in reversed(CORPUS)]
    random.Random(0).shuffle(shuffled)
    assert Vocab.build(shuffled) == Vocab.build(CORPUS)


def test_min_freq_leaves_out_rare_tokens():
    vocab = Vocab.build(CORPUS, min_freq=2)
    assert vocab.tokens == ["<pad>", "<unk>", "the", "movie", "was", "good"]


def test_max_size_counts_the_specials_and_keeps_the_most_frequent():
    vocab = Vocab.build(CORPUS, max_size=4)
    assert vocab.tokens == ["<pad>", "<unk>", "the", "movie"]
    assert len(vocab) == 4


def test_max_size_without_room_for_the_specials_is_an_error():
    with pytest.raises(ValueError, match="special"):
        Vocab.build(CORPUS, max_size=1)


def test_min_freq_below_one_is_an_error():
    with pytest.raises(ValueError, match="min_freq"):
        Vocab.build(CORPUS, min_freq=0)


def test_extra_specials_follow_pad_and_unk():
    vocab = Vocab.build(CORPUS, specials=("<pad>", "<unk>", "<s>", "</s>"))
    assert vocab.tokens[:5] == ["<pad>", "<unk>", "<s>", "</s>", "the"]
    assert vocab.index("</s>") == 3
    shorthand = Vocab.build(CORPUS, specials=("<s>", "</s>"))
    assert shorthand == vocab


def test_special_tokens_in_the_corpus_are_not_added_twice():
    vocab = Vocab.build([["<unk>", "<s>", "x"]], specials=("<pad>", "<unk>", "<s>"))
    assert vocab.tokens == ["<pad>", "<unk>", "<s>", "x"]


def test_duplicate_specials_are_an_error():
    with pytest.raises(ValueError, match="duplicate"):
        Vocab.build(CORPUS, specials=("<s>", "<s>"))


def test_encode_maps_unknown_tokens_to_unk_and_decode_inverts():
    vocab = Vocab.build(CORPUS)
    ids = vocab.encode(["the", "zebra", "movie"])
    assert ids == [2, vocab.unk_index, 3]
    assert vocab.decode(ids) == ["the", "<unk>", "movie"]
    assert vocab.encode([]) == []


def test_lookups():
    vocab = Vocab.build(CORPUS)
    assert "movie" in vocab
    assert "zebra" not in vocab
    assert vocab.index("was") == 4
    assert vocab.token(4) == "was"
    assert list(vocab) == vocab.tokens
    with pytest.raises(KeyError, match="zebra"):
        vocab.index("zebra")
    with pytest.raises(IndexError):
        vocab.token(len(vocab))
    with pytest.raises(IndexError):
        vocab.decode([-1])


def test_extended_appends_new_tokens_only():
    vocab = Vocab.build(CORPUS, min_freq=2)
    extended = vocab.extended(["zebra", "the", "yak", "zebra"])
    assert extended.tokens == [*vocab.tokens, "zebra", "yak"]
    assert vocab.encode(["zebra"]) == [vocab.unk_index]  # the original is unchanged


@given(st.lists(st.lists(st.text(min_size=1, max_size=5), max_size=8), max_size=8))
def test_every_corpus_token_round_trips(token_lists):
    vocab = Vocab.build(token_lists)
    for tokens in token_lists:
        assert vocab.decode(vocab.encode(tokens)) == tokens


def test_save_and_load_round_trip_as_plain_json(tmp_path):
    vocab = Vocab.build(CORPUS, specials=("<s>", "</s>"))
    path = tmp_path / "run" / "vocab.json"
    vocab.save(path)
    contents = json.loads(path.read_text(encoding="utf-8"))
    assert contents["tokens"] == vocab.tokens
    assert Vocab.load(path) == vocab
    assert Vocab.from_dict(vocab.to_dict()) == vocab
    assert [entry.name for entry in path.parent.iterdir()] == ["vocab.json"]  # no temporary left


def test_loading_a_missing_file_names_it(tmp_path):
    with pytest.raises(DataError, match=r"missing\.json.*not found"):
        Vocab.load(tmp_path / "missing.json")


def test_loading_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text('{\n "tokens": [\n oops', encoding="utf-8")
    with pytest.raises(DataError, match=r"vocab\.json:3: invalid JSON"):
        Vocab.load(path)


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        ([1, 2], "not an attnrnn vocabulary"),
        ({"format": "attnrnn-vocab", "version": 99, "tokens": [], "specials": []}, "version"),
        (
            {"format": "attnrnn-vocab", "version": 1, "specials": ["<pad>", "<unk>"],
             "tokens": ["<unk>", "<pad>", "a"]},
            "tokens must start with the special tokens",
        ),
        (
            {"format": "attnrnn-vocab", "version": 1, "specials": ["<pad>", "<unk>"],
             "tokens": ["<pad>", "<unk>", "a", "a"]},
            "duplicate",
        ),
        (
            {"format": "attnrnn-vocab", "version": 1, "specials": ["<pad>", "<unk>"],
             "tokens": "abc"},
            "list of strings",
        ),
    ],
)  # fmt: skip
def test_loading_a_malformed_vocabulary_names_the_file(tmp_path, contents, message):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(contents), encoding="utf-8")
    with pytest.raises(DataError, match=r"vocab\.json") as raised:
        Vocab.load(path)
    assert message in str(raised.value)
