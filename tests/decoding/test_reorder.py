"""Search moves the source-only tensors of a state (memory, keys, mask, CTC posteriors)
only when sources are dropped: the outputs equal those of a state that copies every
tensor at every step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch

from attnrnn.config import EncoderConfig
from attnrnn.decoding import SearchConfig, search
from attnrnn.models.seq2seq import Seq2Seq, Seq2SeqConfig
from attnrnn.models.target_side import DecoderConfig
from attnrnn.nn.decoders import SOURCE_FIELDS


@dataclass
class SelectOnly:
    """A state without ``reorder``: search falls back to ``select`` of everything."""

    state: Any

    def select(self, indices: torch.Tensor) -> SelectOnly:
        return SelectOnly(self.state.select(indices))


class SelectOnlyModel:
    def __init__(self, model: Seq2Seq) -> None:
        self.model = model
        self.bos_index, self.eos_index, self.pad_index = (
            model.bos_index,
            model.eos_index,
            model.pad_index,
        )

    def step(self, prev_tokens, state):
        log_probs, new, attention = self.model.step(prev_tokens, state.state)
        return log_probs, SelectOnly(new), attention


def model(cell: str, attention: str) -> Seq2Seq:
    torch.manual_seed(0)
    config = Seq2SeqConfig(
        embedding_size=16,
        encoder=EncoderConfig(cell=cell, hidden_size=12, num_layers=1),
        decoder=DecoderConfig(
            cell=cell, hidden_size=20, attention=attention, attention_size=10, output_dropout=0.0
        ),
    )
    return Seq2Seq(30, 25, config, 0, 2, 3).eval()


@pytest.mark.parametrize(("cell", "attention"), [("gru", "additive"), ("lstm", "location")])
@pytest.mark.parametrize("beam", [1, 4])
def test_reordering_source_tensors_lazily_changes_no_output(cell, attention, beam):
    seq2seq = model(cell, attention)
    generator = torch.Generator().manual_seed(1)
    lengths = torch.tensor([9, 2, 6, 4, 7])
    source = torch.randint(4, 30, (5, 9), generator=generator)
    for row, length in enumerate(lengths.tolist()):
        source[row, length:] = 0
    config = SearchConfig(beam_size=beam, n_best=beam, max_length_ratio=1.0, max_length_offset=3)
    with torch.no_grad():
        state = seq2seq.init_state(seq2seq.encode(source, lengths))
        lazy = search(seq2seq, state, lengths, config)
        eager = search(SelectOnlyModel(seq2seq), SelectOnly(state), lengths, config)
    assert [[h.tokens for h in n] for n in lazy] == [[h.tokens for h in n] for n in eager]
    assert [[h.score for h in n] for n in lazy] == [[h.score for h in n] for n in eager]


def test_reorder_keeps_the_source_tensors_when_no_source_moves():
    seq2seq = model("gru", "additive")
    lengths = torch.tensor([3, 2])
    with torch.no_grad():
        state = seq2seq.init_state(seq2seq.encode(torch.tensor([[5, 6, 7], [8, 9, 0]]), lengths))
    swapped = state.reorder(torch.tensor([1, 0]), None)
    assert swapped.memory is state.memory and swapped.memory_mask is state.memory_mask
    torch.testing.assert_close(swapped.hidden, state.hidden.flip(0))
    moved = state.reorder(torch.tensor([1, 1]), torch.tensor([1, 1]))
    for name in SOURCE_FIELDS:
        value = getattr(state, name)
        if value is not None:
            torch.testing.assert_close(getattr(moved, name), value[[1, 1]])
