"""Property-based tests: every reader of user files, given random bytes, random
valid-looking files, huge numbers and deep nesting, either succeeds or raises one
:class:`~attnrnn.errors.AttnrnnError`; never another exception, never a hang.

``ATTNRNN_HYPOTHESIS_EXAMPLES`` sets the number of examples per test (default 25,
a few seconds in all); a longer run records its count, e.g. 2000 per test.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from attnrnn.config import apply_overrides, from_dict, load_yaml
from attnrnn.data.io import read_json
from attnrnn.data.parallel import read_parallel
from attnrnn.data.readers import read_examples, read_lines
from attnrnn.data.vocab import Vocab
from attnrnn.errors import AttnrnnError
from attnrnn.tasks.classification import ClassificationRunConfig
from attnrnn.tasks.speech import SpeechDataConfig, read_manifest
from attnrnn.tasks.text import TextSide

EXAMPLES = int(os.environ.get("ATTNRNN_HYPOTHESIS_EXAMPLES", "25"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # nothing written into the repository
    derandomize=EXAMPLES <= 100,  # the quick run is the same on every machine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Pieces that break parsers: separators, quotes, brackets, escapes, controls, a byte
# order mark, huge numbers (over Python's 4,300-digit limit), deep nesting.
HUGE = "9" * 5000
FRAGMENTS = [
    "\t",
    ",",
    ";",
    '"',
    "'",
    "\n",
    "\r\n",
    "\r",
    " ",
    "",
    "\x00",
    "\x1b[2J",
    "\ufeff",
    "(",
    ")",
    "(2 ",
    "(3 (2 a) (4 b))",
    "-LRB-",
    "\\/",
    "0",
    "1",
    "4",
    "-1",
    "1.5",
    HUGE,
    "1e999",
    "NaN",
    "Infinity",
    "null",
    "true",
    "[",
    "]",
    "{",
    "}",
    ":",
    '"text"',
    '"label"',
    '"source"',
    '"target"',
    '"audio"',
    "\\u0000",
    "\\ud800",
    "text",
    "label",
    "source",
    "target",
    "audio",
    "é",
    "日本",
    "😀",
    "[" * 3000,
    "{" * 3000,
    "(1 " * 700,
    "&a",
    "*a",
]
fragments = st.sampled_from(FRAGMENTS)
texts = st.lists(st.one_of(fragments, st.text(max_size=12)), max_size=30).map("".join)
raw_bytes = st.binary(max_size=400)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from(["", " ", "\ud800", "\x1b[2J"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)
field_names = st.sampled_from(["text", "label", "source", "target", "audio", "other"])


def _json_line(record: dict[str, Any]) -> str:
    return (
        json.dumps(record, ensure_ascii=False, allow_nan=True)
        .encode("utf-8", "surrogatepass")
        .decode("utf-8", "replace")
    )


jsonl_lines = st.one_of(
    st.dictionaries(field_names, json_values, max_size=4).map(_json_line),
    fragments,
    st.just('{"text": "a", "label": ' + HUGE + "}"),
    st.just("[" * 100_000),
)
table_rows = st.lists(st.one_of(texts, st.integers().map(str), fragments), max_size=4)


def sst_trees(depth: int = 4) -> st.SearchStrategy[str]:
    labels = st.sampled_from(["0", "1", "2", "3", "4", "5", "x"])
    leaves = st.builds(lambda label, word: f"({label} {word})", labels, st.text(max_size=5))
    if depth == 0:
        return leaves
    children = st.lists(sst_trees(depth - 1), min_size=1, max_size=2)
    return leaves | st.builds(lambda label, kids: f"({label} {' '.join(kids)})", labels, children)


def _lines(parts: list[str]) -> bytes:
    return "\n".join(parts).encode("utf-8", "surrogatepass")


contents = st.one_of(
    raw_bytes,
    texts.map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.lists(st.lists(texts, max_size=3).map("\t".join), max_size=5).map(_lines),
    st.lists(table_rows.map(",".join), max_size=5).map(_lines),
    st.lists(jsonl_lines, max_size=4).map(_lines),
    st.lists(st.one_of(sst_trees(), fragments), max_size=4).map(_lines),
)
names = st.sampled_from(
    ["data.tsv", "data.csv", "data.jsonl", "data.json", "data.txt", "data.tsv.gz", "data.jsonl.gz"]
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


def _write(folder: Path, name: str, content: bytes, compress: bool = True) -> Path:
    """``content`` as ``folder/name``, gzipped when the name ends in .gz and ``compress``."""
    path = folder / name
    if name.endswith(".gz") and compress:
        content = gzip.compress(content)
    path.write_bytes(content)
    return path


def _succeeds_or_user_error(read: Any, *arguments: Any, **options: Any) -> None:
    with contextlib.suppress(AttnrnnError):
        read(*arguments, **options)


# --------------------------------------------------------------------------- text readers


@PROPERTY
@given(
    content=contents,
    name=names,
    compress=st.booleans(),
    options=st.fixed_dictionaries(
        {
            "format": st.sampled_from(["auto", "table", "jsonl", "sst", "plain"]),
            "text_field": st.sampled_from(["text", 0, 1, "label"]),
            "label_field": st.sampled_from(["label", 1, None, "text"]),
            "header": st.sampled_from([None, True, False]),
            "sst_granularity": st.sampled_from(["binary", "fine"]),
            "sst_phrases": st.booleans(),
        }
    ),
)
@example(
    content=b'{"text": "a", "label": ' + HUGE.encode() + b"}\n",
    name="data.jsonl",
    compress=True,
    options={"format": "jsonl"},
)
@example(content=b"[" * 100_000, name="data.jsonl", compress=True, options={"format": "jsonl"})
@example(content=b"(2 " * 5000, name="data.txt", compress=True, options={"format": "sst"})
def test_text_readers(folder, content, name, compress, options):
    path = _write(folder, name, content, compress)
    _succeeds_or_user_error(read_examples, path, **options)


@PROPERTY
@given(content=contents, name=names, limit=st.sampled_from([None, 1, 16]))
def test_read_lines(folder, content, name, limit):
    path = _write(folder, name, content)
    _succeeds_or_user_error(lambda: list(read_lines(path, limit)))


# --------------------------------------------------------------------------- parallel files


@PROPERTY
@given(
    source=contents,
    target=contents,
    name=names,
    options=st.fixed_dictionaries(
        {
            "format": st.sampled_from(["auto", "table", "jsonl", "plain"]),
            "source_field": st.sampled_from(["source", 0, "text"]),
            "target_field": st.sampled_from(["target", 1, None]),
            "header": st.sampled_from([None, True, False]),
        }
    ),
)
def test_parallel_readers(folder, source, target, name, options):
    path = _write(folder, name, source)
    _succeeds_or_user_error(read_parallel, path, **options)
    aligned = _write(folder, "data.en", target)
    _succeeds_or_user_error(read_parallel, _write(folder, "data.de", source), aligned)


# --------------------------------------------------------------------------- speech manifests


@PROPERTY
@given(content=contents, name=st.sampled_from(["train.tsv", "train.csv", "train.jsonl"]))
@example(content=b"audio\ttext\n" + HUGE.encode() + b"\t\x1b[2J\n", name="train.tsv")
def test_audio_manifests(folder, content, name):
    path = _write(folder, name, content)
    config = SpeechDataConfig(train=str(path))
    _succeeds_or_user_error(read_manifest, str(path), config)


# --------------------------------------------------------------------------- configurations

config_keys = st.sampled_from(
    [
        "data",
        "train",
        "dev",
        "model",
        "encoder",
        "hidden_size",
        "optimizer",
        "learning_rate",
        "beta1",
        "trainer",
        "epochs",
        "max_minutes",
        "task",
        "tokenizer",
        "type",
        "x",
    ]
)
yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from([".inf", ".nan", "-.inf", HUGE, "1:2:3", "2020-13-45", "!!binary x"]),
)
yaml_documents = st.recursive(
    yaml_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(config_keys, children, max_size=4)
    ),
    max_leaves=12,
).map(lambda value: yaml.safe_dump(value, allow_unicode=True))
BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
)
yaml_texts = st.one_of(
    yaml_documents,
    texts,
    st.just("a: &a ['lol']\n" + BOMB + "data: {train: *i}\n"),
    st.just("a: " + "[" * 20_000),
    st.just("".join("  " * depth + f"k{depth}:\n" for depth in range(300))),
    st.just("a: &a [*a]\n"),
)
overrides = st.lists(
    st.builds(
        lambda key, value: f"{key}={value}",
        st.sampled_from(["optimizer.learning_rate", "trainer.epochs", "data", "a.b", ""]),
        st.one_of(texts, st.sampled_from([".inf", ".nan", "[", "&a [*a]", HUGE])),
    ),
    max_size=2,
)


@PROPERTY
@given(document=yaml_texts, extra=overrides)
def test_config_loader(folder, document, extra):
    path = _write(folder, "config.yaml", document.encode("utf-8", "surrogatepass"))

    def load() -> None:
        data = apply_overrides(load_yaml(path), extra)
        data.setdefault("data", {"train": "train.tsv"})
        from_dict(ClassificationRunConfig, data)

    _succeeds_or_user_error(load)


@PROPERTY
@given(content=raw_bytes | yaml_texts.map(str.encode))
def test_config_loader_random_bytes(folder, content):
    path = _write(folder, "config.yaml", content)
    _succeeds_or_user_error(lambda: from_dict(ClassificationRunConfig, load_yaml(path)))


# --------------------------------------------------------------------------- run files

run_json = st.one_of(
    raw_bytes,
    jsonl_lines.map(str.encode),
    st.dictionaries(
        st.sampled_from(
            ["type", "model_file", "lowercase", "format", "version", "tokens", "specials", "x"]
        ),
        json_values
        | st.sampled_from(
            ["word", "sentencepiece", "../x", "/etc/passwd", "attnrnn-vocab", 1, ["<pad>", "<unk>"]]
        ),
        max_size=5,
    ).map(lambda value: json.dumps(value).encode()),
)


@PROPERTY
@given(tokenizer=run_json, vocab=run_json)
def test_run_text_files(folder, tokenizer, vocab):
    run = folder / "run"
    run.mkdir(exist_ok=True)
    (run / "tokenizer.json").write_bytes(tokenizer)
    (run / "vocab.json").write_bytes(vocab)
    _succeeds_or_user_error(TextSide.load, run)
    _succeeds_or_user_error(Vocab.load, run / "vocab.json")
    _succeeds_or_user_error(read_json, run / "tokenizer.json", "tokenizer settings", list)
