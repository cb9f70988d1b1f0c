"""FSDD spoken-digit benchmarks: isolated digits (official split) and connected digits.

    python benchmarks/fsdd.py [--data ../shared/data] [--force]

1. manifests: isolated (recordings 0-4 test, 5-49 train) and connected digits
   concatenated from disjoint train / test recordings (attnrnn.data.recipes.fsdd);
2. configs/fsdd_isolated.yaml: accuracy = exact transcript match on the 300 test recordings;
3. configs/fsdd_connected.yaml: WER over digits on the connected test utterances.
Steps are cached in benchmarks/cache/fsdd/. Writes benchmarks/results/fsdd.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from common import ROOT, WORK, Steps, attnrnn, write_results

from attnrnn.data.recipes import fsdd


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
        },
    )


if __name__ == "__main__":
    main()
