"""Free Spoken Digit Dataset (FSDD) manifests: isolated digits on the official split,
and connected digits made by concatenating recordings.

Official split (the FSDD README): recordings with index 0-4 are the test set,
5-49 the training set. Connected-digit utterances concatenate 1 to 7
recordings of one split with short random pauses (fixed seed), so no recording
is in both the training and the test utterances; the transcript is the digits
separated by spaces ("3 7 1"), so WER counts digits.
"""

from __future__ import annotations

import csv
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attnrnn.data.audio import read_audio
from attnrnn.errors import DataError

SAMPLE_RATE = 8000


@dataclass(frozen=True)
class Recording:
    """One FSDD file: ``{digit}_{speaker}_{index}.wav``."""

    path: Path
    digit: str
    speaker: str
    index: int


def list_recordings(directory: str | os.PathLike[str]) -> list[Recording]:
    """Every recording under ``directory/recordings``, sorted by file name."""
    folder = Path(directory) / "recordings"
    if not folder.is_dir():
        raise DataError("no 'recordings' folder: is this the FSDD directory?", str(directory))
    recordings = []
    for path in sorted(folder.glob("*.wav")):
        parts = path.stem.split("_")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
            raise DataError("file name is not {digit}_{speaker}_{index}.wav", str(path))
        recordings.append(Recording(path, parts[0], parts[1], int(parts[2])))
    if not recordings:
        raise DataError("no .wav files in the recordings folder", str(folder))
    return recordings


def official_split(recordings: list[Recording]) -> tuple[list[Recording], list[Recording]]:
    """(train, test): index 5-49 and 0-4."""
    train = [r for r in recordings if r.index >= 5]
    test = [r for r in recordings if r.index < 5]
    return train, test


def write_manifest(path: Path, rows: list[tuple[str, str]]) -> None:
    """A TSV manifest with ``audio`` and ``text`` columns, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["audio", "text"])
        writer.writerows(rows)
    os.replace(temporary, path)


def isolated_manifests(fsdd: str | os.PathLike[str], output: str | os.PathLike[str]) -> None:
    """``train.tsv`` and ``test.tsv`` of single digits (text "7") on the official split."""
    output = Path(output)
    train, test = official_split(list_recordings(fsdd))
    for name, recordings in (("train", train), ("test", test)):
        rows = [(os.path.relpath(r.path, output), r.digit) for r in recordings]
        write_manifest(output / f"isolated_{name}.tsv", rows)


def connected_digits(
    fsdd: str | os.PathLike[str],
    output: str | os.PathLike[str],
    train_count: int = 4000,
    test_count: int = 500,
    max_digits: int = 7,
    seed: int = 0,
) -> None:
    """Write connected-digit WAV files and ``connected_{train,test}.tsv`` under ``output``.

    Each utterance joins 1 to ``max_digits`` recordings of its split, drawn at
    random, with 50-300 ms of silence between them (and 100 ms at both ends).
    """
    import soundfile

    output = Path(output)
    train, test = official_split(list_recordings(fsdd))
    generator = random.Random(seed)
    cache: dict[Path, np.ndarray] = {}

    def samples(recording: Recording) -> np.ndarray:
        if recording.path not in cache:
            audio = read_audio(recording.path, SAMPLE_RATE, max_seconds=10.0)
            cache[recording.path] = audio.numpy()
        return cache[recording.path]

    def silence(low: float, high: float) -> np.ndarray:
        return np.zeros(int(SAMPLE_RATE * generator.uniform(low, high)), dtype=np.float32)

    for name, recordings, count in (("train", train, train_count), ("test", test, test_count)):
        folder = output / f"connected_{name}"
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for number in range(count):
            chosen = [generator.choice(recordings) for _ in range(generator.randint(1, max_digits))]
            pieces = [silence(0.1, 0.1)]
            for position, recording in enumerate(chosen):
                if position:
                    pieces.append(silence(0.05, 0.3))
                pieces.append(samples(recording))
            pieces.append(silence(0.1, 0.1))
            path = folder / f"{name}-{number:05d}.wav"
            soundfile.write(str(path), np.concatenate(pieces), SAMPLE_RATE, subtype="PCM_16")
            rows.append((os.path.relpath(path, output), " ".join(r.digit for r in chosen)))
        write_manifest(output / f"connected_{name}.tsv", rows)


def main(argv: list[str] | None = None) -> int:
    """``python -m attnrnn.data.recipes.fsdd FSDD_DIR OUTPUT_DIR``: write both manifest sets."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="FSDD isolated and connected-digit manifests")
    parser.add_argument("fsdd", help="the FSDD folder (with recordings/)")
    parser.add_argument("output", help="folder for manifests and connected-digit audio")
    parser.add_argument("--train-count", type=int, default=4000)
    parser.add_argument("--test-count", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args(argv)
    try:
        isolated_manifests(arguments.fsdd, arguments.output)
        connected_digits(
            arguments.fsdd,
            arguments.output,
            arguments.train_count,
            arguments.test_count,
            seed=arguments.seed,
        )
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote manifests to {arguments.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
