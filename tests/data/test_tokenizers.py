"""Tests of the word and SentencePiece tokenizers and their saved settings."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnrnn.data.tokenizers import (
    TOKENIZERS,
    SentencePieceTokenizer,
    WordTokenizer,
    tokenizer_from_dict,
)
from attnrnn.errors import DataError

# --------------------------------------------------------------------------- word tokenizer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("doesn't", "does n't"),
        ("it's", "it 's"),
        ("I'm", "i 'm"),
        ("they're", "they 're"),
        ("we've", "we 've"),
        ("he'll", "he 'll"),
        ("I'd", "i 'd"),
        ("can't", "ca n't"),
        ("won't", "wo n't"),
        ("don't", "do n't"),
        ("cannot", "can not"),
        ("the director's cut", "the director 's cut"),
        ("doesn\u2019t", "does n't"),  # curly apostrophe
    ],
)
def test_contractions_are_split_like_the_penn_treebank(text, expected):
    assert WordTokenizer().tokenize(text) == expected.split()


def test_contractions_are_split_whatever_the_case():
    tokenizer = WordTokenizer(lowercase=False)
    assert tokenizer.tokenize("I DON'T think It's") == ["I", "DO", "N'T", "think", "It", "'s"]


def test_contractions_can_stay_whole():
    tokenizer = WordTokenizer(split_contractions=False)
    assert tokenizer.tokenize("It's not what I'd call great, isn't it?") == [
        "it's", "not", "what", "i'd", "call", "great", ",", "isn't", "it", "?",
    ]  # fmt: skip


def test_html_tags_and_entities_are_removed():
    text = "Great movie.<br /><br />The <i>best</i> of 2005 &amp; beyond."
    assert WordTokenizer().tokenize(text) == [
        "great", "movie", ".", "the", "best", "of", "2005", "&", "beyond", ".",
    ]  # fmt: skip


def test_html_is_kept_when_asked():
    assert WordTokenizer(strip_html=False).tokenize("a<br />b") == ["a", "<", "br", "/", ">", "b"]


def test_comparison_signs_are_not_mistaken_for_tags():
    assert WordTokenizer().tokenize("a < b and c > d") == ["a", "<", "b", "and", "c", ">", "d"]


def test_punctuation_is_split_but_words_and_numbers_stay_whole():
    text = "A well-known, 21st-century film (3.5/5 stars; 1,000 votes)... Wow!! o'clock"
    assert WordTokenizer().tokenize(text) == [
        "a", "well-known", ",", "21st-century", "film", "(", "3.5", "/", "5", "stars", ";",
        "1,000", "votes", ")", "...", "wow", "!", "!", "o'clock",
    ]  # fmt: skip


def test_sentence_final_period_after_a_number_is_split():
    assert WordTokenizer().tokenize("It scored 7.5. Then 8.") == [
        "it", "scored", "7.5", ".", "then", "8", ".",
    ]  # fmt: skip


def test_quotes_and_dashes():
    text = "``Quoted'' -- and 'single' \"double\""
    assert WordTokenizer().tokenize(text) == [
        "``", "quoted", "''", "--", "and", "'", "single", "'", '"', "double", '"',
    ]  # fmt: skip


def test_penn_treebank_text_is_unchanged():
    sst = "it 's a -lrb- very -rrb- funny movie that does n't ca n't wo n't , is it ?"
    assert WordTokenizer().tokenize(sst) == sst.split()


def test_unicode_letters_marks_and_symbols():
    text = "Café naïve e\u0301 हिन्दी-भाषा 日本語 «ok»…"
    assert WordTokenizer().tokenize(text) == [
        "café", "naïve", "é", "हिन्दी-भाषा", "日本語", "«", "ok", "»", "…",
    ]  # fmt: skip


def test_lowercase_can_be_turned_off():
    assert WordTokenizer(lowercase=False).tokenize("The -LRB- Film") == ["The", "-LRB-", "Film"]


def test_empty_and_blank_text_give_no_tokens():
    assert WordTokenizer().tokenize("") == []
    assert WordTokenizer().tokenize("  \n<br />\t") == []


def test_detokenize_joins_with_spaces():
    assert WordTokenizer().detokenize(["it", "'s", "fine", "."]) == "it 's fine ."


_ALL_SETTINGS = [
    WordTokenizer(),
    WordTokenizer(lowercase=False),
    WordTokenizer(split_contractions=False),
    WordTokenizer(lowercase=False, strip_html=False),
]
# Characters around which the rules have special cases.
_TRICKY = st.text(alphabet=list("nNtTsScaAoOlrbdmve'-.,`<>/&;:! 09_é…\u2019\u0301"), max_size=30)
_ASCII = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


@pytest.mark.parametrize("tokenizer", _ALL_SETTINGS, ids=repr)
@settings(max_examples=300, deadline=None)
@given(text=st.one_of(_ASCII, _TRICKY))
def test_tokenizing_tokenized_text_changes_nothing(tokenizer, text):
    tokens = tokenizer.tokenize(text)
    assert tokenizer.tokenize(tokenizer.detokenize(tokens)) == tokens


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=40))
def test_tokens_are_never_empty_and_never_contain_whitespace(text):
    for token in WordTokenizer().tokenize(text):
        assert token
        assert not any(character.isspace() for character in token)


def test_settings_round_trip_through_json():
    tokenizer = WordTokenizer(lowercase=False, split_contractions=False, strip_html=True)
    settings_ = json.loads(json.dumps(tokenizer.to_dict()))
    assert settings_["type"] == "word"
    restored = tokenizer_from_dict(settings_, directory=".")
    assert isinstance(restored, WordTokenizer)
    assert restored.to_dict() == tokenizer.to_dict()
    assert restored.tokenize("It's A") == ["It's", "A"]


def test_unknown_word_tokenizer_setting_is_an_error():
    with pytest.raises(DataError, match="strip_htm"):
        WordTokenizer.from_dict({"type": "word", "strip_htm": True})


def test_unknown_tokenizer_type_lists_the_valid_ones(tmp_path):
    with pytest.raises(DataError, match=r"\['character', 'sentencepiece', 'word'\]"):
        tokenizer_from_dict({"type": "bytes"}, tmp_path)
    assert set(TOKENIZERS) == {"word", "sentencepiece", "character"}


# --------------------------------------------------------------------------- sentencepiece

_WORDS = ["the", "a", "movie", "film", "plot", "actor", "scene", "great", "awful", "boring"]


def _corpus(count: int = 400, seed: int = 0) -> list[str]:
    """Generated sentences over a small vocabulary."""
    generator = random.Random(seed)
    return [
        " ".join(generator.choice(_WORDS) for _ in range(generator.randint(3, 12)))
        for _ in range(count)
    ]


@pytest.fixture(scope="module")
def unigram(tmp_path_factory) -> SentencePieceTokenizer:
    """A small unigram model trained on the generated corpus."""
    directory = tmp_path_factory.mktemp("unigram")
    return SentencePieceTokenizer.train(iter(_corpus()), directory / "spm", vocab_size=60)


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_training_writes_a_model_file_and_round_trips_text(tmp_path, model_type):
    tokenizer = SentencePieceTokenizer.train(
        _corpus(), tmp_path / "sub" / "spm", vocab_size=50, model_type=model_type
    )
    assert (tmp_path / "sub" / "spm.model").is_file()
    assert tokenizer.vocab_size <= 50
    text = "the brilliant actor was slow"
    pieces = tokenizer.tokenize(text)
    assert pieces and all(isinstance(piece, str) for piece in pieces)
    assert tokenizer.detokenize(pieces) == text


def test_training_is_quiet(tmp_path, capfd):
    SentencePieceTokenizer.train(_corpus(100), tmp_path / "spm", vocab_size=40)
    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_vocab_size_larger_than_the_corpus_allows_is_not_an_error(tmp_path):
    tokenizer = SentencePieceTokenizer.train(["a b a b", "ab ba"], tmp_path / "spm", 8000)
    assert 0 < tokenizer.vocab_size < 8000
    assert tokenizer.detokenize(tokenizer.tokenize("ab a")) == "ab a"


def test_vocab_size_below_the_character_count_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="vocab_size=5"):
        SentencePieceTokenizer.train(_corpus(50), tmp_path / "spm", vocab_size=5)


def test_no_text_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no non-empty text"):
        SentencePieceTokenizer.train(["", "  "], tmp_path / "spm", vocab_size=20)


def test_lowercase_and_user_defined_symbols(tmp_path):
    tokenizer = SentencePieceTokenizer.train(
        _corpus(200), tmp_path / "spm", 60, lowercase=True, user_defined_symbols=["<sep>"]
    )
    pieces = tokenizer.tokenize("The MOVIE <sep> was GREAT")
    assert "<sep>" in pieces
    assert "".join(pieces) == "".join(pieces).lower()


def test_max_sentences_limits_the_training_texts(tmp_path):
    corpus = _corpus(300)
    limited = SentencePieceTokenizer.train(corpus, tmp_path / "a", 40, max_sentences=20)
    again = SentencePieceTokenizer.train(corpus, tmp_path / "b", 40, max_sentences=20)
    assert limited.vocab_size > 0
    text = "the brilliant actor"
    assert limited.tokenize(text) == again.tokenize(text)  # the sample is deterministic


def test_long_texts_are_used_in_full(tmp_path):
    long_text = " ".join(["supercalifragilistic"] * 600)  # > sentencepiece's 4192-byte default
    tokenizer = SentencePieceTokenizer.train(
        [long_text, "ab"], tmp_path / "spm", vocab_size=30, model_type="bpe"
    )
    assert tokenizer.vocab_size == 30  # cut at 4192 bytes, it learns only 9 pieces


def test_sentencepiece_settings_restore_from_their_directory(unigram, tmp_path):
    settings_ = json.loads(json.dumps(unigram.to_dict()))
    assert settings_["type"] == "sentencepiece"
    assert settings_["model_file"] == "spm.model"
    copy = tmp_path / settings_["model_file"]
    copy.write_bytes(unigram.model_path.read_bytes())
    restored = tokenizer_from_dict(settings_, tmp_path)
    text = "a boring film with a great scene"
    assert restored.tokenize(text) == unigram.tokenize(text)
    assert SentencePieceTokenizer.load(copy).tokenize(text) == unigram.tokenize(text)


def test_missing_model_file_is_a_data_error_naming_it(tmp_path):
    with pytest.raises(DataError, match=r"nothing\.model"):
        tokenizer_from_dict({"type": "sentencepiece", "model_file": "nothing.model"}, tmp_path)


def test_corrupt_model_file_is_a_data_error_naming_it(tmp_path):
    (tmp_path / "bad.model").write_text("not a model")
    with pytest.raises(DataError, match=r"bad\.model"):
        SentencePieceTokenizer.load(tmp_path / "bad.model")
