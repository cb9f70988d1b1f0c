"""The translation commands (train, translate, evaluate, explain, export) end to end on
tiny generated data, the same through the Python API (``attnrnn.load``), and clear
one-line errors for bad input."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import random
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

import attnrnn
from attnrnn.cli import main
from attnrnn.data.dates import split_date_pairs, write_parallel
from attnrnn.errors import ConfigError
from attnrnn.tasks.sequence import Alternative
from attnrnn.tasks.translation import Translation, Translator

WORDS = ("red", "blue", "cat", "dog", "sat", "ran", "big", "old", "sun", "map")
SPACE = "\u2581"  # how the character tokenizer writes a space


def run_cli(capsys, *arguments):
    status = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def leftovers(directory: Path) -> list[str]:
    """Hidden staging / preparation folders a failed or finished train left behind."""
    return sorted(path.name for path in directory.iterdir() if path.name.startswith("."))


def vocab_pieces(path: Path) -> set[str]:
    """The tokens of a saved vocabulary, without <pad>, <unk>, <s> and </s>."""
    vocab = json.loads(path.read_text())
    return set(vocab["tokens"]) - set(vocab["specials"])


def reversal_pairs(count: int, seed: int) -> list[tuple[str, str]]:
    """Two to four words and the same words reversed and upper-cased ("red cat" -> "CAT RED")."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 4))]
        pairs.append((" ".join(words), " ".join(reversed(words)).upper()))
    return pairs


def write_pairs(pairs: list[tuple[str, str]], prefix: Path) -> Path:
    """``prefix.src`` and ``prefix.tgt``, one sentence a line; returns the prefix."""
    write(prefix.with_suffix(".src"), "".join(source + "\n" for source, _ in pairs))
    write(prefix.with_suffix(".tgt"), "".join(target + "\n" for _, target in pairs))
    return prefix


def write_config(path: Path, config: dict) -> Path:
    return write(path, yaml.safe_dump(config))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def date_files(tmp_path_factory) -> Path:
    """300 train, 20 dev and 20 test date pairs as ``train.src``/``train.tgt`` and so on."""
    directory = tmp_path_factory.mktemp("dates")
    splits = split_date_pairs(300, 20, 20, seed=3)
    for split, pairs in zip(("train", "dev", "test"), splits, strict=True):
        write_parallel(pairs, directory / f"{split}.src", directory / f"{split}.tgt")
    return directory


@pytest.fixture(scope="module")
def date_run(tmp_path_factory, date_files, tiny_translation_config) -> tuple[Path, dict, str]:
    """A character-level date run trained for two epochs; (run, printed JSON, stderr)."""
    directory = tmp_path_factory.mktemp("date-run")
    # Separate vocabularies: the target side only knows digits and "-".
    config = tiny_translation_config(
        date_files / "train",
        date_files / "dev",
        date_files / "test",
        tokenizer={"type": "character", "joint": False},
    )
    path = write_config(directory / "cfg.yaml", config)
    run = directory / "RUN"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["train", str(path), "-o", str(run)])
    assert status == 0, err.getvalue()
    return run, json.loads(out.getvalue()), err.getvalue()


@pytest.fixture(scope="module")
def reversal_files(tmp_path_factory) -> Path:
    """Word-reversal pairs: ``train`` (200), ``dev`` (20) and ``test`` (20) prefixes."""
    directory = tmp_path_factory.mktemp("reversal")
    for seed, (split, count) in enumerate({"train": 200, "dev": 20, "test": 20}.items()):
        write_pairs(reversal_pairs(count, seed), directory / split)
    return directory


# --------------------------------------------------------------------------- train


def test_train_prints_scores_and_writes_the_run_directory(date_run, date_files):
    run, printed, err = date_run
    assert printed["run"] == str(run)
    for key in ("dev_bleu", "test_bleu", "dev_chrf", "test_chrf"):
        assert isinstance(printed[key], float) and 0.0 <= printed[key] <= 100.0
    assert json.loads((run / "results.json").read_text()) == {
        key: value for key, value in printed.items() if key != "run"
    }
    assert "300 training pairs" in err and "20 dev" in err

    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["task"] == "translation"
    assert saved["data"]["train"] == str(date_files / "train")
    assert saved["model"]["encoder"]["hidden_size"] == 16
    assert saved["search"]["beam_size"] == 2
    assert saved["label_smoothing"] == 0.1  # defaults are filled in

    for side in ("source", "target"):
        assert json.loads((run / f"{side}_tokenizer.json").read_text())["type"] == "character"
        vocab = json.loads((run / f"{side}_vocab.json").read_text())
        assert vocab["specials"] == ["<pad>", "<unk>", "<s>", "</s>"]
    assert vocab_pieces(run / "target_vocab.json") == set("0123456789-")
    assert {"A", "p", ",", ".", "/", SPACE} <= vocab_pieces(run / "source_vocab.json")
    for checkpoint in ("best", "last"):
        assert (run / checkpoint / "model.safetensors").stat().st_size > 1000
    with (run / "metrics.csv").open() as metrics:
        rows = list(csv.DictReader(metrics))
    assert len(rows) >= 2  # one evaluation per epoch
    assert {"dev_bleu", "dev_chrf", "dev_loss"} <= set(rows[0])
    assert [int(row["epoch"]) for row in rows[:2]] == [1, 2]
    assert leftovers(run.parent) == []


# --------------------------------------------------------------------------- translate


def check_translation(record: dict, source: str) -> None:
    """One ``translate --json`` line: tokens that spell the input, a (T, S) attention."""
    assert isinstance(record["translation"], str) and record["translation"]
    assert isinstance(record["score"], float) and record["score"] <= 0.0
    assert "".join(record["source_tokens"]).replace(SPACE, " ") == source
    target_tokens = record["target_tokens"]
    assert target_tokens and set(target_tokens) - {"</s>"} <= set("0123456789-")
    attention = record["attention"]
    assert len(attention) == len(target_tokens)
    assert all(len(row) == len(record["source_tokens"]) for row in attention)
    assert all(sum(row) == pytest.approx(1.0, abs=1e-4) for row in attention)


def test_translate_a_file_one_line_per_input(date_run, date_files, capsys):
    run = date_run[0]
    sources = (date_files / "test.src").read_text().splitlines()
    status, out, err = run_cli(capsys, "translate", run, date_files / "test.src")
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == len(sources) == 20
    assert all(line and set(line) <= set("0123456789-") for line in lines)

    # options may come between the run and the file
    status, between, err = run_cli(capsys, "translate", run, "--beam", "2", date_files / "test.src")
    assert status == 0, err
    assert between == run_cli(capsys, "translate", run, date_files / "test.src", "--beam", "2")[1]
    with pytest.raises(SystemExit) as exit_info:  # an unknown option: argparse's usage error
        run_cli(capsys, "translate", run, date_files / "test.src", "--bogus")
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err

    # two files: the lines of both, in order
    status, both, err = run_cli(
        capsys, "translate", run, date_files / "test.src", date_files / "dev.src"
    )
    assert status == 0, err
    dev = run_cli(capsys, "translate", run, date_files / "dev.src")[1]
    assert both == out + dev and len(both.splitlines()) == 40

    status, out, err = run_cli(capsys, "translate", run, date_files / "test.src", "--json")
    assert status == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [record["translation"] for record in records] == lines
    for record, source in zip(records, sources, strict=True):
        check_translation(record, source)
        assert record["alternatives"] == []


@pytest.mark.parametrize("arguments", [["-"], []], ids=["dash", "no-input"])
def test_translate_reads_stdin(date_run, capsys, monkeypatch, arguments):
    text = "9 April 2023\nthe 1st of may, 1999\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    status, out, err = run_cli(capsys, "translate", date_run[0], *arguments, "--json")
    assert status == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 2
    check_translation(records[0], "9 April 2023")
    check_translation(records[1], "the 1st of may, 1999")
    # the generic command does the same for a translation run
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    assert run_cli(capsys, "predict", date_run[0], *arguments, "--json")[1] == out


def test_beam_one_and_n_best(date_run, tmp_path, capsys):
    run = date_run[0]
    texts = write(tmp_path / "in.txt", "9 April 2023\n2001/12/31\n17.03.1960\n")
    status, greedy, err = run_cli(capsys, "translate", run, texts, "--beam", "1", "--json")
    assert status == 0, err
    for record, source in zip(
        map(json.loads, greedy.splitlines()), texts.read_text().splitlines(), strict=True
    ):
        check_translation(record, source)

    status, out, err = run_cli(capsys, "translate", run, texts, "--n-best", "2", "--beam", "3")
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 3
    for line in lines:
        alternatives = line.split("\t")
        assert len(alternatives) == 2 and all(alternatives)
        assert alternatives[0] != alternatives[1]  # two different hypotheses of one beam

    status, out, err = run_cli(
        capsys, "translate", run, texts, "--n-best", "2", "--beam", "3", "--json"
    )
    assert status == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [[r["translation"], *r["alternatives"]] for r in records] == [
        line.split("\t") for line in lines
    ]


# --------------------------------------------------------------------------- the Python API


def test_the_api_translates_like_the_cli(date_run, tmp_path, capsys):
    run = date_run[0]
    sources = ["9 April 2023", "2001/12/31", "17.03.1960"]
    texts = write(tmp_path / "in.txt", "".join(f"{source}\n" for source in sources))
    model = attnrnn.load(run)
    assert isinstance(model, Translator) and model.task.name == "translation"

    translations = model.translate(sources, beam=3, n_best=2)
    records = [model.record(item) for item in translations]
    status, out, err = run_cli(
        capsys, "translate", run, texts, "--beam", "3", "--n-best", "2", "--json"
    )
    assert status == 0, err
    assert records == [json.loads(line) for line in out.splitlines()]
    assert [model.line(item) for item in translations] == run_cli(
        capsys, "translate", run, texts, "--beam", "3", "--n-best", "2"
    )[1].splitlines()
    for item, source in zip(translations, sources, strict=True):
        assert isinstance(item, Translation) and item.source == source
        (alternative,) = item.alternatives  # the second hypothesis of the beam, with its score
        assert isinstance(alternative, Alternative)
        assert alternative.text != item.translation and alternative.score <= item.score
    assert model.predict(sources, beam=3, n_best=2) == translations
    assert model.translate(sources[0]) == model.translate(sources[:1])  # one text or a list

    # n_best alone grows the beam to n_best (the run's beam is 2)
    assert all(len(item.alternatives) == 2 for item in model.translate(sources, n_best=3))
    assert model.translate(sources, n_best=3) == model.translate(sources, beam=3, n_best=3)
    with pytest.raises(ConfigError, match="did you mean 'beam'"):
        model.translate(sources, bean=3)
    with pytest.raises(ConfigError, match="cannot exceed the beam"):
        model.translate(sources, beam=2, n_best=3)

    explanation = model.explain("9 April 2023")  # no output folder: nothing written
    assert explanation.files == [] and explanation.text.startswith("9 April 2023\n  -> ")
    assert explanation.results == model.translate(["9 April 2023"])


def test_runs_without_run_json_and_exported_bundles_load(date_run, tmp_path, capsys):
    """A run written before run.json existed loads and translates as before; so does an
    exported bundle, which holds no optimizer state."""
    run = date_run[0]
    sources = ["9 April 2023", "the 1st of may, 1999"]
    expected = attnrnn.load(run).translate(sources, beam=3, n_best=2)
    old = tmp_path / "old"
    shutil.copytree(run, old)
    (old / "run.json").unlink()
    assert attnrnn.load(old).translate(sources, beam=3, n_best=2) == expected

    bundle = tmp_path / "bundle"
    status, out, err = run_cli(capsys, "export", run, "-o", bundle)
    assert status == 0, err
    assert out == f"exported {run} to {bundle}\n"
    assert not (bundle / "last").exists() and (bundle / "README.md").is_file()
    for name in ("source_tokenizer.json", "source_vocab.json", "target_vocab.json"):
        assert (bundle / name).read_text() == (run / name).read_text()
    assert attnrnn.load(bundle).translate(sources, beam=3, n_best=2) == expected
    assert "attnrnn translate bundle INPUT" in (bundle / "README.md").read_text()


# --------------------------------------------------------------------------- evaluate, explain


def test_evaluate_the_test_split_and_other_data(date_run, date_files, tmp_path, capsys):
    run, printed, _ = date_run
    status, out, err = run_cli(capsys, "evaluate", run)
    assert status == 0, err
    metrics = json.loads(out)
    assert metrics["data"] == str(date_files / "test") and metrics["examples"] == 20
    assert metrics["bleu"] == pytest.approx(printed["test_bleu"])
    assert metrics["chrf"] == pytest.approx(printed["test_chrf"])
    assert metrics["bleu_signature"].startswith("nrefs:1|")
    assert "|nc:6|" in metrics["chrf_signature"]
    assert metrics["loss"] > 0.0 and metrics["beam_size"] == 2
    status, out, err = run_cli(capsys, "evaluate", run, "--beam", "1")
    assert status == 0, err
    assert json.loads(out)["beam_size"] == 1

    # --data reads the given prefix instead of the test split: references that are the
    # model's own translations score chrF 100.
    sources = "9 April 2023\n2001/12/31\n"
    status, out, err = run_cli(capsys, "translate", run, write(tmp_path / "x.src", sources))
    assert status == 0, err
    write(tmp_path / "x.tgt", out)
    status, out, err = run_cli(capsys, "evaluate", run, "--data", tmp_path / "x")
    assert status == 0, err
    metrics = json.loads(out)
    assert metrics["data"] == str(tmp_path / "x") and metrics["examples"] == 2
    assert metrics["chrf"] == pytest.approx(100.0)


def test_explain_writes_the_alignment(date_run, tmp_path, capsys):
    output = tmp_path / "explain"
    status, out, err = run_cli(capsys, "explain", date_run[0], "9 April 2023", "-o", output)
    assert status == 0, err
    assert out.startswith("9 April 2023\n  -> ")
    assert "<-" in out  # each output token with the source token it attended to most
    assert (output / "alignment-1.png").read_bytes()[:4] == b"\x89PNG"
    html = (output / "explain.html").read_text()
    assert "<html" in html.lower() and '"source_tokens"' in html and '"target_tokens"' in html
    assert (
        f"wrote {output / 'explain.html'}" in out and f"wrote {output / 'alignment-1.png'}" in out
    )


# --------------------------------------------------------------------------- other setups


@pytest.mark.parametrize("joint", [True, False])
def test_sentencepiece_runs_train_and_translate(
    reversal_files, tmp_path, capsys, joint, tiny_translation_config
):
    tokenizer = {"type": "sentencepiece", "model_type": "bpe", "vocab_size": 60, "joint": joint}
    config = tiny_translation_config(
        reversal_files / "train", reversal_files / "dev", tokenizer=tokenizer
    )
    run = tmp_path / "run"
    status, out, err = run_cli(
        capsys, "train", write_config(tmp_path / "c.yaml", config), "-o", run
    )
    assert status == 0, err
    assert "dev_bleu" in json.loads(out) and "test_bleu" not in json.loads(out)
    models = ["sentencepiece.model"] if joint else ["source.model", "target.model"]
    assert sorted(path.name for path in run.glob("*.model")) == models
    settings = [
        json.loads((run / f"{side}_tokenizer.json").read_text()) for side in ("source", "target")
    ]
    assert [s["type"] for s in settings] == ["sentencepiece", "sentencepiece"]
    source, target = (vocab_pieces(run / f"{side}_vocab.json") for side in ("source", "target"))
    if joint:  # one vocabulary holding the pieces of both languages
        assert source == target and "RED" in "".join(target) and "red" in "".join(source)
    else:  # lower-case sources, upper-case targets
        assert not any(piece.isupper() for piece in source)
        assert not any(piece.islower() for piece in target)

    texts = write(tmp_path / "in.txt", "red cat sat\nbig dog\n")
    status, out, err = run_cli(capsys, "translate", run, texts, "--json")
    assert status == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 2
    assert "".join(records[0]["source_tokens"]).replace(SPACE, "") == "redcatsat"
    for record in records:
        assert len(record["attention"]) == len(record["target_tokens"])
        assert all(len(row) == len(record["source_tokens"]) for row in record["attention"])


def test_resume_continues_a_finished_run(reversal_files, tmp_path, capsys, tiny_translation_config):
    config = tiny_translation_config(reversal_files / "train", reversal_files / "dev")
    run = tmp_path / "run"
    status, _, err = run_cli(capsys, "train", write_config(tmp_path / "c.yaml", config), "-o", run)
    assert status == 0, err
    state = json.loads((run / "last" / "state.json").read_text())["state"]
    assert state["epoch"] == 2

    status, out, err = run_cli(capsys, "train", "--resume", run, "--set", "trainer.epochs=3")
    assert status == 0, err
    assert json.loads(out)["run"] == str(run)
    assert f"resumed {run} at step {state['step']}" in err
    resumed = json.loads((run / "last" / "state.json").read_text())["state"]
    assert resumed["epoch"] == 3 and resumed["step"] > state["step"]
    with (run / "metrics.csv").open() as metrics:
        assert len(list(csv.DictReader(metrics))) >= 3


def test_tsv_and_jsonl_training_data(tmp_path, capsys, tiny_translation_config):
    pairs = reversal_pairs(120, seed=7)
    tsv = write(tmp_path / "x.tsv", "".join(f"{t}\t{s}\n" for s, t in [("src", "tgt"), *pairs]))
    jsonl = write(
        tmp_path / "x.jsonl",
        "".join(json.dumps({"de": s, "en": t}) + "\n" for s, t in pairs),
    )
    fields = {"tsv": ("src", "tgt"), "jsonl": ("de", "en")}
    for data in (tsv, jsonl):
        source_field, target_field = fields[data.suffix[1:]]
        config = tiny_translation_config(data, data, data, trainer={"epochs": 1})
        config["data"].update(source_field=source_field, target_field=target_field)
        run = tmp_path / f"run-{data.suffix[1:]}"
        path = write_config(tmp_path / f"{data.suffix[1:]}.yaml", config)
        status, out, err = run_cli(capsys, "train", path, "-o", run)
        assert status == 0, err
        assert "120 training pairs" in err and "120 dev" in err
        assert {"dev_bleu", "test_bleu"} <= set(json.loads(out))

        status, out, err = run_cli(capsys, "evaluate", run, "--data", data)
        assert status == 0, err
        assert json.loads(out)["examples"] == 120


# --------------------------------------------------------------------------- errors


def check_user_error(status: int, err: str, *fragments: str) -> None:
    assert status == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def train_with(tmp_path, capsys, config: dict):
    """Train ``config`` into ``tmp_path/run``; check that nothing was left behind."""
    run = tmp_path / "run"
    status, out, err = run_cli(
        capsys, "train", write_config(tmp_path / "c.yaml", config), "-o", run
    )
    assert out == ""
    assert not run.exists()
    assert leftovers(tmp_path) == []
    return status, err


def test_mismatched_line_counts(tmp_path, capsys, tiny_translation_config):
    prefix = write_pairs(reversal_pairs(10, seed=1), tmp_path / "train")
    write(tmp_path / "train.tgt", "".join(f"{s}\n" for s in ["a b"] * 8))
    status, err = train_with(tmp_path, capsys, tiny_translation_config(prefix, prefix))
    check_user_error(status, err, f"{tmp_path / 'train.src'}:9:", "ends after line 8", "10 lines")


def test_empty_line_in_the_target_file(tmp_path, capsys, tiny_translation_config):
    prefix = write_pairs(reversal_pairs(5, seed=1), tmp_path / "train")
    write(tmp_path / "train.tgt", "a\nb\n\nc\nd\n")
    status, err = train_with(tmp_path, capsys, tiny_translation_config(prefix, prefix))
    check_user_error(status, err, f"{tmp_path / 'train.tgt'}:3:", "line 3 is empty")


def test_missing_data_file(tmp_path, capsys, reversal_files, tiny_translation_config):
    config = tiny_translation_config(
        reversal_files / "train", reversal_files / "dev", tmp_path / "nope"
    )
    status, err = train_with(tmp_path, capsys, config)
    check_user_error(status, err, str(tmp_path / "nope.src"), "no such file")


def test_unknown_config_key_has_a_hint(tmp_path, capsys, reversal_files, tiny_translation_config):
    config = tiny_translation_config(reversal_files / "train", reversal_files / "dev")
    config["model"]["decoder"]["hiden_size"] = 8
    status, err = train_with(tmp_path, capsys, config)
    check_user_error(
        status, err, "c.yaml", "'model.decoder.hiden_size'", "did you mean 'hidden_size'"
    )


def test_translate_needs_a_translation_run(tmp_path, capsys, review_files, tiny_config):
    texts = write(tmp_path / "in.txt", "red cat\n")
    classifier = tmp_path / "classifier"
    config = write_config(tmp_path / "c.yaml", tiny_config(review_files, max_steps=1))
    assert run_cli(capsys, "train", config, "-o", classifier)[0] == 0
    status, out, err = run_cli(capsys, "translate", classifier, texts)
    check_user_error(status, err, str(classifier), "is a classification run", "attnrnn predict")
    assert out == ""
    # and the other way round: a classifier's options are not a translator's
    status, out, err = run_cli(capsys, "evaluate", classifier, "--beam", "2")
    check_user_error(status, err, "--beam does not apply to classification runs")
    assert out == ""

    status, _, err = run_cli(capsys, "translate", tmp_path, texts)
    check_user_error(status, err, str(tmp_path), "not a run directory (missing config.yaml)")

    status, _, err = run_cli(capsys, "translate", tmp_path / "no-run", texts)
    check_user_error(status, err, str(tmp_path / "no-run"), "no such run directory")


def test_empty_lines_in_the_translate_input(date_run, tmp_path, capsys):
    """An empty (or blank) line gets an empty output line; ``--strict`` stops there."""
    run = date_run[0]
    texts = write(tmp_path / "in.txt", "9 April 2023\n\n2001/12/31\n   \n")
    status, out, err = run_cli(capsys, "translate", run, texts)
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 4 and lines[0] and lines[2] and lines[1] == lines[3] == ""
    two = write(tmp_path / "two.txt", "9 April 2023\n2001/12/31\n")
    assert [lines[0], lines[2]] == run_cli(capsys, "translate", run, two)[1].splitlines()

    status, out, err = run_cli(capsys, "translate", run, texts, "--strict")
    check_user_error(status, err, f"{texts}:2:", "line 2 is empty")
    assert out.splitlines() == [lines[0]]  # the lines before it were answered


def test_bad_bytes_in_the_translate_input(date_run, tmp_path, capsys):
    texts = tmp_path / "in.txt"
    texts.write_bytes(b"9 April 2023\nbad \xff date\n")
    status, _, err = run_cli(capsys, "translate", date_run[0], texts)
    check_user_error(status, err, f"{texts}:2:", "invalid UTF-8 byte 0xff")

    status, _, err = run_cli(capsys, "translate", date_run[0], tmp_path / "missing.txt")
    check_user_error(status, err, str(tmp_path / "missing.txt"))


def test_evaluate_without_a_test_split(date_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(date_run[0], run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["test"] = None
    write(run / "config.yaml", yaml.safe_dump(config))
    status, out, err = run_cli(capsys, "evaluate", run)
    check_user_error(status, err, f"{run}: the run has no test split", "--data FILE")
    assert out == ""


def test_int8_quantized_translation_stays_close(date_run, date_files, capsys):
    from attnrnn.models.quantize import quantize_int8

    run, _, _ = date_run
    lines = (date_files / "test.src").read_text().splitlines()
    status, out, err = run_cli(capsys, "translate", run, date_files / "test.src", "--int8")
    assert status == 0, err
    assert "Warning" not in err and len(out.splitlines()) == len(lines)
    status, out, err = run_cli(capsys, "evaluate", run, "--int8")
    assert status == 0, err
    int8 = json.loads(out)
    full = json.loads(run_cli(capsys, "evaluate", run)[1])
    # The test loss (teacher forced) moves by well under 5%: the weights are rounded,
    # not changed. (The two-epoch model's greedy outputs are too unsure to compare.)
    assert int8["loss"] == pytest.approx(full["loss"], rel=0.05)
    assert int8["loss"] != full["loss"]
    quantized = quantize_int8(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GRU(4, 4)))
    assert all(type(m).__module__.startswith("torch.ao.nn.quantized.dynamic") for m in quantized)


def test_int8_is_refused_for_other_tasks(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    write(run / "config.yaml", "task: speech\n")
    status, _, err = run_cli(capsys, "evaluate", run, "--int8")
    check_user_error(status, err, "--int8", "speech")


def test_the_prepared_decoder_step_translates_as_the_model(date_run, date_files):
    from attnrnn.nn import decoder_step, fast_paths

    run, _, _ = date_run
    translator = attnrnn.load(run, device="cpu")
    prepared = translator.step_model()
    assert isinstance(prepared, decoder_step.LuongGRUAdditiveStep)
    assert translator.step_model() is prepared  # kept while the weights stay the same
    lines = (date_files / "test.src").read_text().splitlines()
    ours = [(t.translation, t.score) for t in translator.translate(lines, beam=3)]
    with fast_paths.hand_written(False):
        assert translator.step_model() is translator.model
        theirs = [(t.translation, t.score) for t in translator.translate(lines, beam=3)]
    assert [text for text, _ in ours] == [text for text, _ in theirs]
    assert [score for _, score in ours] == pytest.approx([score for _, score in theirs])
    with torch.no_grad():  # an update in place (as the optimizer's) prepares a new step
        translator.model.output_layer.bias.add_(0.0)
    assert translator.step_model() is not prepared


def test_bf16_precision_decodes_or_falls_back_with_a_warning(
    date_run, date_files, monkeypatch, capsys
):
    import attnrnn.tasks.runs as runs

    run, _, _ = date_run
    lines = (date_files / "test.src").read_text().splitlines()
    monkeypatch.setattr(runs, "native_bf16", lambda device: False)
    status, out, err = run_cli(
        capsys, "translate", run, date_files / "test.src", "--precision", "bf16"
    )
    assert status == 0, err
    assert "has no native bfloat16: decoding in fp32" in err and len(out.splitlines()) == len(lines)
    assert attnrnn.load(run, device="cpu", precision="bf16").precision == "fp32"
    assert capsys.readouterr().err.count("no native bfloat16") == 1

    monkeypatch.setattr(runs, "native_bf16", lambda device: True)
    translator = attnrnn.load(run, device="cpu", precision="bf16")
    assert capsys.readouterr().err == ""
    assert translator.precision == "bf16"
    assert translator.step_model().recurrent.weight.dtype == torch.bfloat16
    assert len(translator.translate(lines[:3])) == 3
    with pytest.raises(ConfigError, match="int8 and bf16"):
        attnrnn.load(run, int8=True, precision="bf16")
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        attnrnn.load(run, precision="fp8")


def test_bf16_is_refused_for_other_tasks(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    write(run / "config.yaml", "task: speech\n")
    status, _, err = run_cli(capsys, "evaluate", run, "--precision", "bf16")
    check_user_error(status, err, "--precision", "speech")
