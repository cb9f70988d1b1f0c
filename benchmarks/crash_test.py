"""Crash test: kill training at random moments and at every failpoint, resume, and check
that nothing was lost.

    python benchmarks/crash_test.py [--trials 60] [--seed 1]

For a small classification run and a small translation run (generated data, one CPU
thread), an uninterrupted reference run is trained first. Then each trial trains the
same configuration into a fresh folder and SIGKILLs it:
- at a random moment (uniform over the reference run's wall time, set-up included), or
- at a failpoint (``ATTNRNN_CRASH_AT``, :mod:`attnrnn.training.faults`): while the run
  directory is being set up, after a training step before the first checkpoint, between a
  metrics row and its checkpoint, and at every step of writing and swapping a checkpoint;
then resumes it (``train --resume``, or ``train`` again when the kill came before the run
directory existed), killing it again at random in about a third of the resumes, until a
command finishes. The trial passes when the final ``last/`` weights and optimizer state
(tensors, bit for bit), ``best/`` weights, ``metrics.csv`` (all columns but the elapsed
time) and ``results.json`` equal the reference's, and no temporary folder is left.

Before the trials it runs the property-based tests of the readers and the configuration
loader (tests/test_reader_properties.py) with ``--hypothesis-examples`` examples each
(``make test`` runs 25), and measures the peak memory of ``attnrnn predict`` on 1k, 10k
and 100k input lines (streaming: the peaks must stay close). Writes
benchmarks/results/reliability.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from common import ROOT, WORK, write_results
from safetensors.torch import load_file

FAILPOINTS = (
    "staged_run",
    "after_step:2",
    "after_metrics_row",
    "after_metrics_row:2",
    "checkpoint_files_written",
    "checkpoint_manifest_written",
    "checkpoint_old_moved",
    "checkpoint_new_moved",
    "checkpoint_swapped",
    # the same moments in later saves, when an earlier checkpoint exists to fall back on
    "checkpoint_files_written:4",
    "checkpoint_manifest_written:5",
    "checkpoint_old_moved:3",
    "checkpoint_new_moved:4",
    "checkpoint_swapped:5",
    "after_step:15",
)


def environment(crash_at: str | None = None) -> dict[str, str]:
    variables = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    variables.pop("ATTNRNN_CRASH_AT", None)
    if crash_at:
        variables["ATTNRNN_CRASH_AT"] = crash_at
    return variables


def attnrnn(arguments: list[str], crash_at: str | None = None, kill_after: float | None = None):
    """Run the CLI; SIGKILL it after ``kill_after`` seconds. Returns (status, seconds)."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "attnrnn.cli", *arguments],
        cwd=ROOT,
        env=environment(crash_at),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = process.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        _, err = process.communicate()
    if process.returncode not in (0, -signal.SIGKILL):
        raise SystemExit(f"attnrnn {' '.join(arguments)} failed ({process.returncode}):\n{err}")
    return process.returncode, time.monotonic() - started


# --------------------------------------------------------------------------- the runs


def write_data(folder: Path) -> dict[str, Path]:
    """Generated review TSVs and date translation pairs; the two configurations."""
    from attnrnn.data.dates import split_date_pairs, write_parallel
    from attnrnn.data.synthetic import make_reviews, write_tsv

    folder.mkdir(parents=True, exist_ok=True)
    for seed, (split, count) in enumerate({"train": 1200, "dev": 200}.items()):
        write_tsv(make_reviews(count, seed=seed), folder / f"reviews.{split}.tsv")
    train_pairs, dev_pairs, _ = split_date_pairs(1200, 100, 10, seed=2)
    for name, pairs in (("train", train_pairs), ("dev", dev_pairs)):
        write_parallel(pairs, folder / f"dates.{name}.h", folder / f"dates.{name}.iso")
    trainer = {
        "max_steps": 24,
        "eval_every_steps": 6,
        "num_threads": 1,
        "progress": False,
        "early_stopping_patience": None,
    }
    classification = {
        "task": "classification",
        "data": {
            "train": str(folder / "reviews.train.tsv"),
            "dev": str(folder / "reviews.dev.tsv"),
        },
        "model": {
            "embedding_size": 24,
            "encoder": {"hidden_size": 24},
            "hidden_size": 24,
            "dropout": 0.1,
        },
        "trainer": {**trainer, "batch_tokens": 800},
    }
    translation = {
        "task": "translation",
        "data": {
            "train": str(folder / "dates.train"),
            "dev": str(folder / "dates.dev"),
            "source_language": "h",
            "target_language": "iso",
        },
        "tokenizer": {"type": "character", "joint": False},
        "model": {
            "embedding_size": 16,
            "encoder": {"hidden_size": 24},
            "decoder": {"hidden_size": 32, "attention_size": 16, "output_dropout": 0.1},
        },
        "trainer": {**trainer, "batch_tokens": 1500},
        "search": {"beam_size": 2},
    }
    configs = {}
    for name, config in (("classification", classification), ("translation", translation)):
        configs[name] = folder / f"{name}.yaml"
        configs[name].write_text(yaml.safe_dump(config))
    return configs


def snapshot(run: Path) -> dict[str, Any]:
    """What must survive a crash: tensors of last/ and best/, metrics rows, results."""
    tensors = {}
    for name in ("last/model", "last/optimizer", "best/model"):
        for key, value in load_file(str(run / f"{name}.safetensors")).items():
            tensors[f"{name}/{key}"] = value
    with (run / "metrics.csv").open(encoding="utf-8") as handle:
        rows = [
            {k: v for k, v in row.items() if k != "elapsed_seconds"}
            for row in csv.DictReader(handle)
        ]
    return {
        "tensors": tensors,
        "metrics": rows,
        "results": json.loads((run / "results.json").read_text()),
    }


def same(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What differs between two snapshots (empty: identical)."""
    differences = []
    if set(a["tensors"]) != set(b["tensors"]):
        differences.append("tensor names")
    else:
        for key, value in a["tensors"].items():
            other = b["tensors"][key]
            bits = value.dtype == other.dtype and torch.equal(
                value.reshape(-1).view(torch.uint8), other.reshape(-1).view(torch.uint8)
            )
            if value.shape != other.shape or not bits:
                differences.append(key)
    if a["metrics"] != b["metrics"]:
        differences.append("metrics.csv")
    if a["results"] != b["results"]:
        differences.append("results.json")
    return differences


def trial(
    config: Path,
    run: Path,
    crash_at: str | None,
    kill_after: float | None,
    reference_seconds: float,
    generator: random.Random,
) -> dict[str, Any]:
    """Kill one training, resume until it finishes; the kills and resumes it took."""
    shutil.rmtree(run, ignore_errors=True)
    status, _ = attnrnn(["train", str(config), "-o", str(run)], crash_at, kill_after)
    kills, resumes = int(status != 0), 0
    while status != 0:
        resumes += 1
        if resumes > 20:
            raise SystemExit(f"{run}: still not finished after 20 resumes")
        again = generator.random() < 0.3 and resumes < 4
        limit = generator.uniform(0.5, reference_seconds) if again else None
        if (run / "config.yaml").exists():
            status, _ = attnrnn(["train", "--resume", str(run)], kill_after=limit)
        else:  # killed before the run directory existed: start it again
            status, _ = attnrnn(["train", str(config), "-o", str(run)], kill_after=limit)
        kills += int(status != 0)
    leftovers = [p.name for p in run.parent.iterdir() if p.name.startswith(".")]
    leftovers += [p.name for p in run.iterdir() if p.name.endswith((".tmp", ".old"))]
    return {"kills": kills, "resumes": resumes, "leftovers": leftovers}


def property_tests(examples: int) -> dict[str, Any]:
    """The Hypothesis tests of every reader and the config loader, ``examples`` each."""
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_reader_properties.py"],
        cwd=ROOT,
        env={**environment(), "ATTNRNN_HYPOTHESIS_EXAMPLES": str(examples)},
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    summary = completed.stdout.strip().splitlines()[-1]
    print(f"property tests, {examples} examples each: {summary}", flush=True)
    tests = len(
        re.findall(r"^def test_", (ROOT / "tests/test_reader_properties.py").read_text(), re.M)
    )
    return {
        "examples_per_test": examples,
        "tests": tests,
        "examples": examples * tests,
        "passed": completed.returncode == 0,
        "pytest_summary": summary,
        "seconds": round(time.monotonic() - started, 1),
    }


def predict_memory(config: Path, folder: Path) -> dict[str, Any]:
    """Peak resident memory (MiB) of ``attnrnn predict`` on 1k, 10k and 100k lines."""
    run = folder / "memory-run"
    attnrnn(["train", str(config), "-o", str(run)])
    line = "the plot was dull but the music was truly wonderful\n"
    peaks = {}
    for count in (1_000, 10_000, 100_000):
        inputs = folder / f"lines-{count}.txt"
        inputs.write_text(line * count)
        script = (
            "import resource, subprocess, sys; "
            f"subprocess.run([sys.executable, '-m', 'attnrnn.cli', 'predict', {str(run)!r}, "
            f"{str(inputs)!r}], stdout=subprocess.DEVNULL, check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        completed = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, env=environment(), capture_output=True,
            text=True, check=True,
        )  # fmt: skip
        peaks[str(count)] = round(int(completed.stdout.strip()) / 1024, 1)
    print(f"predict peak memory (MiB) by input lines: {peaks}", flush=True)
    return {
        "peak_mib_by_lines": peaks,
        "largest_over_smallest": round(peaks["100000"] / peaks["1000"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=60, help="trials in all (two tasks)")
    parser.add_argument("--seed", type=int, default=1, help="seeds the kill moments")
    parser.add_argument(
        "--hypothesis-examples", type=int, default=2000, help="examples per property test"
    )
    arguments = parser.parse_args()
    folder = WORK / "crash_test"
    shutil.rmtree(folder, ignore_errors=True)
    configs = write_data(folder / "data")
    properties = property_tests(arguments.hypothesis_examples)
    memory = predict_memory(configs["classification"], folder)
    references, seconds = {}, {}
    for name, config in configs.items():
        run = folder / f"{name}-reference"
        _, seconds[name] = attnrnn(["train", str(config), "-o", str(run)])
        references[name] = snapshot(run)
        print(f"{name}: reference run in {seconds[name]:.1f} s", flush=True)
    generator = random.Random(arguments.seed)
    plan = []
    names = list(configs)
    for number in range(arguments.trials):
        name = names[number % len(names)]
        position = number // len(names)
        if position < len(FAILPOINTS):
            plan.append((name, FAILPOINTS[position], None))
        else:
            plan.append((name, None, generator.uniform(0.0, seconds[name])))
    outcomes = []
    for number, (name, crash_at, kill_after) in enumerate(plan, start=1):
        run = folder / "trials" / f"{number:03d}-{name}"
        run.parent.mkdir(parents=True, exist_ok=True)
        result = trial(configs[name], run, crash_at, kill_after, seconds[name], generator)
        differences = same(references[name], snapshot(run))
        passed = not differences and not result["leftovers"]
        outcomes.append(
            {
                "task": name,
                "kill": crash_at or f"after {kill_after:.2f} s",
                **result,
                "differences": differences,
                "passed": passed,
            }
        )
        print(
            f"[{number}/{len(plan)}] {name} {outcomes[-1]['kill']}: "
            f"{'ok' if passed else 'FAILED ' + str(differences + result['leftovers'])} "
            f"({result['kills']} kills, {result['resumes']} resumes)",
            flush=True,
        )
        shutil.rmtree(run, ignore_errors=True)
    killed = [o for o in outcomes if o["kills"]]
    write_results(
        "reliability",
        {
            "trials": len(outcomes),
            "passed": sum(o["passed"] for o in outcomes),
            "lost": sum(not o["passed"] for o in outcomes),
            "kills": sum(o["kills"] for o in killed),
            "trials_killed_at_least_once": len(killed),
            "failpoint_trials": sum(o["kill"] in FAILPOINTS for o in outcomes),
            "reference_seconds": {name: round(value, 1) for name, value in seconds.items()},
            "property_tests": properties,
            "predict_memory": memory,
            "outcomes": outcomes,
        },
    )
    if any(not o["passed"] for o in outcomes) or not properties["passed"]:
        raise SystemExit("some trials lost work or a property test failed")


if __name__ == "__main__":
    main()
