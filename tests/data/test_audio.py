"""The audio front end: features against librosa, reading errors, normalization,
SpecAugment and the feature cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attnrnn.data.audio import (
    FeatureCache,
    FeatureConfig,
    GlobalNormalizer,
    LogMelFrontEnd,
    SpecAugmentConfig,
    change_speed,
    mel_filterbank,
    read_audio,
    spec_augment,
)
from attnrnn.errors import ConfigError, DataError

soundfile = pytest.importorskip("soundfile")
librosa = pytest.importorskip("librosa")


def chirp(seconds: float, rate: int) -> np.ndarray:
    times = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * (200 + 900 * times) * times)).astype(np.float32)


@pytest.mark.parametrize(
    "config",
    [FeatureConfig(), FeatureConfig(sample_rate=8000, num_mel_bins=40, f_min=20, f_max=3800)],
)
def test_filterbank_equals_librosa(config):
    expected = librosa.filters.mel(
        sr=config.sample_rate,
        n_fft=config.n_fft,
        n_mels=config.num_mel_bins,
        fmin=config.f_min,
        fmax=config.f_max,
        htk=False,
        norm="slaney",
    )
    np.testing.assert_allclose(mel_filterbank(config).numpy(), expected, rtol=1e-5, atol=1e-8)


def test_log_mel_features_equal_librosa():
    config = FeatureConfig()
    samples = chirp(1.3, config.sample_rate)
    features = LogMelFrontEnd(config)(torch.from_numpy(samples))
    mel = librosa.feature.melspectrogram(
        y=samples,
        sr=config.sample_rate,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.window_length,
        window="hann",
        center=True,
        pad_mode="constant",
        power=2.0,
        n_mels=config.num_mel_bins,
        htk=False,
        norm="slaney",
    )
    expected = np.log(mel + 1e-6).T  # (frames, F)
    assert features.shape == (1 + len(samples) // config.hop_length, config.num_mel_bins)
    np.testing.assert_allclose(features.numpy(), expected, rtol=1e-3, atol=1e-3)


def test_read_audio_resamples_and_mixes_down(tmp_path):
    samples = chirp(0.5, 8000)
    stereo = np.stack([samples, samples], axis=1)
    path = tmp_path / "tone.flac"
    soundfile.write(path, stereo, 8000)
    audio = read_audio(path, 16000, max_seconds=5)
    assert audio.dtype == torch.float32
    assert len(audio) == 2 * len(samples)
    reference = librosa.resample(samples, orig_sr=8000, target_sr=16000, res_type="polyphase")
    np.testing.assert_allclose(audio.numpy(), reference, atol=2e-3)


def test_read_audio_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_audio(tmp_path / "missing.wav", 16000, 5)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00junk that is not audio" * 3)
    with pytest.raises(DataError, match="not a readable audio file") as error:
        read_audio(corrupt, 16000, 5)
    assert "corrupt.wav" in str(error.value)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(DataError, match="no samples"):
        read_audio(empty, 16000, 5)
    long = tmp_path / "long.wav"
    soundfile.write(long, np.zeros(16000 * 3, dtype=np.float32), 16000)
    with pytest.raises(DataError, match="limit is 2 s"):
        read_audio(long, 16000, 2)


def test_feature_config_checks():
    with pytest.raises(ConfigError):
        FeatureConfig(f_max=9000)
    assert FeatureConfig().n_fft == 512
    assert FeatureConfig(sample_rate=8000).window_length == 200


def test_normalizer_gives_zero_mean_unit_variance():
    generator = torch.Generator().manual_seed(0)
    features = [torch.randn(n, 5, generator=generator) * 3 + 7 for n in (10, 20, 30)]
    normalizer = GlobalNormalizer.fit(features)
    normalized = torch.cat([normalizer(f) for f in features])
    torch.testing.assert_close(normalized.mean(0), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(normalized.std(0), torch.ones(5), atol=1e-5, rtol=0)
    again = GlobalNormalizer.from_dict(normalizer.to_dict())
    torch.testing.assert_close(again(features[0]), normalizer(features[0]))


def test_spec_augment_masks_only_valid_frames():
    features = torch.ones(3, 50, 20)
    lengths = torch.tensor([50, 30, 10])
    config = SpecAugmentConfig(max_frequency_width=5, max_time_width=8, time_mask_ratio=0.5)
    generator = torch.Generator().manual_seed(1)
    masked = spec_augment(features, lengths, config, generator)
    assert masked.shape == features.shape
    assert (masked == 0).any()
    # Every zero is either in a masked frequency band (all frames) or a masked span.
    for row, length in enumerate(lengths.tolist()):
        zero_frames = (masked[row] == 0).all(dim=1).nonzero().flatten()
        assert all(frame < length for frame in zero_frames.tolist())
        assert (masked[row] == 0).all(dim=0).sum() <= 2 * 5  # at most 2 bands of 5
    off = SpecAugmentConfig(frequency_masks=0, time_masks=0)
    torch.testing.assert_close(spec_augment(features, lengths, off), features)


def test_feature_cache_computes_once(tmp_path):
    paths = []
    for number in range(3):
        path = tmp_path / f"{number}.wav"
        soundfile.write(path, chirp(0.2 + 0.1 * number, 16000), 16000)
        paths.append(str(path))
    config = FeatureConfig()
    front_end = LogMelFrontEnd(config)
    calls = []

    def compute(path):
        calls.append(path)
        return front_end.file_features(path)

    cache = FeatureCache(tmp_path / "cache")
    first = cache.load_or_compute(paths, config, compute)
    second = cache.load_or_compute(paths, config, compute)
    assert len(calls) == 3
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b)
    cache.load_or_compute(paths, FeatureConfig(num_mel_bins=40), compute)
    assert len(calls) == 6  # other settings: computed anew
    assert math.isclose(len(first[1]), 1 + int(0.3 * 16000) // 160)
    cache.load_or_compute(paths, config, compute, variant="speed=0.9")
    assert len(calls) == 9  # another variant of the same files: computed anew, kept apart
    again = cache.load_or_compute(paths, config, compute)
    assert len(calls) == 9 and torch.equal(again[2], first[2])


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_changes_tempo_and_pitch_together(factor):
    rate = 16000
    times = np.arange(rate) / rate  # one second of 440 Hz
    tone = (0.5 * np.sin(2 * np.pi * 440 * times)).astype(np.float32)
    changed = change_speed(tone, factor).numpy()
    assert abs(len(changed) - rate / factor) <= 2
    spectrum = np.abs(np.fft.rfft(changed * np.hanning(len(changed))))
    peak = np.argmax(spectrum) * rate / len(changed)
    assert abs(peak - 440 * factor) < 3
    torch.testing.assert_close(change_speed(tone, 1.0), torch.from_numpy(tone))
    with pytest.raises(ValueError, match="positive"):
        change_speed(tone, 0.0)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_numpy_log_mel_equals_the_torch_front_end(rate):
    from attnrnn.data.audio_files import log_mel

    config = FeatureConfig(sample_rate=rate, num_mel_bins=40)
    generator = np.random.default_rng(0)
    samples = (0.3 * generator.standard_normal(rate // 2 + 37)).astype(np.float32)
    expected = LogMelFrontEnd(config)(torch.from_numpy(samples)).numpy()
    got = log_mel(samples, config)
    assert got.shape == expected.shape == (1 + len(samples) // config.hop_length, 40)
    np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-4)
