"""The life of a classification run: prepare data, create the run directory,
train, and load the run again to evaluate, predict and explain."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from attnrnn.config import load_yaml, save_yaml
from attnrnn.console import Log
from attnrnn.console import log as log_stderr
from attnrnn.data.readers import TextExample
from attnrnn.data.tokenizers import (
    SentencePieceTokenizer,
    Tokenizer,
    WordTokenizer,
    tokenizer_from_dict,
)
from attnrnn.data.vectors import load_word_vectors, read_vector_words
from attnrnn.data.vocab import Vocab
from attnrnn.errors import ConfigError, DataError, RunError
from attnrnn.models.classifier import TextClassifier
from attnrnn.tasks.classification import (
    ClassificationRunConfig,
    ClassificationTask,
    EncodedSplit,
    TokenizerConfig,
    evaluate_split,
    label_indices,
    origin_parts,
    predict_split,
    read_split,
    sort_labels,
    split_off_dev,
    truncate,
)
from attnrnn.training import checkpoint
from attnrnn.training.runtime import configure_runtime, resolve_device
from attnrnn.training.trainer import Trainer

# --------------------------------------------------------------------------- preparation


@dataclass
class Prepared:
    """Everything derived from the data before training starts."""

    tokenizer: Tokenizer
    vocab: Vocab
    labels: list[str]
    train: EncodedSplit
    dev: EncodedSplit
    test: EncodedSplit | None
    workdir: Path


def build_tokenizer(config: TokenizerConfig, texts: Sequence[str], workdir: Path) -> Tokenizer:
    """A word tokenizer, or a SentencePiece model trained on ``texts`` into ``workdir``."""
    if config.type == "word":
        return WordTokenizer(lowercase=config.lowercase)
    return SentencePieceTokenizer.train(
        texts,
        workdir / "sentencepiece",
        vocab_size=config.vocab_size,
        model_type=config.model_type,
        lowercase=config.lowercase,
    )


def encode_texts(
    texts: Sequence[str], tokenizer: Tokenizer, vocab: Vocab, max_length: int, policy: str
) -> list[list[int]]:
    """Token ids per text, truncated; a text with no tokens becomes one ``<unk>``."""
    encoded = []
    for text in texts:
        ids = vocab.encode(tokenizer.tokenize(text)) or [vocab.unk_index]
        encoded.append(truncate(ids, max_length, policy))
    return encoded


TextSide = tuple[Tokenizer, Vocab, list[str]]


def prepare(
    config: ClassificationRunConfig,
    workdir: Path,
    log: Log = log_stderr,
    text_side: TextSide | None = None,
) -> Prepared:
    """Read the splits, fit tokenizer, vocabulary and labels (unless ``text_side``
    gives saved ones, as on resume), and encode everything."""
    data = config.data
    train_examples = read_split(data.train, data, phrases=data.train_phrases)
    if data.dev:
        dev_examples = read_split(data.dev, data)
    else:
        train_examples, dev_examples = split_off_dev(
            train_examples, data.dev_fraction, config.trainer.seed
        )
    test_examples = read_split(data.test, data) if data.test else None
    _require_labels(train_examples)
    if text_side is None:
        text_side = _fit_text_side(config, train_examples, workdir)
    tokenizer, vocab, labels = text_side
    log(
        f"{len(train_examples)} training examples, {len(dev_examples)} dev, "
        f"{len(labels)} labels, vocabulary {len(vocab)}"
    )

    def encode(examples: list[TextExample]) -> EncodedSplit:
        texts = [example.text for example in examples]
        ids = encode_texts(texts, tokenizer, vocab, data.max_length, data.truncate)
        return EncodedSplit(ids, label_indices(examples, labels))

    test = encode(test_examples) if test_examples is not None else None
    return Prepared(
        tokenizer, vocab, labels, encode(train_examples), encode(dev_examples), test, workdir
    )


def _fit_text_side(
    config: ClassificationRunConfig, train_examples: list[TextExample], workdir: Path
) -> TextSide:
    labels = sort_labels({example.label for example in train_examples if example.label})
    if len(labels) < 2:
        raise DataError(
            f"the training data has only one label ({labels[0]!r}); need two or more",
            config.data.train,
        )
    texts = [example.text for example in train_examples]
    tokenizer = build_tokenizer(config.tokenizer, texts, workdir)
    return tokenizer, _build_vocab(config, tokenizer, texts), labels


def _require_labels(examples: list[TextExample]) -> None:
    for example in examples:
        if example.label is None:
            raise DataError("training examples need labels", *origin_parts(example.origin))


def _build_vocab(config: ClassificationRunConfig, tokenizer: Tokenizer, texts: list[str]) -> Vocab:
    token_lists = [tokenizer.tokenize(text) for text in texts]
    vocab = Vocab.build(
        token_lists, min_freq=config.tokenizer.min_freq, max_size=config.tokenizer.max_size
    )
    extra = config.pretrained.vocab_from_vectors
    if config.pretrained.vectors and extra:
        words = read_vector_words(config.pretrained.vectors, extra)
        vocab = vocab.extended([word for word in words if word not in vocab])
    return vocab


# --------------------------------------------------------------------------- training


def make_model(config: ClassificationRunConfig, vocab: Vocab, num_classes: int) -> TextClassifier:
    return TextClassifier(len(vocab), num_classes, config.model, vocab.pad_index)


def make_task(
    config: ClassificationRunConfig, prepared: Prepared, device: torch.device
) -> ClassificationTask:
    """The training task (batches, loss, dev accuracy) over prepared splits."""
    return ClassificationTask(
        prepared.train,
        prepared.dev,
        prepared.vocab.pad_index,
        config.trainer,
        config.model.pooling.penalty_weight,
        device,
    )


def initialise_from_pretrained(
    model: TextClassifier, config: ClassificationRunConfig, vocab: Vocab, log: Log
) -> None:
    """Copy pretrained word vectors and/or a pretrained LM encoder into the model."""
    pretrained = config.pretrained
    if pretrained.vectors:
        generator = torch.Generator().manual_seed(config.trainer.seed)
        matrix, coverage = load_word_vectors(
            pretrained.vectors, vocab, lowercase=False, generator=generator
        )
        if matrix.size(1) != config.model.embedding_size:
            raise ConfigError(
                f"{pretrained.vectors} has {matrix.size(1)}-dimensional vectors but "
                f"model.embedding_size is {config.model.embedding_size}"
            )
        with torch.no_grad():
            model.embedding.weight.copy_(matrix)
        log(f"pretrained vectors cover {coverage:.1%} of the vocabulary")
    if pretrained.encoder:
        from attnrnn.pretrain.transfer import load_pretrained_encoder

        load_pretrained_encoder(Path(pretrained.encoder), model, vocab, log)


def write_run_files(
    run_directory: Path, config: ClassificationRunConfig, prepared: Prepared
) -> None:
    """Create the run directory with config, tokenizer, vocabulary and labels, atomically."""
    with checkpoint.staged_run_directory(run_directory) as staging:
        save_yaml(config, staging / "config.yaml")
        tokenizer_settings = prepared.tokenizer.to_dict()
        model_file = tokenizer_settings.get("model_file")
        if model_file:
            shutil.copy(prepared.workdir / model_file, staging / model_file)
        checkpoint.write_json_atomic(staging / "tokenizer.json", tokenizer_settings)
        prepared.vocab.save(staging / "vocab.json")
        checkpoint.write_json_atomic(staging / "labels.json", prepared.labels)


def train(
    config: ClassificationRunConfig,
    run_directory: Path,
    resume: bool = False,
    log: Log = log_stderr,
) -> dict[str, float]:
    """Train a classifier into ``run_directory``; return the best checkpoint's test metrics
    (or dev metrics when there is no test split)."""
    run_directory = Path(run_directory)
    device = configure_runtime(config.trainer)
    run_directory.parent.mkdir(parents=True, exist_ok=True)
    text_side = _load_text_side(run_directory) if resume else None
    with tempfile.TemporaryDirectory(dir=run_directory.parent, prefix=".prepare-") as workdir:
        prepared = prepare(config, Path(workdir), log, text_side)
        model = make_model(config, prepared.vocab, len(prepared.labels)).to(device)
        if not resume:
            initialise_from_pretrained(model, config, prepared.vocab, log)
            write_run_files(run_directory, config, prepared)
    task = make_task(config, prepared, device)
    trainer = Trainer(
        model,
        task,
        config.optimizer,
        config.trainer,
        run_directory,
        metric="accuracy",
        higher_is_better=True,
    )
    if resume:
        trainer.resume()
        log(f"resumed {run_directory} at step {trainer.state.step}")
    trainer.train()
    checkpoint.load_weights(run_directory / "best", model, device)
    final = evaluate_split(model, prepared.dev, prepared.vocab.pad_index, config.trainer, device)
    results = {f"dev_{name}": value for name, value in final.items()}
    if prepared.test is not None:
        test = evaluate_split(
            model, prepared.test, prepared.vocab.pad_index, config.trainer, device
        )
        results.update({f"test_{name}": value for name, value in test.items()})
    checkpoint.write_json_atomic(run_directory / "results.json", results)
    return results


# --------------------------------------------------------------------------- using a run


def _load_text_side(run_directory: Path) -> tuple[Tokenizer, Vocab, list[str]]:
    import json

    for name in ("config.yaml", "tokenizer.json", "vocab.json", "labels.json"):
        if not (run_directory / name).is_file():
            raise RunError(f"{run_directory}: not a run directory (missing {name})")
    tokenizer = tokenizer_from_dict(
        json.loads((run_directory / "tokenizer.json").read_text(encoding="utf-8")),
        run_directory,
    )
    vocab = Vocab.load(run_directory / "vocab.json")
    labels = json.loads((run_directory / "labels.json").read_text(encoding="utf-8"))
    return tokenizer, vocab, labels


@dataclass
class Prediction:
    """One text's prediction with the attention that produced it."""

    text: str
    label: str
    probabilities: dict[str, float]
    tokens: list[str]
    attention: list[list[float]]  # (r, S): one row per hop


class ClassifierRun:
    """A trained run loaded from its directory, ready to predict, evaluate and explain."""

    def __init__(self, run_directory: str | Path, device: str = "auto", checkpoint_name="best"):
        self.directory = Path(run_directory)
        if not self.directory.is_dir():
            raise RunError(f"{self.directory}: no such run directory")
        self.tokenizer, self.vocab, self.labels = _load_text_side(self.directory)
        self.config = ClassificationRunConfig.from_dict(load_yaml(self.directory / "config.yaml"))
        self.device = resolve_device(device)
        self.model = make_model(self.config, self.vocab, len(self.labels)).to(self.device)
        checkpoint.load_weights(self.directory / checkpoint_name, self.model, self.device)
        self.model.eval()

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        data = self.config.data
        return encode_texts(texts, self.tokenizer, self.vocab, data.max_length, data.truncate)

    def _display_tokens(self, text: str, length: int) -> list[str]:
        """The tokens the model saw, as written (not ``<unk>``), one per weight."""
        data = self.config.data
        tokens = truncate(self.tokenizer.tokenize(text), data.max_length, data.truncate)
        return tokens if len(tokens) == length else ["<unk>"] * length

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Predict labels for raw texts, keeping each text's attention weights."""
        ids = self.encode(texts)
        probabilities, attention = predict_split(
            self.model,
            EncodedSplit(ids, None),
            self.vocab.pad_index,
            self.config.trainer,
            self.device,
        )
        predictions = []
        for text, token_ids, row, weights in zip(texts, ids, probabilities, attention, strict=True):
            predictions.append(
                Prediction(
                    text=text,
                    label=self.labels[int(row.argmax())],
                    probabilities={
                        label: float(p) for label, p in zip(self.labels, row, strict=True)
                    },
                    tokens=self._display_tokens(text, len(token_ids)),
                    attention=weights.tolist(),
                )
            )
        return predictions

    def evaluate(self, examples: Sequence[TextExample]) -> dict[str, float]:
        """Accuracy, macro F1 and loss on labelled examples."""
        split = EncodedSplit(
            self.encode([e.text for e in examples]), label_indices(examples, self.labels)
        )
        return evaluate_split(
            self.model, split, self.vocab.pad_index, self.config.trainer, self.device
        )
