"""Joint CTC / attention decoding through the step protocol (Watanabe et al. 2017).

A CTC head on the encoder gives frame posteriors ``x_t(k)``; the *prefix score*
``psi(h)`` is the CTC probability of all label sequences that start with the
prefix ``h``. Beam search adds ``lambda * (log psi(h + c) - log psi(h))`` to the
attention decoder's ``(1 - lambda) * log p(c | h)`` for every candidate token
``c``, which keeps hypotheses monotonic in time and stops the attention from
looping or ending early.

:class:`JointCTCAttention` wraps any step model and is itself a step model:
search code stays unaware of CTC. The prefix scores of all V candidates are
computed at once for all N rows (ESPnet's ``CTCPrefixScoreTH`` does the same),
with the standard recursions over the T frames, per candidate c, for the
probabilities of ``h + c`` ending at frame t in a non-blank (``r^n``) or a blank
(``r^b``)::

    phi_t     = r^n_t(h) + r^b_t(h)   (only r^b_t(h) when c repeats the last token of h)
    r^n_t(h+c) = (r^n_{t-1}(h+c) + phi_{t-1}) * x_t(c)
    r^b_t(h+c) = (r^n_{t-1}(h+c) + r^b_{t-1}(h+c)) * x_t(blank)
    psi(h+c)   = sum_t phi_{t-1} * x_t(c)           (psi(h + EOS) = phi_T)

computed in log space. The blank is never a candidate.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

from attnrnn.decoding.protocol import reorder

NEG_INF = float("-inf")


@dataclass
class CTCState:
    """The CTC side of every row (all tensors row-first).

    log_probs: (N, T, V) CTC log-posteriors of the row's source.
    lengths: (N,) valid frames.
    r: (N, T, 2) log r^n, log r^b of the current prefix at every frame.
    psi: (N,) log prefix score of the current prefix.
    last: (N,) its last token (-1 for the empty prefix).
    candidate_r: (N, T, 2, V) the same for every one-token extension, or None
        before the first step.
    candidate_psi: (N, V) prefix scores of every extension, or None.
    """

    log_probs: torch.Tensor
    lengths: torch.Tensor
    r: torch.Tensor
    psi: torch.Tensor
    last: torch.Tensor
    candidate_r: torch.Tensor | None = None
    candidate_psi: torch.Tensor | None = None

    def select(self, indices: torch.Tensor) -> CTCState:
        return self.reorder(indices, indices)

    def reorder(self, indices: torch.Tensor, sources: torch.Tensor | None) -> CTCState:
        """See :func:`attnrnn.decoding.protocol.reorder`: the posteriors and the frame
        counts are the source's."""
        chosen: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            rows = sources if item.name in ("log_probs", "lengths") else indices
            if value is None or rows is None:
                chosen[item.name] = value
            else:
                chosen[item.name] = value.index_select(0, rows)
        return CTCState(**chosen)


class CTCPrefixScorer:
    """Prefix scores of every next token, for a batch of CTC posteriors.

    Args:
        blank: the CTC blank id (never a candidate).
        eos: the end-of-sentence id; its score is the probability that the
            prefix is the whole label sequence.
    """

    def __init__(self, blank: int, eos: int) -> None:
        self.blank = blank
        self.eos = eos

    def initial_state(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> CTCState:
        """The empty prefix for posteriors (B, T, V) with valid frames (B,)."""
        B = log_probs.size(0)
        blank_path = log_probs[:, :, self.blank].cumsum(dim=1)  # (B, T) all blanks so far
        r = torch.stack([torch.full_like(blank_path, NEG_INF), blank_path], dim=2)  # (B, T, 2)
        return CTCState(
            log_probs=log_probs,
            lengths=lengths.to(log_probs.device),
            r=r,
            psi=log_probs.new_zeros(B),
            last=torch.full((B,), -1, dtype=torch.long, device=log_probs.device),
        )

    def advance(self, state: CTCState, tokens: torch.Tensor) -> CTCState:
        """The state after appending ``tokens`` (N,) to every row's prefix (the chosen
        candidates of the last :meth:`score`); before any score, the prefix stays empty."""
        if state.candidate_r is None or state.candidate_psi is None:
            return state
        N, T = state.r.shape[:2]
        index = tokens.view(N, 1, 1, 1).expand(N, T, 2, 1)
        r = state.candidate_r.gather(3, index).squeeze(3)  # (N, T, 2)
        psi = state.candidate_psi.gather(1, tokens.view(N, 1)).squeeze(1)  # (N,)
        return CTCState(state.log_probs, state.lengths, r, psi, tokens.clone())

    def score(self, state: CTCState) -> tuple[torch.Tensor, CTCState]:
        """``log psi(h + c) - log psi(h)`` for every row and candidate c, (N, V), and the
        state holding every candidate's recursion for :meth:`advance`."""
        x = state.log_probs  # (N, T, V)
        N, T, V = x.shape
        total = torch.logaddexp(state.r[:, :, 0], state.r[:, :, 1])  # (N, T)
        phi = total.unsqueeze(2).expand(N, T, V).clone()  # (N, T, V)
        repeat = state.last >= 0  # (N,)
        if repeat.any():
            rows = repeat.nonzero().squeeze(1)
            phi[rows, :, state.last[rows]] = state.r[rows, :, 1]  # blank needed between repeats
        empty = (state.last < 0).view(N, 1)  # (N, 1)
        r_new = x.new_full((N, T, 2, V), NEG_INF)  # (N, T, 2, V)
        r_new[:, 0, 0] = torch.where(empty, x[:, 0], torch.full_like(x[:, 0], NEG_INF))
        blank = x[:, :, self.blank].unsqueeze(2)  # (N, T, 1)
        for t in range(1, T):
            r_new[:, t, 0] = torch.logaddexp(r_new[:, t - 1, 0], phi[:, t - 1]) + x[:, t]
            r_new[:, t, 1] = torch.logaddexp(r_new[:, t - 1, 0], r_new[:, t - 1, 1]) + blank[:, t]
        frames = torch.arange(T, device=x.device).view(1, T, 1)  # (1, T, 1)
        valid = frames < state.lengths.view(N, 1, 1)  # (N, T, 1)
        starts = torch.cat([r_new[:, :1, 0], phi[:, :-1] + x[:, 1:]], dim=1)  # (N, T, V)
        psi = starts.masked_fill(~valid, NEG_INF).logsumexp(dim=1)  # (N, V)
        final = total.gather(1, (state.lengths - 1).view(N, 1)).squeeze(1)  # (N,) phi at T
        psi[:, self.eos] = final
        psi[:, self.blank] = NEG_INF
        scores = psi - state.psi.unsqueeze(1)  # (N, V)
        new_state = CTCState(
            state.log_probs, state.lengths, state.r, state.psi, state.last, r_new, psi
        )
        return scores, new_state


@dataclass
class JointState:
    """The attention decoder's state and the CTC state of every row."""

    decoder: Any
    ctc: CTCState

    def select(self, indices: torch.Tensor) -> JointState:
        return JointState(self.decoder.select(indices), self.ctc.select(indices))

    def reorder(self, indices: torch.Tensor, sources: torch.Tensor | None) -> JointState:
        return JointState(
            reorder(self.decoder, indices, sources), self.ctc.reorder(indices, sources)
        )


class JointCTCAttention:
    """A step model scoring ``(1 - weight) * attention + weight * CTC prefix`` log-probs.

    Args:
        model: the attention model (any step model).
        ctc_log_probs: (B, T, V) CTC log-posteriors of the B sources.
        ctc_lengths: (B,) their valid frames.
        weight: lambda in [0, 1].
        blank: the CTC blank id.
    """

    def __init__(
        self,
        model: Any,
        ctc_log_probs: torch.Tensor,
        ctc_lengths: torch.Tensor,
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
        self.ctc_log_probs = ctc_log_probs.float()
        self.ctc_lengths = ctc_lengths

    def init_state(self, encoded: Any) -> JointState:
        return JointState(
            self.model.init_state(encoded),
            self.scorer.initial_state(self.ctc_log_probs, self.ctc_lengths),
        )

    def step(
        self, prev_tokens: torch.Tensor, state: JointState
    ) -> tuple[torch.Tensor, JointState, torch.Tensor]:
        attention_log_probs, decoder_state, attention = self.model.step(prev_tokens, state.decoder)
        ctc_state = self.scorer.advance(state.ctc, prev_tokens)
        ctc_scores, ctc_state = self.scorer.score(ctc_state)
        if self.weight == 0.0:  # 0 * -inf would be NaN
            joint = attention_log_probs
        elif self.weight == 1.0:
            joint = ctc_scores
        else:
            joint = (1.0 - self.weight) * attention_log_probs + self.weight * ctc_scores  # (N, V)
        return joint, JointState(decoder_state, ctc_state), attention
