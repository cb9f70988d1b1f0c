"""Speech recognition: Listen, Attend and Spell with joint CTC
(:class:`attnrnn.models.speech.SpeechRecognizer`) as a task.

A manifest is a TSV / CSV (with a header) or JSONL file with one utterance a
line: the audio path (relative paths are relative to the manifest's folder)
and the transcript; other columns (speaker, duration) are ignored. Features are
log-mel filterbanks (:mod:`attnrnn.data.audio`), cached per split, normalized
with the training set's statistics.

A speech run directory holds, besides what every run has
(:mod:`attnrnn.tasks.runs`)::

    tokenizer.json, vocab.json (+ sentencepiece.model)   the output units
    normalizer.json        per-bin feature mean and standard deviation from training
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch

from attnrnn.config import InferenceConfig, OptimizerConfig, TrainerConfig, check_positive
from attnrnn.console import Log
from attnrnn.data.audio import (
    FeatureCache,
    FeatureConfig,
    GlobalNormalizer,
    LogMelFrontEnd,
    SpecAugmentConfig,
    array_samples,
    spec_augment,
)
from attnrnn.data.batching import DeviceBatch, teacher_forcing
from attnrnn.data.io import read_run_json
from attnrnn.data.parallel import read_parallel
from attnrnn.data.readers import check_encoding
from attnrnn.data.vocab import Vocab
from attnrnn.decoding import Hypothesis, SearchConfig
from attnrnn.decoding.ctc import JointCTCAttention
from attnrnn.decoding.fusion import ShallowFusion
from attnrnn.errors import ConfigError, RunError
from attnrnn.metrics import error_rates
from attnrnn.models.language_model import BidirectionalLanguageModel
from attnrnn.models.speech import SpeechModelConfig, SpeechRecognizer
from attnrnn.tasks.base import (
    Explanation,
    Metric,
    Option,
    Task,
    TrainedModel,
    as_list,
    output_folder,
)
from attnrnn.tasks.sequence import SEARCH_OPTIONS, decode, search_config
from attnrnn.tasks.text import BOS, EOS, SPECIALS, TextSide, fit_tokenizer
from attnrnn.training.files import write_json_atomic
from attnrnn.training.runtime import shape_multiple
from attnrnn.training.trainer import LossOutput
from attnrnn.viz import printable

# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SpeechDataConfig:
    """Manifests and how to read them.

    dev: a manifest, or null to hold out ``dev_fraction`` of the training
        utterances (seeded).
    feature_cache: folder for cached features (relative to the working
        directory); null computes them every time.
    speed_perturbation: speed factors at which every training utterance is
        used (Kaldi-style: resampled, tempo and pitch together); [1.0] is off,
        [0.9, 1.0, 1.1] triples the training data. Dev and test are untouched.
    """

    train: str
    dev: str | None = None
    test: str | None = None
    audio_field: str | int = "audio"
    text_field: str | int = "text"
    dev_fraction: float = 0.05
    feature_cache: str | None = ".attnrnn-cache/features"
    max_target_length: int = 400
    speed_perturbation: tuple[float, ...] = (1.0,)
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        check_encoding(self.encoding)
        check_positive(self, "max_target_length")
        if not 0.0 < self.dev_fraction < 1.0:
            raise ConfigError(f"dev_fraction must be in (0, 1), got {self.dev_fraction}")
        speeds = self.speed_perturbation
        if not speeds or any(not 0.5 <= speed <= 2.0 for speed in speeds):
            raise ConfigError(f"speed_perturbation must list factors in [0.5, 2], got {speeds}")
        if len(set(speeds)) != len(speeds):
            raise ConfigError(f"speed_perturbation lists a factor twice: {speeds}")


@dataclass(frozen=True)
class SpeechTokenizerConfig:
    """Output units: characters, or SentencePiece pieces trained on the transcripts."""

    type: Literal["character", "sentencepiece"] = "character"
    model_type: Literal["bpe", "unigram"] = "unigram"
    vocab_size: int = 300
    lowercase: bool = False

    def __post_init__(self) -> None:
        check_positive(self, "vocab_size")


@dataclass(frozen=True)
class SpeechRunConfig:
    """Everything a speech run needs; stored as the run's config.yaml.

    ctc_weight (decoding): lambda of joint CTC / attention scoring at search
        time (0: attention alone); the training weight is ``model.ctc_weight``.
    lm: a language_model run over this run's output units (``units_from`` in its
        config), added to the search scores at ``lm_weight`` (shallow fusion; see
        :mod:`attnrnn.decoding.fusion`). Null: no language model.
    inference: batching of transcription, evaluation and dev scoring (frames).
    """

    data: SpeechDataConfig
    task: Literal["speech"] = "speech"
    features: FeatureConfig = FeatureConfig()
    spec_augment: SpecAugmentConfig = SpecAugmentConfig()
    tokenizer: SpeechTokenizerConfig = SpeechTokenizerConfig()
    model: SpeechModelConfig = SpeechModelConfig()
    label_smoothing: float = 0.1
    metric: Literal["wer", "cer"] = "wer"
    optimizer: OptimizerConfig = OptimizerConfig()
    trainer: TrainerConfig = TrainerConfig(batch_tokens=20000, max_batch_size=64)
    inference: InferenceConfig = InferenceConfig(batch_tokens=20000, max_batch_size=64)
    dev_search: SearchConfig = SearchConfig(beam_size=1, max_length_ratio=2.0)
    search: SearchConfig = SearchConfig(beam_size=5, max_length_ratio=2.0)
    ctc_weight: float = 0.3
    lm: str | None = None
    lm_weight: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        check_scoring(self.ctc_weight, self.lm_weight)


def check_scoring(ctc_weight: float, lm_weight: float) -> None:
    """ConfigError unless ``ctc_weight`` is in [0, 1] and ``lm_weight`` >= 0."""
    if not 0.0 <= ctc_weight <= 1.0:
        raise ConfigError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
    if lm_weight < 0.0:
        raise ConfigError(f"lm_weight must be >= 0, got {lm_weight}")


# Options of transcribe / evaluate / explain that set how candidates are scored.
SCORING_OPTIONS = ("ctc_weight", "lm", "lm_weight")

SPEECH_OPTIONS = (
    *SEARCH_OPTIONS,
    Option(
        ("--ctc-weight",),
        "ctc_weight",
        "lambda of joint CTC / attention scoring (default: the run's ctc_weight)",
        type=float,
    ),
    Option(
        ("--lm",),
        "lm",
        "a language_model run over this run's output units for shallow fusion "
        "(default: the run's lm)",
    ),
    Option(
        ("--lm-weight",),
        "lm_weight",
        "weight of the language model's log-probabilities (default: the run's lm_weight)",
        type=float,
    ),
)


@dataclass(frozen=True)
class Scoring:
    """How search scores a candidate besides the attention decoder: joint CTC at
    ``ctc_weight``; the language model run ``lm`` at ``lm_weight`` (None: none)."""

    ctc_weight: float
    lm: str | None
    lm_weight: float


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Utterance:
    """One manifest line: the audio path (resolved) and its transcript; ``features``
    (frames, F), raw log-mel, once :meth:`SpeechTask.prepare_examples` computed them."""

    audio: str
    text: str
    origin: str
    features: torch.Tensor | None = dataclasses.field(default=None, compare=False, repr=False)


def read_manifest(path: str, config: SpeechDataConfig) -> list[Utterance]:
    """Utterances of a TSV / CSV / JSONL manifest; audio paths resolved against its folder."""
    pairs = read_parallel(path, source_field=config.audio_field, target_field=config.text_field)
    folder = Path(path).parent
    utterances = []
    for pair in pairs:
        audio = pair.source if os.path.isabs(pair.source) else str(folder / pair.source)
        utterances.append(Utterance(audio, pair.target or "", pair.origin))
    return utterances


def compute_features(
    utterances: Sequence[Utterance], config: SpeechRunConfig, speed: float = 1.0
) -> list[torch.Tensor]:
    """Raw log-mel features (frames, F) of every utterance (played ``speed`` times as
    fast), through the feature cache when configured."""
    front_end = LogMelFrontEnd(config.features)
    paths = [utterance.audio for utterance in utterances]

    def compute(path: str) -> torch.Tensor:
        return front_end.file_features(path, speed)

    if config.data.feature_cache is None:
        return [compute(path) for path in paths]
    cache = FeatureCache(config.data.feature_cache)
    variant = "" if speed == 1.0 else f"speed={speed!r}"
    return cache.load_or_compute(paths, config.features, compute, variant)


@dataclass
class SpeechAssets:
    """The output units and the feature normalizer fitted on the training set."""

    target: TextSide
    normalizer: GlobalNormalizer

    def save(self, directory: Path) -> None:
        self.target.save(directory)
        write_json_atomic(directory / "normalizer.json", self.normalizer.to_dict())

    @classmethod
    def load(cls, directory: Path) -> SpeechAssets:
        statistics = read_run_json(directory, "normalizer.json", "feature normalizer")
        try:
            normalizer = GlobalNormalizer.from_dict(statistics)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise RunError(
                f"{directory / 'normalizer.json'}: not a feature normalizer ({error})"
            ) from None
        return cls(TextSide.load(directory), normalizer)


@dataclass
class SpeechSplit:
    """Normalized features (frames, F) per utterance, target ids and reference texts;
    ``hop_ms``: the frame shift."""

    features: list[torch.Tensor]
    targets: list[list[int]]
    references: list[str]
    hop_ms: float = 10.0

    def __len__(self) -> int:
        return len(self.features)

    @property
    def frames(self) -> list[int]:
        return [len(features) for features in self.features]


@dataclass
class SpeechBatch(DeviceBatch):
    """features (B, T, F), lengths (B,), target_input (B, U), target_output (B, U)."""

    features: torch.Tensor
    lengths: torch.Tensor
    target_input: torch.Tensor
    target_output: torch.Tensor


def pad_features(
    features: Sequence[torch.Tensor], multiple: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad (frames_i, F) tensors into (B, T, F) with zeros, T rounded up to a multiple of
    ``multiple``; lengths (B,)."""
    lengths = torch.tensor([len(f) for f in features], dtype=torch.long)
    padded = torch.nn.utils.rnn.pad_sequence(list(features), batch_first=True)  # (B, T, F)
    extra = -padded.size(1) % multiple
    if extra:
        padded = torch.nn.functional.pad(padded, (0, 0, 0, extra))
    return padded, lengths


def collate(
    split: SpeechSplit, indices: Sequence[int], model: SpeechRecognizer, multiple: int = 1
) -> SpeechBatch:
    """Frames and targets padded (to a multiple of ``multiple``)."""
    features, lengths = pad_features([split.features[i] for i in indices], multiple)
    pad, bos, eos = model.pad_index, model.bos_index, model.eos_index
    target_input, target_output = teacher_forcing(
        [split.targets[i] for i in indices], pad, bos, eos, multiple
    )
    return SpeechBatch(features, lengths, target_input, target_output)


# --------------------------------------------------------------------------- using a model


@dataclass
class Transcript:
    """One recording's transcript with the attention over listener frames.

    audio: the file's path, or ``<array N>`` for the N-th input (from 0) given as samples.
    target_tokens: the output units (+ EOS when the search produced it), one per row
        of ``attention`` (U, T').
    features: (T, F) the normalized input features.
    alternatives: the other transcripts of the n-best list, best first.
    """

    audio: str
    text: str
    score: float
    target_tokens: list[str]
    attention: list[list[float]]
    features: torch.Tensor = dataclasses.field(repr=False)
    alternatives: list[str] = dataclasses.field(default_factory=list)


class Recognizer(TrainedModel[SpeechRunConfig, SpeechAssets]):
    """A trained speech recognizer: :meth:`transcribe` (= :meth:`predict`),
    :meth:`evaluate`, :meth:`explain`."""

    def __init__(self, *arguments: Any, **keywords: Any) -> None:
        super().__init__(*arguments, **keywords)
        self._language_models: dict[str, BidirectionalLanguageModel] = {}

    def features(self, inputs: Sequence[Any], sample_rate: int | None) -> list[torch.Tensor]:
        """Normalized features (T, F) of audio files (any rate; resampled) and of
        sample arrays or tensors at ``sample_rate`` Hz (:func:`array_samples`)."""
        settings = self.config.features
        front_end = LogMelFrontEnd(settings)
        features = []
        for number, item in enumerate(inputs):
            if isinstance(item, str | Path):
                raw = front_end.file_features(item)
            elif isinstance(item, np.ndarray | torch.Tensor):
                raw = front_end(
                    array_samples(item, sample_rate, settings, audio_name(item, number))
                )
            else:
                raise ConfigError(
                    f"input {number}: audio must be a file path, a numpy array or a tensor, "
                    f"not {type(item).__name__}"
                )
            features.append(self.assets.normalizer(raw))
        return features

    def scoring(self, options: dict[str, Any]) -> Scoring:
        """The run's scoring with the :data:`SCORING_OPTIONS` of ``options`` (taken out
        of it; None values keep the run's setting)."""
        given = {key: options.pop(key) for key in SCORING_OPTIONS if key in options}
        changes = {key: value for key, value in given.items() if value is not None}
        config = self.config
        scoring = Scoring(
            float(changes.get("ctc_weight", config.ctc_weight)),
            changes.get("lm", config.lm) or None,
            float(changes.get("lm_weight", config.lm_weight)),
        )
        check_scoring(scoring.ctc_weight, scoring.lm_weight)
        return scoring

    def language_model(self, run: str) -> BidirectionalLanguageModel:
        """The model of the language_model run ``run`` (resolved like the run's data
        paths), loaded once, checked to predict this run's output units."""
        location = self.resolve(run)
        cached = self._language_models.get(location)
        if cached is not None:
            return cached
        from attnrnn.tasks.language_model import LanguageModel
        from attnrnn.tasks.runs import load, run_task

        task = run_task(location)
        if task.name != "language_model":
            raise ConfigError(f"lm {location} is a {task.name} run; lm needs a language_model run")
        trained = load(location, device=str(self.device))
        assert isinstance(trained, LanguageModel)
        if trained.assets.text.vocab != self.assets.target.vocab:
            raise ConfigError(
                f"lm {location}: its vocabulary is not this run's output units; train it "
                f"with units_from: {self.name} (see configs/an4_lm.yaml)"
            )
        model = cast(BidirectionalLanguageModel, trained.model)
        self._language_models[location] = model
        return model

    def hypotheses(
        self,
        features: Sequence[torch.Tensor],
        search: SearchConfig,
        scoring: Scoring | None = None,
    ) -> list[list[Hypothesis]]:
        """N-best lists of normalized features (T_i, F), in input order, with joint CTC
        scoring and language-model fusion as ``scoring`` says (default: the run's)."""
        model: SpeechRecognizer = self.model  # type: ignore[assignment]
        scoring = scoring or self.scoring({})
        weight = scoring.ctc_weight
        language_model = self.language_model(scoring.lm) if scoring.lm else None

        def start(indices: list[int]) -> tuple[Any, Any, torch.Tensor]:
            padded, lengths = pad_features([features[i] for i in indices])  # (B, T, F)
            encoded = model.encode(padded.to(self.device), lengths.to(self.device))
            step_model: Any = model
            if weight > 0.0:
                ctc_log_probs, ctc_lengths = model.ctc_log_probs(encoded)
                step_model = JointCTCAttention(
                    model, ctc_log_probs, ctc_lengths, weight, blank=model.pad_index
                )
            if language_model is not None and scoring.lm_weight > 0.0:
                step_model = ShallowFusion(step_model, language_model, scoring.lm_weight)
            return step_model, step_model.init_state(encoded), encoded.memory_mask.sum(dim=1)

        return decode(self, [len(f) for f in features], start, search, "transcribe")

    def transcribe(
        self, inputs: Any, sample_rate: int | None = None, **options: Any
    ) -> list[Transcript]:
        """Transcribe audio, keeping each output's attention.

        Args:
            inputs: a list of audio file paths (WAV, FLAC...; any rate, resampled),
                numpy arrays or tensors of samples, (samples,) or (samples, channels);
                a single one is a list of one.
            sample_rate: the rate of the arrays and tensors in Hz (they are resampled to
                ``features.sample_rate``); needed when there are any.
            options: search options (``beam=5``, ``n_best=2``, ``length_penalty=...``)
                and scoring options (``ctc_weight``, ``lm``, ``lm_weight``).
        """
        items, _ = as_list(inputs)
        scoring = self.scoring(options)
        search = search_config(self.config.search, **options)
        features = self.features(items, sample_rate)
        target = self.assets.target
        transcripts = []
        for number, (item, feature, n_best) in enumerate(
            zip(items, features, self.hypotheses(features, search, scoring), strict=True)
        ):
            best = n_best[0]
            tokens = target.vocab.decode(best.tokens)
            if best.attention.size(0) > len(best.tokens):
                tokens = [*tokens, EOS]
            transcripts.append(
                Transcript(
                    audio=audio_name(item, number),
                    text=target.decode(best.tokens),
                    score=best.score,
                    target_tokens=tokens,
                    attention=best.attention[: len(tokens)].tolist(),
                    features=feature,
                    alternatives=[target.decode(h.tokens) for h in n_best[1:]],
                )
            )
        return transcripts

    predict = transcribe

    def score(
        self, split: SpeechSplit, search: SearchConfig | None = None, **options: Any
    ) -> dict[str, float]:
        """WER and CER on an encoded split, decoded with ``search`` (default: the run's
        ``search``) changed by the search and scoring options."""
        scoring = self.scoring(options)
        config = search_config(search or self.config.search, **options)
        hypotheses = self.hypotheses(split.features, config, scoring)
        outputs = [self.assets.target.decode(n_best[0].tokens) for n_best in hypotheses]
        with self.lock:
            alignment = alignment_scores(cast(SpeechRecognizer, self.model), split)
        return {**error_rates(outputs, split.references), **alignment}

    def explain(
        self,
        inputs: Any,
        output: str | Path | None = None,
        color: bool = False,
        sample_rate: int | None = None,
        **options: Any,
    ) -> Explanation:
        """Transcribe; with ``output``: explain.html (the interactive explorer: the
        spectrogram with the alignment, output units linked to their frames) and each
        alignment under its spectrogram as alignment-N.png."""
        from attnrnn.explorer import spectrogram
        from attnrnn.viz_speech import write_speech_alignment_png

        transcripts = self.transcribe(inputs, sample_rate, **options)
        text = "\n".join(
            f"{printable(item.audio)}\n  -> {printable(item.text)}" for item in transcripts
        )
        folder = output_folder(output)
        files = []
        if folder is not None:
            hop_seconds = self.config.features.hop_ms / 1000
            records = [
                {**self.record(item), "spectrogram": spectrogram(item.features, hop_seconds)}
                for item in transcripts
            ]
            files.append(self.write_explorer(folder, records))
            for number, item in enumerate(transcripts, start=1):
                picture = write_speech_alignment_png(
                    folder / f"alignment-{number}.png",
                    item.features.numpy(),
                    item.attention,
                    item.target_tokens,
                    hop_seconds,
                    title=f"{Path(item.audio).name}: {item.text}",
                )
                files.append(picture)
        return Explanation(text, files, transcripts)

    def record(self, result: Transcript) -> dict[str, Any]:
        return {
            "audio": result.audio,
            "text": result.text,
            "score": result.score,
            "tokens": result.target_tokens,
            "attention": result.attention,
            "alternatives": result.alternatives,
        }

    def line(self, result: Transcript) -> str:
        """The path and the transcript (then the alternatives, with ``n_best``), by tabs."""
        return "\t".join([result.audio, result.text, *result.alternatives])


def audio_name(item: Any, number: int) -> str:
    """How a transcript names its input: the path, or ``<array N>``."""
    return str(item) if isinstance(item, str | Path) else f"<array {number}>"


# --------------------------------------------------------------------------- the task


class SpeechTask(Task[SpeechRunConfig, SpeechAssets, SpeechSplit]):
    name = "speech"
    config_class = SpeechRunConfig
    model_class = Recognizer
    command = "transcribe"
    input_files = True
    explain_files = (
        "explain.html (the interactive explorer) and alignment-N.png (the attention under the "
        "spectrogram, per recording)"
    )
    options = SPEECH_OPTIONS

    def read_split(self, config: SpeechRunConfig, location: str, role: str) -> list[Utterance]:
        return read_manifest(location, config.data)

    def prepare_examples(
        self, config: SpeechRunConfig, examples: list[Utterance], role: str, log: Log
    ) -> list[Utterance]:
        """The utterances with their features; training utterances once per speed of
        ``data.speed_perturbation``."""
        speeds = config.data.speed_perturbation if role == "train" else (1.0,)
        prepared: list[Utterance] = []
        for speed in speeds:
            features = compute_features(examples, config, speed)
            prepared.extend(
                dataclasses.replace(utterance, features=frames)
                for utterance, frames in zip(examples, features, strict=True)
            )
        return prepared

    def fit_assets(
        self, config: SpeechRunConfig, train: list[Utterance], workdir: Path
    ) -> SpeechAssets:
        settings = config.tokenizer
        texts = [utterance.text for utterance in train]
        tokenizer = fit_tokenizer(settings, texts, workdir / "sentencepiece")
        vocab = Vocab.build((tokenizer.tokenize(text) for text in texts), specials=SPECIALS)
        normalizer = GlobalNormalizer.fit([features_of(utterance) for utterance in train])
        return SpeechAssets(TextSide(tokenizer, vocab), normalizer)

    def load_assets(self, directory: Path) -> SpeechAssets:
        return SpeechAssets.load(directory)

    def encode(
        self, config: SpeechRunConfig, assets: SpeechAssets, examples: list[Utterance], role: str
    ) -> SpeechSplit:
        limit = config.data.max_target_length
        return SpeechSplit(
            [assets.normalizer(features_of(utterance)) for utterance in examples],
            [assets.target.encode(utterance.text)[:limit] for utterance in examples],
            [utterance.text for utterance in examples],
            config.features.hop_ms,
        )

    def describe(self, prepared: Any) -> str:
        train: SpeechSplit = prepared.train
        hours = sum(train.frames) * train.hop_ms / 1000 / 3600
        return (
            f"{len(train)} training utterances ({hours:.2f} h), {len(prepared.dev)} dev, "
            f"{len(prepared.assets.target.vocab)} output units"
        )

    def build_model(self, config: SpeechRunConfig, assets: SpeechAssets) -> SpeechRecognizer:
        vocab = assets.target.vocab
        return SpeechRecognizer(
            config.features.num_mel_bins,
            len(vocab),
            config.model,
            vocab.pad_index,
            vocab.index(BOS),
            vocab.index(EOS),
        )

    def metric(self, config: SpeechRunConfig) -> Metric:
        return Metric(config.metric, higher_is_better=False)

    def lengths(self, split: SpeechSplit) -> list[int]:
        return split.frames

    def loss(
        self,
        model: Any,
        config: SpeechRunConfig,
        split: SpeechSplit,
        indices: list[int],
        device: Any,
    ) -> LossOutput:
        """The joint CTC / attention loss on SpecAugmented features; units are frames."""
        multiple = shape_multiple(config.trainer.precision, torch.device(device))
        batch = collate(split, indices, model, multiple)
        augmented = spec_augment(batch.features, batch.lengths, config.spec_augment)
        batch = dataclasses.replace(batch, features=augmented).to(device)
        loss, _ = model.joint_loss(
            batch.features,
            batch.lengths,
            batch.target_input,
            batch.target_output,
            config.label_smoothing,
        )
        return LossOutput(loss, int(batch.lengths.sum()))

    def dev_scores(self, trained: TrainedModel, split: SpeechSplit) -> dict[str, float]:
        return trained.score(split, search=trained.config.dev_search)

    def warnings(self, config: SpeechRunConfig, results: dict[str, Any]) -> list[str]:
        return alignment_warnings(results)


ALIGNMENT_SAMPLE = 50
"""Utterances whose attention alignment is checked when a split is scored."""
DEGENERATE_DIAGONALITY = 0.5
DEGENERATE_EARLY_SHARE = 0.5


def alignment_scores(
    model: SpeechRecognizer, split: SpeechSplit, count: int = ALIGNMENT_SAMPLE
) -> dict[str, float]:
    """Whether the attention follows the audio, from the teacher-forced attention of the
    first ``count`` utterances of ``split`` (:mod:`attnrnn.diagnostics.speech`):

    - ``attention_diagonality``: the median over utterances of the correlation of the
      output step with the frame it attends to most (1: straight through the audio);
    - ``attention_early_share``: the share of output steps whose most-attended frame lies
      in the first tenth of the utterance (a model that attends to the leading silence
      whatever it outputs has learned a sequence prior, not an alignment).
    """
    from attnrnn.diagnostics.common import mean, median
    from attnrnn.diagnostics.speech import diagonality, forced_attention

    correlations, early = [], []
    for index in range(min(count, len(split))):
        attention = forced_attention(model, split.features[index], split.targets[index])
        correlation = diagonality(attention).peak_correlation
        if correlation is not None:
            correlations.append(correlation)
        first_tenth = max(round(0.1 * attention.size(1)), 1)
        early.append(float((attention.argmax(dim=1) < first_tenth).float().mean()))
    middle, average = median(correlations), mean(early)
    return {
        "attention_diagonality": math.nan if middle is None else middle,
        "attention_early_share": math.nan if average is None else average,
    }


def alignment_warnings(scores: dict[str, Any], split: str = "dev") -> list[str]:
    """Warnings for scores (``dev_attention_*``...) that say the attention does not align."""
    diagonality = scores.get(f"{split}_attention_diagonality")
    early = scores.get(f"{split}_attention_early_share")
    problems = []
    if isinstance(diagonality, float) and diagonality < DEGENERATE_DIAGONALITY:
        problems.append(f"the attention does not move through the audio ({split} diagonality "
                        f"{diagonality:.2f}; 1 is a straight path)")  # fmt: skip
    if isinstance(early, float) and early > DEGENERATE_EARLY_SHARE:
        problems.append(f"{early:.0%} of the output steps attend to the first tenth of the audio")
    if not problems:
        return []
    return [
        f"{' and '.join(problems)}: the model learned a sequence prior rather than an "
        "alignment, and will not generalise. With little data: set model.diagonal_weight "
        "(e.g. 1.0; a left-to-right prior), raise model.ctc_weight (e.g. 0.5), train longer "
        "or add data.speed_perturbation (docs/speech.md); "
        "`attnrnn explain RUN AUDIO` shows the alignment"
    ]


def features_of(utterance: Utterance) -> torch.Tensor:
    """The raw features of a prepared utterance (frames, F)."""
    assert utterance.features is not None, "features are computed by prepare_examples"
    return utterance.features
