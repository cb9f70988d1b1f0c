"""Charts for pages that stand alone: inline SVG and HTML fragments, no script, no
network, so a page can be mailed, archived or opened years later and still show everything.

Used by ``attnrnn report`` (:mod:`attnrnn.report`) and the diagnostics page of
``attnrnn diagnose``:

- :func:`line_chart`: curves over training steps, one ``<polyline>`` per series;
- :func:`histogram`: the distribution of per-example values (:func:`histogram_bins`);
- :func:`heatmap`: an alignment ``(T, S)`` as a grid of shaded cells;
  :func:`token_shading`: token attention ``(R, S)`` as shaded text;
- :func:`render_sections`: diagnostics sections (summary table, a histogram per
  distribution, notes) as one HTML fragment; :func:`html_page` wraps fragments into a
  document with :data:`STYLE`.

Every text that reaches the page (titles, tokens, labels, notes) is escaped with
:func:`html.escape`; numbers are formatted here. Non-finite numbers and ``None`` are
left out of charts (and counted where it matters), never drawn as zero.
"""

from __future__ import annotations

import html
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnrnn.viz import printable_token

# Series colours, in order (colour-blind-safe Tableau tones).
PALETTE = ("#4e79a7", "#e15759", "#59a14f", "#b07aa1", "#f28e2b", "#76b7b2", "#9c755f", "#edc948")
SHADE = "#08519c"  # attention shading: this blue at an opacity of √weight (:func:`shade`)
CHART_WIDTH, CHART_HEIGHT = 460, 240
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 58, 14, 12, 40
MAX_MARKED_POINTS = 60  # series this short get a dot (with a tooltip) at each point
MAX_LABEL_CHARS = 20
MAX_HEATMAP_CELLS = 160  # rows or columns beyond this are pooled (summed) into blocks
MIN_VISIBLE_SHADE = 0.03  # cells with a lighter shade are not drawn (they look white)

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
  max-width: 1100px; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2rem; }
h3 { font-size: 1.05rem; margin: 1.2rem 0 .3rem; }
.meta, .note, figcaption, .explanation { color: #555; }
table.values { border-collapse: collapse; margin: .4rem 0 .8rem; }
table.values th, table.values td { padding: .15rem .8rem .15rem 0; text-align: left;
  vertical-align: top; border-bottom: 1px solid #eee; }
table.values td.number { font-variant-numeric: tabular-nums; text-align: right; }
.charts { display: flex; flex-wrap: wrap; gap: .8rem 1.5rem; }
figure.chart { margin: 0; }
figure.chart figcaption { font-size: 12px; max-width: 460px; }
.legend span { margin-right: .9rem; white-space: nowrap; }
.legend i { display: inline-block; width: 14px; height: 3px; margin-right: 4px;
  vertical-align: middle; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
svg .title { font-size: 12px; font-weight: 600; }
svg .axis { stroke: #999; stroke-width: 1; }
svg .grid { stroke: #eee; stroke-width: 1; }
.tokens { line-height: 1.9; margin: .2rem 0; }
.tokens span { padding: 1px 2px; border-radius: 2px; }
.tokens .hop { color: #777; font-size: 12px; margin-right: .4rem; }
section.diagnostic { margin-bottom: 1.5rem; }
.example { border-left: 3px solid #ddd; padding: .1rem 0 .3rem .8rem; margin: 1rem 0; }
.example .text { white-space: pre-wrap; }
details summary { cursor: pointer; color: #333; }
code { background: #f4f4f4; padding: 0 .2rem; }
"""


def html_page(title: str, body: str) -> str:
    """A complete, self-contained HTML document: ``title`` (escaped here) and ``body``
    (an HTML fragment, already escaped), styled by :data:`STYLE`."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------- numbers


def format_number(value: Any) -> str:
    """A value for a table: integers (and whole floats) in full (``12,345``), other
    floats to 4 significant digits (one decimal from 10,000 on), ``None`` and non-finite
    numbers as a dash, anything else as JSON."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "\u2013"
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.1f}" if abs(value) >= 10_000 else f"{value:.4g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def finite_or_none(value: Any) -> float | None:
    """``value`` as a float, or ``None`` when it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2 or 5 times a power of ten) from
    at most ``low`` to at least ``high``; an empty range is widened around its value."""
    if high < low:
        low, high = high, low
    if high == low:
        spread = abs(low) * 0.1 or 1.0
        low, high = low - spread, high + spread
    raw = (high - low) / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(index * step, 12) for index in range(first, last + 1)]


def _scale(value: float, low: float, high: float, start: float, length: float) -> float:
    """``value`` in [low, high] mapped linearly to [start, start + length]."""
    return start + (value - low) / (high - low) * length


def _xy(x: float, y: float) -> str:
    return f"{x:.1f},{y:.1f}"


# --------------------------------------------------------------------------- line charts

Point = tuple[float, float]


def line_chart(
    series: Mapping[str, Sequence[Point]],
    title: str,
    x_label: str = "step",
    y_label: str = "",
    caption: str = "",
) -> str:
    """A ``<figure>`` with an SVG line chart: one ``<polyline>`` per series (in the
    order given, coloured by :data:`PALETTE`), a dot with a tooltip at each point of
    short series, round axis ticks, and a legend. Points whose x or y is not a finite
    number are skipped; a series with no points left is left out of the chart."""
    drawn = {
        name: [(float(x), float(y)) for x, y in points if _finite_pair(x, y)]
        for name, points in series.items()
    }
    drawn = {name: points for name, points in drawn.items() if points}
    if not drawn:
        return _figure(f'<p class="note">{html.escape(title)}: no values.</p>', caption)
    xs = [x for points in drawn.values() for x, _ in points]
    ys = [y for points in drawn.values() for _, y in points]
    x_ticks, y_ticks = nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys))
    box = left, top, width, height = _plot_box()

    def position(x: float, y: float) -> tuple[float, float]:
        return (
            _scale(x, x_ticks[0], x_ticks[-1], left, width),
            _scale(y, y_ticks[0], y_ticks[-1], top + height, -height),
        )

    x_range = (x_ticks[0], x_ticks[-1])
    parts = [_axes(x_ticks, y_ticks, x_range, box, x_label, y_label)]
    for index, (name, points) in enumerate(drawn.items()):
        color = PALETTE[index % len(PALETTE)]
        coordinates = [position(x, y) for x, y in points]
        parts.append(
            f'<polyline data-series="{html.escape(name)}" fill="none" stroke="{color}" '
            f'stroke-width="1.8" points="{" ".join(_xy(*xy) for xy in coordinates)}"/>'
        )
        if len(points) <= MAX_MARKED_POINTS:
            parts += [
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.5" fill="{color}"><title>'
                f"{html.escape(name)} at {x_label} {format_number(x)}: {format_number(y)}"
                "</title></circle>"
                for (cx, cy), (x, y) in zip(coordinates, points, strict=True)
            ]
    legend = "".join(
        f'<span><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{html.escape(name)}</span>'
        for i, name in enumerate(drawn)
    )
    svg = _svg(title, CHART_WIDTH, CHART_HEIGHT, "".join(parts))
    return _figure(svg, caption, legend)


def _finite_pair(x: Any, y: Any) -> bool:
    return finite_or_none(x) is not None and finite_or_none(y) is not None


def _axes(
    x_ticks: Sequence[float],
    y_ticks: Sequence[float],
    x_range: tuple[float, float],
    box: tuple[float, float, float, float],
    x_label: str,
    y_label: str,
) -> str:
    """Grid lines at the y ticks, axis lines, tick labels and axis labels of the plot
    area ``box`` = (left, top, width, height) whose x axis spans ``x_range``."""
    left, top, width, height = box
    bottom = top + height
    parts = []
    for tick in y_ticks:
        y = _scale(tick, y_ticks[0], y_ticks[-1], bottom, -height)
        parts.append(
            f'<line class="grid" x1="{left}" x2="{left + width}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end">{format_number(tick)}</text>'
        )
    for tick in x_ticks:
        x = _scale(tick, *x_range, left, width)
        parts.append(
            f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" y2="{bottom + 4}"/>'
            f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{format_number(tick)}</text>'
        )
    parts.append(
        f'<line class="axis" x1="{left}" x2="{left + width}" y1="{bottom}" y2="{bottom}"/>'
        f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{bottom}"/>'
        f'<text x="{left + width / 2:.1f}" y="{bottom + 32}" text-anchor="middle">'
        f"{html.escape(x_label)}</text>"
    )
    if y_label:
        parts.append(
            f'<text transform="translate(12,{top + height / 2:.1f}) rotate(-90)" '
            f'text-anchor="middle">{html.escape(y_label)}</text>'
        )
    return "".join(parts)


def _plot_box() -> tuple[float, float, float, float]:
    """(left, top, width, height) of the plot area of a chart (below its title)."""
    top = MARGIN_TOP + 16
    return (
        MARGIN_LEFT,
        top,
        CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT,
        CHART_HEIGHT - top - MARGIN_BOTTOM,
    )


def _svg(title: str, width: float, height: float, content: str) -> str:
    """An ``<svg>`` element with an accessible title, drawn at its natural size."""
    label = html.escape(title)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{label}">'
        f'<title>{label}</title><text class="title" x="{MARGIN_LEFT}" y="{MARGIN_TOP + 4}">'
        f"{label}</text>{content}</svg>"
    )


def _figure(content: str, caption: str = "", legend: str = "") -> str:
    """``content`` in a ``<figure class="chart">`` with a legend and caption (HTML) below."""
    below = f'<div class="legend">{legend}</div>' if legend else ""
    below += html.escape(caption)
    return (
        f'<figure class="chart">{content}'
        + (f"<figcaption>{below}</figcaption>" if below else "")
        + "</figure>"
    )


# --------------------------------------------------------------------------- histograms


@dataclass(frozen=True)
class Bins:
    """A histogram: ``edges`` (bins + 1, increasing) and the ``counts`` (bins) of the
    values in each bin ``[edges[i], edges[i + 1])``, the last bin closed on the right."""

    edges: list[float]
    counts: list[int]


def histogram_bins(values: Sequence[float], bins: int | None = None) -> Bins:
    """Equal-width bins from the smallest value to the largest (as :func:`numpy.histogram`:
    all-equal values get one range of width 1 around them). ``bins``: how many; by
    default the square root of the number of values, between 5 and 30."""
    if not values:
        raise ValueError("histogram_bins needs at least one value")
    if bins is None:
        bins = min(30, max(5, math.ceil(math.sqrt(len(values)))))
    counts, edges = np.histogram(np.asarray(values, dtype=float), bins=bins)
    return Bins([float(edge) for edge in edges], [int(count) for count in counts])


def histogram(
    values: Sequence[float | None], title: str, bins: int | None = None, x_label: str = ""
) -> str:
    """A ``<figure>`` with an SVG histogram of ``values`` (one ``<rect>`` per bin, with
    its range and count as a tooltip) and a caption: how many values, median, mean,
    range, and how many were missing (``None`` or non-finite, left out)."""
    finite = [number for number in map(finite_or_none, values) if number is not None]
    missing = len(values) - len(finite)
    missing_text = f" ({missing} missing)" if missing else ""
    if not finite:
        text = f"{html.escape(title)}: no values{missing_text}."
        return _figure(f'<p class="note">{text}</p>')
    counts = histogram_bins(finite, bins)
    x_ticks = [t for t in nice_ticks(counts.edges[0], counts.edges[-1]) if _inside(t, counts)]
    y_ticks = nice_ticks(0, max(counts.counts), 4)
    box = left, top, width, height = _plot_box()
    low, high = counts.edges[0], counts.edges[-1]
    bars = []
    for index, count in enumerate(counts.counts):
        start, end = counts.edges[index], counts.edges[index + 1]
        x0, x1 = _scale(start, low, high, left, width), _scale(end, low, high, left, width)
        y = _scale(count, y_ticks[0], y_ticks[-1], top + height, -height)
        closing = "]" if index == len(counts.counts) - 1 else ")"
        bars.append(
            f'<rect x="{x0 + 0.5:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 1, 0.5):.1f}" '
            f'height="{top + height - y:.1f}" fill="{PALETTE[0]}"><title>'
            f"[{format_number(start)}, {format_number(end)}{closing}: {count}</title></rect>"
        )
    axes = _axes(x_ticks, y_ticks, (low, high), box, x_label, "count")
    svg = _svg(title, CHART_WIDTH, CHART_HEIGHT, axes + "".join(bars))
    caption = (
        f"n = {len(finite)}{missing_text}, median {format_number(statistics.median(finite))}, "
        f"mean {format_number(statistics.fmean(finite))}, range "
        f"{format_number(min(finite))} to {format_number(max(finite))}"
    )
    return _figure(svg, caption)


def _inside(tick: float, bins: Bins) -> bool:
    """Whether a tick lies within the bins' range (up to rounding)."""
    span = bins.edges[-1] - bins.edges[0]
    return bins.edges[0] - 1e-9 * span <= tick <= bins.edges[-1] + 1e-9 * span


# --------------------------------------------------------------------------- attention


def token_label(token: str) -> str:
    """A token as a label (not yet escaped): printable, never blank (a space is ``␣``),
    at most :data:`MAX_LABEL_CHARS` characters."""
    if not token.strip():
        return "\u2423" * max(1, min(len(token), MAX_LABEL_CHARS))
    token = printable_token(token)
    return token if len(token) <= MAX_LABEL_CHARS else token[: MAX_LABEL_CHARS - 1] + "\u2026"


def _weights(rows: Sequence[Sequence[float | None]]) -> np.ndarray:
    """Weights as a (R, C) float array, ``None`` and non-finite values as 0."""
    values = [[finite_or_none(value) or 0.0 for value in row] for row in rows]
    if len({len(row) for row in values}) > 1:
        raise ValueError("attention rows of different lengths")
    return np.array(values, dtype=float).reshape(len(values), len(values[0]) if values else 0)


def shade(weight: float) -> float:
    """The opacity that shows an attention weight in [0, 1]: its square root, so that
    a uniform spread stays pale (1/S), a peak is dark, and the shades of different
    examples compare (a shade relative to each row's largest weight would paint a
    uniform row as dark as a peaked one)."""
    return min(1.0, math.sqrt(max(weight, 0.0)))


def token_shading(tokens: Sequence[str], weights: Sequence[Sequence[float | None]]) -> str:
    """Token attention ``(R, S)`` (R hops over S tokens) as text: each token shaded by
    its weight (:func:`shade`), the weight as a tooltip; one line per hop."""
    array = _weights(weights)  # (R, S)
    if array.shape[1] != len(tokens):
        raise ValueError(f"{array.shape[1]} weights per hop but {len(tokens)} tokens")
    lines = []
    for hop, row in enumerate(array):
        spans = []
        for token, weight in zip(tokens, row, strict=True):
            opacity = shade(float(weight))
            text_color = "#fff" if opacity > 0.55 else "#222"
            spans.append(
                f'<span style="background:rgba(8,81,156,{opacity:.3f});color:{text_color}" '
                f'title="{weight:.3f}">{html.escape(token_label(token))}</span>'
            )
        prefix = f'<span class="hop">hop {hop + 1}</span>' if len(array) > 1 else ""
        lines.append(f'<p class="tokens">{prefix}{" ".join(spans)}</p>')
    return "".join(lines)


def heatmap(
    weights: Sequence[Sequence[float | None]],
    row_labels: Sequence[str] | None,
    column_labels: Sequence[str] | None,
    title: str = "",
) -> str:
    """An alignment ``(T, S)`` (rows: output positions, columns: input positions) as an
    SVG grid: each cell shaded by its weight (:func:`shade`), with a tooltip.

    Labels may be ``None`` (positions are numbered). Beyond :data:`MAX_HEATMAP_CELLS`
    rows or columns, neighbours are summed into blocks (a long recording's frames).
    Column labels are drawn only where the cells are wide enough to read them.
    """
    array = _weights(weights)  # (T, S)
    if array.size == 0:
        return f'<p class="note">{html.escape(title)}: no attention to draw.</p>'
    rows = _labels(row_labels, array.shape[0], "row")
    columns = _labels(column_labels, array.shape[1], "column")
    array, rows = _pooled(array, rows)
    transposed, columns = _pooled(array.T, columns)
    array = transposed.T  # (T', S')
    T, S = array.shape
    cell_width = max(3, min(20, 640 // S))
    row_height = max(cell_width, 12)  # tall enough for the row's label
    left = 8 + 7 * max(len(label) for label in rows)
    show_columns = cell_width >= 9
    top = 6 + (int(5.2 * max(len(label) for label in columns)) if show_columns else 0)
    parts = [
        f'<rect x="{left}" y="{top}" width="{S * cell_width}" height="{T * row_height}" '
        'fill="#fff" stroke="#ccc"/>'
    ]
    for i, label in enumerate(rows):
        y = top + i * row_height + row_height / 2 + 4
        parts.append(
            f'<text x="{left - 4}" y="{y:.1f}" text-anchor="end">{html.escape(label)}</text>'
        )
    if show_columns:
        for j, label in enumerate(columns):
            x = left + j * cell_width + cell_width / 2 + 3
            parts.append(
                f'<text transform="translate({x:.1f},{top - 4}) rotate(-60)">'
                f"{html.escape(label)}</text>"
            )
    visible = np.sqrt(np.clip(array, 0.0, None)) >= MIN_VISIBLE_SHADE  # (T', S')
    for i, j in zip(*np.nonzero(visible), strict=True):
        weight = float(array[i, j])
        x, y = left + j * cell_width, top + i * row_height
        parts.append(
            f'<rect x="{x}" y="{y}" width="{cell_width}" height="{row_height}" fill="{SHADE}" '
            f'fill-opacity="{shade(weight):.3f}"><title>'
            f"{html.escape(rows[i])} \u2192 {html.escape(columns[j])}: {weight:.3f}"
            "</title></rect>"
        )
    width, height = left + S * cell_width + 12, top + T * row_height + 8
    label = html.escape(title or "attention")
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{label}" class="heatmap">'
        f"<title>{label}</title>{''.join(parts)}</svg>"
    )
    return _figure(svg, title)


def _labels(labels: Sequence[str] | None, expected: int, side: str) -> list[str]:
    """Readable labels (:func:`token_label`), or position numbers when ``None``."""
    if labels is None:
        return [str(position) for position in range(expected)]
    if len(labels) != expected:
        raise ValueError(f"{expected} {side}s of weights but {len(labels)} {side} labels")
    return [token_label(str(label)) for label in labels]


def _pooled(array: np.ndarray, labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """Rows of ``array`` (N, C) summed in blocks of neighbours so that at most
    :data:`MAX_HEATMAP_CELLS` remain; a block is labelled by its first and last label."""
    count = array.shape[0]
    if count <= MAX_HEATMAP_CELLS:
        return array, labels
    size = math.ceil(count / MAX_HEATMAP_CELLS)
    starts = range(0, count, size)
    pooled = np.stack([array[start : start + size].sum(axis=0) for start in starts])  # (N', C)
    names = [f"{labels[start]}\u2013{labels[min(start + size, count) - 1]}" for start in starts]
    return pooled, names


# --------------------------------------------------------------------------- diagnostics


def values_table(values: Mapping[str, Any]) -> str:
    """A two-column table of named values (numbers right-aligned, :func:`format_number`)."""
    rows = []
    for name, value in values.items():
        kind = ' class="number"' if isinstance(value, int | float) or value is None else ""
        rows.append(
            f"<tr><th>{html.escape(str(name))}</th>"
            f"<td{kind}>{html.escape(format_number(value))}</td></tr>"
        )
    return f'<table class="values">{"".join(rows)}</table>' if rows else ""


def render_sections(sections: Sequence[Mapping[str, Any]]) -> str:
    """Diagnostics sections as one HTML fragment: per section its title (or name), the
    explanation, the summary as a table, each distribution as a :func:`histogram`, and
    the notes. A section is ``{"name", "title", "explanation", "summary": {name: number},
    "distributions": {name: [number | None]}, "notes": [text]}``; all but ``name`` may
    be missing."""
    parts = []
    for section in sections:
        name = str(section.get("name", ""))
        title = str(section.get("title") or name)
        parts.append(f'<section class="diagnostic" id="diagnostic-{html.escape(name)}">')
        parts.append(f"<h3>{html.escape(title)}</h3>")
        if section.get("explanation"):
            parts.append(f'<p class="explanation">{html.escape(str(section["explanation"]))}</p>')
        parts.append(values_table(section.get("summary") or {}))
        distributions = section.get("distributions") or {}
        if distributions:
            charts = (histogram(list(values), str(key)) for key, values in distributions.items())
            parts.append(f'<div class="charts">{"".join(charts)}</div>')
        notes = section.get("notes") or []
        if notes:
            items = "".join(f"<li>{html.escape(str(note))}</li>" for note in notes)
            parts.append(f'<ul class="notes">{items}</ul>')
        parts.append("</section>")
    return "\n".join(parts)
