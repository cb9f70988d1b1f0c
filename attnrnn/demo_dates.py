"""The translation part of ``attnrnn demo``: a character-level attention translator
that normalizes human-written dates ("Sunday, April 9, 2023") to ISO 8601
("2023-04-09"), trained on dates attnrnn generates (:mod:`attnrnn.data.dates`).

Writing the ISO date means reading the year, then the month, then the day, in
whatever order and spelling the source has them, so the attention has to jump
around the source; the demo prints where each field of the output looked and
draws the alignment heatmap.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import cast

import attnrnn
from attnrnn.config import (
    EncoderConfig,
    InferenceConfig,
    OptimizerConfig,
    TrainerConfig,
    save_yaml,
)
from attnrnn.data.dates import split_date_pairs, write_parallel
from attnrnn.decoding import SearchConfig
from attnrnn.explorer import write_explorer_html
from attnrnn.models.seq2seq import DecoderConfig, Seq2SeqConfig
from attnrnn.tasks.translation import (
    Translation,
    TranslationDataConfig,
    TranslationRunConfig,
    TranslationTokenizerConfig,
    Translator,
)
from attnrnn.viz import write_alignment_png

EXAMPLES = (
    "Sunday the 9th of April 2023",
    "the 3rd of march, 1999",
    "DEC 25, 2049",
    "17.11.1989",
    "Feb. 29, 2024",
)
# Positions of the ISO fields in "YYYY-MM-DD".
FIELDS = {"year": range(0, 4), "month": range(5, 7), "day": range(8, 10)}


def dates_config(data_directory: Path, quick: bool) -> TranslationRunConfig:
    """A small character-level BiGRU encoder and Luong GRU decoder with additive attention."""
    return TranslationRunConfig(
        data=TranslationDataConfig(
            train=str(data_directory / "train"),
            dev=str(data_directory / "dev"),
            test=str(data_directory / "test"),
            source_language="human",
            target_language="iso",
        ),
        tokenizer=TranslationTokenizerConfig(type="character", joint=False),
        model=Seq2SeqConfig(
            embedding_size=32,
            embedding_dropout=0.0,
            encoder=EncoderConfig(cell="gru", hidden_size=64, num_layers=1),
            decoder=DecoderConfig(
                hidden_size=128,
                attention_size=64,
                attentional_size=64,
                input_feeding=False,  # lets teacher forcing run the decoder GRU in one call
                output_dropout=0.0,
            ),
        ),
        label_smoothing=0.0,
        metric="exact_match",
        optimizer=OptimizerConfig(learning_rate=5e-3, warmup_steps=50, schedule="linear"),
        trainer=TrainerConfig(
            epochs=4 if quick else 5,
            batch_tokens=3000,
            max_batch_size=128,
            early_stopping_patience=None,
            seed=3,
            num_threads=2,
        ),
        search=SearchConfig(beam_size=1),
        inference=InferenceConfig(batch_tokens=3000, max_batch_size=128),
    )


def field_sources(item: Translation) -> dict[str, str]:
    """For each ISO field, the source word (run of letters or digits) that its output
    characters attended to most, summing their attention over each word's characters."""
    words = list(re.finditer(r"[A-Za-z]+|[0-9]+", item.source))
    attended = {}
    for name, positions in FIELDS.items():
        rows = [item.attention[p] for p in positions if p < len(item.attention)]
        if not rows or not words:
            continue
        mass = [sum(sum(row[w.start() : w.end()]) for row in rows) for w in words]
        attended[name] = words[max(range(len(words)), key=mass.__getitem__)].group()
    return attended


def dates_demo(output: Path, quick: bool) -> float:
    """Generate dates, train, print exact match and aligned examples; return exact match."""
    data_directory = output / "dates-data"
    data_directory.mkdir(parents=True, exist_ok=True)
    sizes = {"train": 6000 if quick else 10000, "dev": 500, "test": 1000}
    splits = split_date_pairs(sizes["train"], sizes["dev"], sizes["test"], seed=11)
    for name, pairs in zip(sizes, splits, strict=True):
        write_parallel(pairs, data_directory / f"{name}.human", data_directory / f"{name}.iso")
    config = dates_config(data_directory, quick)
    save_yaml(config, output / "dates.yaml")
    run_directory = output / "dates-run"
    shutil.rmtree(run_directory, ignore_errors=True)  # the demo's own previous run
    print(
        f"== Translation: human-written dates -> ISO 8601, a character-level attention "
        f"encoder-decoder on {sizes['train']} generated dates"
    )
    started = time.monotonic()
    results = attnrnn.train(config, run_directory)
    accuracy = results["test_exact_match"]
    print(
        f"exact match {accuracy:.1%} on {sizes['test']} held-out dates "
        f"({time.monotonic() - started:.0f} s)\n"
    )
    model = cast(Translator, attnrnn.load(run_directory))
    translations = model.translate(list(EXAMPLES))
    for item in translations:
        spans = ", ".join(f"{name} <- {span!r}" for name, span in field_sources(item).items())
        print(f"{item.source:>30} -> {item.translation}   ({spans})")
    pictures = output / "dates-attention"
    pictures.mkdir(parents=True, exist_ok=True)
    first = translations[0]
    title = f"{first.source} -> {first.translation}"
    png = write_alignment_png(
        pictures / "alignment.png", first.source_tokens, first.target_tokens, first.attention, title
    )
    page = write_explorer_html(
        pictures / "explain.html", "translation", [model.record(t) for t in translations], "dates"
    )
    print(f"\nalignment heatmap: {png}; the interactive explorer: {page}")
    print(f'try: echo "July 4th, 1976" | attnrnn translate {run_directory} --json')
    return accuracy
