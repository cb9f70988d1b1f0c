"""The life of a summarization run: fit the word vocabulary, create the run directory,
train, and load the run again to summarize, evaluate and explain."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from attnrnn.config import load_yaml, save_yaml
from attnrnn.console import Log
from attnrnn.console import log as log_stderr
from attnrnn.data.tokenizers import Tokenizer, WordTokenizer, tokenizer_from_dict
from attnrnn.data.vocab import Vocab
from attnrnn.decoding import SearchConfig
from attnrnn.errors import RunError
from attnrnn.models.pointer_generator import PointerGenerator
from attnrnn.tasks.summarization import (
    Document,
    SummarizationRunConfig,
    SummarizationSplit,
    SummarizationTask,
    encode_split,
    read_documents,
    readable_summary,
    rouge_scores,
    summarize_split,
)
from attnrnn.tasks.translation import SPECIALS, special_ids
from attnrnn.training import checkpoint
from attnrnn.training.runtime import configure_runtime, resolve_device
from attnrnn.training.trainer import Trainer, train_and_score


@dataclass
class Prepared:
    tokenizer: Tokenizer
    vocab: Vocab
    train: SummarizationSplit
    dev: SummarizationSplit
    test: SummarizationSplit | None


def _tokenizer(config: SummarizationRunConfig) -> WordTokenizer:
    return WordTokenizer(lowercase=config.tokenizer.lowercase, split_contractions=False)


def prepare(
    config: SummarizationRunConfig,
    log: Log = log_stderr,
    saved: tuple[Tokenizer, Vocab] | None = None,
) -> Prepared:
    data = config.data
    train_documents = read_documents(data.train, data)
    dev_documents = read_documents(data.dev, data)
    test_documents = read_documents(data.test, data, data.reference_fields) if data.test else None
    if saved is None:
        tokenizer: Tokenizer = _tokenizer(config)
        texts = [d.source for d in train_documents] + [d.references[0] for d in train_documents]
        vocab = Vocab.build(
            (tokenizer.tokenize(text) for text in texts),
            min_freq=config.tokenizer.min_freq,
            max_size=config.tokenizer.max_size,
            specials=SPECIALS,
        )
    else:
        tokenizer, vocab = saved
    train = encode_split(train_documents, tokenizer, vocab, data)
    dev = encode_split(dev_documents, tokenizer, vocab, data)
    test = encode_split(test_documents, tokenizer, vocab, data) if test_documents else None
    log(f"{len(train)} training documents, {len(dev)} dev, vocabulary {len(vocab)}")
    return Prepared(tokenizer, vocab, train, dev, test)


def make_model(config: SummarizationRunConfig, vocab: Vocab) -> PointerGenerator:
    pad, bos, eos = special_ids(vocab)
    return PointerGenerator(
        len(vocab), config.model, pad, bos, eos, vocab.unk_index, copy=config.copy
    )


def write_run_files(
    run_directory: Path, config: SummarizationRunConfig, prepared: Prepared
) -> None:
    with checkpoint.staged_run_directory(run_directory) as staging:
        save_yaml(config, staging / "config.yaml")
        checkpoint.write_json_atomic(staging / "tokenizer.json", prepared.tokenizer.to_dict())
        prepared.vocab.save(staging / "vocab.json")


def load_saved(run_directory: Path) -> tuple[Tokenizer, Vocab]:
    for name in ("config.yaml", "tokenizer.json", "vocab.json"):
        if not (run_directory / name).is_file():
            raise RunError(f"{run_directory}: not a summarization run (missing {name})")
    settings = json.loads((run_directory / "tokenizer.json").read_text(encoding="utf-8"))
    return tokenizer_from_dict(settings, run_directory), Vocab.load(run_directory / "vocab.json")


def score(
    model: PointerGenerator,
    split: SummarizationSplit,
    vocab: Vocab,
    search: SearchConfig,
    config: SummarizationRunConfig,
    device: torch.device,
) -> dict[str, float]:
    """ROUGE of the decoded split plus summary-length statistics (in words)."""
    decoded = summarize_split(model, split, vocab, search, config.trainer, device)
    outputs = [
        readable_summary(tokens, document.casing)
        for (tokens, _), document in zip(decoded, split.documents, strict=True)
    ]
    metrics = rouge_scores(outputs, split.references)
    lengths = [len(output.split()) for output in outputs]
    reference_lengths = [len(r.split()) for refs in split.references for r in refs]
    metrics["summary_words_mean"] = sum(lengths) / max(len(lengths), 1)
    metrics["reference_words_mean"] = sum(reference_lengths) / max(len(reference_lengths), 1)
    return metrics


def train(
    config: SummarizationRunConfig,
    run_directory: Path,
    resume: bool = False,
    log: Log = log_stderr,
) -> dict[str, float]:
    """Train into ``run_directory``; return the best checkpoint's dev (and test) ROUGE."""
    run_directory = Path(run_directory)
    device = configure_runtime(config.trainer)
    run_directory.parent.mkdir(parents=True, exist_ok=True)
    saved = load_saved(run_directory) if resume else None
    prepared = prepare(config, log, saved)
    model = make_model(config, prepared.vocab).to(device)
    if not resume:
        write_run_files(run_directory, config, prepared)
    task = SummarizationTask(
        prepared.train, prepared.dev, prepared.tokenizer, prepared.vocab, config, device
    )
    trainer = Trainer(model, task, config.optimizer, config.trainer, run_directory, config.metric)
    return train_and_score(
        trainer,
        resume,
        [("dev", prepared.dev), ("test", prepared.test)],
        lambda split: score(model, split, prepared.vocab, config.search, config, device),
        device,
        log,
    )


@dataclass
class Summary:
    """A summary with, per output token, its copy probability and attention."""

    source: str
    summary: str
    source_tokens: list[str]
    tokens: list[str]
    copy_probability: list[float]  # 1 - p_gen per output token
    attention: list[list[float]]  # (T, S)


class SummarizationRun:
    """A trained summarization run loaded from its directory."""

    def __init__(
        self, run_directory: str | Path, device: str = "auto", checkpoint_name: str = "best"
    ) -> None:
        self.directory = Path(run_directory)
        if not self.directory.is_dir():
            raise RunError(f"{self.directory}: no such run directory")
        self.tokenizer, self.vocab = load_saved(self.directory)
        self.config = SummarizationRunConfig.from_dict(load_yaml(self.directory / "config.yaml"))
        self.device = resolve_device(device)
        self.model = make_model(self.config, self.vocab).to(self.device)
        checkpoint.load_weights(self.directory / checkpoint_name, self.model, self.device)
        self.model.eval()

    def _split(self, documents: Sequence[Document]) -> SummarizationSplit:
        return encode_split(documents, self.tokenizer, self.vocab, self.config.data)

    def summarize(self, texts: Sequence[str], search: SearchConfig | None = None) -> list[Summary]:
        search = search or self.config.search
        documents = [Document(text, (), f"input:{n}") for n, text in enumerate(texts, 1)]
        split = self._split(documents)
        decoded = summarize_split(
            self.model, split, self.vocab, search, self.config.trainer, self.device
        )
        summaries = []
        for index, (text, (tokens, hypothesis)) in enumerate(zip(texts, decoded, strict=True)):
            document = split.documents[index]
            copy = self._copy_probabilities(
                document.source, hypothesis.tokens, len(document.unknown)
            )
            source_tokens = self.tokenizer.tokenize(text)[: len(document.source)]
            summaries.append(
                Summary(
                    source=text,
                    summary=readable_summary(tokens, document.casing),
                    source_tokens=source_tokens,
                    tokens=tokens,
                    copy_probability=copy[: len(tokens)],
                    attention=hypothesis.attention[: len(tokens)].tolist(),
                )
            )
        return summaries

    @torch.no_grad()
    def _copy_probabilities(
        self, source: list[int], output: list[int], unknown: int
    ) -> list[float]:
        """1 - p_gen at every output step, from a teacher-forced pass over the output."""
        model = self.model
        device = self.device
        source_ids = torch.tensor([source], device=device)
        target_input = torch.tensor([[model.bos_index, *output]], device=device)
        target_output = torch.tensor([[*output, model.eos_index]], device=device)
        result = model.copy_forward(
            source_ids,
            torch.tensor([len(source)], device=device),
            target_input,
            target_output,
            model.vocab_size + unknown,
        )
        return (1.0 - result.generation_probability[0]).tolist()

    def evaluate(
        self, documents: Sequence[Document], search: SearchConfig | None = None
    ) -> dict[str, float]:
        return score(
            self.model,
            self._split(documents),
            self.vocab,
            search or self.config.search,
            self.config,
            self.device,
        )
