"""Readers that turn text-classification data files into :class:`TextExample` lists.

Four formats are understood:

- ``table``: TSV or CSV with a text column and an optional label column
  (GLUE SST-2 ``sentence<TAB>label`` files, for example). TSV is read without
  quoting, so quote characters in the text are kept literally.
- ``jsonl``: one JSON object per line, optionally gzipped (the IMDB
  ``{"id": .., "label": 0, "text": ".."}`` files).
- ``sst``: Stanford Sentiment Treebank PTB trees, one tree per line.
- ``plain``: one unlabeled text per line (input to ``attnrnn predict``);
  ``-`` reads standard input.

Every file is decoded as strict UTF-8 (or the encoding a run's ``data.encoding`` names,
see :func:`text_encoding`), one physical line at a time, in bounded
memory: a line longer than :data:`MAX_LINE_BYTES` (1 MiB; the environment variable
``ATTNRNN_MAX_LINE_BYTES`` sets another limit) is an error, found after reading at
most that many bytes of it, so an unterminated stream or a one-line gzip bomb cannot
exhaust memory. Every problem with a file is a :class:`~attnrnn.errors.DataError`
that names the file and, where it applies, the 1-based physical line.
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import csv
import gzip
import json
import os
import re
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, NoReturn

from attnrnn.data.io import InvalidJSON, parse_json
from attnrnn.errors import ConfigError, DataError

FORMATS = ("auto", "table", "jsonl", "sst", "plain")
SST_GRANULARITIES = ("binary", "fine")
STDIN = "-"
PathLike = str | os.PathLike[str]
# The longest line read, in bytes without its line ending.
MAX_LINE_BYTES = 1 << 20
MAX_LINE_BYTES_VARIABLE = "ATTNRNN_MAX_LINE_BYTES"
# SST trees deeper than this are refused (the treebank's deepest is under 60).
MAX_TREE_DEPTH = 400
_FIELDS_SHOWN = 20

# PTB escapes undone in SST leaves, as in the SST sentence files people compare against.
_PTB_BRACKETS = {"-LRB-": "(", "-RRB-": ")"}
_SST_BINARY_LABELS = {"0": "0", "1": "0", "3": "1", "4": "1"}
_TREE_TOKEN = re.compile(r"[()]|[^() ]+")  # brackets, or a run split on ASCII space only
_TREE_START = re.compile(r"^\(\s*\d")


@dataclass(frozen=True)
class TextExample:
    """One text with its label (``None`` when unlabeled) and ``"path:line"`` origin."""

    text: str
    label: str | None
    origin: str


# --- files and lines ---------------------------------------------------------------------


def _display_name(path: PathLike) -> str:
    """Returns the name used for ``path`` in messages and origins."""
    return "<stdin>" if str(path) == STDIN else str(path)


def _open_binary(path: PathLike) -> contextlib.AbstractContextManager[BinaryIO]:
    """Returns a binary stream for ``path``: stdin for ``-``, gunzipped for ``.gz``."""
    name = _display_name(path)
    if str(path) == STDIN:
        return contextlib.nullcontext(sys.stdin.buffer)
    file = Path(path)
    if file.is_dir():
        raise DataError("is a directory, not a file", name)
    if not file.exists():
        raise DataError("no such file", name)
    try:
        if name.endswith(".gz"):
            return gzip.open(file, "rb")  # type: ignore[return-value]
        return open(file, "rb")
    except OSError as error:
        raise DataError(f"cannot be opened: {error.strerror}", name) from None


_ENCODING: contextvars.ContextVar[str] = contextvars.ContextVar("encoding", default="utf-8")


def check_encoding(name: str) -> str:
    """``name`` if Python knows that text encoding (``utf-8``, ``cp1252``, ``latin-1``...);
    a :class:`ConfigError` otherwise."""
    try:
        info = codecs.lookup(name)
    except (LookupError, TypeError):
        raise ConfigError(
            f"unknown text encoding {name!r} (for example utf-8, cp1252, latin-1)"
        ) from None
    if not info._is_text_encoding:  # base64, zlib...: bytes-to-bytes codecs
        raise ConfigError(f"{name!r} is not a text encoding")
    if "\n".encode(info.name) != b"\n":
        raise ConfigError(
            f"files in {name} cannot be read line by line (a newline is not the byte 0x0a): "
            f"convert them to UTF-8, e.g. iconv -f {name} -t utf-8 FILE > FILE.utf8"
        )
    return name


@contextlib.contextmanager
def text_encoding(name: str) -> Iterator[None]:
    """Read text files in encoding ``name`` instead of UTF-8 inside this block (a run's
    ``data.encoding``; only line-oriented encodings, where a newline is the byte 0x0a)."""
    token = _ENCODING.set(check_encoding(name))
    try:
        yield
    finally:
        _ENCODING.reset(token)


def _decode_line(raw: bytes, number: int, file_offset: int, name: str) -> str:
    """Returns one physical line decoded strictly (UTF-8 unless :func:`text_encoding` says
    otherwise), without its line ending."""
    content = raw.removesuffix(b"\n").removesuffix(b"\r")
    encoding = _ENCODING.get()
    try:
        text = content.decode(encoding, errors="strict")
    except UnicodeDecodeError as error:
        utf8 = codecs.lookup(encoding).name == "utf-8"
        if not utf8:
            hint = f"the file is not {encoding} (data.encoding)"
        else:
            hint = (
                "the file must be UTF-8: set data.encoding to its encoding (cp1252 and "
                "latin-1 are common for Western European text) or convert it, e.g. "
                "iconv -f cp1252 -t utf-8 FILE > FILE.utf8"
            )
        raise DataError(
            f"invalid {'UTF-8' if utf8 else encoding} byte 0x{content[error.start]:02x} at byte "
            f"offset {error.start} "
            f"of line {number} (byte {file_offset + error.start} of the file); {hint}",
            name,
            number,
        ) from None
    return text.removeprefix("\ufeff") if number == 1 else text


def max_line_bytes() -> int:
    """The longest line read: ``ATTNRNN_MAX_LINE_BYTES`` when set, else 1 MiB."""
    value = os.environ.get(MAX_LINE_BYTES_VARIABLE, "").strip()
    if not value:
        return MAX_LINE_BYTES
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{MAX_LINE_BYTES_VARIABLE} must be a positive number of bytes")
    return int(value)


def read_lines(path: PathLike, max_bytes: int | None = None) -> Iterator[tuple[int, str]]:
    """Yields ``(line_number, text)`` for each line of a UTF-8 text file (``-`` reads
    stdin, ``.gz`` is gunzipped) as it is read, numbered from 1, without line endings;
    bytes that are not UTF-8, or a line longer than ``max_bytes`` bytes (default
    :func:`max_line_bytes`), are a :class:`DataError` naming the line."""
    return _decoded_lines(path, max_bytes)


def _decoded_lines(path: PathLike, max_bytes: int | None = None) -> Iterator[tuple[int, str]]:
    """Yields ``(line_number, text)`` for each physical line, numbered from 1."""
    name = _display_name(path)
    limit = max_line_bytes() if max_bytes is None else max_bytes
    with _open_binary(path) as stream:
        file_offset = 0
        number = 0
        try:
            while raw := stream.readline(limit + 2):  # room for the line ending "\r\n"
                number += 1
                if len(raw.removesuffix(b"\n").removesuffix(b"\r")) > limit:
                    raise DataError(
                        f"the line is longer than {limit} bytes (the limit; "
                        f"{MAX_LINE_BYTES_VARIABLE} sets another)",
                        name,
                        number,
                    )
                yield number, _decode_line(raw, number, file_offset, name)
                file_offset += len(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"cannot be read: {error}", name) from None


def _require_examples(examples: list[TextExample], name: str, note: str = "") -> list[TextExample]:
    """Returns ``examples`` unchanged, or raises when there are none."""
    if not examples:
        raise DataError("contains no examples" + note, name)
    return examples


def _empty_line(number: int, name: str) -> DataError:
    """Returns the error for a blank line."""
    return DataError(f"line {number} is empty", name, number)


# --- TSV / CSV -----------------------------------------------------------------------------


def _table_rows(path: PathLike, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Yields ``(first_line_number, fields)`` per record; TSV is read without quoting."""
    name = _display_name(path)
    lines = (text + "\n" for _, text in _decoded_lines(path))
    if delimiter == "\t":
        reader = csv.reader(lines, delimiter=delimiter, quoting=csv.QUOTE_NONE, strict=True)
    else:
        reader = csv.reader(lines, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, strict=True)
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise DataError(f"malformed row: {error}", name, start) from None
        if not any(field.strip() for field in fields):
            raise _empty_line(start, name)
        yield start, fields


def _column_index(column: str | int, header: list[str] | None, width: int, name: str) -> int:
    """Returns the 0-based index of ``column`` (a header name or a 0-based number)."""
    if isinstance(column, int):
        if not 0 <= column < width:
            raise DataError(
                f"column {column} does not exist; the first row has {width} columns", name, 1
            )
        return column
    if header is None:
        raise DataError(
            f"column {column!r} is named but the file has no header row; "
            "give its 0-based number instead",
            name,
        )
    if column not in header:
        existing = ", ".join(_shortened(repr(field)) for field in header[:_FIELDS_SHOWN])
        if len(header) > _FIELDS_SHOWN:
            existing += f" and {len(header) - _FIELDS_SHOWN} more"
        raise DataError(f"has no column {column!r}; its columns are: {existing}", name, 1)
    return header.index(column)


def _table_example(
    fields: list[str], number: int, width: int, columns: tuple[int, int | None], name: str
) -> TextExample:
    """Returns the example in one table record (``columns`` = text index, label index)."""
    if len(fields) != width:
        raise DataError(
            f"has {len(fields)} columns, expected {width} as on the first row", name, number
        )
    text_index, label_index = columns
    if not fields[text_index].strip():
        raise DataError(f"the text in column {text_index} is empty", name, number)
    label = None
    if label_index is not None:
        label = fields[label_index].strip()
        if not label:
            raise DataError(f"the label in column {label_index} is empty", name, number)
    return TextExample(fields[text_index], label, f"{name}:{number}")


def _table_delimiter(name: str, delimiter: str | None) -> str:
    """Returns the delimiter to use: the given one, else from the extension (tab by default)."""
    if delimiter is None:
        return "," if name.lower().removesuffix(".gz").endswith(".csv") else "\t"
    if len(delimiter) != 1:
        raise DataError(f"the delimiter must be one character, got {delimiter!r}", name)
    return delimiter


def read_table(
    path: PathLike,
    text_column: str | int = "text",
    label_column: str | int | None = "label",
    delimiter: str | None = None,
    header: bool | None = None,
) -> list[TextExample]:
    """Returns the examples of a TSV/CSV file.

    Columns are header names or 0-based numbers. ``header=None`` treats the
    first row as a header exactly when a column is given by name.
    ``label_column=None`` reads unlabeled examples.
    """
    name = _display_name(path)
    rows = _table_rows(path, _table_delimiter(name, delimiter))
    first = next(rows, None)
    if first is None:
        raise DataError("contains no examples", name)
    if header is None:
        header = isinstance(text_column, str) or isinstance(label_column, str)
    columns = first[1] if header else None
    width = len(first[1])
    text_index = _column_index(text_column, columns, width, name)
    label_index = None
    if label_column is not None:
        label_index = _column_index(label_column, columns, width, name)
    records = rows if header else [first, *rows]
    examples = [
        _table_example(fields, number, width, (text_index, label_index), name)
        for number, fields in records
    ]
    return _require_examples(examples, name)


# --- JSON Lines ----------------------------------------------------------------------------


def _json_object(text: str, number: int, name: str) -> dict[str, Any]:
    """Returns the JSON object on one line."""
    if not text.strip():
        raise _empty_line(number, name)
    try:
        value = parse_json(text)
    except InvalidJSON as error:
        where = f" (column {error.column})" if error.column is not None else ""
        hint = "; expected one JSON object per line" if text.lstrip().startswith("[") else ""
        raise DataError(f"{error.problem}{where}{hint}", name, number) from None
    if not isinstance(value, dict):
        raise DataError(
            f"line {number} is a JSON {type(value).__name__}, not an object", name, number
        )
    return value


def _json_field(record: dict[str, Any], field: str, number: int, name: str) -> Any:
    """Returns ``record[field]``, or raises listing (the first few of) the fields that exist."""
    if field not in record:
        shown = [_shortened(repr(key)) for key in list(record)[:_FIELDS_SHOWN]]
        existing = ", ".join(shown) or "none"
        if len(record) > _FIELDS_SHOWN:
            existing += f" and {len(record) - _FIELDS_SHOWN} more"
        raise DataError(f"has no field {field!r}; its fields are: {existing}", name, number)
    return record[field]


def _json_kind(value: Any) -> str:
    """How a JSON value is named in messages: ``null``, ``true``, ``1.5``, ``an array``."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return _shortened(repr(value))


def _shortened(text: str, limit: int = 60) -> str:
    """``text``, cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _json_string(value: str, role: str, number: int, name: str) -> str:
    """``value``, which must be encodable text: a JSON escape of half a surrogate pair
    (``"\\ud800"``) decodes to a string that cannot be written out again."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise DataError(
            f"the {role} holds an unpaired surrogate \\u{ord(value[error.start]):04x} "
            f"at character {error.start + 1}",
            name,
            number,
        ) from None
    return value


def _json_label(value: Any, field: str, number: int, name: str) -> str:
    """Returns a label value (a string or an integer in the file) as a string."""
    if value is None:
        raise DataError(f"the label field {field!r} is null", name, number)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DataError(
            f"the label field {field!r} must be a string or an integer, got {_json_kind(value)}",
            name,
            number,
        )
    label = _json_string(str(value), f"label field {field!r}", number, name).strip()
    if not label:
        raise DataError(f"the label field {field!r} is empty", name, number)
    return label


def read_jsonl(
    path: PathLike, text_field: str = "text", label_field: str | None = "label"
) -> list[TextExample]:
    """Returns the examples of a JSON Lines file (``.gz`` is gunzipped).

    Labels may be strings or integers in the file and are returned as strings;
    ``label_field=None`` reads unlabeled examples.
    """
    name = _display_name(path)
    examples = []
    for number, line in _decoded_lines(path):
        record = _json_object(line, number, name)
        text = _json_field(record, text_field, number, name)
        if not isinstance(text, str):
            raise DataError(f"the text field {text_field!r} is not a string", name, number)
        _json_string(text, f"text field {text_field!r}", number, name)
        if not text.strip():
            raise DataError(f"the text field {text_field!r} is empty", name, number)
        label = None
        if label_field is not None:
            label = _json_label(
                _json_field(record, label_field, number, name), label_field, number, name
            )
        examples.append(TextExample(text, label, f"{name}:{number}"))
    return _require_examples(examples, name)


# --- Stanford Sentiment Treebank -----------------------------------------------------------


def _unescape_leaf(word: str) -> str:
    """Returns an SST leaf with the PTB escapes -LRB-, -RRB-, \\/ and \\* undone."""
    return _PTB_BRACKETS.get(word, word).replace("\\/", "/").replace("\\*", "*")


class _TreeParser:
    """Recursive-descent parser for one SST tree such as ``(3 (2 It) (4 works))``."""

    def __init__(self, line: str, number: int, name: str):
        self.tokens = [(match.group(), match.start()) for match in _TREE_TOKEN.finditer(line)]
        self.position = 0
        self.number, self.name = number, name
        self.words: list[str] = []
        self.nodes: list[tuple[str, int, int]] = []  # (label, first word, end word), pre-order

    def parse(self) -> tuple[list[str], list[tuple[str, int, int]]]:
        """Returns the leaves and the labelled word spans of all nodes, root first."""
        self._node(1)
        if self.position < len(self.tokens):
            self._fail("unexpected text after the tree ends")
        return self.words, self.nodes

    def _node(self, depth: int) -> None:
        """Parses ``(LABEL WORD)`` or ``(LABEL SUBTREE SUBTREE ...)`` at ``depth`` (root 1)."""
        if depth > MAX_TREE_DEPTH:
            self._fail(f"the tree is nested too deeply (more than {MAX_TREE_DEPTH} levels)")
        self._take("'('", lambda token: token == "(")
        label = self._take("a label 0-4", lambda token: token in ("0", "1", "2", "3", "4"))
        index, start = len(self.nodes), len(self.words)
        self.nodes.append((label, start, start))
        if self._peek() == "(":
            while self._peek() == "(":
                self._node(depth + 1)
        else:
            word = self._take("a word or a subtree", lambda token: token not in ("(", ")"))
            self.words.append(_unescape_leaf(word))
        self._take("')'", lambda token: token == ")")
        self.nodes[index] = (label, start, len(self.words))

    def _peek(self) -> str | None:
        """Returns the next token, or ``None`` at the end of the line."""
        return self.tokens[self.position][0] if self.position < len(self.tokens) else None

    def _take(self, expected: str, accepts: Callable[[str], bool]) -> str:
        """Returns the next token after checking it is what ``expected`` describes."""
        token = self._peek()
        if token is None:
            self._fail(f"the line ends where {expected} was expected")
        if not accepts(token):
            self._fail(f"expected {expected}, found {_shortened(repr(token))}")
        self.position += 1
        return token

    def _fail(self, problem: str) -> NoReturn:
        """Raises a DataError for a malformed tree, with the character position."""
        where = ""
        if self.position < len(self.tokens):
            where = f" (character {self.tokens[self.position][1] + 1})"
        raise DataError(f"malformed tree: {problem}{where}", self.name, self.number)


def _sst_label(label: str, granularity: str) -> str | None:
    """Returns the label for ``granularity``, or ``None`` when binary drops it (neutral)."""
    return label if granularity == "fine" else _SST_BINARY_LABELS.get(label)


def read_sst_trees(
    path: PathLike,
    granularity: Literal["binary", "fine"] = "binary",
    phrases: bool = False,
) -> list[TextExample]:
    """Returns the sentences (and, with ``phrases``, every labelled phrase) of SST trees.

    ``fine`` keeps the labels "0".."4"; ``binary`` drops neutral (2) and maps
    0-1 to "0" and 3-4 to "1". Text is the leaves joined by one space, with the
    PTB escapes ``-LRB-``, ``-RRB-``, ``\\/`` and ``\\*`` undone. With
    ``phrases``, each tree yields its root then its subtrees top-down, and a
    (text, label) pair already seen in the file is skipped.
    """
    if granularity not in SST_GRANULARITIES:
        raise ConfigError(
            f"unknown SST granularity {granularity!r}; valid: {', '.join(SST_GRANULARITIES)}"
        )
    name = _display_name(path)
    examples: list[TextExample] = []
    seen: set[tuple[str, str]] = set()
    for number, line in _decoded_lines(path):
        if not line.strip():
            raise _empty_line(number, name)
        words, nodes = _TreeParser(line, number, name).parse()
        for label, start, end in nodes if phrases else nodes[:1]:
            mapped = _sst_label(label, granularity)
            text = " ".join(words[start:end])
            if mapped is None or (text, mapped) in seen:
                continue
            if phrases:
                seen.add((text, mapped))
            examples.append(TextExample(text, mapped, f"{name}:{number}"))
    note = " (binary granularity drops the neutral label 2)" if granularity == "binary" else ""
    return _require_examples(examples, name, note)


# --- plain text and dispatch ---------------------------------------------------------------


def read_plain(path: PathLike, skip_empty_lines: bool = False) -> list[TextExample]:
    """Returns one unlabeled example per line of a text file (``-`` reads stdin).

    An empty line is an error, unless ``skip_empty_lines`` (raw pretraining
    corpora separate paragraphs with them).
    """
    name = _display_name(path)
    examples = []
    for number, line in _decoded_lines(path):
        if not line.strip():
            if skip_empty_lines:
                continue
            raise _empty_line(number, name)
        examples.append(TextExample(line, None, f"{name}:{number}"))
    return _require_examples(examples, name)


def format_from_name(path: PathLike) -> str | None:
    """``jsonl`` for ``.jsonl``/``.json`` and ``table`` for ``.tsv``/``.csv`` (optionally
    ``.gz``): the extensions that say what a file is; None for others (``.txt``...)."""
    suffix = str(path).lower().removesuffix(".gz")
    if suffix.endswith((".jsonl", ".json")):
        return "jsonl"
    if suffix.endswith((".tsv", ".csv")):
        return "table"
    return None


def guess_format(path: PathLike) -> str:
    """Returns the format of ``path`` from its extension, looking inside ``.txt`` files.

    ``.jsonl``/``.json`` (optionally ``.gz``) are jsonl, ``.tsv``/``.csv`` are
    table; anything else is sst when its first non-empty line starts with "("
    and a digit, else plain. ``-`` (stdin) is plain.
    """
    if str(path) == STDIN:
        return "plain"
    named = format_from_name(path)
    if named is not None:
        return named
    for _, line in _decoded_lines(path):
        if line.strip():
            return "sst" if _TREE_START.match(line.lstrip()) else "plain"
    return "plain"


def read_examples(
    path: PathLike,
    format: str = "auto",
    text_field: str | int = "text",
    label_field: str | int | None = "label",
    delimiter: str | None = None,
    header: bool | None = None,
    sst_granularity: Literal["binary", "fine"] = "binary",
    sst_phrases: bool = False,
) -> list[TextExample]:
    """Returns the examples of ``path`` read as ``format`` (see :data:`FORMATS`).

    A file whose extension says what it is (``.jsonl``, ``.tsv``... see
    :func:`format_from_name`) is read that way whatever ``format`` says: a run
    configured for TSV files still reads the JSONL file given to ``evaluate``.
    ``text_field``/``label_field`` name the table columns or JSON fields; sst
    and plain files ignore them (plain files are always unlabeled).
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown data format {format!r}; valid formats: {', '.join(FORMATS)}")
    chosen = format_from_name(path) or (guess_format(path) if format == "auto" else format)
    if chosen == "table":
        return read_table(path, text_field, label_field, delimiter, header)
    if chosen == "jsonl":
        if isinstance(text_field, int) or isinstance(label_field, int):
            raise DataError(
                "JSON fields are named; a column number only applies to tables", str(path)
            )
        return read_jsonl(path, text_field, label_field)
    if chosen == "sst":
        return read_sst_trees(path, sst_granularity, sst_phrases)
    return read_plain(path)
