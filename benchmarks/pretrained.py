"""Language-model pretraining on IMDB reviews, then classifiers fine-tuned from it.

    python benchmarks/pretrained.py [--data ../shared/data] [--threads 1] [--nproc 2]

Steps (each cached in benchmarks/cache/pretrained/; a stopped step resumes from its
run's last checkpoint when the script is started again):
1. ``lm``: the forward + backward language model of configs/lm_imdb.yaml on IMDB
   train + unlabelled reviews (the test reviews are never read), its dev perplexity
   at every check and its training throughput.
Writes benchmarks/results/lm_imdb.json.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import yaml
from common import ROOT, WORK, Steps, attnrnn, write_results

RUNS = WORK / "pretrained" / "runs"


def train(config: str, run: Path, overrides: list[str], nproc: int | None = None) -> dict[str, Any]:
    """``attnrnn train`` with ``--set`` overrides, or ``--resume`` of an interrupted run
    (then with the config's epochs and the overrides of the trainer, which a resume may
    change: the config is the record of how long the run trains); ``nproc``: that many
    data-parallel processes (``--nproc``: torchrun), one thread each."""
    arguments = ["train", config, "--output", str(run)]
    for override in overrides:
        arguments += ["--set", override]
    if run.exists():  # an interrupted earlier attempt: continue it
        epochs = yaml.safe_load((ROOT / config).read_text())["trainer"]["epochs"]
        arguments = ["train", "--resume", str(run), "--set", f"trainer.epochs={epochs}"]
        for override in overrides:
            if override.startswith("trainer."):
                arguments += ["--set", override]
    if nproc:
        arguments += ["--nproc", str(nproc)]
    result = attnrnn(*arguments)
    state = json.loads((run / "last" / "state.json").read_text())["state"]
    result["train_seconds"] = round(state["elapsed_seconds"], 1)
    result["step_seconds"] = round(state["step_seconds"], 1)
    result["train_units"] = state["units"]
    return result


def dev_curve(run: Path, metric: str) -> list[dict[str, float]]:
    """Each dev check of a run: step, epoch, elapsed seconds and the metric."""
    with open(run / "metrics.csv", newline="") as handle:
        return [
            {
                "step": int(row["step"]),
                "epoch": int(row["epoch"]),
                "elapsed_seconds": float(row["elapsed_seconds"]),
                metric: round(float(row[f"dev_{metric}"]), 3),
            }
            for row in csv.DictReader(handle)
            if row.get(f"dev_{metric}")
        ]


def pretrain_language_model(data: Path, threads: int, nproc: int | None) -> dict[str, Any]:
    run = RUNS / "lm"
    texts = f"[{data}/imdb/train.jsonl.gz, {data}/imdb/unsup.jsonl.gz]"
    result = train(
        "configs/lm_imdb.yaml",
        run,
        [f"data.train={texts}", f"trainer.num_threads={threads}", "trainer.progress=false"],
        nproc,
    )
    result["processes"] = nproc or 1
    result["run"] = str(run.relative_to(ROOT))
    result["train_tokens_per_second"] = round(result["train_units"] / result["step_seconds"])
    result["dev_checks"] = dev_curve(run, "perplexity")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data", help="shared data folder")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per training run")
    parser.add_argument(
        "--nproc", type=int, help="data-parallel training processes (torchrun), --threads each"
    )
    parser.add_argument("--force", action="store_true", help="rerun cached steps")
    arguments = parser.parse_args()
    data = (ROOT / arguments.data).resolve()
    steps = Steps("pretrained", arguments.force)
    language_model = steps.run(
        "lm", lambda: pretrain_language_model(data, arguments.threads, arguments.nproc)
    )
    write_results(
        "lm_imdb",
        {
            "config": "configs/lm_imdb.yaml",
            "pretraining_text": "IMDB train + unsup reviews (75,000; test reviews not read)",
            "language_model": language_model,
        },
    )


if __name__ == "__main__":
    main()
