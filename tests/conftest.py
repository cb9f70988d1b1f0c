"""Shared fixtures: small generated datasets and fast CPU settings."""

from __future__ import annotations

from pathlib import Path

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
