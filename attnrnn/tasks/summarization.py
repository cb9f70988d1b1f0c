"""Summarization: a pointer-generator with coverage
(:class:`attnrnn.models.pointer_generator.PointerGenerator`, See et al. 2017) as a
task: JSON-lines documents with one or several references, the extended (copy)
vocabulary, the loss with coverage, decoding and ROUGE.

A summarization run directory holds, besides what every run has
(:mod:`attnrnn.tasks.runs`)::

    tokenizer.json      word tokenizer settings (one vocabulary for source and summary)
    vocab.json          the vocabulary
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from attnrnn.config import (
    EncoderConfig,
    InferenceConfig,
    OptimizerConfig,
    TrainerConfig,
    check_positive,
)
from attnrnn.data.casing import readable_summary
from attnrnn.data.document_batches import CopyBatch, collate
from attnrnn.data.documents import (
    Document,
    DocumentSplit,
    EncodedDocument,
    decode_ids,
    document_line,
    document_text,
    encode_documents,
    read_documents,
)
from attnrnn.data.readers import check_encoding
from attnrnn.data.vocab import Vocab
from attnrnn.decoding import Hypothesis, SearchConfig
from attnrnn.errors import ConfigError
from attnrnn.metrics import rouge_scores
from attnrnn.models.pointer_generator import PointerGenerator
from attnrnn.models.seq2seq import DecoderConfig, Seq2SeqConfig
from attnrnn.tasks.base import (
    Explanation,
    Metric,
    Option,
    Task,
    TrainedModel,
    as_list,
    output_folder,
)
from attnrnn.tasks.sequence import SEARCH_OPTIONS, Alternative, decode, search_config
from attnrnn.tasks.text import BOS, EOS, SPECIALS, TextSide, fit_tokenizer
from attnrnn.training.runtime import shape_multiple
from attnrnn.training.trainer import LossOutput
from attnrnn.viz import printable, printable_token

# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SummarizationDataConfig:
    """JSONL files with a source field and one or more summary fields.

    dev: the dev file; without one, ``dev_fraction`` of train is held out.
    reference_fields: the summary fields of the test file when it has
        several references (DialogSum: summary1, summary2, summary3); empty
        means ``target_field``.
    """

    train: str
    dev: str | None = None
    test: str | None = None
    source_field: str = "dialogue"
    target_field: str = "summary"
    reference_fields: tuple[str, ...] = ()
    max_source_length: int = 400
    max_target_length: int = 100
    dev_fraction: float = 0.1
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        check_encoding(self.encoding)
        check_positive(self, "max_source_length", "max_target_length")
        if not 0.0 < self.dev_fraction < 1.0:
            raise ConfigError(f"dev_fraction must be in (0, 1), got {self.dev_fraction}")


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
    dev_search: decoding for dev ROUGE during training; search: for the final
        scores, ``summarize`` and ``evaluate``.
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
    inference: InferenceConfig = InferenceConfig(batch_tokens=12000, max_batch_size=64)
    dev_search: SearchConfig = SearchConfig(beam_size=1, max_length_ratio=0.5, max_length_offset=20)
    search: SearchConfig = SearchConfig(
        beam_size=4, max_length_ratio=0.5, max_length_offset=20, no_repeat_ngram_size=3
    )

    def __post_init__(self) -> None:
        if self.coverage_loss_weight < 0:
            raise ConfigError(
                f"coverage_loss_weight must not be negative, got {self.coverage_loss_weight}"
            )


# --------------------------------------------------------------------------- data


@dataclass
class SummarizationAssets:
    """The word tokenizer and the one vocabulary of sources and summaries."""

    text: TextSide

    def save(self, directory: Path) -> None:
        self.text.save(directory)

    @classmethod
    def load(cls, directory: Path) -> SummarizationAssets:
        return cls(TextSide.load(directory))


def encode_split(
    documents: Sequence[Document], assets: SummarizationAssets, data: SummarizationDataConfig
) -> DocumentSplit:
    """Documents as ids (sources and targets truncated as ``data`` says)."""
    text = assets.text
    return encode_documents(
        documents, text.tokenizer, text.vocab, data.max_source_length, data.max_target_length
    )


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


# --------------------------------------------------------------------------- using a model


@dataclass
class Summary:
    """A summary with, per output token, its copy probability and attention.

    target_tokens: the output tokens (copied words as the source writes them);
    summary: the same as readable text. score: the search score of the best
    hypothesis; alternatives: the next best summaries (``n_best`` > 1) with their
    output tokens and attention.
    """

    source: str
    summary: str
    score: float
    source_tokens: list[str]
    target_tokens: list[str]
    copy_probability: list[float]  # (T,) 1 - p_gen per output token
    attention: list[list[float]]  # (T, S)
    alternatives: list[Alternative] = field(default_factory=list)


class Summarizer(TrainedModel[SummarizationRunConfig, SummarizationAssets]):
    """A trained summarizer: :meth:`summarize`, :meth:`evaluate`, :meth:`explain`."""

    model: PointerGenerator

    def hypotheses(self, split: DocumentSplit, search: SearchConfig) -> list[list[Hypothesis]]:
        """The n-best hypotheses of every document (ids in its extended vocabulary)."""
        model = self.model

        def start(indices: list[int]) -> tuple[Any, Any, torch.Tensor]:
            batch = collate(split, indices, model).to(self.device)
            encoded = model.encode_with_copy(
                batch.source, batch.source_lengths, batch.extended_size
            )
            return model, model.init_state(encoded), batch.source_lengths

        lengths = [len(document.source) for document in split.documents]
        return decode(self, lengths, start, search, "summarize")

    def written(self, split: DocumentSplit, search: SearchConfig) -> list[str]:
        """The best summary of every document as readable text."""
        vocab = self.assets.text.vocab
        return [
            readable_summary(decode_ids(n_best[0].tokens, document, vocab), document.casing)
            for n_best, document in zip(
                self.hypotheses(split, search), split.documents, strict=True
            )
        ]

    def summarize(self, texts: Sequence[str | Mapping[str, Any]], **options: Any) -> list[Summary]:
        """Summaries of raw texts (or JSON objects: their ``field``, by default the run's
        ``data.source_field``), with search options as keywords (``beam``, ``n_best``,
        ``length_penalty``... see :func:`attnrnn.tasks.sequence.search_config`)."""
        name = options.pop("field", None) or self.config.data.source_field
        search = search_config(self.config.search, **options)
        sources = [text if isinstance(text, str) else document_text(text, name) for text in texts]
        documents = [Document(text, (), f"input:{n}") for n, text in enumerate(sources, 1)]
        tokenizer, vocab = self.assets.text.tokenizer, self.assets.text.vocab
        split = encode_split(documents, self.assets, self.config.data)
        summaries = []
        with self.lock:
            for text, document, n_best in zip(
                sources, split.documents, self.hypotheses(split, search), strict=True
            ):
                best = n_best[0]
                tokens = decode_ids(best.tokens, document, vocab)
                copy = self.copy_probabilities(document, best.tokens)
                summaries.append(
                    Summary(
                        source=text,
                        summary=readable_summary(tokens, document.casing),
                        score=best.score,
                        source_tokens=tokenizer.tokenize(text)[: len(document.source)],
                        target_tokens=tokens,
                        copy_probability=copy[: len(tokens)],
                        attention=best.attention[: len(tokens)].tolist(),
                        alternatives=[self._alternative(h, document) for h in n_best[1:]],
                    )
                )
        return summaries

    def _alternative(self, hypothesis: Hypothesis, document: EncodedDocument) -> Alternative:
        """Another hypothesis as readable text, output tokens and attention (T, S)."""
        tokens = decode_ids(hypothesis.tokens, document, self.assets.text.vocab)
        return Alternative(
            readable_summary(tokens, document.casing),
            hypothesis.score,
            tokens,
            hypothesis.attention[: len(tokens)].tolist(),
        )

    def predict(self, inputs: Sequence[Any], **options: Any) -> list[Summary]:
        """The same as :meth:`summarize` (for code that works with any task)."""
        return self.summarize(inputs, **options)

    @torch.no_grad()
    def copy_probabilities(self, document: EncodedDocument, output: list[int]) -> list[float]:
        """1 - p_gen at every output step (T + 1,), from a teacher-forced pass over the
        output ids (extended vocabulary) of one document."""
        model, device = self.model, self.device
        model.eval()
        source_ids = torch.tensor([document.source], device=device)  # (1, S)
        target_input = torch.tensor([[model.bos_index, *output]], device=device)  # (1, T + 1)
        target_output = torch.tensor([[*output, model.eos_index]], device=device)
        result = model.copy_forward(
            source_ids,
            torch.tensor([len(document.source)], device=device),
            target_input,
            target_output,
            model.vocab_size + len(document.unknown),
        )
        return (1.0 - result.generation_probability[0]).tolist()

    def score(self, split: DocumentSplit, **options: Any) -> dict[str, float]:
        """ROUGE of the decoded split (``config.search`` with ``options``) plus
        summary and reference lengths in words."""
        outputs = self.written(split, search_config(self.config.search, **options))
        metrics = rouge_scores(outputs, split.references)
        lengths = [len(output.split()) for output in outputs]
        reference_lengths = [len(r.split()) for refs in split.references for r in refs]
        metrics["summary_words_mean"] = sum(lengths) / max(len(lengths), 1)
        metrics["reference_words_mean"] = sum(reference_lengths) / max(len(reference_lengths), 1)
        return metrics

    def explain(
        self, inputs: Any, output: str | Path | None = None, color: bool = False, **options: Any
    ) -> Explanation:
        """Each summary with every output token's copy probability (how much of it came
        from pointing at the source); with ``output``: explain.html (the interactive
        explorer) and summary-N.png, the attention with the copy probabilities on the
        rows. Text inputs are read like the CLI's input lines (:meth:`parse_input`)."""
        from attnrnn.explain import write_alignment_pngs

        texts, _ = as_list(inputs)
        texts = [self.parse_input(t, options) if isinstance(t, str) else t for t in texts]
        summaries = self.summarize(texts, **options)
        lines, alignments = [], []
        for number, item in enumerate(summaries, start=1):
            pairs = list(zip(item.target_tokens, item.copy_probability, strict=True))
            rows = [f"{token} ({copy:.2f})" for token, copy in pairs]
            shown = " ".join(f"{printable_token(t)}({c:.2f})" for t, c in pairs)
            lines += [printable(item.summary), "  " + shown]
            title = f"summary {number}: copy probability in parentheses on the rows"
            alignments.append((item.source_tokens, rows, item.attention, title))
        files = []
        folder = output_folder(output)
        if folder is not None:
            files = [self.write_explorer(folder, [self.record(s) for s in summaries])]
            files += write_alignment_pngs(folder, "summary", alignments)
        return Explanation("\n".join(lines), files, summaries)

    def parse_input(self, line: str, options: dict[str, Any]) -> str:
        """A line that starts with ``{`` is a JSON object: its ``field`` (default: the
        run's ``data.source_field``) is the text; any other line is the text itself."""
        return document_line(line, options.get("field") or self.config.data.source_field)

    def record(self, result: Summary) -> dict[str, Any]:
        record = {
            "summary": result.summary,
            "score": result.score,
            "tokens": result.target_tokens,
            "copy_probability": result.copy_probability,
            "source_tokens": result.source_tokens,
            "attention": result.attention,
        }
        if result.alternatives:
            record["alternatives"] = [alternative.text for alternative in result.alternatives]
            record["alternatives_detail"] = [asdict(item) for item in result.alternatives]
        return record

    def line(self, result: Summary) -> str:
        """The summary (and the alternatives, tab-separated, with ``n_best`` > 1)."""
        return "\t".join([result.summary, *(item.text for item in result.alternatives)])


# --------------------------------------------------------------------------- the task

FIELD_OPTION = Option(
    ("--field",),
    "field",
    "the field of JSON-object input lines holding the text (default: the run's "
    "data.source_field); other lines are the text itself",
    commands=("predict", "explain"),
)


class SummarizationTask(Task[SummarizationRunConfig, SummarizationAssets, DocumentSplit]):
    name = "summarization"
    config_class = SummarizationRunConfig
    model_class = Summarizer
    command = "summarize"
    explain_files = (
        "explain.html (the interactive explorer, with copy probabilities) and summary-N.png "
        "(the attention, each output word with its copy probability)"
    )
    options = (*SEARCH_OPTIONS, FIELD_OPTION)

    def read_split(
        self, config: SummarizationRunConfig, location: str, role: str
    ) -> list[Document]:
        data = config.data
        fields: tuple[str, ...] = (data.target_field,)
        if role == "test" and data.reference_fields:  # the run's own test split
            fields = data.reference_fields
        return read_documents(location, data.source_field, fields)

    def fit_assets(
        self, config: SummarizationRunConfig, train: list[Document], workdir: Path
    ) -> SummarizationAssets:
        settings = config.tokenizer
        texts = [d.source for d in train] + [d.references[0] for d in train]
        tokenizer = fit_tokenizer(settings, texts, workdir, split_contractions=False)
        vocab = Vocab.build(
            (tokenizer.tokenize(text) for text in texts),
            min_freq=settings.min_freq,
            max_size=settings.max_size,
            specials=SPECIALS,
        )
        return SummarizationAssets(TextSide(tokenizer, vocab))

    def load_assets(self, directory: Path) -> SummarizationAssets:
        return SummarizationAssets.load(directory)

    def encode(
        self,
        config: SummarizationRunConfig,
        assets: SummarizationAssets,
        examples: list[Document],
        role: str,
    ) -> DocumentSplit:
        return encode_split(examples, assets, config.data)

    def describe(self, prepared: Any) -> str:
        return (
            f"{len(prepared.train)} training documents, {len(prepared.dev)} dev, "
            f"vocabulary {len(prepared.assets.text.vocab)}"
        )

    def build_model(
        self, config: SummarizationRunConfig, assets: SummarizationAssets
    ) -> PointerGenerator:
        vocab = assets.text.vocab
        return PointerGenerator(
            len(vocab),
            config.model,
            vocab.pad_index,
            vocab.index(BOS),
            vocab.index(EOS),
            vocab.unk_index,
            copy=config.copy,
        )

    def metric(self, config: SummarizationRunConfig) -> Metric:
        return Metric(config.metric, higher_is_better=True)

    def lengths(self, split: DocumentSplit) -> list[int]:
        return split.lengths

    def loss(
        self,
        model: Any,
        config: SummarizationRunConfig,
        split: DocumentSplit,
        indices: list[int],
        device: Any,
    ) -> LossOutput:
        multiple = shape_multiple(config.trainer.precision, torch.device(device))
        batch = collate(split, indices, model, multiple).to(device)
        loss, tokens = summarization_loss(model, batch, config.coverage_loss_weight)
        return LossOutput(loss, tokens)

    def dev_scores(self, trained: TrainedModel, split: DocumentSplit) -> dict[str, float]:
        """Dev ROUGE with ``config.dev_search`` (mean over references only)."""
        assert isinstance(trained, Summarizer)
        outputs = trained.written(split, trained.config.dev_search)
        scores = rouge_scores(outputs, split.references)
        return {name: value for name, value in scores.items() if not name.endswith("_max")}
