"""The speech part of ``attnrnn demo``: Listen, Attend and Spell on audio attnrnn
generates, sequences of tone "syllables" (do, re, mi, fa, so), written as WAV files
with manifests, so every step can be repeated with ``attnrnn train / transcribe /
explain``. The alignment picture shows each output syllable attending to its own
stretch of sound under the spectrogram.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import attnrnn
from attnrnn.config import InferenceConfig, OptimizerConfig, TrainerConfig, save_yaml
from attnrnn.data.audio import FeatureConfig, SpecAugmentConfig
from attnrnn.data.tones import make_tone_utterances
from attnrnn.decoding import SearchConfig
from attnrnn.models.seq2seq import DecoderConfig
from attnrnn.models.speech import ListenerConfig, SpeechModelConfig
from attnrnn.tasks.speech import Recognizer, SpeechDataConfig, SpeechRunConfig
from attnrnn.viz_speech import write_speech_alignment_png

SAMPLE_RATE = 8000


def write_tone_manifest(folder: Path, name: str, count: int, seed: int) -> Path:
    """WAV files and a TSV manifest (audio path relative to it, transcript)."""
    import soundfile

    audio = folder / name
    audio.mkdir(parents=True, exist_ok=True)
    lines = ["audio\ttext"]
    for number, utterance in enumerate(make_tone_utterances(count, seed, SAMPLE_RATE)):
        soundfile.write(audio / f"{number:04d}.wav", utterance.samples, SAMPLE_RATE)
        lines.append(f"{name}/{number:04d}.wav\t{utterance.text}")
    manifest = folder / f"{name}.tsv"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def tones_config(folder: Path, quick: bool) -> SpeechRunConfig:
    """A small conv + BiLSTM listener and a location-aware LSTM speller."""
    return SpeechRunConfig(
        data=SpeechDataConfig(
            train=str(folder / "train.tsv"),
            dev=str(folder / "dev.tsv"),
            test=str(folder / "test.tsv"),
            feature_cache=str(folder / "features"),
        ),
        features=FeatureConfig(sample_rate=SAMPLE_RATE, num_mel_bins=20),
        spec_augment=SpecAugmentConfig(max_frequency_width=3, max_time_width=5),
        model=SpeechModelConfig(
            listener=ListenerConfig(conv_channels=8, hidden_size=32, num_layers=1, dropout=0.0),
            embedding_size=16,
            embedding_dropout=0.0,
            decoder=DecoderConfig(
                style="bahdanau",
                cell="lstm",
                hidden_size=32,
                attention="location",
                attention_size=16,
                location_channels=4,
                location_kernel_size=7,
                output_dropout=0.0,
            ),
            ctc_weight=0.3,
        ),
        label_smoothing=0.0,
        metric="wer",
        optimizer=OptimizerConfig(learning_rate=5e-3, warmup_steps=20, schedule="linear"),
        trainer=TrainerConfig(
            epochs=10 if quick else 15,
            batch_tokens=1200,
            max_batch_size=16,
            early_stopping_patience=None,
            seed=5,
            num_threads=2,
        ),
        inference=InferenceConfig(batch_tokens=1200, max_batch_size=16),
        dev_search=SearchConfig(beam_size=1, max_length_ratio=2.0),
        search=SearchConfig(beam_size=3, max_length_ratio=2.0, length_penalty=0.0),
    )


def speech_demo(output: Path, quick: bool) -> float:
    """Generate tone audio, train, print WER and transcripts, draw one alignment."""
    folder = output / "tones-data"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    sizes = {"train": 600 if quick else 1000, "dev": 60, "test": 100}
    for seed, (name, count) in enumerate(sizes.items(), start=21):
        write_tone_manifest(folder, name, count, seed)
    config = tones_config(folder, quick)
    save_yaml(config, output / "tones.yaml")
    run_directory = output / "tones-run"
    shutil.rmtree(run_directory, ignore_errors=True)
    print(
        "== Speech: Listen, Attend and Spell with joint CTC on generated tone syllables "
        f"(do re mi fa so), {sizes['train']} recordings"
    )
    started = time.monotonic()
    results = attnrnn.train(config, run_directory)
    print(
        f"word error rate {results['test_wer']:.1%} on {sizes['test']} held-out recordings "
        f"({time.monotonic() - started:.0f} s)\n"
    )
    model = attnrnn.load(run_directory)
    assert isinstance(model, Recognizer)
    examples = [str(folder / "test" / f"{n:04d}.wav") for n in range(4)]
    transcripts = model.transcribe(examples)
    rows = (folder / "test.tsv").read_text(encoding="utf-8").splitlines()[1:5]
    references = [row.split("\t")[1] for row in rows]
    for item, expected in zip(transcripts, references, strict=True):
        mark = "ok" if item.text == expected else f"expected {expected!r}"
        print(f"{Path(item.audio).name}: {item.text!r} ({mark})")
    right = [t for t, r in zip(transcripts, references, strict=True) if t.text == r]
    first = (right or transcripts)[0]  # draw a correct transcript when there is one
    picture = write_speech_alignment_png(
        output / "tones-attention" / "alignment.png",
        first.features.numpy(),
        first.attention,
        first.target_tokens,
        config.features.hop_ms / 1000,
        title=f"{Path(first.audio).name}: {first.text}",
    )
    print(f"\nalignment under the spectrogram: {picture}")
    print(f"try: attnrnn transcribe {run_directory} {examples[1]}")
    return results["test_wer"]
