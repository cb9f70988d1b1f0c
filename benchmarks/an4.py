"""AN4 speech recognition benchmark: LAS + joint CTC trained from scratch on this machine,
decoded with and without a character language model (shallow fusion).

    python benchmarks/an4.py [--data ../shared/data] [--minutes 110] [--threads N] [--note TEXT]
                             [--force]

Steps (cached in benchmarks/cache/an4/; an interrupted training run resumes):
1. ``split``: the 948 training utterances into train and dev manifests (6% dev,
   seeded as the run would hold them out), so that the language model never reads
   a dev transcript;
2. ``train_sp``: configs/an4.yaml (character outputs, speed perturbation 0.9/1.0/1.1,
   SpecAugment, location-aware attention, CTC weight 0.3) within ``--minutes``;
3. ``lm``: configs/an4_lm.yaml, an LSTM over the run's characters on the training
   transcripts;
4. ``tune``: dev WER with beam 10 for each CTC weight and language-model weight;
5. ``test``: the 130 test utterances (10 speakers not in training) with the best
   weights on dev, and with the best weights without the language model.
WER and CER by jiwer. Writes benchmarks/results/an4.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path
from typing import Any

from common import WORK, Steps, attnrnn, write_results

CTC_WEIGHTS = (0.3, 0.5)
LM_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.6)
HERE = WORK / "an4"


def split(data: Path) -> dict[str, Any]:
    """Train and dev manifests with absolute audio paths, split as the run would."""
    from attnrnn.tasks.text import split_off_dev

    source = data / "an4" / "train.tsv"
    with open(source, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        fields = list(reader.fieldnames or [])
        rows = [{**row, "audio": str((source.parent / row["audio"]).resolve())} for row in reader]
    train, dev = split_off_dev(rows, 0.06, seed=1)
    for name, part in (("train", train), ("dev", dev)):
        with open(HERE / f"{name}.tsv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fields, delimiter="\t", lineterminator="\n")
            writer.writeheader()
            writer.writerows(part)
    return {"train_utterances": len(train), "dev_utterances": len(dev)}


def train(run: Path, data: Path, minutes: float, threads: int | None) -> dict:
    overrides = ["--set", f"trainer.max_minutes={minutes}", "--set", "trainer.progress=false"]
    if threads:
        overrides += ["--set", f"trainer.num_threads={threads}"]
    if run.exists():
        arguments = ["train", "--resume", str(run), *overrides]
    else:
        overrides += [
            *("--set", f"data.train={HERE / 'train.tsv'}"),
            *("--set", f"data.dev={HERE / 'dev.tsv'}"),
            *("--set", f"data.test={data / 'an4' / 'test.tsv'}"),
            *("--set", f"data.feature_cache={HERE / 'features'}"),
        ]
        arguments = ["train", "configs/an4.yaml", "--output", str(run), *overrides]
    result = attnrnn(*arguments)
    state = json.loads((run / "last" / "state.json").read_text())["state"]
    return {
        **{key: value for key, value in result.items() if key != "run"},
        "train_seconds": round(state["elapsed_seconds"], 1),
        "steps": state["step"],
        "epochs_completed": state["epoch"],
        "train_frames_per_second": round(state["units"] / state["step_seconds"], 1),
        "stop_reason": state.get("stop_reason"),
    }


def train_language_model(run: Path, speech_run: Path, threads: int | None) -> dict:
    overrides = [
        *("--set", f"units_from={speech_run}"),
        *("--set", f"data.train={HERE / 'train.tsv'}"),
        *("--set", "trainer.progress=false"),
    ]
    if threads:
        overrides += ["--set", f"trainer.num_threads={threads}"]
    if run.exists():
        shutil.rmtree(run)  # seconds to train: start again rather than resume
    result = attnrnn("train", "configs/an4_lm.yaml", "--output", str(run), *overrides)
    state = json.loads((run / "last" / "state.json").read_text())["state"]
    return {
        "dev_perplexity": result["dev_perplexity"],
        "train_seconds": round(state["elapsed_seconds"], 1),
        "epochs_completed": state["epoch"],
    }


def evaluate(run: Path, data: Path, ctc_weight: float, lm: Path, lm_weight: float) -> dict:
    metrics = attnrnn(
        "evaluate",
        str(run),
        *("--data", str(data)),
        *("--ctc-weight", str(ctc_weight)),
        *("--lm", str(lm), "--lm-weight", str(lm_weight)),
    )
    return {"wer": round(metrics["wer"], 4), "cer": round(metrics["cer"], 4)}


def tune(run: Path, lm: Path) -> dict:
    grid = [
        {"ctc_weight": ctc, "lm_weight": weight, **evaluate(run, HERE / "dev.tsv", ctc, lm, weight)}
        for ctc in CTC_WEIGHTS
        for weight in LM_WEIGHTS
    ]
    return {"dev": grid}


def best(grid: list[dict], with_lm: bool) -> dict:
    """The grid point with the lowest dev WER (then CER; the smaller weights on ties)."""
    points = [point for point in grid if (point["lm_weight"] > 0) == with_lm]
    return min(points, key=lambda p: (p["wer"], p["cer"], p["lm_weight"], p["ctc_weight"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--minutes", type=float, default=110.0)
    parser.add_argument("--threads", type=int, help="CPU threads for training")
    parser.add_argument("--note", default="", help="how the machine was shared, for the record")
    parser.add_argument("--force", action="store_true", help="ignore cached steps")
    arguments = parser.parse_args()
    data = arguments.data.resolve()
    HERE.mkdir(parents=True, exist_ok=True)
    steps = Steps("an4", force=arguments.force)
    run, lm = HERE / "run-sp", HERE / "lm"
    if arguments.force and run.exists():
        shutil.rmtree(run)
    manifests = steps.run("split", lambda: split(data))
    trained = steps.run("train_sp", lambda: train(run, data, arguments.minutes, arguments.threads))
    language_model = steps.run("lm", lambda: train_language_model(lm, run, arguments.threads))
    grid = steps.run("tune", lambda: tune(run, lm))["dev"]
    fused, alone = best(grid, with_lm=True), best(grid, with_lm=False)
    test = data / "an4" / "test.tsv"

    def score_test() -> dict:
        return {
            "with_lm": evaluate(run, test, fused["ctc_weight"], lm, fused["lm_weight"]),
            "without_lm": evaluate(run, test, alone["ctc_weight"], lm, 0.0),
        }

    scores = steps.run("test", score_test)
    write_results(
        "an4",
        {
            "test_set": "AN4 an4test_clstk (130 utterances, 10 speakers not in training)",
            "search": "beam 10, joint CTC/attention, character LSTM LM by shallow fusion; "
            "weights picked on dev",
            "test_wer": scores["with_lm"]["wer"],
            "test_cer": scores["with_lm"]["cer"],
            "test_wer_without_lm": scores["without_lm"]["wer"],
            "test_cer_without_lm": scores["without_lm"]["cer"],
            "weights_with_lm": {key: fused[key] for key in ("ctc_weight", "lm_weight")},
            "weights_without_lm": {key: alone[key] for key in ("ctc_weight", "lm_weight")},
            "dev_grid": grid,
            "dev_utterances": manifests["dev_utterances"],
            "train_utterances": manifests["train_utterances"],
            "train_seconds": trained["train_seconds"],
            "train_frames_per_second": trained["train_frames_per_second"],
            "steps": trained["steps"],
            "epochs_completed": trained["epochs_completed"],
            "stop_reason": trained["stop_reason"],
            "language_model": language_model,
            "config": "configs/an4.yaml",
            "lm_config": "configs/an4_lm.yaml",
            **({"note": arguments.note} if arguments.note else {}),
        },
    )


if __name__ == "__main__":
    main()
