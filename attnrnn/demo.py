"""``attnrnn demo``: train on data attnrnn generates itself and show the attention.

Needs no download. It writes the generated data, a run directory and the
attention pictures under the output folder, so every step can be repeated
with the ordinary commands (``attnrnn train``, ``predict``, ``explain``).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import attnrnn
from attnrnn.config import EncoderConfig, OptimizerConfig, TrainerConfig, save_yaml
from attnrnn.console import use_color
from attnrnn.data.synthetic import make_reviews, write_tsv
from attnrnn.demo_dates import dates_demo
from attnrnn.demo_speech import speech_demo
from attnrnn.models.classifier import ClassifierConfig, PoolingConfig
from attnrnn.tasks.classification import ClassificationRunConfig, DataConfig

EXAMPLES = (
    "i saw it last week and the acting was not very good",
    "the plot was dull but the music was truly wonderful",
    "the film was brilliant but the ending felt tedious",
    "with my friends in a small cinema the story seemed never boring",
)


def sentiment_config(data_directory: Path, quick: bool) -> ClassificationRunConfig:
    """A small attention-pooled BiGRU for the synthetic reviews."""
    return ClassificationRunConfig(
        data=DataConfig(
            train=str(data_directory / "train.tsv"),
            dev=str(data_directory / "dev.tsv"),
            test=str(data_directory / "test.tsv"),
        ),
        model=ClassifierConfig(
            embedding_size=48,
            embedding_dropout=0.1,
            encoder=EncoderConfig(cell="gru", hidden_size=48, bidirectional=False),
            encoder_dropout=0.1,
            pooling=PoolingConfig(attention_size=48),
            hidden_size=48,
            dropout=0.1,
        ),
        optimizer=OptimizerConfig(learning_rate=4e-3, warmup_steps=20, schedule="linear"),
        trainer=TrainerConfig(
            epochs=3 if quick else 6,
            batch_tokens=2000,
            max_batch_size=64,
            early_stopping_patience=None,
            seed=7,
            num_threads=2,
        ),
    )


def sentiment_demo(output: Path, quick: bool) -> float:
    """Generate reviews, train, print accuracy and explained predictions; return accuracy."""
    data_directory = output / "sentiment-data"
    data_directory.mkdir(parents=True, exist_ok=True)
    sizes = {"train": 2000 if quick else 5000, "dev": 500, "test": 1000}
    for seed, (split, count) in enumerate(sizes.items(), start=1):
        write_tsv(make_reviews(count, seed=seed), data_directory / f"{split}.tsv")
    config = sentiment_config(data_directory, quick)
    save_yaml(config, output / "sentiment.yaml")
    run_directory = output / "sentiment-run"
    shutil.rmtree(run_directory, ignore_errors=True)  # the demo's own previous run
    print(f"== Sentiment: an attention-pooled BiGRU on {sizes['train']} generated reviews")
    started = time.monotonic()
    results = attnrnn.train(config, run_directory)
    accuracy = results["test_accuracy"]
    print(
        f"test accuracy {accuracy:.1%} on {sizes['test']} held-out reviews "
        f"({time.monotonic() - started:.0f} s)\n"
    )
    explanation = attnrnn.load(run_directory).explain(
        list(EXAMPLES), output=output / "sentiment-attention", color=use_color()
    )
    print(explanation.text)
    paths = explanation.files
    print(f"\nattention pictures: {paths[0]} and {len(paths) - 1} PNG heatmaps")
    print(f'try: attnrnn explain {run_directory} "the cast was not bad but the script was dull"')
    return accuracy


def run_demo(output: Path, quick: bool = False) -> None:
    """Run every demo section, writing under ``output``."""
    output.mkdir(parents=True, exist_ok=True)
    sentiment_demo(output, quick)
    print()
    dates_demo(output, quick)
    print()
    speech_demo(output, quick)
