"""Joint CTC / attention scoring over numpy arrays, for the ONNX speech predictor.

:mod:`attnrnn.decoding.ctc` with numpy in place of torch, the same recursions in the
same order (read the docstrings there): the prefix scores of every candidate for all
rows at once, and :class:`JointCTCAttention`, a step model that mixes them with the
attention decoder's log-probabilities. The tests compare both to float tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

NEG_INF = -np.inf


def logsumexp(values: np.ndarray, axis: int) -> np.ndarray:
    """``log(sum(exp(values)))`` along ``axis``; -inf where every value is -inf."""
    top = values.max(axis=axis, keepdims=True)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        total = np.log(np.exp(values - safe).sum(axis=axis, keepdims=True)) + safe
    return np.squeeze(total, axis=axis)


@dataclass
class CTCState:
    """The CTC side of every row: posteriors (N, T, V), frames (N,), the prefix's
    r (N, T, 2) and psi (N,), its last token (N,), and every candidate's recursion."""

    log_probs: np.ndarray
    lengths: np.ndarray
    r: np.ndarray
    psi: np.ndarray
    last: np.ndarray
    candidate_r: np.ndarray | None = None
    candidate_psi: np.ndarray | None = None

    def select(self, rows: np.ndarray) -> CTCState:
        return self.reorder(rows, rows)

    def reorder(self, rows: np.ndarray, sources: np.ndarray | None) -> CTCState:
        chosen: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            picked = sources if item.name in ("log_probs", "lengths") else rows
            chosen[item.name] = value if value is None or picked is None else value[picked]
        return CTCState(**chosen)


class CTCPrefixScorer:
    def __init__(self, blank: int, eos: int) -> None:
        self.blank, self.eos = blank, eos

    def initial_state(self, log_probs: np.ndarray, lengths: np.ndarray) -> CTCState:
        B = log_probs.shape[0]
        blank_path = np.cumsum(log_probs[:, :, self.blank], axis=1)  # (B, T)
        r = np.stack([np.full_like(blank_path, NEG_INF), blank_path], axis=2)  # (B, T, 2)
        return CTCState(
            log_probs, lengths, r, np.zeros(B, log_probs.dtype), np.full(B, -1, np.int64)
        )

    def advance(self, state: CTCState, tokens: np.ndarray) -> CTCState:
        if state.candidate_r is None or state.candidate_psi is None:
            return state
        rows = np.arange(len(tokens))
        r = state.candidate_r[rows, :, :, tokens]  # (N, T, 2)
        psi = state.candidate_psi[rows, tokens]  # (N,)
        return CTCState(state.log_probs, state.lengths, r, psi, tokens.astype(np.int64).copy())

    def score(self, state: CTCState) -> tuple[np.ndarray, CTCState]:
        x = state.log_probs  # (N, T, V)
        N, T, V = x.shape
        total = np.logaddexp(state.r[:, :, 0], state.r[:, :, 1])  # (N, T)
        phi = np.repeat(total[:, :, None], V, axis=2)  # (N, T, V)
        repeat = np.nonzero(state.last >= 0)[0]
        if repeat.size:
            phi[repeat, :, state.last[repeat]] = state.r[repeat, :, 1]
        empty = (state.last < 0)[:, None]  # (N, 1)
        r_new = np.full((N, T, 2, V), NEG_INF, dtype=x.dtype)
        r_new[:, 0, 0] = np.where(empty, x[:, 0], NEG_INF)
        blank = x[:, :, self.blank]  # (N, T)
        for t in range(1, T):
            r_new[:, t, 0] = np.logaddexp(r_new[:, t - 1, 0], phi[:, t - 1]) + x[:, t]
            r_new[:, t, 1] = (
                np.logaddexp(r_new[:, t - 1, 0], r_new[:, t - 1, 1]) + blank[:, t, None]
            )
        valid = np.arange(T)[None, :, None] < state.lengths[:, None, None]  # (N, T, 1)
        starts = np.concatenate([r_new[:, :1, 0], phi[:, :-1] + x[:, 1:]], axis=1)  # (N, T, V)
        psi = logsumexp(np.where(valid, starts, NEG_INF), axis=1)  # (N, V)
        psi[:, self.eos] = total[np.arange(N), state.lengths - 1]
        psi[:, self.blank] = NEG_INF
        scores = psi - state.psi[:, None]
        new_state = CTCState(
            state.log_probs, state.lengths, state.r, state.psi, state.last, r_new, psi
        )
        return scores, new_state


@dataclass
class JointState:
    decoder: Any
    ctc: CTCState

    def select(self, rows: np.ndarray) -> JointState:
        return JointState(self.decoder.select(rows), self.ctc.select(rows))

    def reorder(self, rows: np.ndarray, sources: np.ndarray | None) -> JointState:
        from attnrnn.onnx.search import reorder

        return JointState(reorder(self.decoder, rows, sources), self.ctc.reorder(rows, sources))


class JointCTCAttention:
    """``(1 - weight) * attention + weight * CTC prefix`` log-probabilities, as a step model."""

    def __init__(
        self,
        model: Any,
        ctc_log_probs: np.ndarray,
        ctc_lengths: np.ndarray,
        weight: float,
        blank: int,
    ) -> None:
        self.model = model
        self.bos_index, self.eos_index, self.pad_index = (
            model.bos_index,
            model.eos_index,
            model.pad_index,
        )
        self.weight = weight
        self.scorer = CTCPrefixScorer(blank, model.eos_index)
        self.ctc_log_probs = ctc_log_probs.astype(np.float32)
        self.ctc_lengths = ctc_lengths

    def init_state(self, decoder_state: Any) -> JointState:
        return JointState(
            decoder_state, self.scorer.initial_state(self.ctc_log_probs, self.ctc_lengths)
        )

    def step(self, prev_tokens: np.ndarray, state: JointState) -> tuple[Any, JointState, Any]:
        attention_log_probs, decoder_state, attention = self.model.step(prev_tokens, state.decoder)
        ctc_state = self.scorer.advance(state.ctc, prev_tokens)
        ctc_scores, ctc_state = self.scorer.score(ctc_state)
        if self.weight == 0.0:
            joint = attention_log_probs
        elif self.weight == 1.0:
            joint = ctc_scores
        else:
            joint = (1.0 - self.weight) * attention_log_probs + self.weight * ctc_scores
        return joint.astype(np.float32), JointState(decoder_state, ctc_state), attention
