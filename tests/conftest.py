"""Shared fixtures: small generated datasets and fast CPU settings."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from attnrnn.data.synthetic import make_reviews, write_tsv

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def review_files(tmp_path_factory) -> dict[str, Path]:
    """Generated sentiment TSV files: train (2000), dev (200), test (300)."""
    directory = tmp_path_factory.mktemp("reviews")
    files = {}
    for seed, (split, count) in enumerate({"train": 2000, "dev": 200, "test": 300}.items()):
        files[split] = directory / f"{split}.tsv"
        write_tsv(make_reviews(count, seed=seed + 10), files[split])
    return files


@pytest.fixture(scope="session")
def tiny_config():
    """Make a small, fast classification configuration (a plain mapping) for data files."""
    return _tiny_config


def _tiny_config(files: dict[str, Path], **trainer) -> dict:
    return {
        "data": {
            "train": str(files["train"]),
            "dev": str(files["dev"]),
            "test": str(files["test"]),
        },
        "model": {
            "embedding_size": 24,
            "encoder": {"hidden_size": 24},
            "pooling": {"attention_size": 16},
            "hidden_size": 24,
            "embedding_dropout": 0.1,
            "encoder_dropout": 0.1,
            "dropout": 0.1,
        },
        "optimizer": {"learning_rate": 0.005, "warmup_steps": 10},
        "trainer": {
            "epochs": 3,
            "batch_tokens": 1500,
            "max_batch_size": 64,
            "progress": False,
            "num_threads": 1,
            "early_stopping_patience": None,
            **trainer,
        },
    }


def _updated(config: dict[str, Any], sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``config`` with each of ``sections`` merged into its section of that name."""
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config


@pytest.fixture(scope="session")
def tiny_translation_config():
    """Make a small, fast character-level translation configuration (a plain mapping) for
    parallel data prefixes (``train`` for ``train.src``/``train.tgt``); keyword arguments
    update its top-level sections (``tokenizer={"type": "word"}``)."""
    return _tiny_translation_config


def _tiny_translation_config(train, dev, test=None, **sections) -> dict:
    data = {"train": str(train), "dev": str(dev)}
    if test is not None:
        data["test"] = str(test)
    config = {
        "task": "translation",
        "data": data,
        "tokenizer": {"type": "character"},
        "model": {
            "embedding_size": 16,
            "embedding_dropout": 0.0,
            "encoder": {"hidden_size": 16, "num_layers": 1},
            "decoder": {"hidden_size": 32, "output_dropout": 0.0},
        },
        "optimizer": {"learning_rate": 0.01, "warmup_steps": 2},
        "trainer": {
            "epochs": 2,
            "batch_tokens": 1500,
            "max_batch_size": 64,
            "num_threads": 1,
            "progress": False,
            "early_stopping_patience": None,
        },
        "search": {"beam_size": 2, "max_length_offset": 4},
    }
    return _updated(config, sections)


@pytest.fixture(scope="session")
def tiny_speech_model():
    """Make the model section of a tiny speech run (a plain mapping, as config.yaml holds
    it): a one-layer convolutional listener and a location-aware LSTM decoder of 16 units,
    no dropout. Keyword arguments update its sections (``listener={"num_layers": 2}``);
    ``from_dict(SpeechModelConfig, ...)`` makes the dataclass."""
    return _tiny_speech_model


def _tiny_speech_model(**sections: dict[str, Any]) -> dict[str, Any]:
    model = {
        "listener": {"conv_channels": 4, "hidden_size": 16, "num_layers": 1, "dropout": 0.0},
        "embedding_size": 8,
        "decoder": {
            "style": "bahdanau",
            "cell": "lstm",
            "hidden_size": 16,
            "attention": "location",
            "attention_size": 12,
            "location_channels": 3,
            "location_kernel_size": 5,
            "output_dropout": 0.0,
        },
    }
    return _updated(model, sections)


@pytest.fixture(scope="session")
def tiny_speech_config():
    """Make a small, fast speech configuration (a plain mapping) for a training manifest
    of 8 kHz audio, with the :func:`tiny_speech_model`, 20% of it held out for dev;
    keyword arguments update its top-level sections (``trainer={"epochs": 2}``)."""
    return _tiny_speech_config


def _tiny_speech_config(train, **sections) -> dict:
    config = {
        "task": "speech",
        "data": {"train": str(train), "dev_fraction": 0.2, "feature_cache": None},
        "features": {"sample_rate": 8000, "num_mel_bins": 20},
        "model": _tiny_speech_model(),
        "optimizer": {"learning_rate": 0.005, "warmup_steps": 5},
        "trainer": {
            "epochs": 1,
            "batch_tokens": 3000,
            "max_batch_size": 16,
            "progress": False,
            "num_threads": 1,
            "early_stopping_patience": None,
        },
    }
    return _updated(config, sections)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through the system chromedriver (tests/test_explorer.py,
    tests/serving/test_browser.py); a failure, never a skip, when it is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:  # pragma: no cover - a broken install
        pytest.fail("selenium is not installed: pip install -e '.[dev]'")
    binary = os.environ.get("ATTNRNN_CHROMIUM") or shutil.which("chromium")
    driver_path = os.environ.get("ATTNRNN_CHROMEDRIVER") or shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.fail(
            "the browser tests need Chromium and its driver: "
            "apt-get install chromium chromium-driver (.ci/run does)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1200,900",
        "--force-device-scale-factor=1",
        # A fake microphone (a beep) that needs no permission prompt.
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


def _write_tones(directory: Path, count: int, seed: int, rate: int = 8000) -> Path:
    """WAV files of ``count`` tone utterances and their TSV manifest (audio, text)."""
    import soundfile

    from attnrnn.data.tones import make_tone_utterances

    lines = ["audio\ttext"]
    for number, utterance in enumerate(make_tone_utterances(count, seed, sample_rate=rate)):
        soundfile.write(directory / f"{seed}-{number}.wav", utterance.samples, rate)
        lines.append(f"{seed}-{number}.wav\t{utterance.text}")
    manifest = directory / f"tones-{seed}.tsv"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


@pytest.fixture(scope="session")
def write_tones():
    """Write generated tone utterances (WAV) and their manifest into a folder."""
    return _write_tones


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for a test, and the count it found restored afterwards (training
    applies its config's ``num_threads`` process-wide)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_summarizer() -> dict[str, Any]:
    """The tokenizer, model and optimizer sections of a tiny summarization run."""
    return {
        "tokenizer": {"min_freq": 1},
        "model": {
            "embedding_size": 16,
            "encoder": {"cell": "lstm", "hidden_size": 16},
            "decoder": {"cell": "lstm", "hidden_size": 32, "attention_size": 16},
        },
        "optimizer": {"learning_rate": 0.01, "warmup_steps": 5},
    }
