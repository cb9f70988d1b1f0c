"""Language-model pretraining: causality, the task on the shared trainer (learning, run
files, resume, early stopping), the trained model's scores, transfer to a classifier."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import attnrnn
from attnrnn.config import EncoderConfig, apply_overrides, from_dict, load_yaml
from attnrnn.data.vocab import Vocab
from attnrnn.errors import ConfigError, DataError, RunError
from attnrnn.models.classifier import ClassifierConfig, TextClassifier
from attnrnn.models.language_model import BidirectionalLanguageModel, LanguageModelConfig
from attnrnn.nn import fast_paths
from attnrnn.tasks.language_model import (
    SHAPE_STEP,
    EncodedSplit,
    LanguageModelRunConfig,
    chunk_spans,
    collate,
    read_texts,
)
from attnrnn.tasks.runs import read_config, task_named
from attnrnn.tasks.runs import train as train_run
from attnrnn.training.checkpoint import read_state

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "and", "then"]
TINY_MODEL = {
    "embedding_size": 16,
    "encoder": {"cell": "gru", "hidden_size": 24},
    "dropout": 0.0,
    "adaptive_cutoffs": [6],
}
TINY_TRAINER = {
    "epochs": 5,
    "batch_tokens": 160,
    "log_every_steps": 10,
    "num_threads": 1,
    "device": "cpu",
    "progress": False,
}
LANGUAGE_MODEL = task_named("language_model")
CLASSIFICATION = task_named("classification")


pytestmark = pytest.mark.usefixtures("one_thread")


def repetitive_texts(count: int) -> list[str]:
    """Texts that run through WORDS in a cycle, each from a different start."""
    texts = []
    for index in range(count):
        start = index % len(WORDS)
        cycle = (WORDS[start:] + WORDS[:start]) * 2
        texts.append(" ".join(cycle[: 10 + index % 7]))
    return texts


def write_corpus(path: Path, count: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(repetitive_texts(count)) + "\n", encoding="utf-8")
    return path


def tiny_config(corpus: Path, *overrides: str, **trainer) -> LanguageModelRunConfig:
    data = {
        "task": "language_model",
        "data": {"train": str(corpus), "dev_fraction": 0.1, "max_length": 24},
        "tokenizer": {"min_freq": 1},
        "model": TINY_MODEL,
        "optimizer": {"learning_rate": 0.02, "warmup_steps": 5},
        "trainer": {**TINY_TRAINER, **trainer},
    }
    return LANGUAGE_MODEL.config_from_dict(apply_overrides(data, overrides))


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory) -> tuple[Path, dict]:
    """A language model trained with ``attnrnn.train`` from a YAML config."""
    torch.set_num_threads(1)
    corpus = write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt", 200)
    config_path = tmp_path_factory.mktemp("config") / "lm.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "task": "language_model",
                "data": {"train": str(corpus), "dev_fraction": 0.1, "max_length": 24},
                "tokenizer": {"min_freq": 1},
                "model": TINY_MODEL,
                "optimizer": {"learning_rate": 0.02, "warmup_steps": 5},
                "trainer": TINY_TRAINER,
            }
        )
    )
    output = tmp_path_factory.mktemp("lm") / "run"
    results = attnrnn.train(config_path, output)
    return output, results


def tiny_model(cell: str, bidirectional: bool = True) -> BidirectionalLanguageModel:
    encoder = {"cell": cell, "hidden_size": 16, "bidirectional": bidirectional}
    config = from_dict(LanguageModelConfig, {**TINY_MODEL, "embedding_size": 6, "encoder": encoder})
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
    # The per-prediction log-probabilities are the rows' own, row by row.
    for name in ("forward_log_probs", "backward_log_probs"):
        rows = torch.cat([getattr(alone[0], name), getattr(alone[1], name)])
        torch.testing.assert_close(getattr(together, name), rows)


def test_training_batches_pad_to_few_shapes_without_changing_the_loss():
    chunks = [torch.tensor([3, 4, 5], dtype=torch.int32), torch.tensor([6, 7, 8, 9, 10, 11])]
    tokens, lengths = collate(chunks, 0, "cpu", multiple=SHAPE_STEP)
    assert tokens.shape == (2, SHAPE_STEP) and lengths.tolist() == [3, 6]
    assert tokens[0, 3:].eq(0).all() and tokens[1, 6:].eq(0).all()
    exact, _ = collate(chunks, 0, "cpu")
    assert exact.shape == (2, 6)
    model = tiny_model("lstm").double()
    torch.testing.assert_close(
        model.training_loss(tokens, lengths), model.training_loss(exact, lengths)
    )
    # training batches by the padded lengths
    encoded = EncodedSplit([torch.zeros(n, dtype=torch.int32) for n in (17, 16, 2, 33)])
    assert LANGUAGE_MODEL.lengths(encoded) == [32, 16, 16, 48]


def test_log_probabilities_average_to_the_losses():
    model = tiny_model("lstm")
    output = model(torch.tensor([[3, 4, 5, 6, 7]]), torch.tensor([5]))
    assert output.forward_log_probs.shape == (4,) and output.backward_log_probs is not None
    assert bool((output.forward_log_probs < 0).all())
    torch.testing.assert_close(-output.forward_log_probs.mean(), output.forward_loss)
    torch.testing.assert_close(-output.backward_log_probs.mean(), output.backward_loss)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_training_loss_through_the_fused_heads_equals_the_module_loss(bidirectional):
    model = tiny_model("lstm", bidirectional=bidirectional).double()
    tokens = torch.tensor([[3, 4, 5, 6, 7, 15, 19], [8, 9, 17, 11, 0, 0, 0]])
    lengths = torch.tensor([7, 4])

    def loss_and_gradients(fused: bool) -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        with fast_paths.hand_written(fused):
            loss = model.training_loss(tokens, lengths)
        loss.backward()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
        return [loss.detach(), *grads]

    fused, plain = loss_and_gradients(True), loss_and_gradients(False)
    torch.testing.assert_close(plain[0], model(tokens, lengths).loss.detach())
    for got, want in zip(fused, plain, strict=True):
        torch.testing.assert_close(got, want)


def test_bf16_autocast_forward_and_training_loss():
    model = tiny_model("lstm")
    tokens, lengths = torch.tensor([[3, 4, 5, 6, 17]]), torch.tensor([5])
    expected = model(tokens, lengths).loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(tokens, lengths)
        loss = model.training_loss(tokens, lengths)
    assert output.forward_log_probs.dtype == torch.float32
    torch.testing.assert_close(output.loss, expected, rtol=0.05, atol=0.05)
    torch.testing.assert_close(loss, expected, rtol=0.05, atol=0.05)
    loss.backward()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize(("bidirectional", "num_layers"), [(True, 1), (False, 2)])
def test_one_step_at_a_time_equals_the_forward_predictions(cell, bidirectional, num_layers):
    encoder = {"cell": cell, "hidden_size": 12, "bidirectional": bidirectional}
    encoder["num_layers"] = num_layers
    config = from_dict(LanguageModelConfig, {**TINY_MODEL, "embedding_size": 6, "encoder": encoder})
    torch.manual_seed(0)
    model = BidirectionalLanguageModel(20, config, pad_index=0).eval()
    tokens, lengths = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 10, 0, 0]]), torch.tensor([5, 3])
    expected = model(tokens, lengths).forward_log_probs  # (N,), row by row
    state, steps = None, []
    for position in range(4):
        log_probs, state = model.step(tokens[:, position], state)  # (2, V)
        steps.append(log_probs.gather(1, tokens[:, position + 1 : position + 2]))
        # a beam reorders rows: selecting them twice in turn is the identity
        state = state.select(torch.tensor([1, 0])).select(torch.tensor([1, 0]))
    stepped = torch.cat(steps, dim=1)  # (2, 4)
    valid = torch.arange(4).unsqueeze(0) < (lengths - 1).unsqueeze(1)
    torch.testing.assert_close(stepped[valid], expected)


def test_unidirectional_model_trains_only_the_forward_direction():
    model = tiny_model("lstm", bidirectional=False)
    output = model(torch.tensor([[3, 4, 5, 6]]), torch.tensor([4]))
    assert model.backward_head is None and output.backward_loss is None
    assert output.backward_log_probs is None
    output.loss.backward()


def test_stacked_bidirectional_encoder_is_rejected(tmp_path):
    overrides = ["encoder.num_layers=2", "encoder.bidirectional=true"]
    with pytest.raises(ConfigError, match="num_layers"):
        from_dict(LanguageModelConfig, apply_overrides({}, overrides))
    unidirectional = {"encoder": {"num_layers": 2, "bidirectional": False}}
    assert from_dict(LanguageModelConfig, unidirectional).encoder.num_layers == 2
    corpus = write_corpus(tmp_path / "corpus.txt", 10)
    with pytest.raises(ConfigError, match=r"model: encoder\.num_layers must be 1"):
        tiny_config(corpus, "model.encoder.num_layers=2")


def test_adaptive_cutoffs_are_checked():
    with pytest.raises(ConfigError, match="increasing"):
        from_dict(LanguageModelConfig, {"adaptive_cutoffs": [10, 5]})
    with pytest.raises(ConfigError, match="too small"):
        from_dict(LanguageModelConfig, {"encoder": {"hidden_size": 8}, "adaptive_cutoffs": [5, 9]})


# --------------------------------------------------------------------------- configuration


def test_partial_sections_keep_the_language_model_defaults(tmp_path):
    config = tiny_config(tmp_path / "c.txt", "optimizer.learning_rate=0.01")
    assert config.optimizer.learning_rate == 0.01
    assert (config.optimizer.warmup_steps, config.optimizer.clip_norm) == (5, 1.0)
    bare = LANGUAGE_MODEL.config_from_dict({"data": {"train": ["a.txt", "b.jsonl"]}})
    assert bare == LanguageModelRunConfig(data=bare.data)
    assert bare.data.train == ("a.txt", "b.jsonl")
    assert (bare.optimizer.learning_rate, bare.optimizer.warmup_steps) == (2e-3, 200)
    assert (bare.trainer.epochs, bare.trainer.batch_tokens) == (1, 8000)


def test_imdb_config_matches_the_sst2_classifier_and_comments_every_key():
    root = Path(__file__).resolve().parents[2]
    config = read_config(root / "configs" / "lm_imdb.yaml")
    classifier = read_config(root / "configs" / "sst2.yaml")
    assert config.task == "language_model" and len(config.data.train) == 2
    assert config.model.embedding_size == classifier.model.embedding_size
    assert config.model.encoder == classifier.model.encoder
    assert config.tokenizer.lowercase == classifier.tokenizer.lowercase
    for line in (root / "configs" / "lm_imdb.yaml").read_text().splitlines():
        setting = line.partition("#")[0].strip()
        if setting and not setting.endswith(":"):  # a value (sections need no comment)
            assert "#" in line, f"uncommented: {line!r}"


# --------------------------------------------------------------------------- data


def test_read_texts_reads_plain_and_jsonl(tmp_path):
    plain = tmp_path / "a.txt"
    plain.write_text("first text\nsecond text\n", encoding="utf-8")
    lines = tmp_path / "b.jsonl"
    lines.write_text(json.dumps({"body": "third text"}) + "\n", encoding="utf-8")
    assert read_texts([str(plain)]) == ["first text", "second text"]
    assert read_texts(str(plain)) == ["first text", "second text"]
    assert read_texts([str(lines)], text_field="body") == ["third text"]
    assert read_texts((str(plain), str(lines)), "body")[-1] == "third text"


def test_read_texts_skips_paragraph_breaks_in_plain_text(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("first paragraph\n\nsecond paragraph\n")
    assert read_texts([str(corpus)]) == ["first paragraph", "second paragraph"]


def test_texts_are_cut_into_chunks(tmp_path):
    assert chunk_spans(7, 3) == [(0, 3), (3, 6), (6, 7)]
    config = tiny_config(tmp_path / "c.txt", "data.max_length=3")
    texts = ["a b c d e f g", "h"]
    assets = LANGUAGE_MODEL.fit_assets(config, texts, tmp_path)
    split = LANGUAGE_MODEL.encode(config, assets, texts, "train")
    assert split.lengths == [3, 3]  # the one-word pieces predict nothing and are dropped
    vocab = assets.text.vocab
    assert vocab.decode(split.chunks[1].tolist()) == ["d", "e", "f"]
    with pytest.raises(DataError, match="two or more tokens"):
        LANGUAGE_MODEL.encode(config, assets, ["h", "a"], "dev")


# --------------------------------------------------------------------------- training


def read_metrics(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_pretraining_learns_a_repetitive_corpus(pretrained_run):
    output, results = pretrained_run
    rows = read_metrics(output)
    assert len(rows) == TINY_TRAINER["epochs"]  # one dev evaluation per epoch
    losses = [float(row["train_loss"]) for row in rows]
    assert losses[-1] < losses[0] / 3
    vocabulary_size = len(Vocab.load(output / "vocab.json"))
    assert results["dev_perplexity"] < 2.0 < vocabulary_size
    assert results["dev_backward_perplexity"] < 2.0 and results["dev_forward_perplexity"] < 2.0
    assert math.isclose(results["dev_perplexity"], math.exp(results["dev_loss"]))
    assert float(rows[-1]["dev_perplexity"]) >= results["dev_perplexity"] - 1e-9  # best kept
    assert results["dev_predicted_tokens"] > 0
    assert read_state(output / "last")["units"] > 0  # tokens trained on


def test_run_directory_has_the_shared_layout(pretrained_run):
    output, results = pretrained_run
    names = sorted(path.name for path in output.iterdir())
    expected = [".lock", "best", "config.yaml", "last", "metrics.csv", "results.json", "run.json"]
    assert sorted(set(names) - {"tensorboard"}) == sorted(
        [*expected, "tokenizer.json", "vocab.json"]
    )
    assert (output / "best" / "model.safetensors").is_file()
    assert [path.name for path in output.parent.iterdir()] == ["run"]
    assert json.loads((output / "results.json").read_text()) == results
    config = load_yaml(output / "config.yaml")
    assert config["task"] == "language_model"
    assert config["model"]["encoder"]["hidden_size"] == 24
    assert json.loads((output / "run.json").read_text())["task"] == "language_model"


def test_existing_output_is_refused(tmp_path):
    output = tmp_path / "run"
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    config = tiny_config(write_corpus(tmp_path / "data" / "c.txt", 10))
    with pytest.raises(RunError, match="already exists"):
        train_run(config, output, log=lambda _: None)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data", "run"]


def test_resume_continues_exactly(tmp_path):
    corpus = write_corpus(tmp_path / "data" / "c.txt", 60)
    overrides = ("model.dropout=0.2",)
    whole = train_run(tiny_config(corpus, *overrides, epochs=2), tmp_path / "whole", log=print)
    train_run(tiny_config(corpus, *overrides, epochs=1), tmp_path / "part", log=print)
    assert len(read_metrics(tmp_path / "part")) == 1
    resumed = train_run(
        tiny_config(corpus, *overrides, epochs=2), tmp_path / "part", resume=True, log=print
    )
    assert resumed == pytest.approx(whole, rel=1e-6)
    assert len(read_metrics(tmp_path / "part")) == 2
    for name, tensor in load_file(str(tmp_path / "whole" / "last" / "model.safetensors")).items():
        resumed_tensor = load_file(str(tmp_path / "part" / "last" / "model.safetensors"))[name]
        torch.testing.assert_close(resumed_tensor, tensor)


def test_early_stopping_ends_a_run_that_stops_improving(tmp_path):
    corpus = write_corpus(tmp_path / "data" / "c.txt", 60)
    # A learning rate far below fp32 resolution: the weights, so dev perplexity, never change.
    config = tiny_config(
        corpus,
        "optimizer.learning_rate=1e-12",
        "optimizer.weight_decay=0.0",
        eval_every_steps=1,
        early_stopping_patience=1,
    )
    train_run(config, tmp_path / "run", log=lambda _: None)
    state = read_state(tmp_path / "run" / "last")
    # Not before the 5 warmup steps are over (dev is checked after every step).
    assert state["stop_reason"] == "early_stopping" and state["step"] == 5
    rows = read_metrics(tmp_path / "run")
    assert len(rows) == 5 and len({row["dev_perplexity"] for row in rows}) == 1


def test_time_budget_stops_training(tmp_path):
    config = tiny_config(write_corpus(tmp_path / "data" / "c.txt", 20), max_minutes=1e-9)
    train_run(config, tmp_path / "run", log=lambda _: None)
    state = read_state(tmp_path / "run" / "last")
    assert state["stop_reason"] == "budget" and state["step"] == 1


# --------------------------------------------------------------------------- the trained model


def test_predict_scores_every_token_from_both_directions(pretrained_run):
    output, _ = pretrained_run
    model = attnrnn.load(output, device="cpu")
    text = "the quick brown fox jumps"
    (result, short) = model.predict([text, "dog"])
    assert result.tokens == text.split()
    assert result.forward_log_probs[0] is None and result.backward_log_probs is not None
    assert result.backward_log_probs[-1] is None
    known = [v for v in result.forward_log_probs[1:] + result.backward_log_probs[:-1]]
    assert all(value is not None and value < 0 for value in known)
    assert result.perplexity is not None and 1.0 < result.perplexity < 2.0
    mean = -sum(known) / len(known)  # type: ignore[arg-type]
    assert result.perplexity == pytest.approx(math.exp(mean))
    assert short.perplexity is None and short.tokens == ["dog"]
    record = model.record(result)
    assert record["tokens"] == result.tokens and len(record["surprisal"]) == 5
    assert json.loads(model.line(result))["perplexity"] == pytest.approx(result.perplexity)


def test_predict_agrees_with_evaluate_on_long_texts(pretrained_run, tmp_path):
    output, _ = pretrained_run
    model = attnrnn.load(output, device="cpu")
    text = " ".join(WORDS * 5)  # 55 words: three chunks of at most 24
    (result,) = model.predict([text])
    assert sum(value is None for value in result.forward_log_probs) == 3
    assert result.backward_log_probs is not None
    assert sum(value is None for value in result.backward_log_probs) == 3
    file = tmp_path / "one.txt"
    file.write_text(text + "\n")
    scores = model.evaluate(str(file))
    assert scores["predicted_tokens"] == 55 - 3
    assert scores["perplexity"] == pytest.approx(result.perplexity, rel=1e-5)


def test_a_batch_scores_each_text_as_alone(pretrained_run):
    output, _ = pretrained_run
    model = attnrnn.load(output, device="cpu")
    texts = ["the quick brown fox", " ".join(WORDS * 3), "lazy dog and then the", "a"]
    together = model.predict(texts)
    for text, result in zip(texts, together, strict=True):
        (alone,) = model.predict([text])
        assert result.tokens == alone.tokens
        assert result.forward_log_probs == pytest.approx(alone.forward_log_probs, abs=1e-5)
        assert result.backward_log_probs == pytest.approx(alone.backward_log_probs, abs=1e-5)


def test_an_exported_bundle_scores_like_the_run(pretrained_run, tmp_path):
    output, _ = pretrained_run
    bundle = attnrnn.export(output, tmp_path / "bundle")
    assert not (bundle / "last").exists()
    text = ["the quick brown fox jumps over"]
    exported = attnrnn.load(bundle, device="cpu").predict(text)[0]
    assert exported == attnrnn.load(output, device="cpu").predict(text)[0]


def test_explain_shades_surprisal_and_writes_a_heatmap(pretrained_run, tmp_path):
    output, _ = pretrained_run
    model = attnrnn.load(output, device="cpu")
    explanation = model.explain(
        ["the quick brown fox zebra", "dog"], output=tmp_path / "explain", color=False
    )
    first, second = explanation.text.splitlines()[:2], explanation.text.splitlines()[2]
    assert first[0].startswith("perplexity ") and "most surprising (nats): zebra" in first[0]
    assert "zebra(1.00)" in first[1]  # the unknown word is the most surprising
    assert "too short" in second
    folder = tmp_path / "explain"
    assert explanation.files == [folder / "explain.html", folder / "surprisal-1.png"]
    assert explanation.files[1].read_bytes()[:4] == b"\x89PNG"
    assert '"surprisal"' in explanation.files[0].read_text()
    assert "surprisal-N.png" in LANGUAGE_MODEL.explain_files


# --------------------------------------------------------------------------- transfer


def make_classifier(vocab: Vocab, hidden_size: int = 24) -> TextClassifier:
    encoder = EncoderConfig(cell="gru", hidden_size=hidden_size)
    config = ClassifierConfig(embedding_size=16, encoder=encoder, hidden_size=0)
    return TextClassifier(len(vocab), 2, config, vocab.pad_index)


def test_load_pretrained_encoder_copies_weights_by_word(pretrained_run):
    from attnrnn.pretrain.transfer import load_pretrained_encoder

    output, _ = pretrained_run
    # Another order of the words, and one word the language model never saw.
    vocab = Vocab.build([["zebra", *reversed(WORDS)]] * 3 + [["dog"]], min_freq=1)
    classifier = make_classifier(vocab)
    zebra_before = classifier.embedding.weight[vocab.encode(["zebra"])[0]].clone()
    logs: list[str] = []
    load_pretrained_encoder(output, classifier, vocab, logs.append)
    weights = load_file(str(output / "best" / "model.safetensors"))
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

    output, _ = pretrained_run
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
    output, _ = pretrained_run
    for name in ("run.json", "config.yaml", "tokenizer.json", "vocab.json"):
        (incomplete / name).write_bytes((output / name).read_bytes())
    with pytest.raises(RunError, match="checkpoint"):
        load_pretrained_encoder(incomplete, classifier, vocab, print)


def test_a_run_of_the_old_layout_says_to_retrain_in_one_line(pretrained_run, tmp_path):
    from attnrnn.pretrain.transfer import load_pretrained_encoder

    output, _ = pretrained_run
    old = tmp_path / "old"
    (old / "final").mkdir(parents=True)
    (old / "lm_config.json").write_text(json.dumps({"embedding_size": 16}))
    for name in ("tokenizer.json", "vocab.json"):
        shutil.copy(output / name, old / name)
    shutil.copy(output / "best" / "model.safetensors", old / "final" / "model.safetensors")
    vocab = Vocab.build([WORDS], min_freq=1)
    with pytest.raises(RunError, match="earlier attnrnn") as error:
        load_pretrained_encoder(old, make_classifier(vocab), vocab, print)
    assert "\n" not in str(error.value) and "attnrnn train" in str(error.value)


def classifier_config(review_files, tiny_config, encoder: Path, *overrides: str):
    """A tiny classification config (conftest) whose encoder starts from ``encoder``."""
    config = {**tiny_config(review_files, max_steps=5), "pretrained": {"encoder": str(encoder)}}
    settings = ["model.embedding_size=16", "model.encoder.cell=gru", *overrides]
    return CLASSIFICATION.config_from_dict(apply_overrides(config, settings))


def test_a_classifier_trains_from_the_language_model(
    pretrained_run, tmp_path, review_files, tiny_config
):
    output, _ = pretrained_run
    logs: list[str] = []
    config = classifier_config(review_files, tiny_config, output)
    results = train_run(config, tmp_path / "classifier", log=logs.append)
    assert 0.0 <= results["dev_accuracy"] <= 1.0
    transfer = [line for line in logs if line.startswith("pretrained encoder")]
    assert len(transfer) == 1 and "RNN weights copied" in transfer[0]

    # A classification run is not a language model.
    from attnrnn.pretrain.transfer import load_pretrained_encoder

    vocab = Vocab.build([WORDS], min_freq=1)
    with pytest.raises(RunError, match="language_model run"):
        load_pretrained_encoder(tmp_path / "classifier", make_classifier(vocab), vocab, print)

    mismatched = classifier_config(
        review_files, tiny_config, output, "model.encoder.hidden_size=12"
    )
    with pytest.raises(ConfigError, match=r"model\.encoder\.hidden_size"):
        train_run(mismatched, tmp_path / "mismatched", log=lambda _: None)
    assert not (tmp_path / "mismatched").exists()


def test_the_classifier_vocabulary_takes_the_language_models_words(
    pretrained_run, tmp_path, review_files, tiny_config
):
    output, _ = pretrained_run
    vocabularies, logs = {}, {}
    for extend in (True, False):
        setting = f"pretrained.vocab_from_encoder={str(extend).lower()}"
        config = classifier_config(review_files, tiny_config, output, setting)
        logs[extend] = []
        train_run(config, tmp_path / f"run-{extend}", log=logs[extend].append)
        vocabularies[extend] = attnrnn.load(tmp_path / f"run-{extend}").assets.text.vocab
    language_model = Vocab.load(output / "vocab.json")
    unseen = [word for word in language_model.tokens if word not in vocabularies[False]]
    assert unseen, "the test needs words of the language model the reviews do not have"
    assert vocabularies[True].tokens == [*vocabularies[False].tokens, *unseen]
    # every added word starts from its pretrained embedding row
    covered = {
        extend: int(re.search(r"embedding rows for (\d+) of", "\n".join(lines)).group(1))
        for extend, lines in logs.items()
    }
    assert covered[True] == covered[False] + len(unseen)
