"""Speech recognition as a training task: configuration, manifests, features, the joint
CTC / attention loss, decoding and WER / CER for :class:`attnrnn.models.speech.SpeechRecognizer`.

A manifest is a TSV / CSV (with a header) or JSONL file with one utterance a
line: the audio path (relative paths are relative to the manifest's folder)
and the transcript; other columns (speaker, duration) are ignored.

A speech run directory holds::

    config.yaml            the full configuration
    tokenizer.json, vocab.json (+ sentencepiece.model)   the output units
    normalizer.json        per-bin feature mean and standard deviation from training
    best/ last/ metrics.csv results.json   as for every run
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from attnrnn.config import OptimizerConfig, TrainerConfig, check_positive, from_dict
from attnrnn.data.audio import FeatureConfig, GlobalNormalizer, SpecAugmentConfig, spec_augment
from attnrnn.data.batching import make_batches, pad_sequences
from attnrnn.data.parallel import ParallelExample, read_parallel
from attnrnn.decoding import Hypothesis, SearchConfig, search
from attnrnn.decoding.ctc import JointCTCAttention
from attnrnn.errors import ConfigError
from attnrnn.models.speech import SpeechModelConfig, SpeechRecognizer
from attnrnn.tasks.translation import TextSide
from attnrnn.training.trainer import LossOutput

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

    def __post_init__(self) -> None:
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
    dev_search: SearchConfig = SearchConfig(beam_size=1, max_length_ratio=2.0)
    search: SearchConfig = SearchConfig(beam_size=5, max_length_ratio=2.0)
    ctc_weight: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise ConfigError(f"ctc_weight must be in [0, 1], got {self.ctc_weight}")

    @classmethod
    def from_dict(cls, data: dict) -> SpeechRunConfig:
        return from_dict(cls, data)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Utterance:
    """One manifest line: the audio path (resolved) and its transcript."""

    audio: str
    text: str
    origin: str


def read_manifest(path: str, config: SpeechDataConfig) -> list[Utterance]:
    """Utterances of a TSV / CSV / JSONL manifest; audio paths resolved against its folder."""
    pairs: list[ParallelExample] = read_parallel(
        path, source_field=config.audio_field, target_field=config.text_field
    )
    folder = Path(path).parent
    utterances = []
    for pair in pairs:
        audio = pair.source if os.path.isabs(pair.source) else str(folder / pair.source)
        utterances.append(Utterance(audio, pair.target or "", pair.origin))
    return utterances


@dataclass
class SpeechSplit:
    """Normalized features (frames, F) per utterance, target ids and reference texts."""

    features: list[torch.Tensor]
    targets: list[list[int]]
    references: list[str]

    def __len__(self) -> int:
        return len(self.features)

    @property
    def frames(self) -> list[int]:
        return [len(features) for features in self.features]


@dataclass
class SpeechBatch:
    """features (B, T, F), lengths (B,), target_input (B, U), target_output (B, U)."""

    features: torch.Tensor
    lengths: torch.Tensor
    target_input: torch.Tensor
    target_output: torch.Tensor

    def to(self, device: torch.device) -> SpeechBatch:
        return SpeechBatch(
            self.features.to(device),
            self.lengths.to(device),
            self.target_input.to(device),
            self.target_output.to(device),
        )


def pad_features(features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad (frames_i, F) tensors into (B, T, F) with zeros; lengths (B,)."""
    lengths = torch.tensor([len(f) for f in features], dtype=torch.long)
    padded = torch.nn.utils.rnn.pad_sequence(list(features), batch_first=True)  # (B, T, F)
    return padded, lengths


def collate(split: SpeechSplit, indices: Sequence[int], model: SpeechRecognizer) -> SpeechBatch:
    features, lengths = pad_features([split.features[i] for i in indices])
    pad, bos, eos = model.pad_index, model.bos_index, model.eos_index
    target_input, _ = pad_sequences([[bos, *split.targets[i]] for i in indices], pad)
    target_output, _ = pad_sequences([[*split.targets[i], eos] for i in indices], pad)
    return SpeechBatch(features, lengths, target_input, target_output)


# --------------------------------------------------------------------------- loss


def joint_loss(
    model: SpeechRecognizer, batch: SpeechBatch, label_smoothing: float
) -> tuple[torch.Tensor, int]:
    """``lambda * CTC + (1 - lambda) * cross-entropy``, both per target token."""
    output = model(batch.features, batch.lengths, batch.target_input)
    valid = batch.target_output != model.pad_index  # (B, U) tokens and EOS
    tokens = int(valid.sum())
    logits = model.output_logits(output.attentional[valid])  # (N, V)
    attention_loss = F.cross_entropy(
        logits.float(), batch.target_output[valid], label_smoothing=label_smoothing
    )
    weight = model.config.ctc_weight
    if weight == 0.0:
        return attention_loss, tokens
    labels = (valid & (batch.target_output != model.eos_index)).sum(dim=1)  # (B,) without EOS
    targets = batch.target_output.masked_select(
        valid & (batch.target_output != model.eos_index)
    )  # (sum labels,)
    ctc = F.ctc_loss(
        output.ctc_log_probs.transpose(0, 1),  # (T', B, V)
        targets,
        output.ctc_lengths,
        labels,
        blank=model.pad_index,
        reduction="sum",
        zero_infinity=True,
    ) / max(int(labels.sum()), 1)
    return weight * ctc + (1.0 - weight) * attention_loss, tokens


class SpeechTask:
    """Supplies batches (with SpecAugment), the joint loss and dev WER / CER."""

    def __init__(
        self,
        train: SpeechSplit,
        dev: SpeechSplit,
        target: TextSide,
        config: SpeechRunConfig,
        device: torch.device,
    ) -> None:
        self.train, self.dev, self.target = train, dev, target
        self.config = config
        self.device = device

    def train_batches(self, epoch: int) -> list[list[int]]:
        trainer = self.config.trainer
        return make_batches(
            self.train.frames,
            trainer.batch_tokens,
            trainer.max_batch_size,
            shuffle=True,
            seed=trainer.seed,
            epoch=epoch,
        )

    def compute_loss(self, model: SpeechRecognizer, indices: list[int]) -> LossOutput:
        batch = collate(self.train, indices, model)
        augmented = spec_augment(batch.features, batch.lengths, self.config.spec_augment)
        batch = SpeechBatch(augmented, batch.lengths, batch.target_input, batch.target_output)
        loss, _ = joint_loss(model, batch.to(self.device), self.config.label_smoothing)
        return LossOutput(loss, int(batch.lengths.sum()))

    def evaluate(self, model: SpeechRecognizer) -> dict[str, float]:
        return score_split(
            model,
            self.dev,
            self.target,
            self.config.dev_search,
            self.config.ctc_weight,
            self.config.trainer,
            self.device,
        )


# --------------------------------------------------------------------------- decoding


@torch.no_grad()
def transcribe_features(
    model: SpeechRecognizer,
    features: Sequence[torch.Tensor],
    search_config: SearchConfig,
    ctc_weight: float,
    trainer_config: TrainerConfig,
    device: torch.device,
) -> list[list[Hypothesis]]:
    """Decode normalized features in length-sorted batches; n-best lists in input order."""
    model.eval()
    lengths = [len(f) for f in features]
    budget = max(trainer_config.batch_tokens // search_config.beam_size, 1)
    results: list[list[Hypothesis]] = [[] for _ in features]
    for indices in make_batches(lengths, budget, trainer_config.max_batch_size):
        padded, batch_lengths = pad_features([features[i] for i in indices])
        encoded = model.encode(padded.to(device), batch_lengths.to(device))
        memory_lengths = encoded.memory_mask.sum(dim=1)  # (B,)
        step_model: Any = model
        if ctc_weight > 0.0:
            ctc_log_probs, ctc_lengths = model.ctc_log_probs(encoded)
            step_model = JointCTCAttention(
                model, ctc_log_probs, ctc_lengths, ctc_weight, blank=model.pad_index
            )
        state = step_model.init_state(encoded)
        for index, n_best in zip(
            indices, search(step_model, state, memory_lengths, search_config), strict=True
        ):
            results[index] = n_best
    return results


def error_rates(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Word and character error rates (jiwer) of transcripts against references."""
    import jiwer

    if not references:
        return {"wer": 0.0, "cer": 0.0}
    hypotheses = [h if h.strip() else "" for h in hypotheses]
    return {
        "wer": float(jiwer.wer(list(references), list(hypotheses))),
        "cer": float(jiwer.cer(list(references), list(hypotheses))),
    }


def score_split(
    model: SpeechRecognizer,
    split: SpeechSplit,
    target: TextSide,
    search_config: SearchConfig,
    ctc_weight: float,
    trainer_config: TrainerConfig,
    device: torch.device,
) -> dict[str, float]:
    """Decode a split and compute WER / CER against its references."""
    hypotheses = transcribe_features(
        model, split.features, search_config, ctc_weight, trainer_config, device
    )
    outputs = [target.decode(n_best[0].tokens) for n_best in hypotheses]
    return error_rates(outputs, split.references)


def normalize_all(features: list[torch.Tensor], normalizer: GlobalNormalizer) -> list[torch.Tensor]:
    return [normalizer(f) for f in features]
