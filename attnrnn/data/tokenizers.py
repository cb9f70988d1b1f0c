"""Tokenizers: text -> list of token strings, and back.

Two kinds, both saved as a small JSON-ready dict of settings:

- :class:`WordTokenizer`, a rule-based word splitter that reproduces the
  Penn-Treebank tokenization of the Stanford Sentiment Treebank ("does n't",
  "it 's", "-lrb-") on raw text such as IMDB reviews, so that the two can share
  a vocabulary and pretrained word vectors.
- :class:`SentencePieceTokenizer`, subword units learned by the
  ``sentencepiece`` library and saved as its own ``.model`` file.

:func:`tokenizer_from_dict` restores either from its saved settings.
"""

from __future__ import annotations

import html
import random
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from itertools import islice
from pathlib import Path
from typing import Any, Literal, Protocol

import sentencepiece

from attnrnn.data.io import file_inside
from attnrnn.errors import DataError


class Tokenizer(Protocol):
    """What the rest of attnrnn needs from a tokenizer."""

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` into tokens."""
        ...

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Join tokens back into text (exactly for subwords, roughly for words)."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """The settings needed to rebuild this tokenizer, JSON-ready, with a ``type`` key."""
        ...


# ----------------------------------------------------------------------------
# Word tokenizer
# ----------------------------------------------------------------------------

# How the splitting works: ``re.split`` with a capturing group cuts the text
# around every punctuation token that must stand alone, a space-join pads them,
# and ``str.split`` gives the tokens, all in C. Each alternative of the
# expression starts with a literal character, so the regex engine skips
# straight to candidate positions. This is several times faster than a
# ``findall`` visiting every token, or ``re.sub`` (which expands its template
# in Python for each match).

# Combining marks outside \w (they follow a letter: "e" + U+0301, Devanagari
# vowel signs) belong to the word; they are listed at first use.
_MARK_PLANE_END = 0x20000
_VARIATION_SELECTORS_SUPPLEMENT = "\U000e0100-\U000e01ef"

# ASCII punctuation that is always a token of its own.
_ALWAYS_ALONE = '!"#$%&()*+/:;<=>?@[\\]^{|}~`'
# Penn-Treebank brackets as in SST, and punctuation kept as one token.
_GROUPS = [r"-(?i:lrb|rrb|lsb|rsb|lcb|rcb)-", "--", r"\.\.\.", "``", "''"]

_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")
_CURLY_APOSTROPHES = ("\u2019", "\u2018")  # replaced by "'" (str.replace beats str.translate)
# "n't" is split off its host word wherever it occurs: "doesn't" -> "does n't".
_NEGATIONS = ("n't", "N'T", "n'T", "N't")


@cache
def _word_character() -> str:
    """A character class of word characters: ``\\w`` plus all combining marks."""
    marks = [
        code
        for code in range(_MARK_PLANE_END)
        if unicodedata.category(chr(code)).startswith("M") and not chr(code).isalnum()
    ]
    ranges = []
    start = previous = marks[0]
    for code in [*marks[1:], -1]:
        if code != previous + 1:
            ranges.append(f"{chr(start)}-{chr(previous)}")
            start = code
        previous = code
    return rf"[\w{''.join(ranges)}{_VARIATION_SELECTORS_SUPPLEMENT}]"


@cache
def _cannot_pattern() -> re.Pattern[str]:
    """The "can" of "cannot" (PTB: "can not")."""
    word = _word_character()
    return re.compile(rf"(?<!{word})(?i:can)(?=(?i:not)(?!{word}))")


def _joiner_alternative(joiner: str, split_contractions: bool) -> str:
    """A hyphen or apostrophe that is not inside a word, so stands alone.

    It joins ("well-known", "o'clock") only between two word characters that
    stay in the word. Right after a clitic that is split off it would end up at
    the edge of a token and be split on a second pass, so it is split now.
    """
    word = _word_character()
    escaped = re.escape(joiner)
    conditions = [rf"(?<!{word}{escaped})", rf"(?!{word})"]
    if split_contractions:
        conditions += [rf"(?<=(?i:n't|'re|'ve|'ll){escaped})", rf"(?<=(?i:'[smd]){escaped})"]
    return rf"{escaped}(?:{'|'.join(conditions)})"


@cache
def _punctuation_pattern(split_contractions: bool) -> re.Pattern[str]:
    """Captures every ASCII-punctuation token that must stand alone."""
    alternatives = list(_GROUPS)
    if split_contractions:  # "it's" -> "it 's"
        alternatives.append(rf"'(?i:s|m|d|re|ve|ll)(?!{_word_character()})")
    alternatives += [_joiner_alternative(joiner, split_contractions) for joiner in "-'"]
    # "." and "," join digits ("3.5", "1,000") and stand alone elsewhere.
    alternatives += [rf"{re.escape(mark)}(?:(?<!\d{re.escape(mark)})|(?!\d))" for mark in ".,"]
    alternatives += [re.escape(character) for character in _ALWAYS_ALONE]
    return re.compile(f"({'|'.join(alternatives)})")


@cache
def _non_ascii_symbol_pattern() -> re.Pattern[str]:
    """Non-ASCII punctuation and symbols ("…", "—", "«", emoji), each alone.

    The lookbehind after a cheap non-ASCII test keeps the large class of word
    characters off the fast path.
    """
    return re.compile(rf"([^\x00-\x7f](?<![\s{_word_character()[1:-1]}]))")


class WordTokenizer:
    """Rule-based word tokenizer matching the Penn-Treebank style of SST.

    - Unicode-aware: letters of any script, with their combining marks, form
      words; text is NFC-normalized; curly apostrophes become ``'``.
    - HTML tags such as IMDB's ``<br />`` are removed and entities (``&amp;``)
      decoded when ``strip_html``.
    - Punctuation is split from words, except ``...``, ``--``, `````` and
      ``''``, which stay one token each. Hyphenated words ("well-known"),
      numbers ("3.5", "1,000", "21st") and inner apostrophes ("o'clock") stay
      together.
    - With ``split_contractions``: "doesn't" -> "does n't", "can't" -> "ca n't",
      "won't" -> "wo n't", "it's" -> "it 's", "I'm" -> "I 'm", "they're",
      "we've", "he'll", "I'd" likewise, "cannot" -> "can not".
    - Already-tokenized text is stable: ``tokenize(" ".join(tokenize(x))) ==
      tokenize(x)``, and PTB tokens such as ``-lrb-`` and ``'s`` are kept.

    "n't" is split off wherever it occurs ("don'tcha" -> "do n'tcha").

    A precompiled regular-expression split and ``str.split`` do the work: about
    40 microseconds for a 1,300-character IMDB review.
    """

    def __init__(
        self, lowercase: bool = True, split_contractions: bool = True, strip_html: bool = True
    ):
        self.lowercase = lowercase
        self.split_contractions = split_contractions
        self.strip_html = strip_html
        self._cut_at_punctuation = _punctuation_pattern(split_contractions).split
        self._cut_at_symbols = _non_ascii_symbol_pattern().split
        self._split_cannot = _cannot_pattern().sub

    def normalize(self, text: str) -> str:
        """The text as it is before splitting: HTML removed, NFC, apostrophes, case."""
        if self.strip_html:
            if "&" in text:
                text = html.unescape(text)
            if "<" in text:
                text = _HTML_TAG.sub(" ", text)
        if not text.isascii():
            if not unicodedata.is_normalized("NFC", text):
                text = unicodedata.normalize("NFC", text)
            for apostrophe in _CURLY_APOSTROPHES:
                if apostrophe in text:
                    text = text.replace(apostrophe, "'")
        if self.lowercase:
            text = text.lower()
        return text

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` into word and punctuation tokens."""
        text = self.normalize(text)
        if self.split_contractions:
            text = self._split_contraction_words(text)
        if not text.isascii():
            text = " ".join(self._cut_at_symbols(text))
        return " ".join(self._cut_at_punctuation(text)).split()

    def _split_contraction_words(self, text: str) -> str:
        """Space before "n't" and after the "can" of "cannot"; cheap when neither occurs."""
        if "'" in text:
            for negation in _NEGATIONS:
                if negation in text:
                    text = text.replace(negation, " " + negation)
        folded = text if self.lowercase else text.lower()
        if "cannot" in folded:
            text = self._split_cannot(r"\g<0> ", text)
        return text

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Join tokens with single spaces (the PTB look: "it 's fine .")."""
        return " ".join(tokens)

    def to_dict(self) -> dict[str, Any]:
        """The settings, JSON-ready."""
        return {
            "type": "word",
            "lowercase": self.lowercase,
            "split_contractions": self.split_contractions,
            "strip_html": self.strip_html,
        }

    @classmethod
    def from_dict(
        cls, settings: dict[str, Any], directory: str | Path | None = None
    ) -> WordTokenizer:
        """Rebuild from :meth:`to_dict` output (``directory`` is unused); unknown keys fail."""
        options = {key: value for key, value in settings.items() if key != "type"}
        known = {"lowercase", "split_contractions", "strip_html"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise DataError(f"unknown word tokenizer settings {unknown}; valid: {sorted(known)}")
        return cls(**{key: _flag(options, key) for key in options})

    def __repr__(self) -> str:
        return (
            f"WordTokenizer(lowercase={self.lowercase}, "
            f"split_contractions={self.split_contractions}, strip_html={self.strip_html})"
        )


# ----------------------------------------------------------------------------
# SentencePiece tokenizer
# ----------------------------------------------------------------------------

_SENTENCEPIECE_DEFAULT_MAX_SENTENCE_BYTES = 4192
_QUIET = 2  # sentencepiece minloglevel: errors only


class SentencePieceTokenizer:
    """Subword tokenizer backed by a trained ``sentencepiece`` model file.

    Lowercasing, when chosen at training time, is part of the model's own
    normalization rule, so a loaded model lowercases without extra settings.
    """

    def __init__(self, model_path: str | Path):
        """Load ``model_path`` (a ``.model`` file); a missing or bad file is a DataError."""
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise DataError("sentencepiece model file not found", path=str(self.model_path))
        self._processor = sentencepiece.SentencePieceProcessor()
        try:
            self._processor.Load(str(self.model_path))
        except (OSError, RuntimeError) as error:
            raise DataError(
                f"not a sentencepiece model file ({error})", path=str(self.model_path)
            ) from error

    @classmethod
    def load(cls, path: str | Path) -> SentencePieceTokenizer:
        """Load a trained ``.model`` file."""
        return cls(path)

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        model_prefix_path: str | Path,
        vocab_size: int,
        model_type: Literal["unigram", "bpe"] = "unigram",
        character_coverage: float = 1.0,
        lowercase: bool = False,
        user_defined_symbols: Sequence[str] = (),
        max_sentences: int | None = None,
    ) -> SentencePieceTokenizer:
        """Train on ``texts`` (one sentence or document each) and write ``<prefix>.model``.

        The texts are kept in memory (at most ``max_sentences`` of them, drawn
        uniformly with a fixed seed when there are more), so no temporary text
        file is written. ``vocab_size`` is a soft limit
        (``hard_vocab_limit=False``): a corpus too small for it gives a model
        with fewer pieces instead of an error. A ``vocab_size`` below the
        number of distinct characters is a :class:`DataError`.
        """
        if model_type not in ("unigram", "bpe"):
            raise ValueError(f"model_type must be 'unigram' or 'bpe', got {model_type!r}")
        sentences = _sample_sentences(texts, max_sentences)
        if not sentences:
            raise DataError("no non-empty text to train the sentencepiece model on")
        model_prefix = Path(model_prefix_path)
        model_prefix.parent.mkdir(parents=True, exist_ok=True)
        options = {
            "model_prefix": str(model_prefix),
            "model_type": model_type,
            "character_coverage": character_coverage,
            "normalization_rule_name": "nmt_nfkc_cf" if lowercase else "nmt_nfkc",
            "user_defined_symbols": list(user_defined_symbols),
            "hard_vocab_limit": False,
            "max_sentence_length": _max_sentence_bytes(sentences),
            "minloglevel": _QUIET,
        }
        _run_trainer(sentences, vocab_size, options)
        return cls(model_prefix.with_name(model_prefix.name + ".model"))

    @property
    def vocab_size(self) -> int:
        """Number of pieces in the model."""
        return self._processor.GetPieceSize()

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` into pieces ("▁the", "▁mov", "ie")."""
        return self._processor.EncodeAsPieces(text)

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Join pieces back into (normalized) text."""
        return self._processor.DecodePieces(list(tokens))

    def to_dict(self) -> dict[str, Any]:
        """The settings, JSON-ready; the model file is named relative to its directory."""
        return {
            "type": "sentencepiece",
            "model_file": self.model_path.name,
            "vocab_size": self.vocab_size,
        }

    @classmethod
    def from_dict(cls, settings: dict[str, Any], directory: str | Path) -> SentencePieceTokenizer:
        """Load the model file named in ``settings`` from ``directory``; a name that leads
        outside ``directory`` (``../x``, an absolute path, a symbolic link out) is a
        :class:`~attnrnn.errors.RunError`."""
        model_file = settings.get("model_file")
        if not isinstance(model_file, str) or not model_file:
            raise DataError("sentencepiece settings lack a 'model_file' name")
        return cls(file_inside(Path(directory), model_file, "sentencepiece model file"))

    def __repr__(self) -> str:
        return f"SentencePieceTokenizer({self.model_path.name!r}, vocab_size={self.vocab_size})"


class CharacterTokenizer:
    """One token per character; spaces become ``▁`` so that they survive as tokens.

    For small closed-vocabulary tasks such as the date-normalization demo.
    """

    SPACE = "\u2581"

    def __init__(self, lowercase: bool = False):
        self.lowercase = lowercase

    def tokenize(self, text: str) -> list[str]:
        """``"9 Apr"`` -> ``["9", "▁", "A", "p", "r"]``."""
        text = " ".join(text.split())
        if self.lowercase:
            text = text.lower()
        return [self.SPACE if character == " " else character for character in text]

    def detokenize(self, tokens: Sequence[str]) -> str:
        return "".join(" " if token == self.SPACE else token for token in tokens)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "character", "lowercase": self.lowercase}

    @classmethod
    def from_dict(cls, settings: dict[str, Any], directory: str | Path) -> CharacterTokenizer:
        return cls(lowercase=_flag(settings, "lowercase", False))

    def __repr__(self) -> str:
        return f"CharacterTokenizer(lowercase={self.lowercase})"


def _sample_sentences(texts: Iterable[str], max_sentences: int | None) -> list[str]:
    """Non-empty texts, reservoir-sampled (seed 0) down to ``max_sentences`` if given."""
    non_empty: Iterator[str] = (text for text in texts if text and not text.isspace())
    if max_sentences is None:
        return list(non_empty)
    if max_sentences < 1:
        raise ValueError(f"max_sentences must be positive, got {max_sentences}")
    sample = list(islice(non_empty, max_sentences))
    generator = random.Random(0)
    for seen, text in enumerate(non_empty, start=max_sentences + 1):
        slot = generator.randrange(seen)
        if slot < max_sentences:
            sample[slot] = text
    return sample


def _max_sentence_bytes(sentences: list[str]) -> int:
    """A sentence length limit that keeps every text (sentencepiece skips longer ones)."""
    longest = max(len(sentence.encode("utf-8")) for sentence in sentences)
    return max(_SENTENCEPIECE_DEFAULT_MAX_SENTENCE_BYTES, longest)


def _run_trainer(sentences: list[str], vocab_size: int, options: dict[str, Any]) -> None:
    """One call to the sentencepiece trainer, reading sentences from memory."""
    try:
        sentencepiece.SentencePieceTrainer.Train(
            sentence_iterator=iter(sentences), vocab_size=vocab_size, **options
        )
    except RuntimeError as error:
        raise DataError(
            f"sentencepiece training failed (vocab_size={vocab_size}): {error}"
        ) from error


# ----------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------

TOKENIZERS: dict[
    str, type[WordTokenizer] | type[SentencePieceTokenizer] | type[CharacterTokenizer]
] = {
    "word": WordTokenizer,
    "sentencepiece": SentencePieceTokenizer,
    "character": CharacterTokenizer,
}


def tokenizer_from_dict(settings: dict[str, Any], directory: str | Path) -> Tokenizer:
    """Rebuild a tokenizer from its :meth:`to_dict` settings.

    ``directory`` is where the settings were saved; a sentencepiece model file
    is looked up there.
    """
    kind = settings.get("type")
    if not isinstance(kind, str) or kind not in TOKENIZERS:
        shown = repr(kind)[:40]
        raise DataError(f"unknown tokenizer type {shown}; valid types: {sorted(TOKENIZERS)}")
    return TOKENIZERS[kind].from_dict(settings, directory)


def _flag(settings: dict[str, Any], key: str, default: bool | None = None) -> bool:
    """The true/false setting ``key`` (``default`` when absent and a default is given)."""
    value = settings.get(key, default)
    if not isinstance(value, bool):
        raise DataError(f"the tokenizer setting {key!r} must be true or false, got {value!r:.40}")
    return value
