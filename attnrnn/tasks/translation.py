"""Translation as a training task: configuration, data, loss, decoding and scoring
for :class:`attnrnn.models.seq2seq.Seq2Seq`.

A translation run directory holds::

    config.yaml                          the full configuration, defaults filled in
    source_tokenizer.json, target_tokenizer.json (+ sentencepiece model files)
    source_vocab.json, target_vocab.json the vocabularies (the same file twice when joint)
    best/ last/                          checkpoints (safetensors; last/ can resume)
    metrics.csv                          dev BLEU, chrF and loss per evaluation
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from attnrnn.config import OptimizerConfig, TrainerConfig, check_positive, from_dict
from attnrnn.data.batching import make_batches, pad_sequences
from attnrnn.data.parallel import ParallelExample, read_parallel
from attnrnn.data.tokenizers import Tokenizer
from attnrnn.data.vocab import Vocab
from attnrnn.decoding import Hypothesis, SearchConfig, search
from attnrnn.errors import ConfigError
from attnrnn.metrics import corpus_bleu, corpus_chrf, exact_match
from attnrnn.models.seq2seq import Seq2Seq, Seq2SeqConfig
from attnrnn.training.trainer import LossOutput

BOS = "<s>"
EOS = "</s>"
SPECIALS = ("<pad>", "<unk>", BOS, EOS)
TABLE_SUFFIXES = (".tsv", ".csv", ".jsonl", ".json", ".gz")

# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class TranslationDataConfig:
    """Where the sentence pairs are.

    ``train``, ``dev`` and ``test`` are either a prefix completed by the
    language codes (``data/train`` reads ``data/train.de`` and
    ``data/train.en``, the Multi30k layout) or one TSV / CSV / JSONL file
    with ``source_field`` and ``target_field``. Longer pairs are dropped from
    training (not from dev or test, whose inputs are truncated instead).
    """

    train: str
    dev: str
    test: str | None = None
    source_language: str = "src"
    target_language: str = "tgt"
    format: str = "auto"
    source_field: str | int = "source"
    target_field: str | int = "target"
    max_source_length: int = 100
    max_target_length: int = 100

    def __post_init__(self) -> None:
        check_positive(self, "max_source_length", "max_target_length")


@dataclass(frozen=True)
class TranslationTokenizerConfig:
    """Subwords (SentencePiece BPE or unigram), words or characters.

    joint: one tokenizer and vocabulary for both languages (needed by
        ``model.share_embeddings``); otherwise one per side.
    vocab_size: SentencePiece pieces per model.
    """

    type: Literal["sentencepiece", "word", "character"] = "sentencepiece"
    model_type: Literal["bpe", "unigram"] = "bpe"
    vocab_size: int = 8000
    joint: bool = True
    lowercase: bool = False
    min_freq: int = 1

    def __post_init__(self) -> None:
        check_positive(self, "vocab_size", "min_freq")


@dataclass(frozen=True)
class TranslationRunConfig:
    """Everything a translation run needs; stored as the run's config.yaml.

    label_smoothing: epsilon of the label-smoothed cross-entropy.
    metric: the dev score that selects the best checkpoint (bleu, chrf, or
        exact_match for tasks with one right answer, such as dates).
    dev_search: decoding used to score dev during training (greedy by default:
        fast, and it ranks checkpoints like beam search does).
    search: decoding used by ``translate`` and ``evaluate``.
    """

    data: TranslationDataConfig
    task: Literal["translation"] = "translation"
    tokenizer: TranslationTokenizerConfig = TranslationTokenizerConfig()
    model: Seq2SeqConfig = Seq2SeqConfig()
    label_smoothing: float = 0.1
    metric: Literal["bleu", "chrf", "exact_match"] = "bleu"
    optimizer: OptimizerConfig = OptimizerConfig()
    trainer: TrainerConfig = TrainerConfig()
    dev_search: SearchConfig = SearchConfig(beam_size=1)
    search: SearchConfig = SearchConfig()

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.model.share_embeddings and not self.tokenizer.joint:
            raise ConfigError("model.share_embeddings needs tokenizer.joint: true")

    @classmethod
    def from_dict(cls, data: dict) -> TranslationRunConfig:
        return from_dict(cls, data)


# --------------------------------------------------------------------------- data


def read_pairs(location: str, config: TranslationDataConfig) -> list[ParallelExample]:
    """Read a split given as a language-suffixed prefix or as one table / JSONL file."""
    if location.endswith(TABLE_SUFFIXES) or config.format in ("table", "jsonl"):
        return read_parallel(
            location,
            format=config.format,
            source_field=config.source_field,
            target_field=config.target_field,
        )
    source = f"{location}.{config.source_language}"
    target = f"{location}.{config.target_language}"
    return read_parallel(source, target)


@dataclass
class TextSide:
    """Tokenizer and vocabulary of one language."""

    tokenizer: Tokenizer
    vocab: Vocab

    def encode(self, text: str) -> list[int]:
        return self.vocab.encode(self.tokenizer.tokenize(text))

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.detokenize(self.vocab.decode(ids))


@dataclass
class ParallelSplit:
    """Token ids of one split (targets without BOS/EOS) and the raw target texts."""

    sources: list[list[int]]
    targets: list[list[int]]
    references: list[str]

    def __len__(self) -> int:
        return len(self.sources)


def encode_split(
    examples: Sequence[ParallelExample],
    source: TextSide,
    target: TextSide,
    config: TranslationDataConfig,
    drop_long: bool,
) -> ParallelSplit:
    """Encode pairs; training drops over-long pairs, evaluation truncates them."""
    split = ParallelSplit([], [], [])
    for example in examples:
        source_ids = source.encode(example.source) or [source.vocab.unk_index]
        target_ids = target.encode(example.target or "")
        too_long = (
            len(source_ids) > config.max_source_length or len(target_ids) > config.max_target_length
        )
        if drop_long and too_long:
            continue
        split.sources.append(source_ids[: config.max_source_length])
        split.targets.append(target_ids[: config.max_target_length])
        split.references.append(example.target or "")
    return split


# --------------------------------------------------------------------------- the task


@dataclass
class TranslationBatch:
    """source (B, S), source_lengths (B,), target_input (B, T), target_output (B, T)."""

    source: torch.Tensor
    source_lengths: torch.Tensor
    target_input: torch.Tensor
    target_output: torch.Tensor

    def to(self, device: torch.device) -> TranslationBatch:
        return TranslationBatch(
            self.source.to(device),
            self.source_lengths.to(device),
            self.target_input.to(device),
            self.target_output.to(device),
        )


def collate(
    split: ParallelSplit, indices: Sequence[int], pad: int, bos: int, eos: int
) -> TranslationBatch:
    """Pad sources; target input is ``BOS y``, target output ``y EOS``."""
    source, source_lengths = pad_sequences([split.sources[i] for i in indices], pad)
    target_input, _ = pad_sequences([[bos, *split.targets[i]] for i in indices], pad)
    target_output, _ = pad_sequences([[*split.targets[i], eos] for i in indices], pad)
    return TranslationBatch(source, source_lengths, target_input, target_output)


def pair_lengths(split: ParallelSplit) -> list[int]:
    """The padded length a pair costs in a batch: its longer side (+1 for BOS/EOS)."""
    return [
        max(len(source), len(target) + 1)
        for source, target in zip(split.sources, split.targets, strict=True)
    ]


def sequence_loss(
    model: Seq2Seq, batch: TranslationBatch, label_smoothing: float
) -> tuple[torch.Tensor, int]:
    """Mean label-smoothed cross-entropy over the target tokens, and their number.

    The output layer runs only on real target positions, never on padding.
    """
    output = model(batch.source, batch.source_lengths, batch.target_input)
    valid = batch.target_output != model.pad_index  # (B, T)
    loss = model.output_loss(output.attentional[valid], batch.target_output[valid], label_smoothing)
    return loss, int(valid.sum())


class TranslationTask:
    """Supplies batches, the loss and dev BLEU / chrF to the generic trainer."""

    def __init__(
        self,
        train: ParallelSplit,
        dev: ParallelSplit,
        target: TextSide,
        config: TranslationRunConfig,
        device: torch.device,
        special_ids: tuple[int, int, int],
    ) -> None:
        self.train = train
        self.dev = dev
        self.target = target
        self.config = config
        self.device = device
        self.pad, self.bos, self.eos = special_ids
        self.lengths = pair_lengths(train)

    def train_batches(self, epoch: int) -> list[list[int]]:
        trainer = self.config.trainer
        return make_batches(
            self.lengths,
            trainer.batch_tokens,
            trainer.max_batch_size,
            shuffle=True,
            seed=trainer.seed,
            epoch=epoch,
        )

    def compute_loss(self, model: Seq2Seq, indices: list[int]) -> LossOutput:
        batch = collate(self.train, indices, self.pad, self.bos, self.eos).to(self.device)
        loss, tokens = sequence_loss(model, batch, self.config.label_smoothing)
        return LossOutput(loss, tokens)

    def evaluate(self, model: Seq2Seq) -> dict[str, float]:
        metrics = score_split(
            model, self.dev, self.target, self.config.dev_search, self.config.trainer, self.device
        )
        metrics["loss"] = split_loss(model, self.dev, self.config, self.device)
        return metrics


# --------------------------------------------------------------------------- decoding


@torch.no_grad()
def translate_ids(
    model: Seq2Seq,
    sources: Sequence[Sequence[int]],
    search_config: SearchConfig,
    trainer_config: TrainerConfig,
    device: torch.device,
) -> list[list[Hypothesis]]:
    """Decode token-id sources in length-sorted batches; n-best lists in input order."""
    model.eval()
    lengths = [len(source) for source in sources]
    # Beam search multiplies the rows by K: keep the decoded rows within the budget.
    budget = max(trainer_config.batch_tokens // search_config.beam_size, 1)
    results: list[list[Hypothesis]] = [[] for _ in sources]
    for indices in make_batches(lengths, budget, trainer_config.max_batch_size):
        source, source_lengths = pad_sequences([sources[i] for i in indices], model.pad_index)
        encoded = model.encode(source.to(device), source_lengths.to(device))
        state = model.init_state(encoded)
        hypotheses = search(model, state, source_lengths.to(device), search_config)
        for index, n_best in zip(indices, hypotheses, strict=True):
            results[index] = n_best
    return results


def score_split(
    model: Seq2Seq,
    split: ParallelSplit,
    target: TextSide,
    search_config: SearchConfig,
    trainer_config: TrainerConfig,
    device: torch.device,
) -> dict[str, float]:
    """Decode a split and score it against its raw references with sacreBLEU."""
    hypotheses = translate_ids(model, split.sources, search_config, trainer_config, device)
    outputs = [target.decode(n_best[0].tokens) for n_best in hypotheses]
    return {
        "bleu": corpus_bleu(outputs, split.references).score,
        "chrf": corpus_chrf(outputs, split.references).score,
        "exact_match": exact_match(outputs, split.references),
    }


@torch.no_grad()
def split_loss(
    model: Seq2Seq, split: ParallelSplit, config: TranslationRunConfig, device: torch.device
) -> float:
    """Mean per-token cross-entropy (without label smoothing) over a split."""
    model.eval()
    pad, bos, eos = model.pad_index, model.bos_index, model.eos_index
    total, tokens = 0.0, 0
    batches = make_batches(
        pair_lengths(split), config.trainer.batch_tokens, config.trainer.max_batch_size
    )
    for indices in batches:
        batch = collate(split, indices, pad, bos, eos).to(device)
        loss, count = sequence_loss(model, batch, 0.0)
        total += float(loss) * count
        tokens += count
    return total / max(tokens, 1)


def special_ids(vocab: Vocab) -> tuple[int, int, int]:
    """(pad, bos, eos) of a target vocabulary."""
    return vocab.pad_index, vocab.index(BOS), vocab.index(EOS)


def tokenizer_file_names(joint: bool) -> tuple[str, str]:
    """Names of the SentencePiece model prefixes inside a run directory."""
    return ("sentencepiece", "sentencepiece") if joint else ("source", "target")


def run_file(directory: Path, side: str, kind: str) -> Path:
    """``source_vocab.json`` and friends."""
    return directory / f"{side}_{kind}.json"
