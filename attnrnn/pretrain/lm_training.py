"""Training a :class:`~attnrnn.pretrain.language_model.BidirectionalLanguageModel`
on raw text, and the ``attnrnn pretrain --method lm`` run directory it writes."""

from __future__ import annotations

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
from torch import nn

from attnrnn.config import (
    OptimizerConfig,
    apply_overrides,
    from_dict,
)
from attnrnn.console import Log
from attnrnn.console import log as log_stderr
from attnrnn.data.batching import make_batches
from attnrnn.data.readers import guess_format, read_examples, read_plain
from attnrnn.data.tokenizers import WordTokenizer
from attnrnn.data.vocab import Vocab
from attnrnn.errors import DataError, RunError
from attnrnn.pretrain.language_model import (
    CONFIG_FILE,
    DEV_FRACTION,
    RESULTS_FILE,
    TOKENIZER_FILE,
    VOCAB_FILE,
    WEIGHTS_DIRECTORY,
    BidirectionalLanguageModel,
    LanguageModelConfig,
    LanguageModelOutput,
)
from attnrnn.training.checkpoint import (
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

# --------------------------------------------------------------------------- data


def read_texts(paths: Sequence[str], text_field: str = "text") -> list[str]:
    """The non-blank texts of raw text files.

    ``.txt`` files hold one text a line (empty lines are skipped),
    ``.jsonl[.gz]`` one JSON object with ``text_field`` a line, ``.tsv``/``.csv``
    a ``text_field`` column.
    """
    texts: list[str] = []
    for path in paths:
        if guess_format(path) == "plain":
            examples = read_plain(path, skip_empty_lines=True)
        else:
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
