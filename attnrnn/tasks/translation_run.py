"""The life of a translation run: fit tokenizers and vocabularies, create the run
directory, train, and load the run again to translate, evaluate and explain."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from attnrnn.config import load_yaml, save_yaml
from attnrnn.console import Log
from attnrnn.console import log as log_stderr
from attnrnn.data.parallel import ParallelExample
from attnrnn.data.tokenizers import (
    CharacterTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    WordTokenizer,
    tokenizer_from_dict,
)
from attnrnn.data.vocab import Vocab
from attnrnn.decoding import Hypothesis, SearchConfig
from attnrnn.errors import RunError
from attnrnn.metrics import corpus_bleu, corpus_chrf, exact_match
from attnrnn.models.quantize import quantize_int8
from attnrnn.models.seq2seq import Seq2Seq
from attnrnn.tasks.translation import (
    SPECIALS,
    ParallelSplit,
    TextSide,
    TranslationRunConfig,
    TranslationTask,
    encode_split,
    read_pairs,
    run_file,
    score_split,
    special_ids,
    split_loss,
    tokenizer_file_names,
    translate_ids,
)
from attnrnn.training import checkpoint
from attnrnn.training.runtime import configure_runtime, resolve_device
from attnrnn.training.trainer import Trainer, train_and_score

# --------------------------------------------------------------------------- preparation


@dataclass
class Prepared:
    source: TextSide
    target: TextSide
    train: ParallelSplit
    dev: ParallelSplit
    test: ParallelSplit | None
    workdir: Path


def _fit_tokenizer(
    config: TranslationRunConfig, texts: Sequence[str], workdir: Path, name: str
) -> Tokenizer:
    settings = config.tokenizer
    if settings.type == "word":
        return WordTokenizer(lowercase=settings.lowercase, split_contractions=False)
    if settings.type == "character":
        return CharacterTokenizer(lowercase=settings.lowercase)
    return SentencePieceTokenizer.train(
        texts,
        workdir / name,
        vocab_size=settings.vocab_size,
        model_type=settings.model_type,
        lowercase=settings.lowercase,
    )


def _fit_vocab(tokenizer: Tokenizer, texts: Sequence[str], min_freq: int) -> Vocab:
    return Vocab.build((tokenizer.tokenize(text) for text in texts), min_freq, specials=SPECIALS)


def fit_text_sides(
    config: TranslationRunConfig, examples: Sequence[ParallelExample], workdir: Path
) -> tuple[TextSide, TextSide]:
    """Train the tokenizer(s) and build the vocabulary (or vocabularies) on training pairs."""
    sources = [example.source for example in examples]
    targets = [example.target or "" for example in examples]
    min_freq = config.tokenizer.min_freq
    source_name, target_name = tokenizer_file_names(config.tokenizer.joint)
    if config.tokenizer.joint:
        tokenizer = _fit_tokenizer(config, sources + targets, workdir, source_name)
        side = TextSide(tokenizer, _fit_vocab(tokenizer, sources + targets, min_freq))
        return side, side
    source_tokenizer = _fit_tokenizer(config, sources, workdir, source_name)
    target_tokenizer = _fit_tokenizer(config, targets, workdir, target_name)
    return (
        TextSide(source_tokenizer, _fit_vocab(source_tokenizer, sources, min_freq)),
        TextSide(target_tokenizer, _fit_vocab(target_tokenizer, targets, min_freq)),
    )


def prepare(
    config: TranslationRunConfig,
    workdir: Path,
    log: Log = log_stderr,
    sides: tuple[TextSide, TextSide] | None = None,
) -> Prepared:
    """Read the splits, fit (or reuse) the text sides and encode everything."""
    data = config.data
    train_examples = read_pairs(data.train, data)
    dev_examples = read_pairs(data.dev, data)
    test_examples = read_pairs(data.test, data) if data.test else None
    source, target = sides or fit_text_sides(config, train_examples, workdir)
    train = encode_split(train_examples, source, target, data, drop_long=True)
    dev = encode_split(dev_examples, source, target, data, drop_long=False)
    test = encode_split(test_examples, source, target, data, False) if test_examples else None
    dropped = len(train_examples) - len(train)
    log(
        f"{len(train)} training pairs ({dropped} over the length limits dropped), "
        f"{len(dev)} dev, vocabulary {len(source.vocab)} source / {len(target.vocab)} target"
    )
    return Prepared(source, target, train, dev, test, workdir)


def make_model(config: TranslationRunConfig, source: TextSide, target: TextSide) -> Seq2Seq:
    pad, bos, eos = special_ids(target.vocab)
    return Seq2Seq(len(source.vocab), len(target.vocab), config.model, pad, bos, eos)


def write_run_files(run_directory: Path, config: TranslationRunConfig, prepared: Prepared) -> None:
    """Create the run directory with config, tokenizers and vocabularies, atomically."""
    with checkpoint.staged_run_directory(run_directory) as staging:
        save_yaml(config, staging / "config.yaml")
        for name, side in (("source", prepared.source), ("target", prepared.target)):
            settings = side.tokenizer.to_dict()
            model_file = settings.get("model_file")
            if model_file and not (staging / model_file).exists():
                shutil.copy(prepared.workdir / model_file, staging / model_file)
            checkpoint.write_json_atomic(run_file(staging, name, "tokenizer"), settings)
            side.vocab.save(run_file(staging, name, "vocab"))


def load_text_sides(run_directory: Path) -> tuple[TextSide, TextSide]:
    """The source and target tokenizers and vocabularies saved in a run directory."""
    sides = []
    for name in ("source", "target"):
        tokenizer_path = run_file(run_directory, name, "tokenizer")
        vocab_path = run_file(run_directory, name, "vocab")
        for path in (tokenizer_path, vocab_path):
            if not path.is_file():
                raise RunError(f"{run_directory}: not a translation run (missing {path.name})")
        settings = json.loads(tokenizer_path.read_text(encoding="utf-8"))
        sides.append(TextSide(tokenizer_from_dict(settings, run_directory), Vocab.load(vocab_path)))
    return sides[0], sides[1]


# --------------------------------------------------------------------------- training


def train(
    config: TranslationRunConfig,
    run_directory: Path,
    resume: bool = False,
    log: Log = log_stderr,
) -> dict[str, float]:
    """Train into ``run_directory``; return the best checkpoint's dev (and test) scores
    with the configured search."""
    run_directory = Path(run_directory)
    device = configure_runtime(config.trainer)
    run_directory.parent.mkdir(parents=True, exist_ok=True)
    sides = load_text_sides(run_directory) if resume else None
    with tempfile.TemporaryDirectory(dir=run_directory.parent, prefix=".prepare-") as workdir:
        prepared = prepare(config, Path(workdir), log, sides)
        model = make_model(config, prepared.source, prepared.target).to(device)
        if not resume:
            write_run_files(run_directory, config, prepared)
    task = TranslationTask(
        prepared.train,
        prepared.dev,
        prepared.target,
        config,
        device,
        special_ids(prepared.target.vocab),
    )
    trainer = Trainer(model, task, config.optimizer, config.trainer, run_directory, config.metric)
    return train_and_score(
        trainer,
        resume,
        [("dev", prepared.dev), ("test", prepared.test)],
        lambda split: score_split(
            model, split, prepared.target, config.search, config.trainer, device
        ),
        device,
        log,
    )


# --------------------------------------------------------------------------- using a run


@dataclass
class Translation:
    """One source sentence's translation with the attention that produced it."""

    source: str
    translation: str
    score: float
    source_tokens: list[str]
    target_tokens: list[str]
    attention: list[list[float]]  # (T, S): one row per output token (+ EOS)
    alternatives: list[str]


class TranslationRun:
    """A trained translation run loaded from its directory."""

    def __init__(
        self,
        run_directory: str | Path,
        device: str = "auto",
        checkpoint_name: str = "best",
        int8: bool = False,
    ) -> None:
        """Load a run; ``int8`` quantizes its linear and RNN layers for CPU inference."""
        self.directory = Path(run_directory)
        if not self.directory.is_dir():
            raise RunError(f"{self.directory}: no such run directory")
        if not (self.directory / "config.yaml").is_file():
            raise RunError(f"{self.directory}: not a run directory (missing config.yaml)")
        self.config = TranslationRunConfig.from_dict(load_yaml(self.directory / "config.yaml"))
        self.source, self.target = load_text_sides(self.directory)
        self.device = resolve_device(device)
        self.model = make_model(self.config, self.source, self.target).to(self.device)
        checkpoint.load_weights(self.directory / checkpoint_name, self.model, self.device)
        self.model.eval()
        if int8:
            self.model = quantize_int8(self.model)

    def _encode_sources(self, texts: Sequence[str]) -> list[list[int]]:
        limit = self.config.data.max_source_length
        return [
            (self.source.encode(text) or [self.source.vocab.unk_index])[:limit] for text in texts
        ]

    def translate(
        self, texts: Sequence[str], search: SearchConfig | None = None
    ) -> list[Translation]:
        """Translate raw sentences, keeping each output's attention."""
        search = search or self.config.search
        ids = self._encode_sources(texts)
        hypotheses = translate_ids(self.model, ids, search, self.config.trainer, self.device)
        return [
            self._translation(text, source_ids, n_best)
            for text, source_ids, n_best in zip(texts, ids, hypotheses, strict=True)
        ]

    def _translation(
        self, text: str, source_ids: list[int], n_best: list[Hypothesis]
    ) -> Translation:
        best = n_best[0]
        source_tokens = self.source.tokenizer.tokenize(text)[: len(source_ids)]
        if len(source_tokens) != len(source_ids):
            source_tokens = self.source.vocab.decode(source_ids)
        target_tokens = self.target.vocab.decode(best.tokens)
        if best.attention.size(0) > len(best.tokens):
            target_tokens = [*target_tokens, SPECIALS[3]]
        return Translation(
            source=text,
            translation=self.target.decode(best.tokens),
            score=best.score,
            source_tokens=source_tokens,
            target_tokens=target_tokens,
            attention=best.attention[: len(target_tokens), : len(source_ids)].tolist(),
            alternatives=[self.target.decode(h.tokens) for h in n_best[1:]],
        )

    def evaluate(
        self, examples: Sequence[ParallelExample], search: SearchConfig | None = None
    ) -> dict[str, float | str]:
        """BLEU and chrF (with sacreBLEU signatures) and loss on sentence pairs."""
        search = search or self.config.search
        outputs = [
            item.translation for item in self.translate([e.source for e in examples], search)
        ]
        references = [example.target or "" for example in examples]
        bleu, chrf = corpus_bleu(outputs, references), corpus_chrf(outputs, references)
        split = encode_split(examples, self.source, self.target, self.config.data, False)
        loss = split_loss(self.model, split, self.config, self.device)
        return {
            "bleu": bleu.score,
            "chrf": chrf.score,
            "exact_match": exact_match(outputs, references),
            "loss": loss,
            "bleu_signature": bleu.signature,
            "chrf_signature": chrf.signature,
            "beam_size": search.beam_size,
        }


def attention_matrix(translation: Translation) -> torch.Tensor:
    """(T, S) attention of a translation as a tensor."""
    return torch.tensor(translation.attention)
