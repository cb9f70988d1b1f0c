"""Speech attention diagnostics on constructed alignments whose answers are known, the CTC
Viterbi alignment against brute force, and the report's sections on a tiny trained run."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
import torch

import attnrnn
from attnrnn.config import from_dict
from attnrnn.diagnostics.speech import (
    CTCAlignment,
    coverage,
    ctc_forced_alignment,
    diagnose_speech,
    diagonality,
    forced_attention,
    frame_distances,
    monotonicity,
)
from attnrnn.models.speech import SpeechModelConfig, SpeechRecognizer
from attnrnn.tasks.runs import read_config
from attnrnn.tasks.speech import Recognizer, SpeechSplit

pytest.importorskip("soundfile")

BLANK = 0


def one_hot_rows(frames: int, positions: list[int]) -> np.ndarray:
    """(U, T') attention with all of step u's weight on frame positions[u]."""
    attention = np.zeros((len(positions), frames))
    attention[np.arange(len(positions)), positions] = 1.0
    return attention


def log_probs_for(path: list[int], vocab_size: int, confidence: float = 0.9) -> np.ndarray:
    """(T', V) log-posteriors that put ``confidence`` on path[t] at frame t."""
    rest = (1.0 - confidence) / (vocab_size - 1)
    probabilities = np.full((len(path), vocab_size), rest)
    probabilities[np.arange(len(path)), path] = confidence
    return np.log(probabilities)


# --------------------------------------------------------------------------- CTC Viterbi


def test_viterbi_recovers_an_obvious_path():
    log_probs = log_probs_for([0, 1, 1, 0, 2, 0], vocab_size=4)
    alignment = ctc_forced_alignment(log_probs, [1, 2], BLANK)
    assert alignment is not None
    assert alignment.frame_labels == [-1, 0, 0, -1, 1, -1]
    assert alignment.segments == [(1, 2), (4, 4)]
    assert alignment.first_frames == [1, 4]
    assert alignment.log_prob == pytest.approx(6 * math.log(0.9))


def test_viterbi_separates_repeated_labels_with_a_blank():
    log_probs = log_probs_for([1, 1, 1], vocab_size=3)  # the frames say "1 1 1", no blank
    alignment = ctc_forced_alignment(log_probs, [1, 1], BLANK)
    assert alignment is not None and alignment.frame_labels == [0, -1, 1]
    assert ctc_forced_alignment(log_probs[:2], [1, 1], BLANK) is None  # needs 3 frames
    assert ctc_forced_alignment(log_probs[:1], [1, 2], BLANK) is None


def collapse(frame_ids: tuple[int, ...]) -> list[int]:
    """CTC's many-to-one map: merge repeats, then drop blanks."""
    merged = [label for label, _ in itertools.groupby(frame_ids)]
    return [label for label in merged if label != BLANK]


@pytest.mark.parametrize("labels", [[1, 2], [2, 2], [1], [], [2, 1, 2]])
def test_viterbi_agrees_with_brute_force(labels):
    generator = torch.Generator().manual_seed(len(labels) + sum(labels))
    log_probs = torch.randn(6, 3, generator=generator).log_softmax(dim=-1).double().numpy()
    best_score, best_path = max(
        (sum(log_probs[t, label] for t, label in enumerate(path)), path)
        for path in itertools.product(range(3), repeat=6)
        if collapse(path) == labels
    )
    alignment = ctc_forced_alignment(log_probs, labels, BLANK)
    assert alignment is not None
    assert alignment.log_prob == pytest.approx(best_score)
    ids = [BLANK if j < 0 else labels[j] for j in alignment.frame_labels]
    assert tuple(ids) == best_path


def test_viterbi_rejects_a_blank_label():
    with pytest.raises(ValueError, match="blank"):
        ctc_forced_alignment(log_probs_for([0, 1], 3), [1, BLANK], BLANK)


# --------------------------------------------------------------------------- attention shape


def test_a_diagonal_is_monotonic_correlated_and_on_the_diagonal():
    for attention in (np.eye(6), one_hot_rows(9, [1, 4, 7])):  # square; 3 frames a step
        moves, diagonal = monotonicity(attention), diagonality(attention)
        assert moves.peak_forward_share == 1.0 and moves.centre_forward_share == 1.0
        assert moves.backward_jumps == []
        assert diagonal.peak_correlation == pytest.approx(1.0)
        assert diagonal.diagonal_distance == pytest.approx(0.0)


def test_a_reversed_diagonal_moves_only_back():
    attention = torch.eye(5).flip(0)
    moves, diagonal = monotonicity(attention), diagonality(attention)
    assert moves.peak_forward_share == 0.0 and moves.centre_forward_share == 0.0
    assert moves.backward_jumps == [1, 1, 1, 1]
    assert diagonal.peak_correlation == pytest.approx(-1.0)
    assert diagonal.diagonal_distance == pytest.approx((4 + 2 + 0 + 2 + 4) / 5 / 5)


def test_uniform_and_single_step_attention():
    uniform = np.full((4, 8), 1 / 8)
    moves = monotonicity(uniform)
    assert moves.peak_forward_share == 1.0 and moves.centre_forward_share == 1.0
    assert diagonality(uniform).peak_correlation == 0.0  # the peak never moves
    assert coverage(uniform) == 1.0
    single = one_hot_rows(4, [3])
    assert monotonicity(single).peak_forward_share is None
    assert diagonality(single).peak_correlation is None


def test_coverage_of_one_hot_steps_is_the_share_of_frames_hit():
    assert coverage(one_hot_rows(8, [0, 2, 2, 5])) == pytest.approx(3 / 8)
    assert coverage(np.eye(5)) == 1.0


def test_frame_distances_compare_ctc_starts_with_peaks():
    alignment = CTCAlignment([-1, 0, 0, -1, 1, -1], [(1, 2), (4, 4)], 0.0)
    attention = one_hot_rows(6, [2, 4, 5])  # units at 2 and 4, then EOS
    assert frame_distances(alignment, attention) == [1, 0]


def test_forced_attention_has_one_row_per_unit_and_eos(tiny_speech_model):
    torch.manual_seed(0)
    config = from_dict(SpeechModelConfig, tiny_speech_model())
    model = SpeechRecognizer(20, 8, config, pad_index=0, bos_index=1, eos_index=2)
    attention = forced_attention(model, torch.randn(37, 20), [3, 4, 5])  # features (T, F)
    assert attention.shape == (4, 10)  # T' = ceil(ceil(37 / 2) / 2)
    assert torch.allclose(attention.sum(dim=1), torch.ones(4), atol=1e-5)
    assert model.training  # the mode is restored


# --------------------------------------------------------------------------- the report


@pytest.fixture(scope="module")
def tones(tmp_path_factory, tiny_speech_config, write_tones) -> tuple[Recognizer, SpeechSplit]:
    """A speech run trained for a few steps on tone syllables, and 6 unseen utterances
    read as ``evaluate`` reads them."""
    directory = tmp_path_factory.mktemp("speech-diagnostics")
    config = tiny_speech_config(
        write_tones(directory, 20, seed=1),
        optimizer={"warmup_steps": 2},
        dev_search={"beam_size": 1, "max_length_ratio": 2.0},
    )
    path = directory / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    attnrnn.train(read_config(path), directory / "run")
    trained = attnrnn.load(directory / "run", device="cpu")
    task = trained.task
    examples = task.read_split(trained.config, str(write_tones(directory, 6, seed=2)), "evaluate")
    examples = task.prepare_examples(trained.config, examples, "evaluate", lambda message: None)
    return trained, task.encode(trained.config, trained.assets, examples, "evaluate")


def test_diagnose_speech_sections(tones):
    trained, split = tones
    sections = diagnose_speech(trained, split, limit=4)
    assert [section["name"] for section in sections] == [
        "monotonicity",
        "diagonality",
        "coverage",
        "ctc_alignment",
    ]
    json.dumps(sections, allow_nan=False)  # JSON-able, no NaN
    by_name = {section["name"]: section for section in sections}
    for section in sections:
        assert {"name", "title", "explanation", "summary", "distributions", "notes"} <= set(section)
    moves = by_name["monotonicity"]
    assert moves["summary"]["utterances"] == 4
    assert len(moves["distributions"]["peak_forward_share"]) == 4
    assert all(0.0 <= share <= 1.0 for share in moves["distributions"]["peak_forward_share"])
    diagonal = by_name["diagonality"]["distributions"]
    assert all(-1.0 <= r <= 1.0 for r in diagonal["peak_correlation"])
    assert all(0.0 <= d < 1.0 for d in diagonal["diagonal_distance"])
    assert all(
        0.0 < share <= 1.0 for share in by_name["coverage"]["distributions"]["covered_share"]
    )
    ctc = by_name["ctc_alignment"]
    units = sum(len(target) for target in split.targets[:4])
    assert ctc["summary"]["units"] == units == len(ctc["distributions"]["frame_distance"])
    assert all(0.0 <= d < 1.0 for d in ctc["distributions"]["relative_distance"])
    assert ctc["summary"]["frame_distance_mean"] >= 0.0


def test_diagnose_speech_without_a_ctc_head(tones):
    trained, split = tones
    model = trained.model
    original = model.config
    model.config = dataclasses.replace(original, ctc_weight=0.0)  # as if trained without CTC
    try:
        ctc = diagnose_speech(trained, split, limit=2)[-1]
    finally:
        model.config = original
    assert ctc["summary"]["frame_distance_mean"] is None
    assert "without CTC" in ctc["notes"][0]


def test_attnrnn_diagnose_on_a_speech_run(tones, tmp_path, capsys, write_tones):
    from attnrnn.cli import main

    trained, _ = tones
    data = write_tones(tmp_path, 3, seed=4)
    status = main(["diagnose", str(trained.directory), "--data", str(data), "-o", str(tmp_path)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    document = json.loads((tmp_path / "diagnostics.json").read_text())
    assert document["task"] == "speech" and document["examples"] == 3
    assert document["sections"][0]["name"] == "monotonicity"
