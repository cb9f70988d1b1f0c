"""``attnrnn pretrain``: word vectors or a bidirectional language model on raw text."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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
        help="override a setting, e.g. dimension=200 or encoder.hidden_size=512",
    )
    parser.set_defaults(handler=command_pretrain)


def command_pretrain(arguments: argparse.Namespace) -> int:
    from attnrnn.pretrain.lm_training import main_lm, read_texts

    if arguments.method == "lm":
        results = main_lm(
            arguments.data, Path(arguments.output), arguments.set, arguments.text_field
        )
    else:
        from attnrnn.pretrain.word2vec import Word2VecConfig, train_word2vec

        config = from_dict(Word2VecConfig, apply_overrides({}, arguments.set))
        texts = read_texts(arguments.data, arguments.text_field)
        results = train_word2vec(config, texts, Path(arguments.output))
    print(json.dumps(results, indent=2))
    return 0
