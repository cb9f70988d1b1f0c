"""Hostile inputs (issue 14): damaged run files, non-finite settings, paths leading
out of a run, parser bombs, unbounded lines, terminal escapes, unchecked downloads.

Each failure must be one :class:`~attnrnn.errors.AttnrnnError` naming the file (and
line), in bounded time and memory. Every test here failed on the code before the fix
it guards (the defect number of the issue is in its section title).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import re
import tarfile
import time
import tracemalloc
import warnings
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from attnrnn import streaming
from attnrnn.cli import main
from attnrnn.config import OptimizerConfig, apply_overrides, from_dict, load_yaml
from attnrnn.data import fetch
from attnrnn.data.io import file_inside, read_json
from attnrnn.data.readers import read_jsonl, read_lines, read_plain, read_table
from attnrnn.data.tokenizers import SentencePieceTokenizer, WordTokenizer
from attnrnn.data.vocab import Vocab
from attnrnn.errors import ConfigError, DataError, RunError
from attnrnn.explain import describe_prediction, strongest_links
from attnrnn.tasks.classification import ClassificationRunConfig
from attnrnn.tasks.text import TextSide, split_off_dev
from attnrnn.viz import printable, write_token_heatmap_png

HUGE_INTEGER = "1" * 5000  # over Python's 4,300-digit limit on int("...")


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run directory holding a word tokenizer and its vocabulary."""
    directory = tmp_path / "run"
    directory.mkdir()
    TextSide(WordTokenizer(), Vocab.build([["a", "good", "film"]])).save(directory)
    return directory


# --------------------------------------------------------------------------- 5: damaged run files

DAMAGE = {
    "truncated": lambda data: data[: len(data) // 2],
    "not UTF-8": lambda data: data[:5] + b"\xff\xfe" + data[5:],
    "empty": lambda data: b"",
    "a JSON array": lambda data: b"[1, 2]",
    "a JSON string": lambda data: b'"word"',
    "nested 100,000 deep": lambda data: b"[" * 100_000,
    "a 5,000-digit number": lambda data: HUGE_INTEGER.encode(),
    "of another kind": lambda data: b'{"type": ["word"], "format": "other"}',
}


@pytest.mark.parametrize("name", ["tokenizer.json", "vocab.json"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_run_text_file_is_one_run_error_naming_it(run, name, damage):
    path = run / name
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    with pytest.raises(RunError) as raised:
        TextSide.load(run)
    assert str(path) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_read_json_names_file_line_and_column(tmp_path):
    path = write(tmp_path / "labels.json", '[\n  "a",\n  "b"\n')
    with pytest.raises(RunError, match=r"labels\.json:4: invalid JSON: .*\(column 1\)"):
        read_json(path, "labels", list)
    write(path, '{"a": 1}')
    with pytest.raises(RunError, match=r"labels file must hold a JSON array, not dict"):
        read_json(path, "labels", list)
    write(path, b'["a",\n"\xff"]')
    with pytest.raises(DataError, match=r"labels\.json:2: the labels file is not UTF-8"):
        read_json(path, "labels", list, error=DataError)
    with pytest.raises(RunError, match=r"missing\.json: labels file not found"):
        read_json(tmp_path / "missing.json", "labels", list)
    with pytest.raises(RunError, match="not a regular file"):
        read_json(tmp_path, "labels", list)
    assert read_json(write(path, '["a", "b"]'), "labels", list) == ["a", "b"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_read_json_of_a_fifo_does_not_wait_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "run.json")
    with pytest.raises(RunError, match="not a regular file"):
        read_json(tmp_path / "run.json", "run information")


# --------------------------------------------------------------------------- 6: non-finite settings


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("optimizer.learning_rate=.inf", "learning_rate"),
        ("optimizer.learning_rate=.nan", "learning_rate"),
        ("optimizer.learning_rate=nan", "learning_rate"),
        ("optimizer.clip_norm=.nan", "clip_norm"),
        ("optimizer.clip_norm=.inf", "clip_norm"),
        ("optimizer.weight_decay=.nan", "weight_decay"),
        ("optimizer.beta1=1.0", "beta1"),
        ("optimizer.beta1=.nan", "beta1"),
        ("optimizer.beta2=1.5", "beta2"),
        ("optimizer.beta2=-0.1", "beta2"),
        ("trainer.max_minutes=.inf", "max_minutes"),
        ("trainer.epochs=9223372036854775808", "epochs"),  # 2**63: beyond torch's integers
    ],
)
def test_non_finite_or_out_of_range_optimizer_values_are_config_errors(override, key):
    data = apply_overrides({"data": {"train": "train.tsv"}}, [override])
    with pytest.raises(ConfigError, match=key):
        from_dict(ClassificationRunConfig, data)


@pytest.mark.parametrize(
    "values",
    [
        {"learning_rate": math.inf},
        {"learning_rate": math.nan},
        {"clip_norm": math.nan},
        {"weight_decay": math.inf},
        {"beta1": 1.0},
        {"beta2": math.nan},
    ],
)
def test_the_python_api_checks_the_same_values(values):
    with pytest.raises(ConfigError, match=next(iter(values))):
        OptimizerConfig(**values)


# --------------------------------------------------------------------------- 8: paths out of a run


@pytest.fixture(scope="module")
def sentencepiece_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("spm")
    texts = ["a good film", "a bad film", "good acting and a good plot"] * 20
    return SentencePieceTokenizer.train(texts, folder / "outside", vocab_size=30).model_path


@pytest.mark.parametrize("where", ["parent", "absolute", "link"])
def test_a_tokenizer_model_outside_the_run_is_refused(run, sentencepiece_model, where):
    outside = run.parent / "outside.model"
    outside.write_bytes(sentencepiece_model.read_bytes())
    name = {"parent": "../outside.model", "absolute": str(outside), "link": "inside.model"}[where]
    if where == "link":
        (run / "inside.model").symlink_to(outside)
    settings = {"type": "sentencepiece", "model_file": name, "vocab_size": 30}
    write(run / "tokenizer.json", json.dumps(settings))
    with pytest.raises(RunError, match=r"sentencepiece model file .*(inside|outside) the run"):
        TextSide.load(run)


def test_a_tokenizer_model_inside_the_run_loads(run, sentencepiece_model):
    (run / "spm.model").write_bytes(sentencepiece_model.read_bytes())
    (run / "link.model").symlink_to(run / "spm.model")  # a link that stays inside is fine
    write(run / "tokenizer.json", json.dumps({"type": "sentencepiece", "model_file": "link.model"}))
    assert isinstance(TextSide.load(run).tokenizer, SentencePieceTokenizer)


def test_a_vocabulary_linked_from_outside_the_run_is_refused(run):
    outside = run.parent / "vocab.json"
    (run / "vocab.json").rename(outside)
    (run / "vocab.json").symlink_to(outside)
    with pytest.raises(RunError, match=r"vocabulary file 'vocab\.json' leads outside the run"):
        TextSide.load(run)


def test_saving_a_vocabulary_never_writes_through_a_planted_link(tmp_path):
    outside = write(tmp_path / "outside.txt", "keep me\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / f".vocab.json.{os.getpid()}.tmp").symlink_to(outside)  # the old temporary name
    Vocab.build([["a"]]).save(run / "vocab.json")
    assert outside.read_text() == "keep me\n"
    assert Vocab.load(run / "vocab.json") == Vocab.build([["a"]])


def test_saving_a_sentencepiece_side_never_writes_through_a_planted_link(
    tmp_path, sentencepiece_model
):
    run = tmp_path / "run"
    run.mkdir()
    (run / sentencepiece_model.name).symlink_to(tmp_path / "elsewhere.model")  # dangling
    side = TextSide(SentencePieceTokenizer(sentencepiece_model), Vocab.build([["a"]]))
    with pytest.raises(RunError, match="symbolic link"):
        side.save(run)
    assert not (tmp_path / "elsewhere.model").exists()


def test_file_inside_refuses_every_way_out(tmp_path):
    for name in ("", "../x", "/etc/passwd", "a/../../x", "a\x00b"):
        with pytest.raises(RunError):
            file_inside(tmp_path, name, "model file")
    assert file_inside(tmp_path, "sub/model", "model file") == tmp_path / "sub" / "model"


# --------------------------------------------------------------------------- 9: parser crashes


def test_one_training_example_is_a_data_error_naming_the_files():
    with pytest.raises(DataError, match=r"a\.txt, b\.txt: 1 example\(s\): too few"):
        split_off_dev(["only"], 0.1, seed=1, where=("a.txt", "b.txt"))


def test_holding_out_dev_always_leaves_a_training_example():
    train, dev = split_off_dev(["a", "b"], 1.0, seed=1)
    assert len(train) == 1 and len(dev) == 1


def test_a_jsonl_label_with_5000_digits_is_a_data_error(tmp_path):
    path = write(
        tmp_path / "train.jsonl",
        '{"text": "a", "label": 1}\n{"text": "b", "label": ' + HUGE_INTEGER + "}\n",
    )
    with pytest.raises(DataError, match=r"train\.jsonl:2: invalid JSON: an integer with more"):
        read_jsonl(path)


def test_json_nested_100000_deep_is_a_data_error(tmp_path):
    path = write(tmp_path / "train.jsonl", '{"text": ' + "[" * 100_000 + "\n")
    with pytest.raises(DataError, match=r"train\.jsonl:1: invalid JSON: .*nested too deeply"):
        read_jsonl(path)


def test_a_json_string_with_half_a_surrogate_pair_is_a_data_error(tmp_path):
    path = write(tmp_path / "train.jsonl", '{"text": "bad \\ud800", "label": 1}\n')
    with pytest.raises(DataError, match=r"train\.jsonl:1: the text field 'text' holds an unpaired"):
        read_jsonl(path)


BILLION_LAUGHS = (
    "a: &a ['lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol']\n"
    + "".join(
        f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
        for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
    )
)


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("data: " + "[" * 20_000, "nested more than 64 levels"),
        ("".join("  " * depth + f"k{depth}:\n" for depth in range(200)), "nested more than"),
        (BILLION_LAUGHS + "data: {train: *i}\n", "aliases expand to more than"),
        ("a: &a [*a]\n", "an alias inside the node it refers to"),
        ("optimizer: {learning_rate: " + HUGE_INTEGER + "}\n", "a number longer than"),
        ("trainer: {seed: 1" + ":1" * 100_000 + "}\n", "a number longer than"),
        ("data: {train: 2020-13-45}\n", "month must be in 1..12"),
    ],
)
def test_yaml_bombs_are_one_config_error_in_bounded_time(tmp_path, document, problem):
    path = write(tmp_path / "config.yaml", document)
    started = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        load_yaml(path)
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message


def test_a_huge_yaml_file_is_refused_unparsed(tmp_path):
    path = write(tmp_path / "config.yaml", "# " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match="larger than 1048576 bytes"):
        load_yaml(path)


def test_set_with_a_bad_date_is_a_config_error():
    with pytest.raises(ConfigError, match=r"--set trainer\.seed: invalid YAML value"):
        apply_overrides({}, ["trainer.seed=2020-13-45"])


def test_fetch_into_an_existing_file_is_one_error_line(tmp_path, capsys):
    existing = write(tmp_path / "version", "not a folder\n")
    assert main(["data", "fetch", "an4", "--output", str(existing)]) == 2
    error = capsys.readouterr().err
    assert error == f"error: {existing}: exists and is not a folder; give another --output\n"
    assert existing.read_text() == "not a folder\n"


# --------------------------------------------------------------------------- 10: unbounded lines


@pytest.mark.parametrize(
    ("reader", "first"),
    [(read_plain, "short"), (read_table, "text\tlabel"), (read_jsonl, '{"text": "a", "label": 1}')],
)
def test_a_line_over_the_limit_is_a_data_error_naming_it(tmp_path, reader, first):
    path = write(tmp_path / "input.txt", f"{first}\n" + "x" * (3 << 20) + f"\n{first}\n")
    with pytest.raises(DataError, match=r"input\.txt:2: the line is longer than 1048576 bytes"):
        reader(path)


def test_the_line_limit_counts_bytes_without_the_line_ending(tmp_path, monkeypatch):
    path = write(tmp_path / "input.txt", "12345678\r\n1234567\n123456789\n")
    with pytest.raises(DataError, match=r"input\.txt:3: the line is longer than 8 bytes"):
        list(read_lines(path, 8))
    monkeypatch.setenv("ATTNRNN_MAX_LINE_BYTES", "8")
    with pytest.raises(DataError, match=r"input\.txt:3: .*ATTNRNN_MAX_LINE_BYTES"):
        read_plain(path)
    monkeypatch.setenv("ATTNRNN_MAX_LINE_BYTES", "lots")
    with pytest.raises(ConfigError, match="ATTNRNN_MAX_LINE_BYTES must be"):
        read_plain(path)


def test_a_one_line_gzip_bomb_fails_in_bounded_memory(tmp_path):
    path = write(tmp_path / "bomb.txt.gz", gzip.compress(b"a" * (24 << 20)))  # 24 MB, one line
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"bomb\.txt\.gz:1: the line is longer than"):
            list(read_lines(path, 1 << 20))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_an_unterminated_stream_fails_after_reading_the_limit():
    with pytest.raises(DataError, match=r"/dev/zero:1: the line is longer than 4096 bytes"):
        list(read_lines("/dev/zero", 4096))


def test_streaming_reads_at_most_a_few_batches_ahead():
    read = 0
    ahead = []

    def lines():
        nonlocal read
        for number in range(1, 20_001):
            read += 1
            yield number

    answered = 0
    for batch in streaming.batches(lines(), batch_size=64, wait_seconds=60):
        answered += len(batch)
        time.sleep(0.0005)  # the model is slower than the reader
        ahead.append(read - answered)
    assert answered == 20_000
    assert max(ahead) <= 5 * 64 + 1  # the queue (4 batches) and one line in hand


# ------------------------------------------------------------------ 11: terminal, downloads

ESCAPES = "\x1b]0;owned\x07\x1b[2J\u202e\x9b"


def test_printable_escapes_controls_but_keeps_text_and_layout():
    text = f"naïve 日本 😀\tcolumn\nline {ESCAPES}"
    shown = printable(text)
    assert shown == "naïve 日本 😀\tcolumn\nline \\x1b]0;owned\\x07\\x1b[2J\\u202e\\x9b"
    assert printable("a\tb\nc", keep="") == "a\\tb\\nc"


def test_explain_lines_escape_user_text():
    prediction = SimpleNamespace(
        label=f"pos{ESCAPES}",
        probabilities={f"pos{ESCAPES}": 0.9},
        tokens=["good", f"film{ESCAPES}"],
        weights=[0.2, 0.8],
    )
    for color in (False, True):
        text = describe_prediction(prediction, color)
        assert "\x07" not in text and "\u202e" not in text and "\x9b" not in text
        assert "]0;owned" not in text.replace("\\x1b]0;owned", "")
    links = strongest_links([f"a{ESCAPES}", "b"], [f"x{ESCAPES}"], [[0.9, 0.1]])
    assert (
        links == "x\\x1b]0;owned\\x07\\x1b[2J\\u202e\\x9b<-a\\x1b]0;owned\\x07\\x1b[2J\\u202e\\x9b"
    )


def test_pictures_draw_control_characters_escaped(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns of each glyph it lacks
        write_token_heatmap_png(tmp_path / "a.png", ["a\x1b[2J", "b\x07"], [0.6, 0.4], "t\x1b")


def test_an4_comes_over_https_with_a_pinned_checksum():
    assert all(url.startswith("https://") for url in fetch.AN4_URLS)
    assert re.fullmatch(r"[0-9a-f]{64}", fetch.AN4_SHA256)


def test_an_an4_archive_that_does_not_match_is_never_extracted(tmp_path, monkeypatch):
    archive = tmp_path / "an4_sphere.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        for name in ("an4/wav/x.sph", "an4/etc/an4_train.fileids"):
            member = tarfile.TarInfo(name)
            member.size = 1
            bundle.addfile(member, io.BytesIO(b"x"))
    monkeypatch.setattr(fetch, "AN4_URLS", ((tmp_path / "gone").as_uri(), archive.as_uri()))
    output = tmp_path / "an4"
    with pytest.raises(DataError, match="does not match its checksum"):
        fetch.fetch("an4", output)
    assert not output.exists()


def _fsdd_zip(path: Path, recordings: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("fsdd-1.0.10/README.md", "readme")
        for name, data in recordings.items():
            bundle.writestr(f"fsdd-1.0.10/recordings/{name}", data)
    return path


def _manifest_digest(recordings: dict[str, bytes]) -> str:
    lines = "".join(
        f"{hashlib.sha256(data).hexdigest()}  recordings/{name}\n"
        for name, data in sorted(recordings.items())
    )
    return hashlib.sha256(lines.encode()).hexdigest()


@pytest.fixture
def fsdd_source(tmp_path, monkeypatch):
    recordings = {"0_a_0.wav": b"RIFF zero", "1_a_0.wav": b"RIFF one"}
    monkeypatch.setattr(fetch, "FSDD_RECORDINGS", 2, raising=False)
    monkeypatch.setattr(fetch, "FSDD_MANIFEST_SHA256", _manifest_digest(recordings))
    reads = []
    original_read = zipfile.ZipFile.read
    monkeypatch.setattr(
        zipfile.ZipFile,
        "read",
        lambda self, name, *a: reads.append(name) or original_read(self, name, *a),
    )

    def serve(served: dict[str, bytes]) -> list:
        archive = _fsdd_zip(tmp_path / "served.zip", served)
        monkeypatch.setattr(fetch, "FSDD", archive.as_uri())
        return reads

    return recordings, serve


def test_fsdd_recordings_are_checked_inside_the_archive_before_extraction(tmp_path, fsdd_source):
    recordings, serve = fsdd_source
    reads = serve({**recordings, "1_a_0.wav": b"RIFF tampered"})
    with pytest.raises(DataError, match=r"do not match FSDD v1\.0\.10's checksums"):
        fetch.fetch("fsdd", tmp_path / "fsdd")
    assert reads == []  # nothing was extracted
    assert not (tmp_path / "fsdd").exists()
    reads = serve(recordings)
    fetch.fetch("fsdd", tmp_path / "fsdd")
    written = {path.name: path.read_bytes() for path in (tmp_path / "fsdd/recordings").iterdir()}
    assert written == recordings


def test_fsdd_refuses_an_archive_of_the_wrong_size_unread(tmp_path, fsdd_source):
    recordings, serve = fsdd_source
    reads = serve({**recordings, "2_a_0.wav": b"RIFF extra"})
    with pytest.raises(DataError, match="holds 3 recordings"):
        fetch.fetch("fsdd", tmp_path / "fsdd")
    assert reads == []


def test_a_download_larger_than_its_limit_is_refused(tmp_path):
    source = write(tmp_path / "big.bin", b"x" * 100)
    destination = tmp_path / "out" / "big.bin"
    with pytest.raises(DataError, match="more than 10 bytes"):
        fetch.download(source.as_uri(), destination, fetch.sha256_of, None, max_bytes=10)
    assert list((tmp_path / "out").iterdir()) == []
