"""Tests of the data file readers: every format, and every user-data error."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

import pytest

from attnrnn.data.readers import (
    TextExample,
    guess_format,
    read_examples,
    read_jsonl,
    read_plain,
    read_sst_trees,
    read_table,
)
from attnrnn.errors import ConfigError, DataError

TREE = "(3 (2 It) (4 (2 's) (4 (3 good) (2 .))))"


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    """Returns the path of a new file ``name`` holding ``content`` (text as UTF-8)."""
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def pairs(examples: list[TextExample]) -> list[tuple[str, str | None]]:
    """Returns the (text, label) pairs of ``examples``."""
    return [(example.text, example.label) for example in examples]


def assert_data_error(
    error: pytest.ExceptionInfo[DataError], path: Path, line: int | None, part: str
):
    """Checks that a DataError names the file, the line, and contains ``part``."""
    message = str(error.value)
    assert path.name in message
    assert part in message, message
    assert error.value.line == line
    if line is not None:
        assert f"{path.name}:{line}:" in message


# --- tables -------------------------------------------------------------------------------


def test_tsv_with_header_keeps_quotes_literally(tmp_path):
    path = write(tmp_path, "train.tsv", 'sentence\tlabel\nsays "hi\t1\n"quoted" text \t0\n')
    examples = read_table(path, "sentence")
    assert pairs(examples) == [('says "hi', "1"), ('"quoted" text ', "0")]
    assert examples[1].origin == f"{path}:3"


def test_table_header_columns_in_any_order(tmp_path):
    path = write(tmp_path, "data.tsv", "label\tid\ttext\npos\t7\tnice film\n")
    assert pairs(read_table(path)) == [("nice film", "pos")]


def test_table_integer_columns_without_header(tmp_path):
    path = write(tmp_path, "data.tsv", "1\tgood\n0\tbad\n")
    assert pairs(read_table(path, text_column=1, label_column=0)) == [("good", "1"), ("bad", "0")]


def test_table_integer_columns_skip_an_explicit_header(tmp_path):
    path = write(tmp_path, "data.tsv", "label\tsentence\n1\tgood\n")
    examples = read_table(path, text_column=1, label_column=0, header=True)
    assert pairs(examples) == [("good", "1")]


def test_unlabeled_table(tmp_path):
    path = write(tmp_path, "test.tsv", "index\tsentence\n0\tfirst\n1\tsecond\n")
    assert pairs(read_table(path, "sentence", None)) == [("first", None), ("second", None)]


def test_csv_quoting_and_multiline_fields(tmp_path):
    content = 'text,label\n"a, b ""c""",1\n"two\nlines",0\nlast,1\n'
    examples = read_table(write(tmp_path, "data.csv", content))
    assert pairs(examples) == [('a, b "c"', "1"), ("two\nlines", "0"), ("last", "1")]
    assert [example.origin.rsplit(":", 1)[1] for example in examples] == ["2", "3", "5"]


def test_table_crlf_and_byte_order_mark(tmp_path):
    path = write(tmp_path, "data.tsv", "\ufefftext\tlabel\r\nhello\t1\r\n")
    assert pairs(read_table(path)) == [("hello", "1")]


def test_explicit_delimiter(tmp_path):
    path = write(tmp_path, "data.txt", "text|label\nhello|1\n")
    assert pairs(read_table(path, delimiter="|")) == [("hello", "1")]


# --- JSON Lines ---------------------------------------------------------------------------


def test_jsonl_labels_become_strings(tmp_path):
    lines = [{"id": 1, "label": 0, "text": "bad"}, {"label": "pos", "text": "good"}]
    path = write(tmp_path, "data.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    assert pairs(read_jsonl(path)) == [("bad", "0"), ("good", "pos")]


def test_gzipped_jsonl(tmp_path):
    path = tmp_path / "train.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as stream:
        stream.write('{"id": 0, "label": 1, "text": "caf\u00e9 <br />"}\n')
    examples = read_examples(path)
    assert pairs(examples) == [("caf\u00e9 <br />", "1")]
    assert examples[0].origin == f"{path}:1"


def test_jsonl_other_fields_and_unlabeled(tmp_path):
    path = write(tmp_path, "data.jsonl", '{"review": "fine", "stars": 5}\n')
    assert pairs(read_jsonl(path, "review", "stars")) == [("fine", "5")]
    assert pairs(read_jsonl(path, "review", None)) == [("fine", None)]


# --- SST trees ----------------------------------------------------------------------------


def test_sst_binary_and_fine_sentences(tmp_path):
    trees = [TREE, "(2 (2 Just) (2 okay))", "(0 (1 (0 Awful) (2 film)) (2 .))"]
    path = write(tmp_path, "train.txt", "\n".join(trees) + "\n")
    assert pairs(read_sst_trees(path)) == [("It 's good .", "1"), ("Awful film .", "0")]
    assert [example.label for example in read_sst_trees(path, "fine")] == ["3", "2", "0"]
    assert read_sst_trees(path)[1].origin == f"{path}:3"


def test_sst_phrases_deduplicated_and_neutral_dropped(tmp_path):
    path = write(tmp_path, "train.txt", f"{TREE}\n(4 (3 good) (4 (4 fun) (2 !)))\n")
    expected = [("It 's good .", "1"), ("'s good .", "1"), ("good .", "1"), ("good", "1")]
    expected += [("good fun !", "1"), ("fun !", "1"), ("fun", "1")]
    assert pairs(read_sst_trees(path, phrases=True)) == expected


def test_sst_fine_phrases_keep_neutral(tmp_path):
    path = write(tmp_path, "train.txt", "(2 (2 a) (3 b))\n")
    examples = read_sst_trees(path, "fine", phrases=True)
    assert pairs(examples) == [("a b", "2"), ("a", "2"), ("b", "3")]


def test_sst_escaped_brackets_and_slashes(tmp_path):
    tree = r"(3 (2 -LRB-) (3 (3 co-writer\/director) (2 (2 \*) (2 -RRB-))))"
    path = write(tmp_path, "dev.txt", tree + "\n")
    assert pairs(read_sst_trees(path, "fine")) == [("( co-writer/director * )", "3")]


def test_sst_splits_leaves_on_ascii_space_only(tmp_path):
    path = write(tmp_path, "dev.txt", "(3 (3 8\u00a01/2) (2 Women))\n")
    assert read_sst_trees(path)[0].text == "8\u00a01/2 Women"


@pytest.mark.parametrize(
    ("tree", "problem"),
    [
        ("(3 (2 a) (3 b)", "line ends"),
        ("(3 (2 a) (3 b)))", "after the tree ends"),
        ("(7 (2 a) (3 b))", "label 0-4"),
        ("(3 (2 a b))", "expected ')'"),
        ("(3 (2 a) word)", "expected ')'"),
        ("(3 ())", "label 0-4"),
        ("3 (2 a)", "expected '('"),
    ],
)
def test_malformed_trees(tmp_path, tree, problem):
    path = write(tmp_path, "bad.txt", f"{TREE}\n{tree}\n")
    with pytest.raises(DataError) as error:
        read_sst_trees(path)
    assert_data_error(error, path, 2, "malformed tree")
    assert problem in str(error.value)


def test_deeply_nested_tree_is_an_error_not_a_crash(tmp_path):
    path = write(tmp_path, "deep.txt", "(2 " * 5000 + "(3 a)" + ")" * 5000 + "\n")
    with pytest.raises(DataError) as error:
        read_sst_trees(path)
    assert_data_error(error, path, 1, "nested too deeply")


def test_sst_all_neutral_is_empty_in_binary(tmp_path):
    path = write(tmp_path, "neutral.txt", "(2 (2 a) (2 b))\n")
    with pytest.raises(DataError) as error:
        read_sst_trees(path)
    assert_data_error(error, path, None, "contains no examples")


# --- plain text, stdin and dispatch -------------------------------------------------------


def test_plain_text_lines(tmp_path):
    path = write(tmp_path, "input.txt", "first text\n  second (with brackets)\n")
    examples = read_plain(path)
    assert pairs(examples) == [("first text", None), ("  second (with brackets)", None)]


def test_plain_text_without_final_newline(tmp_path):
    assert pairs(read_plain(write(tmp_path, "input.txt", "only"))) == [("only", None)]


def test_plain_reads_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"one\ntwo\n")))
    examples = read_examples("-")
    assert pairs(examples) == [("one", None), ("two", None)]
    assert examples[1].origin == "<stdin>:2"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.jsonl", '{"text": "x", "label": 1}\n', "jsonl"),
        ("a.json", '{"text": "x", "label": 1}\n', "jsonl"),
        ("a.tsv", "text\tlabel\nx\t1\n", "table"),
        ("a.CSV", "text,label\nx,1\n", "table"),
        ("a.txt", f"\n{TREE}\n", "sst"),
        ("a.txt", "(not a tree)\n", "plain"),
        ("no_extension", "hello\n", "plain"),
    ],
)
def test_guess_format(tmp_path, name, content, expected):
    assert guess_format(write(tmp_path, name, content)) == expected


def test_read_examples_auto_dispatch(tmp_path):
    assert pairs(read_examples(write(tmp_path, "a.txt", TREE + "\n"))) == [("It 's good .", "1")]
    phrases = read_examples(write(tmp_path, "b.txt", TREE + "\n"), sst_phrases=True)
    assert len(phrases) == 4
    fine = read_examples(write(tmp_path, "c.txt", TREE + "\n"), sst_granularity="fine")
    assert fine[0].label == "3"
    assert pairs(read_examples(write(tmp_path, "d.txt", "hi\n"))) == [("hi", None)]
    table = read_examples(
        write(tmp_path, "e.tsv", "s\tl\nhi\t1\n"), text_field="s", label_field="l"
    )
    assert pairs(table) == [("hi", "1")]


def test_read_examples_forced_format(tmp_path):
    path = write(tmp_path, "data.txt", "text\tlabel\nhi\t1\n")
    assert pairs(read_examples(path, format="table")) == [("hi", "1")]
    assert len(read_examples(path, format="plain")) == 2


def test_unknown_format_lists_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match="auto, table, jsonl, sst, plain"):
        read_examples(write(tmp_path, "a.txt", "hi\n"), format="xml")


def test_unknown_sst_granularity(tmp_path):
    with pytest.raises(ConfigError, match="binary, fine"):
        read_sst_trees(write(tmp_path, "a.txt", TREE + "\n"), "coarse")  # type: ignore[arg-type]


# --- errors common to every format --------------------------------------------------------

FORMAT_FILES = [("data.tsv", "table"), ("data.jsonl", "jsonl"), ("data.txt", "sst")]
FORMAT_FILES += [("data.txt", "plain"), ("data.csv", "table")]


@pytest.mark.parametrize(("name", "format"), FORMAT_FILES)
def test_missing_file(tmp_path, name, format):
    with pytest.raises(DataError) as error:
        read_examples(tmp_path / name, format=format)
    assert_data_error(error, tmp_path / name, None, "no such file")


@pytest.mark.parametrize(("name", "format"), FORMAT_FILES)
def test_directory_instead_of_file(tmp_path, name, format):
    (tmp_path / name).mkdir()
    with pytest.raises(DataError) as error:
        read_examples(tmp_path / name, format=format)
    assert_data_error(error, tmp_path / name, None, "is a directory")


@pytest.mark.parametrize(("name", "format"), FORMAT_FILES)
def test_empty_file(tmp_path, name, format):
    path = write(tmp_path, name, "")
    with pytest.raises(DataError) as error:
        read_examples(path, format=format)
    assert_data_error(error, path, None, "contains no examples")


def test_header_only_table_is_empty(tmp_path):
    path = write(tmp_path, "data.tsv", "text\tlabel\n")
    with pytest.raises(DataError) as error:
        read_table(path)
    assert_data_error(error, path, None, "contains no examples")


GOOD_LINES = {"table": "text\tlabel\nhi\t1", "jsonl": '{"text": "hi", "label": 1}'}
GOOD_LINES |= {"sst": TREE, "plain": "hi"}
FORMAT_NAMES = {"table": "data.tsv", "jsonl": "data.jsonl", "sst": "data.txt", "plain": "p.txt"}


@pytest.mark.parametrize("format", sorted(GOOD_LINES))
def test_invalid_utf8_names_line_and_offset(tmp_path, format):
    good = GOOD_LINES[format].encode()
    content = good + b"\nabc\xff rest\n"
    path = write(tmp_path, FORMAT_NAMES[format], content)
    line = good.count(b"\n") + 2
    with pytest.raises(DataError) as error:
        read_examples(path, format=format)
    assert_data_error(error, path, line, "invalid UTF-8 byte 0xff at byte offset 3")
    assert f"byte {len(good) + 1 + 3} of the file" in str(error.value)


@pytest.mark.parametrize("format", sorted(GOOD_LINES))
@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_line_is_an_error(tmp_path, format, blank):
    good = GOOD_LINES[format]
    last = good.splitlines()[-1]
    path = write(tmp_path, FORMAT_NAMES[format], f"{good}\n{blank}\n{last}\n")
    line = good.count("\n") + 2
    with pytest.raises(DataError) as error:
        read_examples(path, format=format)
    assert_data_error(error, path, line, f"line {line} is empty")


@pytest.mark.parametrize("format", sorted(GOOD_LINES))
def test_extra_blank_line_at_the_end_is_an_error(tmp_path, format):
    good = GOOD_LINES[format]
    path = write(tmp_path, FORMAT_NAMES[format], f"{good}\n\n")
    line = good.count("\n") + 2
    with pytest.raises(DataError) as error:
        read_examples(path, format=format)
    assert_data_error(error, path, line, f"line {line} is empty")


def test_not_gzip(tmp_path):
    path = write(tmp_path, "data.jsonl.gz", '{"text": "hi"}\n')
    with pytest.raises(DataError) as error:
        read_jsonl(path)
    assert_data_error(error, path, None, "cannot be read")


# --- table errors -------------------------------------------------------------------------


def test_missing_named_column_lists_columns(tmp_path):
    path = write(tmp_path, "data.tsv", "review\tsentiment\nhi\t1\n")
    with pytest.raises(DataError) as error:
        read_table(path)
    assert_data_error(
        error, path, 1, "has no column 'text'; its columns are: 'review', 'sentiment'"
    )


def test_missing_label_column_lists_columns(tmp_path):
    path = write(tmp_path, "data.tsv", "text\tstars\nhi\t1\n")
    with pytest.raises(DataError) as error:
        read_table(path)
    assert_data_error(error, path, 1, "has no column 'label'; its columns are: 'text', 'stars'")


def test_column_number_out_of_range(tmp_path):
    path = write(tmp_path, "data.tsv", "a\t1\n")
    with pytest.raises(DataError) as error:
        read_table(path, 2, None)
    assert_data_error(error, path, 1, "column 2 does not exist; the first row has 2 columns")


def test_named_column_without_header(tmp_path):
    path = write(tmp_path, "data.tsv", "a\t1\n")
    with pytest.raises(DataError) as error:
        read_table(path, header=False)
    assert_data_error(error, path, None, "no header row")


@pytest.mark.parametrize("row", ["hi\t1\textra", "hi", 'tab "inside\tquotes"\t1'])
def test_wrong_number_of_columns(tmp_path, row):
    path = write(tmp_path, "data.tsv", f"text\tlabel\nfine\t0\n{row}\n")
    with pytest.raises(DataError) as error:
        read_table(path)
    assert_data_error(error, path, 3, "columns, expected 2")


def test_empty_text_and_label_cells(tmp_path):
    path = write(tmp_path, "data.tsv", "text\tlabel\nfine\t0\n \t1\n")
    with pytest.raises(DataError) as error:
        read_table(path)
    assert_data_error(error, path, 3, "the text in column 0 is empty")
    path = write(tmp_path, "data.tsv", "text\tlabel\nfine\t0\nhi\t\n")
    with pytest.raises(DataError) as error:
        read_table(path)
    assert_data_error(error, path, 3, "the label in column 1 is empty")


def test_unterminated_csv_quote_names_its_first_line(tmp_path):
    path = write(tmp_path, "data.csv", 'text,label\nfine,0\n"open quote,1\nmore,1\n')
    with pytest.raises(DataError) as error:
        read_table(path)
    assert_data_error(error, path, 3, "malformed row")


def test_bad_delimiter(tmp_path):
    path = write(tmp_path, "data.txt", "a\\tb\n")
    with pytest.raises(DataError, match="one character"):
        read_table(path, delimiter="\\t")


# --- JSON Lines errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "part"),
    [
        ('{"text": "hi", "label": 1', "invalid JSON: Expecting ',' delimiter"),
        ('[{"text": "hi", "label": 1}]', "line 2 is a JSON list, not an object"),
        ('"just text"', "line 2 is a JSON str, not an object"),
        ('{"body": "hi", "label": 1}', "has no field 'text'; its fields are: 'body', 'label'"),
        ('{"text": "hi"}', "has no field 'label'; its fields are: 'text'"),
        ('{"text": "hi", "label": null}', "the label field 'label' is null"),
        ('{"text": "hi", "label": 0.5}', "must be a string or an integer, got 0.5"),
        ('{"text": "hi", "label": true}', "must be a string or an integer, got true"),
        ('{"text": "hi", "label": ""}', "the label field 'label' is empty"),
        ('{"text": " ", "label": 1}', "the text field 'text' is empty"),
        ('{"text": 5, "label": 1}', "the text field 'text' is not a string"),
    ],
)
def test_jsonl_line_errors(tmp_path, line, part):
    path = write(tmp_path, "data.jsonl", '{"text": "fine", "label": 0}\n' + line + "\n")
    with pytest.raises(DataError) as error:
        read_jsonl(path)
    assert_data_error(error, path, 2, part)


def test_json_array_file_gets_a_hint(tmp_path):
    path = write(tmp_path, "data.json", '[\n{"text": "hi", "label": 1}\n]\n')
    with pytest.raises(DataError) as error:
        read_examples(path)
    assert_data_error(error, path, 1, "expected one JSON object per line")


def test_jsonl_gz_line_numbers_count_decompressed_lines(tmp_path):
    path = tmp_path / "data.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"text": "a", "label": 1}\n{"text": "b"}\n'))
    with pytest.raises(DataError) as error:
        read_examples(path)
    assert_data_error(error, path, 2, "has no field 'label'")


def test_jsonl_column_number_is_rejected(tmp_path):
    path = write(tmp_path, "data.jsonl", '{"text": "hi", "label": 1}\n')
    with pytest.raises(DataError, match="JSON fields are named"):
        read_examples(path, text_field=0)
