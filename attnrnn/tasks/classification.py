"""Text classification: the article's model, an attention-pooled RNN
(:class:`attnrnn.models.classifier.TextClassifier`), as a task.

A classification run directory holds, besides what every run has
(:mod:`attnrnn.tasks.runs`)::

    tokenizer.json      tokenizer settings (+ sentencepiece.model)
    vocab.json          the vocabulary
    labels.json         class names in output order
"""

from __future__ import annotations

import decimal
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from attnrnn.config import (
    InferenceConfig,
    OptimizerConfig,
    TrainerConfig,
    check_positive,
)
from attnrnn.console import Log
from attnrnn.data.batching import pad_sequences
from attnrnn.data.io import read_run_json
from attnrnn.data.readers import TextExample, check_encoding, read_examples
from attnrnn.data.vectors import load_word_vectors, read_vector_words
from attnrnn.data.vocab import Vocab
from attnrnn.errors import ConfigError, DataError, RunError
from attnrnn.models.classifier import (
    ClassifierConfig,
    TextClassifier,
    gradient_importance,
    importance_loss,
)
from attnrnn.tasks.base import Explanation, Metric, Task, TrainedModel, as_list, output_folder
from attnrnn.tasks.text import TextSide, fit_tokenizer, origin_parts, truncate
from attnrnn.training.files import write_json_atomic
from attnrnn.training.runtime import shape_multiple
from attnrnn.training.trainer import LossOutput

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
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        check_encoding(self.encoding)
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
    encoder: a language-model run (task ``language_model``) whose embedding and
        RNN encoder initialise the classifier's.
    vocab_from_encoder: with ``encoder``, also add every word of the language
        model's vocabulary (each has a pretrained embedding): with a few hundred
        labelled texts, most words of new texts would otherwise be unknown.
    """

    vectors: str | None = None
    vocab_from_vectors: int = 0
    encoder: str | None = None
    vocab_from_encoder: bool = True


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
    inference: InferenceConfig = InferenceConfig()


# --------------------------------------------------------------------------- data


def sort_labels(labels: set[str]) -> list[str]:
    """Class names in a stable order: numerically when every label is an integer
    (ASCII digits, any length)."""
    if all(re.fullmatch(r"-?[0-9]+", label) for label in labels):
        return sorted(labels, key=decimal.Decimal)
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


@dataclass
class ClassifierAssets:
    """The tokenizer and vocabulary, and the class names in output order."""

    text: TextSide
    labels: list[str]

    def save(self, directory: Path) -> None:
        self.text.save(directory)
        write_json_atomic(directory / "labels.json", self.labels)

    @classmethod
    def load(cls, directory: Path) -> ClassifierAssets:
        labels = read_run_json(directory, "labels.json", "labels", list)
        if not labels or not all(isinstance(label, str) for label in labels):
            raise RunError(f"{directory / 'labels.json'}: expected a list of class names")
        return cls(TextSide.load(directory), labels)

    def encode(self, texts: Sequence[str], data: DataConfig) -> list[list[int]]:
        """Token ids per text, truncated; a text with no tokens becomes one ``<unk>``."""
        vocab = self.text.vocab
        return [
            truncate(self.text.encode(text) or [vocab.unk_index], data.max_length, data.truncate)
            for text in texts
        ]


@dataclass
class EncodedSplit:
    """Token ids and class indices of one split (labels None when unlabelled)."""

    ids: list[list[int]]
    labels: list[int] | None
    pad_index: int = 0

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.ids]


# --------------------------------------------------------------------------- using a model


@dataclass
class Prediction:
    """One text's prediction with the attention that produced it."""

    text: str
    label: str
    probabilities: dict[str, float]
    tokens: list[str]
    attention: list[list[float]]  # (r, S): one row per attention hop

    @property
    def weights(self) -> list[float]:
        """Per-token attention averaged over hops (S,)."""
        hops = self.attention
        return [sum(column) / len(hops) for column in zip(*hops, strict=True)]


class Classifier(TrainedModel[ClassificationRunConfig, ClassifierAssets]):
    """A trained text classifier: :meth:`predict`, :meth:`evaluate`, :meth:`explain`."""

    def probabilities(self, ids: list[list[int]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Class probabilities (C,) and attention (r, S_i) of every token-id list."""
        pad_index = self.assets.text.vocab.pad_index

        def run(indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
            tokens, lengths = pad_sequences([ids[i] for i in indices], pad_index)
            output = self.model(tokens.to(self.device), lengths.to(self.device))
            probabilities = torch.softmax(output.logits.float(), dim=-1).cpu()  # (B, C)
            weights = output.attention.float().cpu()  # (B, r, S)
            return [
                (probabilities[row], weights[row, :, : len(ids[index])])
                for row, index in enumerate(indices)
            ]

        return self.batched([len(x) for x in ids], run, description="predict")

    def predict(self, inputs: Sequence[str], **options: Any) -> list[Prediction]:
        """Labels, class probabilities and attention weights for raw texts."""
        if options:
            raise ConfigError(f"predict takes no options, got {', '.join(options)}")
        texts = list(inputs)
        ids = self.assets.encode(texts, self.config.data)
        labels = self.assets.labels
        predictions = []
        for text, token_ids, (row, weights) in zip(
            texts, ids, self.probabilities(ids), strict=True
        ):
            predictions.append(
                Prediction(
                    text=text,
                    label=labels[int(row.argmax())],
                    probabilities={label: float(p) for label, p in zip(labels, row, strict=True)},
                    tokens=self._display_tokens(text, len(token_ids)),
                    attention=weights.tolist(),
                )
            )
        return predictions

    def _display_tokens(self, text: str, length: int) -> list[str]:
        """The tokens the model saw, as written (not ``<unk>``), one per weight."""
        data = self.config.data
        tokens = truncate(self.assets.text.tokenizer.tokenize(text), data.max_length, data.truncate)
        return tokens if len(tokens) == length else ["<unk>"] * length

    def score(self, split: EncodedSplit, **options: Any) -> dict[str, float]:
        """Accuracy, macro F1 and mean cross-entropy on a labelled split."""
        assert split.labels is not None
        results = self.probabilities(split.ids)
        probabilities = torch.stack([row for row, _ in results])  # (N, C)
        gold = torch.tensor(split.labels, dtype=torch.long)
        metrics = accuracy_and_f1(probabilities.argmax(dim=-1), gold, probabilities.size(1))
        picked = probabilities[torch.arange(len(gold)), gold].clamp_min(1e-12)
        metrics["loss"] = float(-picked.log().mean())
        return metrics

    def explain(
        self, inputs: Any, output: str | Path | None = None, color: bool = False, **options: Any
    ) -> Explanation:
        """Each text's label and most attended tokens, the text shaded by attention;
        with ``output``: explain.html (the interactive explorer, every text) and a
        heatmap PNG per text (explain-N.png)."""
        from attnrnn.explain import describe_prediction, write_prediction_heatmaps

        texts, _ = as_list(inputs)
        predictions = self.predict(texts)
        text = "\n".join(describe_prediction(p, color) for p in predictions)
        files = []
        folder = output_folder(output)
        if folder is not None:
            files = [self.write_explorer(folder, [self.record(p) for p in predictions])]
            files += write_prediction_heatmaps(predictions, folder)
        return Explanation(text, files, predictions)

    def record(self, result: Prediction) -> dict[str, Any]:
        return {
            "label": result.label,
            "probabilities": result.probabilities,
            "tokens": result.tokens,
            "attention": result.attention,
        }

    def line(self, result: Prediction) -> str:
        return json.dumps(
            {"label": result.label, "probabilities": result.probabilities}, ensure_ascii=False
        )


# --------------------------------------------------------------------------- the task


def pretrained_embeddings(config: ClassificationRunConfig) -> bool:
    """Whether the embedding layer starts from pretrained weights (vectors or an LM)."""
    return bool(config.pretrained.vectors or config.pretrained.encoder)


class ClassificationTask(Task[ClassificationRunConfig, ClassifierAssets, EncodedSplit]):
    name = "classification"
    config_class = ClassificationRunConfig
    model_class = Classifier
    explain_files = "explain.html (the interactive explorer) and explain-N.png (a heatmap per text)"
    unused_parameters = False

    def read_split(
        self, config: ClassificationRunConfig, location: str, role: str
    ) -> list[TextExample]:
        data = config.data
        examples = read_examples(
            location,
            format=data.format,
            text_field=data.text_field,
            label_field=data.label_field,
            delimiter=data.delimiter,
            header=data.header,
            sst_granularity=data.sst_granularity,
            sst_phrases=data.train_phrases and role == "train",
        )
        for example in examples:
            if example.label is None:
                raise DataError(f"{role} examples need labels", *origin_parts(example.origin))
        return examples

    def fit_assets(
        self, config: ClassificationRunConfig, train: list[TextExample], workdir: Path
    ) -> ClassifierAssets:
        labels = sort_labels({example.label for example in train if example.label})
        if len(labels) < 2:
            raise DataError(
                f"the training data has only one label ({labels[0]!r}); need two or more",
                config.data.train,
            )
        settings = config.tokenizer
        texts = [example.text for example in train]
        tokenizer = fit_tokenizer(settings, texts, workdir / "sentencepiece")
        vocab = Vocab.build(
            (tokenizer.tokenize(text) for text in texts),
            min_freq=settings.min_freq,
            max_size=settings.max_size,
        )
        extra = config.pretrained.vocab_from_vectors
        if config.pretrained.vectors and extra:
            words = read_vector_words(config.pretrained.vectors, extra)
            vocab = vocab.extended([word for word in words if word not in vocab])
        if config.pretrained.encoder and config.pretrained.vocab_from_encoder:
            from attnrnn.pretrain.transfer import language_model_vocab

            words = language_model_vocab(Path(config.pretrained.encoder)).tokens
            vocab = vocab.extended([word for word in words if word not in vocab])
        return ClassifierAssets(TextSide(tokenizer, vocab), labels)

    def load_assets(self, directory: Path) -> ClassifierAssets:
        return ClassifierAssets.load(directory)

    def encode(
        self,
        config: ClassificationRunConfig,
        assets: ClassifierAssets,
        examples: list[TextExample],
        role: str,
    ) -> EncodedSplit:
        ids = assets.encode([example.text for example in examples], config.data)
        labels = label_indices(examples, assets.labels)
        return EncodedSplit(ids, labels, assets.text.vocab.pad_index)

    def describe(self, prepared: Any) -> str:
        assets: ClassifierAssets = prepared.assets
        return (
            f"{len(prepared.train)} training examples, {len(prepared.dev)} dev, "
            f"{len(assets.labels)} labels, vocabulary {len(assets.text.vocab)}"
        )

    def build_model(
        self, config: ClassificationRunConfig, assets: ClassifierAssets
    ) -> TextClassifier:
        vocab = assets.text.vocab
        model = config.model
        if model.freeze_embeddings and not pretrained_embeddings(config):
            model = replace(model, freeze_embeddings=False)  # nothing to keep fixed
        return TextClassifier(len(vocab), len(assets.labels), model, vocab.pad_index)

    def initialise(
        self, model: Any, config: ClassificationRunConfig, assets: ClassifierAssets, log: Log
    ) -> None:
        """Copy pretrained word vectors and/or a pretrained LM encoder into the model."""
        pretrained = config.pretrained
        if config.model.freeze_embeddings and not pretrained_embeddings(config):
            log(
                "warning: model.freeze_embeddings is true but no pretrained.vectors or "
                "pretrained.encoder is loaded: the embeddings train (random embeddings kept "
                "fixed would stay random); set model.freeze_embeddings: false to silence this"
            )
        vocab = assets.text.vocab
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

    def metric(self, config: ClassificationRunConfig) -> Metric:
        return Metric("accuracy", higher_is_better=True)

    def lengths(self, split: EncodedSplit) -> list[int]:
        return split.lengths

    def loss(
        self,
        model: Any,
        config: ClassificationRunConfig,
        split: EncodedSplit,
        indices: list[int],
        device: Any,
    ) -> LossOutput:
        assert split.labels is not None
        multiple = shape_multiple(config.trainer.precision, torch.device(device))
        tokens, lengths = pad_sequences([split.ids[i] for i in indices], split.pad_index, multiple)
        tokens, lengths = tokens.to(device), lengths.to(device)
        labels = torch.tensor([split.labels[i] for i in indices], device=device)
        output = model(tokens, lengths)
        loss = F.cross_entropy(output.logits, labels)
        pooling = config.model.pooling
        if pooling.penalty_weight:
            loss = loss + pooling.penalty_weight * output.penalty
        if pooling.diversity_weight:
            loss = loss + pooling.diversity_weight * output.conicity
        if pooling.importance_weight:
            target = gradient_importance(model, tokens, lengths, labels)
            loss = loss + pooling.importance_weight * importance_loss(output.attention, target)
        return LossOutput(loss, int(lengths.sum()))


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
