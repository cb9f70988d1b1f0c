"""Pretrained word vectors (word2vec / GloVe text format) for embedding layers.

The text format is one word per line followed by its values, separated by
spaces, with an optional first line ``"<count> <dim>"`` (word2vec writes one,
GloVe does not); ``.gz`` files are read and written compressed. Files can be
gigabytes, so :func:`load_word_vectors` streams them and keeps only the
vectors of vocabulary words.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO, cast

import numpy as np
import torch

from attnrnn.data.vocab import Vocab
from attnrnn.errors import DataError


@dataclass
class _FoundVectors:
    """Vectors read for vocabulary words: ``rows[index]`` is a ``(dim,)`` array."""

    dim: int
    rows: dict[int, np.ndarray]
    exact: set[int]  # ids whose vector came from an exact (not lowercased) match


def load_word_vectors(
    path: str | Path,
    vocab: Vocab,
    lowercase: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, float]:
    """Build an embedding matrix for ``vocab`` from a word-vector text file.

    Args:
        path: a word2vec/GloVe text file, optionally ``.gz``.
        vocab: the vocabulary whose rows to fill.
        lowercase: also match a file word to the vocabulary entry of its
            lowercased form (for a lowercasing tokenizer and cased vectors,
            e.g. glove.840B); an exact match takes precedence, then the first
            cased form in the file.
        generator: random generator for the rows of words not in the file.

    Returns:
        ``(matrix, coverage)``: ``matrix`` is ``(V, E)`` float32 with the file's
        vectors in the rows of found words, zeros in the ``<pad>`` row, and
        samples of normal(0, s) elsewhere (other specials, missing words),
        where s is the standard deviation of all found values (1 if that is
        0). ``coverage`` is the fraction of non-special entries found.

    Raises:
        DataError: the file is missing or unreadable, a line's dimension
            differs from the first vector's (or the header's), a value of a
            vocabulary word is not a finite number, or no vocabulary word is
            in the file. Values of other words are not parsed, for speed.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("word vector file not found", path=str(path))
    found = _read_vocabulary_vectors(path, vocab, lowercase)
    words = len(vocab) - len(vocab.specials)
    if not found.rows:
        raise DataError(
            f"none of the {words} vocabulary words were found in the word vectors "
            f"(lowercase={lowercase}; is it the right file and casing?)",
            path=str(path),
        )
    indices = torch.tensor(sorted(found.rows))
    vectors = torch.from_numpy(np.stack([found.rows[int(index)] for index in indices]))  # (N, E)
    std = float(vectors.std(correction=0)) if vectors.numel() > 1 else 0.0
    matrix = torch.randn(len(vocab), found.dim, generator=generator, dtype=torch.float32)
    matrix *= std if std > 0 else 1.0
    matrix[indices] = vectors
    matrix[vocab.pad_index] = 0.0
    return matrix, len(found.rows) / words


def read_vector_words(path: str | Path, limit: int) -> list[str]:
    """The first ``limit`` words of a word-vector text file, in file order.

    word2vec and GloVe files list the most frequent words first, so these are
    the words worth adding to a vocabulary. Words containing spaces are
    skipped (no tokenizer produces them). Only the lines read are checked.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("word vector file not found", path=str(path))
    words: list[str] = []
    if limit < 1:
        return words
    try:
        with _open_text(path, "r", compressed=path.suffix == ".gz") as file:
            for _, _, word, _ in _vector_lines(file, path):
                if " " not in word:
                    words.append(word)
                if len(words) == limit:
                    break
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"cannot read word vector file: {error}", path=str(path)) from None
    return words


def _read_vocabulary_vectors(path: Path, vocab: Vocab, lowercase: bool) -> _FoundVectors:
    """Stream ``path`` and keep the vectors of non-special vocabulary words."""
    targets = {token: index for index, token in enumerate(vocab) if index >= len(vocab.specials)}
    found = _FoundVectors(dim=0, rows={}, exact=set())
    try:
        with _open_text(path, "r", compressed=path.suffix == ".gz") as file:
            for line_number, dim, word, values in _vector_lines(file, path):
                found.dim = dim
                index = targets.get(word)
                exact = index is not None
                if index is None and lowercase:
                    index = targets.get(word.lower())
                if index is None or index in found.exact or (index in found.rows and not exact):
                    continue
                found.rows[index] = _parse_values(values, dim, path, line_number)
                if exact:
                    found.exact.add(index)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"cannot read word vector file: {error}", path=str(path)) from None
    if found.dim == 0:
        raise DataError("no word vectors in file", path=str(path))
    return found


def _vector_lines(file: TextIO, path: Path) -> Iterator[tuple[int, int, str, str]]:
    """``(line_number, dim, word, values)`` per vector line, ``values`` unparsed.

    Skips the header and blank lines. The dimension is the header's, or else
    the first line's; every line must have it. Only a line that does not have
    exactly ``dim`` single spaces is split in full, which keeps gigabyte files
    fast: repeated spaces are allowed, and extra leading fields that are not
    numbers make a word containing spaces (glove.840B has a few).
    """
    dim = 0
    for line_number, line in enumerate(file, start=1):
        stripped = line.rstrip()
        if not stripped:
            continue
        if dim == 0:
            dim = _header_dimension(stripped)
            if dim > 0:
                continue
            dim = len(stripped.split()) - 1
            if dim < 1:
                raise DataError("a word without values", path=str(path), line=line_number)
        if stripped.count(" ") == dim and not stripped.startswith(" "):
            word, _, values = stripped.partition(" ")
        else:
            word, values = _split_irregular_line(stripped, dim, path, line_number)
        yield line_number, dim, word, values


def _header_dimension(line: str) -> int:
    """The dimension of a word2vec ``"<count> <dim>"`` header line, or 0 if not one."""
    fields = line.split()
    if len(fields) != 2 or not (fields[0].isdigit() and fields[1].isdigit()):
        return 0
    return int(fields[1])


def _split_irregular_line(line: str, dim: int, path: Path, line_number: int) -> tuple[str, str]:
    """``(word, values)`` of a line with unusual spacing, or a DataError for a bad dimension."""
    fields = line.split(" ")
    fields = [field for field in fields if field]
    if len(fields) == dim + 1:
        return fields[0], " ".join(fields[1:])
    if len(fields) > dim + 1 and not _is_number(fields[-dim - 1]):
        return " ".join(fields[:-dim]), " ".join(fields[-dim:])
    raise DataError(
        f"inconsistent dimensions: {len(fields) - 1} values, expected {dim}",
        path=str(path),
        line=line_number,
    )


def _is_number(text: str) -> bool:
    """Whether ``text`` parses as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_values(values: str, dim: int, path: Path, line_number: int) -> np.ndarray:
    """The ``(dim,)`` float32 vector of one line's values, or a DataError naming the line."""
    fields = values.split()
    if len(fields) != dim:
        raise DataError(
            f"inconsistent dimensions: {len(fields)} values, expected {dim}",
            path=str(path),
            line=line_number,
        )
    try:
        vector = np.array([float(field) for field in fields], dtype=np.float32)
    except ValueError:
        bad = next(field for field in fields if not _is_number(field))
        raise DataError(f"non-numeric value {bad!r}", path=str(path), line=line_number) from None
    if not np.isfinite(vector).all():
        raise DataError("non-finite value (nan or inf)", path=str(path), line=line_number)
    return vector


def _open_text(path: Path, mode: Literal["r", "w"], compressed: bool) -> TextIO:
    """Open a UTF-8 text file (``mode`` "r" or "w"), through gzip if ``compressed``.

    Undecodable bytes read as U+FFFD, so a bad word cannot stop a long read.
    """
    if compressed:
        return cast(TextIO, gzip.open(path, f"{mode}t", encoding="utf-8", errors="replace"))
    return cast(TextIO, open(path, mode, encoding="utf-8", errors="replace"))


def save_word_vectors(path: str | Path, tokens: Sequence[str], matrix: torch.Tensor) -> None:
    """Write ``tokens`` and their rows of ``matrix`` ``(V, E)`` in word2vec text format.

    A ``"<V> <E>"`` header comes first; values keep float32 precision. The file
    (gzip-compressed if ``path`` ends in ``.gz``) is written to a temporary
    name and renamed, so readers never see a half-written file.
    """
    if matrix.dim() != 2 or matrix.shape[0] != len(tokens):
        raise ValueError(
            f"matrix must be (V, E) with V = {len(tokens)} tokens, got {tuple(matrix.shape)}"
        )
    for token in tokens:
        if not token or any(character.isspace() for character in token):
            raise ValueError(f"token {token!r} is empty or contains whitespace")
    values = matrix.detach().to(torch.float32).cpu().numpy()  # (V, E)
    row_format = " ".join(["%.9g"] * values.shape[1])
    with _atomic_text_output(Path(path)) as file:
        file.write(f"{values.shape[0]} {values.shape[1]}\n")
        for token, row in zip(tokens, values.tolist(), strict=True):
            file.write(f"{token} {row_format % tuple(row)}\n")


@contextmanager
def _atomic_text_output(path: Path) -> Iterator[TextIO]:
    """A text file that replaces ``path`` only when the ``with`` block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with _open_text(temporary, "w", compressed=path.suffix == ".gz") as file:
            yield file
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
