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
