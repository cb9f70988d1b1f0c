"""Decoding with a lexical shortlist (:mod:`attnrnn.data.shortlists`): the output layer
restricted, per batch, to the target words the batch's source words translate to.

Most of a translation step's arithmetic is the output layer over the whole target
vocabulary, yet a sentence's translation uses few of its words. At decoding, the union of
the shortlist's words for the batch's sources is the only output the model scores:
log-probabilities are normalized over it, so the output can change;
``benchmarks/results/speed.json`` records the BLEU change.

:class:`Shortlisted` wraps a step model (it is one itself): the search sees token
positions in the shortlist, the model real ids; :meth:`Shortlisted.restore` maps the
finished hypotheses back to ids.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from attnrnn.data.shortlists import SHORTLIST_FILE, Shortlist, build_shortlist, read_shortlist
from attnrnn.decoding.protocol import Hypothesis

__all__ = ["SHORTLIST_FILE", "Shortlist", "Shortlisted", "build_shortlist", "read_shortlist"]


class Shortlisted:
    """A step model whose outputs are the target ids ``ids`` (V',) only: its tokens are
    positions in ``ids`` (the specials included), its log-probabilities (N, V')."""

    def __init__(self, model: Any, ids: torch.Tensor) -> None:
        self.model = model
        self.ids = ids  # (V',) sorted target ids
        position = {int(token): index for index, token in enumerate(ids.tolist())}
        for name in ("bos_index", "eos_index", "pad_index"):
            special = getattr(model, name)
            if special not in position:
                raise ValueError(f"the shortlist lacks the model's {name} ({special})")
            setattr(self, name, position[special])
        layer = model.output_layer
        weight, bias = layer.weight, layer.bias
        if callable(weight):  # an int8 layer (quantize_int8): its weights as floats
            weight, bias = weight().dequantize(), bias()
        self.weight = weight.index_select(0, ids)  # (V', A), once per batch
        self.bias = None if bias is None else bias.index_select(0, ids)

    def init_state(self, encoded: Any) -> Any:
        return self.model.init_state(encoded)

    def step(self, prev_tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any, torch.Tensor]:
        return self.model.step(self.ids[prev_tokens], state, outputs=(self.weight, self.bias))

    def restore(self, hypotheses: list[list[Hypothesis]]) -> list[list[Hypothesis]]:
        """Finished hypotheses with their tokens as target ids again."""
        ids = self.ids.tolist()
        return [
            [dataclasses.replace(h, tokens=[ids[token] for token in h.tokens]) for h in n_best]
            for n_best in hypotheses
        ]
