"""Data-parallel training benchmark (issue 17): Multi30k De->En training throughput on
this machine's CPU cores for three ways of spending two cores on one global batch, and
the BLEU each reaches after the same number of updates.

    python benchmarks/distributed.py [--data ../shared/data] [--steps 1000] [--force]

Every system trains configs/multi30k_de_en.yaml from scratch for ``--steps`` updates of
the same global batch: 2 batches of up to 2,000 padded tokens per update (4,000 tokens,
the recipe's batch), taken
- ``1p x 1t``: by one process on one thread (pinned to core 0), accumulating the two
  batches (``trainer.accumulate_steps: 2``);
- ``1p x 2t``: by one process on two threads, accumulating the two batches;
- ``2p x 1t``: by two processes (``attnrnn train --nproc 2``: torchrun, gloo) of one
  thread each, one batch each, gradients averaged by DistributedDataParallel.

The three train on the same batches at every update (a step's batches depend on the
global batch only), so their BLEU differs only by the dropout noise of each process. To
know how large that noise is, ``1p x 2t`` is also trained with seeds 2 and 3 (other
initialisation, data order and dropout): the spread of those runs is the noise a
difference between the systems is measured against.
Throughput is target tokens per second of training steps alone (``step_seconds`` in the
checkpoint: no evaluation, no checkpoint writing); scaling efficiency is the two-core
throughput over twice the one-core one. Each system is a cached step
(benchmarks/cache/distributed/), so a stopped run resumes with the next system. Run it
alone on the machine: the systems use both cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import ROOT, WORK, Steps, write_results

RUNS = WORK / "distributed" / "runs"
SYSTEMS = {
    # name: (processes, threads per process, accumulated batches per process)
    "1p x 1t": (1, 1, 2),
    "1p x 2t": (1, 2, 2),
    "2p x 1t": (2, 1, 1),
}


SEEDS = (2, 3)  # more seeds of 1p x 2t, for the noise


def train(name: str, data: Path, steps: int, seed: int = 1) -> dict[str, Any]:
    processes, threads, accumulate = SYSTEMS[name]
    run = RUNS / (name.replace(" ", "") + (f"-seed{seed}" if seed != 1 else ""))
    shutil.rmtree(run, ignore_errors=True)
    corpus = data / "multi30k" / "plain"
    settings = {
        "data.train": corpus / "train",
        "data.dev": corpus / "val",
        "data.test": corpus / "test_2016_flickr",
        "trainer.max_steps": steps,
        "trainer.max_minutes": "null",
        "trainer.eval_every_steps": steps,  # one dev evaluation, at the end
        "trainer.batch_tokens": 2000,
        "trainer.accumulate_steps": accumulate,
        "trainer.num_threads": threads,
        "trainer.progress": "false",
        "trainer.seed": seed,
    }
    command = [sys.executable, "-m", "attnrnn", "train", "configs/multi30k_de_en.yaml"]
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    command += ["--output", str(run)]
    if processes > 1:
        command += ["--nproc", str(processes)]
    elif threads == 1:
        command = ["taskset", "-c", "0", *command]
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    print("$ " + " ".join(command), flush=True)
    completed = subprocess.run(
        command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, text=True, check=False
    )
    if completed.returncode:
        raise SystemExit(f"{name}: training failed with status {completed.returncode}")
    results = json.loads(completed.stdout)
    state = json.loads((run / "last" / "state.json").read_text())["state"]
    return {
        "seed": seed,
        "processes": processes,
        "threads_per_process": threads,
        "accumulate_steps": accumulate,
        "global_batch": f"{processes * accumulate} x 2000 padded tokens",
        "updates": state["step"],
        "target_tokens": state["units"],
        "step_seconds": round(state["step_seconds"], 1),
        "tokens_per_second": round(state["units"] / state["step_seconds"], 1),
        "wall_seconds": round(state["elapsed_seconds"], 1),
        "dev_bleu": results["dev_bleu"],
        "test_bleu": results["test_bleu"],
        "test_chrf": results.get("test_chrf"),
        "run": str(run.relative_to(ROOT)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--force", action="store_true", help="train every system again")
    arguments = parser.parse_args()
    steps = Steps("distributed", force=arguments.force)
    systems = {
        name: steps.run(
            name.replace(" ", ""), lambda name=name: train(name, arguments.data, arguments.steps)
        )
        for name in SYSTEMS
    }
    seeds = {1: systems["1p x 2t"]}
    for seed in SEEDS:
        seeds[seed] = steps.run(
            f"1px2t-seed{seed}",
            lambda seed=seed: train("1p x 2t", arguments.data, arguments.steps, seed),
        )
    one = systems["1p x 1t"]["tokens_per_second"]
    bleu = [system["test_bleu"] for system in systems.values()]
    by_seed = [run["test_bleu"] for run in seeds.values()]
    write_results(
        "distributed",
        {
            "task": "Multi30k De->En (configs/multi30k_de_en.yaml), training from scratch",
            "systems": systems,
            "speedup_2p_over_1p1t": round(systems["2p x 1t"]["tokens_per_second"] / one, 3),
            "speedup_2t_over_1p1t": round(systems["1p x 2t"]["tokens_per_second"] / one, 3),
            "scaling_efficiency_2p": round(systems["2p x 1t"]["tokens_per_second"] / (2 * one), 3),
            "test_bleu_spread": round(max(bleu) - min(bleu), 2),
            "test_bleu_by_seed_1p2t": {str(seed): run["test_bleu"] for seed, run in seeds.items()},
            "test_bleu_seed_spread": round(max(by_seed) - min(by_seed), 2),
            "test_bleu_seed_std": round(statistics.stdev(by_seed), 2),
            "note": (
                "Same global batch and the same batches at every update in all three; BLEU "
                "differs by dropout noise only (1p x 1t and 1p x 2t share one process's "
                "dropout and give identical BLEU). The seed runs measure the noise. "
                "Throughput counts training steps alone."
            ),
        },
    )


if __name__ == "__main__":
    main()
