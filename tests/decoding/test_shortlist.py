"""Lexical shortlists: built from co-occurrence, scoring only the batch's candidates, the
same search as the full vocabulary when every word is kept, and the CLI around them."""

from __future__ import annotations

import json

import pytest
import torch

from attnrnn.config import EncoderConfig
from attnrnn.decoding import SearchConfig, search
from attnrnn.decoding.shortlist import Shortlist, Shortlisted, build_shortlist, read_shortlist
from attnrnn.errors import RunError
from attnrnn.models.seq2seq import Seq2Seq, Seq2SeqConfig
from attnrnn.models.target_side import DecoderConfig

PAD, UNK, BOS, EOS = 0, 1, 2, 3


def test_build_keeps_each_source_words_translations_and_the_frequent_words():
    # source 10 always comes with target 20, source 11 with target 21; target 30 is in
    # every pair (a function word)
    pairs = [([10, 12], [20, 30]), ([11, 12], [21, 30]), ([10], [20, 30]), ([11], [21, 30])]
    lexical = build_shortlist(pairs, per_word=1, frequent=1, specials=[PAD, BOS, EOS, UNK])
    assert lexical.per_source[10] == [20] and lexical.per_source[11] == [21]
    assert lexical.always == [PAD, UNK, BOS, EOS, 30]
    assert lexical.candidates([[10, 99]]) == [PAD, UNK, BOS, EOS, 20, 30]
    assert Shortlist.from_dict(json.loads(json.dumps(lexical.to_dict()))) == lexical


def model() -> Seq2Seq:
    torch.manual_seed(0)
    config = Seq2SeqConfig(
        embedding_size=16,
        encoder=EncoderConfig(cell="gru", hidden_size=12, num_layers=1),
        decoder=DecoderConfig(hidden_size=20, attention_size=10, output_dropout=0.0),
    )
    return Seq2Seq(40, 30, config, PAD, BOS, EOS).eval()


def decode(seq2seq: Seq2Seq, ids: torch.Tensor | None, beam: int):
    lengths = torch.tensor([5, 3])
    source = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 0, 0]])
    config = SearchConfig(beam_size=beam, n_best=beam, max_length_offset=4)
    with torch.no_grad():
        state = seq2seq.init_state(seq2seq.encode(source, lengths))
        if ids is None:
            return search(seq2seq, state, lengths, config)
        step_model = Shortlisted(seq2seq, ids)
        return step_model.restore(search(step_model, state, lengths, config))


@pytest.mark.parametrize("beam", [1, 3])
def test_a_shortlist_of_every_word_changes_nothing(beam):
    seq2seq = model()
    full, listed = decode(seq2seq, None, beam), decode(seq2seq, torch.arange(30), beam)
    assert [[h.tokens for h in n] for n in full] == [[h.tokens for h in n] for n in listed]
    for ours, theirs in zip(listed, full, strict=True):
        for a, b in zip(ours, theirs, strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-5)


def test_only_shortlisted_words_come_out_normalized_over_the_shortlist():
    seq2seq = model()
    ids = torch.tensor([PAD, UNK, BOS, EOS, 7, 11, 19, 25])
    found = decode(seq2seq, ids, 3)
    assert {t for n in found for h in n for t in h.tokens} <= set(ids.tolist())
    step_model = Shortlisted(seq2seq, ids)
    with torch.no_grad():
        state = seq2seq.init_state(seq2seq.encode(torch.tensor([[5, 6]]), torch.tensor([2])))
        log_probs, _, _ = step_model.step(torch.tensor([step_model.bos_index]), state)
    assert log_probs.shape == (1, 8)
    torch.testing.assert_close(log_probs.exp().sum(), torch.tensor(1.0))
    with pytest.raises(ValueError, match="eos_index"):
        Shortlisted(seq2seq, torch.tensor([PAD, BOS, 7]))


def test_a_damaged_shortlist_file_is_named(tmp_path):
    assert read_shortlist(tmp_path) is None
    (tmp_path / "shortlist.json").write_text('{"format": "other"}')
    with pytest.raises(RunError, match=r"shortlist\.json: not an attnrnn shortlist"):
        read_shortlist(tmp_path)


def test_shortlist_command_and_translate_with_it(tmp_path, capsys, tiny_translation_config):
    import yaml

    from attnrnn.cli import main
    from attnrnn.data.dates import split_date_pairs, write_parallel

    for split, pairs in zip(
        ("train", "dev"), split_date_pairs(200, 20, 0, seed=4)[:2], strict=True
    ):
        write_parallel(pairs, tmp_path / f"{split}.src", tmp_path / f"{split}.tgt")
    config = tiny_translation_config(tmp_path / "train", tmp_path / "dev", tmp_path / "dev")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "config.yaml"), "-o", str(run)]) == 0
    capsys.readouterr()
    assert main(["translate", str(run), "--shortlist", str(tmp_path / "dev.src")]) != 0
    assert "has no lexical shortlist; write one with `attnrnn shortlist" in capsys.readouterr().err
    assert main(["shortlist", str(run), "--per-word", "5", "--frequent", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["training_pairs"] == 200 and (run / "shortlist.json").is_file()
    assert main(["translate", str(run), "--shortlist", str(tmp_path / "dev.src")]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 20
    assert main(["evaluate", str(run), "--shortlist"]) == 0
    assert "bleu" in json.loads(capsys.readouterr().out)
    assert main(["shortlist", str(run), "--per-word", "0"]) != 0
    assert "per_word must be >= 1" in capsys.readouterr().err
