"""Greedy search over the step protocol.

Greedy search keeps one row per source: at every step each row takes its most
probable allowed token (``max`` takes the lowest token id on ties). A row that
produces EOS, or reaches its source's maximum length (it then ends without
EOS), is finished and dropped from the state with ``state.select``, so the
batch shrinks as sources finish.

The constraints, the prefixes and the scoring of finished outputs are the
bookkeeping of :mod:`attnrnn.decoding.hypotheses`, shared with
:mod:`attnrnn.decoding.beam`, so that beam search with K = 1 gives exactly the
tokens and scores of greedy search.

Search only calls ``model.step`` and ``state.select``; it never looks inside
the state. ``source_lengths`` must be on the model's device: the first step's
BOS tokens and the row indices are made there.
"""

from __future__ import annotations

from typing import Any

import torch

from attnrnn.decoding.hypotheses import FinishedHypotheses, Prefixes, allowed_log_probs
from attnrnn.decoding.protocol import Hypothesis, SearchConfig, StepModel, max_output_lengths


def greedy_search(
    model: StepModel, state: Any, source_lengths: torch.Tensor, config: SearchConfig
) -> list[list[Hypothesis]]:
    """Decode B sources greedily, one hypothesis each.

    Args:
        model: anything following :class:`~attnrnn.decoding.protocol.StepModel`.
        state: the model's state for the B sources (``model.init_state(...)``).
        source_lengths: (B,) valid source positions of each source, on the
            model's device.
        config: min_length, no_repeat_ngram_size, maximum length and the
            penalties are used; beam_size and n_best are not.

    Returns:
        B lists of one :class:`Hypothesis`, in source order.
    """
    batch_size = source_lengths.numel()
    device = source_lengths.device
    finished = FinishedHypotheses(config, model.eos_index, source_lengths.tolist())
    max_lengths = torch.tensor(max_output_lengths(source_lengths, config), device=device)  # (B,)
    sources = torch.arange(batch_size, device=device)  # (N,) the source of every row
    prefixes = Prefixes.empty(batch_size, device)
    total_log_probs = torch.zeros(batch_size, device=device)  # (N,)
    step = 0
    while True:
        step += 1
        log_probs, state, attention = model.step(prefixes.last_tokens(model.bos_index), state)
        log_probs = allowed_log_probs(log_probs, prefixes.tokens, config, model)  # (N, V)
        best_log_probs, best_tokens = log_probs.max(dim=1)  # (N,), (N,)
        total_log_probs = total_log_probs + best_log_probs  # (N,)
        prefixes = prefixes.extend(best_tokens, attention)
        done = (best_tokens == model.eos_index) | (max_lengths[sources] <= step)  # (N,)
        ended = done.nonzero().squeeze(1)  # (N_done,)
        finished.add(
            sources[ended].tolist(), prefixes.select(ended), total_log_probs[ended].tolist()
        )
        remaining = (~done).nonzero().squeeze(1)  # (N',)
        if remaining.numel() == 0:
            return finished.best(1)
        if remaining.numel() < done.numel():  # rows never move otherwise
            state = state.select(remaining)
            sources, prefixes = sources[remaining], prefixes.select(remaining)
            total_log_probs = total_log_probs[remaining]
