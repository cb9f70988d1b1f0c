"""Terminal behaviour: colour only on a terminal without NO_COLOR; progress lines off a terminal."""

from __future__ import annotations

import io

from attnrnn import console


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert console.use_color(FakeTerminal())
    assert not console.use_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not console.use_color(FakeTerminal())


def test_explain_prints_no_escape_codes_when_no_color_is_set(monkeypatch, capsys):
    from attnrnn.explain import describe_prediction
    from attnrnn.tasks.classification import Prediction

    prediction = Prediction("a b", "x", {"x": 0.9, "y": 0.1}, ["a", "b"], [[0.2, 0.8]])
    assert "\x1b[" in describe_prediction(prediction, color=True)
    assert "\x1b[" not in describe_prediction(prediction, color=False)


def test_progress_off_a_terminal_prints_periodic_lines_with_an_eta(monkeypatch, capsys):
    clock = iter(range(0, 1000, 6))
    monkeypatch.setattr(console.time, "monotonic", lambda: float(next(clock)))
    with console.progress(10, "decode") as advance:
        for _ in range(4):
            advance(2)
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("decode: ") for line in lines)
    assert "/10" in lines[0] and "ETA" in lines[0]
    assert lines[-1].startswith("decode: 8/10")


def test_format_duration():
    assert console.format_duration(62) == "1:02"
    assert console.format_duration(3723) == "1:02:03"
