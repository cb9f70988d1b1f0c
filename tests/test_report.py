"""``attnrnn report``: the page of tiny classification and translation runs (curves,
final scores, examples with their attention, diagnostics, escaping), one-line errors
with no page written, and the chart helpers of :mod:`attnrnn.html_charts` on known data."""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import re
import shutil
from pathlib import Path

import pytest
import yaml

from attnrnn.cli import main
from attnrnn.data.synthetic import make_reviews, write_tsv
from attnrnn.html_charts import (
    MARGIN_LEFT,
    MAX_HEATMAP_CELLS,
    Bins,
    format_number,
    heatmap,
    histogram,
    histogram_bins,
    line_chart,
    nice_ticks,
    render_sections,
    token_shading,
)
from attnrnn.report import MetricsTable, read_metrics, training_charts
from attnrnn.tasks.base import Metric

MARKUP = "<script>alert(1)</script> the acting was superb"
WORDS = ("red", "blue", "cat", "dog", "sat", "ran", "big", "old")


def run_cli(capsys, *arguments):
    status = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def train_quietly(config: dict, directory: Path) -> Path:
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    run = directory / "run"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["train", str(path), "-o", str(run)]) == 0
    return run


def series_names(page: str) -> set[str]:
    return set(re.findall(r'<polyline data-series="([^"]+)"', page))


@pytest.fixture(scope="module")
def classification_run(tmp_path_factory, tiny_config) -> Path:
    """A classifier trained 4 steps, evaluated every 2; its first dev text holds markup."""
    directory = tmp_path_factory.mktemp("report-classification")
    files = {}
    for seed, (split, count) in enumerate({"train": 200, "dev": 30, "test": 30}.items()):
        files[split] = directory / f"{split}.tsv"
        write_tsv(make_reviews(count, seed=seed + 20), files[split])
    header, *rows = files["dev"].read_text().splitlines(keepends=True)
    files["dev"].write_text("".join([header, f"{MARKUP}\tpositive\n", *rows]))
    config = tiny_config(files, epochs=1, max_steps=4, eval_every_steps=2)
    return train_quietly(config, directory)


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory) -> Path:
    """A word-level translator (reverse the words, upper-case them) trained 4 steps."""
    directory = tmp_path_factory.mktemp("report-translation")
    for seed, (split, count) in enumerate({"train": 120, "dev": 6}.items()):
        rng = random.Random(seed)
        pairs = [[rng.choice(WORDS) for _ in range(rng.randint(2, 4))] for _ in range(count)]
        (directory / f"{split}.src").write_text("".join(" ".join(p) + "\n" for p in pairs))
        targets = "".join(" ".join(reversed(p)).upper() + "\n" for p in pairs)
        (directory / f"{split}.tgt").write_text(targets)
    config = {
        "task": "translation",
        "data": {"train": str(directory / "train"), "dev": str(directory / "dev")},
        "tokenizer": {"type": "word"},
        "model": {
            "embedding_size": 8,
            "encoder": {"hidden_size": 8},
            "decoder": {"hidden_size": 16},
        },
        "trainer": {
            "epochs": 1,
            "max_steps": 4,
            "eval_every_steps": 2,
            "batch_tokens": 200,
            "num_threads": 1,
            "progress": False,
        },
        "search": {"beam_size": 1, "max_length_offset": 2},
    }
    return train_quietly(config, directory)


def copy_run(run: Path, tmp_path: Path) -> Path:
    """A copy of ``run`` to change, without the report another test may have written."""
    copy = Path(shutil.copytree(run, tmp_path / "copy"))
    (copy / "report.html").unlink(missing_ok=True)
    return copy


DIAGNOSTICS = [
    {
        "name": "agreement",
        "title": "Attention <vs> importance",
        "explanation": "Kendall tau between attention & integrated gradients.",
        "summary": {"tau_median": 0.3125, "examples": 5, "skipped": None},
        "distributions": {"tau": [0.1, 0.2, 0.3, 0.5, None], "tvd": [0.0, 0.01]},
        "notes": ["2 texts <b>skipped</b>"],
    },
    {"name": "entropy"},
]


# --------------------------------------------------------------------------- whole pages


def test_report_of_a_classification_run(classification_run, capsys):
    run = classification_run
    status, out, err = run_cli(capsys, "report", run, "--device", "cpu")
    assert status == 0, err
    assert out == f"wrote {run / 'report.html'}\n"
    page = (run / "report.html").read_text(encoding="utf-8")
    assert not [path.name for path in run.iterdir() if path.name.startswith(".report")]
    # Curves: one polyline per metrics.csv series, and the derived throughput.
    assert series_names(page) >= {
        "train_loss",
        "dev_loss",
        "dev_accuracy",
        "dev_macro_f1",
        "learning_rate",
        "steps per second",
    }
    assert "dev_accuracy (selects the best checkpoint)" in page
    # Final scores from results.json, and the trainer's counters.
    results = json.loads((run / "results.json").read_text())
    for name, value in results.items():
        assert f'<th>{name}</th><td class="number">{format_number(value)}</td>' in page
    assert '<th>steps</th><td class="number">4</td>' in page
    assert re.search(r'<th>parameters</th><td class="number">[\d,]+</td>', page)
    # Four dev examples with their attention; the markup of the first is shown, escaped.
    assert page.count('<div class="example">') == 4
    assert page.count('<p class="tokens">') == 4
    assert "&lt;script&gt;alert(1)&lt;/script&gt; the acting was superb" in page
    assert "<script" not in page.lower() and "http" not in page.replace("http://www.w3", "")
    assert 'id="diagnostics"' not in page


def test_report_shows_the_diagnostics_of_the_run_or_of_a_file(classification_run, tmp_path, capsys):
    run = copy_run(classification_run, tmp_path)
    (run / "diagnostics").mkdir()
    (run / "diagnostics" / "diagnostics.json").write_text(json.dumps(DIAGNOSTICS))
    output = tmp_path / "page.html"
    status, out, err = run_cli(capsys, "report", run, "--examples", "0", "-o", output)
    assert status == 0, err
    assert out == f"wrote {output}\n" and not (run / "report.html").exists()
    page = output.read_text(encoding="utf-8")
    assert 'id="diagnostics"' in page and "<h3>Attention &lt;vs&gt; importance</h3>" in page
    assert "<h3>entropy</h3>" in page  # a section with only a name
    assert '<th>tau_median</th><td class="number">0.3125</td>' in page
    assert "n = 4 (1 missing), median 0.25" in page
    assert "<li>2 texts &lt;b&gt;skipped&lt;/b&gt;</li>" in page
    assert "Not asked for (--examples 0)." in page

    # Another file, in the form {"sections": [...], ...other facts}.
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"command": "attnrnn diagnose", "sections": DIAGNOSTICS[1:]}))
    status, _, err = run_cli(capsys, "report", run, "--examples", "0", "--diagnostics", other)
    assert status == 0, err
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "<h3>entropy</h3>" in page and "Attention &lt;vs&gt; importance" not in page
    assert "<th>command</th><td>attnrnn diagnose</td>" in page


def test_report_of_a_translation_run(translation_run, tmp_path, capsys):
    output = tmp_path / "translation.html"
    status, _, err = run_cli(capsys, "report", translation_run, "--device", "cpu", "-o", output)
    assert status == 0, err
    page = output.read_text(encoding="utf-8")
    assert {"train_loss", "dev_loss", "dev_bleu", "learning_rate"} <= series_names(page)
    assert page.count('<div class="example">') == 4
    assert page.count('class="heatmap"') == 4
    dev_sources = (translation_run.parent / "dev.src").read_text().split()
    shown = set(re.findall(r'rotate\(-60\)">([^<]+)</text>', page))  # column labels
    assert shown and shown <= set(dev_sources)
    assert re.search(r"<b>translation</b>", page) and "<b>reference</b>" in page

    # More examples asked for than dev has: each of them once.
    status, _, err = run_cli(capsys, "report", translation_run, "--examples", 10, "-o", output)
    assert status == 0, err
    origins = re.findall(r'<div class="example"><p class="meta">([^<]+)</p>', output.read_text())
    assert len(origins) == len(set(origins)) == 6


def test_report_without_metrics_or_results_says_so(classification_run, tmp_path, capsys):
    run = copy_run(classification_run, tmp_path)
    (run / "metrics.csv").unlink()
    (run / "results.json").unlink()
    status, _, err = run_cli(capsys, "report", run, "--examples", "0")
    assert status == 0, err
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "No metrics.csv rows yet" in page and "<polyline" not in page
    assert "the dev scores of the best checkpoint so far" in page
    assert "<th>dev_accuracy</th>" in page


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ("epoch,loss\n0,1.0\n", "metrics.csv: damaged (its first line is not a header"),
        ("step,loss\n2,abc\n", "metrics.csv:2: damaged (loss is 'abc', not a number)"),
        ("step,loss\n2,1.0,7\n", "metrics.csv:2: damaged (3 values for 2 columns)"),
        ("step,loss\n,1.0\n", "metrics.csv:2: damaged (no step number)"),
        (b"step,loss\n2,\xff\n", "metrics.csv: damaged (not UTF-8"),
    ],
)
def test_a_damaged_metrics_file_is_one_error_and_no_page(
    classification_run, tmp_path, capsys, metrics, message
):
    run = copy_run(classification_run, tmp_path)
    path = run / "metrics.csv"
    path.write_bytes(metrics if isinstance(metrics, bytes) else metrics.encode())
    status, out, err = run_cli(capsys, "report", run, "--examples", "0")
    assert status == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not [p.name for p in run.iterdir() if "report" in p.name]


def test_user_errors_are_one_line_and_write_nothing(classification_run, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    not_diagnostics = tmp_path / "not.json"
    not_diagnostics.write_text(json.dumps({"summary": {}}))
    unnamed = tmp_path / "unnamed.json"
    unnamed.write_text(json.dumps([{"title": "no name"}]))
    cases = [
        ((tmp_path / "missing",), "no such run directory"),
        ((tmp_path,), "not a run directory"),
        ((classification_run, "-o", blocker / "report.html"), "cannot write"),
        ((classification_run, "--diagnostics", tmp_path / "nope.json"), "file not found"),
        ((classification_run, "--diagnostics", not_diagnostics), "not diagnostics"),
        ((classification_run, "--diagnostics", unnamed), "section 1 is not a diagnostics"),
        ((classification_run, "--examples", "-1"), "--examples must be 0 or more"),
    ]
    before = sorted(path.name for path in classification_run.iterdir())
    for arguments, message in cases:
        status, out, err = run_cli(capsys, "report", *arguments, "--device", "cpu")
        assert status == 2 and out == "", arguments
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert message in err, err
    assert sorted(path.name for path in classification_run.iterdir()) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "file.txt",
        "not.json",
        "unnamed.json",
    ]


# --------------------------------------------------------------------------- metrics.csv


def test_read_metrics_keeps_gaps_and_charts_only_the_columns_there(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("step,elapsed_seconds,dev_bleu,dev_loss\n10,2.0,1.5,nan\n20,3.0,,4.0\n")
    table = read_metrics(path)
    assert table is not None and table.columns == [
        "step",
        "elapsed_seconds",
        "dev_bleu",
        "dev_loss",
    ]
    assert table.series("dev_bleu") == [(10.0, 1.5)]
    assert table.series("dev_loss") == [(20.0, 4.0)]
    charts = "".join(training_charts(table, Metric("bleu", higher_is_better=True)))
    assert series_names(charts) == {"dev_loss", "dev_bleu", "steps per second"}
    assert "learning rate" not in charts
    assert read_metrics(tmp_path / "none.csv") is None


def test_training_charts_put_the_selecting_metric_first_and_draw_unknown_columns():
    rows = [{"step": 1.0, "dev_chrf": 3.0, "dev_bleu": 1.0, "tokens_per_second": 9.0}]
    table = MetricsTable(["step", "dev_chrf", "dev_bleu", "tokens_per_second"], rows)
    charts = training_charts(table, Metric("bleu", higher_is_better=True))
    assert [series_names(chart) for chart in charts] == [
        {"dev_bleu"},
        {"dev_chrf"},
        {"tokens_per_second"},
    ]


# --------------------------------------------------------------------------- chart helpers


def test_histogram_bins_on_known_values():
    assert histogram_bins([0.0, 0.1, 0.2, 0.5, 0.9, 1.0], bins=2) == Bins([0.0, 0.5, 1.0], [3, 3])
    assert histogram_bins([1, 2, 2, 3, 3, 3], bins=3).counts == [1, 2, 3]
    same = histogram_bins([0.25] * 7, bins=4)
    assert sum(same.counts) == 7 and same.edges[0] < 0.25 < same.edges[-1]
    assert len(histogram_bins(list(range(100))).counts) == 10  # sqrt(n) bins
    with pytest.raises(ValueError):
        histogram_bins([])


def test_histogram_draws_a_bar_per_bin_and_counts_missing_values():
    figure = histogram([1, 2, 2, 3, 3, 3, None, math.nan], "tau <1>", bins=3)
    counts = re.findall(r"<rect [^>]*><title>\[[^<]+[)\]]: (\d+)</title>", figure)
    assert counts == ["1", "2", "3"]
    assert "n = 6 (2 missing), median 2.5, mean 2.333, range 1 to 3" in figure
    assert "tau &lt;1&gt;" in figure and "tau <1>" not in figure
    assert "no values (1 missing)" in histogram([None], "empty")


def test_line_chart_has_a_polyline_per_series_on_a_shared_scale():
    figure = line_chart(
        {
            "a": [(0, 0.0), (1, 1.0), (2, 4.0)],
            "b <x>": [(0, 1.0), (1, math.nan), (2, 3.0)],
            "c": [],
        },
        "loss",
    )
    lines = dict(re.findall(r'<polyline data-series="([^"]+)"[^>]* points="([^"]+)"', figure))
    assert set(lines) == {"a", "b &lt;x&gt;"}  # no points: no line
    a = [tuple(map(float, point.split(","))) for point in lines["a"].split()]
    assert len(a) == 3 and len(lines["b &lt;x&gt;"].split()) == 2
    assert a[0][0] == MARGIN_LEFT  # x = 0 is the first tick
    assert a[0][1] > a[1][1] > a[2][1]  # rising values go up the page
    assert "no values" in line_chart({"a": [(1, math.inf)]}, "empty")


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0, 1) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0.3, 9.7) == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    ticks = nice_ticks(3, 3)
    assert ticks[0] < 3 < ticks[-1]


def test_attention_drawings_escape_tokens_and_pool_long_inputs():
    shaded = token_shading(["<b>", "ok"], [[0.75, 0.25]])
    assert "&lt;b&gt;" in shaded and "<b>" not in shaded and 'title="0.750"' in shaded
    with pytest.raises(ValueError):
        token_shading(["one"], [[0.5, 0.5]])
    grid = heatmap([[1.0, 0.0], [0.0, 1.0]], ["x", "<y>"], ["s1", "s2"], "t")
    assert grid.count("fill-opacity") == 2  # zero weights are not drawn
    assert "&lt;y&gt; \u2192 s2: 1.000" in grid
    frames = 3 * MAX_HEATMAP_CELLS + 1
    long = heatmap([[1.0 / frames] * frames], ["a"], None, "speech")
    cells = re.findall(r"<title>a \u2192 (\d+)\u2013(\d+): ([\d.]+)</title>", long)
    assert len(cells) <= MAX_HEATMAP_CELLS and cells[0][:2] == ("0", "3")


def test_render_sections_escapes_and_draws_each_distribution():
    fragment = render_sections(DIAGNOSTICS)
    assert fragment.count('<section class="diagnostic"') == 2
    assert fragment.count('<figure class="chart">') == 2  # tau and tvd
    assert "Kendall tau between attention &amp; integrated gradients." in fragment
    assert '<th>skipped</th><td class="number">\u2013</td>' in fragment
    assert "<b>" not in fragment
