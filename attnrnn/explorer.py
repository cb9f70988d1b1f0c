"""The attention explorer as one self-contained HTML file: what ``attnrnn explain``
writes for every task.

The page is the same interactive view the server shows at ``/`` (the script and
styles of ``attnrnn/serving/static`` inlined, no network): the records are embedded
as JSON in ``<script type="application/json" id="attnrnn-data">`` with every ``<``,
``>`` and ``&`` written as a ``\\u`` escape, so no text in a record can end the
script element or be read as markup; the script builds the page with
``textContent`` only.

A record is ``model.record(result)``, the object ``predict --json`` prints:

* classification: ``label``, ``probabilities`` {label: p}, ``tokens`` (S),
  ``attention`` (R, S) (R attention hops);
* translation: ``translation``, ``score``, ``source_tokens`` (S), ``target_tokens``
  (T), ``attention`` (T, S), optionally ``alternatives_detail`` [{``text``,
  ``score``, ``target_tokens``, ``attention``}] for the n-best switch;
* summarization: ``summary``, ``score``, ``source_tokens`` (S), ``tokens`` (T),
  ``copy_probability`` (T), ``attention`` (T, S), optionally ``alternatives_detail``
  (as translation, with ``copy_probability`` where known);
* speech: ``audio``, ``text``, ``score``, ``tokens`` (U), ``attention`` (U, T'),
  ``alternatives``, and ``spectrogram`` (:func:`spectrogram`) for the picture;
* language_model: ``perplexity``, ``tokens``, ``surprisal``.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attnrnn.training.files import write_text_atomic

STATIC = Path(__file__).parent / "serving" / "static"
TASKS = ("classification", "translation", "summarization", "speech", "language_model")


def write_explorer_html(
    path: str | os.PathLike[str], task: str, records: Sequence[dict[str, Any]], title: str
) -> Path:
    """Write the explorer for ``records`` of ``task`` to ``path`` (atomically); returns
    the path. Non-finite numbers in the records become ``null``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; the explorer draws {', '.join(TASKS)}")
    page = explorer_page(task, records, title)
    path = Path(path)
    write_text_atomic(path, page)
    return path


def explorer_page(task: str, records: Sequence[dict[str, Any]], title: str) -> str:
    """The HTML text of the self-contained explorer (see :func:`write_explorer_html`)."""
    data = {"task": task, "title": title, "records": [finite(record) for record in records]}
    style = (STATIC / "explorer.css").read_text(encoding="utf-8")
    script = (STATIC / "explorer.js").read_text(encoding="utf-8")
    for name, text in (("explorer.css", style), ("explorer.js", script)):
        if any(mark in text.lower() for mark in ("</", "<!--", "<script")):
            raise ValueError(f"{name} cannot be inlined: it holds '</', '<!--' or '<script'")
    heading = html.escape(title)
    count = f"{len(records)} result{'s' if len(records) != 1 else ''}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{heading}</title>\n<style>\n{style}</style>\n</head>\n<body>\n"
        f'<header class="page">\n<h1 data-testid="title">{heading}</h1>\n'
        f"<p>{html.escape(task)}: {count}. Hover or focus a token to see where its "
        "attention went.</p>\n</header>\n"
        '<main>\n<div id="results" data-testid="results" data-state="empty"></div>\n</main>\n'
        "<noscript>This page needs JavaScript to draw the attention.</noscript>\n"
        f'<script type="application/json" id="attnrnn-data">{embedded_json(data)}</script>\n'
        f"<script>\n{script}</script>\n</body>\n</html>\n"
    )


def embedded_json(data: Any) -> str:
    """``data`` as JSON that is safe inside a ``<script>`` element: ``<``, ``>`` and
    ``&`` escaped (``\\u003c`` ...), so ``</script>`` and ``<!--`` cannot appear."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def spectrogram(features: Any, hop_seconds: float) -> dict[str, Any]:
    """The ``spectrogram`` field of a speech record from its features (T, F) (a tensor,
    array or nested list): ``{"hop_seconds", "frames": T, "bins": F, "values": (T, F)
    rounded to 2 decimals}``."""
    values = features.tolist() if hasattr(features, "tolist") else [list(row) for row in features]
    rounded = [[round(float(value), 2) for value in row] for row in values]
    return {
        "hop_seconds": float(hop_seconds),
        "frames": len(rounded),
        "bins": len(rounded[0]) if rounded else 0,
        "values": rounded,
    }


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by ``None`` (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value
