"""Pretraining a classifier's embedding and RNN encoder as language models on raw text.

ULMFiT / ELMo in small: the embedding and a one-layer bidirectional RNN read
unlabelled text; the forward direction's state at position t predicts token
t + 1 and the backward direction's state at t predicts token t - 1. A
classifier with the same embedding size and encoder then starts from these
weights (``pretrained.encoder`` in its config), which helps most when labelled
data is scarce.

Each direction has its own :class:`torch.nn.AdaptiveLogSoftmaxWithLoss`: the
two directions are different RNNs whose states live in different spaces, so
a shared output layer would need an extra direction input to tell them apart,
while two heads cost nothing extra per token (each prediction goes through
exactly one head). The adaptive softmax keeps a 50,000-word output affordable
on a CPU: frequent words get the full hidden size, rare ones a smaller
projection. The first and last tokens of a chunk are not predicted by the
direction that has no context for them, so no sentence-boundary tokens are
needed.

A run directory holds::

    lm_config.json      the LanguageModelConfig
    tokenizer.json      the WordTokenizer settings
    vocab.json          the vocabulary (most frequent words first)
    final/              the weights (model.safetensors) and state.json
    results.json        tokens, time, throughput and dev perplexity
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from attnrnn.config import (
    EncoderConfig,
    OptimizerConfig,
    apply_overrides,
    check_non_negative,
    check_positive,
    check_probability,
    from_dict,
)
from attnrnn.console import Log
from attnrnn.console import log as log_stderr
from attnrnn.data.batching import make_batches
from attnrnn.data.readers import read_examples
from attnrnn.data.tokenizers import WordTokenizer
from attnrnn.data.vocab import Vocab
from attnrnn.errors import AttnrnnError, ConfigError, DataError, RunError
from attnrnn.models.classifier import TextClassifier
from attnrnn.nn.encoders import RNNEncoder
from attnrnn.nn.masking import lengths_to_mask
from attnrnn.training.checkpoint import (
    MODEL_FILE,
    checkpoint_path,
    save_checkpoint,
    write_json_atomic,
)
from attnrnn.training.optim import (
    PlateauState,
    build_optimizer,
    learning_rate_at,
    set_learning_rate,
)
from attnrnn.training.runtime import resolve_device, seed_everything

CONFIG_FILE = "lm_config.json"
TOKENIZER_FILE = "tokenizer.json"
VOCAB_FILE = "vocab.json"
RESULTS_FILE = "results.json"
WEIGHTS_DIRECTORY = "final"
DEV_FRACTION = 0.01
# Each rarer word cluster of the adaptive softmax gets a projection this many times smaller.
ADAPTIVE_DIVISOR = 4


# --------------------------------------------------------------------------- configuration

# A frozen (immutable) instance, so every LanguageModelConfig can share it.
DEFAULT_ENCODER = EncoderConfig(cell="gru", hidden_size=256, num_layers=1, bidirectional=True)


@dataclass(frozen=True)
class LanguageModelConfig:
    """Settings of ``attnrnn pretrain --method lm``.

    ``embedding_size`` and ``encoder`` must equal the classifier's
    ``model.embedding_size`` and ``model.encoder`` for the weights to transfer.
    """

    embedding_size: int = 300
    encoder: EncoderConfig = DEFAULT_ENCODER
    dropout: float = 0.1
    lowercase: bool = True
    vocab_max_size: int = 50000
    vocab_min_freq: int = 3
    max_length: int = 256
    batch_tokens: int = 8000
    max_batch_size: int = 128
    epochs: int = 1
    max_minutes: float | None = None
    learning_rate: float = 2e-3
    warmup_steps: int = 200
    clip_norm: float = 1.0
    seed: int = 1
    num_threads: int | None = None
    device: str = "auto"
    adaptive_cutoffs: tuple[int, ...] = (2000, 10000)
    log_every_steps: int = 100

    def __post_init__(self) -> None:
        check_positive(
            self, "embedding_size", "vocab_max_size", "vocab_min_freq", "batch_tokens",
            "max_batch_size", "epochs", "learning_rate", "log_every_steps",
        )  # fmt: skip
        check_non_negative(self, "warmup_steps", "clip_norm")
        check_probability(self, "dropout")
        if self.max_length < 2:
            raise ConfigError(f"max_length must be at least 2, got {self.max_length}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ConfigError(f"max_minutes must be positive or null, got {self.max_minutes}")
        if self.num_threads is not None and self.num_threads <= 0:
            raise ConfigError(f"num_threads must be positive or null, got {self.num_threads}")
        if self.device != "auto" and not self.device.startswith(("cpu", "cuda", "mps")):
            raise ConfigError(f"device must be auto, cpu, cuda[:N] or mps, got {self.device!r}")
        cutoffs = list(self.adaptive_cutoffs)
        if not cutoffs or min(cutoffs) <= 0 or cutoffs != sorted(set(cutoffs)):
            raise ConfigError(
                f"adaptive_cutoffs must be increasing positive integers, got {cutoffs}"
            )
        smallest_projection = self.encoder.hidden_size // ADAPTIVE_DIVISOR ** len(cutoffs)
        if smallest_projection < 1:
            raise ConfigError(
                f"encoder.hidden_size {self.encoder.hidden_size} is too small for "
                f"{len(cutoffs)} adaptive_cutoffs: the last word cluster would get a "
                f"{smallest_projection}-dimensional projection; use fewer cutoffs"
            )
        if self.encoder.bidirectional and self.encoder.num_layers > 1:
            raise ConfigError(
                "encoder.num_layers must be 1 when encoder.bidirectional is true: a stacked "
                "bidirectional RNN feeds both directions of one layer into the next, so the "
                "forward language model would see the very tokens it has to predict; set "
                "encoder.num_layers=1 or encoder.bidirectional=false"
            )


def clip_cutoffs(cutoffs: Sequence[int], vocab_size: int) -> list[int]:
    """The adaptive-softmax cluster boundaries that fit a vocabulary of ``vocab_size``."""
    kept = [cutoff for cutoff in cutoffs if cutoff < vocab_size - 1]
    return kept or [vocab_size - 1]


# --------------------------------------------------------------------------- model


@dataclass
class LanguageModelOutput:
    """What :class:`BidirectionalLanguageModel` returns.

    loss: () mean negative log-likelihood per predicted token, both directions.
    forward_loss: () mean NLL of the forward (next-token) predictions.
    backward_loss: () mean NLL of the backward (previous-token) predictions,
        None for a unidirectional encoder.
    predicted_tokens: N, predictions per direction (``sum(lengths - 1)``).
    """

    loss: torch.Tensor
    forward_loss: torch.Tensor
    backward_loss: torch.Tensor | None
    predicted_tokens: int


class BidirectionalLanguageModel(nn.Module):
    """Embedding -> dropout -> RNN encoder -> one adaptive softmax per direction.

    The ``embedding`` and ``encoder`` have the structure of
    :class:`~attnrnn.models.classifier.TextClassifier`'s, so their weights
    transfer. A unidirectional encoder trains only the forward language model.

    Args:
        vocab_size: V.
        config: the settings (embedding size, encoder, dropout, cutoffs).
        pad_index: the padding token id (its embedding stays zero).
    """

    def __init__(self, vocab_size: int, config: LanguageModelConfig, pad_index: int) -> None:
        super().__init__()
        encoder = config.encoder
        self.embedding = nn.Embedding(vocab_size, config.embedding_size, padding_idx=pad_index)
        self.dropout = nn.Dropout(config.dropout)
        self.encoder = RNNEncoder.from_config(config.embedding_size, config.encoder)
        cutoffs = clip_cutoffs(config.adaptive_cutoffs, vocab_size)
        H = encoder.hidden_size
        self.forward_head = nn.AdaptiveLogSoftmaxWithLoss(H, vocab_size, cutoffs, ADAPTIVE_DIVISOR)
        self.backward_head = (
            nn.AdaptiveLogSoftmaxWithLoss(H, vocab_size, cutoffs, ADAPTIVE_DIVISOR)
            if encoder.bidirectional
            else None
        )

    def encode(
        self, tokens: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The hidden states of each direction.

        Args:
            tokens: (B, S) token ids, padded.
            lengths: (B,) valid tokens per row, each >= 1.

        Returns:
            forward_states: (B, S, H), position t has read tokens 0..t.
            backward_states: (B, S, H), position t has read tokens t..end;
                None for a unidirectional encoder.
        """
        embedded = self.dropout(self.embedding(tokens))  # (B, S, E)
        outputs = self.dropout(self.encoder(embedded, lengths).outputs)  # (B, S, H * directions)
        H = self.encoder.hidden_size
        forward_states = outputs[..., :H]  # (B, S, H)
        backward_states = outputs[..., H:] if self.encoder.bidirectional else None  # (B, S, H)
        return forward_states, backward_states

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> LanguageModelOutput:
        """Language-model losses of a padded batch.

        Args:
            tokens: (B, S) token ids, padded; S >= 2.
            lengths: (B,) valid tokens per row, each >= 2.
        """
        forward_states, backward_states = self.encode(tokens, lengths)
        # Forward state t predicts token t + 1; backward state t + 1 predicts token t.
        pairs = lengths_to_mask(lengths - 1, tokens.size(1) - 1).to(tokens.device)  # (B, S-1)
        next_tokens = tokens[:, 1:][pairs]  # (N,)
        forward_loss = self.forward_head(forward_states[:, :-1][pairs], next_tokens).loss
        if backward_states is None or self.backward_head is None:
            return LanguageModelOutput(forward_loss, forward_loss, None, next_tokens.numel())
        previous_tokens = tokens[:, :-1][pairs]  # (N,)
        backward_loss = self.backward_head(backward_states[:, 1:][pairs], previous_tokens).loss
        loss = (forward_loss + backward_loss) / 2
        return LanguageModelOutput(loss, forward_loss, backward_loss, next_tokens.numel())


# --------------------------------------------------------------------------- data


def read_texts(paths: Sequence[str], text_field: str = "text") -> list[str]:
    """The non-blank texts of raw text files.

    ``.txt`` files hold one text a line, ``.jsonl[.gz]`` one JSON object with
    ``text_field`` a line, ``.tsv``/``.csv`` a ``text_field`` column.
    """
    texts: list[str] = []
    for path in paths:
        examples = read_examples(path, label_field=None, text_field=text_field)
        texts.extend(example.text for example in examples if example.text.strip())
    return texts


@dataclass
class Corpus:
    """A tokenized corpus cut into chunks: the training and dev chunks, the vocabulary."""

    tokenizer: WordTokenizer
    vocab: Vocab
    train: list[torch.Tensor]
    dev: list[torch.Tensor]


def prepare_corpus(config: LanguageModelConfig, texts: Sequence[str], log: Log) -> Corpus:
    """Tokenize, build the vocabulary, cut into chunks, hold out 1% for dev.

    The texts are tokenized twice (to count, then to encode) rather than kept
    as token lists, which would take about 60 bytes a token.
    """
    started = time.monotonic()
    tokenizer = WordTokenizer(lowercase=config.lowercase)
    vocab = Vocab.build(
        (tokenizer.tokenize(text) for text in texts),
        min_freq=config.vocab_min_freq,
        max_size=config.vocab_max_size,
    )
    chunks = [
        chunk
        for text in texts
        for chunk in cut_into_chunks(vocab.encode(tokenizer.tokenize(text)), config.max_length)
    ]
    if len(chunks) < 2:
        raise DataError(
            f"only {len(chunks)} text pieces of two or more tokens; "
            "language-model pretraining needs more text"
        )
    random.Random(config.seed).shuffle(chunks)
    dev_count = max(1, round(DEV_FRACTION * len(chunks)))
    tokens = sum(chunk.numel() for chunk in chunks)
    log(
        f"tokenized {len(texts)} texts into {len(chunks)} chunks, {tokens} tokens, "
        f"vocabulary {len(vocab)}, in {time.monotonic() - started:.0f} s"
    )
    return Corpus(tokenizer, vocab, chunks[dev_count:], chunks[:dev_count])


def cut_into_chunks(ids: Sequence[int], max_length: int) -> Iterator[torch.Tensor]:
    """Consecutive pieces of at most ``max_length`` ids; pieces under two ids are dropped."""
    for start in range(0, len(ids), max_length):
        piece = ids[start : start + max_length]
        if len(piece) >= 2:
            yield torch.tensor(piece, dtype=torch.int32)  # (S,)


def chunk_batches(
    chunks: list[torch.Tensor], config: LanguageModelConfig, shuffle: bool, epoch: int = 0
) -> list[list[int]]:
    """Length-bucketed batches of chunk indices under the token budget."""
    lengths = [chunk.numel() for chunk in chunks]
    return make_batches(
        lengths, config.batch_tokens, config.max_batch_size, shuffle, config.seed, epoch
    )


def collate(
    chunks: list[torch.Tensor], indices: list[int], pad_index: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens (B, S) and lengths (B,) of the chunks at ``indices``, on ``device``."""
    batch = [chunks[index] for index in indices]
    lengths = torch.tensor([chunk.numel() for chunk in batch])  # (B,)
    tokens = nn.utils.rnn.pad_sequence(batch, batch_first=True, padding_value=pad_index)  # (B, S)
    return tokens.long().to(device), lengths.to(device)


# --------------------------------------------------------------------------- training


@dataclass
class Progress:
    """Counters of a training run; the ``window_`` ones restart at every log line."""

    step: int = 0
    epoch: int = 0
    tokens: int = 0
    seconds: float = 0.0
    stopped_by: str = "epochs"
    window_loss: float = 0.0
    window_predictions: int = 0
    window_tokens: int = 0
    window_started: float = 0.0


def train_language_model(
    model: BidirectionalLanguageModel,
    chunks: list[torch.Tensor],
    config: LanguageModelConfig,
    pad_index: int,
    log: Log,
) -> Progress:
    """AdamW with warmup and linear decay over the epochs, within ``max_minutes``.

    With a time budget the decay also follows the elapsed fraction of it, so the
    learning rate reaches zero when time runs out. Ctrl-C stops training
    early; the model keeps what it has learnt.
    """
    device = next(model.parameters()).device
    optimizer_config = OptimizerConfig(
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps,
        clip_norm=config.clip_norm,
        schedule="linear",
    )
    optimizer = build_optimizer(model, optimizer_config)
    total_steps = config.epochs * len(chunk_batches(chunks, config, shuffle=True))
    budget = config.max_minutes * 60 if config.max_minutes is not None else None
    progress = Progress(window_started=time.monotonic())
    started = time.monotonic()
    model.train()
    try:
        for epoch, indices in epoch_batches(chunks, config):
            if budget is not None and time.monotonic() - started >= budget:
                progress.stopped_by = "time"
                break
            progress.epoch = epoch
            step = scheduled_step(progress.step, total_steps, started, budget, config)
            rate = learning_rate_at(step, total_steps, optimizer_config, PlateauState())
            set_learning_rate(optimizer, rate)
            tokens, lengths = collate(chunks, indices, pad_index, device)
            output = training_step(model, optimizer, tokens, lengths, config.clip_norm)
            record_step(progress, output, int(lengths.sum()), rate, config, log)
    except KeyboardInterrupt:
        progress.stopped_by = "interrupt"
        log(f"interrupted at step {progress.step}; saving the model as it is")
    progress.seconds = time.monotonic() - started
    return progress


def epoch_batches(
    chunks: list[torch.Tensor], config: LanguageModelConfig
) -> Iterator[tuple[int, list[int]]]:
    """(epoch, chunk indices) of every training batch, epoch after epoch."""
    for epoch in range(config.epochs):
        for indices in chunk_batches(chunks, config, shuffle=True, epoch=epoch):
            yield epoch, indices


def scheduled_step(
    step: int, total_steps: int, started: float, budget: float | None, config: LanguageModelConfig
) -> int:
    """The step the schedule uses: the real one, or further on when time runs short."""
    if budget is None or step < config.warmup_steps:
        return step
    elapsed_fraction = (time.monotonic() - started) / budget
    return max(step, int(elapsed_fraction * total_steps))


def training_step(
    model: BidirectionalLanguageModel,
    optimizer: torch.optim.Optimizer,
    tokens: torch.Tensor,
    lengths: torch.Tensor,
    clip_norm: float,
) -> LanguageModelOutput:
    """One optimizer step on a batch; tokens (B, S), lengths (B,)."""
    output = model(tokens, lengths)
    optimizer.zero_grad(set_to_none=True)
    output.loss.backward()
    if clip_norm:
        nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    return output


def record_step(
    progress: Progress,
    output: LanguageModelOutput,
    tokens: int,
    rate: float,
    config: LanguageModelConfig,
    log: Log,
) -> None:
    """Count a step; every ``log_every_steps`` log loss, perplexity and tokens/s."""
    progress.step += 1
    progress.tokens += tokens
    progress.window_tokens += tokens
    progress.window_loss += output.loss.item() * output.predicted_tokens
    progress.window_predictions += output.predicted_tokens
    if progress.step % config.log_every_steps:
        return
    now = time.monotonic()
    loss = progress.window_loss / max(progress.window_predictions, 1)
    speed = progress.window_tokens / max(now - progress.window_started, 1e-9)
    log(
        f"step {progress.step} epoch {progress.epoch + 1} loss {loss:.3f} "
        f"perplexity {math.exp(min(loss, 50.0)):.1f} lr {rate:.2e} {speed:.0f} tokens/s"
    )
    progress.window_loss, progress.window_predictions, progress.window_tokens = 0.0, 0, 0
    progress.window_started = now


@torch.no_grad()
def evaluate_language_model(
    model: BidirectionalLanguageModel,
    chunks: list[torch.Tensor],
    config: LanguageModelConfig,
    pad_index: int,
) -> dict[str, float | None]:
    """Loss and perplexity on ``chunks``: both directions, forward, backward."""
    device = next(model.parameters()).device
    model.eval()
    forward_sum = backward_sum = 0.0
    predictions = 0
    for indices in chunk_batches(chunks, config, shuffle=False):
        output = model(*collate(chunks, indices, pad_index, device))
        forward_sum += output.forward_loss.item() * output.predicted_tokens
        if output.backward_loss is not None:
            backward_sum += output.backward_loss.item() * output.predicted_tokens
        predictions += output.predicted_tokens
    model.train()
    forward_loss = forward_sum / predictions
    backward_loss = backward_sum / predictions if model.backward_head is not None else None
    loss = forward_loss if backward_loss is None else (forward_loss + backward_loss) / 2
    return {
        "dev_loss": loss,
        "dev_perplexity": math.exp(loss),
        "dev_forward_perplexity": math.exp(forward_loss),
        "dev_backward_perplexity": None if backward_loss is None else math.exp(backward_loss),
        "dev_predicted_tokens": predictions,
    }


# --------------------------------------------------------------------------- the run


def pretrain_language_model(
    config: LanguageModelConfig, texts: Sequence[str], output: Path, log: Log = log_stderr
) -> dict[str, Any]:
    """Pretrain on ``texts`` and write the run directory ``output`` (see the module
    docstring). Returns the results, also written to ``results.json``.

    Everything is written into a staging directory beside ``output`` that is
    renamed into place at the end, so ``output`` is either complete or absent.
    """
    output = Path(output)
    staging = create_staging_directory(output)
    try:
        results = run_in_directory(config, texts, staging, log)
        publish_directory(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"wrote {output}: dev perplexity {results['dev_perplexity']:.1f}")
    return results


def run_in_directory(
    config: LanguageModelConfig, texts: Sequence[str], directory: Path, log: Log
) -> dict[str, Any]:
    """Prepare the data, train, evaluate and write every run file into ``directory``."""
    started = time.monotonic()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    seed_everything(config.seed)
    device = resolve_device(config.device)
    corpus = prepare_corpus(config, texts, log)
    write_json_atomic(directory / CONFIG_FILE, asdict(config))
    write_json_atomic(directory / TOKENIZER_FILE, corpus.tokenizer.to_dict())
    corpus.vocab.save(directory / VOCAB_FILE)
    pad_index = corpus.vocab.pad_index
    model = BidirectionalLanguageModel(len(corpus.vocab), config, pad_index).to(device)
    log(f"language model: {sum(p.numel() for p in model.parameters())} parameters on {device}")
    progress = train_language_model(model, corpus.train, config, pad_index, log)
    dev = evaluate_language_model(model, corpus.dev, config, pad_index)
    save_checkpoint(directory / WEIGHTS_DIRECTORY, model, state={"step": progress.step})
    results = {
        "texts": len(texts),
        "train_chunks": len(corpus.train),
        "dev_chunks": len(corpus.dev),
        "vocabulary_size": len(corpus.vocab),
        "steps": progress.step,
        "train_tokens": progress.tokens,
        "training_seconds": round(progress.seconds, 1),
        "seconds": round(time.monotonic() - started, 1),
        "tokens_per_second": round(progress.tokens / max(progress.seconds, 1e-9), 1),
        "stopped_by": progress.stopped_by,
        **dev,
    }
    write_json_atomic(directory / RESULTS_FILE, results)
    return results


def create_staging_directory(output: Path) -> Path:
    """A fresh, empty ``<output>.staging`` directory; ``output`` must not hold anything."""
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise RunError(f"{output} already exists and is not empty; choose another --output")
    staging = output.with_name(output.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def publish_directory(staging: Path, output: Path) -> None:
    """Rename the complete ``staging`` directory to ``output`` (replacing it if empty)."""
    if output.is_dir():
        output.rmdir()
    os.replace(staging, output)


def main_lm(
    files: Sequence[str], output: Path, overrides: list[str], text_field: str = "text"
) -> dict[str, Any]:
    """``attnrnn pretrain --method lm``: configure from ``--set`` overrides and run."""
    config = from_dict(LanguageModelConfig, apply_overrides({}, overrides))
    texts = read_texts(files, text_field)
    return pretrain_language_model(config, texts, Path(output))


# --------------------------------------------------------------------------- transfer


def load_pretrained_encoder(
    run_directory: Path, model: TextClassifier, vocab: Vocab, log: Log = log_stderr
) -> None:
    """Initialise ``model``'s embedding and RNN encoder from a pretraining run.

    Embedding rows are copied by token string for every word in both
    vocabularies (the classifier's vocabulary may differ in words and order);
    the others keep their initialisation. The RNN weights are copied whole.

    Raises:
        RunError: the run directory is missing or incomplete.
        ConfigError: the classifier's embedding size or encoder differ from the
            pretrained ones; the message names the setting to change.
    """
    run_directory = Path(run_directory)
    pretrained_config, pretrained_vocab, weights = read_pretraining_run(run_directory)
    check_compatible(run_directory, pretrained_config, model)
    rnn_weights = {
        name.removeprefix("encoder.rnn."): tensor
        for name, tensor in weights.items()
        if name.startswith("encoder.rnn.")
    }
    try:
        model.encoder.rnn.load_state_dict(rnn_weights, strict=True)
    except RuntimeError as error:
        raise RunError(
            f"{run_directory}: RNN weights do not fit the classifier ({error})"
        ) from None
    covered = copy_embedding_rows(weights["embedding.weight"], pretrained_vocab, model, vocab)
    log(
        f"pretrained encoder {run_directory}: embedding rows for {covered} of {len(vocab)} "
        f"vocabulary words ({covered / len(vocab):.1%}), RNN weights copied"
    )
    if covered < len(vocab) / 2:
        log(
            "fewer than half the words have pretrained embeddings: does the classifier use "
            f"the pretraining's tokenizer ({run_directory / TOKENIZER_FILE})?"
        )


def read_pretraining_run(run_directory: Path) -> tuple[LanguageModelConfig, Vocab, dict]:
    """The config, vocabulary and weights of a complete pretraining run directory."""
    if not run_directory.is_dir():
        raise RunError(f"{run_directory}: no such language-model pretraining directory")
    for name in (CONFIG_FILE, VOCAB_FILE):
        if not (run_directory / name).is_file():
            raise RunError(f"{run_directory} is incomplete: {name} is missing")
    weights_path = checkpoint_path(run_directory / WEIGHTS_DIRECTORY) / MODEL_FILE
    try:
        data = json.loads((run_directory / CONFIG_FILE).read_text(encoding="utf-8"))
        config = from_dict(LanguageModelConfig, data)
        vocab = Vocab.load(run_directory / VOCAB_FILE)
        weights = load_file(str(weights_path))
    except (OSError, ValueError, SafetensorError, AttnrnnError) as error:
        raise RunError(f"{run_directory}: cannot read the pretraining run ({error})") from None
    if "embedding.weight" not in weights:
        raise RunError(f"{weights_path}: no embedding weights; is this a language model?")
    return config, vocab, weights


def check_compatible(
    run_directory: Path, pretrained: LanguageModelConfig, model: TextClassifier
) -> None:
    """Raise ConfigError naming the classifier setting that differs from the pretrained one."""
    encoder = model.encoder
    pairs = [
        ("embedding_size", pretrained.embedding_size, model.embedding.embedding_dim),
        ("encoder.cell", pretrained.encoder.cell, encoder.cell),
        ("encoder.hidden_size", pretrained.encoder.hidden_size, encoder.hidden_size),
        ("encoder.num_layers", pretrained.encoder.num_layers, encoder.num_layers),
        ("encoder.bidirectional", pretrained.encoder.bidirectional, encoder.bidirectional),
    ]
    for key, pretrained_value, model_value in pairs:
        if pretrained_value != model_value:
            raise ConfigError(
                f"{run_directory} was pretrained with {key}={pretrained_value} but "
                f"model.{key} is {model_value}; set model.{key}={pretrained_value} to use it"
            )


def copy_embedding_rows(
    pretrained_matrix: torch.Tensor, pretrained_vocab: Vocab, model: TextClassifier, vocab: Vocab
) -> int:
    """Copy the pretrained (V', E) rows into the classifier's (V, E) embedding by token
    string, padding excepted; return how many of the classifier's words were covered."""
    pairs = [
        (index, pretrained_vocab.index(token))
        for index, token in enumerate(vocab)
        if token in pretrained_vocab and index != vocab.pad_index
    ]
    if not pairs:
        return 0
    targets, sources = (torch.tensor(column) for column in zip(*pairs, strict=True))  # (N,) each
    weight = model.embedding.weight
    with torch.no_grad():
        weight[targets.to(weight.device)] = pretrained_matrix[sources].to(weight)  # (N, E)
    return len(pairs)
