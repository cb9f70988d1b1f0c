"""Speech attention pictures: the output-to-frame alignment drawn under the spectrogram.

The listener shortens time (by 4 or 8), so the alignment's columns are
listener frames; both panels share one time axis in seconds, so the reader
sees which stretch of sound each output unit attended to.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from attnrnn.viz import _new_figure, _plain, _save_png, _tick_label


def write_speech_alignment_png(
    path: str | os.PathLike[str],
    features: np.ndarray | Sequence[Sequence[float]],
    attention: np.ndarray | Sequence[Sequence[float]],
    tokens: Sequence[str],
    hop_seconds: float,
    title: str | None = None,
) -> Path:
    """Write the spectrogram (top) and the alignment (bottom) to a PNG.

    Args:
        features: (T, F) input features (log-mel, normalized or not).
        attention: (U, T') weights of every output unit over listener frames.
        tokens: U labels for the alignment rows.
        hop_seconds: seconds between input frames.
    """
    features = np.asarray(features, dtype=np.float32)
    attention = np.asarray(attention, dtype=np.float32)
    T, F = features.shape
    U = attention.shape[0]
    if len(tokens) != U:
        raise ValueError(f"{len(tokens)} tokens for {U} attention rows")
    seconds = T * hop_seconds
    width = max(5.0, min(0.04 * T, 16.0))
    figure = _new_figure(width, 2.0 + max(1.5, min(0.25 * U, 8.0)))
    top, bottom = figure.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [1, max(1.0, U / 12)]}
    )
    top.imshow(features.T, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, F))
    top.set_ylabel("mel bin")
    bottom.imshow(
        attention,
        aspect="auto",
        cmap="Greys",
        vmin=0.0,
        vmax=float(attention.max()) if attention.size and attention.max() > 0 else 1.0,
        interpolation="nearest",
        extent=(0, seconds, U - 0.5, -0.5),
    )
    bottom.set_yticks(range(U), [_tick_label(token) for token in tokens], fontsize=8)
    bottom.set_xlabel("time (s)")
    bottom.set_ylabel("output")
    if title:
        top.set_title(_plain(title))
    return _save_png(figure, path)
