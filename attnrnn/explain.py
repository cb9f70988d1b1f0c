"""``attnrnn explain``: show which tokens a classifier's attention picked.

Prints each text with tokens shaded by attention, and writes ``explain.html``
(every text) and ``explain-N.png`` (one heatmap per text) to a folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from attnrnn.tasks.classifier_run import ClassifierRun, Prediction
from attnrnn.viz import (
    ExplainedText,
    terminal_colored,
    top_tokens,
    write_alignment_html,
    write_alignment_png,
    write_html,
    write_token_heatmap_png,
)


def mean_attention(prediction: Prediction) -> list[float]:
    """Per-token attention averaged over hops (the hops' rows for one hop)."""
    hops = prediction.attention
    return [sum(column) / len(hops) for column in zip(*hops, strict=True)]


def describe(prediction: Prediction, color: bool = True) -> str:
    """Two lines: the label with its probability and top tokens, then the shaded text."""
    probability = prediction.probabilities[prediction.label]
    weights = mean_attention(prediction)
    top = ", ".join(
        f"{token} ({weight:.2f})" for token, weight in top_tokens(prediction.tokens, weights, k=3)
    )
    return f"{prediction.label} ({probability:.1%})  most attended: {top}\n  " + terminal_colored(
        prediction.tokens, weights, color=color
    )


def write_explanations(predictions: Sequence[Prediction], output: Path, title: str) -> list[Path]:
    """Write explain.html and one heatmap PNG per prediction; return the paths."""
    output.mkdir(parents=True, exist_ok=True)
    items = [
        ExplainedText(
            tokens=p.tokens,
            weights=p.attention if len(p.attention) > 1 else p.attention[0],
            label=p.label,
            probabilities=p.probabilities,
            text=p.text,
        )
        for p in predictions
    ]
    paths = [write_html(output / "explain.html", items, title)]
    for number, prediction in enumerate(predictions, start=1):
        weights = prediction.attention if len(prediction.attention) > 1 else prediction.attention[0]
        paths.append(
            write_token_heatmap_png(
                output / f"explain-{number}.png",
                prediction.tokens,
                weights,
                title=f"{prediction.label} ({prediction.probabilities[prediction.label]:.1%})",
            )
        )
    return paths


def explain_texts(
    run_directory: str | Path, texts: Sequence[str], output: Path, color: bool = True
) -> list[Prediction]:
    """Predict ``texts`` with a run, print their attention and write the pictures."""
    run = ClassifierRun(run_directory)
    predictions = run.predict(list(texts))
    for prediction in predictions:
        print(describe(prediction, color))
    for path in write_explanations(predictions, output, f"attnrnn explain: {run.directory.name}"):
        print(f"wrote {path}")
    return predictions


def explain_translations(
    run_directory: str | Path, texts: Sequence[str], output: Path
) -> list[Path]:
    """Translate ``texts`` and write each source-target alignment as PNG and HTML.

    Prints every translation with, per output token, the source token it
    attended to most.
    """
    from attnrnn.tasks.translation_run import TranslationRun

    run = TranslationRun(run_directory)
    output.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, item in enumerate(run.translate(list(texts)), start=1):
        print(f"{item.source}\n  -> {item.translation}")
        links = [
            f"{target}<-{item.source_tokens[max(range(len(row)), key=row.__getitem__)]}"
            for target, row in zip(item.target_tokens, item.attention, strict=True)
            if row
        ]
        print("  " + " ".join(links))
        title = f"{item.source} -> {item.translation}"
        for suffix, write in (("png", write_alignment_png), ("html", write_alignment_html)):
            path = output / f"alignment-{number}.{suffix}"
            write(path, item.source_tokens, item.target_tokens, item.attention, title)
            paths.append(path)
            print(f"wrote {path}")
    return paths


def explain_speech(run_directory: str | Path, audio: Sequence[str], output: Path) -> list[Path]:
    """Transcribe audio files and draw each output-to-frame alignment over its spectrogram."""
    from attnrnn.tasks.speech_run import SpeechRun
    from attnrnn.viz_speech import write_speech_alignment_png

    run = SpeechRun(run_directory)
    output.mkdir(parents=True, exist_ok=True)
    paths = []
    hop_seconds = run.config.features.hop_ms / 1000
    for number, item in enumerate(run.transcribe(list(audio)), start=1):
        print(f"{item.audio}\n  -> {item.text}")
        path = write_speech_alignment_png(
            output / f"alignment-{number}.png",
            item.features.numpy(),
            item.attention,
            item.tokens,
            hop_seconds,
            title=f"{Path(item.audio).name}: {item.text}",
        )
        paths.append(path)
        print(f"wrote {path}")
    return paths


def explain_summaries(run_directory: str | Path, texts: Sequence[str], output: Path) -> list[Path]:
    """Summarize texts; print each output token with its copy probability (how much of
    it came from pointing at the source) and write the attention heatmaps."""
    from attnrnn.tasks.summarization_run import SummarizationRun

    run = SummarizationRun(run_directory)
    output.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, item in enumerate(run.summarize(list(texts)), start=1):
        print(item.summary)
        print(
            "  "
            + " ".join(
                f"{token}({copy:.2f})"
                for token, copy in zip(item.tokens, item.copy_probability, strict=True)
            )
        )
        title = f"summary {number}: copy probability in parentheses on the rows"
        rows = [f"{t} ({c:.2f})" for t, c in zip(item.tokens, item.copy_probability, strict=True)]
        for suffix, write in (("png", write_alignment_png), ("html", write_alignment_html)):
            path = output / f"summary-{number}.{suffix}"
            write(path, item.source_tokens, rows, item.attention, title)
            paths.append(path)
            print(f"wrote {path}")
    return paths
