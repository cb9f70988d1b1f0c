"""The speech commands (train, transcribe, evaluate, explain) end to end on generated
tone audio, and clear one-line errors for bad audio and manifests."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import attnrnn
from attnrnn.cli import main
from attnrnn.data.tones import make_tone_utterances
from attnrnn.errors import ConfigError, DataError

soundfile = pytest.importorskip("soundfile")
pytest.importorskip("jiwer")


def run_cli(capsys, *arguments):
    status = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def write_manifest(directory: Path, name: str, count: int, seed: int, rate: int = 8000) -> Path:
    """WAV files of tone utterances and a TSV manifest with relative audio paths."""
    audio = directory / name
    audio.mkdir(parents=True, exist_ok=True)
    lines = ["audio\ttext\tspeaker"]
    for number, utterance in enumerate(make_tone_utterances(count, seed, sample_rate=rate)):
        path = audio / f"{number}.wav"
        soundfile.write(path, utterance.samples, rate)
        lines.append(f"{name}/{number}.wav\t{utterance.text}\tsynth")
    manifest = directory / f"{name}.tsv"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


@pytest.fixture(scope="module")
def speech_config(tiny_speech_config):
    """Make the configuration (a plain mapping) of a tiny speech run trained for two epochs
    on a manifest, with an optional test manifest and feature cache."""

    def make(train: Path, test: Path | None, cache: Path | None) -> dict:
        data: dict = {} if test is None else {"test": str(test)}
        data["feature_cache"] = str(cache) if cache else None
        return tiny_speech_config(
            train,
            data=data,
            spec_augment={"frequency_masks": 1, "max_frequency_width": 3, "time_masks": 0},
            trainer={"epochs": 2},
            search={"beam_size": 3, "max_length_ratio": 2.0},
        )

    return make


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory, speech_config):
    directory = tmp_path_factory.mktemp("speech")
    train = write_manifest(directory, "train", 60, seed=1)
    test = write_manifest(directory, "test", 8, seed=2, rate=16000)  # resampled on reading
    config = directory / "speech.yaml"
    config.write_text(yaml.safe_dump(speech_config(train, test, directory / "cache")))
    run = directory / "run"
    status = main(["train", str(config), "--output", str(run)])
    assert status == 0
    return directory, run, test


def test_train_writes_a_speech_run(speech_run):
    _, run, _ = speech_run
    for name in ("config.yaml", "tokenizer.json", "vocab.json", "normalizer.json"):
        assert (run / name).is_file()
    assert (run / "best" / "model.safetensors").is_file()
    results = json.loads((run / "results.json").read_text())
    assert {"dev_wer", "dev_cer", "test_wer", "test_cer"} <= set(results)
    normalizer = json.loads((run / "normalizer.json").read_text())
    assert len(normalizer["mean"]) == 20


def test_feature_cache_is_written(speech_run):
    directory, _, _ = speech_run
    assert list((directory / "cache").glob("features-*.safetensors"))


def test_transcribe_evaluate_explain(speech_run, capsys, tmp_path):
    directory, run, _ = speech_run
    files = [directory / "test" / "0.wav", directory / "test" / "1.wav"]
    status, out, _ = run_cli(capsys, "transcribe", run, *files)
    assert status == 0
    lines = out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(f) for f in files]
    status, out, _ = run_cli(capsys, "transcribe", run, files[0], "--json", "--beam", "1")
    record = json.loads(out)
    assert set(record) == {"audio", "text", "score", "tokens", "attention", "alternatives"}
    assert len(record["attention"]) == len(record["tokens"]) and record["alternatives"] == []
    status, out, _ = run_cli(capsys, "transcribe", run, files[0], "--n-best", "2")
    assert status == 0 and len(out.rstrip("\n").split("\t")) == 3  # path, best, second
    status, out, _ = run_cli(capsys, "evaluate", run)
    metrics = json.loads(out)
    assert metrics["examples"] == 8 and metrics["cer"] >= 0.0
    status, out, _ = run_cli(capsys, "explain", run, files[0], "--output", tmp_path / "pics")
    assert status == 0
    assert (tmp_path / "pics" / "alignment-1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.splitlines() == [
        str(files[0]),
        f"  -> {lines[0].split(chr(9), 1)[1]}",
        f"wrote {tmp_path / 'pics' / 'explain.html'}",
        f"wrote {tmp_path / 'pics' / 'alignment-1.png'}",
    ]
    page = (tmp_path / "pics" / "explain.html").read_text()
    assert '"spectrogram"' in page and "<script" in page
    assert not re.search(r'(src|href)="https?:', page)  # self-contained: nothing fetched


def test_transcribe_reads_paths_from_standard_input(speech_run, capsys, monkeypatch):
    directory, run, _ = speech_run
    files = [directory / "test" / "0.wav", directory / "test" / "1.wav"]
    status, expected, _ = run_cli(capsys, "transcribe", run, *files)
    assert status == 0
    paths = f"{files[0]}\n\n{files[1]}\n".encode()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(paths), encoding="utf-8"))
    status, out, _ = run_cli(capsys, "transcribe", run)
    assert status == 0
    first, second = expected.splitlines()
    assert out.splitlines() == [first, "", second]  # an empty line answers an empty line


def test_transcribe_arrays_equals_files(speech_run, tmp_path):
    """Samples given as an array (at another rate, in stereo) or a tensor transcribe as
    the same audio written to a file."""
    _, run, _ = speech_run
    model = attnrnn.load(run, device="cpu")
    utterances = make_tone_utterances(3, seed=7, sample_rate=11025)
    paths = []
    for number, utterance in enumerate(utterances):
        paths.append(tmp_path / f"{number}.wav")
        soundfile.write(paths[-1], utterance.samples, 11025, subtype="FLOAT")
    from_files = model.transcribe(paths)
    arrays = [utterance.samples for utterance in utterances[:2]]
    arrays.append(np.stack([utterances[2].samples] * 2, axis=1))  # (samples, 2 channels)
    from_arrays = model.transcribe(arrays, sample_rate=11025)
    (from_tensor,) = model.transcribe(torch.from_numpy(utterances[0].samples), sample_rate=11025)
    assert [t.audio for t in from_arrays] == ["<array 0>", "<array 1>", "<array 2>"]
    assert from_tensor.audio == "<array 0>"
    pairs = [*zip(from_files, from_arrays, strict=True), (from_files[0], from_tensor)]
    for file, array in pairs:
        assert array.text == file.text and array.target_tokens == file.target_tokens
        assert array.score == pytest.approx(file.score, abs=1e-5)
        torch.testing.assert_close(array.features, file.features)
        np.testing.assert_allclose(array.attention, file.attention, atol=1e-5)


def test_transcribe_array_needs_its_sample_rate(speech_run):
    _, run, _ = speech_run
    model = attnrnn.load(run, device="cpu")
    samples = make_tone_utterances(1, seed=8, sample_rate=8000)[0].samples
    with pytest.raises(ConfigError, match="sample_rate"):
        model.transcribe([samples])
    with pytest.raises(DataError, match="no samples"):
        model.transcribe([np.zeros(0, dtype=np.float32)], sample_rate=8000)
    with pytest.raises(ConfigError, match="file path, a numpy array or a tensor"):
        model.transcribe([[0.0, 0.1]], sample_rate=8000)


def test_transcribe_through_the_python_api(speech_run):
    directory, run, _ = speech_run
    model = attnrnn.load(run, device="cpu")
    (one,) = model.transcribe(directory / "test" / "0.wav", beam=3, n_best=2)
    assert one.audio == str(directory / "test" / "0.wav")
    assert len(one.alternatives) == 1
    assert len(one.attention) == len(one.target_tokens)
    assert one.features.shape[1] == 20
    assert model.predict == model.transcribe
    metrics = model.evaluate()
    assert metrics["examples"] == 8 and set(metrics) >= {"wer", "cer"}


def test_bad_audio_is_one_clear_error(speech_run, capsys, tmp_path):
    _, run, _ = speech_run
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"definitely not audio")
    status, out, err = run_cli(capsys, "transcribe", run, corrupt)
    assert status == 2 and out == ""
    assert err.startswith("error: ") and "corrupt.wav" in err and "Traceback" not in err
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, dtype=np.float32), 8000)
    status, _, err = run_cli(capsys, "transcribe", run, empty)
    assert status == 2 and "no samples" in err
    long = tmp_path / "long.wav"
    soundfile.write(long, np.zeros(8000 * 40, dtype=np.float32), 8000)
    status, _, err = run_cli(capsys, "transcribe", run, long)
    assert status == 2 and "limit is 30 s" in err
    status, _, err = run_cli(capsys, "transcribe", run, tmp_path / "missing.flac")
    assert status == 2 and "not found" in err


def test_bad_manifest_leaves_no_run(capsys, tmp_path, speech_config):
    manifest = tmp_path / "bad.tsv"
    manifest.write_text("audio\ttext\n" + "missing.wav\thello\n" * 5, encoding="utf-8")
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(speech_config(manifest, None, None)))
    status, _, err = run_cli(capsys, "train", config, "--output", tmp_path / "run")
    assert status == 2 and "missing.wav" in err and "not found" in err
    assert not (tmp_path / "run").exists()
    no_text = tmp_path / "no_text.tsv"
    no_text.write_text("audio\tsentence\nx.wav\thello\n", encoding="utf-8")
    config.write_text(yaml.safe_dump(speech_config(no_text, None, None)))
    status, _, err = run_cli(capsys, "train", config, "--output", tmp_path / "run")
    assert status == 2 and "text" in err and "no_text.tsv" in err


def test_too_few_utterances_is_a_clear_error(capsys, tmp_path, speech_config):
    manifest = write_manifest(tmp_path, "one", 1, seed=3)
    config = tmp_path / "one.yaml"
    config.write_text(yaml.safe_dump(speech_config(manifest, None, None)))
    status, _, err = run_cli(capsys, "train", config, "--output", tmp_path / "run")
    assert status == 2 and "one.tsv" in err and "dev" in err
    assert not (tmp_path / "run").exists()


def test_speed_perturbation_adds_training_copies(tmp_path, speech_config):
    from attnrnn.tasks.runs import prepare
    from attnrnn.tasks.speech import SpeechTask

    task = SpeechTask()
    manifest = write_manifest(tmp_path, "train", 20, seed=4)
    settings = speech_config(manifest, None, tmp_path / "cache")
    plain = prepare(task, task.config_from_dict(settings), tmp_path, lambda message: None)
    settings["data"]["speed_perturbation"] = [0.9, 1.0, 1.1]
    perturbed = prepare(task, task.config_from_dict(settings), tmp_path, lambda message: None)
    count = len(plain.train)
    assert len(perturbed.train) == 3 * count and len(perturbed.dev) == len(plain.dev)
    assert perturbed.train.references == plain.train.references * 3
    frames = perturbed.train.frames
    for index in range(count):  # slower copies are longer, faster ones shorter
        assert frames[index] > frames[count + index] > frames[2 * count + index]
    assert len(list((tmp_path / "cache").glob("features-*.safetensors"))) == 4  # + dev


def test_bad_speed_perturbation_is_a_clear_error(capsys, tmp_path, speech_config):
    manifest = write_manifest(tmp_path, "train", 4, seed=5)
    settings = speech_config(manifest, None, None)
    settings["data"]["speed_perturbation"] = [0.9, 3.0]
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(settings))
    status, _, err = run_cli(capsys, "train", config, "--output", tmp_path / "run")
    assert status == 2 and "speed_perturbation" in err and "3.0" in err
    assert not (tmp_path / "run").exists()
