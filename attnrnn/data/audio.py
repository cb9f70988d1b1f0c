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
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attnrnn.config import check_non_negative, check_positive
from attnrnn.errors import ConfigError, DataError
from attnrnn.extras import require

# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel filterbank features.

    sample_rate: audio is resampled to this rate first.
    num_mel_bins: F.
    window_ms, hop_ms: analysis window and frame shift.
    f_min, f_max: the mel filters' frequency range (f_max None: Nyquist).
    max_seconds: longer recordings are errors (they would not fit a batch).
    """

    sample_rate: int = 16000
    num_mel_bins: int = 80
    window_ms: float = 25.0
    hop_ms: float = 10.0
    f_min: float = 0.0
    f_max: float | None = None
    max_seconds: float = 30.0

    def __post_init__(self) -> None:
        check_positive(self, "sample_rate", "num_mel_bins", "window_ms", "hop_ms", "max_seconds")
        check_non_negative(self, "f_min")
        nyquist = self.sample_rate / 2
        if self.f_max is not None and not self.f_min < self.f_max <= nyquist:
            raise ConfigError(f"f_max must be in (f_min, {nyquist:g}], got {self.f_max}")

    @property
    def window_length(self) -> int:
        """Samples per analysis window."""
        return round(self.sample_rate * self.window_ms / 1000)

    @property
    def hop_length(self) -> int:
        """Samples between frames."""
        return round(self.sample_rate * self.hop_ms / 1000)

    @property
    def n_fft(self) -> int:
        """FFT size: the next power of two of the window length."""
        return 1 << (self.window_length - 1).bit_length()


# --------------------------------------------------------------------------- reading


def read_audio(path: str | os.PathLike[str], sample_rate: int, max_seconds: float) -> torch.Tensor:
    """Read a recording as mono float32 samples in [-1, 1] at ``sample_rate``.

    Returns:
        (samples,) float32.
    """
    soundfile = require("soundfile")
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise DataError("audio file not found", name)
    try:
        samples, rate = soundfile.read(name, dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, TypeError, ValueError) as error:
        raise DataError(f"not a readable audio file ({error})", name) from error
    return mono_samples(samples, rate, sample_rate, max_seconds, name)


def mono_samples(
    samples: np.ndarray, rate: int, sample_rate: int, max_seconds: float, name: str
) -> torch.Tensor:
    """Float32 samples (samples, channels) at ``rate`` as mono (channels averaged) at
    ``sample_rate``; none, or more than ``max_seconds``, is a :class:`DataError`
    naming ``name``.

    Returns:
        (samples,) float32.
    """
    if samples.shape[0] == 0:
        raise DataError("the audio has no samples", name)
    seconds = samples.shape[0] / rate
    if seconds > max_seconds:
        raise DataError(
            f"the recording is {seconds:.1f} s long; the limit is {max_seconds:g} s "
            "(features.max_seconds)",
            name,
        )
    mono = samples.mean(axis=1)  # (samples,)
    if rate != sample_rate:
        mono = resample(mono, rate, sample_rate)
    return torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))


def change_speed(samples: np.ndarray | torch.Tensor, factor: float) -> torch.Tensor:
    """Play ``samples`` ``factor`` times as fast (Kaldi-style speed perturbation:
    resampling, so tempo and pitch change together; 0.9 is 11% longer)."""
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    if factor == 1.0:
        return torch.as_tensor(samples, dtype=torch.float32)
    array = samples.numpy() if isinstance(samples, torch.Tensor) else samples
    ratio = Fraction(factor).limit_denominator(1000)  # e.g. 0.9 = 9/10
    changed = resample(array, ratio.numerator, ratio.denominator)
    return torch.from_numpy(np.ascontiguousarray(changed, dtype=np.float32))


def resample(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling (scipy) from ``rate`` to ``target_rate``."""
    resample_poly = require("scipy.signal").resample_poly

    ratio = Fraction(target_rate, rate)
    return resample_poly(samples, ratio.numerator, ratio.denominator).astype(np.float32)


def array_samples(samples: Any, rate: int | None, config: FeatureConfig, name: str) -> torch.Tensor:
    """Mono float32 samples at ``config.sample_rate`` from a numpy array or tensor,
    (samples,) or (samples, channels) (channels averaged, as for files); integer
    samples are scaled to [-1, 1).

    Returns:
        (samples,) float32.
    """
    if rate is None:
        raise ConfigError(
            f"{name}: audio given as samples needs its sample rate: transcribe(..., sample_rate=HZ)"
        )
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().cpu().numpy()
    array = np.asarray(samples)
    if np.issubdtype(array.dtype, np.integer):
        array = array / (np.iinfo(array.dtype).max + 1.0)
    if array.ndim not in (1, 2):
        raise DataError(
            f"samples must be (samples,) or (samples, channels), not {array.shape}", name
        )
    channels = (array[:, None] if array.ndim == 1 else array).astype(np.float32)  # (samples, C)
    return mono_samples(channels, rate, config.sample_rate, config.max_seconds, name)


# --------------------------------------------------------------------------- features


def hz_to_mel(frequencies: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's default)."""
    frequencies = np.asarray(frequencies, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = frequencies / f_sp
    min_log_hz, min_log_mel, log_step = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    above = frequencies >= min_log_hz
    mels[above] = min_log_mel + np.log(frequencies[above] / min_log_hz) / log_step
    return mels


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    frequencies = f_sp * mels
    min_log_hz, min_log_mel, log_step = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    above = mels >= min_log_mel
    frequencies[above] = min_log_hz * np.exp(log_step * (mels[above] - min_log_mel))
    return frequencies


def mel_filterbank(config: FeatureConfig) -> torch.Tensor:
    """Triangular, area-normalized ("slaney") mel filters, (F, n_fft // 2 + 1)."""
    f_max = config.f_max or config.sample_rate / 2
    bins = config.n_fft // 2 + 1
    fft_frequencies = np.linspace(0, config.sample_rate / 2, bins)  # (bins,)
    edges = mel_to_hz(
        np.linspace(
            hz_to_mel(np.array([config.f_min]))[0],
            hz_to_mel(np.array([f_max]))[0],
            config.num_mel_bins + 2,
        )
    )  # (F + 2,)
    widths = np.diff(edges)  # (F + 1,)
    ramps = edges[:, None] - fft_frequencies[None, :]  # (F + 2, bins)
    lower = -ramps[:-2] / widths[:-1, None]  # (F, bins)
    upper = ramps[2:] / widths[1:, None]  # (F, bins)
    weights = np.maximum(0.0, np.minimum(lower, upper))  # (F, bins)
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per filter
    return torch.from_numpy(weights.astype(np.float32))


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
