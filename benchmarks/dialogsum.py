"""DialogSum summarization benchmark: three systems side by side on the test set.

    python benchmarks/dialogsum.py [--data ../shared/data] [--minutes 110] [--threads N]
                                   [--systems extractive,seq2seq,pointer] [--force]

1. extractive baseline: the three longest utterances of each dialogue, in order;
2. plain attention seq2seq: configs/dialogsum.yaml with copy off, additive
   attention and no coverage loss (the same parts otherwise);
3. pointer-generator + coverage: configs/dialogsum.yaml as it is.
ROUGE-1/2/L F1 (rouge-score, stemming) against the three references of every
test dialogue: the mean over the references (``test_rouge1`` ...) and the best
reference (``test_rouge1_max`` ...), plus summary lengths. Steps are cached in
benchmarks/cache/dialogsum/, so the systems can be trained one at a time or side by
side (``--systems pointer --threads 1`` pinned to one core, ``--systems seq2seq``
on the other); the results file is written once all three are cached. Writes
benchmarks/results/dialogsum.json.
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
    from attnrnn.metrics import rouge_scores

    documents = [json.loads(line) for line in (data / "dialogsum.test.jsonl").open()]
    outputs = [longest_utterances(d["dialogue"]) for d in documents]
    references = [tuple(d[name] for name in REFERENCES) for d in documents]
    scores = rouge_scores(outputs, references)
    scores["summary_words_mean"] = sum(len(o.split()) for o in outputs) / len(outputs)
    return {f"test_{name}": value for name, value in scores.items()}


SYSTEMS = ("extractive", "seq2seq", "pointer")


def train(run: Path, data: Path, minutes: float, threads: int | None, overrides: list[str]) -> dict:
    settings = [f"trainer.max_minutes={minutes}"]
    if threads:
        settings.append(f"trainer.num_threads={threads}")
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
    parser.add_argument("--threads", type=int, help="CPU threads for training")
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help="comma-separated systems to run now"
    )
    parser.add_argument("--force", action="store_true", help="ignore cached steps")
    parser.add_argument("--note", help="how the machine was shared, etc. (kept in the results)")
    arguments = parser.parse_args()
    chosen = [name.strip() for name in arguments.systems.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    steps = Steps("dialogsum", force=arguments.force)
    runs = {name: WORK / "dialogsum" / f"{name}-run" for name in ("seq2seq", "pointer")}
    if arguments.force:
        for name in chosen:
            if name in runs:
                shutil.rmtree(runs[name], ignore_errors=True)
    overrides = {
        "seq2seq": ["copy=false", "coverage_loss_weight=0.0", "model.decoder.attention=additive"],
        "pointer": [],
    }
    scores: dict[str, dict] = {}
    for name in chosen:
        if name == "extractive":
            scores[name] = steps.run(name, lambda: extractive(arguments.data / "dialogsum"))
        else:
            scores[name] = steps.run(
                name,
                lambda name=name: train(
                    runs[name],
                    arguments.data,
                    arguments.minutes,
                    arguments.threads,
                    overrides[name],
                ),
            )
    missing = [name for name in SYSTEMS if name not in chosen and not steps.done(name)]
    if missing:
        print(f"not writing results yet: {', '.join(missing)} still to run")
        return
    baseline, plain, pointer = (
        scores[name] if name in scores else steps.load(name) for name in SYSTEMS
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
            **{key: scores[key] for key in ("train_seconds", "steps") if key in scores},
            **({"commit": scores["commit"]} if "commit" in scores else {}),
        }
    results.update(
        {f"test_{key}": results["pointer_generator_coverage"][f"test_{key}"] for key in keep}
    )
    results["reference_words_mean"] = round(pointer["test_reference_words_mean"], 1)
    results["train_seconds"] = pointer["train_seconds"]
    results["config"] = "configs/dialogsum.yaml"
    results["reproduce"] = (
        "python benchmarks/dialogsum.py [--threads 1]: trains what is not cached in "
        "benchmarks/cache/dialogsum/ (--force retrains), then scores all three systems"
    )
    if arguments.note:
        results["note"] = arguments.note
    write_results("dialogsum", results)


if __name__ == "__main__":
    main()
