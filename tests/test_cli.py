"""Every CLI command end to end on tiny data, and clear errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from attnrnn.cli import main


@pytest.fixture
def config_file(tmp_path, review_files, tiny_config):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_config(review_files, epochs=1)))
    return path


def run_cli(capsys, *arguments):
    status = main(list(arguments))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_train_evaluate_predict_explain(tmp_path, capsys, config_file, review_files):
    run = tmp_path / "run"
    status, out, err = run_cli(
        capsys, "train", str(config_file), "--output", str(run), "--set", "trainer.max_steps=15"
    )
    assert status == 0, err
    assert json.loads(out)["run"] == str(run)

    status, out, err = run_cli(capsys, "evaluate", str(run), "--data", str(review_files["test"]))
    assert status == 0, err
    metrics = json.loads(out)
    assert metrics["examples"] == 300 and 0.0 <= metrics["accuracy"] <= 1.0

    texts = tmp_path / "texts.txt"
    texts.write_text("the movie was great\nthe plot was not good\n")
    status, out, err = run_cli(capsys, "predict", str(run), str(texts), "--attention")
    assert status == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2
    assert set(lines[0]["probabilities"]) == {"negative", "positive"}
    assert lines[0]["tokens"] == ["the", "movie", "was", "great"]
    assert len(lines[0]["attention"][0]) == 4

    status, out, err = run_cli(
        capsys,
        "explain",
        str(run),
        "the acting was superb",
        "--output",
        str(tmp_path / "explain"),
        "--no-color",
    )
    assert status == 0, err
    assert "superb(" in out
    assert (tmp_path / "explain" / "explain.html").is_file()
    assert (tmp_path / "explain" / "explain-1.png").read_bytes()[:4] == b"\x89PNG"


def test_predict_reads_stdin(tmp_path, capsys, config_file, monkeypatch):
    import io

    run = tmp_path / "run"
    assert (
        run_cli(capsys, "train", str(config_file), "-o", str(run), "--set", "trainer.max_steps=3")[
            0
        ]
        == 0
    )
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a fine film\n")))
    status, out, _ = run_cli(capsys, "predict", str(run))
    assert status == 0 and len(out.splitlines()) == 1


def test_resume_from_the_cli(tmp_path, capsys, config_file):
    run = tmp_path / "run"
    assert (
        run_cli(capsys, "train", str(config_file), "-o", str(run), "--set", "trainer.max_steps=3")[
            0
        ]
        == 0
    )
    status, _, err = run_cli(capsys, "train", "--resume", str(run), "--set", "trainer.max_steps=6")
    assert status == 0, err
    state = json.loads((run / "last" / "state.json").read_text())["state"]
    assert state["step"] == 6


def write(path, content: bytes | str):
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return path


BAD_TRAIN_FILES = {
    "empty": (b"", "contains no examples"),
    "only_header": (b"text\tlabel\n", "contains no examples"),
    "not_utf8": (b"text\tlabel\ngood\tpositive\nbad \xff film\tnegative\n", ":3"),
    "empty_line": (b"text\tlabel\ngood\tpositive\n\nbad\tnegative\n", ":3"),
    "missing_column": (b"review\tlabel\ngood\tpositive\n", "no column 'text'"),
    "one_label": (b"text\tlabel\ngood\tpositive\nfine\tpositive\n", "only one label"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRAIN_FILES))
def test_bad_training_data_is_a_clear_error_without_a_run_directory(
    tmp_path, capsys, review_files, tiny_config, case
):
    content, message = BAD_TRAIN_FILES[case]
    bad = write(tmp_path / "train.tsv", content)
    config = tiny_config({**review_files, "train": bad})
    config_path = write(tmp_path / "config.yaml", yaml.safe_dump(config))
    run = tmp_path / "run"
    status, _, err = run_cli(capsys, "train", str(config_path), "--output", str(run))
    assert status == 2
    assert err.startswith("error: ") and "train.tsv" in err and message in err
    assert "Traceback" not in err
    assert not run.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_bad_config_and_missing_files(tmp_path, capsys, review_files, tiny_config):
    config = tiny_config(review_files)
    config["model"]["encoder"]["hiden_size"] = 3
    path = write(tmp_path / "c.yaml", yaml.safe_dump(config))
    status, _, err = run_cli(capsys, "train", str(path), "-o", str(tmp_path / "run"))
    assert status == 2 and "did you mean 'hidden_size'" in err and "c.yaml" in err

    config = tiny_config({**review_files, "train": tmp_path / "nope.tsv"})
    path = write(tmp_path / "c2.yaml", yaml.safe_dump(config))
    status, _, err = run_cli(capsys, "train", str(path), "-o", str(tmp_path / "run"))
    assert status == 2 and "nope.tsv" in err and "no such file" in err
    assert not (tmp_path / "run").exists()

    status, _, err = run_cli(capsys, "predict", str(tmp_path / "no-run"), "-")
    assert status == 2 and "no-run" in err


def test_unseen_label_at_evaluation(tmp_path, capsys, config_file):
    run = tmp_path / "run"
    assert (
        run_cli(capsys, "train", str(config_file), "-o", str(run), "--set", "trainer.max_steps=2")[
            0
        ]
        == 0
    )
    data = write(tmp_path / "eval.tsv", "text\tlabel\ngood film\tpositive\nmeh\tneutral\n")
    status, _, err = run_cli(capsys, "evaluate", str(run), "--data", str(data))
    assert status == 2
    assert "eval.tsv:3" in err and "'neutral' was never seen in training" in err


def test_console_entry_point_prints_no_traceback(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "attnrnn.cli", "train", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert "missing.yaml" in completed.stderr and "Traceback" not in completed.stderr


def test_pretrain_word2vec_then_use_the_vectors(tmp_path, capsys, review_files, tiny_config):
    vectors = tmp_path / "vectors.txt"
    status, out, err = run_cli(
        capsys,
        "pretrain",
        "--method",
        "word2vec",
        str(review_files["train"]),
        "--output",
        str(vectors),
        "--set",
        "dimension=24",
        "--set",
        "epochs=2",
        "--set",
        "min_count=2",
    )
    assert status == 0, err
    assert json.loads(out)["vocabulary"] > 20
    config = tiny_config(review_files, max_steps=5)
    config["pretrained"] = {"vectors": str(vectors), "vocab_from_vectors": 100}
    path = write(tmp_path / "c.yaml", yaml.safe_dump(config))
    status, out, err = run_cli(capsys, "train", str(path), "-o", str(tmp_path / "run"))
    assert status == 0, err
    assert "pretrained vectors cover" in err


def test_sentencepiece_tokenizer_is_trained_and_saved_with_the_run(
    tmp_path, capsys, review_files, tiny_config
):
    config = tiny_config(review_files, max_steps=3)
    config["tokenizer"] = {"type": "sentencepiece", "vocab_size": 60}
    path = write(tmp_path / "c.yaml", yaml.safe_dump(config))
    run = tmp_path / "run"
    status, _, err = run_cli(capsys, "train", str(path), "-o", str(run))
    assert status == 0, err
    assert (run / "sentencepiece.model").is_file()
    assert json.loads((run / "tokenizer.json").read_text())["type"] == "sentencepiece"
    texts = write(tmp_path / "t.txt", "the music was wonderful\n")
    status, out, err = run_cli(capsys, "predict", str(run), str(texts), "--attention")
    assert status == 0, err
    tokens = json.loads(out)["tokens"]
    assert "".join(tokens).replace("\u2581", "") == "themusicwaswonderful"


def test_demo_runs_end_to_end(tmp_path, capsys):
    status, out, err = run_cli(capsys, "demo", "--quick", "--output", str(tmp_path / "demo"))
    assert status == 0, err
    assert "test accuracy" in out and "most attended:" in out
    assert (tmp_path / "demo" / "sentiment-attention" / "explain.html").is_file()
    assert (tmp_path / "demo" / "sentiment-attention" / "explain-1.png").is_file()
    assert (tmp_path / "demo" / "sentiment-run" / "best" / "model.safetensors").is_file()


def trained_run(tmp_path, capsys, config_file, steps=3):
    run = tmp_path / "run"
    status, _, err = run_cli(
        capsys, "train", str(config_file), "-o", str(run), "--set", f"trainer.max_steps={steps}"
    )
    assert status == 0, err
    return run


def test_evaluate_works_from_another_working_directory(
    tmp_path, capsys, review_files, tiny_config, monkeypatch
):
    import shutil

    data = tmp_path / "project" / "data"
    data.mkdir(parents=True)
    for name, path in review_files.items():
        shutil.copy(path, data / f"{name}.tsv")
    config = tiny_config({name: f"data/{name}.tsv" for name in review_files}, max_steps=2)
    monkeypatch.chdir(tmp_path / "project")
    write(tmp_path / "project" / "c.yaml", yaml.safe_dump(config))
    assert run_cli(capsys, "train", "c.yaml", "-o", "run")[0] == 0
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli(capsys, "evaluate", "project/run")
    assert status == 0, err
    assert json.loads(out)["examples"] == 300


def test_export_writes_a_bundle_that_every_command_accepts(tmp_path, capsys, config_file):
    run = trained_run(tmp_path, capsys, config_file)
    bundle = tmp_path / "bundle"
    status, out, err = run_cli(capsys, "export", str(run), "--output", str(bundle))
    assert status == 0, err
    names = sorted(path.name for path in bundle.iterdir())
    assert names == [
        "README.md", "best", "config.yaml", "labels.json", "results.json", "run.json",
        "tokenizer.json", "vocab.json",
    ]  # fmt: skip
    assert sorted(path.name for path in (bundle / "best").iterdir()) == [
        "model.safetensors",
        "state.json",
    ]
    card = (bundle / "README.md").read_text()
    assert "classification" in card and "test_accuracy" in card and "attnrnn.load" in card
    texts = write(tmp_path / "t.txt", "a fine film\n")
    _, expected, _ = run_cli(capsys, "predict", str(run), str(texts))
    status, out, err = run_cli(capsys, "predict", str(bundle), str(texts))
    assert status == 0 and out == expected, err
    assert run_cli(capsys, "explain", str(bundle), "a film", "-o", str(tmp_path / "e"))[0] == 0
    status, _, err = run_cli(capsys, "export", str(run), "--output", str(bundle))
    assert status == 2 and "already exists" in err


def test_a_run_from_a_newer_attnrnn_says_so_in_one_line(tmp_path, capsys, config_file):
    run = trained_run(tmp_path, capsys, config_file)
    info = json.loads((run / "run.json").read_text())
    assert info["task"] == "classification" and info["run_format"] == 1
    info.update(run_format=99, attnrnn_version="9.0")
    (run / "run.json").write_text(json.dumps(info))
    status, _, err = run_cli(capsys, "predict", str(run), "-")
    assert status == 2
    assert err.count("\n") == 1 and "attnrnn 9.0" in err and "upgrade attnrnn" in err


def test_stdin_lines_are_answered_one_for_one_and_empty_lines_stay_empty(
    tmp_path, capsys, config_file, monkeypatch
):
    import io

    run = trained_run(tmp_path, capsys, config_file)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a fine film\n\nbad\n")))
    status, out, err = run_cli(capsys, "predict", str(run))
    assert status == 0, err
    lines = out.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""
    assert json.loads(lines[0])["label"] in ("positive", "negative")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a fine film\n\nbad\n")))
    status, _, err = run_cli(capsys, "predict", str(run), "--strict")
    assert status == 2 and "<stdin>:2" in err and "empty" in err


def test_a_pipe_gets_each_answer_before_the_input_ends(tmp_path, capsys, config_file):
    """A line written into predict's standard input is answered while the pipe stays open."""
    run = trained_run(tmp_path, capsys, config_file)
    process = subprocess.Popen(
        [sys.executable, "-m", "attnrnn.cli", "predict", str(run)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        for text in ("a fine film", "a dull film"):
            process.stdin.write(text + "\n")
            process.stdin.flush()
            assert "probabilities" in json.loads(process.stdout.readline())
    finally:
        process.stdin.close()
        assert process.wait(timeout=60) == 0


def test_options_of_another_task_are_refused_with_the_task_named(tmp_path, capsys, config_file):
    run = trained_run(tmp_path, capsys, config_file)
    status, _, err = run_cli(capsys, "predict", str(run), "-", "--int8")
    assert status == 2 and "--int8 does not apply to classification runs" in err


def test_python_dash_m_attnrnn_is_the_command_line():
    completed = subprocess.run(
        [sys.executable, "-m", "attnrnn", "diagnose", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0 and "--alignments" in completed.stdout
    completed = subprocess.run(
        [sys.executable, "-m", "attnrnn", "evaluate", "no-such-run"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2 and completed.stderr.startswith("error:")
