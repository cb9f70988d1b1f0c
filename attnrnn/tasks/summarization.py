"""Summarization as a training task: configuration, JSONL data with one or several
references, the extended (copy) vocabulary, the loss with coverage, decoding and ROUGE
for :class:`attnrnn.models.pointer_generator.PointerGenerator`.

A summarization run directory holds config.yaml, tokenizer.json, vocab.json,
best/ last/ checkpoints, metrics.csv and results.json.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from attnrnn.config import (
    EncoderConfig,
    OptimizerConfig,
    TrainerConfig,
    check_positive,
    from_dict,
)
from attnrnn.data.batching import make_batches, pad_sequences
from attnrnn.data.parallel import read_parallel_jsonl
from attnrnn.data.tokenizers import Tokenizer, WordTokenizer
from attnrnn.data.vocab import Vocab
from attnrnn.decoding import Hypothesis, SearchConfig, search
from attnrnn.errors import ConfigError, DataError
from attnrnn.models.pointer_generator import PointerGenerator
from attnrnn.models.seq2seq import DecoderConfig, Seq2SeqConfig
from attnrnn.training.trainer import LossOutput

# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SummarizationDataConfig:
    """JSONL files with a source field and one or more summary fields.

    reference_fields: the summary fields of the test file when it has
        several references (DialogSum: summary1, summary2, summary3); empty
        means ``target_field``.
    """

    train: str
    dev: str
    test: str | None = None
    source_field: str = "dialogue"
    target_field: str = "summary"
    reference_fields: tuple[str, ...] = ()
    max_source_length: int = 400
    max_target_length: int = 100

    def __post_init__(self) -> None:
        check_positive(self, "max_source_length", "max_target_length")


@dataclass(frozen=True)
class SummarizationTokenizerConfig:
    """Words (copying handles the rare ones), lowercased by default."""

    lowercase: bool = True
    min_freq: int = 2
    max_size: int = 30000

    def __post_init__(self) -> None:
        check_positive(self, "min_freq", "max_size")


def default_model() -> Seq2SeqConfig:
    return Seq2SeqConfig(
        embedding_size=128,
        embedding_dropout=0.1,
        share_embeddings=True,
        encoder=EncoderConfig(cell="lstm", hidden_size=256, num_layers=1),
        decoder=DecoderConfig(
            style="luong", cell="lstm", hidden_size=256, attention="coverage", output_dropout=0.1
        ),
    )


@dataclass(frozen=True)
class SummarizationRunConfig:
    """Everything a summarization run needs; stored as the run's config.yaml.

    copy: the pointer-generator switch (false: plain attention seq2seq with
        the same parts, for comparison).
    coverage_loss_weight: weight of ``sum_s min(a_ts, c_ts)`` (needs
        ``model.decoder.attention: coverage`` to be useful).
    """

    data: SummarizationDataConfig
    task: Literal["summarization"] = "summarization"
    tokenizer: SummarizationTokenizerConfig = SummarizationTokenizerConfig()
    model: Seq2SeqConfig = field(default_factory=default_model)
    copy: bool = True
    coverage_loss_weight: float = 1.0
    metric: Literal["rouge1", "rouge2", "rougeL"] = "rougeL"
    optimizer: OptimizerConfig = OptimizerConfig()
    trainer: TrainerConfig = TrainerConfig(batch_tokens=12000, max_batch_size=64)
    dev_search: SearchConfig = SearchConfig(beam_size=1, max_length_ratio=0.5, max_length_offset=20)
    search: SearchConfig = SearchConfig(
        beam_size=4, max_length_ratio=0.5, max_length_offset=20, no_repeat_ngram_size=3
    )

    def __post_init__(self) -> None:
        if self.coverage_loss_weight < 0:
            raise ConfigError(
                f"coverage_loss_weight must not be negative, got {self.coverage_loss_weight}"
            )

    @classmethod
    def from_dict(cls, data: dict) -> SummarizationRunConfig:
        return from_dict(cls, data)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Document:
    """A source text with its reference summaries (none for unlabelled input)."""

    source: str
    references: tuple[str, ...]
    origin: str


def read_documents(
    path: str, config: SummarizationDataConfig, reference_fields: Sequence[str] = ()
) -> list[Document]:
    """Documents of a JSONL file with their references from ``reference_fields``
    (default: the target field)."""
    fields = list(reference_fields) or [config.target_field]
    columns = [read_parallel_jsonl(path, config.source_field, name) for name in fields]
    documents = []
    for rows in zip(*columns, strict=True):
        references = tuple(row.target or "" for row in rows)
        documents.append(Document(rows[0].source, references, rows[0].origin))
    return documents


@dataclass
class EncodedDocument:
    """Extended source ids, the source's unknown words (id V + k is ``unknown[k]``),
    extended target ids (empty without a reference), and how the source writes its
    words (``casing``: lowercased token -> written form, for the words written with
    capitals; a lowercasing tokenizer still copies "McAllister", not "mcallister")."""

    source: list[int]
    unknown: list[str]
    target: list[int]
    casing: dict[str, str] = field(default_factory=dict)


def encode_document(
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    vocab: Vocab,
    source_surface: Sequence[str] | None = None,
) -> EncodedDocument:
    """Map tokens to ids; unknown source words get extended ids, and target words
    that occur in the source take the same extended id (so they can be copied).

    ``source_surface``: the source tokens as written (same length): their casing
    (:func:`source_casing`) is kept, and an unknown word's first written form
    wherever the casing has none, so that copies keep the source's spelling.
    """
    unknown: list[str] = []
    positions: dict[str, int] = {}
    source = []
    for token in source_tokens:
        if token in vocab:
            source.append(vocab.index(token))
            continue
        if token not in positions:
            positions[token] = len(vocab) + len(unknown)
            unknown.append(token)
        source.append(positions[token])
    target = [
        vocab.index(token) if token in vocab else positions.get(token, vocab.unk_index)
        for token in target_tokens
    ]
    casing: dict[str, str] = {}
    if source_surface is not None:
        casing = source_casing(source_surface)
        for token, written in zip(source_tokens, source_surface, strict=True):
            if token in positions and written != token:
                casing.setdefault(token, written)
    return EncodedDocument(source, unknown, target, casing)


def decode_ids(ids: Sequence[int], document: EncodedDocument, vocab: Vocab) -> list[str]:
    """Output ids back to tokens; extended ids become the source's own words as written."""
    size = len(vocab)
    tokens = []
    for index in ids:
        if index >= size:
            word = document.unknown[index - size]
            tokens.append(document.casing.get(word, word))
        else:
            tokens.append(vocab.token(index))
    return tokens


SENTENCE_ENDS = frozenset({".", "!", "?"})
TURN_STARTS = SENTENCE_ENDS | {":", '"'}  # a word after these starts a sentence or turn


def source_casing(written: Sequence[str]) -> dict[str, str]:
    """The most frequent written form of every lowercased source token written with
    capitals ("mcallister" -> "McAllister"), not counting sentence-initial words
    (a capital there says nothing about the word)."""
    counts: dict[str, dict[str, int]] = {}
    for index, token in enumerate(written):
        if index == 0 or written[index - 1] in TURN_STARTS:
            continue
        forms = counts.setdefault(token.lower(), {})
        forms[token] = forms.get(token, 0) + 1
    casing = {}
    for lowered, forms in counts.items():
        best = max(forms.items(), key=lambda item: (item[1], item[0] != lowered))[0]
        if best != lowered:
            casing[lowered] = best
    return casing


def readable_summary(tokens: Sequence[str], casing: dict[str, str]) -> str:
    """Output tokens as text: the source's casing restored, sentences capitalized,
    speaker tags rejoined ("# person1 #" -> "#Person1#", as DialogSum writes them), and
    Moses detokenization (sacremoses) of punctuation ("it 's fine ." -> "it's fine.").
    ROUGE (which lowercases and drops punctuation) scores it as the bare tokens."""
    cased = [casing.get(token, token) for token in tokens]
    for index, token in enumerate(cased):
        if index == 0 or cased[index - 1] in SENTENCE_ENDS:
            cased[index] = token[:1].upper() + token[1:]
    joined: list[str] = []
    index = 0
    while index < len(cased):
        window = cased[index : index + 3]
        if len(window) == 3 and window[0] == window[2] == "#" and window[1].isalnum():
            joined.append(f"#{window[1]}#")
            index += 3
        else:
            joined.append(cased[index])
            index += 1
    return _moses_detokenizer().detokenize(joined)


@functools.cache
def _moses_detokenizer() -> Any:
    from sacremoses import MosesDetokenizer

    return MosesDetokenizer(lang="en")


def written_tokens(tokenizer: Tokenizer, text: str, tokens: Sequence[str]) -> list[str] | None:
    """The tokens of ``text`` with their case kept, when ``tokenizer`` lowercases and
    splitting without lowercasing gives the same tokens; otherwise None."""
    if not isinstance(tokenizer, WordTokenizer) or not tokenizer.lowercase:
        return None
    cased = WordTokenizer(
        lowercase=False,
        split_contractions=tokenizer.split_contractions,
        strip_html=tokenizer.strip_html,
    ).tokenize(text)[: len(tokens)]
    if len(cased) != len(tokens) or any(c.lower() != t for c, t in zip(cased, tokens, strict=True)):
        return None
    return cased


@dataclass
class SummarizationSplit:
    documents: list[EncodedDocument]
    references: list[tuple[str, ...]]

    def __len__(self) -> int:
        return len(self.documents)

    @property
    def lengths(self) -> list[int]:
        return [max(len(d.source), len(d.target) + 1) for d in self.documents]


def encode_split(
    documents: Sequence[Document],
    tokenizer: Tokenizer,
    vocab: Vocab,
    config: SummarizationDataConfig,
) -> SummarizationSplit:
    """Tokenize, truncate (sources to ``max_source_length``, targets to
    ``max_target_length``) and encode with copy ids; the first reference trains."""
    encoded = []
    for document in documents:
        source = tokenizer.tokenize(document.source)[: config.max_source_length]
        if not source:
            raise DataError("the source text has no tokens", document.origin)
        first = document.references[0] if document.references else ""
        target = tokenizer.tokenize(first)[: config.max_target_length]
        written = written_tokens(tokenizer, document.source, source)
        encoded.append(encode_document(source, target, vocab, written))
    return SummarizationSplit(encoded, [d.references for d in documents])


# --------------------------------------------------------------------------- batches and loss


@dataclass
class CopyBatch:
    """source (B, S) extended ids, lengths (B,), target input / output (B, T), V + X."""

    source: torch.Tensor
    source_lengths: torch.Tensor
    target_input: torch.Tensor
    target_output: torch.Tensor
    extended_size: int

    def to(self, device: torch.device) -> CopyBatch:
        return CopyBatch(
            self.source.to(device),
            self.source_lengths.to(device),
            self.target_input.to(device),
            self.target_output.to(device),
            self.extended_size,
        )


def collate(
    split: SummarizationSplit, indices: Sequence[int], model: PointerGenerator
) -> CopyBatch:
    """Pad a batch; without copying, extended ids are replaced by ``<unk>``."""
    documents = [split.documents[i] for i in indices]
    unk, size = model.unk_index, model.vocab_size

    def ids(values: list[int]) -> list[int]:
        return values if model.copy else [unk if v >= size else v for v in values]

    pad, bos, eos = model.pad_index, model.bos_index, model.eos_index
    source, lengths = pad_sequences([ids(d.source) for d in documents], pad)
    target_input, _ = pad_sequences([[bos, *ids(d.target)] for d in documents], pad)
    target_output, _ = pad_sequences([[*ids(d.target), eos] for d in documents], pad)
    extra = max((len(d.unknown) for d in documents), default=0) if model.copy else 0
    return CopyBatch(source, lengths, target_input, target_output, size + extra)


def summarization_loss(
    model: PointerGenerator, batch: CopyBatch, coverage_weight: float
) -> tuple[torch.Tensor, int]:
    """Mean negative log-likelihood per target token (+ weighted coverage loss)."""
    valid = batch.target_output != model.pad_index  # (B, T)
    output = model.copy_forward(
        batch.source,
        batch.source_lengths,
        batch.target_input,
        batch.target_output,
        batch.extended_size,
    )
    loss = -output.target_log_probs[valid].mean()
    if coverage_weight:
        loss = loss + coverage_weight * output.coverage_loss[valid].mean()
    return loss, int(valid.sum())


# --------------------------------------------------------------------------- decoding


@torch.no_grad()
def summarize_split(
    model: PointerGenerator,
    split: SummarizationSplit,
    vocab: Vocab,
    search_config: SearchConfig,
    trainer_config: TrainerConfig,
    device: torch.device,
) -> list[tuple[list[str], Hypothesis]]:
    """Decode every document: output tokens (copied words restored) and the best hypothesis,
    in input order."""
    model.eval()
    budget = max(trainer_config.batch_tokens // search_config.beam_size, 1)
    lengths = [len(d.source) for d in split.documents]
    results: list[tuple[list[str], Hypothesis] | None] = [None] * len(split)
    for indices in make_batches(lengths, budget, trainer_config.max_batch_size):
        batch = collate(split, indices, model).to(device)
        encoded = model.encode_with_copy(batch.source, batch.source_lengths, batch.extended_size)
        hypotheses = search(model, model.init_state(encoded), batch.source_lengths, search_config)
        for index, n_best in zip(indices, hypotheses, strict=True):
            best = n_best[0]
            results[index] = (decode_ids(best.tokens, split.documents[index], vocab), best)
    return [item for item in results if item is not None]


def rouge_scores(outputs: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """ROUGE-1/2/L F1 (rouge-score, Porter stemming): mean over each document's
    references (``rouge1``...) and the best reference (``rouge1_max``...), averaged over
    documents."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {name: 0.0 for name in ("rouge1", "rouge2", "rougeL")}
    bests = dict.fromkeys(totals, 0.0)
    for output, document_references in zip(outputs, references, strict=True):
        per_reference = [scorer.score(reference, output) for reference in document_references]
        for name in totals:
            values = [scores[name].fmeasure for scores in per_reference]
            totals[name] += sum(values) / len(values)
            bests[name] += max(values)
    count = max(len(outputs), 1)
    metrics = {name: value / count for name, value in totals.items()}
    metrics.update({f"{name}_max": value / count for name, value in bests.items()})
    return metrics


class SummarizationTask:
    """Supplies batches, the loss and dev ROUGE to the generic trainer."""

    def __init__(
        self,
        train: SummarizationSplit,
        dev: SummarizationSplit,
        tokenizer: Tokenizer,
        vocab: Vocab,
        config: SummarizationRunConfig,
        device: torch.device,
    ) -> None:
        self.train, self.dev = train, dev
        self.tokenizer, self.vocab = tokenizer, vocab
        self.config = config
        self.device = device

    def train_batches(self, epoch: int) -> list[list[int]]:
        trainer = self.config.trainer
        return make_batches(
            self.train.lengths,
            trainer.batch_tokens,
            trainer.max_batch_size,
            shuffle=True,
            seed=trainer.seed,
            epoch=epoch,
        )

    def compute_loss(self, model: PointerGenerator, indices: list[int]) -> LossOutput:
        batch = collate(self.train, indices, model).to(self.device)
        loss, tokens = summarization_loss(model, batch, self.config.coverage_loss_weight)
        return LossOutput(loss, tokens)

    def evaluate(self, model: PointerGenerator) -> dict[str, float]:
        decoded = summarize_split(
            model,
            self.dev,
            self.vocab,
            self.config.dev_search,
            self.config.trainer,
            self.device,
        )
        outputs = [
            readable_summary(tokens, document.casing)
            for (tokens, _), document in zip(decoded, self.dev.documents, strict=True)
        ]
        scores = rouge_scores(outputs, self.dev.references)
        return {name: value for name, value in scores.items() if not name.endswith("_max")}
