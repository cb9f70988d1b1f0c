"""Translation: an attention encoder-decoder (:class:`attnrnn.models.seq2seq.Seq2Seq`)
trained on sentence pairs, as a task.

A translation run directory holds, besides what every run has
(:mod:`attnrnn.tasks.runs`)::

    source_tokenizer.json, target_tokenizer.json   tokenizer settings
    sentencepiece.model                            the SentencePiece model when joint
    source.model, target.model                     (or one per side otherwise)
    source_vocab.json, target_vocab.json           the vocabularies (the same twice when joint)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

import torch

from attnrnn.config import InferenceConfig, OptimizerConfig, TrainerConfig, check_positive
from attnrnn.data.batching import DeviceBatch, pad_sequences, teacher_forcing
from attnrnn.data.parallel import ParallelExample, read_parallel
from attnrnn.data.readers import check_encoding
from attnrnn.data.tokenizers import Tokenizer
from attnrnn.data.vocab import Vocab
from attnrnn.decoding import Hypothesis, SearchConfig
from attnrnn.decoding.shortlist import Shortlist, Shortlisted, read_shortlist
from attnrnn.errors import ConfigError, DataError
from attnrnn.metrics import corpus_bleu, corpus_chrf, exact_match
from attnrnn.models.seq2seq import Seq2Seq, Seq2SeqConfig
from attnrnn.nn import decoder_step, fast_paths
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
from attnrnn.viz import printable

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

    ``alignments``: a reference alignment of the training pairs for guided alignment
    (``guided_alignment``), one line per pair of ``train`` in Pharaoh format (``i-j``:
    source unit i to target unit j, from 0; ``i?j``: a possible link), as word aligners
    such as eflomal or fast_align write it (``attnrnn data align`` makes one). The units
    are ``alignment_units``: ``words`` (whitespace-separated words, spread over their
    subword pieces) or ``characters`` (for a character tokenizer, e.g. the date task).
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
    alignments: str | None = None
    alignment_units: Literal["words", "characters"] = "words"
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        check_encoding(self.encoding)
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
    guided_alignment: weight of guided alignment (Chen et al. 2016, as in Marian): the
        cross-entropy between the reference alignment of ``data.alignments`` (each target
        token's links, normalised) and the attention, added to the loss; 0 turns it off.
    metric: the dev score that selects the best checkpoint (bleu, chrf, or
        exact_match for tasks with one right answer, such as dates).
    dev_search: decoding used to score dev during training (greedy by default:
        fast, and it ranks checkpoints like beam search does).
    search: decoding used by ``translate`` and ``evaluate``.
    inference: batching of translation, evaluation and dev scoring.
    """

    data: TranslationDataConfig
    task: Literal["translation"] = "translation"
    tokenizer: TranslationTokenizerConfig = TranslationTokenizerConfig()
    model: Seq2SeqConfig = Seq2SeqConfig()
    label_smoothing: float = 0.1
    guided_alignment: float = 0.0
    metric: Literal["bleu", "chrf", "exact_match"] = "bleu"
    optimizer: OptimizerConfig = OptimizerConfig()
    trainer: TrainerConfig = TrainerConfig()
    dev_search: SearchConfig = SearchConfig(beam_size=1)
    search: SearchConfig = SearchConfig()
    inference: InferenceConfig = InferenceConfig(batch_tokens=4000, max_batch_size=128)

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.model.share_embeddings and not self.tokenizer.joint:
            raise ConfigError("model.share_embeddings needs tokenizer.joint: true")
        if self.guided_alignment < 0:
            raise ConfigError(f"guided_alignment must not be negative, got {self.guided_alignment}")
        if self.guided_alignment and not self.data.alignments:
            raise ConfigError("guided_alignment needs data.alignments (a Pharaoh links file)")
        if self.data.alignment_units == "characters" and self.tokenizer.type != "character":
            raise ConfigError("data.alignment_units: characters needs tokenizer.type: character")


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


def fit_vocab(tokenizer: Tokenizer, texts: Sequence[str], min_freq: int) -> Vocab:
    return Vocab.build((tokenizer.tokenize(text) for text in texts), min_freq, specials=SPECIALS)


@dataclass
class TranslationAssets:
    """The tokenizer and vocabulary of each language (one object twice when joint)."""

    source: TextSide
    target: TextSide

    def save(self, directory: Path) -> None:
        self.source.save(directory, prefix="source_")
        self.target.save(directory, prefix="target_")

    @classmethod
    def load(cls, directory: Path) -> TranslationAssets:
        return cls(TextSide.load(directory, "source_"), TextSide.load(directory, "target_"))

    @classmethod
    def fit(
        cls, config: TranslationRunConfig, examples: Sequence[ParallelExample], workdir: Path
    ) -> TranslationAssets:
        """Train the tokenizer(s) and build the vocabulary (or vocabularies) on training
        pairs; SentencePiece models are written to ``workdir`` as sentencepiece.model
        (joint) or source.model and target.model."""
        settings = config.tokenizer
        sources = [example.source for example in examples]
        targets = [example.target or "" for example in examples]

        def side(texts: list[str], name: str) -> TextSide:
            tokenizer = fit_tokenizer(settings, texts, workdir / name, split_contractions=False)
            return TextSide(tokenizer, fit_vocab(tokenizer, texts, settings.min_freq))

        if settings.joint:
            joint = side(sources + targets, "sentencepiece")
            return cls(joint, joint)
        return cls(side(sources, "source"), side(targets, "target"))

    def encode_source(self, text: str, max_length: int) -> list[int]:
        """Source token ids, truncated; a text with no tokens becomes one ``<unk>``."""
        return (self.source.encode(text) or [self.source.vocab.unk_index])[:max_length]

    def special_ids(self) -> tuple[int, int, int]:
        """(pad, bos, eos) of the target vocabulary."""
        vocab = self.target.vocab
        return vocab.pad_index, vocab.index(BOS), vocab.index(EOS)


Links = frozenset[tuple[int, int]]
"""Reference links of one encoded pair: (target token, source token) positions."""


@dataclass
class ParallelSplit:
    """Token ids of one split (targets without BOS/EOS), the raw target texts, and how
    many pairs encoding dropped as too long.

    links: per pair, its reference alignment in token positions when the split was read
        with alignments (None for a pair whose units did not match its tokens, counted
        in ``unaligned``).
    """

    sources: list[list[int]]
    targets: list[list[int]]
    references: list[str]
    dropped: int = 0
    links: list[Links | None] | None = None
    unaligned: int = 0

    def __len__(self) -> int:
        return len(self.sources)


def token_units(tokenizer: Tokenizer, text: str, units: str) -> list[int] | None:
    """The alignment unit (word or character index) of each token of ``text``, or None
    when the tokens cannot be traced back to units.

    ``words``: each whitespace-separated word is tokenized alone; this must give the
    sentence's tokens (SentencePiece and word tokenizers never join words). ``characters``:
    a character tokenizer's tokens are the characters, provided the text has no runs of
    whitespace to normalise and lowercasing kept its length.
    """
    tokens = tokenizer.tokenize(text)
    if units == "characters":
        same = text == " ".join(text.split()) and len(tokens) == len(text)
        return list(range(len(tokens))) if same else None
    pieces: list[str] = []
    positions: list[int] = []
    for index, word in enumerate(text.split()):
        word_pieces = tokenizer.tokenize(word)
        pieces += word_pieces
        positions += [index] * len(word_pieces)
    return positions if pieces == tokens else None


def token_links(example: ParallelExample, assets: TranslationAssets, units: str) -> Links | None:
    """The pair's reference alignment (sure and possible links) in token positions:
    every token of a linked source unit to every token of the linked target unit."""
    assert example.alignment is not None
    source_units = token_units(assets.source.tokenizer, example.source, units)
    target_units = token_units(assets.target.tokenizer, example.target or "", units)
    if source_units is None or target_units is None:
        return None
    source_tokens: dict[int, list[int]] = {}
    for position, unit in enumerate(source_units):
        source_tokens.setdefault(unit, []).append(position)
    target_tokens: dict[int, list[int]] = {}
    for position, unit in enumerate(target_units):
        target_tokens.setdefault(unit, []).append(position)
    return frozenset(
        (target, source)
        for source_unit, target_unit in example.alignment.possible
        for source in source_tokens.get(source_unit, ())
        for target in target_tokens.get(target_unit, ())
    )


def encode_split(
    examples: Sequence[ParallelExample],
    assets: TranslationAssets,
    config: TranslationDataConfig,
    drop_long: bool,
) -> ParallelSplit:
    """Encode pairs; training drops over-long pairs, evaluation truncates them. Pairs read
    with an alignment keep it in token positions (``links``)."""
    split = ParallelSplit([], [], [])
    if any(example.alignment is not None for example in examples):
        split.links = []
    for example in examples:
        source_ids = assets.source.encode(example.source) or [assets.source.vocab.unk_index]
        target_ids = assets.target.encode(example.target or "")
        too_long = (
            len(source_ids) > config.max_source_length or len(target_ids) > config.max_target_length
        )
        if drop_long and too_long:
            split.dropped += 1
            continue
        split.sources.append(source_ids[: config.max_source_length])
        split.targets.append(target_ids[: config.max_target_length])
        split.references.append(example.target or "")
        if split.links is not None:
            links = None
            if example.alignment is not None:
                links = token_links(example, assets, config.alignment_units)
            split.unaligned += links is None
            split.links.append(links)
    return split


# --------------------------------------------------------------------------- batches and loss


@dataclass
class TranslationBatch(DeviceBatch):
    """source (B, S), source_lengths (B,), target_input (B, T), target_output (B, T);
    alignment (B, T, S): each target position's reference links normalised to sum to 1
    (rows without links are zero), only when guided alignment asks for it."""

    source: torch.Tensor
    source_lengths: torch.Tensor
    target_input: torch.Tensor
    target_output: torch.Tensor
    alignment: torch.Tensor | None = None


def collate(
    split: ParallelSplit,
    indices: Sequence[int],
    pad: int,
    bos: int,
    eos: int,
    with_alignment: bool = False,
    multiple: int = 1,
) -> TranslationBatch:
    """Pad sources; target input is ``BOS y``, target output ``y EOS``; both sides
    padded to a multiple of ``multiple`` (see
    :func:`attnrnn.training.runtime.shape_multiple`)."""
    source, source_lengths = pad_sequences([split.sources[i] for i in indices], pad, multiple)
    target_input, target_output = teacher_forcing(
        [split.targets[i] for i in indices], pad, bos, eos, multiple
    )
    alignment = None
    if with_alignment and split.links is not None:
        links = [(row, *link) for row, i in enumerate(indices) for link in split.links[i] or ()]
        alignment = torch.zeros(len(indices), target_input.size(1), source.size(1))  # (B,T,S)
        if links:
            alignment[tuple(torch.tensor(links).T)] = 1.0  # rows, targets, sources at once
        alignment /= alignment.sum(dim=-1, keepdim=True).clamp(min=1.0)
    return TranslationBatch(source, source_lengths, target_input, target_output, alignment)


def pair_lengths(split: ParallelSplit) -> list[int]:
    """The padded length a pair costs in a batch: its longer side (+1 for BOS/EOS)."""
    return [
        max(len(source), len(target) + 1)
        for source, target in zip(split.sources, split.targets, strict=True)
    ]


def guided_alignment_loss(attention: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy between reference alignment rows and attention rows, over the
    target positions that have reference links (Chen et al. 2016; Marian's
    ``guided-alignment-cost: ce``).

    Args:
        attention: (B, T, S) the model's attention; reference: (B, T, S) rows summing to 1
            where a target position has links, zero elsewhere.
    """
    rows = reference.sum(dim=-1) > 0  # (B, T)
    if not bool(rows.any()):
        return attention.new_zeros(())
    cross_entropy = -(reference * attention.clamp(min=1e-9).log()).sum(dim=-1)  # (B, T)
    return cross_entropy[rows].mean()


def sequence_loss(
    model: Seq2Seq, batch: TranslationBatch, label_smoothing: float, guided_alignment: float = 0.0
) -> tuple[torch.Tensor, int]:
    """Mean label-smoothed cross-entropy over the target tokens (plus the weighted guided
    alignment loss when the batch has reference alignments), and the number of tokens.

    The output layer runs only on real target positions, never on padding.
    """
    output = model(batch.source, batch.source_lengths, batch.target_input)
    valid = batch.target_output != model.pad_index  # (B, T)
    loss = model.output_loss(output.attentional[valid], batch.target_output[valid], label_smoothing)
    if guided_alignment and batch.alignment is not None:
        loss = loss + guided_alignment * guided_alignment_loss(output.attention, batch.alignment)
    return loss, int(valid.sum())


def split_loss(
    model: Seq2Seq,
    split: ParallelSplit,
    indices: Sequence[int],
    label_smoothing: float,
    device: torch.device,
    guided_alignment: float = 0.0,
    multiple: int = 1,
) -> LossOutput:
    """:func:`sequence_loss` of the pairs ``indices`` of ``split``, on ``device``, in a
    batch padded to a multiple of ``multiple``."""
    special = model.pad_index, model.bos_index, model.eos_index
    alignment = guided_alignment > 0
    batch = collate(split, indices, *special, with_alignment=alignment, multiple=multiple)
    loss, tokens = sequence_loss(model, batch.to(device), label_smoothing, guided_alignment)
    return LossOutput(loss, tokens)


# --------------------------------------------------------------------------- using a model


@dataclass
class Translation:
    """One source sentence's translation with the attention that produced it."""

    source: str
    translation: str
    score: float  # the search score (length-penalised log-probability)
    source_tokens: list[str]
    target_tokens: list[str]  # the output tokens, + "</s>" when the search produced it
    attention: list[list[float]]  # (T, S): one row per target token
    alternatives: list[Alternative]  # the rest of the n-best list, best first


class Translator(TrainedModel[TranslationRunConfig, TranslationAssets]):
    """A trained translation model: :meth:`translate`, :meth:`evaluate`, :meth:`explain`."""

    # (key, step) of the last prepared decoder step (see step_model)
    _prepared: tuple[Any, Any] | None = None

    def decode_ids(
        self, sources: Sequence[Sequence[int]], config: SearchConfig, shortlist: bool = False
    ) -> list[list[Hypothesis]]:
        """N-best lists of token-id sources, in input order; ``shortlist``: score only the
        run's lexical shortlist for each batch (:mod:`attnrnn.decoding.shortlist`)."""
        model = cast(Seq2Seq, self.model)
        lexical = self.shortlist() if shortlist else None
        step_model = self.step_model()

        def start(indices: list[int]) -> tuple[Any, Any, torch.Tensor]:
            batch = [sources[i] for i in indices]
            source, lengths = pad_sequences(batch, model.pad_index)
            source, lengths = source.to(self.device), lengths.to(self.device)  # (B, S), (B,)
            state = step_model.init_state(step_model.encode(source, lengths))
            if lexical is None:
                return step_model, state, lengths
            ids = torch.tensor(lexical.candidates(batch), device=self.device)
            return Shortlisted(step_model, ids), state, lengths

        return decode(self, [len(source) for source in sources], start, config, "translate")

    def step_model(self) -> Any:
        """What search steps: the model, or its decoder step with the weights prepared for
        inference (:mod:`attnrnn.nn.decoder_step`: the Multi30k recipe's decoder, fast
        paths on), in bf16 matmuls when the model was loaded with ``precision="bf16"``.
        The prepared step is kept while the weights stay the same (dev scoring during
        training prepares it again after every update)."""
        model = self.model
        if not (fast_paths.enabled() and decoder_step.supports(model)):
            return model
        dtype = torch.bfloat16 if self.precision == "bf16" else None
        weights = tuple((p.data_ptr(), p._version) for p in model.parameters())
        key = (id(model), dtype, weights)
        if self._prepared is None or self._prepared[0] != key:
            self._prepared = (key, decoder_step.LuongGRUAdditiveStep(model, dtype))
        return self._prepared[1]

    def translate(self, texts: str | Sequence[str], **options: Any) -> list[Translation]:
        """Translate raw sentences (one or a list), keeping each output's attention.

        ``options``: search settings as keywords (``beam=5, n_best=2,
        length_penalty=1.0``, any :class:`~attnrnn.decoding.SearchConfig` field);
        the run's ``search`` gives the rest.
        """
        inputs, _ = as_list(texts)
        shortlist = bool(options.pop("shortlist", False))
        config = search_config(self.config.search, **options)
        limit = self.config.data.max_source_length
        ids = [self.assets.encode_source(text, limit) for text in inputs]
        return [
            self._translation(text, source_ids, n_best)
            for text, source_ids, n_best in zip(
                inputs, ids, self.decode_ids(ids, config, shortlist), strict=True
            )
        ]

    def write_shortlist(self, per_word: int = 50, frequent: int = 500) -> dict[str, Any]:
        """Build the lexical shortlist of the run's training pairs and write it into the run
        (``shortlist.json``); return what it holds."""
        from attnrnn.decoding.shortlist import SHORTLIST_FILE, build_shortlist
        from attnrnn.training.files import write_json_atomic

        if self.directory is None:
            raise ConfigError("a shortlist is written into a run directory")
        if per_word < 1 or frequent < 0:
            raise ConfigError(
                f"per_word must be >= 1 and frequent >= 0, got {per_word}, {frequent}"
            )
        data = self.config.data
        pairs = read_pairs(self.resolve(data.train), data)
        split = encode_split(pairs, self.assets, data, drop_long=False)
        model = cast(Seq2Seq, self.model)
        specials = [model.pad_index, model.bos_index, model.eos_index]
        specials.append(self.assets.target.vocab.unk_index)
        pairs_ids = zip(split.sources, split.targets, strict=True)
        lexical = build_shortlist(pairs_ids, per_word, frequent, specials)
        write_json_atomic(self.directory / SHORTLIST_FILE, lexical.to_dict())
        return {
            "shortlist": str(self.directory / SHORTLIST_FILE),
            "training_pairs": len(split.sources),
            "source_words": len(lexical.per_source),
            "per_word": per_word,
            "always_kept": len(lexical.always),
            "target_vocabulary": len(self.assets.target.vocab),
        }

    def shortlist(self) -> Shortlist:
        """The run's lexical shortlist (``attnrnn shortlist RUN`` writes it)."""
        found = read_shortlist(self.directory) if self.directory else None
        if found is None:
            raise ConfigError(
                f"{self.name} has no lexical shortlist; write one with `attnrnn shortlist "
                f"{self.name}`"
            )
        return found

    def predict(self, inputs: str | Sequence[str], **options: Any) -> list[Translation]:
        """The same as :meth:`translate`."""
        return self.translate(inputs, **options)

    def _translation(
        self, text: str, source_ids: list[int], n_best: list[Hypothesis]
    ) -> Translation:
        source = self.assets.source
        source_tokens = source.tokenizer.tokenize(text)[: len(source_ids)]
        if len(source_tokens) != len(source_ids):
            source_tokens = source.vocab.decode(source_ids)
        best, *alternatives = [self._alternative(h, len(source_ids)) for h in n_best]
        return Translation(
            source=text,
            translation=best.text,
            score=best.score,
            source_tokens=source_tokens,
            target_tokens=best.target_tokens,
            attention=best.attention,
            alternatives=alternatives,
        )

    def _alternative(self, hypothesis: Hypothesis, source_length: int) -> Alternative:
        """A hypothesis as text, output tokens (+ EOS when produced) and attention (T, S)."""
        target = self.assets.target
        target_tokens = target.vocab.decode(hypothesis.tokens)
        if hypothesis.attention.size(0) > len(hypothesis.tokens):
            target_tokens = [*target_tokens, EOS]
        attention = hypothesis.attention[: len(target_tokens), :source_length]
        return Alternative(
            target.decode(hypothesis.tokens), hypothesis.score, target_tokens, attention.tolist()
        )

    def loss(self, split: ParallelSplit) -> float:
        """Mean per-token cross-entropy (without label smoothing) over a split."""

        def run(indices: list[int]) -> list[tuple[float, int]]:
            output = split_loss(cast(Seq2Seq, self.model), split, indices, 0.0, self.device)
            mean = float(output.loss)
            return [(mean, len(split.targets[i]) + 1) for i in indices]

        results = self.batched(pair_lengths(split), run, description="loss")
        tokens = sum(count for _, count in results)
        return sum(mean * count for mean, count in results) / max(tokens, 1)

    def metrics(
        self, split: ParallelSplit, config: SearchConfig, shortlist: bool = False
    ) -> dict[str, Any]:
        """BLEU and chrF (sacreBLEU, with signatures), exact match and loss on a split."""
        hypotheses = self.decode_ids(split.sources, config, shortlist)
        outputs = [self.assets.target.decode(n_best[0].tokens) for n_best in hypotheses]
        bleu = corpus_bleu(outputs, split.references)
        chrf = corpus_chrf(outputs, split.references)
        return {
            "bleu": bleu.score,
            "chrf": chrf.score,
            "exact_match": exact_match(outputs, split.references),
            "loss": self.loss(split),
            "bleu_signature": bleu.signature,
            "chrf_signature": chrf.signature,
        }

    def score(self, split: ParallelSplit, **options: Any) -> dict[str, Any]:
        """BLEU, chrF (with their sacreBLEU signatures), exact match and loss on an
        encoded split, decoded with the run's ``search`` and ``options``."""
        shortlist = bool(options.pop("shortlist", False))
        config = search_config(self.config.search, **options)
        return {**self.metrics(split, config, shortlist), "beam_size": config.beam_size}

    def explain(
        self, inputs: Any, output: str | Path | None = None, color: bool = False, **options: Any
    ) -> Explanation:
        """Each translation with, per output token, the source token it attended to
        most; with ``output``: explain.html (the interactive explorer: hover a token to
        see what it attended to, n-best switch) and alignment-N.png per input."""
        from attnrnn.explain import strongest_links, write_alignment_pngs

        texts, _ = as_list(inputs)
        translations = self.translate(texts, **options)
        text = "\n".join(
            f"{printable(item.source)}\n  -> {printable(item.translation)}\n  "
            + strongest_links(item.source_tokens, item.target_tokens, item.attention)
            for item in translations
        )
        files = []
        folder = output_folder(output)
        if folder is not None:
            files = [self.write_explorer(folder, [self.record(t) for t in translations])]
            alignments = [
                (t.source_tokens, t.target_tokens, t.attention, f"{t.source} -> {t.translation}")
                for t in translations
            ]
            files += write_alignment_pngs(folder, "alignment", alignments)
        return Explanation(text, files, translations)

    def record(self, result: Translation) -> dict[str, Any]:
        return {
            "translation": result.translation,
            "score": result.score,
            "alternatives": [alternative.text for alternative in result.alternatives],
            "source_tokens": result.source_tokens,
            "target_tokens": result.target_tokens,
            "attention": result.attention,
            "alternatives_detail": [asdict(alternative) for alternative in result.alternatives],
        }

    def line(self, result: Translation) -> str:
        """The translation, then its alternatives, tab-separated."""
        return "\t".join([result.translation, *(a.text for a in result.alternatives)])

    def parse_input(self, line: str, options: dict[str, Any]) -> str:
        return line.strip()


# --------------------------------------------------------------------------- the task


class TranslationTask(Task[TranslationRunConfig, TranslationAssets, ParallelSplit]):
    name = "translation"
    config_class = TranslationRunConfig
    model_class = Translator
    command = "translate"
    explain_files = (
        "explain.html (the interactive explorer) and alignment-N.png (the attention of each "
        "translation)"
    )
    options = (
        *SEARCH_OPTIONS,
        Option(
            ("--shortlist",),
            "shortlist",
            "score only the run's lexical shortlist of target words (`attnrnn shortlist RUN`)",
            action="store_true",
        ),
    )
    supports_int8 = True
    supports_bf16 = True
    unused_parameters = False

    def read_split(
        self, config: TranslationRunConfig, location: str, role: str
    ) -> list[ParallelExample]:
        pairs = read_pairs(location, config.data)
        if role != "train" or not config.data.alignments:
            return pairs
        from attnrnn.data.alignments import read_links

        path = config.data.alignments
        alignments = read_links(path)
        if len(alignments) != len(pairs):
            raise DataError(
                f"{len(alignments)} alignment lines for {len(pairs)} training pairs: the file "
                "needs one line per pair of data.train",
                path,
            )
        return [
            replace(pair, alignment=alignment)
            for pair, alignment in zip(pairs, alignments, strict=True)
        ]

    def fit_assets(
        self, config: TranslationRunConfig, train: list[ParallelExample], workdir: Path
    ) -> TranslationAssets:
        return TranslationAssets.fit(config, train, workdir)

    def load_assets(self, directory: Path) -> TranslationAssets:
        return TranslationAssets.load(directory)

    def encode(
        self,
        config: TranslationRunConfig,
        assets: TranslationAssets,
        examples: list[ParallelExample],
        role: str,
    ) -> ParallelSplit:
        return encode_split(examples, assets, config.data, drop_long=role == "train")

    def describe(self, prepared: Any) -> str:
        assets: TranslationAssets = prepared.assets
        return (
            f"{len(prepared.train)} training pairs ({prepared.train.dropped} over the length "
            f"limits dropped), {len(prepared.dev)} dev, vocabulary {len(assets.source.vocab)} "
            f"source / {len(assets.target.vocab)} target"
            + (
                f"; {prepared.train.unaligned} pairs without usable alignment links"
                if prepared.train.links is not None
                else ""
            )
        )

    def build_model(self, config: TranslationRunConfig, assets: TranslationAssets) -> Seq2Seq:
        pad, bos, eos = assets.special_ids()
        sizes = len(assets.source.vocab), len(assets.target.vocab)
        return Seq2Seq(*sizes, config.model, pad, bos, eos)

    def metric(self, config: TranslationRunConfig) -> Metric:
        return Metric(config.metric, higher_is_better=True)

    def lengths(self, split: ParallelSplit) -> list[int]:
        return pair_lengths(split)

    def loss(
        self,
        model: Any,
        config: TranslationRunConfig,
        split: ParallelSplit,
        indices: list[int],
        device: Any,
    ) -> LossOutput:
        multiple = shape_multiple(config.trainer.precision, torch.device(device))
        smoothing, guided = config.label_smoothing, config.guided_alignment
        return split_loss(model, split, indices, smoothing, device, guided, multiple)

    def dev_scores(self, trained: TrainedModel, split: ParallelSplit) -> dict[str, float]:
        """BLEU, chrF, exact match and loss with the (fast) ``dev_search``."""
        assert isinstance(trained, Translator)
        metrics = trained.metrics(split, trained.config.dev_search)
        return {key: metrics[key] for key in ("bleu", "chrf", "exact_match", "loss")}
