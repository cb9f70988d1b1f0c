"""The prepared inference step of the Luong GRU additive decoder: the same step as the
model's, in float64 to rounding; the same search results; the fallbacks; bf16 matmuls."""

from __future__ import annotations

import pytest
import torch

from attnrnn.config import EncoderConfig
from attnrnn.decoding import SearchConfig, search
from attnrnn.decoding.shortlist import Shortlisted
from attnrnn.models.quantize import quantize_int8
from attnrnn.models.seq2seq import Seq2Seq, Seq2SeqConfig
from attnrnn.models.target_side import DecoderConfig
from attnrnn.nn import decoder_step
from attnrnn.nn.decoder_step import LuongGRUAdditiveStep, supports

PAD, BOS, EOS = 0, 2, 3
SOURCE = torch.tensor([[5, 6, 7, 8, 9, 4], [10, 11, 12, 0, 0, 0], [7, 7, 0, 0, 0, 0]])
LENGTHS = torch.tensor([6, 3, 2])


def model(dtype: torch.dtype = torch.float64, **decoder: object) -> Seq2Seq:
    torch.manual_seed(0)
    config = Seq2SeqConfig(
        embedding_size=16,
        encoder=EncoderConfig(cell="gru", hidden_size=12, num_layers=1),
        decoder=DecoderConfig(
            **{
                "hidden_size": 20,
                "attention_size": 10,
                "attentional_size": 14,
                "output_dropout": 0.3,
                **decoder,
            }
        ),
    )
    return Seq2Seq(40, 30, config, PAD, BOS, EOS).to(dtype).eval()


def start(seq2seq: Seq2Seq):
    with torch.no_grad():
        return seq2seq.init_state(seq2seq.encode(SOURCE, LENGTHS))


@pytest.mark.parametrize("table", [True, False])
def test_three_steps_equal_the_model_steps(monkeypatch, table):
    seq2seq = model()
    if not table:  # the gather-and-matmul path of a vocabulary too large to tabulate
        monkeypatch.setattr(decoder_step, "MAX_TABLE_ELEMENTS", 0)
    prepared = LuongGRUAdditiveStep(seq2seq)
    assert (prepared.token_gates is not None) == table
    ours = theirs = start(seq2seq)
    tokens = torch.tensor([BOS, BOS, BOS])
    with torch.no_grad():
        for following in ([7, 8, 9], [EOS, 4, 11]):
            mine = prepared.step(tokens, ours)
            reference = seq2seq.step(tokens, theirs)
            for a, b in zip(mine[::2], reference[::2], strict=True):  # log-probs, attention
                torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
            ours, theirs = mine[1], reference[1]
            for name in ("hidden", "input_feed", "coverage"):
                torch.testing.assert_close(getattr(ours, name), getattr(theirs, name))
            tokens = torch.tensor(following)
    assert ours.memory is theirs.memory  # the source side is passed through untouched


def test_a_shortlisted_step_equals_the_model_shortlisted():
    seq2seq = model()
    ids = torch.tensor([0, 2, 3, 5, 8, 13, 21])
    tokens = torch.tensor([1, 0, 4])  # positions in ids
    with torch.no_grad():
        mine = Shortlisted(LuongGRUAdditiveStep(seq2seq), ids).step(tokens, start(seq2seq))
        reference = Shortlisted(seq2seq, ids).step(tokens, start(seq2seq))
    torch.testing.assert_close(mine[0], reference[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("beam", [1, 4])
def test_search_finds_the_same_hypotheses(beam):
    seq2seq = model()
    config = SearchConfig(beam_size=beam, n_best=beam, max_length_offset=5)
    with torch.no_grad():
        found = search(LuongGRUAdditiveStep(seq2seq), start(seq2seq), LENGTHS, config)
        expected = search(seq2seq, start(seq2seq), LENGTHS, config)
    assert [[h.tokens for h in n] for n in found] == [[h.tokens for h in n] for n in expected]
    for ours, theirs in zip(found, expected, strict=True):
        for a, b in zip(ours, theirs, strict=True):
            assert a.score == pytest.approx(b.score, rel=1e-9)
            torch.testing.assert_close(a.attention, b.attention)


@pytest.mark.parametrize(
    "decoder",
    [
        {"style": "bahdanau"},
        {"cell": "lstm"},
        {"attention": "general"},
        {"input_feeding": False},
        {"num_layers": 2},
    ],
)
def test_other_decoders_keep_the_model_step(decoder):
    assert not supports(model(**decoder))
    with pytest.raises(ValueError, match="one-layer Luong GRU"):
        LuongGRUAdditiveStep(model(**decoder))


def test_training_mode_and_int8_keep_the_model_step():
    seq2seq = model(torch.float32)
    assert supports(seq2seq)
    assert not supports(seq2seq.train())  # dropout: the model's step draws its masks
    assert not supports(quantize_int8(seq2seq.eval()))


def test_a_shortlist_scores_an_int8_model():
    seq2seq = quantize_int8(model(torch.float32))
    ids = torch.tensor([0, 2, 3, 5, 8, 13, 21])
    listed = Shortlisted(seq2seq, ids)
    assert listed.weight.shape == (7, 14) and listed.weight.dtype == torch.float32
    config = SearchConfig(beam_size=2, n_best=1, max_length_offset=3)
    with torch.no_grad():
        found = listed.restore(search(listed, start(seq2seq), LENGTHS, config))
    assert all(set(n[0].tokens) <= set(ids.tolist()) for n in found)


def test_bf16_matmuls_stay_close_to_fp32():
    seq2seq = model(torch.float32)
    full = LuongGRUAdditiveStep(seq2seq)
    half = LuongGRUAdditiveStep(seq2seq, torch.bfloat16)
    assert half.recurrent.weight.dtype == torch.bfloat16
    assert half.token_gates is not None and half.token_gates.dtype == torch.float32
    tokens = torch.tensor([BOS, 5, 6])
    # the encoder runs as a bf16 copy; the model keeps its fp32 weights
    assert half.encoder is not None and full.encoder is None
    assert {p.dtype for p in half.encoder.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in seq2seq.parameters()} == {torch.float32}
    with torch.no_grad():
        encoded, exact = half.encode(SOURCE, LENGTHS), seq2seq.encode(SOURCE, LENGTHS)
        assert encoded.memory.dtype == torch.bfloat16
        assert torch.equal(encoded.memory_mask, exact.memory_mask)
        assert (encoded.memory.float() - exact.memory).abs().max() < 0.03
        assert (encoded.final.float() - exact.final).abs().max() < 0.03
        state = half.init_state(encoded)
        # every state tensor in fp32: the keys (computed in bf16) converted once, not at
        # every step's add
        assert state.projected_keys is not None
        tensors = (state.hidden, state.memory, state.coverage, state.projected_keys)
        assert {tensor.dtype for tensor in tensors} == {torch.float32}
        reference, ours = full.step(tokens, start(seq2seq)), half.step(tokens, state)
    assert ours[0].dtype == torch.float32 and ours[1].hidden.dtype == torch.float32
    # bf16 keeps 8 significant bits: a few hundredths on log-probabilities of this size
    assert (ours[0] - reference[0]).abs().max() < 0.1
    assert (ours[2] - reference[2]).abs().max() < 0.02
    assert (ours[1].hidden - reference[1].hidden).abs().max() < 0.05
