"""FSDD spoken-digit benchmarks: isolated digits (official split) and connected digits.

    python benchmarks/fsdd.py [--data ../shared/data] [--force] [--threads N] [--note TEXT]

1. manifests: isolated (recordings 0-4 test, 5-49 train) and connected digits
   concatenated from disjoint train / test recordings (attnrnn.data.recipes.fsdd);
2. configs/fsdd_isolated.yaml: accuracy = exact transcript match on the 300 test recordings;
3. configs/fsdd_connected.yaml: WER over digits on the connected test utterances;
4. little data: configs/fsdd_connected.yaml trained on 30, 100 and 300 connected
   utterances (nested subsets of the training set; 100 other training utterances are
   dev for all), with and without guided attention (model.diagonal_weight), each
   with its test WER and the attention's diagonality on the test utterances.
Steps are cached in benchmarks/cache/fsdd/. Writes benchmarks/results/fsdd.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from common import ROOT, WORK, Steps, attnrnn, write_results

from attnrnn.data.recipes import fsdd

SMALL_SIZES = (30, 100, 300)
SMALL_DEV = 100  # training utterances held out as the small runs' dev set
SMALL_STEPS = 1500  # updates per small run (epochs are a few updates each)
SMALL_MINUTES = 12
# (name, overrides): the recipe as it is, and with the left-to-right prior
SMALL_VARIANTS = (
    ("recipe", []),
    ("guided", ["model.diagonal_weight=1.0"]),
)


def train(config: str, run: Path, data_dir: Path, name: str, threads: int | None) -> dict:
    threads_setting = ["--set", f"trainer.num_threads={threads}"] if threads else []
    if run.exists():
        arguments = ["train", "--resume", str(run), *threads_setting]
    else:
        arguments = [
            "train",
            config,
            "--output",
            str(run),
            "--set",
            f"data.train={data_dir / f'{name}_train.tsv'}",
            "--set",
            f"data.test={data_dir / f'{name}_test.tsv'}",
            "--set",
            f"data.feature_cache={WORK / 'fsdd' / 'features'}",
            *threads_setting,
        ]
    result = attnrnn(*arguments)
    state = json.loads((run / "last" / "state.json").read_text())["state"]
    return {
        **{key: value for key, value in result.items() if key != "run"},
        "train_seconds": round(state["elapsed_seconds"], 1),
    }


def small_manifests(data_dir: Path) -> dict:
    """``small_dev.tsv`` and ``small_N.tsv`` (N in SMALL_SIZES, nested) from the
    connected training manifest, in a seeded order."""
    import random

    lines = (data_dir / "connected_train.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    random.Random(0).shuffle(rows)
    (data_dir / "small_dev.tsv").write_text("\n".join([header, *rows[:SMALL_DEV]]) + "\n")
    for size in SMALL_SIZES:
        chosen = rows[SMALL_DEV : SMALL_DEV + size]
        (data_dir / f"small_{size}.tsv").write_text("\n".join([header, *chosen]) + "\n")
    return {"dev_utterances": SMALL_DEV, "sizes": list(SMALL_SIZES)}


def train_small(
    run: Path, data_dir: Path, size: int, overrides: list[str], threads: int | None
) -> dict:
    """configs/fsdd_connected.yaml on ``size`` utterances for SMALL_STEPS updates, a dev
    check every 50 (early stopping after 10 without gain)."""
    settings = [
        f"data.train={data_dir / f'small_{size}.tsv'}",
        f"data.dev={data_dir / 'small_dev.tsv'}",
        f"data.test={data_dir / 'connected_test.tsv'}",
        f"data.feature_cache={WORK / 'fsdd' / 'features'}",
        "trainer.epochs=100000",
        f"trainer.max_steps={SMALL_STEPS}",
        f"trainer.max_minutes={SMALL_MINUTES}",
        "trainer.eval_every_steps=50",
        "trainer.progress=false",
        *overrides,
        *([f"trainer.num_threads={threads}"] if threads else []),
    ]
    if run.exists():
        shutil.rmtree(run)  # minutes to train: start again rather than resume
    arguments = ["train", "configs/fsdd_connected.yaml", "--output", str(run)]
    for setting in settings:
        arguments += ["--set", setting]
    result = attnrnn(*arguments)
    state = json.loads((run / "last" / "state.json").read_text())["state"]
    return {
        "train_utterances": size,
        "test_wer": round(result["test_wer"], 4),
        "test_cer": round(result["test_cer"], 4),
        "test_attention_diagonality": round(result["test_attention_diagonality"], 3),
        "test_attention_early_share": round(result["test_attention_early_share"], 3),
        "dev_wer": round(result["dev_wer"], 4),
        "steps": state["step"],
        "train_seconds": round(state["elapsed_seconds"], 1),
        "stop_reason": state.get("stop_reason"),
    }


def isolated_accuracy(run: Path, manifest: Path) -> dict:
    """Exact-match accuracy of the transcripts (one digit each) on the test manifest."""
    import attnrnn
    from attnrnn.tasks.speech import read_manifest

    model = attnrnn.load(run)
    utterances = read_manifest(str(manifest), model.config.data)
    transcripts = model.transcribe([u.audio for u in utterances])
    correct = sum(t.text == u.text for t, u in zip(transcripts, utterances, strict=True))
    return {"isolated_test_accuracy": correct / len(utterances), "test_recordings": len(utterances)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--force", action="store_true", help="ignore cached steps")
    parser.add_argument("--threads", type=int, help="CPU threads for training")
    parser.add_argument("--note", default="", help="how the machine was shared, for the record")
    arguments = parser.parse_args()
    steps = Steps("fsdd", force=arguments.force)
    data_dir = WORK / "fsdd" / "data"
    runs = {name: WORK / "fsdd" / f"{name}-run" for name in ("isolated", "connected")}
    if arguments.force:
        for path in [data_dir, *runs.values()]:
            shutil.rmtree(path, ignore_errors=True)

    def manifests() -> dict:
        fsdd.isolated_manifests(arguments.data / "fsdd", data_dir)
        fsdd.connected_digits(arguments.data / "fsdd", data_dir)
        return {"data": str(data_dir.relative_to(ROOT))}

    steps.run("manifests", manifests)
    isolated = steps.run(
        "isolated",
        lambda: train(
            "configs/fsdd_isolated.yaml", runs["isolated"], data_dir, "isolated", arguments.threads
        ),
    )
    accuracy = steps.run(
        "isolated_accuracy",
        lambda: isolated_accuracy(runs["isolated"], data_dir / "isolated_test.tsv"),
    )
    connected = steps.run(
        "connected",
        lambda: train(
            "configs/fsdd_connected.yaml",
            runs["connected"],
            data_dir,
            "connected",
            arguments.threads,
        ),
    )
    steps.run("small_manifests", lambda: small_manifests(data_dir))
    small: dict[str, list[dict]] = {}
    for variant, overrides in SMALL_VARIANTS:
        for size in SMALL_SIZES:
            run = WORK / "fsdd" / f"small-{variant}-{size}"
            small.setdefault(variant, []).append(
                steps.run(
                    f"small_{variant}_{size}",
                    lambda run=run, size=size, overrides=overrides: train_small(
                        run, data_dir, size, overrides, arguments.threads
                    ),
                )
            )
    write_results(
        "fsdd",
        {
            "isolated_test_accuracy": round(accuracy["isolated_test_accuracy"], 4),
            "isolated_test_wer": round(isolated["test_wer"], 4),
            "isolated_train_seconds": isolated["train_seconds"],
            "connected_test_wer": round(connected["test_wer"], 4),
            "connected_test_cer": round(connected["test_cer"], 4),
            "connected_train_seconds": connected["train_seconds"],
            "train_seconds": round(isolated["train_seconds"] + connected["train_seconds"], 1),
            "configs": ["configs/fsdd_isolated.yaml", "configs/fsdd_connected.yaml"],
            "small_data": {
                "setup": f"configs/fsdd_connected.yaml on N connected-digit utterances, "
                f"{SMALL_STEPS} updates at most ({SMALL_MINUTES} min), dev = {SMALL_DEV} other "
                "training utterances, test = the 500 connected test utterances; diagonality: "
                "median correlation of attention peak and time (1: a straight path)",
                "variants": {
                    "recipe": "the config as it is (model.diagonal_weight 0)",
                    "guided": "model.diagonal_weight 1.0 (guided attention)",
                },
                **small,
            },
            **({"note": arguments.note} if arguments.note else {}),
        },
    )


if __name__ == "__main__":
    main()
