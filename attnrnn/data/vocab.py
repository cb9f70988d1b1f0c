"""Vocabulary: the mapping between token strings and integer ids.

``<pad>`` is always id 0 and ``<unk>`` id 1; further special tokens (``<s>``,
``</s>`` for sequence-to-sequence models) follow, then the corpus tokens by
descending frequency, ties broken by the token string so that a vocabulary is
the same on every run. Saved as JSON.
"""

from __future__ import annotations

import json
import os
import secrets
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from attnrnn.data.io import read_json
from attnrnn.errors import DataError

PAD = "<pad>"
UNK = "<unk>"
DEFAULT_SPECIALS = (PAD, UNK)
_FORMAT = "attnrnn-vocab"
_VERSION = 1


class Vocab:
    """An ordered, immutable list of unique tokens with their ids."""

    def __init__(self, tokens: Sequence[str], specials: Sequence[str] = DEFAULT_SPECIALS):
        """``tokens`` in id order; they must start with ``specials``, which start with
        ``<pad>``, ``<unk>``. Use :meth:`build` to make a vocabulary from a corpus."""
        problem = _problem_with(tokens, specials)
        if problem is not None:
            raise ValueError(problem)
        self._tokens = list(tokens)
        self._specials = tuple(specials)
        self._indices = {token: index for index, token in enumerate(self._tokens)}

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = DEFAULT_SPECIALS,
    ) -> Vocab:
        """Count the tokens of a corpus and keep the frequent ones.

        Args:
            token_lists: tokenized sentences or documents.
            min_freq: tokens seen fewer times are left out (they encode as ``<unk>``).
            max_size: the largest vocabulary, specials included; the most
                frequent tokens are kept. ``None`` keeps all.
            specials: special tokens placed first; ``<pad>`` and ``<unk>`` are
                always ids 0 and 1 and are added when missing, so
                ``("<s>", "</s>")`` gives ``<pad> <unk> <s> </s>``.
        """
        if min_freq < 1:
            raise ValueError(f"min_freq must be at least 1, got {min_freq}")
        all_specials = _with_default_specials(specials)
        if max_size is not None and max_size < len(all_specials):
            raise ValueError(
                f"max_size={max_size} leaves no room for the {len(all_specials)} special tokens"
            )
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        special_set = set(all_specials)
        ranked = sorted(
            (
                (count, token)
                for token, count in counts.items()
                if count >= min_freq and token not in special_set
            ),
            key=lambda pair: (-pair[0], pair[1]),
        )
        kept = [token for _, token in ranked]
        if max_size is not None:
            kept = kept[: max_size - len(all_specials)]
        return cls([*all_specials, *kept], all_specials)

    def extended(self, tokens: Iterable[str]) -> Vocab:
        """A new vocabulary with ``tokens`` appended (those already present are skipped)."""
        added = list(dict.fromkeys(token for token in tokens if token not in self._indices))
        return Vocab([*self._tokens, *added], self._specials)

    # -- lookups -------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._indices

    def __iter__(self) -> Iterator[str]:
        return iter(self._tokens)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocab):
            return NotImplemented
        return self._tokens == other._tokens and self._specials == other._specials

    def __hash__(self) -> int:
        return hash((tuple(self._tokens), self._specials))

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, specials={list(self._specials)})"

    @property
    def pad_index(self) -> int:
        """Id of ``<pad>``: always 0."""
        return 0

    @property
    def unk_index(self) -> int:
        """Id of ``<unk>``: always 1."""
        return 1

    @property
    def specials(self) -> tuple[str, ...]:
        """The special tokens, in id order (ids ``0 .. len(specials) - 1``)."""
        return self._specials

    @property
    def tokens(self) -> list[str]:
        """All tokens in id order (a copy)."""
        return list(self._tokens)

    def index(self, token: str) -> int:
        """The id of ``token``; KeyError if it is not in the vocabulary."""
        try:
            return self._indices[token]
        except KeyError:
            raise KeyError(f"token {token!r} is not in the vocabulary") from None

    def token(self, index: int) -> str:
        """The token with id ``index``; IndexError if out of range."""
        if not 0 <= index < len(self._tokens):
            raise IndexError(f"token id {index} is out of range [0, {len(self._tokens)})")
        return self._tokens[index]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``, ``(T,) -> (T,)``; unknown tokens map to ``unk_index``."""
        lookup = self._indices.get
        unknown = self.unk_index
        return [lookup(token, unknown) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids``, ``(T,) -> (T,)``; IndexError for an id out of range."""
        return [self.token(int(index)) for index in ids]

    # -- saving ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready contents."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "specials": list(self._specials),
            "tokens": list(self._tokens),
        }

    @classmethod
    def from_dict(cls, contents: dict[str, Any]) -> Vocab:
        """Rebuild from :meth:`to_dict` output; malformed contents are a DataError."""
        if not isinstance(contents, dict) or contents.get("format") != _FORMAT:
            raise DataError(f"not an attnrnn vocabulary (expected format {_FORMAT!r})")
        if contents.get("version") != _VERSION:
            raise DataError(
                f"unsupported vocabulary version {repr(contents.get('version'))[:40]} "
                f"(this attnrnn reads version {_VERSION})"
            )
        tokens: Any = contents.get("tokens")
        specials: Any = contents.get("specials")
        problem = _problem_with(tokens, specials)
        if problem is not None:
            raise DataError(f"invalid vocabulary: {problem}")
        return cls(tokens, specials)

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as JSON, atomically (a temporary file, then a rename)."""
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=1)
        _write_text_atomically(Path(path), text + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        """Read a vocabulary saved by :meth:`save`; a missing, damaged (not UTF-8, not
        JSON) or malformed file is a DataError naming it."""
        path = Path(path)
        contents = read_json(path, "vocabulary", object, error=DataError)
        try:
            return cls.from_dict(contents)
        except DataError as error:
            raise DataError(str(error), path=str(path)) from None


def _with_default_specials(specials: Sequence[str]) -> tuple[str, ...]:
    """``<pad>``, ``<unk>``, then the other specials in their given order."""
    if isinstance(specials, str):
        raise TypeError("specials must be a sequence of strings, not one string")
    extra = [token for token in specials if token not in DEFAULT_SPECIALS]
    if len(set(extra)) != len(extra):
        raise ValueError(f"duplicate special tokens in {list(specials)}")
    return (*DEFAULT_SPECIALS, *extra)


def _problem_with(tokens: object, specials: object) -> str | None:
    """Why ``tokens``/``specials`` cannot form a vocabulary, or None if they can."""
    if not isinstance(tokens, list | tuple) or not all(isinstance(t, str) for t in tokens):
        return "'tokens' must be a list of strings"
    if not isinstance(specials, list | tuple) or not all(isinstance(t, str) for t in specials):
        return "'specials' must be a list of strings"
    if tuple(specials[:2]) != DEFAULT_SPECIALS:
        return f"specials must start with {list(DEFAULT_SPECIALS)}, got {list(specials[:2])}"
    if tuple(tokens[: len(specials)]) != tuple(specials):
        return "tokens must start with the special tokens"
    if len(set(tokens)) != len(tokens):
        duplicates = sorted(token for token, count in Counter(tokens).items() if count > 1)
        return f"duplicate tokens {duplicates[:5]}"
    return None


def _write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a new temporary file beside ``path`` (created exclusively, so
    a symbolic link planted under its name is never followed), then rename it over
    ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL  # never an existing file or link
    handle = os.open(temporary, flags, 0o666)  # the umask applies, as for any new file
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as output:
            output.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
