"""Tests of the parallel-data readers: every layout, and every user-data error."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

import pytest

from attnrnn.data.parallel import (
    ParallelExample,
    language_pair_paths,
    read_parallel,
    read_parallel_files,
    read_parallel_jsonl,
    read_parallel_table,
    read_sources,
)
from attnrnn.errors import ConfigError, DataError


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    """Returns the path of a new file ``name`` holding ``content`` (text as UTF-8)."""
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def pairs(examples: list[ParallelExample]) -> list[tuple[str, str | None]]:
    """Returns the (source, target) pairs of ``examples``."""
    return [(example.source, example.target) for example in examples]


def assert_data_error(
    error: pytest.ExceptionInfo[DataError], path: Path, line: int | None, part: str
) -> None:
    """Checks that a DataError names the file, the line, and contains ``part``."""
    message = str(error.value)
    assert path.name in message
    assert part in message, message
    assert error.value.line == line
    if line is not None:
        assert f"{path.name}:{line}:" in message


def jsonl(*records: object) -> str:
    """Returns ``records`` as JSON Lines text."""
    return "".join(json.dumps(record) + "\n" for record in records)


# --- two line-aligned files ----------------------------------------------------------------


def test_files_pair_lines_and_strip_only_surrounding_whitespace(tmp_path):
    source = write(tmp_path, "train.de", "ein  Hund\r\n  zwei Katzen \n")
    target = write(tmp_path, "train.en", "a  dog\r\ntwo cats")
    examples = read_parallel_files(source, target)
    assert pairs(examples) == [("ein  Hund", "a  dog"), ("zwei Katzen", "two cats")]
    assert examples[1].origin == f"{source}:2"


@pytest.mark.parametrize(
    ("source_text", "target_text", "longer", "counts"),
    [
        ("a\nb\nc\n", "x\n", "train.de", ("train.en ends after line 1", "train.de has 3 lines")),
        ("a\n", "x\ny\n", "train.en", ("train.de ends after line 1", "train.en has 2 lines")),
    ],
)
def test_files_with_different_line_counts(tmp_path, source_text, target_text, longer, counts):
    source = write(tmp_path, "train.de", source_text)
    target = write(tmp_path, "train.en", target_text)
    with pytest.raises(DataError) as error:
        read_parallel_files(source, target)
    assert_data_error(error, tmp_path / longer, 2, counts[0])
    assert counts[1] in str(error.value)


def test_files_trailing_blank_line_is_pointed_out(tmp_path):
    source = write(tmp_path, "s.txt", "a\nb\n\n")
    target = write(tmp_path, "t.txt", "x\ny\n")
    with pytest.raises(DataError) as error:
        read_parallel_files(source, target)
    assert_data_error(error, source, 3, "line 3 of")
    assert "blank line" in str(error.value)


@pytest.mark.parametrize("empty_in", ["source", "target"])
def test_files_with_an_empty_line(tmp_path, empty_in):
    lines = {"source": "a\nb\nc\n", "target": "x\ny\nz\n"}
    lines[empty_in] = lines[empty_in].replace("b\n", " \t\n").replace("y\n", "\n")
    source = write(tmp_path, "src.txt", lines["source"])
    target = write(tmp_path, "tgt.txt", lines["target"])
    with pytest.raises(DataError) as error:
        read_parallel_files(source, target)
    assert_data_error(error, source if empty_in == "source" else target, 2, "line 2 is empty")


def test_files_with_invalid_utf8(tmp_path):
    source = write(tmp_path, "src.txt", "fine\n")
    target = write(tmp_path, "tgt.txt", b"caf\xe9\n")
    with pytest.raises(DataError) as error:
        read_parallel_files(source, target)
    assert_data_error(error, target, 1, "invalid UTF-8 byte 0xe9")


def test_files_read_stdin_for_one_side(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"hallo\nwelt\n")))
    target = write(tmp_path, "tgt.txt", "hello\nworld\n")
    examples = read_parallel("-", target)
    assert pairs(examples) == [("hallo", "hello"), ("welt", "world")]
    assert examples[0].origin == "<stdin>:1"


def test_files_cannot_both_be_stdin():
    with pytest.raises(DataError, match="both"):
        read_parallel_files("-", "-")


def test_empty_files_have_no_examples(tmp_path):
    source, target = write(tmp_path, "s.txt", ""), write(tmp_path, "t.txt", "")
    with pytest.raises(DataError) as error:
        read_parallel_files(source, target)
    assert_data_error(error, source, None, "contains no examples")


def test_language_pair_paths(tmp_path):
    source, target = write(tmp_path, "train.de", "a\n"), write(tmp_path, "train.en", "x\n")
    assert language_pair_paths(tmp_path, "train", "de", "en") == (source, target)
    assert pairs(read_parallel(*language_pair_paths(tmp_path, "train", "de", "en"))) == [("a", "x")]


def test_language_pair_paths_names_the_missing_file(tmp_path):
    write(tmp_path, "train.de", "a\n")
    write(tmp_path, "train.fr", "x\n")
    with pytest.raises(DataError) as error:
        language_pair_paths(tmp_path, "train", "de", "en")
    assert_data_error(error, tmp_path / "train.en", None, "train.de, train.fr")
    with pytest.raises(DataError, match="no such directory"):
        language_pair_paths(tmp_path / "absent", "train", "de", "en")


# --- tables -------------------------------------------------------------------------------


def test_tsv_with_header_names(tmp_path):
    path = write(tmp_path, "pairs.tsv", "id\ten\tde\n1\t a dog \tein Hund\n2\tcats\tKatzen\n")
    examples = read_parallel_table(path, "de", "en")
    assert pairs(examples) == [("ein Hund", "a dog"), ("Katzen", "cats")]
    assert examples[0].origin == f"{path}:2"


def test_csv_by_index_without_header_and_quoted_commas(tmp_path):
    path = write(tmp_path, "pairs.csv", 'an article,its summary\n"x, y",z\n')
    examples = read_parallel(path, source_field=0, target_field=1)
    assert pairs(examples) == [("an article", "its summary"), ("x, y", "z")]


def test_table_without_target(tmp_path):
    path = write(tmp_path, "input.tsv", "source\nhallo\n")
    assert pairs(read_parallel(path, target_field=None)) == [("hallo", None)]


def test_table_errors_name_file_and_line(tmp_path):
    path = write(tmp_path, "pairs.tsv", "source\ttarget\na\tb\nc\t \n")
    with pytest.raises(DataError) as error:
        read_parallel(path)
    assert_data_error(error, path, 3, "the target in column 1 is empty")
    path = write(tmp_path, "missing.tsv", "src\ttgt\na\tb\n")
    with pytest.raises(DataError) as error:
        read_parallel(path)
    assert_data_error(error, path, 1, "has no column 'source'")


# --- JSON Lines ----------------------------------------------------------------------------


def test_jsonl_pairs(tmp_path):
    path = write(tmp_path, "sum.jsonl", jsonl({"document": " long text ", "summary": "short"}))
    examples = read_parallel(path, source_field="document", target_field="summary")
    assert pairs(examples) == [("long text", "short")]
    assert examples[0].origin == f"{path}:1"


def test_gzipped_jsonl(tmp_path):
    path = tmp_path / "train.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as file:
        file.write(
            jsonl({"source": "Grüße", "target": "greetings"}, {"source": "a", "target": "b"})
        )
    assert pairs(read_parallel(path)) == [("Grüße", "greetings"), ("a", "b")]


def test_jsonl_without_target(tmp_path):
    path = write(tmp_path, "input.json", jsonl({"source": "hallo"}))
    assert pairs(read_parallel_jsonl(path, target_field=None)) == [("hallo", None)]


@pytest.mark.parametrize(
    ("content", "part"),
    [
        ('{"source": "a", "target": "b"\n', "invalid JSON"),
        (jsonl({"source": "a"}), "has no field 'target'; its fields are: 'source'"),
        (jsonl({"source": "a", "target": 3}), "the field 'target' must be a string, got int"),
        (jsonl({"source": None, "target": "b"}), "the field 'source' must be a string, got null"),
        (jsonl({"source": "  ", "target": "b"}), "the field 'source' is empty"),
        ("\n", "line 2 is empty"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path, content, part):
    path = write(tmp_path, "bad.jsonl", jsonl({"source": "ok", "target": "ok"}) + content)
    with pytest.raises(DataError) as error:
        read_parallel(path)
    assert_data_error(error, path, 2, part)


def test_jsonl_fields_cannot_be_numbers(tmp_path):
    path = write(tmp_path, "a.jsonl", jsonl({"source": "a", "target": "b"}))
    with pytest.raises(DataError, match="column number"):
        read_parallel(path, source_field=0)


# --- sources only and dispatch -------------------------------------------------------------


def test_read_sources_from_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b" eins \nzwei\n")))
    examples = read_sources("-")
    assert pairs(examples) == [("eins", None), ("zwei", None)]
    assert examples[1].origin == "<stdin>:2"


def test_read_sources_empty_line(tmp_path):
    path = write(tmp_path, "input.txt", "eins\n\nzwei\n")
    with pytest.raises(DataError) as error:
        read_parallel(path, format="plain")
    assert_data_error(error, path, 2, "line 2 is empty")


def test_unknown_format_lists_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match="valid formats: auto, files, table, jsonl, plain"):
        read_parallel(tmp_path / "a.tsv", format="xml")


def test_auto_format_needs_a_known_extension(tmp_path):
    path = write(tmp_path, "train.de", "a\n")
    with pytest.raises(DataError) as error:
        read_parallel(path)
    assert_data_error(error, path, None, "give a target file")


def test_format_and_target_must_agree(tmp_path):
    source, target = write(tmp_path, "a.tsv", "x\n"), write(tmp_path, "b.tsv", "y\n")
    with pytest.raises(ConfigError, match="only read with format 'files'"):
        read_parallel(source, target, format="table")
    with pytest.raises(ConfigError, match="needs a target file"):
        read_parallel(source, format="files")
    assert pairs(read_parallel(source, target, format="files")) == [("x", "y")]
