"""Domain-adaptive pretraining (issue 18): a language model continued on other text keeps
the vocabulary and starts from the weights of the run it continues."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from attnrnn.config import apply_overrides
from attnrnn.errors import ConfigError, RunError
from attnrnn.tasks import runs

MODEL = {"embedding_size": 8, "encoder": {"cell": "gru", "hidden_size": 8}, "adaptive_cutoffs": [6]}


def corpus(path: Path, text: str) -> Path:
    words = text.split(" ")
    lines = [" ".join(words[i % len(words) :] + words[: i % len(words)]) for i in range(120)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def config(train: Path, *overrides: str):
    data = {
        "task": "language_model",
        "data": {"train": str(train), "dev_fraction": 0.1, "max_length": 16},
        "tokenizer": {"min_freq": 1},
        "model": MODEL,
        "optimizer": {"learning_rate": 0.01, "warmup_steps": 0},
        "trainer": {"max_steps": 3, "num_threads": 1, "progress": False, "batch_tokens": 200},
    }
    return runs.task_named("language_model").config_from_dict(apply_overrides(data, overrides))


def test_a_continued_language_model_keeps_the_vocabulary_and_starts_from_the_weights(
    tmp_path, one_thread
):
    general = corpus(tmp_path / "general.txt", "the cat sat on a mat by the door")
    domain = corpus(tmp_path / "domain.txt", "the film was a great film by far")
    runs.train(config(general), tmp_path / "general", log=lambda message: None)
    messages: list[str] = []
    still = ("optimizer.learning_rate=1e-12", "trainer.max_steps=1")
    continued = config(domain, f"continue_from={tmp_path / 'general'}", *still)
    runs.train(continued, tmp_path / "domain", log=messages.append)
    assert any("continuing the language model" in message for message in messages)
    before, after = runs.load(tmp_path / "general"), runs.load(tmp_path / "domain")
    assert after.assets.text.vocab.tokens == before.assets.text.vocab.tokens  # "film" is <unk>
    for (name, old), new in zip(
        before.model.state_dict().items(), after.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(new, old, atol=1e-6, rtol=0, msg=name)  # one tiny step


def test_what_cannot_be_continued_is_named(tmp_path, one_thread, review_files, tiny_config):
    general = corpus(tmp_path / "general.txt", "the cat sat on a mat")
    runs.train(config(general), tmp_path / "general", log=lambda message: None)
    wider = config(general, f"continue_from={tmp_path / 'general'}", "model.encoder.hidden_size=16")
    with pytest.raises(ConfigError, match=r"model.encoder.hidden_size differ from that run's"):
        runs.train(wider, tmp_path / "wider", log=lambda message: None)
    settings = runs.task_named("classification").config_from_dict(
        tiny_config(review_files, max_steps=1)
    )
    runs.train(settings, tmp_path / "classifier", log=lambda message: None)
    other = config(general, f"continue_from={tmp_path / 'classifier'}")
    with pytest.raises(RunError, match="classification run; continue_from needs a language_model"):
        runs.train(other, tmp_path / "other", log=lambda message: None)
