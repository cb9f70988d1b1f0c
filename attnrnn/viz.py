"""Attention rendered for people: terminal lines and PNG heatmaps (the interactive HTML
view is :mod:`attnrnn.explorer`).

Two kinds of attention are drawn here:

* token attention over one sequence, ``(S,)``, or ``(R, S)`` for R hops of
  multi-hop attention (the text classifier's pooling weights);
* an alignment between a target and a source, ``(T, S)`` (one row of a
  decoder's ``(B, T, S)`` weights; for speech the S source positions are
  frames and may have no labels).

Weights may be lists, numpy arrays or torch tensors. Lengths are checked
against the tokens and a mismatch is a ``ValueError`` that names both sizes.
Every file is written atomically: rendered into a temporary file beside the
target, then moved over it with ``os.replace``, so a failure leaves neither a
partial file nor a stray temporary one. Figures are plain
``matplotlib.figure.Figure`` objects drawn by the Agg canvas, without pyplot
and its global figure registry, so there is nothing to close and no backend to
switch.
"""

from __future__ import annotations

import math
import os
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

# Lists, numpy arrays or torch tensors of weights.
WeightsLike = Any

# 256-color ANSI backgrounds from white through pale yellow and orange to red.
_ANSI_RAMP = (231, 230, 229, 223, 222, 221, 215, 214, 209, 208, 203, 202, 196)
_ANSI_BLACK_TEXT = "38;5;16"
_ANSI_RESET = "\x1b[0m"
_MAX_TOKENS_PER_ROW = 40
# Longer tick labels are cut (with an ellipsis) so that they cannot crowd out the plot.
_MAX_LABEL_CHARS = 20
_DPI = 110


def terminal_colored(tokens: Sequence[str], weights: WeightsLike, color: bool = True) -> str:
    """One line with each token shaded by its weight ``(S,)`` relative to the largest.

    With ``color=False`` the weights are written out instead: ``great(0.41) movie(0.12)``.
    """
    labels = _as_tokens(tokens, "tokens")
    values = _token_weights(labels, weights)
    if values.shape[0] != 1:
        raise ValueError(
            f"terminal_colored takes one weight per token, shape (S,); got {values.shape} "
            "(pick one hop or average the hops first)"
        )
    values = values[0]  # (S,)
    labels = [printable_token(label) for label in labels]
    if not color:
        return " ".join(
            f"{label}({value:.2f})" for label, value in zip(labels, values, strict=True)
        )
    shades = _relative(values)
    last = len(_ANSI_RAMP) - 1
    pieces = []
    for label, shade in zip(labels, shades, strict=True):
        background = _ANSI_RAMP[round(float(shade) * last)]
        pieces.append(f"\x1b[48;5;{background};{_ANSI_BLACK_TEXT}m{label}{_ANSI_RESET}")
    return " ".join(pieces)


def top_tokens(tokens: Sequence[str], weights: WeightsLike, k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` tokens with the largest weights ``(S,)``, largest first (ties keep order)."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    labels = _as_tokens(tokens, "tokens")
    values = _token_weights(labels, weights)
    if values.shape[0] != 1:
        raise ValueError(f"top_tokens takes weights of shape (S,); got {values.shape}")
    order = sorted(range(len(labels)), key=lambda index: -values[0, index])
    return [(labels[index], float(values[0, index])) for index in order[:k]]


# ------------------------------------------------------------------------ PNG


def write_token_heatmap_png(
    path: str | os.PathLike[str],
    tokens: Sequence[str],
    weights: WeightsLike,
    title: str | None = None,
) -> Path:
    """Write token attention ``(S,)`` or ``(R, S)`` as a heatmap PNG; returns the path.

    One row per hop, tokens as column labels. Sequences longer than 40 tokens
    wrap into several equally wide rows. All rows share one colour scale.
    """
    labels = _as_tokens(tokens, "tokens")
    weights_rows = _token_weights(labels, weights)  # (R, S)
    if not labels:
        raise ValueError("cannot draw a heatmap of zero tokens")
    hops, length = weights_rows.shape
    chunks = math.ceil(length / _MAX_TOKENS_PER_ROW)
    per_row = math.ceil(length / chunks)
    padded = np.full((hops, chunks * per_row), np.nan)
    padded[:, :length] = weights_rows
    padded = padded.reshape(hops, chunks, per_row).transpose(1, 0, 2)  # (chunks, R, per_row)

    longest = min(_MAX_LABEL_CHARS, max(len(label) for label in labels))
    cell = max(0.32, 0.075 * longest + 0.12)
    rotation = 0 if cell * per_row <= 14 else 60
    cell = cell if rotation == 0 else 0.32
    label_height = 0.3 if rotation == 0 else 0.08 * longest + 0.2
    figure = _new_figure(
        width=cell * per_row + 1.6,
        height=chunks * (0.42 * hops + label_height + 0.15) + (0.4 if title else 0.1),
    )
    axes_list = figure.subplots(chunks, 1, squeeze=False)[:, 0]
    vmax = float(weights_rows.max()) if weights_rows.max() > 0 else 1.0
    images = [
        _draw_token_rows(
            axes, padded[chunk], labels[chunk * per_row : (chunk + 1) * per_row], vmax, rotation
        )
        for chunk, axes in enumerate(axes_list)
    ]
    figure.colorbar(images[0], ax=list(axes_list), fraction=0.03, pad=0.01, label="weight")
    if title:
        figure.suptitle(_plain(title))
    return _save_png(figure, path)


def _draw_token_rows(
    axes: Axes, weights: np.ndarray, labels: list[str], vmax: float, rotation: int
) -> AxesImage:
    """Draw weights ``(R, W)`` (NaN where a wrapped row has no token) under ``labels``."""
    hops = weights.shape[0]
    image = axes.imshow(
        np.ma.masked_invalid(weights),
        cmap=_colormap("Reds"),
        vmin=0.0,
        vmax=vmax,
        aspect="auto",
        interpolation="nearest",
    )
    axes.set_xticks(range(len(labels)), [_tick_label(label) for label in labels])
    if rotation:
        axes.tick_params(axis="x", labelrotation=rotation)
        for tick in axes.get_xticklabels():
            tick.set_horizontalalignment("right")
            tick.set_rotation_mode("anchor")
    if hops > 1:
        axes.set_yticks(range(hops), [f"hop {hop}" for hop in range(1, hops + 1)])
    else:
        axes.set_yticks([])
    for spine in axes.spines.values():
        spine.set_visible(False)
    return image


def write_alignment_png(
    path: str | os.PathLike[str],
    source_tokens: Sequence[str] | None,
    target_tokens: Sequence[str] | None,
    weights_2d: WeightsLike,
    title: str | None = None,
) -> Path:
    """Write an alignment ``(T, S)`` as a heatmap PNG: rows target, columns source.

    A label list that is ``None`` (speech frames) becomes a position axis with
    sparse ticks. Returns the path.
    """
    weights, sources, targets = _alignment_inputs(source_tokens, target_tokens, weights_2d)
    T, S = weights.shape
    plot_width = max(3.0, min(0.3 * S, 13.0))  # inches
    plot_height = max(2.0, min(0.3 * T, 9.0))
    source_chars = min(_MAX_LABEL_CHARS, max(map(len, sources)))
    target_chars = min(_MAX_LABEL_CHARS, max(map(len, targets)))
    source_room = 0.35 if source_tokens is None else 0.08 * source_chars + 0.3
    target_room = 0.45 if target_tokens is None else 0.08 * target_chars + 0.3
    figure = _new_figure(
        width=plot_width + target_room + 1.2,
        height=plot_height + source_room + (0.5 if title else 0.2),
    )
    axes = figure.subplots()
    vmax = float(weights.max()) if weights.max() > 0 else 1.0
    image = axes.imshow(
        weights, cmap="Greys", vmin=0.0, vmax=vmax, aspect="auto", interpolation="nearest"
    )
    _label_axis(axes.xaxis, source_tokens, plot_width / S, "source frame")
    _label_axis(axes.yaxis, target_tokens, plot_height / T, "target position")
    if source_tokens is not None and 0.08 * source_chars > plot_width / S:
        axes.tick_params(axis="x", labelrotation=90)
    figure.colorbar(image, ax=axes, fraction=0.04, pad=0.02, label="weight")
    if title:
        axes.set_title(_plain(title))
    return _save_png(figure, path)


def _label_axis(
    axis: Axis, labels: Sequence[str] | None, cell_inches: float, index_name: str
) -> None:
    """Label every cell with its token, or (no labels) put sparse index ticks."""
    from matplotlib.ticker import MaxNLocator

    if labels is None:
        axis.set_major_locator(MaxNLocator(nbins=10, integer=True))
        axis.set_label_text(index_name)
        return
    font_size = max(4.0, min(9.0, cell_inches * 72 * 0.8))
    axis.set_ticks(range(len(labels)), [_tick_label(label) for label in labels], fontsize=font_size)


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _colormap(name: str) -> Any:
    """A colormap whose masked (padding) cells are transparent."""
    from matplotlib import colormaps

    return colormaps[name].with_extremes(bad=(0.0, 0.0, 0.0, 0.0))


def _save_png(figure: Figure, path: str | os.PathLike[str]) -> Path:
    return _write_atomically(
        path,
        lambda handle: figure.savefig(handle, format="png", dpi=_DPI, bbox_inches="tight"),
    )


def _plain(text: str) -> str:
    """Text that matplotlib shows literally: a ``$`` would start math mode, and control
    characters have no glyph (they are escaped, :func:`printable`)."""
    return printable(str(text), keep="\n").replace("$", r"\$")


def _tick_label(token: str) -> str:
    """A token as a tick label: literal, at most ``_MAX_LABEL_CHARS`` long, never blank.

    A token of only whitespace (the space of a character transcript) is drawn as
    open boxes so that it stays visible.
    """
    if not token.strip():
        return "\u2423" * max(1, min(len(token), _MAX_LABEL_CHARS))
    token = printable_token(token)
    if len(token) > _MAX_LABEL_CHARS:
        token = token[: _MAX_LABEL_CHARS - 1] + "\u2026"
    return _plain(token)


# ------------------------------------------------------------ inputs and files


def _as_tokens(tokens: Sequence[str], name: str) -> list[str]:
    if isinstance(tokens, str):
        raise ValueError(f"{name} must be a sequence of strings, not one string")
    return [str(token) for token in tokens]


def _as_array(values: WeightsLike, name: str) -> np.ndarray:
    """Weights as a float numpy array; tensors are detached and moved to the CPU."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().float().numpy()
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numbers in a regular array: {error}") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _token_weights(tokens: list[str], weights: WeightsLike) -> np.ndarray:
    """Weights ``(S,)`` or ``(R, S)`` checked against the tokens, returned as ``(R, S)``."""
    array = _as_array(weights, "weights")
    if array.ndim == 1:
        array = array[None, :]  # (1, S)
    if array.ndim != 2:
        raise ValueError(f"weights must have shape (S,) or (R, S); got shape {array.shape}")
    if array.shape[1] != len(tokens):
        raise ValueError(
            f"weights have {array.shape[1]} entries per row but there are {len(tokens)} tokens"
        )
    return array


def _alignment_inputs(
    source_tokens: Sequence[str] | None,
    target_tokens: Sequence[str] | None,
    weights_2d: WeightsLike,
) -> tuple[np.ndarray, list[str], list[str]]:
    """Check an alignment ``(T, S)``; missing labels become position numbers."""
    weights = _as_array(weights_2d, "weights_2d")
    if weights.ndim != 2:
        raise ValueError(
            f"weights_2d must have shape (T, S); got shape {weights.shape} "
            "(select one example of a (B, T, S) batch)"
        )
    T, S = weights.shape
    if T == 0 or S == 0:
        raise ValueError(f"cannot draw an empty alignment of shape {weights.shape}")
    sources = _alignment_labels(source_tokens, S, "source")
    targets = _alignment_labels(target_tokens, T, "target")
    return weights, sources, targets


def _alignment_labels(tokens: Sequence[str] | None, expected: int, side: str) -> list[str]:
    if tokens is None:
        return [str(position) for position in range(expected)]
    labels = _as_tokens(tokens, f"{side}_tokens")
    if len(labels) != expected:
        dimension = "S" if side == "source" else "T"
        raise ValueError(
            f"weights_2d has {dimension}={expected} {side} positions "
            f"but there are {len(labels)} {side} tokens"
        )
    return labels


def _relative(weights: np.ndarray) -> np.ndarray:
    """Weights divided by their maximum, clipped to [0, 1] (all 0 if none is > 0); same shape."""
    if weights.size == 0 or weights.max() <= 0:
        return np.zeros_like(weights)
    return np.clip(weights / weights.max(), 0.0, 1.0)


def printable_token(token: str) -> str:
    """A token with every character that is not printable (controls, format characters,
    separators other than the space) escaped (``\\x1b``), so it cannot drive the
    terminal and stays one visible token."""
    if token.isprintable():
        return token
    return "".join(char if char.isprintable() else _escaped(char) for char in token)


def printable(text: str, keep: str = "\t\n") -> str:
    """``text`` safe to print on a terminal: control characters (except those in
    ``keep``, tab and newline by default), line and paragraph separators, bidirectional
    overrides and lone surrogates escaped (``\\x1b[2J`` is shown, not obeyed); other
    characters, including every script and emoji, unchanged."""
    return "".join(_escaped(char) if _unsafe(char, keep) else char for char in text)


# Characters that reorder the text around them (the "Trojan Source" controls).
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_UNSAFE_CATEGORIES = frozenset(("Cc", "Cs", "Zl", "Zp"))


def _unsafe(char: str, keep: str) -> bool:
    if char.isprintable() or char in keep:
        return False
    return char in _BIDI_CONTROLS or unicodedata.category(char) in _UNSAFE_CATEGORIES


def _escaped(char: str) -> str:
    """``\\x1b``, ``\\u202e``: the Python escape of one character."""
    return char.encode("unicode_escape", errors="backslashreplace").decode("ascii")


def _write_atomically(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write`` on a temporary file beside ``path``, then move it over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "xb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target
