"""Batched beam search over the step protocol.

The b sources still searched decode together as b x K rows (row ``i * K + k``
is beam k of live source i). At the first step only beam 0 of each source is
live (the others start at -inf), so the K beams are distinct. Every step:

1. **candidates**: each beam's cumulative raw log-probability plus every
   allowed next token gives K x V candidates per source; the best 2K are kept.
2. **finish**: EOS candidates ranked within the first K become finished
   hypotheses (fairseq); they are scored with the length and coverage
   penalties of :func:`~attnrnn.decoding.hypotheses.score_hypothesis`.
3. **advance**: the K best non-EOS candidates continue (2K candidates hold at
   most K EOS, one per beam); the state, tokens and attention are reordered by
   the beam each one extends. Selection uses the raw log-probability; only the
   final ranking uses the penalised score.
4. **done**: a source is done when it has K finished hypotheses; when its
   maximum length is reached (its live beams are then finished as they are,
   without EOS); or when no live beam can beat the worst of its n_best best
   finished ones. Log-probabilities only decrease, the length penalty only
   grows to ``lp(max_length)`` and the coverage term is at most 0, so a live
   beam's best reachable score is ``raw / lp(max_length)``. A finished best
   hypothesis alone never stops the other beams.
5. **shrink**: done sources are dropped; reordering and dropping are one
   ``state.select`` per step.

Ties: ``torch.topk`` decides which of equal candidates enter the best 2K; among
those, the lower flat index (earlier beam, then lower token id) ranks first.
Every source's candidates are ranked on its own row, so a source gets the same
hypotheses in any batch. Final n-best lists are sorted by score, stably
(equal scores keep the order they finished in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from attnrnn.decoding.hypotheses import (
    FinishedHypotheses,
    Prefixes,
    allowed_log_probs,
    length_penalty,
)
from attnrnn.decoding.protocol import (
    Hypothesis,
    SearchConfig,
    StepModel,
    max_output_lengths,
    reorder,
)


@dataclass
class _Candidates:
    """The best 2K continuations of every live source, best first.

    log_probs: (b, 2K) cumulative raw log-probability.
    origins: (b, 2K) the beam (0 .. K-1) each one extends.
    tokens: (b, 2K) the token it appends.
    """

    log_probs: torch.Tensor
    origins: torch.Tensor
    tokens: torch.Tensor


def _top_candidates(
    beam_log_probs: torch.Tensor, next_log_probs: torch.Tensor, beam_size: int
) -> _Candidates:
    """The best 2K of the K x V continuations of every source.

    Args:
        beam_log_probs: (b, K) cumulative log-probability of every beam.
        next_log_probs: (b * K, V) allowed next-token log-probabilities; they become
            the candidates' scores, in place (no new (b, K, V) tensor per step).
    """
    b, K = beam_log_probs.shape
    V = next_log_probs.size(1)
    scores = next_log_probs.view(b, K, V).add_(beam_log_probs.unsqueeze(2))  # (b, K, V)
    scores = scores.view(b, K * V)  # (b, K * V)
    values, indices = scores.topk(min(2 * K, K * V), dim=1)  # (b, 2K)
    indices, by_index = indices.sort(dim=1)  # (b, 2K) flat index order
    values = values.gather(1, by_index)  # (b, 2K)
    values, by_value = values.sort(dim=1, descending=True, stable=True)  # (b, 2K)
    indices = indices.gather(1, by_value)  # (b, 2K) best first, ties by flat index
    return _Candidates(values, indices // V, indices % V)


def _finish_eos(
    candidates: _Candidates,
    prefixes: Prefixes,
    attention: torch.Tensor,
    sources: list[int],
    finished: FinishedHypotheses,
) -> None:
    """Finish the finite EOS candidates ranked within the first K.

    Args:
        prefixes: (b * K, t) rows before this step.
        attention: (b * K, S) this step's attention.
    """
    K = prefixes.tokens.size(0) // len(sources)
    top = slice(0, K)
    ending = (candidates.tokens[:, top] == finished.eos_index) & torch.isfinite(
        candidates.log_probs[:, top]
    )  # (b, K)
    positions, ranks = ending.nonzero(as_tuple=True)  # (n,), (n,) in rank order
    if positions.numel() == 0:
        return
    rows = positions * K + candidates.origins[positions, ranks]  # (n,)
    ended = prefixes.select(rows).extend(candidates.tokens[positions, ranks], attention[rows])
    ended_sources = [sources[position] for position in positions.tolist()]
    finished.add(ended_sources, ended, candidates.log_probs[positions, ranks].tolist())


def _advance(
    candidates: _Candidates, prefixes: Prefixes, attention: torch.Tensor, eos_index: int
) -> tuple[torch.Tensor, Prefixes, torch.Tensor]:
    """Continue the K best non-EOS candidates of every source.

    Args:
        prefixes: (b * K, t) rows before this step.
        attention: (b * K, S) this step's attention.

    Returns:
        the new beams' log-probabilities (b, K), their prefixes (b * K, t + 1),
        and the rows (b * K,) of the step's state they extend.
    """
    b = candidates.tokens.size(0)
    K = prefixes.tokens.size(0) // b
    is_eos = (candidates.tokens == eos_index).long()  # (b, 2K)
    chosen = is_eos.sort(dim=1, stable=True).indices[:, :K]  # (b, K) first K non-EOS
    origins = candidates.origins.gather(1, chosen)  # (b, K)
    offsets = torch.arange(b, device=origins.device).unsqueeze(1) * K  # (b, 1)
    rows = (offsets + origins).view(-1)  # (b * K,)
    tokens = candidates.tokens.gather(1, chosen).view(-1)  # (b * K,)
    new_prefixes = prefixes.select(rows).extend(tokens, attention[rows])
    return candidates.log_probs.gather(1, chosen), new_prefixes, rows


def _cannot_improve(
    hypotheses: list[Hypothesis], best_live: float, max_length: int, config: SearchConfig
) -> bool:
    """Whether no live beam can beat the worst of the n_best best finished hypotheses.

    ``best_live`` <= 0 is the best raw log-probability of the source's live beams.
    """
    if len(hypotheses) < config.n_best:
        return False
    scores = sorted((hypothesis.score for hypothesis in hypotheses), reverse=True)
    best_reachable = best_live / length_penalty(max_length, config.length_penalty)
    return best_reachable <= scores[config.n_best - 1]


def _finish_sources(
    beam_log_probs: torch.Tensor,
    prefixes: Prefixes,
    sources: list[int],
    step: int,
    max_lengths: list[int],
    finished: FinishedHypotheses,
) -> list[bool]:
    """Which live sources are done after ``step``; the live beams of those at
    their maximum length are finished as they are (finite ones only).

    Args:
        beam_log_probs: (b, K) cumulative log-probabilities of the new beams.
        prefixes: (b * K, step) their prefixes.
    """
    config = finished.config
    K = beam_log_probs.size(1)
    at_limit = [step >= max_lengths[source] for source in sources]
    limit_rows = [i * K + k for i, limit in enumerate(at_limit) if limit for k in range(K)]
    if limit_rows:
        rows = torch.tensor(limit_rows, device=beam_log_probs.device)  # (n,)
        log_probs = beam_log_probs.view(-1)[rows]  # (n,)
        live = torch.isfinite(log_probs).nonzero().squeeze(1)  # (n_live,)
        live_sources = [sources[row // K] for row in rows[live].tolist()]
        finished.add(live_sources, prefixes.select(rows[live]), log_probs[live].tolist())
    best_live = beam_log_probs.max(dim=1).values.tolist()  # (b,)
    return [
        limit
        or len(finished.hypotheses[source]) >= K
        or _cannot_improve(finished.hypotheses[source], best, max_lengths[source], config)
        for source, limit, best in zip(sources, at_limit, best_live, strict=True)
    ]


def _rows_of(positions: torch.Tensor, beam_size: int) -> torch.Tensor:
    """The rows (n * K,) of the sources at ``positions`` (n,), beam by beam."""
    beams = torch.arange(beam_size, device=positions.device)  # (K,)
    return (positions.unsqueeze(1) * beam_size + beams).view(-1)  # (n * K,)


def beam_search(
    model: StepModel, state: Any, source_lengths: torch.Tensor, config: SearchConfig
) -> list[list[Hypothesis]]:
    """Decode B sources with K = ``config.beam_size`` beams each.

    Args:
        model: anything following :class:`~attnrnn.decoding.protocol.StepModel`.
        state: the model's state for the B sources (``model.init_state(...)``).
        source_lengths: (B,) valid source positions of each source, on the
            model's device.
        config: the search settings.

    Returns:
        B lists of ``config.n_best`` :class:`Hypothesis` (fewer only when fewer
        than n_best finite hypotheses exist), best first, in source order.
    """
    batch_size, K = source_lengths.numel(), config.beam_size
    device = source_lengths.device
    finished = FinishedHypotheses(config, model.eos_index, source_lengths.tolist())
    max_lengths = max_output_lengths(source_lengths, config)
    sources = list(range(batch_size))  # the source of every live position
    state = state.select(torch.arange(batch_size, device=device).repeat_interleave(K))
    beam_log_probs = torch.full((batch_size, K), float("-inf"), device=device)  # (B, K)
    beam_log_probs[:, 0] = 0.0
    prefixes = Prefixes.empty(batch_size * K, device)
    step = 0
    while True:
        step += 1
        log_probs, state, attention = model.step(prefixes.last_tokens(model.bos_index), state)
        log_probs = allowed_log_probs(log_probs, prefixes.tokens, config, model)  # (b * K, V)
        candidates = _top_candidates(beam_log_probs, log_probs, K)
        _finish_eos(candidates, prefixes, attention, sources, finished)
        beam_log_probs, prefixes, rows = _advance(candidates, prefixes, attention, model.eos_index)
        done = _finish_sources(beam_log_probs, prefixes, sources, step, max_lengths, finished)
        kept = [position for position, is_done in enumerate(done) if not is_done]
        if not kept:
            return finished.best(config.n_best)
        kept_positions = torch.tensor(kept, device=rows.device)  # (b',)
        kept_rows = _rows_of(kept_positions, K)  # (b' * K,)
        # Every new row extends a row of its own source: the source-only tensors move
        # only when sources were dropped (then kept_rows holds a row of each one).
        sources_moved = kept_rows if len(kept) < len(done) else None
        state = reorder(state, rows[kept_rows], sources_moved)
        prefixes = prefixes.select(kept_rows)
        beam_log_probs = beam_log_probs[kept_positions]  # (b', K)
        sources = [sources[position] for position in kept]
