"""Language-model pretraining on raw text as a task: a forward and a backward language
model over one embedding and RNN encoder
(:class:`attnrnn.models.language_model.BidirectionalLanguageModel`), whose weights
then initialise a classifier (``pretrained.encoder`` in its config; see
:mod:`attnrnn.pretrain.transfer`).

The texts (one per line of a ``.txt`` file, or a field of JSONL / table files) are
tokenized into words and cut into chunks of at most ``data.max_length`` tokens;
each chunk is one training example. The dev metric is perplexity (lower is
better). A trained model scores texts: :meth:`LanguageModel.predict` gives every
token's log-probability from each direction and the text's perplexity.

A language-model run directory holds, besides what every run has
(:mod:`attnrnn.tasks.runs`)::

    tokenizer.json      the word tokenizer's settings
    vocab.json          the vocabulary (most frequent words first)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import torch
from torch import nn

from attnrnn.config import (
    InferenceConfig,
    OptimizerConfig,
    TrainerConfig,
    check_positive,
    to_dict,
)
from attnrnn.console import Log
from attnrnn.data.batching import round_up
from attnrnn.data.readers import check_encoding, guess_format, read_examples, read_plain
from attnrnn.data.tokenizers import WordTokenizer
from attnrnn.data.vocab import Vocab
from attnrnn.errors import ConfigError, DataError
from attnrnn.models.language_model import BidirectionalLanguageModel, LanguageModelConfig
from attnrnn.tasks.base import Explanation, Metric, Task, TrainedModel, as_list, output_folder
from attnrnn.tasks.text import BOS, EOS, TextSide
from attnrnn.training.runtime import SHAPE_STEP
from attnrnn.training.trainer import LossOutput
from attnrnn.viz import printable_token

# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class DataConfig:
    """The raw text to pretrain on.

    ``train`` is one file or a list of files: ``.txt`` one text a line (empty
    lines skipped), ``.jsonl[.gz]`` or ``.tsv``/``.csv`` with the text in
    ``text_field``. Without ``dev``, ``dev_fraction`` of the training texts is
    held out. Texts are cut into chunks of at most ``max_length`` tokens.
    """

    train: str | tuple[str, ...]
    dev: str | None = None
    test: str | None = None
    text_field: str = "text"
    dev_fraction: float = 0.01
    max_length: int = 256
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        check_encoding(self.encoding)
        if not self.train:
            raise ConfigError("train must name one or more text files")
        if not 0.0 < self.dev_fraction < 1.0:
            raise ConfigError(f"dev_fraction must be in (0, 1), got {self.dev_fraction}")
        if self.max_length < 2:
            raise ConfigError(f"max_length must be at least 2, got {self.max_length}")


@dataclass(frozen=True)
class TokenizerConfig:
    """Word tokenization (a classifier that reuses the weights should tokenize alike)
    and the vocabulary: the ``max_size`` most frequent words seen ``min_freq`` times."""

    type: Literal["word"] = "word"
    lowercase: bool = True
    min_freq: int = 3
    max_size: int = 50000

    def __post_init__(self) -> None:
        check_positive(self, "min_freq", "max_size")


@dataclass(frozen=True)
class LanguageModelRunConfig:
    """Everything a language-model run needs; stored as the run's config.yaml.

    ``continue_from``: a language-model run to go on from, on this run's text
    (domain-adaptive pretraining: a general language model first, then a short
    continuation on the target task's own unlabelled text). Its tokenizer, vocabulary
    and weights are taken as they are, so ``tokenizer`` is not used and ``model`` must
    be that run's.

    ``units_from``: a speech, translation or summarization run whose output units
    (tokenizer and vocabulary) this language model predicts, so that it can score
    that model's outputs as they are decoded (shallow fusion: ``lm`` in a speech
    run's config). ``tokenizer`` is then not used, and every text is framed by
    ``<s>`` and ``</s>``: the model learns how outputs start and end.
    """

    data: DataConfig
    task: Literal["language_model"] = "language_model"
    continue_from: str | None = None
    units_from: str | None = None
    tokenizer: TokenizerConfig = TokenizerConfig()
    model: LanguageModelConfig = LanguageModelConfig()
    # The language model's own defaults; a section given in part keeps the others.
    optimizer: OptimizerConfig = OptimizerConfig(
        learning_rate=2e-3, warmup_steps=200, clip_norm=1.0, schedule="linear"
    )
    trainer: TrainerConfig = TrainerConfig(epochs=1, batch_tokens=8000, log_every_steps=100)
    inference: InferenceConfig = InferenceConfig(batch_tokens=8000, max_batch_size=128)

    def __post_init__(self) -> None:
        if self.continue_from and self.units_from:
            raise ConfigError(
                "give continue_from or units_from, not both: a continued language model "
                "keeps the units of the run it continues"
            )


# --------------------------------------------------------------------------- data


def paths_of(location: str | Sequence[str]) -> list[str]:
    """One path or a list of paths, as a list."""
    return [location] if isinstance(location, str) else list(location)


def read_texts(paths: str | Sequence[str], text_field: str = "text") -> list[str]:
    """The non-blank texts of raw text files.

    ``.txt`` files hold one text a line (empty lines are skipped),
    ``.jsonl[.gz]`` one JSON object with ``text_field`` a line, ``.tsv``/``.csv``
    a ``text_field`` column.
    """
    texts: list[str] = []
    for path in paths_of(paths):
        if guess_format(path) == "plain":
            examples = read_plain(path, skip_empty_lines=True)
        else:
            examples = read_examples(path, label_field=None, text_field=text_field)
        texts.extend(example.text for example in examples if example.text.strip())
    return texts


def chunk_spans(length: int, max_length: int) -> list[tuple[int, int]]:
    """(start, end) of the consecutive pieces of at most ``max_length`` of a text's
    ``length`` tokens (the last piece may be a single token)."""
    return [(start, min(start + max_length, length)) for start in range(0, length, max_length)]


def cut_into_chunks(ids: Sequence[int], max_length: int) -> Iterator[torch.Tensor]:
    """Consecutive pieces of at most ``max_length`` ids; pieces under two ids are dropped
    (nothing to predict in them)."""
    for start, end in chunk_spans(len(ids), max_length):
        if end - start >= 2:
            yield torch.tensor(ids[start:end], dtype=torch.int32)  # (S,)


@dataclass
class LanguageModelAssets:
    """The word tokenizer and the vocabulary."""

    text: TextSide

    def save(self, directory: Path) -> None:
        self.text.save(directory)

    @classmethod
    def load(cls, directory: Path) -> LanguageModelAssets:
        return cls(TextSide.load(directory))


@dataclass
class EncodedSplit:
    """The token-id chunks of one split: (S_i,) int32 tensors, 2 <= S_i <= max_length."""

    chunks: list[torch.Tensor]
    pad_index: int = 0

    def __len__(self) -> int:
        return len(self.chunks)

    @property
    def lengths(self) -> list[int]:
        return [chunk.numel() for chunk in self.chunks]


def padded_length(length: int) -> int:
    """``length`` rounded up to a multiple of :data:`~attnrnn.training.runtime.SHAPE_STEP`:
    language-model batches come in few shapes in any precision (chunk lengths vary the most
    of any task, and the padding costs little next to the adaptive softmax)."""
    return round_up(length, SHAPE_STEP)


def collate(
    chunks: Sequence[torch.Tensor], pad_index: int, device: Any, multiple: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens (B, S) and lengths (B,) of token-id chunks, on ``device``; S is the longest
    chunk rounded up to a multiple of ``multiple`` (the rest is padding)."""
    lengths = torch.tensor([chunk.numel() for chunk in chunks])  # (B,)
    tokens = nn.utils.rnn.pad_sequence(list(chunks), batch_first=True, padding_value=pad_index)
    extra = -tokens.size(1) % multiple
    if extra:
        tokens = nn.functional.pad(tokens, (0, extra), value=pad_index)
    return tokens.long().to(device), lengths.to(device)  # (B, S), (B,)


# --------------------------------------------------------------------------- using a model


@dataclass
class Perplexity:
    """How well the language model predicts one text.

    tokens: the text's words as the tokenizer wrote them (S,).
    forward_log_probs: (S,) log p(token t | the tokens before it); None where
        the forward model predicted nothing (the first token of every chunk).
    backward_log_probs: (S,) log p(token t | the tokens after it); None where
        the backward model predicted nothing (the last token of every chunk).
        None altogether for a unidirectional model.
    perplexity: exp of the mean negative log-probability over both directions'
        predictions; None for a text too short to predict (one token).
    """

    text: str
    tokens: list[str]
    forward_log_probs: list[float | None]
    backward_log_probs: list[float | None] | None
    perplexity: float | None
    forward_perplexity: float | None
    backward_perplexity: float | None

    @property
    def surprisal(self) -> list[float]:
        """(S,) per token, the mean of -log p over the directions that predicted it (nats);
        0 where none did."""
        backward = self.backward_log_probs or [None] * len(self.tokens)
        values = []
        for forward_value, backward_value in zip(self.forward_log_probs, backward, strict=True):
            known = [-value for value in (forward_value, backward_value) if value is not None]
            values.append(sum(known) / len(known) if known else 0.0)
        return values


def perplexity_of(log_probs: Sequence[float]) -> float | None:
    """exp(mean negative log-probability); None without predictions."""
    if not log_probs:
        return None
    return math.exp(-sum(log_probs) / len(log_probs))


class LanguageModel(TrainedModel[LanguageModelRunConfig, LanguageModelAssets]):
    """A trained language model: :meth:`predict` (per-token log-probabilities and
    perplexity of texts), :meth:`evaluate`, :meth:`explain` (surprisal)."""

    def log_probs(
        self, chunks: Sequence[torch.Tensor]
    ) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Per chunk of S_i >= 2 ids, the log-probabilities of its forward predictions
        (S_i - 1,) (tokens 1..S_i-1) and of its backward ones (S_i - 1,) (tokens
        0..S_i-2; None for a unidirectional model)."""
        pad_index = self.assets.text.vocab.pad_index

        def run(indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
            tokens, lengths = collate([chunks[i] for i in indices], pad_index, self.device)
            output = self.model(tokens, lengths)
            counts = (lengths - 1).tolist()
            forward = output.forward_log_probs.float().cpu().split(counts)  # (S_i - 1,) each
            if output.backward_log_probs is None:
                return [(row, None) for row in forward]
            backward = output.backward_log_probs.float().cpu().split(counts)
            return list(zip(forward, backward, strict=True))

        return self.batched([chunk.numel() for chunk in chunks], run, description="score")

    def predict(self, inputs: Sequence[str], **options: Any) -> list[Perplexity]:
        """Every token's log-probability from each direction and the perplexity of raw
        texts. Texts longer than ``data.max_length`` tokens are scored in chunks, as in
        training."""
        if options:
            raise ConfigError(f"predict takes no options, got {', '.join(options)}")
        texts = list(inputs)
        side = self.assets.text
        max_length = self.config.data.max_length
        opening, closing = ([BOS], [EOS]) if framing(side.vocab)[0] else ([], [])
        tokens = [[*opening, *side.tokenizer.tokenize(text), *closing] for text in texts]
        spans = [chunk_spans(len(words), max_length) for words in tokens]
        chunks = [
            torch.tensor(side.vocab.encode(words[start:end]), dtype=torch.int32)
            for words, text_spans in zip(tokens, spans, strict=True)
            for start, end in text_spans
            if end - start >= 2
        ]
        scored = iter(self.log_probs(chunks))
        bidirectional = self.model.backward_head is not None
        results = []
        for text, words, text_spans in zip(texts, tokens, spans, strict=True):
            forward: list[float | None] = [None] * len(words)
            backward: list[float | None] = [None] * len(words)
            for start, end in text_spans:
                if end - start < 2:
                    continue
                forward_row, backward_row = next(scored)
                forward[start + 1 : end] = forward_row.tolist()
                if backward_row is not None:
                    backward[start : end - 1] = backward_row.tolist()
            results.append(self._result(text, words, forward, backward if bidirectional else None))
        return results

    @staticmethod
    def _result(
        text: str,
        words: list[str],
        forward: list[float | None],
        backward: list[float | None] | None,
    ) -> Perplexity:
        forward_known = [value for value in forward if value is not None]
        backward_known = [value for value in backward or [] if value is not None]
        return Perplexity(
            text=text,
            tokens=words,
            forward_log_probs=forward,
            backward_log_probs=backward,
            perplexity=perplexity_of(forward_known + backward_known),
            forward_perplexity=perplexity_of(forward_known),
            backward_perplexity=perplexity_of(backward_known) if backward is not None else None,
        )

    def score(self, split: EncodedSplit, **options: Any) -> dict[str, float]:
        """Loss (mean negative log-likelihood per prediction, both directions) and
        perplexity on a split's chunks; forward and backward perplexity apart."""
        if options:
            raise ConfigError(f"score takes no options, got {', '.join(options)}")
        results = self.log_probs(split.chunks)
        predictions = sum(forward.numel() for forward, _ in results)
        forward_loss = -sum(float(forward.sum()) for forward, _ in results) / predictions
        scores = {"forward_perplexity": math.exp(forward_loss)}
        loss = forward_loss
        if self.model.backward_head is not None:
            backward_sum = sum(
                float(backward.sum()) for _, backward in results if backward is not None
            )
            backward_loss = -backward_sum / predictions
            scores["backward_perplexity"] = math.exp(backward_loss)
            loss = (forward_loss + backward_loss) / 2
        return {
            "loss": loss,
            "perplexity": math.exp(loss),
            **scores,
            "predicted_tokens": predictions,
        }

    def explain(
        self, inputs: Any, output: str | Path | None = None, color: bool = False, **options: Any
    ) -> Explanation:
        """Each text's perplexity and most surprising tokens, the text shaded by
        surprisal; with ``output``: surprisal-N.png, a heatmap per text."""
        from attnrnn.viz import terminal_colored, top_tokens, write_token_heatmap_png

        texts, _ = as_list(inputs)
        results = self.predict(texts, **options)
        folder = output_folder(output)
        lines, files = [], []
        for number, result in enumerate(results, start=1):
            surprisal = result.surprisal
            if result.perplexity is None:
                lines.append(f"too short to score ({len(result.tokens)} token(s))")
                continue
            top = ", ".join(
                f"{printable_token(token)} ({value:.2f})"
                for token, value in top_tokens(result.tokens, surprisal)
            )
            largest = max(surprisal)
            shades = [value / largest if largest > 0 else 0.0 for value in surprisal]
            lines.append(
                f"{describe_perplexity(result)}  most surprising (nats): {top}\n  "
                + terminal_colored(result.tokens, shades, color=color)
            )
            if folder is not None:
                title = f"perplexity {result.perplexity:.1f}; surprisal (1 = {largest:.2f} nats)"
                path = folder / f"surprisal-{number}.png"
                files.append(write_token_heatmap_png(path, result.tokens, shades, title=title))
        if folder is not None:
            files.insert(0, self.write_explorer(folder, [self.record(r) for r in results]))
        return Explanation("\n".join(lines), files, results)

    def record(self, result: Perplexity) -> dict[str, Any]:
        return {
            "perplexity": result.perplexity,
            "forward_perplexity": result.forward_perplexity,
            "backward_perplexity": result.backward_perplexity,
            "tokens": result.tokens,
            "forward_log_probs": result.forward_log_probs,
            "backward_log_probs": result.backward_log_probs,
            "surprisal": result.surprisal,
        }

    def line(self, result: Perplexity) -> str:
        return json.dumps(
            {
                "perplexity": result.perplexity,
                "forward_perplexity": result.forward_perplexity,
                "backward_perplexity": result.backward_perplexity,
            }
        )


def describe_perplexity(result: Perplexity) -> str:
    """``perplexity 12.3 (forward 11.0, backward 13.8), 9 tokens``."""
    directions = [f"forward {result.forward_perplexity:.1f}"]
    if result.backward_perplexity is not None:
        directions.append(f"backward {result.backward_perplexity:.1f}")
    return (
        f"perplexity {result.perplexity:.1f} ({', '.join(directions)}), {len(result.tokens)} tokens"
    )


# --------------------------------------------------------------------------- the task


def framing(vocab: Vocab) -> tuple[list[int], list[int]]:
    """The ids put before and after every text: ``<s>`` and ``</s>`` for the output units
    of a sequence model (``units_from``), whose vocabularies have them; none for word
    vocabularies."""
    if BOS in vocab and EOS in vocab:
        return [vocab.index(BOS)], [vocab.index(EOS)]
    return [], []


def output_units(run_directory: Path) -> TextSide:
    """The tokenizer and vocabulary a sequence model's outputs are written in (a speech or
    translation run's target side, a summarization run's shared one)."""
    from attnrnn.tasks.runs import run_task

    task = run_task(run_directory)
    assets = task.load_assets(run_directory)
    side = getattr(assets, "target", None) if task.name != "summarization" else assets.text
    if not isinstance(side, TextSide):
        raise ConfigError(
            f"units_from {run_directory}: a {task.name} run writes no output text; give a "
            "speech, translation or summarization run"
        )
    return side


class LanguageModelTask(Task[LanguageModelRunConfig, LanguageModelAssets, EncodedSplit]):
    name = "language_model"
    config_class = LanguageModelRunConfig
    model_class = LanguageModel
    explain_files = "explain.html (the explorer) and surprisal-N.png (each token's surprisal)"

    def read_split(
        self, config: LanguageModelRunConfig, location: str | Sequence[str], role: str
    ) -> list[str]:
        return read_texts(location, config.data.text_field)

    def fit_assets(
        self, config: LanguageModelRunConfig, train: list[str], workdir: Path
    ) -> LanguageModelAssets:
        """The word tokenizer and the vocabulary of the training texts (each text is
        tokenized here and again in :meth:`encode` rather than kept as token lists,
        which would take about 60 bytes a token)."""
        if config.continue_from:  # the vocabulary its weights were trained with
            from attnrnn.pretrain.transfer import read_language_model

            source = read_language_model(Path(config.continue_from), "continue_from")
            return cast(LanguageModelAssets, source.assets)
        if config.units_from:
            return LanguageModelAssets(output_units(Path(config.units_from)))
        settings = config.tokenizer
        tokenizer = WordTokenizer(lowercase=settings.lowercase)
        vocab = Vocab.build(
            (tokenizer.tokenize(text) for text in train),
            min_freq=settings.min_freq,
            max_size=settings.max_size,
        )
        return LanguageModelAssets(TextSide(tokenizer, vocab))

    def load_assets(self, directory: Path) -> LanguageModelAssets:
        return LanguageModelAssets.load(directory)

    def encode(
        self,
        config: LanguageModelRunConfig,
        assets: LanguageModelAssets,
        examples: list[str],
        role: str,
    ) -> EncodedSplit:
        """The texts' token ids (framed by ``<s>`` and ``</s>`` when the vocabulary has
        them: :func:`framing`) cut into chunks of at most ``data.max_length``."""
        max_length = config.data.max_length
        start, end = framing(assets.text.vocab)
        chunks = [
            chunk
            for text in examples
            for chunk in cut_into_chunks(start + assets.text.encode(text) + end, max_length)
        ]
        if not chunks:
            raise DataError(
                f"the {role} texts have no piece of two or more tokens; "
                "language-model pretraining needs more text"
            )
        return EncodedSplit(chunks, assets.text.vocab.pad_index)

    def describe(self, prepared: Any) -> str:
        assets: LanguageModelAssets = prepared.assets
        tokens = sum(prepared.train.lengths)
        return (
            f"{len(prepared.train)} training chunks ({tokens} tokens), {len(prepared.dev)} dev, "
            f"vocabulary {len(assets.text.vocab)}"
        )

    def build_model(
        self, config: LanguageModelRunConfig, assets: LanguageModelAssets
    ) -> BidirectionalLanguageModel:
        vocab = assets.text.vocab
        return BidirectionalLanguageModel(len(vocab), config.model, vocab.pad_index)

    def initialise(
        self, model: Any, config: LanguageModelRunConfig, assets: LanguageModelAssets, log: Log
    ) -> None:
        """With ``continue_from``: start from that run's weights."""
        if not config.continue_from:
            return
        from attnrnn.pretrain.transfer import read_language_model
        from attnrnn.tasks.runs import changed_keys

        run = Path(config.continue_from)
        source = read_language_model(run, "continue_from")
        if source.config.model != config.model:
            differing = changed_keys(to_dict(source.config.model), to_dict(config.model))
            raise ConfigError(
                f"continue_from {run}: model.{', model.'.join(differing)} differ from that run's; "
                "a continued language model keeps its model section"
            )
        model.load_state_dict(source.model.state_dict())
        log(
            f"continuing the language model {run} on this run's text: its vocabulary "
            f"({len(assets.text.vocab)} words) and weights"
        )

    def metric(self, config: LanguageModelRunConfig) -> Metric:
        return Metric("perplexity", higher_is_better=False)

    def lengths(self, split: EncodedSplit) -> list[int]:
        """The chunks' lengths as training pads them (see :data:`SHAPE_STEP`)."""
        return [padded_length(length) for length in split.lengths]

    def loss(
        self,
        model: Any,
        config: LanguageModelRunConfig,
        split: EncodedSplit,
        indices: list[int],
        device: Any,
    ) -> LossOutput:
        chunks = [split.chunks[i] for i in indices]
        tokens, lengths = collate(chunks, split.pad_index, device, multiple=SHAPE_STEP)
        return LossOutput(model.training_loss(tokens, lengths), int(lengths.sum()))

    def dev_scores(self, trained: TrainedModel, split: EncodedSplit) -> dict[str, float]:
        """Loss and perplexities (the prediction count is for results.json only)."""
        scores = trained.score(split)
        scores.pop("predicted_tokens")
        return scores
