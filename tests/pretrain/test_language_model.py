"""Language-model pretraining: causality, learning, run files, transfer to a classifier."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from attnrnn.config import EncoderConfig, apply_overrides, from_dict
from attnrnn.data.vocab import Vocab
from attnrnn.errors import ConfigError, RunError
from attnrnn.models.classifier import ClassifierConfig, TextClassifier
from attnrnn.pretrain.language_model import BidirectionalLanguageModel, LanguageModelConfig
from attnrnn.pretrain.lm_training import main_lm, pretrain_language_model, read_texts

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "and", "then"]
TINY = {
    "embedding_size": 16,
    "encoder": {"cell": "gru", "hidden_size": 24},
    "dropout": 0.0,
    "vocab_min_freq": 1,
    "max_length": 24,
    "batch_tokens": 160,
    "epochs": 5,
    "learning_rate": 0.02,
    "warmup_steps": 5,
    "adaptive_cutoffs": [6],
    "log_every_steps": 10,
    "num_threads": 1,
    "device": "cpu",
}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def repetitive_texts(count: int) -> list[str]:
    """Texts that run through WORDS in a cycle, each from a different start."""
    texts = []
    for index in range(count):
        start = index % len(WORDS)
        cycle = (WORDS[start:] + WORDS[:start]) * 2
        texts.append(" ".join(cycle[: 10 + index % 7]))
    return texts


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory) -> tuple[Path, dict, list[str]]:
    torch.set_num_threads(1)
    output = tmp_path_factory.mktemp("lm") / "run"
    config = from_dict(LanguageModelConfig, TINY)
    logs: list[str] = []
    results = pretrain_language_model(config, repetitive_texts(200), output, log=logs.append)
    return output, results, logs


def tiny_model(cell: str, bidirectional: bool = True) -> BidirectionalLanguageModel:
    encoder = {"cell": cell, "hidden_size": 16, "bidirectional": bidirectional}
    config = from_dict(LanguageModelConfig, {**TINY, "embedding_size": 6, "encoder": encoder})
    torch.manual_seed(0)
    return BidirectionalLanguageModel(20, config, pad_index=0).eval()


# --------------------------------------------------------------------------- model


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_forward_states_do_not_see_later_tokens(cell):
    model = tiny_model(cell)
    tokens = torch.randint(1, 20, (1, 9))
    changed = tokens.clone()
    changed[0, 5:] = (changed[0, 5:] % 19) + 1  # different tokens from position 5 on
    lengths = torch.tensor([9])
    forward, _ = model.encode(tokens, lengths)
    forward_changed, _ = model.encode(changed, lengths)
    torch.testing.assert_close(forward[:, :5], forward_changed[:, :5])
    assert not torch.allclose(forward[:, 5:], forward_changed[:, 5:])


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_backward_states_do_not_see_earlier_tokens(cell):
    model = tiny_model(cell)
    tokens = torch.randint(1, 20, (1, 9))
    changed = tokens.clone()
    changed[0, :4] = (changed[0, :4] % 19) + 1  # different tokens before position 4
    lengths = torch.tensor([9])
    _, backward = model.encode(tokens, lengths)
    _, backward_changed = model.encode(changed, lengths)
    assert backward is not None and backward_changed is not None
    torch.testing.assert_close(backward[:, 4:], backward_changed[:, 4:])
    assert not torch.allclose(backward[:, :4], backward_changed[:, :4])


def test_padding_does_not_change_the_loss():
    model = tiny_model("gru")
    short = torch.tensor([[3, 4, 5]])
    long = torch.tensor([[6, 7, 8, 9, 10, 11]])
    alone = [model(short, torch.tensor([3])), model(long, torch.tensor([6]))]
    batch = torch.tensor([[3, 4, 5, 0, 0, 0], [6, 7, 8, 9, 10, 11]])
    together = model(batch, torch.tensor([3, 6]))
    assert together.predicted_tokens == 2 + 5
    expected = (alone[0].loss * 2 + alone[1].loss * 5) / 7
    torch.testing.assert_close(together.loss, expected)


def test_unidirectional_model_trains_only_the_forward_direction():
    model = tiny_model("lstm", bidirectional=False)
    output = model(torch.tensor([[3, 4, 5, 6]]), torch.tensor([4]))
    assert model.backward_head is None and output.backward_loss is None
    output.loss.backward()


def test_stacked_bidirectional_encoder_is_rejected():
    overrides = ["encoder.num_layers=2", "encoder.bidirectional=true"]
    with pytest.raises(ConfigError, match="num_layers"):
        from_dict(LanguageModelConfig, apply_overrides({}, overrides))
    unidirectional = {"encoder": {"num_layers": 2, "bidirectional": False}}
    assert from_dict(LanguageModelConfig, unidirectional).encoder.num_layers == 2


# --------------------------------------------------------------------------- pretraining


def test_pretraining_learns_a_repetitive_corpus(pretrained_run):
    _, results, logs = pretrained_run
    losses = [float(m.group(1)) for m in map(re.compile(r"loss ([\d.]+)").search, logs) if m]
    assert len(losses) >= 4
    assert losses[-1] < losses[0] / 3
    assert results["dev_perplexity"] < 2.0 < results["vocabulary_size"]
    assert results["dev_backward_perplexity"] < 2.0
    assert results["train_tokens"] > 0 and results["tokens_per_second"] > 0


def test_run_directory_is_complete_and_nothing_is_left_beside_it(pretrained_run):
    output, results, _ = pretrained_run
    names = sorted(path.name for path in output.iterdir())
    assert names == ["final", "lm_config.json", "results.json", "tokenizer.json", "vocab.json"]
    assert (output / "final" / "model.safetensors").is_file()
    assert [path.name for path in output.parent.iterdir()] == ["run"]
    assert json.loads((output / "results.json").read_text()) == results
    assert json.loads((output / "lm_config.json").read_text())["encoder"]["hidden_size"] == 24


def test_existing_output_is_refused(tmp_path):
    output = tmp_path / "run"
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    config = from_dict(LanguageModelConfig, TINY)
    with pytest.raises(RunError, match="not empty"):
        pretrain_language_model(config, repetitive_texts(10), output, log=lambda _: None)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]


def test_ctrl_c_keeps_what_was_learnt(tmp_path):
    def interrupt_at_first_progress_line(message: str) -> None:
        if message.startswith("step"):
            raise KeyboardInterrupt

    config = from_dict(LanguageModelConfig, TINY)
    output = tmp_path / "run"
    results = pretrain_language_model(
        config, repetitive_texts(50), output, log=interrupt_at_first_progress_line
    )
    assert results["stopped_by"] == "interrupt" and results["steps"] == TINY["log_every_steps"]
    assert (output / "final" / "model.safetensors").is_file()


def test_time_budget_stops_training(tmp_path):
    config = from_dict(LanguageModelConfig, {**TINY, "max_minutes": 1e-9})
    results = pretrain_language_model(
        config, repetitive_texts(20), tmp_path / "run", log=lambda _: None
    )
    assert results["stopped_by"] == "time" and results["steps"] == 0


def test_main_lm_reads_files_and_applies_overrides(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(repetitive_texts(30)) + "\n", encoding="utf-8")
    overrides = [f"{key}={json.dumps(value)}" for key, value in TINY.items()]
    results = main_lm([str(corpus)], tmp_path / "run", [*overrides, "epochs=1"])
    assert results["texts"] == 30
    assert "dev perplexity" in capsys.readouterr().err


def test_read_texts_reads_plain_and_jsonl(tmp_path):
    plain = tmp_path / "a.txt"
    plain.write_text("first text\nsecond text\n", encoding="utf-8")
    lines = tmp_path / "b.jsonl"
    lines.write_text(json.dumps({"body": "third text"}) + "\n", encoding="utf-8")
    assert read_texts([str(plain)]) == ["first text", "second text"]
    assert read_texts([str(lines)], text_field="body") == ["third text"]


# --------------------------------------------------------------------------- transfer


def make_classifier(vocab: Vocab, hidden_size: int = 24) -> TextClassifier:
    encoder = EncoderConfig(cell="gru", hidden_size=hidden_size)
    config = ClassifierConfig(embedding_size=16, encoder=encoder, hidden_size=0)
    return TextClassifier(len(vocab), 2, config, vocab.pad_index)


def test_load_pretrained_encoder_copies_weights_by_word(pretrained_run):
    from attnrnn.pretrain.transfer import load_pretrained_encoder

    output, _, _ = pretrained_run
    # Another order of the words, and one word the language model never saw.
    vocab = Vocab.build([["zebra", *reversed(WORDS)]] * 3 + [["dog"]], min_freq=1)
    classifier = make_classifier(vocab)
    zebra_before = classifier.embedding.weight[vocab.encode(["zebra"])[0]].clone()
    logs: list[str] = []
    load_pretrained_encoder(output, classifier, vocab, logs.append)
    weights = load_file(str(output / "final" / "model.safetensors"))
    pretrained_vocab = Vocab.load(output / "vocab.json")
    for word in ("dog", "fox", "the"):
        row = weights["embedding.weight"][pretrained_vocab.encode([word])[0]]
        torch.testing.assert_close(classifier.embedding.weight[vocab.encode([word])[0]], row)
    torch.testing.assert_close(
        classifier.embedding.weight[vocab.encode(["zebra"])[0]], zebra_before
    )
    for name, parameter in classifier.encoder.named_parameters():
        torch.testing.assert_close(parameter, weights[f"encoder.{name}"])
    assert f"for {len(vocab) - 2} of {len(vocab)} vocabulary words" in logs[0]  # not pad, zebra


def test_mismatched_hidden_size_names_the_setting(pretrained_run):
    from attnrnn.pretrain.transfer import load_pretrained_encoder

    output, _, _ = pretrained_run
    vocab = Vocab.build([WORDS], min_freq=1)
    with pytest.raises(ConfigError, match=r"model\.encoder\.hidden_size.*24"):
        load_pretrained_encoder(output, make_classifier(vocab, hidden_size=12), vocab, print)


def test_missing_or_incomplete_run_directory_is_a_run_error(pretrained_run, tmp_path):
    from attnrnn.pretrain.transfer import load_pretrained_encoder

    vocab = Vocab.build([WORDS], min_freq=1)
    classifier = make_classifier(vocab)
    with pytest.raises(RunError, match="no such"):
        load_pretrained_encoder(tmp_path / "absent", classifier, vocab, print)
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    output, _, _ = pretrained_run
    for name in ("lm_config.json", "vocab.json"):
        (incomplete / name).write_bytes((output / name).read_bytes())
    with pytest.raises(RunError, match="checkpoint"):
        load_pretrained_encoder(incomplete, classifier, vocab, print)


def test_read_texts_skips_paragraph_breaks_in_plain_text(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("first paragraph\n\nsecond paragraph\n")
    assert read_texts([str(corpus)]) == ["first paragraph", "second paragraph"]
