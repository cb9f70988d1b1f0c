"""Audio front end: read, resample, log-mel filterbank, normalization, SpecAugment, cache.

- Reading is soundfile's (libsndfile: WAV, FLAC, OGG, ...), resampling scipy's
  polyphase filter (``resample_poly``), the STFT torch's. The mel filterbank
  (Slaney-style, as librosa's default) is written here because it is twenty
  lines and librosa would bring numba and llvmlite with it; the tests check it
  and the whole feature pipeline against librosa.
- Features are ``log(mel power + 1e-6)``, (frames, F), 25 ms windows every 10
  ms by default, normalized with the training set's global mean and standard
  deviation per bin (:class:`GlobalNormalizer`).
- :func:`spec_augment` masks random frequency bands and time spans in
  training (Park et al. 2019).
- :class:`FeatureCache` stores a split's features in one safetensors file so
  later epochs and runs do not recompute them.

Every problem with an audio file is a :class:`~attnrnn.errors.DataError`
naming the file: missing, unreadable or corrupt, empty, or longer than
``max_seconds``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attnrnn.config import check_non_negative
from attnrnn.data.audio_files import (
    FeatureConfig,
    changed_speed,
    hann_window,
    hz_to_mel,
    mel_filters,
    mel_to_hz,
    read_samples,
    resample,
)
from attnrnn.data.audio_files import (
    array_samples as array_sample_array,
)
from attnrnn.data.audio_files import (
    mono_samples as mono_sample_array,
)
from attnrnn.errors import ConfigError

__all__ = ["FeatureConfig", "hann_window", "hz_to_mel", "mel_to_hz", "resample"]


# --------------------------------------------------------------------------- reading


def read_audio(path: str | os.PathLike[str], sample_rate: int, max_seconds: float) -> torch.Tensor:
    """Read a recording as mono float32 samples in [-1, 1] at ``sample_rate`` (samples,)."""
    return torch.from_numpy(read_samples(path, sample_rate, max_seconds))


def mono_samples(
    samples: np.ndarray, rate: int, sample_rate: int, max_seconds: float, name: str
) -> torch.Tensor:
    """:func:`attnrnn.data.audio_files.mono_samples` as a tensor (samples,)."""
    return torch.from_numpy(mono_sample_array(samples, rate, sample_rate, max_seconds, name))


def change_speed(samples: np.ndarray | torch.Tensor, factor: float) -> torch.Tensor:
    """Play ``samples`` ``factor`` times as fast (Kaldi-style speed perturbation:
    resampling, so tempo and pitch change together; 0.9 is 11% longer)."""
    array = samples.numpy() if isinstance(samples, torch.Tensor) else samples
    return torch.from_numpy(changed_speed(array, factor))


def array_samples(samples: Any, rate: int | None, config: FeatureConfig, name: str) -> torch.Tensor:
    """Mono float32 samples at ``config.sample_rate`` from a numpy array or tensor,
    (samples,) or (samples, channels) (channels averaged, as for files); integer
    samples are scaled to [-1, 1). (samples,) float32."""
    return torch.from_numpy(array_sample_array(samples, rate, config, name))


# --------------------------------------------------------------------------- features


def mel_filterbank(config: FeatureConfig) -> torch.Tensor:
    """Triangular, area-normalized ("slaney") mel filters, (F, n_fft // 2 + 1)."""
    return torch.from_numpy(mel_filters(config))


class LogMelFrontEnd:
    """Samples -> log-mel features, (frames, F); frames = 1 + samples // hop."""

    def __init__(self, config: FeatureConfig) -> None:
        self.config = config
        self.window = torch.hann_window(config.window_length, periodic=True)
        self.filters = mel_filterbank(config)  # (F, n_fft // 2 + 1)

    def __call__(self, samples: torch.Tensor) -> torch.Tensor:
        config = self.config
        spectrum = torch.stft(
            samples,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
            win_length=config.window_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )  # (n_fft // 2 + 1, frames)
        power = spectrum.abs().pow(2)  # (bins, frames)
        mel = self.filters @ power  # (F, frames)
        return torch.log(mel + 1e-6).transpose(0, 1).contiguous()  # (frames, F)

    def file_features(self, path: str | os.PathLike[str], speed: float = 1.0) -> torch.Tensor:
        """Features (frames, F) of one audio file, played ``speed`` times as fast."""
        samples = read_audio(path, self.config.sample_rate, self.config.max_seconds)
        return self(change_speed(samples, speed))


# --------------------------------------------------------------------------- normalization


@dataclass
class GlobalNormalizer:
    """Per-bin mean and standard deviation over every training frame (global CMVN)."""

    mean: torch.Tensor  # (F,)
    std: torch.Tensor  # (F,)

    @classmethod
    def fit(cls, features: Sequence[torch.Tensor]) -> GlobalNormalizer:
        """Statistics of a list of (frames, F) tensors (in float64 for stability)."""
        total = torch.cat([f.double() for f in features])  # (all frames, F)
        return cls(total.mean(0).float(), total.std(0).clamp_min(1e-5).float())

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        """(..., F) -> normalized (..., F)."""
        return (features - self.mean.to(features.device)) / self.std.to(features.device)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> GlobalNormalizer:
        return cls(torch.tensor(data["mean"]), torch.tensor(data["std"]))


# --------------------------------------------------------------------------- augmentation


@dataclass(frozen=True)
class SpecAugmentConfig:
    """Frequency and time masking in training (0 masks: off).

    time_mask_ratio: a time mask covers at most this fraction of the frames
        (and at most ``max_time_width``).
    """

    frequency_masks: int = 2
    max_frequency_width: int = 27
    time_masks: int = 2
    max_time_width: int = 40
    time_mask_ratio: float = 0.2

    def __post_init__(self) -> None:
        check_non_negative(
            self, "frequency_masks", "max_frequency_width", "time_masks", "max_time_width"
        )
        if not 0.0 <= self.time_mask_ratio <= 1.0:
            raise ConfigError(f"time_mask_ratio must be in [0, 1], got {self.time_mask_ratio}")


def spec_augment(
    features: torch.Tensor,
    lengths: torch.Tensor,
    config: SpecAugmentConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Zero random frequency bands and time spans of each normalized utterance.

    Args:
        features: (B, T, F) normalized features (0 is the mean).
        lengths: (B,) valid frames.

    Returns:
        a masked copy (B, T, F).
    """
    B, T, F = features.shape
    keep = torch.ones(B, T, F, dtype=torch.bool)

    def draw(high: int) -> int:
        return int(torch.randint(0, max(high, 0) + 1, (1,), generator=generator))

    for row in range(B):
        length = int(lengths[row])
        for _ in range(config.frequency_masks):
            width = draw(min(config.max_frequency_width, F))
            start = draw(F - width)
            keep[row, :, start : start + width] = False
        limit = min(config.max_time_width, int(length * config.time_mask_ratio))
        for _ in range(config.time_masks):
            width = draw(limit)
            start = draw(length - width)
            keep[row, start : start + width, :] = False
    return features * keep.to(features.device, features.dtype)


# --------------------------------------------------------------------------- cache


class FeatureCache:
    """A split's features in one safetensors file, keyed by the settings and the files.

    The key hashes the feature settings and every audio file's path, size and
    modification time, so a changed file or setting computes anew. Files are
    written through a temporary name and a rename.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    @staticmethod
    def key(paths: Sequence[str], config: FeatureConfig, variant: str = "") -> str:
        digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode())
        digest.update(variant.encode())
        for path in paths:
            stat = os.stat(path) if os.path.exists(path) else None
            digest.update(f"{path}\0{stat.st_size if stat else -1}\0".encode())
            digest.update(f"{stat.st_mtime_ns if stat else -1}\n".encode())
        return digest.hexdigest()[:24]

    def load_or_compute(
        self,
        paths: Sequence[str],
        config: FeatureConfig,
        compute: Callable[[str], torch.Tensor],
        variant: str = "",
    ) -> list[torch.Tensor]:
        """Features of every path, from the cache when it has them (``variant`` names a
        different computation of the same files, such as a speed perturbation)."""
        from safetensors.torch import load_file, save_file

        path = self.directory / f"features-{self.key(paths, config, variant)}.safetensors"
        if path.is_file():
            stored = load_file(str(path))
            bounds = stored["offsets"].tolist()
            frames = stored["features"]
            return [frames[bounds[i] : bounds[i + 1]] for i in range(len(paths))]
        features = [compute(item) for item in paths]
        lengths = [0] + [len(f) for f in features]
        offsets = torch.tensor(np.cumsum(lengths), dtype=torch.long)
        self.directory.mkdir(parents=True, exist_ok=True)
        # A name of this process's own: the processes of a data-parallel run may fill
        # the same cache entry at once, and each must rename a complete file.
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file(
            {"features": torch.cat(features).contiguous(), "offsets": offsets}, str(temporary)
        )
        os.replace(temporary, path)
        return features
