"""The summarization commands (train, summarize, evaluate, explain) end to end on tiny
generated dialogues, the Python API of a trained summarizer, and clear one-line errors
for malformed JSONL."""

from __future__ import annotations

import io
import json
import random
import shutil
import sys
from pathlib import Path

import pytest
import yaml

import attnrnn
from attnrnn.cli import main
from attnrnn.errors import DataError
from attnrnn.tasks.summarization import Summarizer

NAMES = ("anna", "bob", "carl", "dora")
THINGS = ("tea", "cake", "bread", "soup", "rice")


def run_cli(capsys, *arguments):
    status = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def dialogue(generator: random.Random) -> tuple[str, str]:
    name, thing = generator.choice(NAMES), generator.choice(THINGS)
    turns = [
        f"#Person1#: Hello {name}, would you like some {thing}?",
        f"#Person2#: Yes please, I love {thing}.",
        "#Person1#: Here you are.",
    ]
    return "\n".join(turns), f"#Person2# wants some {thing}."


def write_jsonl(path: Path, count: int, seed: int, references: int = 1) -> Path:
    generator = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(count):
            text, summary = dialogue(generator)
            record = {"dialogue": text}
            if references == 1:
                record["summary"] = summary
            else:
                for number in range(1, references + 1):
                    record[f"summary{number}"] = summary
            handle.write(json.dumps(record) + "\n")
    return path


def config_for(directory: Path, train: Path, dev: Path, test: Path | None, sections: dict) -> Path:
    """A tiny run's config file; ``sections``: the tiny_summarizer fixture."""
    data = {"train": str(train), "dev": str(dev), "max_source_length": 60}
    if test is not None:
        data["test"] = str(test)
        data["reference_fields"] = ["summary1", "summary2"]
    config = {
        "task": "summarization",
        "data": data,
        **sections,
        "trainer": {
            "epochs": 3,
            "batch_tokens": 2000,
            "max_batch_size": 32,
            "progress": False,
            "num_threads": 1,
            "early_stopping_patience": None,
        },
        "search": {"beam_size": 2, "min_length": 2},
        "dev_search": {"beam_size": 1, "min_length": 2},
    }
    path = directory / "summarize.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def summary_run(tmp_path_factory, tiny_summarizer):
    directory = tmp_path_factory.mktemp("summaries")
    train = write_jsonl(directory / "train.jsonl", 200, seed=1)
    dev = write_jsonl(directory / "dev.jsonl", 20, seed=2)
    test = write_jsonl(directory / "test.jsonl", 20, seed=3, references=2)
    config = config_for(directory, train, dev, test, tiny_summarizer)
    run = directory / "run"
    assert main(["train", str(config), "--output", str(run)]) == 0
    return directory, run, test


def test_train_reports_rouge_with_several_references(summary_run):
    _, run, _ = summary_run
    results = json.loads((run / "results.json").read_text())
    for key in ("test_rouge1", "test_rouge2", "test_rougeL", "test_rouge1_max"):
        assert 0.0 <= results[key] <= 1.0
    assert results["test_rouge1_max"] >= results["test_rouge1"] - 1e-9
    assert results["test_summary_words_mean"] > 0


def stdin_lines(monkeypatch, *lines: str) -> None:
    data = "".join(line + "\n" for line in lines).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_summarize_evaluate_explain(summary_run, capsys, tmp_path, monkeypatch):
    _, run, test = summary_run
    status, out, _ = run_cli(capsys, "summarize", run, test)
    assert status == 0 and len(out.strip().splitlines()) == 20
    text, _ = dialogue(random.Random(5))
    stdin_lines(monkeypatch, json.dumps({"dialogue": text}))
    status, out, _ = run_cli(capsys, "summarize", run, "-", "--json")
    record = json.loads(out)
    assert len(record["tokens"]) == len(record["copy_probability"])
    assert all(0.0 <= p <= 1.0 for p in record["copy_probability"])
    assert len(record["attention"]) == len(record["tokens"])  # (T, S)
    assert all(len(row) == len(record["source_tokens"]) for row in record["attention"])
    status, out, _ = run_cli(capsys, "evaluate", run)
    metrics = json.loads(out)
    assert metrics["examples"] == 20 and "rougeL_max" in metrics
    status, out, _ = run_cli(capsys, "explain", run, text, "--output", tmp_path / "x")
    assert status == 0 and (tmp_path / "x" / "summary-1.png").is_file()
    assert (tmp_path / "x" / "explain.html").is_file() and "wrote" in out
    assert "(" in out  # tokens printed with their copy probabilities


def test_summarize_reads_text_lines_fields_and_empty_lines(summary_run, capsys, monkeypatch):
    _, run, _ = summary_run
    text, _ = dialogue(random.Random(6))
    stdin_lines(monkeypatch, json.dumps({"dialogue": text}), "", text.replace("\n", " "))
    status, out, _ = run_cli(capsys, "summarize", run)
    lines = out.split("\n")
    assert status == 0 and lines[1] == "" and lines[0] and lines[2]  # an empty line: empty
    stdin_lines(monkeypatch, json.dumps({"text": text}))
    status, out, _ = run_cli(capsys, "summarize", run, "--field", "text")
    assert status == 0 and out.strip() == lines[0]
    stdin_lines(monkeypatch, json.dumps({"dialogue": text}))
    status, out, _ = run_cli(capsys, "summarize", run, "--beam", "3", "--n-best", "2")
    assert status == 0 and len(out.strip().split("\t")) == 2  # the best and one alternative


def test_summarize_names_bad_input_lines(summary_run, capsys, monkeypatch):
    _, run, _ = summary_run
    text, _ = dialogue(random.Random(7))
    stdin_lines(monkeypatch, json.dumps({"dialogue": text}), '{"dialogue": "hi')
    status, _, err = run_cli(capsys, "summarize", run)
    assert status == 2 and ":2" in err and "invalid JSON" in err and "Traceback" not in err
    stdin_lines(monkeypatch, json.dumps({"summary": "no text here"}))
    status, _, err = run_cli(capsys, "summarize", run)
    assert status == 2 and "'dialogue'" in err and "'summary'" in err  # the fields it has
    status, _, err = run_cli(capsys, "translate", run, "-")
    assert status == 2 and "attnrnn summarize" in err


def test_python_api(summary_run, tmp_path):
    _, run, test = summary_run
    model = attnrnn.load(run, device="cpu")
    assert isinstance(model, Summarizer)
    text, _ = dialogue(random.Random(8))
    [summary] = model.summarize([text], beam=3, n_best=2)
    assert len(summary.alternatives) == 1 and summary.summary
    assert len(summary.attention) == len(summary.target_tokens) == len(summary.copy_probability)
    assert {len(row) for row in summary.attention} == {len(summary.source_tokens)}
    [same] = model.predict([{"dialogue": text}], beam=3, n_best=2)
    assert same == summary
    with pytest.raises(DataError, match="invalid JSON"):
        model.parse_input('{"dialogue": ', {})
    with pytest.raises(DataError, match="'text'"):
        model.parse_input('{"dialogue": "hi"}', {"field": "text"})
    assert model.parse_input("  just text  ", {}) == "just text"
    explanation = model.explain(text, output=tmp_path)
    assert [path.name for path in explanation.files] == ["explain.html", "summary-1.png"]
    scores = model.evaluate(str(test), beam=1)  # the run's test file: both references
    assert scores["examples"] == 20 and scores["rouge1_max"] >= scores["rouge1"] - 1e-9


def test_evaluate_from_elsewhere_reads_the_test_file_with_its_references(
    summary_run, capsys, tmp_path, monkeypatch
):
    directory, run, _ = summary_run
    moved = tmp_path / "run"
    shutil.copytree(run, moved)
    config = yaml.safe_load((moved / "config.yaml").read_text())
    config["data"]["test"] = "test.jsonl"  # relative to the folder the run was trained in
    (moved / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    info = json.loads((moved / "run.json").read_text())
    (moved / "run.json").write_text(json.dumps({**info, "working_directory": str(directory)}))
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli(capsys, "evaluate", moved)
    assert status == 0, err  # the test file has summary1/summary2, no summary field
    metrics = json.loads(out)
    assert metrics["examples"] == 20 and metrics["data"] == str(directory / "test.jsonl")


def test_malformed_jsonl_names_the_line(capsys, tmp_path, tiny_summarizer):
    train = write_jsonl(tmp_path / "train.jsonl", 5, seed=1)
    with train.open("a", encoding="utf-8") as handle:
        handle.write('{"dialogue": "hi", "summary": \n')
    config = config_for(tmp_path, train, train, None, tiny_summarizer)
    status, out, err = run_cli(capsys, "train", config, "--output", tmp_path / "run")
    assert status == 2 and out == ""
    assert "train.jsonl" in err and ":6" in err and "invalid JSON" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()
    missing = tmp_path / "missing_field.jsonl"
    missing.write_text(json.dumps({"dialogue": "hi there"}) + "\n", encoding="utf-8")
    config = config_for(tmp_path, missing, missing, None, tiny_summarizer)
    status, _, err = run_cli(capsys, "train", config, "--output", tmp_path / "run")
    assert status == 2 and "summary" in err and "missing_field.jsonl" in err


def test_diagnose_a_summarizer(summary_run, capsys, tmp_path):
    _, run, _ = summary_run
    status, _out, err = run_cli(capsys, "diagnose", run, "--limit", "5", "-o", tmp_path)
    assert status == 0, err
    document = json.loads((tmp_path / "diagnostics.json").read_text())
    names = [section["name"] for section in document["sections"]]
    assert names[:2] == ["counterfactual_steps", "erasure"] and "entropy" in names
    status, _, err = run_cli(capsys, "diagnose", run, "--alignments", tmp_path / "x.align")
    assert status == 2 and "for translation runs" in err
