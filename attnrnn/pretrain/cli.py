"""``attnrnn pretrain``: word vectors, or a shortcut to train a bidirectional language
model (a ``language_model`` run, the same as ``attnrnn train`` on such a config)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from attnrnn.config import apply_overrides, from_dict


def add_pretrain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data",
        nargs="+",
        help="raw text files (.txt one text a line, .jsonl[.gz] with a text field, .tsv/.csv)",
    )
    parser.add_argument(
        "--method",
        choices=("word2vec", "lm"),
        default="word2vec",
        help="word2vec: word vectors (for pretrained.vectors); lm: forward/"
        "backward language model of embedding + RNN (for pretrained.encoder)",
    )
    parser.add_argument(
        "--output", "-o", required=True, help="vectors file (word2vec) or run directory (lm)"
    )
    parser.add_argument("--text-field", default="text", help="JSONL field or table column")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting. word2vec: dimension=200, epochs=2...; lm: a key of the "
        "language_model run config (see configs/lm_imdb.yaml), e.g. "
        "model.encoder.hidden_size=256, model.embedding_size=300, trainer.epochs=1, "
        "tokenizer.min_freq=1",
    )
    parser.set_defaults(handler=command_pretrain)


def command_pretrain(arguments: argparse.Namespace) -> int:
    if arguments.method == "lm":
        output = Path(arguments.output)
        scores = pretrain_language_model(
            arguments.data, output, arguments.set, arguments.text_field
        )
        results = {"run": str(output), **scores}  # as `attnrnn train` prints
    else:
        from attnrnn.pretrain.word2vec import Word2VecConfig, train_word2vec
        from attnrnn.tasks.language_model import read_texts

        config = from_dict(Word2VecConfig, apply_overrides({}, arguments.set))
        texts = read_texts(arguments.data, arguments.text_field)
        results = train_word2vec(config, texts, Path(arguments.output))
    print(json.dumps(results, indent=2))
    return 0


def pretrain_language_model(
    files: list[str], output: Path, overrides: list[str], text_field: str = "text"
) -> dict[str, Any]:
    """``attnrnn pretrain --method lm``: a language_model run on ``files`` into ``output``
    with ``--set`` overrides; returns its results (results.json)."""
    from attnrnn.tasks.runs import task_named, train

    data = {"task": "language_model", "data": {"train": list(files), "text_field": text_field}}
    config = task_named("language_model").config_from_dict(apply_overrides(data, overrides))
    return train(config, output)
