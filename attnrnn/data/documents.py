"""Documents to summarize, from JSON lines to ids in a copy (extended) vocabulary
(padded batches of them: :mod:`attnrnn.data.document_batches`). No PyTorch here:
the ONNX predictor (:mod:`attnrnn.onnx`) encodes documents with it too.

A :class:`Document` is a source text with its reference summaries. For a
pointer-generator (:mod:`attnrnn.models.pointer_generator`) each source's
out-of-vocabulary words get temporary ids ``V + k`` (the k-th unknown word of that
source), target words that occur in the source take the same id so that they can
be copied (:func:`encode_document`), and :func:`decode_ids` turns those ids back
into the source's own words as written there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from attnrnn.data.casing import source_casing, written_tokens
from attnrnn.data.parallel import read_parallel_jsonl
from attnrnn.data.tokenizers import Tokenizer
from attnrnn.data.vocab import Vocab
from attnrnn.errors import DataError

# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Document:
    """A source text with its reference summaries (none for unlabelled input)."""

    source: str
    references: tuple[str, ...]
    origin: str


def read_documents(path: str, source_field: str, reference_fields: Sequence[str]) -> list[Document]:
    """The documents of a JSON Lines file: ``source_field`` is the text, every one of
    ``reference_fields`` a reference summary (a missing or empty one is a
    :class:`~attnrnn.errors.DataError` naming the file and line)."""
    columns = [read_parallel_jsonl(path, source_field, name) for name in reference_fields]
    documents = []
    for rows in zip(*columns, strict=True):
        references = tuple(row.target or "" for row in rows)
        documents.append(Document(rows[0].source, references, rows[0].origin))
    return documents


def document_text(record: Mapping[str, Any], name: str) -> str:
    """The text in field ``name`` of one JSON object; a :class:`DataError` when it is
    missing, not a string or empty."""
    if name not in record:
        existing = ", ".join(repr(key) for key in record) or "none"
        raise DataError(f"the JSON object has no field {name!r}; its fields are: {existing}")
    value = record[name]
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"the field {name!r} must be a non-empty string, got {json.dumps(value)}")
    return value.strip()


def document_line(line: str, field: str) -> str:
    """The text of one input line: a line that starts with ``{`` is a JSON object whose
    ``field`` holds the text; any other line is the text itself."""
    from attnrnn.data.io import InvalidJSON, parse_json

    text = line.strip()
    if not text.startswith("{"):
        return text
    try:
        record = parse_json(text)
    except InvalidJSON as error:
        raise DataError(str(error)) from None
    if not isinstance(record, dict):
        raise DataError(f"expected a JSON object, got a {type(record).__name__}")
    return document_text(record, field)


# --------------------------------------------------------------------------- copy ids


@dataclass
class EncodedDocument:
    """Extended source ids, the source's unknown words (id V + k is ``unknown[k]``),
    extended target ids (empty without a reference), and how the source writes its
    words (``casing``: lowercased token -> written form, for the words written with
    capitals; a lowercasing tokenizer still copies "McAllister", not "mcallister")."""

    source: list[int]
    unknown: list[str]
    target: list[int]
    casing: dict[str, str] = field(default_factory=dict)


def encode_document(
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    vocab: Vocab,
    source_surface: Sequence[str] | None = None,
) -> EncodedDocument:
    """Map tokens to ids; unknown source words get extended ids, and target words
    that occur in the source take the same extended id (so they can be copied).

    ``source_surface``: the source tokens as written (same length): their casing
    (:func:`~attnrnn.data.casing.source_casing`) is kept, and an unknown word's first
    written form wherever the casing has none, so that copies keep the source's
    spelling.
    """
    unknown: list[str] = []
    positions: dict[str, int] = {}
    source = []
    for token in source_tokens:
        if token in vocab:
            source.append(vocab.index(token))
            continue
        if token not in positions:
            positions[token] = len(vocab) + len(unknown)
            unknown.append(token)
        source.append(positions[token])
    target = [
        vocab.index(token) if token in vocab else positions.get(token, vocab.unk_index)
        for token in target_tokens
    ]
    casing: dict[str, str] = {}
    if source_surface is not None:
        casing = source_casing(source_surface)
        for token, written in zip(source_tokens, source_surface, strict=True):
            if token in positions and written != token:
                casing.setdefault(token, written)
    return EncodedDocument(source, unknown, target, casing)


def decode_ids(ids: Sequence[int], document: EncodedDocument, vocab: Vocab) -> list[str]:
    """Output ids back to tokens; extended ids become the source's own words as written."""
    size = len(vocab)
    tokens = []
    for index in ids:
        if index >= size:
            word = document.unknown[index - size]
            tokens.append(document.casing.get(word, word))
        else:
            tokens.append(vocab.token(index))
    return tokens


@dataclass
class DocumentSplit:
    """Encoded documents and every document's reference summaries."""

    documents: list[EncodedDocument]
    references: list[tuple[str, ...]]

    def __len__(self) -> int:
        return len(self.documents)

    @property
    def lengths(self) -> list[int]:
        """What each document costs in a training batch: its longer side."""
        return [max(len(d.source), len(d.target) + 1) for d in self.documents]


def encode_documents(
    documents: Sequence[Document],
    tokenizer: Tokenizer,
    vocab: Vocab,
    max_source_length: int,
    max_target_length: int,
) -> DocumentSplit:
    """Tokenize, truncate and encode with copy ids (the first reference is the target),
    keeping the source's casing when ``tokenizer`` lowercases."""
    encoded = []
    for document in documents:
        source = tokenizer.tokenize(document.source)[:max_source_length]
        if not source:
            raise DataError("the source text has no tokens", document.origin)
        first = document.references[0] if document.references else ""
        target = tokenizer.tokenize(first)[:max_target_length]
        written = written_tokens(tokenizer, document.source, source)
        encoded.append(encode_document(source, target, vocab, written))
    return DocumentSplit(encoded, [d.references for d in documents])
