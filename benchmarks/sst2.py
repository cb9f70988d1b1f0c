"""SST-2 (and SST-5) benchmark: attention-pooled RNN vs a TF-IDF baseline.

    python benchmarks/sst2.py [--data ../shared/data] [--force]

Steps (each cached in benchmarks/cache/sst2/, so a stopped run resumes):
1. the SST-2 classifier (configs/sst2.yaml) fine-tuned from the language model of
   benchmarks/pretrained.py (movie-review text, SST's domain; run that script first),
2. word vectors pretrained on IMDB train + unlabelled reviews (`attnrnn pretrain`) and
   the classifier initialised from them,
3. the same classifier from scratch, 4. SST-5 with the vectors,
5. TF-IDF + logistic regression on the GLUE SST-2 phrases,
6. whole sentences only (no phrase labels; configs/sentences.yaml, SST-2's dev
   sentences as dev): from scratch, from the language model, and TF-IDF + logistic
   regression on the same sentences.
Writes benchmarks/results/sst2.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml
from baselines import tfidf_logistic_regression
from common import (
    ROOT,
    WORK,
    Steps,
    attnrnn,
    from_language_model,
    language_model_step,
    write_results,
)


def pretrain_vectors(data: Path, steps: Steps) -> dict:
    """Word vectors shared by the SST-2 and IMDB benchmarks."""
    output = WORK / "vectors" / "imdb-w2v-300.txt"

    def run() -> dict:
        if output.exists():
            output.unlink()
        statistics = attnrnn(
            "pretrain",
            "--method",
            "word2vec",
            str(data / "imdb/train.jsonl.gz"),
            str(data / "imdb/unsup.jsonl.gz"),
            "--output",
            str(output),
        )
        return {
            "pretrain_seconds": statistics["seconds"],
            "vectors": str(output.relative_to(ROOT)),
            "tokens": statistics["tokens"],
            "vocabulary": statistics["vocabulary"],
        }

    return steps.run("pretrain", run)


def train_classifier(
    config: str,
    run: Path,
    overrides: list[str],
    threads: int | None = None,
    nproc: int | None = None,
) -> dict:
    """``attnrnn train`` of ``config`` (or ``--resume`` of an interrupted run); ``nproc``:
    that many data-parallel processes, each with 1/nproc of the config's batch, so that
    the global batch and the schedule stay the recipe's."""
    if threads:
        overrides = [*overrides, f"trainer.num_threads={threads}"]
    if nproc and nproc > 1:
        trainer = yaml.safe_load((ROOT / config).read_text())["trainer"]
        overrides = [
            *overrides,
            f"trainer.batch_tokens={trainer['batch_tokens'] // nproc}",
            f"trainer.max_batch_size={max(trainer['max_batch_size'] // nproc, 1)}",
        ]
    arguments = ["train", config, "--output", str(run)]
    for override in overrides:
        arguments += ["--set", override]
    if run.exists():  # an interrupted earlier attempt: continue it
        arguments = ["train", "--resume", str(run)]
    if nproc and nproc > 1:
        arguments += ["--nproc", str(nproc)]
    result = attnrnn(*arguments)
    state = json.loads((run / "last" / "state.json").read_text())["state"]
    result["train_seconds"] = round(state["elapsed_seconds"], 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data", help="shared data folder")
    parser.add_argument("--force", action="store_true", help="rerun cached steps")
    parser.add_argument("--until", help="stop once this step is done (e.g. the LM step)")
    parser.add_argument("--threads", type=int, help="CPU threads per training run")
    arguments = parser.parse_args()
    data = (ROOT / arguments.data).resolve()
    steps = Steps("sst2", arguments.force, arguments.until)
    threads = arguments.threads
    language_model = language_model_step()
    data_overrides = [
        f"data.train={data}/sst/trees/train.txt",
        f"data.dev={data}/sst/trees/dev.txt",
        f"data.test={data}/sst/trees/test.txt",
    ]
    runs = WORK / "sst2" / "runs"
    fine_tuned = steps.run(
        "sst2_lm",
        lambda: train_classifier(
            "configs/sst2.yaml",
            runs / "sst2_lm",
            [*data_overrides, *from_language_model()],
            threads,
        ),
    )
    sentences = data / "sst" / "sentences"
    sentence_data = [
        f"data.train={sentences}/sst2_train.tsv",
        f"data.dev={sentences}/sst2_dev.tsv",
        f"data.test={sentences}/sst2_test.tsv",
        "data.text_field=sentence",
    ]
    sentences_lm = steps.run(
        "sentences_lm",
        lambda: train_classifier(
            "configs/sentences.yaml",
            runs / "sentences_lm",
            [*sentence_data, *from_language_model()],
            threads,
        ),
    )
    sentences_scratch = steps.run(
        "sentences_scratch",
        lambda: train_classifier(
            "configs/sentences.yaml", runs / "sentences_scratch", sentence_data, threads
        ),
    )

    def sentence_baseline() -> dict:
        from attnrnn.data.readers import read_examples

        def table(name: str) -> list:
            return read_examples(str(sentences / name), text_field="sentence")

        return tfidf_logistic_regression(
            table("sst2_train.tsv"), table("sst2_dev.tsv"), table("sst2_test.tsv")
        )

    sentences_tfidf = steps.run("tfidf_sentences", sentence_baseline)
    vectors = pretrain_vectors(data, Steps("vectors", arguments.force))
    with_vectors = [*data_overrides, f"pretrained.vectors={ROOT / vectors['vectors']}"]
    main_run = steps.run(
        "sst2",
        lambda: train_classifier("configs/sst2.yaml", runs / "sst2", with_vectors, threads),
    )
    scratch = steps.run(
        "sst2_scratch",
        lambda: train_classifier(
            "configs/sst2.yaml",
            runs / "sst2_scratch",
            [
                *data_overrides,
                "pretrained.vectors=null",
                "pretrained.vocab_from_vectors=0",
                "model.freeze_embeddings=false",
            ],
            threads,
        ),
    )
    sst5 = steps.run(
        "sst5",
        lambda: train_classifier(
            "configs/sst2.yaml",
            runs / "sst5",
            [*with_vectors, "data.sst_granularity=fine"],
            threads,
        ),
    )

    def baseline() -> dict:
        from attnrnn.data.readers import read_examples

        def table(path: Path, text: str) -> list:
            return read_examples(str(path), text_field=text, label_field="label")

        return tfidf_logistic_regression(
            table(data / "glue_sst2/train.tsv", "sentence"),
            table(data / "sst/sentences/sst2_dev.tsv", "sentence"),
            table(data / "sst/sentences/sst2_test.tsv", "sentence"),
        )

    tfidf = steps.run("tfidf", baseline)
    write_results(
        "sst2",
        {
            "test_accuracy": fine_tuned["test_accuracy"],
            "dev_accuracy": fine_tuned["dev_accuracy"],
            "train_seconds": fine_tuned["train_seconds"],
            "pretraining": "forward + backward BiLSTM language model on IMDB train + unsup "
            "reviews (configs/lm_imdb.yaml, benchmarks/pretrained.py -> lm_imdb.json)",
            "pretrain_seconds": language_model["train_seconds"],
            "test_accuracy_word2vec": main_run["test_accuracy"],
            "train_seconds_word2vec": main_run["train_seconds"],
            "word2vec_pretrain_seconds": vectors["pretrain_seconds"],
            "sentences_only": {
                "data": "SST-2 whole sentences (6,920 train, 872 dev), no phrase labels; "
                "configs/sentences.yaml",
                "test_accuracy_lm_pretrained": sentences_lm["test_accuracy"],
                "test_accuracy_from_scratch": sentences_scratch["test_accuracy"],
                "baseline_tfidf_lr_test_accuracy": sentences_tfidf["test_accuracy"],
            },
            "test_accuracy_from_scratch": scratch["test_accuracy"],
            "train_seconds_from_scratch": scratch["train_seconds"],
            "sst5_test_accuracy": sst5["test_accuracy"],
            "sst5_train_seconds": sst5["train_seconds"],
            "baseline_tfidf_lr_test_accuracy": tfidf["test_accuracy"],
            "baseline_tfidf_lr_note": "trained on GLUE SST-2 phrases, C picked on SST-2 dev",
            "config": "configs/sst2.yaml",
            "test_examples": 1821,
        },
    )


if __name__ == "__main__":
    main()
