"""Do quality numbers survive a refactor? Retrain the same systems with the same seeds
on two versions of the code and compare.

    python benchmarks/regression.py --label after
    python benchmarks/regression.py --label before --code ../attnrnn-before   # a checkout of the
                                                                            # earlier commit
    python benchmarks/regression.py --report                                # writes the results

Systems (each on ONE CPU thread, so two versions can train side by side, one core each):
- dates: the demo's character-level date translator (attnrnn.demo_dates), exact match on its
  1,000 held-out dates;
- fsdd_isolated: configs/fsdd_isolated.yaml on the official FSDD split, exact-match accuracy of
  the 300 test transcripts;
- sst2_scratch: configs/sst2.yaml without pretrained vectors (as benchmarks/sst2.py step
  ``sst2_scratch``), SST-2 test accuracy.

``--seed N`` trains every system with another seed (label it, e.g. ``before-seed2``): the spread
over seeds is the run-to-run noise a difference between versions is compared with.

Only the command line is used (``attnrnn train`` and ``attnrnn transcribe``, which both versions
have), through ``python -m attnrnn.cli`` run in the checkout under test (with its configs).
Steps are cached per label in benchmarks/cache/regression-LABEL/. ``--report`` writes
benchmarks/results/regression.json with both labels side by side and the earlier recorded figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import RESULTS, ROOT, WORK, Steps, sst2_scratch_overrides, write_results

SYSTEMS = ("dates", "fsdd_isolated", "sst2_scratch")
# The figure each system is judged by.
HEADLINE = {
    "dates": "test_exact_match",
    "fsdd_isolated": "isolated_test_accuracy",
    "sst2_scratch": "test_accuracy",
}


def cli(code: Path, *arguments: str) -> str:
    """Run ``attnrnn`` from the code at ``code``; its standard output."""
    environment = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    print("$ attnrnn " + " ".join(map(shlex.quote, arguments)), flush=True)
    completed = subprocess.run(
        [sys.executable, "-m", "attnrnn.cli", *arguments],
        cwd=code,  # `-m` puts the working directory first on sys.path
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if completed.returncode:
        raise SystemExit(f"attnrnn {arguments[0]} failed with status {completed.returncode}")
    return completed.stdout


def python(code: Path, script: str) -> str:
    environment = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=code, env=environment, stdout=subprocess.PIPE,
        text=True, check=True,
    )  # fmt: skip
    return completed.stdout


SEED: list[str] = []  # ["--set", "trainer.seed=N"] with --seed


def train(code: Path, config: Path | str, run: Path, overrides: list[str]) -> dict[str, Any]:
    shutil.rmtree(run, ignore_errors=True)  # a cached step is never half-run: start again
    arguments = ["train", str(config), "--output", str(run), "--set", "trainer.num_threads=1"]
    arguments += SEED
    for override in overrides:
        arguments += ["--set", override]
    results = json.loads(cli(code, *arguments))
    state = json.loads((run / "last" / "state.json").read_text())["state"]
    results["steps"] = state["step"]
    results["train_seconds"] = round(state["elapsed_seconds"], 1)
    return {key: value for key, value in results.items() if key != "run"}


def dates(code: Path, work: Path) -> dict[str, Any]:
    """The demo's date translator, data and configuration made by that version's code."""
    folder = work / "dates"
    script = f"""
from pathlib import Path
from attnrnn.config import save_yaml
from attnrnn.data.dates import split_date_pairs, write_parallel
from attnrnn.demo_dates import dates_config
folder = Path({str(folder)!r}); folder.mkdir(parents=True, exist_ok=True)
splits = split_date_pairs(10000, 500, 1000, seed=11)
for name, pairs in zip(("train", "dev", "test"), splits):
    write_parallel(pairs, folder / f"{{name}}.human", folder / f"{{name}}.iso")
save_yaml(dates_config(folder, quick=False), folder / "dates.yaml")
"""
    python(code, script)
    return train(code, folder / "dates.yaml", work / "dates-run", [])


def fsdd_isolated(code: Path, work: Path, data: Path) -> dict[str, Any]:
    folder = work / "fsdd"
    python(
        code,
        "from pathlib import Path\nfrom attnrnn.data.recipes import fsdd\n"
        f"fsdd.isolated_manifests(Path({str(data / 'fsdd')!r}), Path({str(folder)!r}))",
    )
    run = work / "fsdd-run"
    overrides = [
        f"data.train={folder / 'isolated_train.tsv'}",
        f"data.test={folder / 'isolated_test.tsv'}",
        f"data.feature_cache={work / 'features'}",
    ]
    results = train(code, code / "configs/fsdd_isolated.yaml", run, overrides)
    rows = (folder / "isolated_test.tsv").read_text(encoding="utf-8").splitlines()[1:]
    audio = [str(folder / row.split("\t")[0]) for row in rows]
    texts = [row.split("\t")[1] for row in rows]
    lines = cli(code, "transcribe", str(run), *audio).splitlines()
    transcripts = [line.split("\t", 1)[1] if "\t" in line else "" for line in lines]
    correct = sum(t == r for t, r in zip(transcripts, texts, strict=True))
    results["isolated_test_accuracy"] = round(correct / len(texts), 4)
    return results


def sst2_scratch(code: Path, work: Path, data: Path) -> dict[str, Any]:
    overrides = sst2_scratch_overrides(data)
    return train(code, code / "configs/sst2.yaml", work / "sst2-run", overrides)


NOTE = (
    "before = commit 969069c (the code before issue 13's task-layer refactor), after = the "
    "refactored code (code_commit in each system's results); -seedN labels train with "
    "trainer.seed=N instead of the config's seed, to measure run-to-run noise. All on one CPU "
    "thread, before and after side by side on the two cores. recorded_before: the figures in "
    "sst2.json (two threads, an earlier commit) and fsdd.json."
)


def revision(code: Path) -> str:
    completed = subprocess.run(
        ["git", "-C", str(code), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return completed.stdout.strip() or "unknown"


def report() -> None:
    labels = sorted(
        path.name.removeprefix("regression-") for path in WORK.glob("regression-*") if path.is_dir()
    )
    measured = {label: Steps(f"regression-{label}").directory for label in labels}
    systems: dict[str, Any] = {}
    for system in SYSTEMS:
        systems[system] = {
            label: json.loads((folder / f"{system}.json").read_text())
            for label, folder in measured.items()
            if (folder / f"{system}.json").exists()
        }
    recorded = {
        "sst2_scratch_test_accuracy": json.loads((RESULTS / "sst2.json").read_text())[
            "test_accuracy_from_scratch"
        ],
        "fsdd_isolated_test_accuracy": json.loads((RESULTS / "fsdd.json").read_text())[
            "isolated_test_accuracy"
        ],
    }
    headline = {
        system: {label: result[HEADLINE[system]] for label, result in results.items()}
        for system, results in systems.items()
    }
    write_results(
        "regression",
        {"headline": headline, "systems": systems, "recorded_before": recorded, "note": NOTE},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", help="name of the code version measured (before, after...)")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose attnrnn to run")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated")
    parser.add_argument("--report", action="store_true", help="write results/regression.json")
    parser.add_argument("--force", action="store_true", help="ignore cached steps")
    parser.add_argument(
        "--seed", type=int, help="trainer.seed for every system (default: each config's), to "
        "measure run-to-run noise"
    )  # fmt: skip
    arguments = parser.parse_args()
    if arguments.seed is not None:
        SEED.extend(["--set", f"trainer.seed={arguments.seed}"])
    if arguments.report:
        report()
        return
    if not arguments.label:
        parser.error("--label is needed (or --report)")
    steps = Steps(f"regression-{arguments.label}", force=arguments.force)
    work = steps.directory / "work"
    code, data = arguments.code.resolve(), arguments.data.resolve()
    jobs = {
        "dates": lambda: dates(code, work),
        "fsdd_isolated": lambda: fsdd_isolated(code, work, data),
        "sst2_scratch": lambda: sst2_scratch(code, work, data),
    }
    for system in arguments.systems.split(","):
        steps.run(system, lambda system=system: {**jobs[system](), "code_commit": revision(code)})


if __name__ == "__main__":
    main()
