"""IMDB learning curve: test accuracy with 100, 1,000, 5,000 and 25,000 labels for three
starts (from scratch, word2vec vectors, the LM-pretrained encoder) beside TF-IDF +
logistic regression on the same labels.

    python benchmarks/label_efficiency.py [--data ../shared/data] [--sizes 100,1000,5000,25000]
                                          [--seeds 1,2,3] [--starts scratch,word2vec,lm]
                                          [--threads 1] [--force]

Each size is a seeded, label-stratified sample of the 25,000 IMDB training reviews (all
of them at 25,000, one seed); every start holds out 10% of it for its dev checks (a user
with N labels has no other dev set), and the baseline picks C on the same 10%. All are
scored on the 25,000 test reviews. The schedule follows the size (:func:`schedule`):
small samples get more epochs, so every run makes a few hundred updates at least.

Needs the word2vec vectors of benchmarks/imdb.py (step ``vectors``) and the language
model of benchmarks/pretrained.py (step ``lm``). Every run is a cached step
(benchmarks/cache/label_efficiency/). Writes benchmarks/results/label_efficiency.json
and label_efficiency.png.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
from pathlib import Path
from typing import Any

from baselines import tfidf_logistic_regression
from common import LANGUAGE_MODEL, RESULTS, ROOT, WORK, Steps, attnrnn, write_results
from small_data import sample

from attnrnn.data.readers import TextExample, read_examples
from attnrnn.tasks.text import split_off_dev

FOLDER = WORK / "label_efficiency"
VECTORS = WORK / "vectors" / "imdb-w2v-300.txt"
STARTS: dict[str, tuple[str, list[str]]] = {
    "scratch": (
        "configs/imdb.yaml",
        [
            "pretrained.vectors=null",
            "pretrained.vocab_from_vectors=0",
            "model.freeze_embeddings=false",
        ],
    ),
    "word2vec": ("configs/imdb.yaml", [f"pretrained.vectors={VECTORS}"]),
    "lm": ("configs/imdb_lm.yaml", [f"pretrained.encoder={LANGUAGE_MODEL}"]),
}
LABELS = {"scratch": "from scratch", "word2vec": "word2vec vectors", "lm": "LM-pretrained encoder"}


def schedule(size: int) -> list[str]:
    """Trainer settings for ``size`` labels: at least 4 epochs and about 20,000 reviews
    read (so a few hundred updates however small the sample), about 20 dev checks in all
    (batches hold about 40 reviews: 12,000 tokens of reviews cut at 500), and early
    stopping after 6 checks without gain."""
    epochs = max(4, math.ceil(20000 / size))
    updates = epochs * math.ceil(0.9 * size / 40)
    return [
        f"trainer.epochs={epochs}",
        f"trainer.eval_every_steps={max(10, updates // 20)}",
        "trainer.evals_per_epoch=null",
        "trainer.early_stopping_patience=6",
        "trainer.max_minutes=60",
        "data.dev_fraction=0.1",
    ]


def write_jsonl(examples: list[TextExample], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"text": e.text, "label": int(e.label or 0)}) for e in examples]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_start(
    start: str, train: Path, test: Path, run: Path, size: int, seed: int, threads: int
) -> dict[str, Any]:
    config, settings = STARTS[start]
    settings = [
        *settings,
        *schedule(size),
        f"data.train={train}",
        f"data.test={test}",
        f"trainer.num_threads={threads}",
        "trainer.progress=false",
        f"trainer.seed={seed}",
    ]
    shutil.rmtree(run, ignore_errors=True)
    arguments = ["train", config, "--output", str(run)]
    for setting in settings:
        arguments += ["--set", setting]
    results = attnrnn(*arguments)
    state = json.loads((run / "last" / "state.json").read_text())["state"]
    shutil.rmtree(run / "last", ignore_errors=True)  # keep best/ only: 30 runs of optimizer state
    return {
        "test_accuracy": results["test_accuracy"],
        "dev_accuracy": results["dev_accuracy"],
        "steps": state["step"],
        "epochs": state["epoch"],
        "stop_reason": state["stop_reason"],
        "train_seconds": round(state["elapsed_seconds"], 1),
    }


def summary(values: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.mean(values), 4),
        "std": round(statistics.pstdev(values), 4),
    }


def plot(table: dict[str, Any], starts: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [int(size) for size in table]
    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name in [*starts, "tfidf_lr"]:
        means = [table[str(size)][name]["mean"] * 100 for size in sizes]
        stds = [table[str(size)][name]["std"] * 100 for size in sizes]
        label = LABELS.get(name, "TF-IDF + logistic regression")
        style = "--" if name == "tfidf_lr" else "-"
        axes.errorbar(sizes, means, yerr=stds, label=label, marker="o", linestyle=style, capsize=3)
    axes.set_xscale("log")
    axes.set_xlabel("labelled training reviews")
    axes.set_ylabel("IMDB test accuracy (%)")
    axes.set_title("Label efficiency: attention BiLSTM on IMDB")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--sizes", default="100,1000,5000,25000")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--starts", default="scratch,word2vec,lm")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--force", action="store_true")
    arguments = parser.parse_args()
    starts = arguments.starts.split(",")
    for start in starts:
        if start not in STARTS:
            raise SystemExit(f"unknown start {start!r}; valid: {', '.join(STARTS)}")
    if "lm" in starts and not (LANGUAGE_MODEL / "best").exists():
        raise SystemExit(f"{LANGUAGE_MODEL} has no trained model: run benchmarks/pretrained.py")
    if "word2vec" in starts and not VECTORS.exists():
        raise SystemExit(f"{VECTORS} is missing: run benchmarks/imdb.py (its vectors step)")
    steps = Steps("label_efficiency", force=arguments.force)
    imdb = arguments.data / "imdb"
    train = read_examples(str(imdb / "train.jsonl.gz"))
    test = read_examples(str(imdb / "test.jsonl.gz"))
    test_path = imdb / "test.jsonl.gz"
    sizes = [int(size) for size in arguments.sizes.split(",")]
    seeds = [int(seed) for seed in arguments.seeds.split(",")]
    table: dict[str, Any] = {}
    for size in sizes:
        runs: dict[str, Any] = {}
        for seed in seeds if size < len(train) else seeds[:1]:
            subset = sample(train, size, seed)
            path = write_jsonl(subset, FOLDER / "data" / f"train-{size}-{seed}.jsonl")
            # The runs' own hold-out (data.dev_fraction 0.1, seeded by trainer.seed).
            fit, held_out = split_off_dev(subset, 0.1, seed, str(path))
            name = f"{size}-seed{seed}"
            entry = {
                start: steps.run(
                    f"{start}-{name}",
                    lambda start=start, path=path, seed=seed, name=name, size=size: run_start(
                        start,
                        path,
                        test_path,
                        FOLDER / "runs" / f"{start}-{name}",
                        size,
                        seed,
                        arguments.threads,
                    ),
                )
                for start in starts
            }
            entry["tfidf_lr"] = steps.run(
                f"tfidf-{name}",
                lambda fit=fit, held_out=held_out: tfidf_logistic_regression(fit, held_out, test),
            )
            runs[str(seed)] = entry
        table[str(size)] = {
            name: summary([run[name]["test_accuracy"] for run in runs.values()])
            for name in [*starts, "tfidf_lr"]
        }
        table[str(size)]["runs"] = runs
    figure = RESULTS / "label_efficiency.png"
    plot(table, starts, figure)
    write_results(
        "label_efficiency",
        {
            "data": "IMDB training reviews, label-stratified samples (all 25,000 at 25,000)",
            "starts": {start: LABELS[start] for start in starts},
            "configs": {start: STARTS[start][0] for start in starts},
            "schedule": "see schedule() in benchmarks/label_efficiency.py",
            "dev": "10% of each sample, also for the baseline's C",
            "test": "IMDB test reviews (25,000)",
            "plot": str(figure.relative_to(ROOT)),
            "sizes": table,
        },
    )


if __name__ == "__main__":
    main()
