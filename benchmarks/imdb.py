"""IMDB benchmark: attention-pooled RNN vs a TF-IDF baseline on the 25k test reviews.

    python benchmarks/imdb.py [--data ../shared/data] [--force] [--threads 1] [--nproc 2]

Steps (each cached in benchmarks/cache/imdb/, so a stopped run resumes):
1. the classifier fine-tuned from the language model of benchmarks/pretrained.py
   (configs/imdb_lm.yaml; run that script first),
2. word vectors pretrained on IMDB train + unlabelled reviews (shared with sst2.py) and
   the classifier initialised from them (configs/imdb.yaml), 3. from scratch,
4. TF-IDF + logistic regression. Writes benchmarks/results/imdb.json.
"""

from __future__ import annotations

import argparse

from baselines import tfidf_logistic_regression
from common import LANGUAGE_MODEL, ROOT, WORK, Steps, language_model_step, write_results
from sst2 import pretrain_vectors, train_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data", help="shared data folder")
    parser.add_argument("--force", action="store_true", help="rerun cached steps")
    parser.add_argument("--until", help="stop once this step is done (e.g. the LM step)")
    parser.add_argument(
        "--skip-scratch", action="store_true", help="do not train the from-scratch comparison"
    )
    parser.add_argument("--threads", type=int, help="CPU threads per training run")
    parser.add_argument(
        "--nproc",
        type=int,
        help="fine-tune from the language model with this many data-parallel processes "
        "(torchrun), each with 1/N of the recipe's batch",
    )
    arguments = parser.parse_args()
    threads = arguments.threads
    data = (ROOT / arguments.data).resolve()
    steps = Steps("imdb", arguments.force, arguments.until)
    language_model = language_model_step()
    data_overrides = [
        f"data.train={data}/imdb/train.jsonl.gz",
        f"data.test={data}/imdb/test.jsonl.gz",
    ]
    runs = WORK / "imdb" / "runs"
    fine_tuned = steps.run(
        "imdb_lm",
        lambda: train_classifier(
            "configs/imdb_lm.yaml",
            runs / "imdb_lm",
            [*data_overrides, f"pretrained.encoder={LANGUAGE_MODEL}"],
            threads,
            arguments.nproc,
        ),
    )
    vectors = pretrain_vectors(data, Steps("vectors", arguments.force))
    with_vectors = steps.run(
        "imdb",
        lambda: train_classifier(
            "configs/imdb.yaml",
            runs / "imdb",
            [*data_overrides, f"pretrained.vectors={ROOT / vectors['vectors']}"],
            threads,
        ),
    )

    def baseline() -> dict:
        from attnrnn.data.readers import read_examples
        from attnrnn.tasks.classification import split_off_dev

        train = read_examples(str(data / "imdb/train.jsonl.gz"))
        train, dev = split_off_dev(train, 0.08, seed=1)
        return tfidf_logistic_regression(
            train, dev, read_examples(str(data / "imdb/test.jsonl.gz"))
        )

    tfidf = steps.run("tfidf", baseline)
    results = {
        "test_accuracy": fine_tuned["test_accuracy"],
        "dev_accuracy": fine_tuned["dev_accuracy"],
        "config": "configs/imdb_lm.yaml",
        "pretraining": "forward + backward BiLSTM language model on IMDB train + unsup "
        "reviews (configs/lm_imdb.yaml, benchmarks/pretrained.py -> lm_imdb.json)",
        "pretrain_seconds": language_model["train_seconds"],
        "finetune_seconds": fine_tuned["train_seconds"],
        "finetune_processes": arguments.nproc or 1,
        "test_accuracy_word2vec": with_vectors["test_accuracy"],
        "train_seconds_word2vec": with_vectors["train_seconds"],
        "word2vec_pretrain_seconds": vectors["pretrain_seconds"],
        "config_word2vec": "configs/imdb.yaml",
        "baseline_tfidf_lr_test_accuracy": tfidf["test_accuracy"],
        "beats_baseline": fine_tuned["test_accuracy"] > tfidf["test_accuracy"],
        "test_examples": 25000,
        # the code each number comes from (a cached step keeps the commit it ran at)
        "step_commits": {
            "imdb_lm": fine_tuned.get("commit"),
            "imdb_word2vec": with_vectors.get("commit"),
            "tfidf": tfidf.get("commit"),
        },
    }
    write_results("imdb", results)  # recorded now; rewritten with the scratch run below
    if not arguments.skip_scratch:
        scratch = steps.run(
            "imdb_scratch",
            lambda: train_classifier(
                "configs/imdb.yaml",
                runs / "imdb_scratch",
                [*data_overrides, "pretrained.vectors=null", "model.freeze_embeddings=false"],
                threads,
            ),
        )
        results["test_accuracy_from_scratch"] = scratch["test_accuracy"]
        results["train_seconds_from_scratch"] = scratch["train_seconds"]
        results["step_commits"]["imdb_scratch"] = scratch.get("commit")
        write_results("imdb", results)


if __name__ == "__main__":
    main()
