"""Text classification as a training task: configuration, data preparation,
loss and evaluation for :class:`attnrnn.models.classifier.TextClassifier`.

A run directory holds everything needed to use the model again::

    config.yaml         the full configuration, defaults filled in
    tokenizer.json      tokenizer settings (+ sentencepiece.model)
    vocab.json          the vocabulary
    labels.json         class names in output order
    best/ last/         checkpoints (weights as safetensors; last/ can resume)
    metrics.csv         dev metrics per evaluation
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import torch
import torch.nn.functional as F

from attnrnn.config import OptimizerConfig, TrainerConfig, check_positive, from_dict
from attnrnn.data.batching import make_batches, pad_sequences
from attnrnn.data.readers import TextExample, read_examples
from attnrnn.errors import ConfigError, DataError
from attnrnn.models.classifier import ClassifierConfig, TextClassifier
from attnrnn.training.trainer import LossOutput

Item = TypeVar("Item")

# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class DataConfig:
    """Where the examples are and how to read them.

    Texts longer than ``max_length`` tokens are truncated: ``head`` keeps the
    start, ``tail`` the end, ``head_tail`` the first quarter and the last
    three quarters of the budget (reviews tend to conclude at the end).
    """

    train: str
    dev: str | None = None
    test: str | None = None
    format: str = "auto"
    text_field: str | int = "text"
    label_field: str | int = "label"
    delimiter: str | None = None
    header: bool | None = None
    sst_granularity: Literal["binary", "fine"] = "binary"
    train_phrases: bool = False
    dev_fraction: float = 0.1
    max_length: int = 400
    truncate: Literal["head", "tail", "head_tail"] = "head_tail"

    def __post_init__(self) -> None:
        check_positive(self, "max_length")
        if not 0.0 < self.dev_fraction < 1.0:
            raise ConfigError(f"dev_fraction must be in (0, 1), got {self.dev_fraction}")


@dataclass(frozen=True)
class TokenizerConfig:
    """Word-level or SentencePiece tokenization and the vocabulary built on it."""

    type: Literal["word", "sentencepiece"] = "word"
    lowercase: bool = True
    vocab_size: int = 8000
    model_type: Literal["unigram", "bpe"] = "unigram"
    min_freq: int = 1
    max_size: int | None = 50000

    def __post_init__(self) -> None:
        check_positive(self, "vocab_size", "min_freq")


@dataclass(frozen=True)
class PretrainedConfig:
    """Initialisation from unsupervised pretraining (``attnrnn pretrain``).

    vectors: a word2vec / GloVe text file for the embedding layer.
    vocab_from_vectors: also add the N most frequent words of that file to the
        vocabulary, so that words never seen in the labelled data still get
        their pretrained vector.
    encoder: a language-model pretraining run whose embedding and RNN
        encoder initialise the classifier's.
    """

    vectors: str | None = None
    vocab_from_vectors: int = 0
    encoder: str | None = None


@dataclass(frozen=True)
class ClassificationRunConfig:
    """Everything a classification run needs; stored as the run's config.yaml."""

    data: DataConfig
    task: Literal["classification"] = "classification"
    tokenizer: TokenizerConfig = TokenizerConfig()
    pretrained: PretrainedConfig = PretrainedConfig()
    model: ClassifierConfig = ClassifierConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    trainer: TrainerConfig = TrainerConfig()

    @classmethod
    def from_dict(cls, data: dict) -> ClassificationRunConfig:
        return from_dict(cls, data)


# --------------------------------------------------------------------------- data


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


def read_split(path: str, config: DataConfig, phrases: bool = False) -> list[TextExample]:
    """Read one split with the data configuration's format options."""
    return read_examples(
        path,
        format=config.format,
        text_field=config.text_field,
        label_field=config.label_field,
        delimiter=config.delimiter,
        header=config.header,
        sst_granularity=config.sst_granularity,
        sst_phrases=phrases,
    )


def split_off_dev(
    examples: list[Item], fraction: float, seed: int
) -> tuple[list[Item], list[Item]]:
    """Hold out a seeded random ``fraction`` of the training examples as dev."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    cut = max(1, int(len(examples) * fraction))
    dev = [examples[i] for i in sorted(order[:cut])]
    train = [examples[i] for i in sorted(order[cut:])]
    return train, dev


def sort_labels(labels: set[str]) -> list[str]:
    """Class names in a stable order: numerically when every label is an integer."""
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def label_indices(examples: Sequence[TextExample], labels: list[str]) -> list[int]:
    """Map each example's label to its class index; unknown labels are errors."""
    positions = {label: index for index, label in enumerate(labels)}
    indices = []
    for example in examples:
        if example.label not in positions:
            raise DataError(
                f"label {example.label!r} was never seen in training "
                f"(known labels: {', '.join(labels)})",
                *origin_parts(example.origin),
            )
        indices.append(positions[example.label])
    return indices


def origin_parts(origin: str) -> tuple[str, int | None]:
    path, _, line = origin.rpartition(":")
    if path and line.isdigit():
        return path, int(line)
    return origin, None


@dataclass
class EncodedSplit:
    """Token ids and class indices of one split (labels None when unlabelled)."""

    ids: list[list[int]]
    labels: list[int] | None

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.ids]


# --------------------------------------------------------------------------- the task


@dataclass
class ClassificationBatch:
    """tokens (B, S), lengths (B,), labels (B,)."""

    tokens: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor

    def to(self, device: torch.device) -> ClassificationBatch:
        return ClassificationBatch(
            self.tokens.to(device), self.lengths.to(device), self.labels.to(device)
        )


def collate(split: EncodedSplit, indices: Sequence[int], pad_index: int) -> ClassificationBatch:
    tokens, lengths = pad_sequences([split.ids[i] for i in indices], pad_index)
    assert split.labels is not None
    labels = torch.tensor([split.labels[i] for i in indices], dtype=torch.long)
    return ClassificationBatch(tokens, lengths, labels)


class ClassificationTask:
    """Supplies batches, the loss and dev metrics to the generic trainer."""

    def __init__(
        self,
        train: EncodedSplit,
        dev: EncodedSplit,
        pad_index: int,
        trainer_config: TrainerConfig,
        penalty_weight: float,
        device: torch.device,
    ) -> None:
        self.train = train
        self.dev = dev
        self.pad_index = pad_index
        self.config = trainer_config
        self.penalty_weight = penalty_weight
        self.device = device

    def train_batches(self, epoch: int) -> list[list[int]]:
        return make_batches(
            self.train.lengths,
            self.config.batch_tokens,
            self.config.max_batch_size,
            shuffle=True,
            seed=self.config.seed,
            epoch=epoch,
        )

    def compute_loss(self, model: TextClassifier, indices: list[int]) -> LossOutput:
        batch = collate(self.train, indices, self.pad_index).to(self.device)
        output = model(batch.tokens, batch.lengths)
        loss = F.cross_entropy(output.logits, batch.labels)
        if self.penalty_weight:
            loss = loss + self.penalty_weight * output.penalty
        return LossOutput(loss, int(batch.lengths.sum()))

    def evaluate(self, model: TextClassifier) -> dict[str, float]:
        return evaluate_split(model, self.dev, self.pad_index, self.config, self.device)


@torch.no_grad()
def predict_split(
    model: TextClassifier,
    split: EncodedSplit,
    pad_index: int,
    trainer_config: TrainerConfig,
    device: torch.device,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Class probabilities (N, C) and per-example attention (r, S_i), in input order."""
    model.eval()
    lengths = split.lengths
    batches = make_batches(lengths, trainer_config.batch_tokens, trainer_config.max_batch_size)
    probabilities = torch.zeros(len(split.ids), 0)
    attention: list[torch.Tensor] = [torch.zeros(0)] * len(split.ids)
    for indices in batches:
        tokens, batch_lengths = pad_sequences([split.ids[i] for i in indices], pad_index)
        output = model(tokens.to(device), batch_lengths.to(device))
        batch_probabilities = torch.softmax(output.logits.float(), dim=-1).cpu()  # (B, C)
        weights = output.attention.float().cpu()  # (B, r, S)
        if probabilities.size(1) == 0:
            probabilities = torch.zeros(len(split.ids), batch_probabilities.size(1))
        for row, index in enumerate(indices):
            probabilities[index] = batch_probabilities[row]
            attention[index] = weights[row, :, : lengths[index]]
    return probabilities, attention


def accuracy_and_f1(predicted: torch.Tensor, gold: torch.Tensor, num_classes: int) -> dict:
    """Accuracy and macro-averaged F1 of predicted vs gold class indices (N,)."""
    accuracy = float((predicted == gold).float().mean()) if len(gold) else 0.0
    f1_scores = []
    for label in range(num_classes):
        true_positive = int(((predicted == label) & (gold == label)).sum())
        predicted_count = int((predicted == label).sum())
        gold_count = int((gold == label).sum())
        if predicted_count + gold_count:
            f1_scores.append(2 * true_positive / (predicted_count + gold_count))
    macro_f1 = sum(f1_scores) / len(f1_scores) if f1_scores else 0.0
    return {"accuracy": accuracy, "macro_f1": macro_f1}


def evaluate_split(
    model: TextClassifier,
    split: EncodedSplit,
    pad_index: int,
    trainer_config: TrainerConfig,
    device: torch.device,
) -> dict[str, float]:
    """Accuracy, macro F1 and mean cross-entropy on a labelled split."""
    assert split.labels is not None
    probabilities, _ = predict_split(model, split, pad_index, trainer_config, device)
    gold = torch.tensor(split.labels, dtype=torch.long)
    metrics = accuracy_and_f1(probabilities.argmax(dim=-1), gold, probabilities.size(1))
    picked = probabilities[torch.arange(len(gold)), gold].clamp_min(1e-12)
    metrics["loss"] = float(-picked.log().mean())
    return metrics
