"""Own-sentences benchmark (issue 18, part 3): does the recipe for a user's own labelled
sentences (configs/sentences.yaml, trained from scratch) beat TF-IDF + logistic
regression on the same data, at several training-set sizes?

    python benchmarks/small_data.py [--data ../shared/data] [--sizes 1000,3000,6920]
                                    [--seeds 1,2,3] [--force]

The data are SST-2's whole sentences (``sst/sentences/sst2_train.tsv``, 6,920 sentences,
no phrase labels), as a user with a TSV of labelled sentences would have them: each size
is a seeded, label-stratified sample of the training sentences; the recipe holds out 10%
of it for its dev checks (no dev file, as a user without one), and the baseline picks C
on that same held-out 10%. Both are scored on the SST-2 test sentences (1,821). Every run
is a cached step (benchmarks/cache/small_data/), trained on one thread.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
from pathlib import Path
from typing import Any

from baselines import tfidf_logistic_regression
from common import ROOT, WORK, Steps, attnrnn, write_results

from attnrnn.data.readers import TextExample, read_examples
from attnrnn.tasks.text import split_off_dev

FOLDER = WORK / "small_data"


def sample(examples: list[TextExample], size: int, seed: int) -> list[TextExample]:
    """``size`` examples with the labels in the proportions of ``examples`` (seeded)."""
    if size >= len(examples):
        return list(examples)
    generator = random.Random(seed)
    by_label: dict[str | None, list[TextExample]] = {}
    for example in examples:
        by_label.setdefault(example.label, []).append(example)
    chosen: list[TextExample] = []
    for label in sorted(by_label, key=str):
        group = by_label[label]
        chosen += generator.sample(group, round(size * len(group) / len(examples)))
    generator.shuffle(chosen)
    return chosen


def write_tsv(examples: list[TextExample], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["text\tlabel", *(f"{example.text}\t{example.label}" for example in examples)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_recipe(
    train: Path, test: Path, run: Path, seed: int, overrides: list[str]
) -> dict[str, Any]:
    shutil.rmtree(run, ignore_errors=True)
    extra = [item for override in overrides for item in ("--set", override)]
    results = attnrnn(
        "train", "configs/sentences.yaml", "--output", str(run),
        "--set", f"data.train={train}", "--set", f"data.test={test}",
        "--set", "trainer.num_threads=1", "--set", "trainer.progress=false",
        "--set", f"trainer.seed={seed}", *extra,
    )  # fmt: skip
    state = json.loads((run / "last" / "state.json").read_text())["state"]
    return {
        "test_accuracy": results["test_accuracy"],
        "dev_accuracy": results["dev_accuracy"],
        "steps": state["step"],
        "epochs": state["epoch"],
        "dev_checks": state["evaluations"],
        "stop_reason": state["stop_reason"],
        "train_seconds": round(state["elapsed_seconds"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--sizes", default="1000,3000,6920")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--force", action="store_true")
    parser.add_argument(
        "--variant", default="", help="name of a variant of the recipe (its own cached steps)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="the variant's settings"
    )
    arguments = parser.parse_args()
    tag = f"{arguments.variant}-" if arguments.variant else ""
    steps = Steps("small_data", force=arguments.force)
    sentences = arguments.data / "sst" / "sentences"
    train = read_examples(str(sentences / "sst2_train.tsv"), text_field="sentence")
    test_path = sentences / "sst2_test.tsv"
    test = read_examples(str(test_path), text_field="sentence")
    test_tsv = write_tsv(test, FOLDER / "data" / "test.tsv")
    sizes = [int(size) for size in arguments.sizes.split(",")]
    seeds = [int(seed) for seed in arguments.seeds.split(",")]
    table: dict[str, Any] = {}
    for size in sizes:
        runs: dict[str, Any] = {}
        for seed in seeds if size < len(train) else seeds[:1]:
            subset = sample(train, size, seed)
            path = write_tsv(subset, FOLDER / "data" / f"train-{size}-{seed}.tsv")
            # The recipe's own hold-out (data.dev_fraction 0.1, seeded by trainer.seed).
            fit, held_out = split_off_dev(subset, 0.1, seed, str(path))
            name = f"{size}-seed{seed}"
            recipe = steps.run(
                f"recipe-{tag}{name}",
                lambda path=path, seed=seed, name=name: run_recipe(
                    path, test_tsv, FOLDER / "runs" / f"{tag}{name}", seed, arguments.set
                ),
            )
            baseline = steps.run(
                f"tfidf-{name}",
                lambda fit=fit, held_out=held_out: tfidf_logistic_regression(fit, held_out, test),
            )
            runs[str(seed)] = {"recipe": recipe, "tfidf_lr": baseline}
        recipe_accuracy = [run["recipe"]["test_accuracy"] for run in runs.values()]
        baseline_accuracy = [run["tfidf_lr"]["test_accuracy"] for run in runs.values()]
        table[str(size)] = {
            "runs": runs,
            "recipe_mean": round(statistics.mean(recipe_accuracy), 4),
            "recipe_std": round(statistics.pstdev(recipe_accuracy), 4),
            "tfidf_lr_mean": round(statistics.mean(baseline_accuracy), 4),
            "tfidf_lr_std": round(statistics.pstdev(baseline_accuracy), 4),
        }
    write_results(
        f"small_data{'-' + arguments.variant if arguments.variant else ''}",
        {
            "variant": {"name": arguments.variant, "settings": arguments.set},
            "data": "SST-2 whole training sentences (no phrases), label-stratified samples",
            "recipe": "configs/sentences.yaml from scratch (10% of each sample held out for dev)",
            "baseline": "TF-IDF 1-2-grams + logistic regression, C picked on the same 10%",
            "test": "SST-2 test sentences (1,821)",
            "sizes": table,
        },
    )


if __name__ == "__main__":
    main()
