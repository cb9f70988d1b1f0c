"""Generated audio for tests and the demo: sequences of tone "syllables".

Each symbol of a small alphabet is a short tone with its own pitch (and a
little random jitter in pitch, length, loudness and noise), so recognizing a
sequence needs what speech recognition needs: find where each unit is in time
and name it, with variable-length input and output.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

SYMBOLS = ("do", "re", "mi", "fa", "so")
PITCHES = (262.0, 330.0, 392.0, 523.0, 659.0)  # Hz


@dataclass(frozen=True)
class ToneUtterance:
    """Samples (float32) and the transcript ("do mi re")."""

    samples: np.ndarray
    text: str


def make_tone_utterances(
    count: int, seed: int, sample_rate: int = 8000, max_symbols: int = 4
) -> list[ToneUtterance]:
    """``count`` utterances of 1 to ``max_symbols`` tone syllables each."""
    generator = random.Random(seed)
    noise = np.random.default_rng(seed)
    utterances = []
    for _ in range(count):
        symbols = [
            generator.randrange(len(SYMBOLS)) for _ in range(generator.randint(1, max_symbols))
        ]
        pieces = [np.zeros(int(0.05 * sample_rate), dtype=np.float32)]
        for symbol in symbols:
            seconds = generator.uniform(0.08, 0.14)
            pitch = PITCHES[symbol] * generator.uniform(0.97, 1.03)
            times = np.arange(int(seconds * sample_rate)) / sample_rate
            envelope = np.hanning(len(times))
            tone = generator.uniform(0.3, 0.6) * envelope * np.sin(2 * np.pi * pitch * times)
            pieces += [
                tone.astype(np.float32),
                np.zeros(int(generator.uniform(0.02, 0.06) * sample_rate), dtype=np.float32),
            ]
        samples = np.concatenate(pieces)
        samples += noise.normal(0.0, 0.01, len(samples)).astype(np.float32)
        utterances.append(ToneUtterance(samples, " ".join(SYMBOLS[s] for s in symbols)))
    return utterances
