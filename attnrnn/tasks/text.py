"""Text pieces every task shares: special tokens, a tokenizer with its vocabulary
(:class:`TextSide`), fitting a tokenizer, and holding out a dev split."""

from __future__ import annotations

import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from attnrnn.data.io import file_inside, read_run_json
from attnrnn.data.tokenizers import (
    CharacterTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    WordTokenizer,
    tokenizer_from_dict,
)
from attnrnn.data.vocab import Vocab
from attnrnn.errors import DataError, RunError

Item = TypeVar("Item")

BOS = "<s>"
EOS = "</s>"
# The vocabulary specials of every model that writes tokens (pad first: index 0).
SPECIALS = ("<pad>", "<unk>", BOS, EOS)

TokenizerType = Literal["word", "sentencepiece", "character"]


@dataclass
class TextSide:
    """A tokenizer and the vocabulary built on its tokens (one language, one field)."""

    tokenizer: Tokenizer
    vocab: Vocab

    def encode(self, text: str) -> list[int]:
        return self.vocab.encode(self.tokenizer.tokenize(text))

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.detokenize(self.vocab.decode(ids))

    def save(self, directory: Path, prefix: str = "") -> None:
        """Write ``{prefix}tokenizer.json``, ``{prefix}vocab.json`` and the tokenizer's
        model file (SentencePiece), unless a side saved before wrote the same file."""
        from attnrnn.training.files import write_json_atomic

        settings = self.tokenizer.to_dict()
        model_file = settings.get("model_file")
        if model_file and isinstance(self.tokenizer, SentencePieceTokenizer):
            destination = directory / model_file
            if destination.is_symlink():
                raise RunError(f"{destination}: a symbolic link; not written through")
            if not destination.exists():
                shutil.copy(self.tokenizer.model_path, destination)
        write_json_atomic(directory / f"{prefix}tokenizer.json", settings)
        self.vocab.save(directory / f"{prefix}vocab.json")

    @classmethod
    def load(cls, directory: Path, prefix: str = "") -> TextSide:
        """Read what :meth:`save` wrote; a missing or damaged file, or a model file
        outside ``directory``, is a :class:`RunError` naming the file."""
        tokenizer_name, vocab_name = f"{prefix}tokenizer.json", f"{prefix}vocab.json"
        require_files(directory, tokenizer_name, vocab_name)
        settings = read_run_json(directory, tokenizer_name, "tokenizer settings")
        try:
            tokenizer = tokenizer_from_dict(settings, directory)
        except DataError as error:
            where = "" if error.path is not None else f"{directory / tokenizer_name}: "
            raise RunError(f"{where}{error}") from None
        try:
            vocab = Vocab.load(file_inside(directory, vocab_name, "vocabulary file"))
        except DataError as error:
            raise RunError(str(error)) from None
        return cls(tokenizer, vocab)


def require_files(directory: Path, *names: str) -> None:
    """A :class:`RunError` naming the first of ``names`` missing from a run directory."""
    for name in names:
        if not (directory / name).is_file():
            raise RunError(f"{directory}: incomplete run directory (missing {name})")


def fit_tokenizer(
    settings: Any, texts: Sequence[str], model_prefix: Path, split_contractions: bool = True
) -> Tokenizer:
    """The tokenizer a task's tokenizer configuration asks for: ``settings.type``
    (word, character or sentencepiece; word when the configuration has no type) and
    ``lowercase``; a SentencePiece model (``vocab_size``, ``model_type``) is trained
    on ``texts`` and written to ``model_prefix`` (+ ``.model``)."""
    kind: TokenizerType = getattr(settings, "type", "word")
    if kind == "word":
        return WordTokenizer(lowercase=settings.lowercase, split_contractions=split_contractions)
    if kind == "character":
        return CharacterTokenizer(lowercase=settings.lowercase)
    return SentencePieceTokenizer.train(
        texts,
        model_prefix,
        vocab_size=settings.vocab_size,
        model_type=settings.model_type,
        lowercase=settings.lowercase,
    )


def split_off_dev(
    examples: list[Item],
    fraction: float,
    seed: int,
    where: str | Sequence[str] = "the training data",
) -> tuple[list[Item], list[Item]]:
    """Hold out a seeded random ``fraction`` of the training examples as dev (at least
    one, and at least one left to train on); ``where`` names the training file(s)."""
    if len(examples) < 2:
        names = where if isinstance(where, str) else ", ".join(str(name) for name in where)
        raise DataError(
            f"{len(examples)} example(s): too few to hold out a dev set; give data.dev "
            "or more training data",
            names,
        )
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    cut = min(len(examples) - 1, max(1, int(len(examples) * fraction)))
    dev = [examples[i] for i in sorted(order[:cut])]
    train = [examples[i] for i in sorted(order[cut:])]
    return train, dev


def origin_parts(origin: str) -> tuple[str, int | None]:
    """``"file.tsv:12"`` -> ``("file.tsv", 12)``, for :class:`DataError` messages."""
    path, _, line = origin.rpartition(":")
    if path and line.isdigit():
        return path, int(line)
    return origin, None


def truncate(ids: Sequence[Item], max_length: int, policy: str) -> list[Item]:
    """Cut a token (id) list to ``max_length`` by the policy of :class:`DataConfig`."""
    if len(ids) <= max_length:
        return list(ids)
    if policy == "head":
        return list(ids[:max_length])
    if policy == "tail":
        return list(ids[-max_length:])
    head = max_length // 4
    return list(ids[:head]) + list(ids[len(ids) - (max_length - head) :])
