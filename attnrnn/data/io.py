"""JSON documents and file paths read with bounded time and memory, and every failure
an :class:`~attnrnn.errors.AttnrnnError` that names the file.

- :func:`parse_json`: ``json.loads`` whose failures (invalid JSON, nesting too deep for
  the parser, an integer longer than Python converts) are one :class:`InvalidJSON`.
- :func:`read_json`: a whole JSON file of a run directory (``tokenizer.json``,
  ``vocab.json``, ``labels.json``, ``run.json``...): missing, not a regular file, too
  large, not UTF-8, not JSON or of the wrong kind is a :class:`RunError` (or the error
  class the caller names) that names the file.
- :func:`file_inside`: a path that a run directory names (a tokenizer's model file),
  refused unless it stays inside the directory once symbolic links are followed.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from attnrnn.errors import AttnrnnError, DataError, RunError

# The largest JSON file read whole (a 50,000-token vocabulary is about 1 MB).
MAX_JSON_FILE_BYTES = 256 << 20

_KINDS: dict[type, str] = {dict: "a JSON object", list: "a JSON array", str: "a JSON string"}


class InvalidJSON(ValueError):
    """Text that is not one JSON document; ``line``/``column`` (from 1) where known."""

    def __init__(self, problem: str, line: int | None = None, column: int | None = None):
        super().__init__(problem)
        self.problem, self.line, self.column = problem, line, column


def parse_json(text: str) -> Any:
    """The JSON value in ``text``; any failure is an :class:`InvalidJSON` with a short
    reason (never a ``RecursionError`` or the ``ValueError`` of a 5,000-digit integer)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidJSON(f"invalid JSON: {error.msg}", error.lineno, error.colno) from None
    except RecursionError:
        raise InvalidJSON("invalid JSON: arrays or objects nested too deeply") from None
    except ValueError:  # int("1" * 5000): Python's limit on integer digits
        limit = sys.get_int_max_str_digits()
        raise InvalidJSON(f"invalid JSON: an integer with more than {limit} digits") from None


def _error(kind: type[AttnrnnError], path: Path, problem: str, line: int | None = None):
    """``kind`` naming ``path`` (and ``line``) before ``problem``."""
    if issubclass(kind, DataError):
        return kind(problem, str(path), line)
    where = f"{path}:{line}" if line is not None else str(path)
    return kind(f"{where}: {problem}")


def _read_regular_file(path: Path, what: str, error: type[AttnrnnError], limit: int) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``limit`` bytes.

    The file is opened without blocking, so a FIFO put in its place cannot hang the
    reader, and checked on the open descriptor.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise _error(error, path, f"{what} file not found") from None
    except (OSError, ValueError) as problem:
        reason = getattr(problem, "strerror", None) or problem
        raise _error(error, path, f"cannot open the {what} file: {reason}") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise _error(error, path, f"the {what} file is not a regular file")
        if status.st_size > limit:
            raise _error(error, path, f"the {what} file is larger than {limit} bytes")
        with os.fdopen(os.dup(descriptor), "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as problem:
        raise _error(error, path, f"cannot read the {what} file: {problem.strerror}") from None
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise _error(error, path, f"the {what} file is larger than {limit} bytes")
    return data


def read_json(
    path: str | os.PathLike[str],
    what: str,
    expected: type = dict,
    error: type[AttnrnnError] = RunError,
    limit: int = MAX_JSON_FILE_BYTES,
) -> Any:
    """The JSON document in ``path``, which must be ``expected`` (dict, list or str) at
    the top level; ``what`` names the file in messages ("vocabulary").

    Every problem is one ``error`` naming the file (and the line, for invalid JSON).
    """
    file = Path(path)
    data = _read_regular_file(file, what, error, limit)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as problem:
        line = data.count(b"\n", 0, problem.start) + 1
        raise _error(
            error,
            file,
            f"the {what} file is not UTF-8 (byte 0x{data[problem.start]:02x} "
            f"at byte offset {problem.start})",
            line,
        ) from None
    try:
        value = parse_json(text)
    except InvalidJSON as problem:
        column = f" (column {problem.column})" if problem.column is not None else ""
        raise _error(error, file, f"{problem.problem}{column}", problem.line) from None
    if not isinstance(value, expected):
        wanted = _KINDS.get(expected, expected.__name__)
        found = "null" if value is None else type(value).__name__
        raise _error(error, file, f"the {what} file must hold {wanted}, not {found}")
    return value


def read_run_json(directory: Path, name: str, what: str, expected: type = dict) -> Any:
    """:func:`read_json` of the file ``name`` of a run directory, which must stay inside
    it once symbolic links are followed; every problem is a :class:`RunError`."""
    return read_json(file_inside(directory, name, f"{what} file"), what, expected)


def file_inside(
    directory: Path, name: str, what: str, error: type[AttnrnnError] = RunError
) -> Path:
    """``directory / name``, when ``name`` is a relative path that stays inside
    ``directory`` once symbolic links are followed; anything else (an absolute path,
    ``..``, a link leading out) is an ``error`` naming ``what``."""
    candidate = Path(name)
    if not name or candidate.is_absolute() or ".." in candidate.parts:
        raise _error(
            error, directory, f"the {what} {name!r} is not a path inside the run directory"
        )
    try:
        root = directory.resolve()
        resolved = (directory / candidate).resolve()
    except (OSError, RuntimeError, ValueError) as problem:  # a link loop, a NUL byte
        problem_text = f"the {what} {name!r} cannot be resolved: {problem}"
        raise _error(error, directory, problem_text) from None
    if not resolved.is_relative_to(root):
        raise _error(
            error,
            directory,
            f"the {what} {name!r} leads outside the run directory (to {resolved})",
        )
    return directory / candidate
