"""Word vectors trained on raw text with gensim's word2vec (skip-gram, negative sampling).

Word2vec is a solved problem with a well-kept implementation, so attnrnn
drives gensim rather than rewriting it. The texts are tokenized with the
same :class:`~attnrnn.data.tokenizers.WordTokenizer` a classifier uses, so
the vectors' words match the classifier's vocabulary.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from attnrnn.config import check_positive
from attnrnn.console import Log
from attnrnn.console import log as log_stderr
from attnrnn.data.tokenizers import WordTokenizer
from attnrnn.data.vectors import save_word_vectors
from attnrnn.errors import AttnrnnError, ConfigError


@dataclass(frozen=True)
class Word2VecConfig:
    """Settings of ``attnrnn pretrain --method word2vec``."""

    dimension: int = 300
    window: int = 5
    min_count: int = 3
    epochs: int = 5
    negative: int = 10
    sample: float = 1e-4
    skip_gram: bool = True
    lowercase: bool = True
    workers: int = 2
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive(self, "dimension", "window", "min_count", "epochs", "negative", "workers")


def train_word2vec(
    config: Word2VecConfig, texts: Sequence[str], output: Path, log: Log = log_stderr
) -> dict[str, Any]:
    """Train vectors on ``texts`` and write them to ``output`` in word2vec text format,
    most frequent words first. Returns statistics (also written beside the vectors)."""
    try:
        from gensim.models import Word2Vec
        from gensim.models.callbacks import CallbackAny2Vec
    except ImportError:
        raise AttnrnnError(
            "word2vec pretraining needs gensim: pip install 'attnrnn[word2vec]'"
        ) from None
    if output.exists():
        raise ConfigError(f"{output} already exists; choose another --output")
    tokenizer = WordTokenizer(lowercase=config.lowercase)
    started = time.monotonic()
    sentences = [tokenizer.tokenize(text) for text in texts]
    tokens = sum(len(sentence) for sentence in sentences)
    log(f"tokenized {len(sentences)} texts, {tokens} tokens in {time.monotonic() - started:.0f} s")

    class EpochLogger(CallbackAny2Vec):
        def __init__(self) -> None:
            self.epoch = 0

        def on_epoch_end(self, model: object) -> None:
            self.epoch += 1
            elapsed = time.monotonic() - started
            log(f"word2vec epoch {self.epoch}/{config.epochs} done ({elapsed:.0f} s)")

    model = Word2Vec(
        sentences=sentences,
        callbacks=[EpochLogger()],
        vector_size=config.dimension,
        window=config.window,
        min_count=config.min_count,
        epochs=config.epochs,
        negative=config.negative,
        sample=config.sample,
        sg=1 if config.skip_gram else 0,
        workers=config.workers,
        seed=config.seed,
    )
    words = list(model.wv.index_to_key)  # most frequent first
    if not words:
        raise ConfigError(f"no word occurs {config.min_count} times; lower min_count")
    matrix = torch.from_numpy(model.wv.vectors.copy())  # (V, dimension)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_word_vectors(output, words, matrix)
    statistics = {
        "texts": len(sentences),
        "tokens": tokens,
        "vocabulary": len(words),
        "seconds": round(time.monotonic() - started, 1),
        "config": asdict(config),
        "tokenizer": tokenizer.to_dict(),
    }
    info = output.with_name(output.name + ".json")
    info.write_text(json.dumps(statistics, indent=2), encoding="utf-8")
    log(f"wrote {len(words)} vectors to {output} in {statistics['seconds']} s")
    return statistics
