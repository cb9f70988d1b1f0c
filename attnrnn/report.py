"""``attnrnn report RUN``: one self-contained HTML page about a trained run (no script,
no network; charts are inline SVG from :mod:`attnrnn.html_charts`).

The page shows, each part when the run has it:

- a summary: the task, the model's size and settings, the final scores (results.json;
  before training ends, the best checkpoint's dev scores) and the trainer's counters
  (the ``last`` checkpoint's state: steps, stop reason, time, throughput);
- training curves from metrics.csv: losses, each dev metric, the learning rate, steps
  per second, and any other column it has;
- a few dev examples (test when the run has no dev file), read with the task's own
  reader and answered by the best checkpoint, with their attention drawn;
- the attention diagnostics of ``attnrnn diagnose`` (RUN/diagnostics/diagnostics.json,
  or another file);
- the full configuration.

A missing part (no metrics yet, no dev data on this machine) is a note on the page; a
damaged file is a :class:`~attnrnn.errors.RunError` and no page is written.
"""

from __future__ import annotations

import csv
import html
import math
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import attnrnn
from attnrnn.config import load_yaml, to_dict
from attnrnn.console import format_duration
from attnrnn.data.io import read_json, read_run_json
from attnrnn.errors import AttnrnnError, ConfigError, RunError
from attnrnn.explorer import finite
from attnrnn.html_charts import (
    Point,
    finite_or_none,
    format_number,
    heatmap,
    html_page,
    line_chart,
    render_sections,
    token_shading,
    values_table,
)
from attnrnn.tasks.base import Metric, Task, TrainedModel
from attnrnn.tasks.runs import CONFIG_FILE, RESULTS_FILE, load, read_run_info, run_task
from attnrnn.training import checkpoint
from attnrnn.training.files import READ_FLAGS, reason, write_text_atomic
from attnrnn.training.trainer import METRICS_FILE

REPORT_FILE = "report.html"
DIAGNOSTICS_FILE = "diagnostics/diagnostics.json"
DEFAULT_EXAMPLES = 4
MAX_METRICS_BYTES = 256 << 20
# metrics.csv columns that are the x axis or bookkeeping, not curves.
NOT_CURVES = ("step", "epoch", "elapsed_seconds")
# The field of an example that the task's predict takes, tried in order (speech
# utterances have audio and text; text examples have text), and the fields of its answer.
INPUT_FIELDS = ("audio", "source", "text")
REFERENCE_FIELDS = ("label", "target", "references", "text")
# The fields of a result record (model.record) that are its answer.
OUTPUT_FIELDS = ("label", "translation", "summary", "text", "perplexity")
STOP_REASONS = {
    "epochs": "all epochs done",
    "budget": "trainer.max_steps or max_minutes reached",
    "early_stopping": "early stopping (no dev gain)",
    None: "not finished (training, interrupted or killed)",
}


def write_report(
    run: str | Path,
    output: str | Path | None = None,
    diagnostics: str | Path | None = None,
    examples: int = DEFAULT_EXAMPLES,
    device: str = "auto",
) -> Path:
    """Write the report of ``run`` to ``output`` (default ``RUN/report.html``),
    atomically: the whole page is made before anything is written. Returns the path.

    Args:
        diagnostics: a diagnostics.json to include (default: the run's own, when there).
        examples: how many dev examples to show with their attention (0: none).
        device: where the model is loaded (``auto``, ``cpu``, ``cuda:0``...).
    """
    run = Path(run)
    page = report_page(run, diagnostics, examples, device)
    path = Path(output) if output is not None else run / REPORT_FILE
    write_text_atomic(path, page)
    return path


def report_page(
    run: Path,
    diagnostics: str | Path | None = None,
    examples: int = DEFAULT_EXAMPLES,
    device: str = "auto",
) -> str:
    """The HTML text of the report (see :func:`write_report`)."""
    if examples < 0:
        raise ConfigError(f"--examples must be 0 or more, got {examples}")
    task = run_task(run)
    info = read_run_info(run)
    config = task.config_from_dict(load_yaml(run / CONFIG_FILE))
    metric = task.metric(config)
    metrics = read_metrics(run / METRICS_FILE)
    found = read_diagnostics(Path(diagnostics)) if diagnostics else run_diagnostics(run)
    model = load_best(run, device)
    name = run.resolve().name or str(run)
    parts = [
        f"<h1>{html.escape(name)}: a {html.escape(task.name)} run</h1>",
        f'<p class="meta">{html.escape(str(run))}; report written '
        f"{datetime.now():%Y-%m-%d %H:%M} by attnrnn {html.escape(attnrnn.__version__)}</p>",
        _navigation(found is not None),
        summary_section(run, task, config, info, model),
        curves_section(metrics, metric),
        examples_section(model, examples, run),
    ]
    if found is not None:
        parts.append(diagnostics_section(found))
    parts.append(configuration_section(to_dict(config)))
    return html_page(f"{name}: attnrnn report", "\n".join(parts))


def _navigation(with_diagnostics: bool) -> str:
    names = ["summary", "curves", "examples", *(["diagnostics"] if with_diagnostics else [])]
    links = " \u00b7 ".join(f'<a href="#{name}">{name}</a>' for name in [*names, "configuration"])
    return f'<p class="meta">{links}</p>'


# --------------------------------------------------------------------------- the summary


def summary_section(
    run: Path, task: Task, config: Any, info: Mapping[str, Any], model: TrainedModel | None
) -> str:
    """Task and model, final scores, and the trainer's counters."""
    metric = task.metric(config)
    direction = "higher" if metric.higher_is_better else "lower"
    about: dict[str, Any] = {
        "task": task.name,
        "written by": f"attnrnn {info.get('attnrnn_version', '?')}",
        "parameters": sum(p.numel() for p in model.model.parameters()) if model else None,
        "best checkpoint by": f"dev {metric.name} ({direction} is better)",
    }
    for split in ("train", "dev", "test"):
        location = getattr(config.data, split, None)
        if location:
            about[f"{split} data"] = location if isinstance(location, str) else ", ".join(location)
    model_settings = flatten(to_dict(config).get("model") or {})
    parts = [
        '<section id="summary"><h2>Summary</h2>',
        values_table(about),
        "<h3>Model</h3>",
        values_table(model_settings),
        "<h3>Final scores</h3>",
        scores_table(run),
        "<h3>Training</h3>",
        training_table(run, metric),
        "</section>",
    ]
    return "\n".join(parts)


def scores_table(run: Path) -> str:
    """results.json (the best checkpoint's dev and test scores); before training ends,
    the dev scores saved with the best checkpoint."""
    if os.path.lexists(run / RESULTS_FILE):
        return values_table(read_run_json(run, RESULTS_FILE, "results"))
    if not checkpoint.has_checkpoint(run / "best"):
        return '<p class="note">No scores yet: no evaluation has run.</p>'
    scores = checkpoint.read_state(run / "best").get("metrics") or {}
    note = '<p class="note">No results.json yet (training has not finished): the dev scores '
    note += "of the best checkpoint so far.</p>"
    return note + values_table({f"dev_{name}": value for name, value in scores.items()})


def training_table(run: Path, metric: Metric) -> str:
    """The counters of the ``last`` checkpoint: steps, best score, why training stopped,
    time and throughput."""
    if not checkpoint.has_checkpoint(run / "last"):
        return '<p class="note">No training state (an exported bundle, or no checkpoint yet).</p>'
    state = checkpoint.read_state(run / "last")
    seconds = finite_or_none(state.get("elapsed_seconds")) or 0.0
    units = state.get("units")
    rows: dict[str, Any] = {
        "steps": state.get("step"),
        "epochs done": state.get("epoch"),
        f"best dev {metric.name}": state.get("best_metric"),
        "at step": state.get("best_step"),
        "stopped": STOP_REASONS.get(state.get("stop_reason"), str(state.get("stop_reason"))),
        "training time": format_duration(seconds),
        "units trained on (tokens, examples or frames)": units,
        "units per second": units / seconds if isinstance(units, int) and seconds > 0 else None,
        "skipped steps (non-finite loss)": state.get("skipped_steps"),
    }
    return values_table(rows)


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as ``{"encoder.hidden_size": 256, ...}``."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def configuration_section(config: Mapping[str, Any]) -> str:
    table = values_table(flatten(config))
    return (
        '<section id="configuration"><h2>Configuration</h2><details><summary>config.yaml, '
        f"every key (defaults filled in)</summary>{table}</details></section>"
    )


# --------------------------------------------------------------------------- curves


@dataclass
class MetricsTable:
    """The rows of metrics.csv (one per evaluation), every value a float or ``None``
    (empty or not finite)."""

    columns: list[str]
    rows: list[dict[str, float | None]]

    @property
    def steps(self) -> list[float]:
        return [step for row in self.rows if (step := row["step"]) is not None]

    def series(self, column: str) -> list[Point]:
        """(step, value) of every row where ``column`` has a value."""
        return [
            (row["step"], value)
            for row in self.rows
            if row["step"] is not None and (value := row.get(column)) is not None
        ]


def read_metrics(path: Path) -> MetricsTable | None:
    """metrics.csv, or ``None`` when there is none (no evaluation yet, an exported bundle).

    A file that is not a regular file, not UTF-8 CSV with a ``step`` column, or has a
    row of the wrong width or a value that is not a number is a :class:`RunError`
    naming the line.
    """
    text = _read_text(path, "metrics")
    if text is None:
        return None
    lines = list(csv.reader(text.splitlines()))
    if not lines:
        return MetricsTable(["step"], [])
    columns = lines[0]
    if "step" not in columns:
        raise RunError(f"{path}: damaged (its first line is not a header with a step column)")
    rows = []
    for number, fields in enumerate(lines[1:], start=2):
        if len(fields) != len(columns):
            raise RunError(
                f"{path}:{number}: damaged ({len(fields)} values for {len(columns)} columns)"
            )
        row = {
            name: _number(value, path, number, name)
            for name, value in zip(columns, fields, strict=True)
        }
        if row["step"] is None:
            raise RunError(f"{path}:{number}: damaged (no step number)")
        rows.append(row)
    return MetricsTable(columns, rows)


def _read_text(path: Path, what: str) -> str | None:
    """The UTF-8 text of a run's regular file, never through a link nor hanging on a
    FIFO; ``None`` when there is no such file."""
    if not os.path.lexists(path):
        return None
    try:
        descriptor = os.open(path, READ_FLAGS)
    except OSError as error:
        raise RunError(f"cannot read {path}: {reason(error)}") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise RunError(f"{path}: the {what} file is not a regular file")
        if status.st_size > MAX_METRICS_BYTES:
            raise RunError(f"{path}: the {what} file is larger than {MAX_METRICS_BYTES} bytes")
        with os.fdopen(os.dup(descriptor), "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise RunError(f"cannot read {path}: {reason(error)}") from None
    finally:
        os.close(descriptor)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RunError(f"{path}: damaged (not UTF-8 at byte {error.start})") from None


def _number(text: str, path: Path, line: int, column: str) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise RunError(
            f"{path}:{line}: damaged ({column} is {text[:40]!r}, not a number)"
        ) from None
    return value if math.isfinite(value) else None


def curves_section(table: MetricsTable | None, metric: Metric) -> str:
    """The training curves of metrics.csv (:func:`training_charts`)."""
    heading = '<section id="curves"><h2>Training curves</h2>'
    if table is None or not table.rows:
        note = "No metrics.csv rows yet: a row is written at each evaluation on dev."
        return f'{heading}<p class="note">{note}</p></section>'
    first, last = format_number(min(table.steps)), format_number(max(table.steps))
    count = len(table.rows)
    about = (
        f"{count} evaluation{'s' if count != 1 else ''} "
        f"({f'steps {first} to {last}' if count > 1 else f'step {first}'}); "
        "train_loss is the mean since the previous evaluation."
    )
    charts = "".join(training_charts(table, metric))
    return f'{heading}<p class="note">{about}</p><div class="charts">{charts}</div></section>'


def training_charts(table: MetricsTable, metric: Metric) -> list[str]:
    """Line charts of metrics.csv against the step: the losses together, each dev
    metric (the one that selects the best checkpoint first), the learning rate, steps
    per second, then every other column. Columns a run lacks are simply not drawn."""
    columns = [column for column in table.columns if column not in NOT_CURVES]
    losses = [column for column in columns if column.endswith("loss")]
    selected = f"dev_{metric.name}"
    dev = sorted(
        (c for c in columns if c.startswith("dev_") and c not in losses),
        key=lambda c: c != selected,
    )
    charts = []
    if losses:
        charts.append(line_chart({c: table.series(c) for c in losses}, "loss", y_label="loss"))
    for column in dev:
        best = " (selects the best checkpoint)" if column == selected else ""
        charts.append(line_chart({column: table.series(column)}, column + best))
    if "learning_rate" in columns:
        charts.append(line_chart({"learning_rate": table.series("learning_rate")}, "learning rate"))
    speed = steps_per_second(table)
    if speed:
        caption = "between evaluations, evaluation time included"
        charts.append(line_chart({"steps per second": speed}, "throughput", caption=caption))
    drawn = {*losses, *dev, "learning_rate"}
    charts += [line_chart({c: table.series(c)}, c) for c in columns if c not in drawn]
    return charts


def steps_per_second(table: MetricsTable) -> list[Point]:
    """Training steps per second of wall time between consecutive evaluations (the
    first from the start), from the step and elapsed_seconds columns."""
    points = []
    previous_step, previous_seconds = 0.0, 0.0
    for step, seconds in table.series("elapsed_seconds"):
        if seconds > previous_seconds and step > previous_step:
            points.append((step, (step - previous_step) / (seconds - previous_seconds)))
        previous_step, previous_seconds = step, seconds
    return points


# --------------------------------------------------------------------------- examples


@dataclass
class ReportExample:
    """One example of the run's data: where it is from, what the model was given, the
    reference answer (if the data has one), and the model's result record."""

    origin: str
    input: str
    reference: str | None
    record: dict[str, Any]


def load_best(run: Path, device: str) -> TrainedModel | None:
    """The best checkpoint, or ``None`` when the run has none yet."""
    if not checkpoint.has_checkpoint(run / "best"):
        return None
    return load(run, device=device)


def report_examples(model: TrainedModel, count: int) -> tuple[list[ReportExample], str]:
    """``count`` examples spread over the run's dev data (else its test data), answered
    by ``model``, and a sentence saying where they come from (or why there are none)."""
    data = model.config.data
    dev, test = getattr(data, "dev", None), getattr(data, "test", None)
    role, location = ("dev", dev) if dev else ("test", test)
    if not location:
        return [], "The run has no dev or test file to take examples from."
    location = model.resolve(location) if isinstance(location, str) else location
    shown = location if isinstance(location, str) else ", ".join(location)
    try:
        examples = model.task.read_split(model.config, location, role)
        if not examples:
            return [], f"The {role} data ({shown}) has no examples."
        shown_count = min(count, len(examples))
        chosen = [examples[i * len(examples) // shown_count] for i in range(shown_count)]
        parts = [example_parts(example) for example in chosen]
        if any(given is None for given, _ in parts):
            return [], f"Examples of {model.task.name} runs cannot be shown here."
        results = model.predict([given for given, _ in parts])
    except AttnrnnError as error:
        return [], f"No examples: the {role} data cannot be used here ({error})."
    shown_examples = [
        ReportExample(_origin(example), str(given), reference, finite(model.record(result)))
        for example, (given, reference), result in zip(chosen, parts, results, strict=True)
    ]
    about = f"{len(chosen)} of the {len(examples)} {role} examples ({shown}), spread evenly."
    return shown_examples, about


def example_parts(example: Any) -> tuple[Any, str | None]:
    """What the task's predict takes from an example (:data:`INPUT_FIELDS`; a plain
    string is itself) and its reference answer, if any (the first of several)."""
    if isinstance(example, str):
        return example, None
    field = next((name for name in INPUT_FIELDS if hasattr(example, name)), None)
    if field is None:
        return None, None
    reference = next(
        (
            getattr(example, name)
            for name in REFERENCE_FIELDS
            if name != field and hasattr(example, name)
        ),
        None,
    )
    if isinstance(reference, list | tuple):
        reference = reference[0] if reference else None
    return getattr(example, field), None if reference is None else str(reference)


def _origin(example: Any) -> str:
    return str(getattr(example, "origin", ""))


def examples_section(model: TrainedModel | None, count: int, run: Path) -> str:
    heading = '<section id="examples"><h2>Examples and their attention</h2>'
    if count == 0:
        return f'{heading}<p class="note">Not asked for (--examples 0).</p></section>'
    if model is None:
        note = f"No checkpoint yet in {run}: the examples need a trained model."
        return f'{heading}<p class="note">{html.escape(note)}</p></section>'
    examples, about = report_examples(model, count)
    parts = [heading, f'<p class="note">{html.escape(about)}</p>']
    parts += [render_example(example) for example in examples]
    parts.append("</section>")
    return "\n".join(parts)


def render_example(example: ReportExample) -> str:
    """An example's input, reference and answer, and its attention."""
    record = example.record
    output_field = next((name for name in OUTPUT_FIELDS if name in record), None)
    answer = format_number(record[output_field]) if output_field else ""
    details = []
    probabilities = record.get("probabilities")
    if isinstance(probabilities, dict) and record.get("label") in probabilities:
        details.append(f"probability {format_number(probabilities[record['label']])}")
    if finite_or_none(record.get("score")) is not None:
        details.append(f"score {format_number(record['score'])}")
    extra = f" ({', '.join(details)})" if details else ""
    rows = [
        f'<p class="meta">{html.escape(example.origin)}</p>',
        f'<p><b>input</b>: <span class="text">{html.escape(example.input)}</span></p>',
    ]
    if example.reference is not None:
        rows.append(
            f'<p><b>reference</b>: <span class="text">{html.escape(example.reference)}</span></p>'
        )
    rows.append(
        f"<p><b>{html.escape(output_field or 'output')}</b>: "
        f'<span class="text">{html.escape(answer)}</span>{html.escape(extra)}</p>'
    )
    rows.append(attention_figure(record))
    return f'<div class="example">{"".join(rows)}</div>'


def attention_figure(record: Mapping[str, Any]) -> str:
    """The attention of a result record (the shapes of :mod:`attnrnn.explorer`): an
    alignment (T, S) between output and source tokens; a classifier's hops (R, S) over
    its tokens as shaded text; a transcript's tokens over encoder frames (U, T')."""
    attention = record.get("attention")
    if not attention:
        return '<p class="note">This task\'s results have no attention.</p>'
    if "source_tokens" in record:
        targets = record.get("target_tokens") or record.get("tokens")
        title = "attention: output tokens (rows) over source tokens (columns)"
        return heatmap(attention, targets, record["source_tokens"], title)
    if "label" in record:
        return token_shading(record["tokens"], attention)
    title = "attention: output tokens (rows) over encoder frames (columns)"
    return heatmap(attention, record.get("tokens"), None, title)


# --------------------------------------------------------------------------- diagnostics


@dataclass
class Diagnostics:
    """A diagnostics.json: its sections, and the facts beside them (data, examples,
    attnrnn version) when the document is an object."""

    sections: list[dict[str, Any]]
    facts: dict[str, Any]


def run_diagnostics(run: Path) -> Diagnostics | None:
    """RUN/diagnostics/diagnostics.json, or ``None`` when there is none."""
    if not os.path.lexists(run / DIAGNOSTICS_FILE):
        return None
    document = read_run_json(run, DIAGNOSTICS_FILE, "diagnostics", expected=object)
    return diagnostics_document(document, run / DIAGNOSTICS_FILE)


def read_diagnostics(path: Path) -> Diagnostics:
    """A diagnostics.json anywhere (see :func:`diagnostics_document`)."""
    return diagnostics_document(read_json(path, "diagnostics", expected=object), path)


def diagnostics_document(document: Any, path: Path) -> Diagnostics:
    """The sections of a diagnostics document (a list of sections, or an object with
    ``sections`` and facts) and its facts (the object's other plain values). Each
    section is a JSON object with a ``name``; ``summary`` and ``distributions`` are
    objects and ``notes`` a list when present. Anything else is a :class:`RunError`
    naming the file."""
    sections = document.get("sections") if isinstance(document, dict) else document
    if not isinstance(sections, list):
        raise RunError(f"{path}: not diagnostics (a list of sections, or an object with one)")
    for number, section in enumerate(sections, start=1):
        problem = _section_problem(section)
        if problem:
            raise RunError(f"{path}: section {number} is not a diagnostics section ({problem})")
    facts = {
        key: value
        for key, value in (document.items() if isinstance(document, dict) else ())
        if key != "sections" and (value is None or isinstance(value, str | int | float))
    }
    return Diagnostics(sections, facts)


def _section_problem(section: Any) -> str | None:
    if not isinstance(section, dict):
        return "not a JSON object"
    if not isinstance(section.get("name"), str):
        return "no name"
    for key, kind in (("summary", dict), ("distributions", dict), ("notes", list)):
        if key in section and not isinstance(section[key], kind):
            return f"{key} is not a JSON {'object' if kind is dict else 'array'}"
    for key, values in (section.get("distributions") or {}).items():
        if not isinstance(values, list):
            return f"distribution {key!r} is not a list of numbers"
    return None


def diagnostics_section(diagnostics: Diagnostics) -> str:
    body = render_sections(diagnostics.sections)
    if not body:
        body = '<p class="note">The diagnostics file has no sections.</p>'
    facts = values_table(diagnostics.facts)
    return f'<section id="diagnostics"><h2>Attention diagnostics</h2>{facts}{body}</section>'
