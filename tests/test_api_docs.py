"""docs/api.md runs: every Python example of it is executed, in order, in a folder where
tiny runs of every task stand at the paths the examples name (runs/sst2, runs/de-en,
runs/an4, runs/dialogsum) and recording.wav is a short generated recording."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import soundfile

import attnrnn
from attnrnn.config import from_dict
from attnrnn.data.dates import split_date_pairs, write_parallel
from attnrnn.data.synthetic import make_reviews, write_tsv
from attnrnn.data.tones import make_tone_utterances
from attnrnn.tasks.runs import task_named

DOCS = Path(__file__).resolve().parent.parent / "docs" / "api.md"
FAST = {"progress": False, "num_threads": 1, "early_stopping_patience": None}


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def train(name: str, config: dict, run: Path) -> None:
    typed = from_dict(task_named(config.get("task", "classification")).config_class, config)
    attnrnn.train(typed, run)


def classification_run(folder: Path) -> None:
    for seed, (split, count) in enumerate({"train": 600, "dev": 100, "test": 100}.items()):
        write_tsv(make_reviews(count, seed=seed), folder / f"{split}.tsv")
    config = {
        "data": {split: f"{split}.tsv" for split in ("train", "dev", "test")},
        "model": {"embedding_size": 16, "encoder": {"hidden_size": 16}, "hidden_size": 16},
        "trainer": {"epochs": 1, **FAST},
    }
    train("classification", config, folder / "runs" / "sst2")


def translation_run(folder: Path) -> None:
    splits = split_date_pairs(600, 50, 50, seed=3)
    for name, pairs in zip(("train", "dev", "test"), splits, strict=True):
        write_parallel(pairs, folder / f"dates.{name}.de", folder / f"dates.{name}.en")
    config = {
        "task": "translation",
        "data": {
            "train": "dates.train",
            "dev": "dates.dev",
            "test": "dates.test",
            "source_language": "de",
            "target_language": "en",
        },
        "tokenizer": {"type": "character", "joint": True},
        "model": {
            "embedding_size": 16,
            "encoder": {"hidden_size": 16},
            "decoder": {"hidden_size": 24, "attention_size": 16},
        },
        "trainer": {"epochs": 1, "batch_tokens": 2000, **FAST},
        "search": {"beam_size": 2},
    }
    train("translation", config, folder / "runs" / "de-en")


def speech_run(folder: Path) -> None:
    lines = ["audio\ttext"]
    (folder / "tones").mkdir()
    for number, utterance in enumerate(make_tone_utterances(40, 5, sample_rate=8000)):
        soundfile.write(folder / "tones" / f"{number}.wav", utterance.samples, 8000)
        lines.append(f"tones/{number}.wav\t{utterance.text}")
        if number == 0:
            soundfile.write(folder / "recording.wav", utterance.samples, 8000)
    (folder / "tones.tsv").write_text("\n".join(lines) + "\n")
    config = {
        "task": "speech",
        "data": {"train": "tones.tsv", "test": "tones.tsv", "feature_cache": None},
        "features": {"sample_rate": 8000, "num_mel_bins": 20},
        "model": {
            "listener": {"conv_channels": 4, "hidden_size": 16, "num_layers": 1},
            "embedding_size": 8,
            "decoder": {"hidden_size": 16, "attention_size": 12, "location_channels": 3},
        },
        "trainer": {"epochs": 1, "batch_tokens": 3000, **FAST},
        "search": {"beam_size": 2, "max_length_ratio": 2.0},
    }
    train("speech", config, folder / "runs" / "an4")


def summarization_run(folder: Path) -> None:
    generator = random.Random(4)
    for split, count in {"train": 80, "dev": 10}.items():
        with (folder / f"dialogues.{split}.jsonl").open("w") as handle:
            for _ in range(count):
                thing = generator.choice(("tea", "cake", "a jacket", "soup"))
                dialogue = f"#Person1#: Can I help you? #Person2#: I'd like {thing}."
                record = {"dialogue": dialogue, "summary": f"#Person2# wants {thing}."}
                handle.write(json.dumps(record) + "\n")
    config = {
        "task": "summarization",
        "data": {"train": "dialogues.train.jsonl", "dev": "dialogues.dev.jsonl"},
        "tokenizer": {"min_freq": 1},
        "model": {
            "embedding_size": 16,
            "encoder": {"cell": "lstm", "hidden_size": 16},
            "decoder": {"cell": "lstm", "hidden_size": 16, "attention_size": 16},
        },
        "trainer": {"epochs": 1, "batch_tokens": 2000, **FAST},
        "search": {"beam_size": 2},
    }
    train("summarization", config, folder / "runs" / "dialogsum")


@pytest.fixture(scope="module")
def docs_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for make in (classification_run, translation_run, speech_run, summarization_run):
            make(folder)
    return folder


def test_every_python_example_of_docs_api_runs(docs_folder, monkeypatch, capsys):
    blocks = python_blocks(DOCS.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    monkeypatch.chdir(docs_folder)
    for number, block in enumerate(blocks, start=1):
        try:
            exec(compile(block, f"docs/api.md example {number}", "exec"), {})
        except Exception as error:  # the failing example's code, for the report
            raise AssertionError(f"docs/api.md example {number} failed:\n{block}") from error
    out = capsys.readouterr().out
    assert "<Classifier (classification) from runs/sst2 on cpu>" in out
    assert "most attended:" in out and "copied from the dialogue:" in out
    assert (docs_folder / "explain-sst2" / "explain-1.png").is_file()
    assert (docs_folder / "bundles" / "sst2" / "README.md").is_file()
