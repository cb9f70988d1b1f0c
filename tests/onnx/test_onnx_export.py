"""``attnrnn export --format onnx`` and the torch-free ONNX predictor: the same outputs
as PyTorch for every batch size and length, from the CLI and from Python."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import attnrnn
import attnrnn.onnx
from attnrnn.cli import main
from attnrnn.data.dates import split_date_pairs, write_parallel

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def run_cli(capsys, *arguments) -> tuple[int, str, str]:
    status = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def dates(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("onnx-dates")
    splits = split_date_pairs(300, 20, 30, seed=3)
    for split, pairs in zip(("train", "dev", "test"), splits, strict=True):
        write_parallel(pairs, directory / f"{split}.src", directory / f"{split}.tgt")
    return directory


def train(config: dict, directory: Path) -> Path:
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path), "--output", str(directory / "run")]) == 0
    return directory / "run"


@pytest.fixture(scope="module", params=["gru", "lstm"])
def translation(request, tmp_path_factory, dates, tiny_translation_config):
    """A character-level date translator of the given cell and its ONNX export."""
    directory = tmp_path_factory.mktemp(f"onnx-translation-{request.param}")
    cells = {"cell": request.param}
    config = tiny_translation_config(
        dates / "train",
        dates / "dev",
        tokenizer={"type": "character", "joint": False},
        trainer={"epochs": 4},
    )
    config["model"]["encoder"].update(cells)
    config["model"]["decoder"].update(cells)
    run = train(config, directory)
    # a shortlist small enough to leave characters out (the export carries it)
    attnrnn.load(run, device="cpu").write_shortlist(per_word=2, frequent=4)
    exported = directory / "onnx"
    assert main(["export", str(run), "--format", "onnx", "--output", str(exported)]) == 0
    return run, exported


@pytest.fixture(scope="module")
def classification(tmp_path_factory, review_files, tiny_config):
    directory = tmp_path_factory.mktemp("onnx-classification")
    run = train(tiny_config(review_files, max_steps=30), directory)
    exported = directory / "onnx"
    assert main(["export", str(run), "--format", "onnx", "--output", str(exported)]) == 0
    return run, exported


def sources(dates: Path) -> list[str]:
    return (dates / "test.src").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize(
    "options", [{"beam": 1}, {"beam": 4}, {"beam": 5, "n_best": 3, "length_penalty": 0.6}]
)
def test_onnx_translations_equal_pytorchs(translation, dates, options):
    run, exported = translation
    texts = sources(dates)
    reference = attnrnn.load(run, device="cpu")
    expected = [reference.record(r) for r in reference.translate(texts, **options)]
    got = attnrnn.onnx.load(exported).translate(texts, **options)
    assert len({record["translation"] for record in expected}) > 3  # not one output for all
    for want, have in zip(expected, got, strict=True):
        assert have["translation"] == want["translation"]
        assert have["alternatives"] == want["alternatives"]
        assert have["target_tokens"] == want["target_tokens"]
        assert have["source_tokens"] == want["source_tokens"]
        assert have["score"] == pytest.approx(want["score"], abs=1e-4)
        np.testing.assert_allclose(have["attention"], want["attention"], atol=1e-4)


@pytest.mark.parametrize("beam", [1, 4])
def test_onnx_shortlist_translations_equal_pytorchs(translation, dates, beam):
    """With --shortlist both runtimes score the same rows of the output layer (one
    sentence at a time: a batch's shortlist is the union of its sentences')."""
    run, exported = translation
    reference = attnrnn.load(run, device="cpu")
    predictor = attnrnn.onnx.load(exported)
    shortlist, vocabulary = reference.shortlist(), len(reference.assets.target.vocab)
    restricted = 0
    for text in sources(dates)[:8]:
        kept = shortlist.candidates([reference.assets.encode_source(text, 200)])
        restricted += len(kept) < vocabulary
        want = reference.record(reference.translate([text], beam=beam, shortlist=True)[0])
        have = predictor.translate([text], beam=beam, shortlist=True)[0]
        assert have["translation"] == want["translation"]
        assert have["target_tokens"] == want["target_tokens"]
        assert have["score"] == pytest.approx(want["score"], abs=1e-4)
    assert restricted  # the shortlist does leave outputs out


def test_attnrnn_load_picks_the_onnx_runtime_for_an_export(translation):
    _, exported = translation
    model = attnrnn.load(exported)
    assert isinstance(model, attnrnn.onnx.runtime.OnnxTranslator)
    assert model.translate("March 3, 2001")[0]["translation"]


def test_one_sentence_at_a_time_equals_the_batch(translation, dates):
    _, exported = translation
    model = attnrnn.onnx.load(exported)
    texts = sources(dates)[:6]
    batch = [record["translation"] for record in model.translate(texts, beam=3)]
    alone = [model.translate(text, beam=3)[0]["translation"] for text in texts]
    assert batch == alone


def test_export_folder_and_graphs(translation):
    import onnx

    _, exported = translation
    manifest = json.loads((exported / "onnx.json").read_text())
    assert manifest["format"] == "attnrnn-onnx" and manifest["task"] == "translation"
    assert manifest["graphs"] == {
        "encoder": "encoder.onnx",
        "step": "step.onnx",
        "output": "output.onnx",
        "shortlist_output": "shortlist_output.onnx",
        "topk": "topk.onnx",
    }
    names = ("config.yaml", "source_vocab.json", "target_vocab.json", "shortlist.json")
    for name in (*names, "output_weight.npy", "output_bias.npy"):
        assert (exported / name).is_file()
    step = onnx.load(str(exported / "step.onnx"))
    onnx.checker.check_model(step)
    rows = step.graph.input[0].type.tensor_type.shape.dim[0]
    assert rows.dim_param  # a named, dynamic axis
    outputs = [output.name for output in step.graph.output]
    assert outputs[:2] == ["features", "attention"]  # output.onnx scores the features
    # the encoder's RNN layers are ONNX's own GRU / LSTM operators, not loops of steps
    operators = {node.op_type for node in onnx.load(str(exported / "encoder.onnx")).graph.node}
    assert operators & {"GRU", "LSTM"} and not operators & {"Loop", "Scan"}


def test_cli_translates_with_the_onnx_runtime(translation, dates, capsys, tmp_path):
    run, exported = translation
    inputs = tmp_path / "in.txt"
    inputs.write_text("\n".join(sources(dates)[:5]) + "\n")
    status, onnx_out, _ = run_cli(capsys, "translate", exported, inputs, "--beam", "3")
    assert status == 0
    status, torch_out, _ = run_cli(capsys, "translate", run, inputs, "--beam", "3")
    assert onnx_out == torch_out and len(onnx_out.splitlines()) == 5
    status, onnx_out, _ = run_cli(capsys, "translate", exported, inputs, "--shortlist")
    assert status == 0
    status, torch_out, _ = run_cli(capsys, "translate", run, inputs, "--shortlist")
    assert onnx_out == torch_out
    status, out, _ = run_cli(capsys, "predict", exported, inputs, "--json")
    assert status == 0 and "attention" in json.loads(out.splitlines()[0])


def test_cli_errors_name_the_problem(translation, capsys, tmp_path):
    run, exported = translation
    without = tmp_path / "without-shortlist"
    shutil.copytree(exported, without)
    (without / "shortlist.json").unlink()
    inputs = tmp_path / "in.txt"
    inputs.write_text("March 3, 2001\n")
    cases = [
        (["translate", without, inputs, "--shortlist"], "has no lexical shortlist"),
        (["evaluate", exported], "needs the PyTorch run it was exported from"),
        (["translate", run, "--runtime", "onnx", "x"], "is not an ONNX export"),
        (["translate", exported, "--runtime", "torch", "x"], "runs with --runtime onnx"),
        (["translate", exported, "--int8", "x"], "--int8 does not apply"),
        (["export", run, "--output", tmp_path / "b", "--int8"], "--int8 applies to --format"),
    ]
    for arguments, message in cases:
        status, _, err = run_cli(capsys, *arguments)
        assert status != 0 and message in err and "Traceback" not in err
    status, _, err = run_cli(capsys, "export", run, "--format", "onnx", "--output", exported)
    assert status != 0 and "Traceback" not in err  # an existing folder is not overwritten


def test_onnx_classifier_equals_pytorchs(classification, review_files):
    run, exported = classification
    texts = [line.split("\t")[0] for line in review_files["test"].read_text().splitlines()[1:40]]
    texts += ["", "a single word", " ".join(texts[:3])]  # empty, short, longer than seen
    reference = attnrnn.load(run, device="cpu")
    expected = [reference.record(p) for p in reference.predict(texts)]
    got = attnrnn.onnx.load(exported).predict(texts)
    for want, have in zip(expected, got, strict=True):
        assert have["label"] == want["label"] and have["tokens"] == want["tokens"]
        for label, probability in want["probabilities"].items():
            assert have["probabilities"][label] == pytest.approx(probability, abs=1e-5)
        np.testing.assert_allclose(have["attention"], want["attention"], atol=1e-5)


NAMES = ["anna", "bob", "carla", "dmitri", "eve", "farid"]
THINGS = ["tea", "cake", "soup", "bread", "rice"]


def dialogues(count: int, seed: int, names: list[str]) -> list[dict[str, str]]:
    generator = random.Random(seed)
    records = []
    for _ in range(count):
        name, thing = generator.choice(names), generator.choice(THINGS)
        text = f"#Person1#: Hello {name.title()}, would you like some {thing}? #Person2#: Yes."
        records.append({"dialogue": text, "summary": f"{name.title()} wants some {thing}."})
    return records


@pytest.fixture(scope="module")
def summarization(tmp_path_factory, tiny_summarizer):
    directory = tmp_path_factory.mktemp("onnx-summarization")
    files = {}
    for split, count, seed in (("train", 200, 1), ("dev", 20, 2)):
        files[split] = directory / f"{split}.jsonl"
        lines = [json.dumps(record) for record in dialogues(count, seed, NAMES)]
        files[split].write_text("\n".join(lines) + "\n")
    config = {
        "task": "summarization",
        "data": {"train": str(files["train"]), "dev": str(files["dev"])},
        **tiny_summarizer,
        "trainer": {"epochs": 12, "batch_tokens": 2000, "progress": False, "num_threads": 1},
        "search": {"beam_size": 3, "min_length": 2},
        "dev_search": {"beam_size": 1, "min_length": 2},
    }
    run = train(config, directory)
    exported = directory / "onnx"
    assert main(["export", str(run), "--format", "onnx", "--output", str(exported)]) == 0
    return run, exported


@pytest.mark.parametrize("options", [{"beam": 1}, {"beam": 3, "n_best": 2}])
def test_onnx_summaries_equal_pytorchs(summarization, options):
    run, exported = summarization
    # names never seen in training: the summaries can only get them by copying
    texts = [record["dialogue"] for record in dialogues(12, 9, ["zoltan", "quincy", "anna"])]
    reference = attnrnn.load(run, device="cpu")
    expected = [reference.record(s) for s in reference.summarize(texts, **options)]
    got = attnrnn.onnx.load(exported).summarize(texts, **options)
    for want, have in zip(expected, got, strict=True):
        assert have["summary"] == want["summary"] and have["tokens"] == want["tokens"]
        assert have.get("alternatives") == want.get("alternatives")
        assert have["source_tokens"] == want["source_tokens"]
        assert have["score"] == pytest.approx(want["score"], abs=1e-4)
        np.testing.assert_allclose(have["copy_probability"], want["copy_probability"], atol=1e-4)
        np.testing.assert_allclose(have["attention"], want["attention"], atol=1e-4)


def test_the_copy_step_equals_pytorchs_over_the_extended_vocabulary(summarization):
    """Log-probabilities (N, V + X) and p_gen of a step where the source has unknown words."""
    import torch

    from attnrnn.data.documents import Document, encode_documents

    run, exported = summarization
    reference, onnx_model = attnrnn.load(run, device="cpu"), attnrnn.onnx.load(exported)
    text = "#Person1#: Hello Zoltan and Quincy, would you like some tea? #Person2#: Xylophones."
    text = [text, "#Person1#: Hello Anna, some soup?"]
    vocab = onnx_model.text.vocab
    split = encode_documents(
        [Document(t, (), "test") for t in text], onnx_model.text.tokenizer, vocab, 60, 20
    )
    assert max(len(d.unknown) for d in split.documents) >= 3
    step, state, lengths = onnx_model._start(split.documents)
    previous = np.array([vocab.index("<s>")] * 2)
    log_probs, _, attention = step.step(previous, state)
    model = reference.model
    source = torch.from_numpy(state.tensors["source_ids"])
    extended = model.vocab_size + step.extra.shape[0]
    with torch.no_grad():
        torch_state = model.init_state(
            model.encode_with_copy(source, torch.from_numpy(lengths), extended)
        )
        want, _, want_attention, p_gen = model.gated_step(torch.from_numpy(previous), torch_state)
    assert log_probs.shape == (2, extended)
    np.testing.assert_allclose(log_probs, want.numpy(), atol=1e-4)
    np.testing.assert_allclose(attention, want_attention.numpy(), atol=1e-5)
    np.testing.assert_allclose(step.generation_probability, p_gen.numpy(), atol=1e-5)


@pytest.fixture(scope="module")
def speech(tmp_path_factory, tiny_speech_config, write_tones):
    pytest.importorskip("soundfile")
    directory = tmp_path_factory.mktemp("onnx-speech")
    train_manifest = write_tones(directory, 60, seed=1)
    test_manifest = write_tones(directory, 8, seed=2)
    config = tiny_speech_config(
        train_manifest,
        data={"test": str(test_manifest), "feature_cache": None},
        trainer={"epochs": 3},
        search={"beam_size": 3, "max_length_ratio": 2.0},
    )
    run = train(config, directory)
    exported = directory / "onnx"
    assert main(["export", str(run), "--format", "onnx", "--output", str(exported)]) == 0
    return run, exported, sorted(directory.glob("2-*.wav"))


@pytest.mark.parametrize("options", [{"beam": 1}, {"beam": 3}, {"beam": 3, "ctc_weight": 0.0}])
def test_onnx_transcripts_equal_pytorchs(speech, options):
    run, exported, audio = speech
    reference = attnrnn.load(run, device="cpu")
    expected = [reference.record(t) for t in reference.transcribe(audio, **options)]
    got = attnrnn.onnx.load(exported).transcribe(audio, **options)
    assert len({record["text"] for record in expected}) > 1
    for want, have in zip(expected, got, strict=True):
        assert have["text"] == want["text"] and have["tokens"] == want["tokens"]
        assert have["score"] == pytest.approx(want["score"], abs=1e-3)
        np.testing.assert_allclose(have["attention"], want["attention"], atol=1e-3)


def test_transcribe_cli_with_the_onnx_runtime(speech, capsys):
    run, exported, audio = speech
    status, onnx_out, _ = run_cli(capsys, "transcribe", exported, *audio[:3])
    assert status == 0
    status, torch_out, _ = run_cli(capsys, "transcribe", run, *audio[:3])
    assert onnx_out == torch_out and len(onnx_out.splitlines()) == 3


def test_int8_export_runs_and_mostly_agrees(classification, review_files, tmp_path):
    run, exported = classification
    quantized = tmp_path / "int8"
    assert main(["export", str(run), "--format", "onnx", "--int8", "-o", str(quantized)]) == 0
    assert json.loads((quantized / "onnx.json").read_text())["int8"] is True
    texts = [line.split("\t")[0] for line in review_files["test"].read_text().splitlines()[1:]]
    full = [p["label"] for p in attnrnn.onnx.load(exported).predict(texts)]
    small = [p["label"] for p in attnrnn.onnx.load(quantized).predict(texts)]
    assert np.mean([a == b for a, b in zip(full, small, strict=True)]) > 0.9


def test_the_onnx_predictors_run_with_torch_blocked(
    translation, classification, summarization, speech
):
    """Importing torch raises in the child process: no predictor may need it."""
    (_, translator), (_, classifier) = translation, classification
    (_, summarizer), (_, recognizer, audio) = summarization, speech
    script = f"""
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
import attnrnn.onnx
outputs = [
    attnrnn.onnx.load({str(translator)!r}).translate(["March 3, 2001"], beam=3)[0]["translation"],
    attnrnn.onnx.load({str(classifier)!r}).predict(["a fine film"])[0]["label"],
    attnrnn.onnx.load({str(summarizer)!r}).summarize(["#Person1#: Hi Anna."])[0]["summary"],
    attnrnn.onnx.load({str(recognizer)!r}).transcribe([{str(audio[0])!r}])[0]["text"],
]
assert "torch" not in [name for name, module in sys.modules.items() if module is not None]
print(len([output for output in outputs if isinstance(output, str)]))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4"]


def test_tasks_without_an_onnx_exporter_are_named(tmp_path, capsys):
    # a language-model run is the cheapest run of a task without an exporter
    text = tmp_path / "text.txt"
    text.write_text("\n".join(["the cat sat on the mat"] * 30) + "\n")
    config = {
        "task": "language_model",
        "data": {"train": str(text)},
        "tokenizer": {"min_freq": 1},
        "model": {"embedding_size": 8, "encoder": {"hidden_size": 8}, "adaptive_cutoffs": [4]},
        "trainer": {"epochs": 1, "progress": False, "num_threads": 1},
    }
    run = train(config, tmp_path)
    status, _, err = run_cli(capsys, "export", run, "--format", "onnx", "-o", tmp_path / "x")
    assert status != 0 and "ONNX export of language_model runs is not available" in err
    assert not (tmp_path / "x").exists()
