"""Tiny runs of every served task, trained once per test session in a few seconds each,
and a live uvicorn server on a free loopback port.

The serve extra's libraries are imported, not skipped when missing: these tests are
part of ``make test`` and CI, and must fail there if the server cannot run.

The runs: ``classifier`` (generated reviews), ``dates`` (character-level date
translation), ``tones`` (speech recognition of generated tone syllables) and
``dialogues`` (pointer-generator summaries of generated dialogues).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import soundfile
import uvicorn

import attnrnn
from attnrnn.data.dates import split_date_pairs, write_parallel
from attnrnn.data.tones import make_tone_utterances
from attnrnn.tasks.runs import read_config

FAST_TRAINER = {
    "batch_tokens": 3000,
    "max_batch_size": 64,
    "progress": False,
    "num_threads": 1,
    "early_stopping_patience": None,
}


def train(directory: Path, config: dict[str, Any]) -> Path:
    """Train ``config`` (a mapping, as config.yaml holds it) into ``directory/run``."""
    path = directory / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    run = directory / "run"
    attnrnn.train(read_config(path), run)
    return run


@pytest.fixture(scope="session")
def classifier_run(tmp_path_factory, review_files, tiny_config) -> Path:
    config = tiny_config(review_files, max_steps=15, epochs=1)
    return train(tmp_path_factory.mktemp("classifier"), {"task": "classification", **config})


@pytest.fixture(scope="session")
def dates_run(tmp_path_factory, tiny_translation_config) -> Path:
    directory = tmp_path_factory.mktemp("dates")
    for split, pairs in zip(("train", "dev"), split_date_pairs(300, 20, 0, seed=3), strict=False):
        write_parallel(pairs, directory / f"{split}.src", directory / f"{split}.tgt")
    config = tiny_translation_config(
        directory / "train",
        directory / "dev",
        tokenizer={"joint": False},
        trainer={"batch_tokens": 3000},
    )
    return train(directory, config)


@pytest.fixture(scope="session")
def tones_run(tmp_path_factory, tiny_speech_config, write_tones) -> Path:
    directory = tmp_path_factory.mktemp("tones")
    config = tiny_speech_config(
        write_tones(directory, 30, seed=1),
        search={"beam_size": 2, "max_length_ratio": 2.0},
        dev_search={"beam_size": 1, "max_length_ratio": 2.0},
    )
    return train(directory, config)


@pytest.fixture(scope="session")
def tone_files(tmp_path_factory) -> list[Path]:
    """Two recordings the speech run never saw: 8 kHz and 16 kHz (resampled)."""
    directory = tmp_path_factory.mktemp("tone-files")
    files = []
    for rate in (8000, 16000):
        [utterance] = make_tone_utterances(1, seed=rate, sample_rate=rate)
        files.append(directory / f"tone-{rate}.wav")
        soundfile.write(files[-1], utterance.samples, rate)
    return files


def dialogue(generator: random.Random) -> dict[str, str]:
    name = generator.choice(("anna", "bob", "carl", "dora"))
    thing = generator.choice(("tea", "cake", "bread", "soup", "rice"))
    text = f"#Person1#: Hello {name}, would you like some {thing}?\n#Person2#: Yes please."
    return {"dialogue": text, "summary": f"#Person2# wants some {thing}."}


@pytest.fixture(scope="session")
def dialogues_run(tmp_path_factory, tiny_summarizer) -> Path:
    directory = tmp_path_factory.mktemp("dialogues")
    generator = random.Random(1)
    for split, count in (("train", 100), ("dev", 10)):
        lines = [json.dumps(dialogue(generator)) for _ in range(count)]
        (directory / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {
        "task": "summarization",
        "data": {
            "train": str(directory / "train.jsonl"),
            "dev": str(directory / "dev.jsonl"),
            "max_source_length": 60,
        },
        **tiny_summarizer,
        "trainer": {**FAST_TRAINER, "epochs": 1},
        "search": {"beam_size": 2, "min_length": 2},
        "dev_search": {"beam_size": 1, "min_length": 2},
    }
    return train(directory, config)


@pytest.fixture(scope="session")
def models(classifier_run, dates_run, tones_run, dialogues_run) -> dict[str, Any]:
    """The four runs, loaded on the CPU, by the names the server gives them."""
    runs = {
        "classifier": classifier_run,
        "dates": dates_run,
        "tones": tones_run,
        "dialogues": dialogues_run,
    }
    return {name: attnrnn.load(run, device="cpu") for name, run in runs.items()}


class LiveServer:
    """An app served by uvicorn on a free loopback port, in a thread.

    ``url`` is its base URL once entered; leaving stops it the way SIGTERM does
    (in-flight requests finish first)."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", access_log=False
        )
        self.app = app
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="session")
def live_server() -> Iterator[type[LiveServer]]:
    """The :class:`LiveServer` class (a fixture, so test modules need no import)."""
    yield LiveServer
