"""A language model over a speech run's output units (``units_from``), trained on text
alone, fused into the speech run's search (``lm``, ``lm_weight``, ``--lm``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import attnrnn
from attnrnn.cli import main
from attnrnn.data.tones import make_tone_utterances
from attnrnn.errors import ConfigError

soundfile = pytest.importorskip("soundfile")
pytest.importorskip("jiwer")


def write_manifest(directory: Path, name: str, count: int, seed: int) -> Path:
    """WAV files of tone utterances and a TSV manifest with relative audio paths."""
    (directory / name).mkdir(parents=True, exist_ok=True)
    lines = ["audio\ttext"]
    for number, utterance in enumerate(make_tone_utterances(count, seed, sample_rate=8000)):
        soundfile.write(directory / name / f"{number}.wav", utterance.samples, 8000)
        lines.append(f"{name}/{number}.wav\t{utterance.text}")
    manifest = directory / f"{name}.tsv"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def train(config: dict, directory: Path, name: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    run = directory / name
    assert main(["train", str(path), "--output", str(run)]) == 0
    return run


def lm_config(text: Path, **top: object) -> dict:
    return {
        "task": "language_model",
        "data": {"train": str(text), "dev_fraction": 0.1, "max_length": 64},
        "model": {
            "embedding_size": 8,
            "encoder": {"cell": "lstm", "hidden_size": 16, "bidirectional": False},
            "dropout": 0.0,
            "adaptive_cutoffs": [8],
        },
        "optimizer": {"learning_rate": 0.01, "warmup_steps": 2},
        "trainer": {
            "epochs": 3,
            "batch_tokens": 400,
            "progress": False,
            "num_threads": 1,
            "early_stopping_patience": None,
        },
        **top,
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_speech_config):
    """A tiny speech run, a language model over its characters and one over words."""
    directory = tmp_path_factory.mktemp("speech_lm")
    train_manifest = write_manifest(directory, "train", 40, seed=1)
    test = write_manifest(directory, "test", 6, seed=2)
    speech = tiny_speech_config(
        train_manifest,
        data={"test": str(test), "feature_cache": None},
        trainer={"epochs": 2},
        search={"beam_size": 3, "max_length_ratio": 2.0},
    )
    speech_run = train(speech, directory, "speech")
    text = directory / "transcripts.txt"
    texts = [u.text for u in make_tone_utterances(300, seed=7, sample_rate=8000)]
    text.write_text("\n".join(texts) + "\n", encoding="utf-8")
    characters = train(lm_config(text, units_from=str(speech_run)), directory, "lm")
    words = lm_config(text)
    words["tokenizer"] = {"min_freq": 1}
    return directory, speech_run, characters, train(words, directory, "word_lm"), test


def test_the_language_model_predicts_the_speech_runs_units_framed(runs):
    _, speech_run, lm_run, _, _ = runs
    assert json.loads((lm_run / "vocab.json").read_text()) == json.loads(
        (speech_run / "vocab.json").read_text()
    )
    language_model = attnrnn.load(lm_run)
    (scored,) = language_model.predict(["do re"])
    # <s> d o _ r e </s>: the first and the end are predicted too
    assert scored.tokens[0] == "<s>" and scored.tokens[-1] == "</s>"
    assert scored.forward_log_probs[0] is None and None not in scored.forward_log_probs[1:]


def test_fusion_at_weight_zero_changes_nothing_and_a_weight_changes_scores(runs):
    _, speech_run, lm_run, _, test = runs
    recognizer = attnrnn.load(speech_run)
    audio = [str(test.parent / "test" / f"{number}.wav") for number in range(4)]
    alone = recognizer.transcribe(audio)
    off = recognizer.transcribe(audio, lm=str(lm_run), lm_weight=0.0)
    fused = recognizer.transcribe(audio, lm=str(lm_run), lm_weight=0.5)
    assert [t.text for t in off] == [t.text for t in alone]
    assert [t.score for t in off] == [t.score for t in alone]
    assert [t.score for t in fused] != [t.score for t in alone]


def test_evaluate_with_lm_from_the_command_line(runs, capsys):
    _, speech_run, lm_run, _, _ = runs

    def evaluate(*options: str) -> dict:
        assert main(["evaluate", str(speech_run), "--ctc-weight", "0.5", *options]) == 0
        return json.loads(capsys.readouterr().out)

    alone = evaluate()
    assert alone["examples"] == 6 and {"wer", "cer"} <= set(alone)
    assert evaluate("--lm", str(lm_run), "--lm-weight", "0") == alone
    fused = evaluate("--lm", str(lm_run), "--lm-weight", "0.3")
    assert fused["examples"] == 6 and set(fused) == set(alone)


def test_a_word_language_model_is_refused_by_name(runs, capsys):
    _, speech_run, _, word_lm, _ = runs
    status = main(["evaluate", str(speech_run), "--lm", str(word_lm)])
    error = capsys.readouterr().err
    assert status != 0 and "Traceback" not in error
    assert f"lm {word_lm}: its vocabulary is not this run's output units" in error
    assert "units_from" in error
    status = main(["evaluate", str(speech_run), "--lm", str(speech_run)])
    assert "lm needs a language_model run" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="lm_weight must be >= 0"):
        attnrnn.load(speech_run).transcribe([], lm=str(word_lm), lm_weight=-1.0)


def test_units_from_needs_a_run_that_writes_text(runs, tmp_path, capsys):
    directory, speech_run, lm_run, _, _ = runs
    text = directory / "transcripts.txt"
    config = tmp_path / "lm.yaml"
    config.write_text(yaml.safe_dump(lm_config(text, units_from=str(lm_run))))
    assert main(["train", str(config), "--output", str(tmp_path / "run")]) != 0
    assert "a language_model run writes no output text" in capsys.readouterr().err
    both = lm_config(text, units_from=str(speech_run), continue_from=str(lm_run))
    config.write_text(yaml.safe_dump(both))
    assert main(["train", str(config), "--output", str(tmp_path / "run")]) != 0
    assert "give continue_from or units_from, not both" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
