"""Multi30k translation benchmark (De->En or En->De), trained from scratch on this machine.

    python benchmarks/multi30k.py [--direction de-en|en-de] [--minutes 90] [--snapshot 25]

One training run of configs/multi30k_<src>_<tgt>.yaml, scored on
test_2016_flickr with sacreBLEU (13a, cased) on detokenized beam-5 output:

1. train for ``--snapshot`` minutes of wall clock (validation included) and
   score the best checkpoint the run has at that moment (``test_bleu_at_25min``);
   a copy of that checkpoint is kept as ``snapshot-25min/``;
2. resume the same run (exact resume: the same recipe, as if never stopped)
   until ``--minutes`` and score its best checkpoint (``test_bleu``).

Each step is cached in benchmarks/cache/multi30k_<src>_<tgt>/, so a stopped
benchmark resumes. Writes benchmarks/results/multi30k_<src>_<tgt>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from common import ROOT, WORK, Steps, attnrnn, write_results


def train_until(config: str, run: Path, minutes: float, data: Path, threads: int | None) -> dict:
    """Train (or resume) ``run`` until ``minutes`` of wall clock are spent."""
    overrides = ["--set", f"trainer.max_minutes={minutes}"]
    if threads:
        overrides += ["--set", f"trainer.num_threads={threads}"]
    if run.exists():
        arguments = ["train", "--resume", str(run), *overrides]
    else:
        prefix = str(data / "multi30k" / "plain")
        overrides += [
            "--set",
            f"data.train={prefix}/train",
            "--set",
            f"data.dev={prefix}/val",
            "--set",
            f"data.test={prefix}/test_2016_flickr",
        ]
        arguments = ["train", config, "--output", str(run), *overrides]
    attnrnn(*arguments)
    state = json.loads((run / "last" / "state.json").read_text())["state"]
    return {
        "train_seconds": round(state["elapsed_seconds"], 1),
        "steps": state["step"],
        "epochs_completed": state["epoch"],
        "best_step": state["best_step"],
        "train_tokens": state["units"],
        "train_tokens_per_second": round(state["units"] / state["elapsed_seconds"], 1),
    }


def score(run: Path, checkpoint: str = "best") -> dict:
    """Beam-5 BLEU / chrF on the test split and BLEU on dev, of one checkpoint."""
    scored = run if checkpoint == "best" else _checkpoint_view(run, checkpoint)
    test = attnrnn("evaluate", str(scored), "--beam", "5")
    dev_prefix = _run_config(run)["data"]["dev"]  # the run's own dev split
    dev = attnrnn("evaluate", str(scored), "--beam", "5", "--data", dev_prefix)
    return {
        "test_bleu": round(test["bleu"], 2),
        "test_chrf": round(test["chrf"], 2),
        "dev_bleu": round(dev["bleu"], 2),
        "dev_chrf": round(dev["chrf"], 2),
        "bleu_signature": test["bleu_signature"],
        "chrf_signature": test["chrf_signature"],
    }


def _run_config(run: Path) -> dict:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))


def _checkpoint_view(run: Path, checkpoint: str) -> Path:
    """A run directory whose ``best`` is ``checkpoint`` (shares every other file)."""
    view = run.parent / f"{run.name}-{checkpoint}"
    if view.exists():
        shutil.rmtree(view)
    view.mkdir()
    for item in run.iterdir():
        if item.is_file():
            shutil.copy(item, view / item.name)
    shutil.copytree(run / checkpoint, view / "best")
    return view


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--direction", choices=["de-en", "en-de"], default="de-en")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--minutes", type=float, default=90.0)
    parser.add_argument("--snapshot", type=float, default=25.0)
    parser.add_argument("--force", action="store_true", help="ignore cached steps")
    parser.add_argument(
        "--threads", type=int, help="CPU threads for training (default: PyTorch's choice)"
    )
    parser.add_argument("--note", default="", help="how the machine was shared, for the record")
    arguments = parser.parse_args()
    source, target = arguments.direction.split("-")
    name = f"multi30k_{source}_{target}"
    config = f"configs/{name}.yaml"
    steps = Steps(name, force=arguments.force)
    run = WORK / name / "run"
    if arguments.force and run.exists():
        shutil.rmtree(run)
    snapshot_name = f"snapshot-{arguments.snapshot:g}min"

    def first_leg() -> dict:
        result = train_until(config, run, arguments.snapshot, arguments.data, arguments.threads)
        if (run / snapshot_name).exists():
            shutil.rmtree(run / snapshot_name)
        shutil.copytree(run / "best", run / snapshot_name)
        return result

    early = steps.run("train_snapshot", first_leg)
    early_scores = steps.run("score_snapshot", lambda: score(run, snapshot_name))
    final = steps.run(
        "train_full",
        lambda: train_until(config, run, arguments.minutes, arguments.data, arguments.threads),
    )
    final_scores = steps.run("score_full", lambda: score(run))
    minutes = f"{arguments.snapshot:g}min"
    write_results(
        name,
        {
            "direction": f"{source}->{target}",
            "test_set": "multi30k test_2016_flickr (plain: cased, untokenized)",
            "search": "beam 5, GNMT length penalty alpha 1.0",
            "test_bleu": final_scores["test_bleu"],
            "test_chrf": final_scores["test_chrf"],
            "dev_bleu": final_scores["dev_bleu"],
            f"test_bleu_at_{minutes}": early_scores["test_bleu"],
            f"test_chrf_at_{minutes}": early_scores["test_chrf"],
            f"dev_bleu_at_{minutes}": early_scores["dev_bleu"],
            "train_seconds": final["train_seconds"],
            f"train_seconds_at_{minutes}": early["train_seconds"],
            "train_tokens_per_second": final["train_tokens_per_second"],
            "steps": final["steps"],
            "best_step": final["best_step"],
            "bleu_signature": final_scores["bleu_signature"],
            "chrf_signature": final_scores["chrf_signature"],
            "config": config,
            **({"train_threads": arguments.threads} if arguments.threads else {}),
            **({"note": arguments.note} if arguments.note else {}),
        },
    )


if __name__ == "__main__":
    main()
