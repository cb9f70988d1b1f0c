"""DialogSum summarization benchmark: three systems side by side on the test set.

    python benchmarks/dialogsum.py [--data ../shared/data] [--minutes 110] [--force]

1. extractive baseline: the three longest utterances of each dialogue, in order;
2. plain attention seq2seq: configs/dialogsum.yaml with copy off, additive
   attention and no coverage loss (the same parts otherwise);
3. pointer-generator + coverage: configs/dialogsum.yaml as it is.
ROUGE-1/2/L F1 (rouge-score, stemming) against the three references of every
test dialogue: the mean over the references (``test_rouge1`` ...) and the best
reference (``test_rouge1_max`` ...), plus summary lengths. Steps are cached in
benchmarks/cache/dialogsum/. Writes benchmarks/results/dialogsum.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from common import ROOT, WORK, Steps, attnrnn, write_results

REFERENCES = ("summary1", "summary2", "summary3")


def longest_utterances(dialogue: str, count: int = 3) -> str:
    """The ``count`` longest turns (in words), in dialogue order."""
    turns = [turn.strip() for turn in dialogue.split("\n") if turn.strip()]
    longest = sorted(range(len(turns)), key=lambda i: -len(turns[i].split()))[:count]
    return " ".join(turns[i] for i in sorted(longest))


def extractive(data: Path) -> dict:
    from attnrnn.tasks.summarization import rouge_scores

    documents = [json.loads(line) for line in (data / "dialogsum.test.jsonl").open()]
    outputs = [longest_utterances(d["dialogue"]) for d in documents]
    references = [tuple(d[name] for name in REFERENCES) for d in documents]
    scores = rouge_scores(outputs, references)
    scores["summary_words_mean"] = sum(len(o.split()) for o in outputs) / len(outputs)
    return {f"test_{name}": value for name, value in scores.items()}


def train(run: Path, data: Path, minutes: float, overrides: list[str]) -> dict:
    settings = [f"trainer.max_minutes={minutes}"]
    if run.exists():
        arguments = ["train", "--resume", str(run)]
    else:
        folder = data / "dialogsum"
        settings += [
            f"data.train={folder / 'dialogsum.train.jsonl'}",
            f"data.dev={folder / 'dialogsum.dev.jsonl'}",
            f"data.test={folder / 'dialogsum.test.jsonl'}",
            *overrides,
        ]
        arguments = ["train", "configs/dialogsum.yaml", "--output", str(run)]
    for setting in settings:
        arguments += ["--set", setting]
    result = attnrnn(*arguments)
    state = json.loads((run / "last" / "state.json").read_text())["state"]
    return {
        **{key: value for key, value in result.items() if key != "run"},
        "train_seconds": round(state["elapsed_seconds"], 1),
        "steps": state["step"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--minutes", type=float, default=110.0)
    parser.add_argument("--force", action="store_true", help="ignore cached steps")
    arguments = parser.parse_args()
    steps = Steps("dialogsum", force=arguments.force)
    runs = {name: WORK / "dialogsum" / f"{name}-run" for name in ("seq2seq", "pointer")}
    if arguments.force:
        for run in runs.values():
            shutil.rmtree(run, ignore_errors=True)
    baseline = steps.run("extractive", lambda: extractive(arguments.data / "dialogsum"))
    plain = steps.run(
        "seq2seq",
        lambda: train(
            runs["seq2seq"],
            arguments.data,
            arguments.minutes,
            ["copy=false", "coverage_loss_weight=0.0", "model.decoder.attention=additive"],
        ),
    )
    pointer = steps.run(
        "pointer", lambda: train(runs["pointer"], arguments.data, arguments.minutes, [])
    )
    keep = ("rouge1", "rouge2", "rougeL", "rouge1_max", "rouge2_max", "rougeL_max")
    systems = {
        "extractive_longest_3": baseline,
        "seq2seq_attention": plain,
        "pointer_generator_coverage": pointer,
    }
    results: dict = {"test_set": "DialogSum test (500 dialogues, 3 references each)"}
    for name, scores in systems.items():
        results[name] = {
            **{f"test_{key}": round(scores[f"test_{key}"], 4) for key in keep},
            "summary_words_mean": round(scores["test_summary_words_mean"], 1),
            **({"train_seconds": scores["train_seconds"]} if "train_seconds" in scores else {}),
        }
    results.update(
        {f"test_{key}": results["pointer_generator_coverage"][f"test_{key}"] for key in keep}
    )
    results["train_seconds"] = pointer["train_seconds"]
    results["config"] = "configs/dialogsum.yaml"
    write_results("dialogsum", results)


if __name__ == "__main__":
    main()
