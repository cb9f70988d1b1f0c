"""Tests of attention rendering: terminal, HTML and PNG output."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.figure
import matplotlib.image
import numpy as np
import pytest
import torch

from attnrnn import viz

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")
VOID_TAGS = frozenset({"meta", "br", "hr", "img", "input", "link"})
TOKENS = ["the", "movie", "was", "great"]
WEIGHTS = [0.1, 0.2, 0.05, 0.65]


def files_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


# --------------------------------------------------------------------- terminal


def test_terminal_colored_shades_every_token_and_resets():
    line = viz.terminal_colored(TOKENS, WEIGHTS)
    assert "\n" not in line
    assert ANSI_CODE.sub("", line) == "the movie was great"
    assert line.count("\x1b[0m") == len(TOKENS)
    # The heaviest token gets the deepest colour of the ramp, black text on it.
    assert "\x1b[48;5;196;38;5;16mgreat\x1b[0m" in line


def test_terminal_plain_has_weights_and_no_escape_codes():
    line = viz.terminal_colored(["great", "movie"], [0.41, 0.12], color=False)
    assert line == "great(0.41) movie(0.12)"
    assert "\x1b" not in line


def test_terminal_escapes_control_characters_in_tokens():
    line = viz.terminal_colored(["a\x1b[2Jb"], [1.0], color=False)
    assert "\x1b" not in line
    assert "\\x1b[2Jb" in line


def test_terminal_accepts_tensors_and_all_zero_weights():
    tensor = torch.tensor(WEIGHTS, requires_grad=True)
    assert ANSI_CODE.sub("", viz.terminal_colored(TOKENS, tensor)) == "the movie was great"
    assert viz.terminal_colored(["a", "b"], [0.0, 0.0], color=False) == "a(0.00) b(0.00)"


def test_top_tokens_orders_by_weight_and_keeps_ties_in_order():
    assert viz.top_tokens(TOKENS, np.array(WEIGHTS), k=2) == [("great", 0.65), ("movie", 0.2)]
    assert [token for token, _ in viz.top_tokens(["a", "b", "c"], [0.5, 0.5, 0.1])] == [
        "a",
        "b",
        "c",
    ]
    assert viz.top_tokens(["a"], [1.0], k=0) == []


@pytest.mark.parametrize(
    ("tokens", "weights", "message"),
    [
        (["a", "b"], [1.0], "1 entries per row but there are 2 tokens"),
        (["a"], [[[1.0]]], r"shape \(S,\) or \(R, S\)"),
        (["a", "b"], [1.0, float("nan")], "NaN or infinite"),
        ("ab", [0.5, 0.5], "not one string"),
    ],
)
def test_token_weights_are_validated(tokens, weights, message):
    with pytest.raises(ValueError, match=message):
        viz.terminal_colored(tokens, weights)


# ------------------------------------------------------------------------ HTML


def read_png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    return matplotlib.image.imread(path)


def test_token_heatmap_png_is_wider_than_tall(tmp_path):
    path = viz.write_token_heatmap_png(tmp_path / "t.png", TOKENS, WEIGHTS, title="$5 movie")
    height, width = read_png(path).shape[:2]
    assert 300 < width < 3000 and 60 < height < width


def test_token_heatmap_png_stays_sensible_with_a_very_long_token(tmp_path):
    tokens = ["see", "http://example.com/" + "a/" * 100, "now"]
    height, width = read_png(
        viz.write_token_heatmap_png(tmp_path / "t.png", tokens, [1, 2, 3])
    ).shape[:2]
    assert width < 1500 and height < 600


def test_token_heatmap_png_wraps_long_multi_hop_sequences(tmp_path):
    tokens = [f"w{index}" for index in range(90)]
    weights = np.random.default_rng(0).dirichlet(np.ones(90), size=2)  # (R=2, S=90)
    one_row = read_png(
        viz.write_token_heatmap_png(tmp_path / "a.png", tokens[:30], weights[:, :30])
    )
    wrapped = read_png(viz.write_token_heatmap_png(tmp_path / "b.png", tokens, weights))
    # 90 tokens wrap into three rows of 30: as wide as one row of 30, about three times as tall.
    assert abs(wrapped.shape[1] - one_row.shape[1]) < 0.1 * one_row.shape[1]
    assert wrapped.shape[0] > 2 * one_row.shape[0]


def test_alignment_png_with_tokens_and_with_unlabelled_frames(tmp_path):
    weights = torch.softmax(torch.randn(5, 7), dim=-1)  # (T=5, S=7)
    source = [f"src{index}" for index in range(7)]
    target = ["le", "chat", "est", "noir", "."]
    image = read_png(viz.write_alignment_png(tmp_path / "a.png", source, target, weights, "fr"))
    assert 200 < image.shape[0] < 2000 and 200 < image.shape[1] < 2000

    frames = np.random.default_rng(0).dirichlet(np.ones(300), size=4)  # (T=4, S=300)
    image = read_png(viz.write_alignment_png(tmp_path / "s.png", None, list("cat "), frames))
    assert image.shape[1] > image.shape[0]


@pytest.mark.parametrize(
    ("source", "target", "weights", "message"),
    [
        (["a", "b"], ["x"], np.ones((1, 3)), "S=3 source positions but there are 2"),
        (["a"], ["x", "y"], np.ones((1, 1)), "T=1 target positions but there are 2"),
        (["a"], ["x"], np.ones((1, 1, 1)), r"shape \(T, S\)"),
        (None, None, np.ones((0, 4)), "empty alignment"),
    ],
)
def test_alignment_shapes_are_validated(tmp_path, source, target, weights, message):
    with pytest.raises(ValueError, match=message):
        viz.write_alignment_png(tmp_path / "a.png", source, target, weights)
    assert files_in(tmp_path) == []


def test_png_rejects_zero_tokens(tmp_path):
    with pytest.raises(ValueError, match="zero tokens"):
        viz.write_token_heatmap_png(tmp_path / "t.png", [], [])
    assert files_in(tmp_path) == []


# ---------------------------------------------------------------- atomic writes


def test_failed_render_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "heatmap.png"
    path.write_bytes(b"old")

    def broken_savefig(self, handle, **kwargs):
        handle.write(b"partial")
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken_savefig)
    with pytest.raises(RuntimeError, match="renderer failed"):
        viz.write_token_heatmap_png(path, TOKENS, WEIGHTS)
    with pytest.raises(RuntimeError, match="renderer failed"):
        viz.write_alignment_png(path, TOKENS, TOKENS, np.eye(4))
    assert files_in(tmp_path) == ["heatmap.png"]
    assert path.read_bytes() == b"old"


def test_writers_create_missing_directories(tmp_path):
    path = viz.write_alignment_png(tmp_path / "a" / "b.png", None, None, np.eye(2), "t")
    assert path.exists() and files_in(path.parent) == ["b.png"]
