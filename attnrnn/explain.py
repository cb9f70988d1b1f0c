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
    ExplainedText,
    printable_token,
    terminal_colored,
    top_tokens,
    write_alignment_html,
    write_alignment_png,
    write_html,
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


def write_prediction_pictures(predictions: Sequence[Any], output: Path, title: str) -> list[Path]:
    """explain.html (every prediction) and explain-N.png (one heatmap each)."""
    output.mkdir(parents=True, exist_ok=True)

    def weights(prediction: Any) -> Any:
        return prediction.attention if len(prediction.attention) > 1 else prediction.attention[0]

    items = [
        ExplainedText(
            tokens=p.tokens,
            weights=weights(p),
            label=p.label,
            probabilities=p.probabilities,
            text=p.text,
        )
        for p in predictions
    ]
    paths = [write_html(output / "explain.html", items, title)]
    for number, prediction in enumerate(predictions, start=1):
        probability = prediction.probabilities[prediction.label]
        paths.append(
            write_token_heatmap_png(
                output / f"explain-{number}.png",
                prediction.tokens,
                weights(prediction),
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


def write_alignments(
    output: Path,
    name: str,
    alignments: Sequence[tuple[Sequence[str], Sequence[str], Sequence[Sequence[float]], str]],
) -> list[Path]:
    """``{name}-N.png`` and ``{name}-N.html`` for every (source tokens, target tokens,
    attention (T, S), title)."""
    output.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, (source, target, attention, title) in enumerate(alignments, start=1):
        for suffix, write in (("png", write_alignment_png), ("html", write_alignment_html)):
            path = output / f"{name}-{number}.{suffix}"
            write(path, list(source), list(target), [list(row) for row in attention], title)
            paths.append(path)
    return paths
