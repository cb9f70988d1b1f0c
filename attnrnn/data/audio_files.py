"""Audio without PyTorch: the feature settings, reading and resampling recordings,
the mel filterbank and log-mel features in numpy. :mod:`attnrnn.data.audio` builds the
training pipeline (torch) on these; the ONNX speech predictor (:mod:`attnrnn.onnx`)
uses them as they are."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

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


def read_samples(path: str | os.PathLike[str], sample_rate: int, max_seconds: float) -> np.ndarray:
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
) -> np.ndarray:
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
    return np.ascontiguousarray(mono, dtype=np.float32)


def changed_speed(samples: np.ndarray, factor: float) -> np.ndarray:
    """Play ``samples`` ``factor`` times as fast (Kaldi-style speed perturbation:
    resampling, so tempo and pitch change together; 0.9 is 11% longer)."""
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    if factor == 1.0:
        return np.asarray(samples, dtype=np.float32)
    ratio = Fraction(factor).limit_denominator(1000)  # e.g. 0.9 = 9/10
    changed = resample(samples, ratio.numerator, ratio.denominator)
    return np.ascontiguousarray(changed, dtype=np.float32)


def resample(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling (scipy) from ``rate`` to ``target_rate``."""
    resample_poly = require("scipy.signal").resample_poly

    ratio = Fraction(target_rate, rate)
    return resample_poly(samples, ratio.numerator, ratio.denominator).astype(np.float32)


def array_samples(samples: Any, rate: int | None, config: FeatureConfig, name: str) -> np.ndarray:
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
    if hasattr(samples, "detach"):  # a torch tensor (torch itself is not imported here)
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


def mel_filters(config: FeatureConfig) -> np.ndarray:
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
    return weights.astype(np.float32)


def hann_window(length: int) -> np.ndarray:
    """The periodic Hann window (torch.hann_window's default), float32."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)).astype(np.float32)


def log_mel(samples: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Samples -> log-mel features (frames, F), frames = 1 + samples // hop: what
    :class:`attnrnn.data.audio.LogMelFrontEnd` computes with ``torch.stft`` (centered
    frames, zero padding, the window centered in the FFT), with numpy's FFT."""
    n_fft, hop = config.n_fft, config.hop_length
    window = np.zeros(n_fft, dtype=np.float32)
    left = (n_fft - config.window_length) // 2
    window[left : left + config.window_length] = hann_window(config.window_length)
    padded = np.pad(np.asarray(samples, dtype=np.float32), (n_fft // 2, n_fft // 2))
    count = 1 + (len(padded) - n_fft) // hop
    frames = padded[np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]]  # (T, n_fft)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # (T, bins)
    mel = power.astype(np.float32) @ mel_filters(config).T  # (T, F)
    return np.log(mel + 1e-6).astype(np.float32)
