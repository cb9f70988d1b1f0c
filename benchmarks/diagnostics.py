"""Attention diagnostics benchmark (issue 16): do our models' attention weights explain
their predictions, and do the faithfulness options make them explain more?

    python benchmarks/diagnostics.py [--data ../shared/data] [--only PREFIX,...] [--force]

Trains (each step cached in benchmarks/cache/diagnostics/, so a stopped run resumes;
every training runs on one thread):
- SST-2 classifiers from scratch (configs/sst2.yaml without word vectors), seeds 1-3, and
  the same with the diversity objective (``model.pooling.diversity_weight``);
- IMDB classifiers (configs/imdb.yaml, 15-minute budget), without and with diversity;
- the date translator (the demo's data and model), without and with guided alignment
  towards the generator's reference links;
- Multi30k De->En (configs/multi30k_de_en.yaml, 20-minute budget), without and with guided
  alignment towards eflomal's symmetrised word alignments of the training data;
then runs ``attnrnn diagnose`` on each and writes benchmarks/results/diagnostics.json.
``--only sst2,dates`` runs only the steps whose names start with those prefixes.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import ROOT, WORK, Steps, attnrnn, attnrnn_text

RUNS = WORK / "diagnostics" / "runs"
THREAD = ["--set", "trainer.num_threads=1", "--set", "trainer.progress=false"]


def train(config: Path | str, run: Path, overrides: list[str]) -> dict[str, Any]:
    """Train ``config`` into ``run`` (from the start: a cached step is never half-run)."""
    shutil.rmtree(run, ignore_errors=True)
    arguments = ["train", str(config), "--output", str(run), *THREAD]
    for override in overrides:
        arguments += ["--set", override]
    results = attnrnn(*arguments)
    state = json.loads((run / "last" / "state.json").read_text())["state"]
    results["steps"] = state["step"]
    results["train_seconds"] = round(state["elapsed_seconds"], 1)
    results["run"] = str(run.relative_to(ROOT))
    return results


def sst2_overrides(data: Path, seed: int) -> list[str]:
    return [
        f"data.train={data}/sst/trees/train.txt",
        f"data.dev={data}/sst/trees/dev.txt",
        f"data.test={data}/sst/trees/test.txt",
        "pretrained.vectors=null",
        "pretrained.vocab_from_vectors=0",
        "model.freeze_embeddings=false",
        f"trainer.seed={seed}",
    ]


def imdb_overrides(data: Path) -> list[str]:
    """configs/imdb.yaml from scratch (no word vectors), 2 epochs: 15 minutes a run."""
    return [
        f"data.train={data}/imdb/train.jsonl.gz",
        f"data.test={data}/imdb/test.jsonl.gz",
        "pretrained.vectors=null",
        "pretrained.vocab_from_vectors=0",
        "model.freeze_embeddings=false",
        "trainer.epochs=2",
        "trainer.max_minutes=null",
    ]


DATES = RUNS.parent / "dates"
MULTI30K = RUNS.parent / "multi30k"
MULTI30K_STEPS = [
    "trainer.max_steps=1000",
    "trainer.max_minutes=null",
    "trainer.eval_every_steps=500",
]


def dates_data() -> dict[str, Any]:
    """The demo's date data (10,000 / 500 / 1,000 pairs) with the generator's reference
    alignment of train and test in Pharaoh format (character positions), and its config."""
    from attnrnn.config import save_yaml
    from attnrnn.data.alignments import Alignment, write_links
    from attnrnn.data.dates import date_links, split_date_pairs, write_parallel
    from attnrnn.demo_dates import dates_config

    DATES.mkdir(parents=True, exist_ok=True)
    splits = split_date_pairs(10000, 500, 1000, seed=11)
    for name, pairs in zip(("train", "dev", "test"), splits, strict=True):
        write_parallel(pairs, DATES / f"{name}.human", DATES / f"{name}.iso")
        alignments = []
        for pair in pairs:
            links = date_links(pair)  # (target, source) character links
            alignments.append(
                Alignment(
                    frozenset((s, t) for t, s in links.sure),
                    frozenset((s, t) for t, s in links.possible),
                )
            )
        write_links(DATES / f"{name}.align", alignments)
    save_yaml(dates_config(DATES, quick=False), DATES / "dates.yaml")
    return {"pairs": {"train": 10000, "dev": 500, "test": 1000}}


def dates_guided() -> list[str]:
    return [
        f"data.alignments={DATES / 'train.align'}",
        "data.alignment_units=characters",
        "guided_alignment=1.0",
    ]


def multi30k_alignments(data: Path) -> dict[str, Any]:
    """eflomal (both directions, grow-diag-final-and) over Multi30k train + test 2016
    together: train lines guide training, test lines are the silver reference."""
    from attnrnn.data.alignments import Alignment, align_corpus, write_links

    plain = data / "multi30k" / "plain"
    corpus = {}
    for split in ("train", "test_2016_flickr"):
        sources = (plain / f"{split}.de").read_text(encoding="utf-8").splitlines()
        targets = (plain / f"{split}.en").read_text(encoding="utf-8").splitlines()
        corpus[split] = (sources, targets)
    sources = corpus["train"][0] + corpus["test_2016_flickr"][0]
    targets = corpus["train"][1] + corpus["test_2016_flickr"][1]
    links = align_corpus(sources, targets)
    MULTI30K.mkdir(parents=True, exist_ok=True)
    cut = len(corpus["train"][0])
    alignments = [Alignment.of(pairs) for pairs in links]
    write_links(MULTI30K / "train.align", alignments[:cut])
    write_links(MULTI30K / "test.align", alignments[cut:])
    return {"pairs": len(sources), "links_per_pair": sum(map(len, links)) / len(links)}


def multi30k_overrides(data: Path) -> list[str]:
    plain = data / "multi30k" / "plain"
    return [
        f"data.train={plain}/train",
        f"data.dev={plain}/val",
        f"data.test={plain}/test_2016_flickr",
        *MULTI30K_STEPS,
    ]


def multi30k_guided() -> list[str]:
    return [f"data.alignments={MULTI30K / 'train.align'}", "guided_alignment=0.5"]


DIVERSITY = (0.1, 1.0)


def training_steps(data: Path) -> dict[str, Callable[[], dict[str, Any]]]:
    """Every training step by name, in the order they run."""
    steps: dict[str, Callable[[], dict[str, Any]]] = {}
    for seed in (1, 2, 3):
        steps[f"sst2-train-seed{seed}"] = lambda seed=seed: train(  # type: ignore[misc]
            "configs/sst2.yaml", RUNS / f"sst2-seed{seed}", sst2_overrides(data, seed)
        )
    for weight in DIVERSITY:
        steps[f"sst2-train-diversity{weight}"] = lambda weight=weight: train(  # type: ignore[misc]
            "configs/sst2.yaml",
            RUNS / f"sst2-diversity{weight}",
            [*sst2_overrides(data, 1), f"model.pooling.diversity_weight={weight}"],
        )
    steps["imdb-train"] = lambda: train("configs/imdb.yaml", RUNS / "imdb", imdb_overrides(data))
    steps["imdb-train-diversity"] = lambda: train(
        "configs/imdb.yaml",
        RUNS / "imdb-diversity",
        [*imdb_overrides(data), f"model.pooling.diversity_weight={DIVERSITY[-1]}"],
    )
    steps["dates-data"] = dates_data
    steps["dates-train"] = lambda: train(DATES / "dates.yaml", RUNS / "dates", [])
    steps["dates-train-guided"] = lambda: train(
        DATES / "dates.yaml", RUNS / "dates-guided", dates_guided()
    )
    steps["multi30k-align"] = lambda: multi30k_alignments(data)
    steps["multi30k-train"] = lambda: train(
        "configs/multi30k_de_en.yaml", RUNS / "multi30k", multi30k_overrides(data)
    )
    steps["multi30k-train-guided"] = lambda: train(
        "configs/multi30k_de_en.yaml",
        RUNS / "multi30k-guided",
        [*multi30k_overrides(data), *multi30k_guided()],
    )
    return steps


def diagnose(run: str, *arguments: str) -> dict[str, Any]:
    """``attnrnn diagnose`` of a run into RUN/diagnostics; the headline numbers."""
    folder = RUNS / run / "diagnostics"
    attnrnn_text("diagnose", str(RUNS / run), "--output", str(folder), *arguments)
    document = json.loads((folder / "diagnostics.json").read_text())
    return {section["name"]: section["summary"] for section in document["sections"]}


def diagnose_steps(data: Path) -> dict[str, Callable[[], dict[str, Any]]]:
    steps: dict[str, Callable[[], dict[str, Any]]] = {}
    seeds = [str(RUNS / f"sst2-seed{seed}") for seed in (2, 3)]
    steps["sst2-diagnose"] = lambda: diagnose("sst2-seed1", "--compare", *seeds)
    for weight in DIVERSITY:
        steps[f"sst2-diagnose-diversity{weight}"] = lambda weight=weight: diagnose(  # type: ignore[misc]
            f"sst2-diversity{weight}"
        )
    for run in ("imdb", "imdb-diversity"):
        steps[f"{run}-diagnose"] = lambda run=run: diagnose(run, "--limit", "100")  # type: ignore[misc]
    for run in ("dates", "dates-guided"):
        steps[f"{run}-diagnose"] = lambda run=run: diagnose(  # type: ignore[misc]
            run, "--alignments", str(DATES / "test.align")
        )
    for run in ("multi30k", "multi30k-guided"):
        steps[f"{run}-diagnose"] = lambda run=run: diagnose(  # type: ignore[misc]
            run, "--alignments", str(MULTI30K / "test.align")
        )
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data", help="shared data folder")
    parser.add_argument("--only", default="", help="comma-separated step-name prefixes")
    parser.add_argument("--force", action="store_true", help="rerun cached steps")
    arguments = parser.parse_args()
    data = (ROOT / arguments.data).resolve()
    steps = Steps("diagnostics", arguments.force)
    prefixes = [prefix for prefix in arguments.only.split(",") if prefix]
    chosen = {**training_steps(data), **diagnose_steps(data)}
    for name, function in chosen.items():
        if not prefixes or any(name.startswith(prefix) for prefix in prefixes):
            steps.run(name, function)


if __name__ == "__main__":
    main()
