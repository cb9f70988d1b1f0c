"""AN4 speech recognition benchmark: LAS + joint CTC trained from scratch on this machine.

    python benchmarks/an4.py [--data ../shared/data] [--minutes 110] [--threads N] [--note TEXT]
                             [--force]

One run of configs/an4.yaml (character outputs, SpecAugment, location-aware
attention, CTC weight 0.3 in training and decoding), scored on the 130 test
utterances with beam 10: WER and CER by jiwer. Steps are cached in
benchmarks/cache/an4/, and an interrupted training run resumes. Writes
benchmarks/results/an4.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from common import ROOT, WORK, Steps, attnrnn, write_results


def train(run: Path, data: Path, minutes: float, threads: int | None) -> dict:
    overrides = ["--set", f"trainer.max_minutes={minutes}"]
    if threads:
        overrides += ["--set", f"trainer.num_threads={threads}"]
    if run.exists():
        arguments = ["train", "--resume", str(run), *overrides]
    else:
        overrides += [
            "--set",
            f"data.train={data / 'an4' / 'train.tsv'}",
            "--set",
            f"data.test={data / 'an4' / 'test.tsv'}",
            "--set",
            f"data.feature_cache={WORK / 'an4' / 'features'}",
        ]
        arguments = ["train", "configs/an4.yaml", "--output", str(run), *overrides]
    result = attnrnn(*arguments)
    state = json.loads((run / "last" / "state.json").read_text())["state"]
    return {
        **{key: value for key, value in result.items() if key != "run"},
        "train_seconds": round(state["elapsed_seconds"], 1),
        "steps": state["step"],
        "epochs_completed": state["epoch"],
        "train_frames_per_second": round(state["units"] / state["elapsed_seconds"], 1),
    }


def stop_reason(run: Path) -> str | None:
    state = json.loads((run / "last" / "state.json").read_text())["state"]
    return state.get("stop_reason")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--minutes", type=float, default=110.0)
    parser.add_argument("--threads", type=int, help="CPU threads for training")
    parser.add_argument("--note", default="", help="how the machine was shared, for the record")
    parser.add_argument("--force", action="store_true", help="ignore cached steps")
    arguments = parser.parse_args()
    steps = Steps("an4", force=arguments.force)
    run = WORK / "an4" / "run"
    if arguments.force and run.exists():
        shutil.rmtree(run)
    trained = steps.run(
        "train", lambda: train(run, arguments.data, arguments.minutes, arguments.threads)
    )
    write_results(
        "an4",
        {
            "test_set": "AN4 an4test_clstk (130 utterances, 10 speakers not in training)",
            "search": "beam 10, joint CTC/attention (lambda 0.3)",
            "test_wer": round(trained["test_wer"], 4),
            "test_cer": round(trained["test_cer"], 4),
            "dev_wer": round(trained["dev_wer"], 4),
            "dev_cer": round(trained["dev_cer"], 4),
            "train_seconds": trained["train_seconds"],
            "train_frames_per_second": trained["train_frames_per_second"],
            "steps": trained["steps"],
            "epochs_completed": trained["epochs_completed"],
            "stop_reason": stop_reason(run),
            "config": "configs/an4.yaml",
            **({"note": arguments.note} if arguments.note else {}),
        },
    )


if __name__ == "__main__":
    main()
