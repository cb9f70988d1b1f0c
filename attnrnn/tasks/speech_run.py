"""The life of a speech run: read manifests, compute (or load cached) features, fit the
output units and the feature normalizer, train, and load the run again to transcribe,
evaluate and explain."""

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
from attnrnn.data.audio import FeatureCache, GlobalNormalizer, LogMelFrontEnd
from attnrnn.data.tokenizers import (
    CharacterTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    tokenizer_from_dict,
)
from attnrnn.data.vocab import Vocab
from attnrnn.decoding import SearchConfig
from attnrnn.errors import DataError, RunError
from attnrnn.models.speech import SpeechRecognizer
from attnrnn.tasks.classification import split_off_dev
from attnrnn.tasks.speech import (
    SpeechRunConfig,
    SpeechSplit,
    SpeechTask,
    Utterance,
    error_rates,
    read_manifest,
    score_split,
    transcribe_features,
)
from attnrnn.tasks.translation import SPECIALS, TextSide, special_ids
from attnrnn.training import checkpoint
from attnrnn.training.runtime import configure_runtime, resolve_device
from attnrnn.training.trainer import Trainer, train_and_score


@dataclass
class Prepared:
    target: TextSide
    normalizer: GlobalNormalizer
    train: SpeechSplit
    dev: SpeechSplit
    test: SpeechSplit | None
    workdir: Path


def compute_features(
    utterances: Sequence[Utterance], config: SpeechRunConfig, log: Log, speed: float = 1.0
) -> list[torch.Tensor]:
    """Raw log-mel features of every utterance (played ``speed`` times as fast), through
    the feature cache when configured."""
    front_end = LogMelFrontEnd(config.features)
    paths = [utterance.audio for utterance in utterances]

    def compute(path: str) -> torch.Tensor:
        return front_end.file_features(path, speed)

    if config.data.feature_cache is None:
        return [compute(path) for path in paths]
    cache = FeatureCache(config.data.feature_cache)
    variant = "" if speed == 1.0 else f"speed={speed!r}"
    return cache.load_or_compute(paths, config.features, compute, variant)


def training_features(
    utterances: Sequence[Utterance], config: SpeechRunConfig, log: Log
) -> tuple[list[Utterance], list[torch.Tensor]]:
    """The training utterances at every speed of ``data.speed_perturbation``."""
    copies: list[Utterance] = []
    features: list[torch.Tensor] = []
    for speed in config.data.speed_perturbation:
        copies.extend(utterances)
        features.extend(compute_features(utterances, config, log, speed))
    return copies, features


def _fit_target(config: SpeechRunConfig, texts: Sequence[str], workdir: Path) -> TextSide:
    settings = config.tokenizer
    tokenizer: Tokenizer
    if settings.type == "character":
        tokenizer = CharacterTokenizer(lowercase=settings.lowercase)
    else:
        tokenizer = SentencePieceTokenizer.train(
            texts,
            workdir / "sentencepiece",
            vocab_size=settings.vocab_size,
            model_type=settings.model_type,
            lowercase=settings.lowercase,
        )
    vocab = Vocab.build((tokenizer.tokenize(text) for text in texts), specials=SPECIALS)
    return TextSide(tokenizer, vocab)


def prepare(
    config: SpeechRunConfig,
    workdir: Path,
    log: Log = log_stderr,
    saved: tuple[TextSide, GlobalNormalizer] | None = None,
) -> Prepared:
    """Read manifests, compute features, fit (or reuse) units and normalizer, encode."""
    data = config.data
    train_utterances = read_manifest(data.train, data)
    if data.dev:
        dev_utterances = read_manifest(data.dev, data)
    else:
        if len(train_utterances) < 2:
            raise DataError(
                f"{len(train_utterances)} utterance(s): too few to hold out a dev set; "
                "give data.dev or more training data",
                data.train,
            )
        train_utterances, dev_utterances = split_off_dev(
            train_utterances, data.dev_fraction, config.trainer.seed
        )
    test_utterances = read_manifest(data.test, data) if data.test else None
    train_utterances, train_features = training_features(train_utterances, config, log)
    if saved is None:
        target = _fit_target(config, [u.text for u in train_utterances], workdir)
        normalizer = GlobalNormalizer.fit(train_features)
    else:
        target, normalizer = saved

    def encode(utterances: list[Utterance], features: list[torch.Tensor]) -> SpeechSplit:
        targets = [target.encode(u.text)[: data.max_target_length] for u in utterances]
        normalized = [normalizer(f) for f in features]
        return SpeechSplit(normalized, targets, [u.text for u in utterances])

    train = encode(train_utterances, train_features)
    dev = encode(dev_utterances, compute_features(dev_utterances, config, log))
    test = None
    if test_utterances is not None:
        test = encode(test_utterances, compute_features(test_utterances, config, log))
    hours = sum(train.frames) * config.features.hop_ms / 1000 / 3600
    log(
        f"{len(train)} training utterances ({hours:.2f} h), {len(dev)} dev, "
        f"{len(target.vocab)} output units"
    )
    return Prepared(target, normalizer, train, dev, test, workdir)


def make_model(config: SpeechRunConfig, target: TextSide) -> SpeechRecognizer:
    pad, bos, eos = special_ids(target.vocab)
    return SpeechRecognizer(
        config.features.num_mel_bins, len(target.vocab), config.model, pad, bos, eos
    )


def write_run_files(run_directory: Path, config: SpeechRunConfig, prepared: Prepared) -> None:
    with checkpoint.staged_run_directory(run_directory) as staging:
        save_yaml(config, staging / "config.yaml")
        settings = prepared.target.tokenizer.to_dict()
        model_file = settings.get("model_file")
        if model_file:
            shutil.copy(prepared.workdir / model_file, staging / model_file)
        checkpoint.write_json_atomic(staging / "tokenizer.json", settings)
        prepared.target.vocab.save(staging / "vocab.json")
        checkpoint.write_json_atomic(staging / "normalizer.json", prepared.normalizer.to_dict())


def load_saved(run_directory: Path) -> tuple[TextSide, GlobalNormalizer]:
    for name in ("config.yaml", "tokenizer.json", "vocab.json", "normalizer.json"):
        if not (run_directory / name).is_file():
            raise RunError(f"{run_directory}: not a speech run (missing {name})")
    settings = json.loads((run_directory / "tokenizer.json").read_text(encoding="utf-8"))
    target = TextSide(
        tokenizer_from_dict(settings, run_directory), Vocab.load(run_directory / "vocab.json")
    )
    normalizer = GlobalNormalizer.from_dict(
        json.loads((run_directory / "normalizer.json").read_text(encoding="utf-8"))
    )
    return target, normalizer


def train(
    config: SpeechRunConfig, run_directory: Path, resume: bool = False, log: Log = log_stderr
) -> dict[str, float]:
    """Train into ``run_directory``; return the best checkpoint's dev (and test) WER / CER."""
    run_directory = Path(run_directory)
    device = configure_runtime(config.trainer)
    run_directory.parent.mkdir(parents=True, exist_ok=True)
    saved = load_saved(run_directory) if resume else None
    with tempfile.TemporaryDirectory(dir=run_directory.parent, prefix=".prepare-") as workdir:
        prepared = prepare(config, Path(workdir), log, saved)
        model = make_model(config, prepared.target).to(device)
        if not resume:
            write_run_files(run_directory, config, prepared)
    task = SpeechTask(prepared.train, prepared.dev, prepared.target, config, device)
    trainer = Trainer(
        model,
        task,
        config.optimizer,
        config.trainer,
        run_directory,
        config.metric,
        higher_is_better=False,
    )
    return train_and_score(
        trainer,
        resume,
        [("dev", prepared.dev), ("test", prepared.test)],
        lambda split: score_split(
            model, split, prepared.target, config.search, config.ctc_weight, config.trainer, device
        ),
        device,
        log,
    )


@dataclass
class Transcript:
    """One recording's transcript with the attention over listener frames."""

    audio: str
    text: str
    score: float
    tokens: list[str]
    attention: list[list[float]]  # (U, T'): one row per output unit (+ EOS)
    features: torch.Tensor  # (T, F) normalized input features


class SpeechRun:
    """A trained speech run loaded from its directory."""

    def __init__(
        self, run_directory: str | Path, device: str = "auto", checkpoint_name: str = "best"
    ) -> None:
        self.directory = Path(run_directory)
        if not self.directory.is_dir():
            raise RunError(f"{self.directory}: no such run directory")
        self.target, self.normalizer = load_saved(self.directory)
        self.config = SpeechRunConfig.from_dict(load_yaml(self.directory / "config.yaml"))
        self.front_end = LogMelFrontEnd(self.config.features)
        self.device = resolve_device(device)
        self.model = make_model(self.config, self.target).to(self.device)
        checkpoint.load_weights(self.directory / checkpoint_name, self.model, self.device)
        self.model.eval()

    def features(self, paths: Sequence[str]) -> list[torch.Tensor]:
        return [self.normalizer(self.front_end.file_features(path)) for path in paths]

    def transcribe(
        self, paths: Sequence[str], search: SearchConfig | None = None
    ) -> list[Transcript]:
        """Transcribe audio files (any rate; resampled), keeping each output's attention."""
        search = search or self.config.search
        features = self.features(paths)
        hypotheses = transcribe_features(
            self.model, features, search, self.config.ctc_weight, self.config.trainer, self.device
        )
        transcripts = []
        for path, feature, n_best in zip(paths, features, hypotheses, strict=True):
            best = n_best[0]
            tokens = self.target.vocab.decode(best.tokens)
            if best.attention.size(0) > len(best.tokens):
                tokens = [*tokens, SPECIALS[3]]
            transcripts.append(
                Transcript(
                    audio=path,
                    text=self.target.decode(best.tokens),
                    score=best.score,
                    tokens=tokens,
                    attention=best.attention[: len(tokens)].tolist(),
                    features=feature,
                )
            )
        return transcripts

    def evaluate(
        self, utterances: Sequence[Utterance], search: SearchConfig | None = None
    ) -> dict[str, float]:
        """WER and CER on manifest utterances."""
        transcripts = self.transcribe([u.audio for u in utterances], search)
        return error_rates([t.text for t in transcripts], [u.text for u in utterances])
