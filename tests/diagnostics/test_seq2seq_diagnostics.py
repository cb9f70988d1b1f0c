"""Diagnostics of encoder-decoders on models whose answer is known by construction: attention
set by hand (a diagonal aligns perfectly, a fixed position is the one erased), a decoder that
ignores its context (no counterfactual changes anything), a pointer-generator that only
copies; and the whole report on a tiny trained date run."""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
import yaml

import attnrnn
from attnrnn.config import EncoderConfig
from attnrnn.data.dates import DatePair, date_links, split_date_pairs, write_parallel
from attnrnn.decoding.protocol import SearchConfig
from attnrnn.diagnostics.alignment import Reference, alignment_scores
from attnrnn.diagnostics.seq2seq import (
    attention_replaced,
    copy_attention_hits,
    counterfactual_steps,
    diagnose_seq2seq,
    erase_most_attended,
    forced_attention,
    forced_run,
    greedy_output,
    replaced_step_log_probs,
)
from attnrnn.models.pointer_generator import PointerGenerator
from attnrnn.models.seq2seq import Seq2Seq, Seq2SeqConfig
from attnrnn.models.target_side import DecoderConfig

PAD, BOS, EOS, UNK = 0, 1, 2, 3
VOCAB = 12
SOURCE = [4, 5, 6, 7, 8]
TARGET = [9, 10, 11, 4, 5]  # as long as SOURCE: the diagonal aligns them one to one
SEARCH = SearchConfig(beam_size=1, max_length_ratio=1.0, max_length_offset=2)


def model_config(style: str = "luong", attention: str = "additive", **decoder: Any):
    return Seq2SeqConfig(
        embedding_size=8,
        embedding_dropout=0.0,
        encoder=EncoderConfig(cell="gru", hidden_size=6, num_layers=1),
        decoder=DecoderConfig(
            style=style,  # type: ignore[arg-type]
            hidden_size=10,
            attention=attention,
            num_heads=2,
            output_dropout=0.0,
            **decoder,
        ),
    )


def make_seq2seq(style: str = "luong", attention: str = "additive", **decoder: Any) -> Seq2Seq:
    torch.manual_seed(0)
    config = model_config(style, attention, **decoder)
    return Seq2Seq(VOCAB, VOCAB, config, PAD, BOS, EOS).eval()


def make_pointer_generator() -> PointerGenerator:
    torch.manual_seed(0)
    config = model_config(attention="coverage", cell="lstm")
    return PointerGenerator(VOCAB, config, PAD, BOS, EOS, UNK).eval()


def fixed_attention(model: Seq2Seq, monkeypatch, weights_at) -> None:
    """Make the model attend with ``weights_at(step, S)`` (S,) at its n-th attention call."""
    calls = itertools.count()

    def forward(query, keys, values, mask=None, **ignored):
        B, T, S = query.size(0), query.size(1), keys.size(1)
        row = weights_at(next(calls), S).to(values.dtype)  # (S,)
        weights = row.expand(B, T, S)
        return torch.bmm(weights, values), weights

    monkeypatch.setattr(model.decoder.attention, "forward", forward)


def one_hot(position: int, size: int) -> torch.Tensor:
    row = torch.zeros(size)
    row[min(position, size - 1)] = 1.0
    return row


# --------------------------------------------------------------------------- alignment


@pytest.mark.parametrize("style", ["luong", "bahdanau"])
def test_forced_attention_is_the_teacher_forced_pass(style):
    model = make_seq2seq(style)
    source, target = torch.tensor([SOURCE]), torch.tensor([[BOS, *TARGET]])
    with torch.no_grad():
        expected = model(source, torch.tensor([len(SOURCE)]), target).attention[0]  # (T+1, S)
    attention = forced_attention(model, SOURCE, TARGET)
    assert attention.shape == (len(TARGET) + 1, len(SOURCE))
    torch.testing.assert_close(attention, expected)


def test_a_diagonal_attention_has_aer_0_against_the_diagonal_and_1_reversed(monkeypatch):
    model = make_seq2seq()
    fixed_attention(model, monkeypatch, one_hot)
    attention = forced_attention(model, SOURCE, TARGET)[: len(TARGET)]  # (T, S), EOS row off
    S = len(SOURCE)
    diagonal = {(t, t) for t in range(S)}
    reversed_links = {(t, S - 1 - t) for t in range(S)}
    reversed_links.discard((S // 2, S // 2))  # the middle of the reversal is on the diagonal
    perfect = alignment_scores(attention, diagonal)
    wrong = alignment_scores(attention, reversed_links)
    for name in ("argmax", "threshold"):
        assert perfect[f"aer_{name}"] == 0.0
        assert perfect[f"precision_{name}"] == perfect[f"recall_{name}"] == 1.0
        assert wrong[f"aer_{name}"] == 1.0
        assert wrong[f"recall_{name}"] == 0.0


# --------------------------------------------------------------------------- counterfactual steps


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_seq2seq("luong"),
        lambda: make_seq2seq("bahdanau", cell="lstm", num_layers=2),
        lambda: make_seq2seq("luong", "location", location_kernel_size=3),
        make_pointer_generator,
    ],
    ids=["luong", "bahdanau-lstm", "location", "pointer-generator"],
)
def test_replacing_every_step_by_its_own_weights_changes_nothing(make):
    model = make()
    run = forced_run(model, SOURCE, TARGET)
    replaced = replaced_step_log_probs(model, run, run.attention)
    torch.testing.assert_close(replaced, run.log_probs, rtol=1e-5, atol=1e-5)


def test_a_decoder_that_ignores_its_context_never_changes_its_output():
    model = make_seq2seq("luong")
    with torch.no_grad():
        model.decoder.attentional_layer.weight[:, : model.encoder.output_size] = 0.0
    effects = counterfactual_steps(model, SOURCE, TARGET, torch.Generator().manual_seed(0))
    assert set(effects) == {"permuted", "uniform", "zero"}
    for kind, effect in effects.items():
        assert len(effect.flipped) == len(TARGET) + 1
        assert effect.flip_rate == 0.0
        assert max(effect.output_tvd) < 1e-5
        assert (effect.attention_jsd is None) == (kind == "zero")
    assert max(effects["uniform"].attention_jsd or []) > 0  # the weights did change


def test_counterfactuals_of_a_sensitive_model_are_in_range():
    model = make_seq2seq("bahdanau")
    effects = counterfactual_steps(model, SOURCE, TARGET, torch.Generator().manual_seed(0))
    for effect in effects.values():
        assert 0.0 <= effect.flip_rate <= 1.0
        assert all(0.0 <= value <= 1.0 for value in effect.output_tvd)
        assert max(effect.output_tvd) > 0  # the context reaches the output
        assert all(0.0 <= value <= 1.0 for value in effect.attention_jsd or [])


def test_attention_replaced_restores_the_module_and_refuses_multi_head():
    model = make_seq2seq()
    attention = model.decoder.attention
    before = forced_attention(model, SOURCE, TARGET)
    with attention_replaced(model, torch.full((1, len(SOURCE)), 0.2)):
        assert "forward" in vars(attention)
    assert "forward" not in vars(attention)
    torch.testing.assert_close(forced_attention(model, SOURCE, TARGET), before)
    multi_head = make_seq2seq(attention="multi_head")
    with (
        pytest.raises(ValueError, match="weights @ values"),
        attention_replaced(multi_head, torch.ones(1, 1)),
    ):
        pass


# --------------------------------------------------------------------------- erasure and copying


def test_erasure_removes_the_attended_token_or_its_whole_word(monkeypatch):
    model = make_seq2seq()
    model.train()
    fixed_attention(model, monkeypatch, lambda step, size: one_hot(2, size))
    by_token = erase_most_attended(model, SOURCE, SEARCH)
    assert model.training  # the mode is restored
    assert by_token.removed == [2]
    assert by_token.output == greedy_output(model, SOURCE, SEARCH)
    assert by_token.erased_output == greedy_output(model, [4, 5, 7, 8], SEARCH)
    assert by_token.changed == (by_token.output != by_token.erased_output)
    assert torch.isfinite(torch.tensor(by_token.log_prob_drop))
    by_word = erase_most_attended(model, SOURCE, SEARCH, source_words=[0, 0, 1, 1, 2])
    assert by_word.removed == [2, 3]
    with pytest.raises(ValueError, match="single word"):
        erase_most_attended(model, SOURCE, SEARCH, source_words=[0, 0, 0, 0, 0])


@pytest.mark.parametrize(
    ("weights", "copied_token", "hit"),
    [([0.4, 0.3, 0.3], VOCAB, False), ([0.6, 0.2, 0.2], 4, True)],
    ids=["spread-over-an-unknown-word", "on-the-copied-word"],
)
def test_copied_words_and_the_most_attended_position(monkeypatch, weights, copied_token, hit):
    """A pointer-generator that only copies (p_gen ~ 0) with fixed attention: it copies the
    token with the most attention over all its occurrences; the unknown word (extended id
    VOCAB) twice at 0.3 beats the known word 4 once at 0.4, though position 0 is the
    most-attended one."""
    model = make_pointer_generator()
    with torch.no_grad():
        model.generation_gate.weight.zero_()
        model.generation_gate.bias.fill_(-30.0)
    fixed_attention(model, monkeypatch, lambda step, size: torch.tensor(weights))
    source = [4, VOCAB, VOCAB]
    output = greedy_output(model, source, SEARCH)
    assert output == [copied_token] * 5  # max length 1.0 * 3 + 2; EOS is never generated
    copies = copy_attention_hits(model, source, output)
    assert copies.copied == list(range(5))
    assert copies.hits == [hit] * 5


# --------------------------------------------------------------------------- the report


@dataclass
class StubTrained:
    """What diagnose_seq2seq reads of a trained model."""

    model: Seq2Seq
    config: Any = field(default_factory=lambda: type("Config", (), {"search": SEARCH})())
    lock: Any = field(default_factory=threading.RLock)


def check_sections(sections: list[dict], names: list[str]) -> None:
    assert [section["name"] for section in sections] == names
    text = json.dumps(sections, allow_nan=False)  # JSON-able, no NaN
    assert json.loads(text) == sections
    for section in sections:
        assert set(section) == {"name", "title", "explanation", "summary", "distributions", "notes"}
        for name, value in section["summary"].items():
            if value is not None and ("rate" in name or "share" in name or "aer" in name):
                assert 0.0 <= value <= 1.0, (section["name"], name, value)
        for values in section["distributions"].values():
            assert all(isinstance(value, float) for value in values)


def test_the_pointer_generator_report_has_a_copying_section():
    model = make_pointer_generator()
    sources = [SOURCE, [4, VOCAB, 6], [5]]
    sections = diagnose_seq2seq(StubTrained(model), sources)  # type: ignore[arg-type]
    check_sections(sections, ["counterfactual_steps", "erasure", "copying", "entropy"])
    erasure = next(section for section in sections if section["name"] == "erasure")
    assert erasure["summary"]["sources"] == 2
    assert "single token" in erasure["notes"][0]


@pytest.fixture(scope="module")
def date_run(tmp_path_factory, tiny_translation_config):
    """A character-level date model trained for a few steps."""
    directory = tmp_path_factory.mktemp("seq2seq-diagnostics")
    splits = split_date_pairs(200, 8, 0, seed=5)
    for name, pairs in zip(("train", "dev"), splits, strict=False):
        write_parallel(pairs, directory / f"{name}.src", directory / f"{name}.tgt")
    config = tiny_translation_config(
        directory / "train",
        directory / "dev",
        tokenizer={"joint": False},
        trainer={"epochs": 1, "max_steps": 10},
        search={"beam_size": 1},
    )
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    attnrnn.train(path, directory / "RUN")
    return attnrnn.load(directory / "RUN", device="cpu"), splits[1]


def test_diagnose_a_trained_date_model(date_run):
    trained, pairs = date_run
    pairs: list[DatePair] = pairs[:4]
    sources = [trained.assets.source.encode(pair.source) for pair in pairs]
    targets = [trained.assets.target.encode(pair.target) for pair in pairs]
    links = [date_links(pair) for pair in pairs]
    references = [Reference(pair_links.sure, pair_links.possible) for pair_links in links]
    sections = diagnose_seq2seq(trained, sources, targets, references, counterfactual_on="target")
    check_sections(sections, ["alignment", "counterfactual_steps", "erasure", "entropy"])
    alignment, counterfactual = sections[0], sections[1]
    assert alignment["summary"]["pairs"] == 4
    assert len(alignment["distributions"]["aer_argmax_per_pair"]) == 4
    steps = sum(len(target) + 1 for target in targets)  # teacher-forced on the targets
    assert counterfactual["summary"]["steps"] == steps
    assert len(counterfactual["distributions"]["tvd_permuted_per_step"]) == steps
