"""Alignment diagnostics of a :class:`~attnrnn.models.speech.SpeechRecognizer`'s attention.

Speech is read in order, so a good attention alignment moves forward through the listener
frames, roughly along the diagonal, visits every frame that holds speech, and puts each
output unit where the CTC head (trained on the same listener, without attention) puts it.
Each check works on one utterance's teacher-forced attention ``(U, T')``: the reference
units then EOS (U = units + 1) over the T' listener frames (after the listener's
subsampling), from :func:`forced_attention`. Definitions:

- **peak** of step u: ``argmax_f attention[u, f]`` (ties: the earlier frame); **centre** of
  step u: its centre of mass ``Σ_f f * attention[u, f]``.
- :func:`monotonicity`: the share of consecutive steps (u, u + 1) whose peak (and, separately,
  centre) does not move back (centres within 1e-6 frames count as not moving), and the size
  in frames of every backward move of the peak.
- :func:`diagonality`: Pearson's correlation of the step index u with the peak frame (1 on a
  straight forward path, -1 on a reversed one; 0.0 when the peak never moves, which
  correlates with nothing; None with fewer than 2 steps), and the mean distance of the peak
  from the straight diagonal, as a fraction of T'. The diagonal gives each of the U steps an
  equal share of the frames and puts step u at the centre of its share,
  ``d_u = (u + 0.5) * T' / U - 0.5`` (on a square matrix: d_u = u).
- :func:`coverage`: the share of frames f whose total attention over all steps,
  ``Σ_u attention[u, f]``, is at least 1 / T' (what one step of uniform attention gives each
  frame): frames the attention never visits are not covered.
- :func:`ctc_forced_alignment`: the Viterbi (best-path) alignment of the reference units to
  the CTC head's frame log-posteriors, by dynamic programming over the blank-extended label
  sequence (``blank y_1 blank y_2 ... y_n blank``), in log space, with backtracking. It is
  written here because torchaudio's ``forced_align`` is not available to attnrnn (torchaudio
  needs a torch build other than the one attnrnn installs). :func:`frame_distances` compares,
  for each unit, the first frame of its CTC segment (where CTC emits it) with its attention
  peak.

:func:`diagnose_speech` runs the checks on a split and returns the report's sections.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from attnrnn.data.batching import teacher_forcing
from attnrnn.diagnostics.common import evaluating, mean, median, section
from attnrnn.models.speech import SpeechOutput, SpeechRecognizer
from attnrnn.tasks.speech import Recognizer, SpeechSplit, pad_features

_CENTRE_TOLERANCE = 1e-6  # frames: centres closer than this have not moved


def _teacher_forced(
    model: SpeechRecognizer, features: torch.Tensor, target_ids: Sequence[int]
) -> SpeechOutput:
    """The teacher-forced pass over one utterance: features (T, F) of the run's normalized
    kind, target_ids (n,) without BOS and EOS; batched as training batches it."""
    padded, lengths = pad_features([features])  # (1, T, F), (1,)
    target_input, _ = teacher_forcing([list(target_ids)], *_specials(model))  # (1, n + 1)
    device = model.ctc_layer.weight.device
    with evaluating(model, no_grad=True):
        return model(padded.to(device), lengths.to(device), target_input.to(device))


def _specials(model: SpeechRecognizer) -> tuple[int, int, int]:
    return model.pad_index, model.bos_index, model.eos_index


def forced_attention(
    model: SpeechRecognizer, features: torch.Tensor, target_ids: Sequence[int]
) -> torch.Tensor:
    """Teacher-forced attention of one utterance over its listener frames.

    Args:
        features: (T, F) normalized features (as in a :class:`SpeechSplit`).
        target_ids: (n,) the reference units, without BOS and EOS.
    Returns:
        (n + 1, T') float32 on the CPU: row u is the attention of the step that outputs unit u
        (row n: EOS), T' the listener frames after subsampling; each row sums to 1.
    """
    return _teacher_forced(model, features, target_ids).attention[0].float().cpu()


def _matrix(attention: Any) -> np.ndarray:
    """One (U, T') attention matrix as float64 NumPy (a tensor is detached, on the CPU)."""
    if isinstance(attention, torch.Tensor):
        attention = attention.detach().to(device="cpu", dtype=torch.float64).numpy()
    matrix = np.asarray(attention, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError(f"need one (U, T') attention matrix with T' > 0, got {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("attention has NaN or infinite values")
    return matrix


def peaks(attention: Any) -> np.ndarray:
    """(U, T') attention -> (U,) frame each step attends to most (ties: the earlier)."""
    return _matrix(attention).argmax(axis=1)


def centres(attention: Any) -> np.ndarray:
    """(U, T') attention -> (U,) centre of mass of each step, in frames."""
    matrix = _matrix(attention)
    return matrix @ np.arange(matrix.shape[1], dtype=np.float64)


@dataclass
class Monotonicity:
    """How one utterance's attention moves from step to step (U steps).

    peak_forward_share: share of the U - 1 consecutive steps whose peak does not move back
        (None when U < 2).
    centre_forward_share: the same for the centres of mass.
    backward_jumps: the size in frames of every backward move of the peak, in step order.
    """

    peak_forward_share: float | None
    centre_forward_share: float | None
    backward_jumps: list[int]


def monotonicity(attention: Any) -> Monotonicity:
    """Forward moves of the peak and the centre of one (U, T') attention matrix."""
    peak_moves = np.diff(peaks(attention))  # (U - 1,)
    centre_moves = np.diff(centres(attention))  # (U - 1,)
    if peak_moves.size == 0:
        return Monotonicity(None, None, [])
    return Monotonicity(
        peak_forward_share=float(np.mean(peak_moves >= 0)),
        centre_forward_share=float(np.mean(centre_moves >= -_CENTRE_TOLERANCE)),
        backward_jumps=[int(-move) for move in peak_moves if move < 0],
    )


@dataclass
class Diagonality:
    """How close one utterance's attention path is to the straight diagonal.

    peak_correlation: Pearson's r of step index and peak frame, in [-1, 1] (0.0 when the
        peak never moves; None when U < 2).
    diagonal_distance: mean |peak_u - d_u| / T' over the steps, in [0, 1) (see the module).
    """

    peak_correlation: float | None
    diagonal_distance: float


def diagonality(attention: Any) -> Diagonality:
    """Correlation with the step index and distance from the diagonal of one (U, T') matrix."""
    matrix = _matrix(attention)
    U, frames = matrix.shape
    peak = matrix.argmax(axis=1).astype(np.float64)  # (U,)
    steps = np.arange(U, dtype=np.float64)
    diagonal = (steps + 0.5) * frames / U - 0.5  # (U,)
    distance = float(np.mean(np.abs(peak - diagonal)) / frames)
    if U < 2:
        return Diagonality(None, distance)
    if np.all(peak == peak[0]):
        return Diagonality(0.0, distance)
    correlation = float(np.clip(np.corrcoef(steps, peak)[0, 1], -1.0, 1.0))
    return Diagonality(correlation, distance)


def coverage(attention: Any) -> float:
    """Share of the T' frames whose attention summed over the U steps is at least 1 / T'."""
    matrix = _matrix(attention)
    frames = matrix.shape[1]
    # 1e-9: a frame given exactly 1 / T' in float arithmetic counts as reached
    return float(np.mean(matrix.sum(axis=0) >= 1.0 / frames - 1e-9))


@dataclass
class CTCAlignment:
    """The best CTC path of n labels through T' frames.

    frame_labels: (T',) per frame, the position (0..n-1) of the label it emits, or -1 for
        blank.
    segments: (n,) per label, its first and last frame.
    log_prob: the path's log-probability.
    """

    frame_labels: list[int]
    segments: list[tuple[int, int]]
    log_prob: float

    @property
    def first_frames(self) -> list[int]:
        """(n,) the frame where CTC emits each label (the start of its segment)."""
        return [first for first, _ in self.segments]


def ctc_forced_alignment(log_probs: Any, labels: Sequence[int], blank: int) -> CTCAlignment | None:
    """Viterbi alignment of ``labels`` (n,) to CTC log-posteriors (T', V), blank id ``blank``.

    States are the blank-extended labels z = (blank, y_1, blank, ..., y_n, blank); a path
    stays in its state, moves to the next, or skips a blank between two different labels,
    starts in z_0 or z_1 and ends in one of the last two. Returns None when no path exists
    (fewer frames than labels plus repeated neighbours, or zero probabilities).
    """
    scores = np.asarray(
        log_probs.detach().cpu().double() if isinstance(log_probs, torch.Tensor) else log_probs,
        dtype=np.float64,
    )  # (T', V)
    labels = [int(label) for label in labels]
    if blank in labels:
        raise ValueError(f"the labels contain the blank id {blank}")
    repeats = sum(a == b for a, b in itertools.pairwise(labels))
    frames = scores.shape[0]
    if frames == 0 or frames < len(labels) + repeats:
        return None
    extended = np.full(2 * len(labels) + 1, blank)
    extended[1::2] = labels  # (S,)
    emissions = scores[:, extended]  # (T', S)
    states = _viterbi(emissions, extended, blank)
    if states is None:
        return None
    path, log_prob = states
    frame_labels = [state // 2 if state % 2 else -1 for state in path]
    segments = [
        (frame_labels.index(j), len(frame_labels) - 1 - frame_labels[::-1].index(j))
        for j in range(len(labels))
    ]
    return CTCAlignment(frame_labels, segments, log_prob)


def _viterbi(
    emissions: np.ndarray, extended: np.ndarray, blank: int
) -> tuple[list[int], float] | None:
    """Best state path through emissions (T', S) of the extended labels (S,), with its
    log-probability; None when every path has probability 0."""
    frames, S = emissions.shape
    can_skip = np.zeros(S, dtype=bool)  # (S,) may come from s - 2
    can_skip[2:] = (extended[2:] != blank) & (extended[2:] != extended[:-2])
    best = np.full(S, -np.inf)  # (S,) best log-probability of a path ending in s
    best[: min(S, 2)] = emissions[0, : min(S, 2)]
    came_from = np.zeros((frames, S), dtype=np.int64)  # 0: stayed, 1: from s-1, 2: from s-2
    for t in range(1, frames):
        advance = np.concatenate(([-np.inf], best[:-1]))  # (S,)
        skip = np.where(can_skip, np.concatenate(([-np.inf, -np.inf], best[:-2]))[:S], -np.inf)
        candidates = np.stack([best, advance, skip])  # (3, S)
        came_from[t] = candidates.argmax(axis=0)
        best = candidates[came_from[t], np.arange(S)] + emissions[t]
    state = S - 1 if S == 1 or best[S - 1] >= best[S - 2] else S - 2
    log_prob = float(best[state])
    if not np.isfinite(log_prob):
        return None
    path = [state]
    for t in range(frames - 1, 0, -1):
        state -= int(came_from[t, state])
        path.append(state)
    return path[::-1], log_prob


def frame_distances(alignment: CTCAlignment, attention: Any) -> list[int]:
    """Per label j, |first CTC frame of j - attention peak of step j| in frames.

    ``attention`` is the (n + 1, T') teacher-forced attention of the same labels (its last
    row, EOS, has no CTC label and is not compared).
    """
    peak = peaks(attention)
    return [abs(first - int(peak[j])) for j, first in enumerate(alignment.first_frames)]


# --------------------------------------------------------------------------- the report


@dataclass
class _Utterance:
    """The checks on one utterance; ``distances`` None when CTC could not align it."""

    frames: int
    monotonicity: Monotonicity
    diagonality: Diagonality
    coverage: float
    distances: list[int] | None


def _check(model: SpeechRecognizer, features: torch.Tensor, target_ids: list[int]) -> _Utterance:
    output = _teacher_forced(model, features, target_ids)
    attention = output.attention[0].cpu()  # (n + 1, T')
    alignment = ctc_forced_alignment(output.ctc_log_probs[0].cpu(), target_ids, model.pad_index)
    return _Utterance(
        frames=attention.size(1),
        monotonicity=monotonicity(attention),
        diagonality=diagonality(attention),
        coverage=coverage(attention),
        distances=None if alignment is None else frame_distances(alignment, attention),
    )


def diagnose_speech(
    trained: Recognizer, split: SpeechSplit, limit: int | None = None
) -> list[dict[str, Any]]:
    """The speech sections of the diagnostics report: monotonicity, diagonality, coverage
    and ctc_alignment, on the first ``limit`` utterances of ``split`` (None: all).

    Args:
        trained: a loaded speech run.
        split: utterances read as ``evaluate`` reads them (``task.read_split``,
            ``prepare_examples``, ``encode``): normalized features and reference unit ids.
    """
    model: SpeechRecognizer = trained.model  # type: ignore[assignment]
    count = len(split) if limit is None else min(limit, len(split))
    with trained.lock:
        checks = [_check(model, split.features[i], split.targets[i]) for i in range(count)]
    return [
        _monotonicity_section(checks),
        _diagonality_section(checks),
        _coverage_section(checks),
        _ctc_section(checks, model.config.ctc_weight),
    ]


def _short_notes(checks: list[_Utterance]) -> list[str]:
    short = sum(check.monotonicity.peak_forward_share is None for check in checks)
    if not short:
        return []
    return [f"{short} utterance(s) with an empty transcript (one output step) have no moves."]


def _monotonicity_section(checks: list[_Utterance]) -> dict[str, Any]:
    peak = [c.monotonicity.peak_forward_share for c in checks]
    centre = [c.monotonicity.centre_forward_share for c in checks]
    peak_shares = [share for share in peak if share is not None]
    centre_shares = [share for share in centre if share is not None]
    jumps = [float(jump) for c in checks for jump in c.monotonicity.backward_jumps]
    return section(
        "monotonicity",
        "Monotonicity of the attention",
        "Share of consecutive output steps whose attention peak (argmax frame) or centre "
        "of mass does not move back in the audio; 1 is a strictly forward alignment. "
        "Backward jumps are in listener frames.",
        {
            "utterances": len(checks),
            "peak_forward_share_mean": mean(peak_shares),
            "peak_forward_share_median": median(peak_shares),
            "centre_forward_share_mean": mean(centre_shares),
            "monotonic_utterances_share": mean([float(share == 1.0) for share in peak_shares]),
            "backward_jump_frames_mean": mean(jumps),
        },
        {
            "peak_forward_share": peak_shares,
            "centre_forward_share": centre_shares,
            "backward_jump_frames": jumps,
        },
        _short_notes(checks),
    )


def _diagonality_section(checks: list[_Utterance]) -> dict[str, Any]:
    correlations = [
        c.diagonality.peak_correlation for c in checks if c.diagonality.peak_correlation is not None
    ]
    distances = [c.diagonality.diagonal_distance for c in checks]
    return section(
        "diagonality",
        "Diagonality of the attention",
        "Pearson correlation of the output step with its attention peak (1: the peak moves "
        "steadily forward), and the mean distance of the peak from the straight diagonal "
        "(each step at the centre of an equal share of the frames) as a fraction of the "
        "frames (0: on the diagonal). Silence at the ends moves a good alignment off it.",
        {
            "peak_correlation_mean": mean(correlations),
            "peak_correlation_median": median(correlations),
            "diagonal_distance_mean": mean(distances),
            "diagonal_distance_median": median(distances),
        },
        {"peak_correlation": correlations, "diagonal_distance": distances},
        _short_notes(checks),
    )


def _coverage_section(checks: list[_Utterance]) -> dict[str, Any]:
    shares = [c.coverage for c in checks]
    return section(
        "coverage",
        "Frames the attention visits",
        "Share of an utterance's listener frames whose attention, summed over all output "
        "steps, is at least 1/frames (what one step of uniform attention gives a frame). "
        "Frames never attended (often leading and trailing silence) are not covered.",
        {"covered_share_mean": mean(shares), "covered_share_median": median(shares)},
        {"covered_share": shares},
    )


_CTC_TITLE = "CTC forced alignment versus attention"
_CTC_EXPLANATION = (
    "For each reference unit, the distance in listener frames between the first frame "
    "where the CTC head's Viterbi alignment emits it and the attention peak of the "
    "step that outputs it; also as a fraction of the utterance's frames. 0: attention "
    "and CTC put the unit at the same frame."
)
_CTC_SUMMARY = (
    "aligned_utterances",
    "units",
    "frame_distance_mean",
    "frame_distance_median",
    "relative_distance_mean",
)


def _ctc_section(checks: list[_Utterance], ctc_weight: float) -> dict[str, Any]:
    if ctc_weight == 0.0:
        note = (
            "The model was trained without CTC (model.ctc_weight = 0): its CTC head is untrained."
        )
        summary = dict.fromkeys(_CTC_SUMMARY)
        return section("ctc_alignment", _CTC_TITLE, _CTC_EXPLANATION, summary, {}, [note])
    aligned = [c for c in checks if c.distances is not None]
    frames = [float(d) for c in aligned for d in c.distances or []]
    relative = [d / c.frames for c in aligned for d in c.distances or []]
    notes = []
    if len(aligned) < len(checks):
        notes.append(
            f"{len(checks) - len(aligned)} utterance(s) have fewer listener frames than CTC "
            "needs for their units and were not aligned."
        )
    return section(
        "ctc_alignment",
        _CTC_TITLE,
        _CTC_EXPLANATION,
        {
            "aligned_utterances": len(aligned),
            "units": len(frames),
            "frame_distance_mean": mean(frames),
            "frame_distance_median": median(frames),
            "relative_distance_mean": mean(relative),
        },
        {"frame_distance": frames, "relative_distance": relative},
        notes,
    )
