"""What ``explain`` shows for each task's results: a few lines of text (which tokens
the attention picked) and pictures (HTML and PNG heatmaps). The tasks' ``explain``
methods predict and call these; nothing here loads a model.

Text meant for the terminal escapes the control characters of user text (an escape
sequence in an input is shown as ``\\x1b[2J``, not obeyed): tokens through
:func:`~attnrnn.viz.printable_token`, whole texts through :func:`~attnrnn.viz.printable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attnrnn.viz import (
    printable_token,
    terminal_colored,
    top_tokens,
    write_alignment_png,
    write_token_heatmap_png,
)

# --------------------------------------------------------------------------- classification


def describe_prediction(prediction: Any, color: bool = False) -> str:
    """Two lines: the label with its probability and top tokens, then the shaded text.
    Control characters in the label and tokens are escaped (:func:`printable_token`)."""
    probability = prediction.probabilities[prediction.label]
    weights = prediction.weights
    top = ", ".join(
        f"{printable_token(token)} ({weight:.2f})"
        for token, weight in top_tokens(prediction.tokens, weights, k=3)
    )
    label = printable_token(prediction.label)
    return f"{label} ({probability:.1%})  most attended: {top}\n  " + terminal_colored(
        prediction.tokens, weights, color=color
    )


def write_prediction_heatmaps(predictions: Sequence[Any], output: Path) -> list[Path]:
    """explain-N.png: one heatmap of each prediction's attention (a row per hop)."""
    output.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, prediction in enumerate(predictions, start=1):
        weights = prediction.attention if len(prediction.attention) > 1 else prediction.attention[0]
        probability = prediction.probabilities[prediction.label]
        paths.append(
            write_token_heatmap_png(
                output / f"explain-{number}.png",
                prediction.tokens,
                weights,
                title=f"{prediction.label} ({probability:.1%})",
            )
        )
    return paths


# --------------------------------------------------------------------------- alignments


def strongest_links(
    source_tokens: Sequence[str], target_tokens: Sequence[str], attention: Sequence[Sequence[float]]
) -> str:
    """``target<-source`` for every output token and the source token it attended to most
    (control characters escaped: :func:`printable_token`)."""
    return " ".join(
        printable_token(target)
        + "<-"
        + printable_token(source_tokens[max(range(len(row)), key=row.__getitem__)])
        for target, row in zip(target_tokens, attention, strict=False)
        if len(row)
    )


def write_alignment_pngs(
    output: Path,
    name: str,
    alignments: Sequence[tuple[Sequence[str], Sequence[str], Sequence[Sequence[float]], str]],
) -> list[Path]:
    """``{name}-N.png`` for every (source tokens, target tokens, attention (T, S), title)."""
    output.mkdir(parents=True, exist_ok=True)
    return [
        write_alignment_png(
            output / f"{name}-{number}.png",
            list(source),
            list(target),
            [list(row) for row in attention],
            title,
        )
        for number, (source, target, attention, title) in enumerate(alignments, start=1)
    ]
