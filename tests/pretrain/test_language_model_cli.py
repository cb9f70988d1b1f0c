"""Language-model pretraining from the command line: `attnrnn train` on a language_model
config, the `attnrnn pretrain --method lm` shortcut, and the run commands on its runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from attnrnn.cli import main

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "and", "then"]
TINY = [
    "model.embedding_size=24",
    "model.encoder.hidden_size=24",
    "model.adaptive_cutoffs=[6]",
    "tokenizer.min_freq=1",
    "data.dev_fraction=0.1",
    "optimizer.warmup_steps=5",
    "optimizer.learning_rate=0.02",
    "trainer.batch_tokens=600",
    "trainer.num_threads=1",
    "trainer.device=cpu",
    "trainer.progress=false",
]


pytestmark = pytest.mark.usefixtures("one_thread")


def run_cli(capsys, *arguments):
    status = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def settings(*overrides: str) -> list[str]:
    return [part for override in [*TINY, *overrides] for part in ("--set", override)]


@pytest.fixture
def corpus(tmp_path) -> Path:
    texts = []
    for index in range(120):
        start = index % len(WORDS)
        texts.append(" ".join(((WORDS[start:] + WORDS[:start]) * 2)[: 10 + index % 7]))
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


def test_train_then_predict_evaluate_explain_a_language_model(tmp_path, capsys, corpus):
    config = tmp_path / "lm.yaml"
    config.write_text(yaml.safe_dump({"task": "language_model", "data": {"train": str(corpus)}}))
    run = tmp_path / "run"
    status, out, err = run_cli(capsys, "train", config, "-o", run, *settings("trainer.epochs=3"))
    assert status == 0, err
    results = json.loads(out)
    assert results["run"] == str(run) and results["dev_perplexity"] > 1.0
    assert (run / "metrics.csv").is_file() and (run / "best" / "model.safetensors").is_file()

    texts = tmp_path / "texts.txt"
    texts.write_text("the quick brown fox\n\nlazy dog\n")
    status, out, err = run_cli(capsys, "predict", run, texts)
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 3 and lines[1] == ""  # an empty line gets an empty line
    assert json.loads(lines[0])["perplexity"] > 1.0
    status, out, err = run_cli(capsys, "predict", run, texts, "--json")
    assert status == 0, err
    record = json.loads(out.splitlines()[0])
    assert record["tokens"] == ["the", "quick", "brown", "fox"]
    assert record["forward_log_probs"][0] is None and len(record["surprisal"]) == 4

    status, out, err = run_cli(capsys, "evaluate", run, "--data", corpus)
    assert status == 0, err
    assert json.loads(out)["examples"] == 120 and json.loads(out)["perplexity"] > 1.0

    status, out, err = run_cli(
        capsys, "explain", run, "the lazy zebra", "-o", tmp_path / "explain", "--no-color"
    )
    assert status == 0, err
    assert out.startswith("perplexity ") and "most surprising" in out and "zebra(" in out
    assert f"wrote {tmp_path / 'explain' / 'surprisal-1.png'}" in out

    status, out, err = run_cli(capsys, "train", "--resume", run, "--set", "trainer.epochs=4")
    assert status == 0, err
    assert "resumed" in err


def test_pretrain_language_model_then_initialise_a_classifier(
    tmp_path, capsys, review_files, tiny_config
):
    lm = tmp_path / "lm"
    status, out, err = run_cli(
        capsys, "pretrain", "--method", "lm", review_files["train"], "--output", lm, *settings()
    )
    assert status == 0, err
    results = json.loads(out)
    assert results["run"] == str(lm) and results["dev_perplexity"] > 1.0
    assert yaml.safe_load((lm / "config.yaml").read_text())["task"] == "language_model"
    config = tiny_config(review_files, max_steps=5)
    config["pretrained"] = {"encoder": str(lm)}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    status, _, err = run_cli(capsys, "train", path, "-o", tmp_path / "run")
    assert status == 0, err
    assert "pretrained encoder" in err

    config["model"]["encoder"]["hidden_size"] = 12
    path.write_text(yaml.safe_dump(config))
    status, _, err = run_cli(capsys, "train", path, "-o", tmp_path / "run2")
    assert status == 2 and "model.encoder.hidden_size" in err
    assert not (tmp_path / "run2").exists()


def test_pretrain_rejects_the_old_flat_keys(tmp_path, capsys, corpus):
    status, _, err = run_cli(
        capsys, "pretrain", "--method", "lm", corpus, "-o", tmp_path / "lm", "--set", "epochs=1"
    )
    assert status == 2 and "unknown key 'epochs'" in err
    assert not (tmp_path / "lm").exists()
