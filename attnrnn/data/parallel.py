"""Readers that turn parallel (translation, summarization) data into :class:`ParallelExample` lists.

Four layouts are understood:

- ``files``: two line-aligned files, one sentence per line (``train.de`` and
  ``train.en`` of Multi30k, for example); line N of one translates line N of
  the other.
- ``table``: TSV or CSV with a source column and a target column.
- ``jsonl``: one JSON object per line with a source and a target field,
  optionally gzipped.
- ``plain``: one source per line and no targets (input to ``attnrnn
  translate``); ``-`` reads standard input.

Files are decoded exactly as in :mod:`attnrnn.data.readers` (strict UTF-8, one
physical line at a time, ``.gz`` gunzipped), and every problem is a
:class:`~attnrnn.errors.DataError` naming the file and the 1-based line. Texts
keep their inner spaces but lose surrounding whitespace; an empty text is an
error.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnrnn.data.readers import (
    STDIN,
    PathLike,
    _column_index,
    _decoded_lines,
    _display_name,
    _empty_line,
    _json_field,
    _json_object,
    _json_string,
    _table_delimiter,
    _table_rows,
    format_from_name,
)
from attnrnn.errors import ConfigError, DataError

if TYPE_CHECKING:
    from attnrnn.data.alignments import Alignment

PARALLEL_FORMATS = ("auto", "files", "table", "jsonl", "plain")


@dataclass(frozen=True)
class ParallelExample:
    """A source text, its target (``None`` when unlabeled) and its ``"path:line"`` origin.

    For two line-aligned files the origin is the source file's path and line.
    ``alignment``: a reference word alignment of the pair (guided alignment training),
    attached by the translation task when ``data.alignments`` is given.
    """

    source: str
    target: str | None
    origin: str
    alignment: Alignment | None = None


def _require_examples(examples: list[ParallelExample], name: str) -> list[ParallelExample]:
    """Returns ``examples`` unchanged, or raises when there are none."""
    if not examples:
        raise DataError("contains no examples", name)
    return examples


# --- two line-aligned files ----------------------------------------------------------------


def _length_mismatch(
    shorter: str, shorter_count: int, longer: str, longer_count: int, first_unpaired: str
) -> DataError:
    """Returns the error for two files of different length, located at the first unpaired line."""
    line = shorter_count + 1
    hint = ""
    if not first_unpaired.strip():
        hint = f" (line {line} of {longer} is empty: a stray blank line at the end?)"
    return DataError(
        f"{shorter} ends after line {shorter_count} but {longer} has {longer_count} lines; "
        f"parallel files must hold one sentence per line, aligned line by line{hint}",
        longer,
        line,
    )


def read_parallel_files(source_path: PathLike, target_path: PathLike) -> list[ParallelExample]:
    """Returns the sentence pairs of two line-aligned files (either may be ``-`` for stdin).

    Both files must have the same number of lines and no empty line.
    """
    source_name, target_name = _display_name(source_path), _display_name(target_path)
    if source_name == target_name == _display_name(STDIN):
        raise DataError("the source and the target cannot both be read from standard input")
    source_lines, target_lines = _decoded_lines(source_path), _decoded_lines(target_path)
    examples: list[ParallelExample] = []
    for source_item, target_item in zip_longest(source_lines, target_lines):
        if target_item is None:
            count = source_item[0] + sum(1 for _ in source_lines)
            raise _length_mismatch(target_name, len(examples), source_name, count, source_item[1])
        if source_item is None:
            count = target_item[0] + sum(1 for _ in target_lines)
            raise _length_mismatch(source_name, len(examples), target_name, count, target_item[1])
        (number, source), (_, target) = source_item, target_item
        if not source.strip():
            raise _empty_line(number, source_name)
        if not target.strip():
            raise _empty_line(number, target_name)
        examples.append(ParallelExample(source.strip(), target.strip(), f"{source_name}:{number}"))
    return _require_examples(examples, source_name)


def language_pair_paths(
    directory: PathLike, split: str, source_language: str, target_language: str
) -> tuple[Path, Path]:
    """Returns ``directory/split.source_language`` and ``directory/split.target_language``.

    This is the plain Multi30k / WMT layout (``train.de`` and ``train.en``).
    Raises when either file is missing, listing the files of ``split`` that exist.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise DataError("no such directory", str(folder))
    paths = (folder / f"{split}.{source_language}", folder / f"{split}.{target_language}")
    missing = [path for path in paths if not path.is_file()]
    if missing:
        present = sorted(path.name for path in folder.glob(f"{split}.*") if path.is_file())
        found = ", ".join(present) if present else "none"
        raise DataError(
            f"no such file (the {split!r} files in {folder} are: {found})", str(missing[0])
        )
    return paths


# --- TSV / CSV -----------------------------------------------------------------------------


def _cell_text(fields: list[str], index: int, role: str, number: int, name: str) -> str:
    """Returns the stripped text in column ``index``, or raises when it is empty."""
    text = fields[index].strip()
    if not text:
        raise DataError(f"the {role} in column {index} is empty", name, number)
    return text


def _table_pair(
    fields: list[str], number: int, width: int, columns: tuple[int, int | None], name: str
) -> ParallelExample:
    """Returns the pair in one table record (``columns`` = source index, target index)."""
    if len(fields) != width:
        raise DataError(
            f"has {len(fields)} columns, expected {width} as on the first row", name, number
        )
    source_index, target_index = columns
    source = _cell_text(fields, source_index, "source", number, name)
    target = None
    if target_index is not None:
        target = _cell_text(fields, target_index, "target", number, name)
    return ParallelExample(source, target, f"{name}:{number}")


def read_parallel_table(
    path: PathLike,
    source_field: str | int = "source",
    target_field: str | int | None = "target",
    delimiter: str | None = None,
    header: bool | None = None,
) -> list[ParallelExample]:
    """Returns the pairs of a TSV/CSV file (tab unless the name ends in ``.csv``).

    Fields are header names or 0-based column numbers. ``header=None`` treats
    the first row as a header exactly when a field is given by name.
    ``target_field=None`` reads sources only (targets ``None``).
    """
    name = _display_name(path)
    rows = _table_rows(path, _table_delimiter(name, delimiter))
    first = next(rows, None)
    if first is None:
        raise DataError("contains no examples", name)
    if header is None:
        header = isinstance(source_field, str) or isinstance(target_field, str)
    columns = first[1] if header else None
    width = len(first[1])
    source_index = _column_index(source_field, columns, width, name)
    target_index = None
    if target_field is not None:
        target_index = _column_index(target_field, columns, width, name)
    records = rows if header else [first, *rows]
    examples = [
        _table_pair(fields, number, width, (source_index, target_index), name)
        for number, fields in records
    ]
    return _require_examples(examples, name)


# --- JSON Lines ----------------------------------------------------------------------------


def _json_text(record: dict[str, Any], field: str, number: int, name: str) -> str:
    """Returns the stripped string in ``record[field]``; raises if absent, not text or empty."""
    value = _json_field(record, field, number, name)
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        raise DataError(f"the field {field!r} must be a string, got {kind}", name, number)
    _json_string(value, f"field {field!r}", number, name)
    if not value.strip():
        raise DataError(f"the field {field!r} is empty", name, number)
    return value.strip()


def read_parallel_jsonl(
    path: PathLike, source_field: str = "source", target_field: str | None = "target"
) -> list[ParallelExample]:
    """Returns the pairs of a JSON Lines file (``.gz`` is gunzipped).

    ``target_field=None`` reads sources only (targets ``None``).
    """
    name = _display_name(path)
    examples = []
    for number, line in _decoded_lines(path):
        record = _json_object(line, number, name)
        source = _json_text(record, source_field, number, name)
        target = None
        if target_field is not None:
            target = _json_text(record, target_field, number, name)
        examples.append(ParallelExample(source, target, f"{name}:{number}"))
    return _require_examples(examples, name)


# --- sources only and dispatch -------------------------------------------------------------


def read_sources(path: PathLike) -> list[ParallelExample]:
    """Returns one source per line of a text file (``-`` reads stdin), with targets ``None``."""
    name = _display_name(path)
    examples = []
    for number, line in _decoded_lines(path):
        if not line.strip():
            raise _empty_line(number, name)
        examples.append(ParallelExample(line.strip(), None, f"{name}:{number}"))
    return _require_examples(examples, name)


def _guess_parallel_format(path: PathLike) -> str:
    """Returns jsonl or table from the extension of ``path``, or raises explaining what to pass."""
    name = _display_name(path)
    named = format_from_name(path)
    if named is not None:
        return named
    raise DataError(
        "cannot tell the parallel format from the name; give a target file for two "
        "line-aligned files, or name a .jsonl/.json/.tsv/.csv file, or pass format "
        "'table', 'jsonl' or 'plain' (sources only)",
        name,
    )


def read_parallel(
    source: PathLike,
    target: PathLike | None = None,
    format: str = "auto",
    source_field: str | int = "source",
    target_field: str | int | None = "target",
    delimiter: str | None = None,
    header: bool | None = None,
) -> list[ParallelExample]:
    """Returns the pairs read from ``source`` (and ``target``) as ``format``.

    With a ``target`` path the two are line-aligned files (format ``auto`` or
    ``files``). Otherwise ``auto`` picks jsonl for ``.jsonl``/``.json`` and
    table for ``.tsv``/``.csv`` (optionally ``.gz``); ``plain`` reads sources
    only; a ``.jsonl``... file is read by its extension whatever ``format`` says.
    ``source_field``/``target_field`` name table columns or JSON fields.
    """
    if format not in PARALLEL_FORMATS:
        raise ConfigError(
            f"unknown parallel data format {format!r}; valid formats: {', '.join(PARALLEL_FORMATS)}"
        )
    if target is not None:
        if format not in ("auto", "files"):
            raise ConfigError(f"a target file is only read with format 'files', not {format!r}")
        return read_parallel_files(source, target)
    if format == "files":
        raise ConfigError("format 'files' needs a target file beside the source file")
    # An extension that says what the file is wins over the configured format.
    chosen = format_from_name(source) or (
        _guess_parallel_format(source) if format == "auto" else format
    )
    if chosen == "table":
        return read_parallel_table(source, source_field, target_field, delimiter, header)
    if chosen == "jsonl":
        if isinstance(source_field, int) or isinstance(target_field, int):
            raise DataError(
                "JSON fields are named; a column number only applies to tables",
                _display_name(source),
            )
        return read_parallel_jsonl(source, source_field, target_field)
    return read_sources(source)
