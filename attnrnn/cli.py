"""The ``attnrnn`` command line: parse arguments and dispatch, nothing more.

Errors in what the user gave (files, configuration, run directories) are
printed as one ``error:`` line with exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from attnrnn.errors import AttnrnnError, ConfigError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments, extras = parser.parse_known_args(argv)
    if extras:
        # argparse gives an optional positional (translate RUN [FILE]) its default as soon
        # as it reads RUN, so `translate RUN --beam 5 FILE` would leave FILE over: take it.
        leftover = extras[0]
        is_file = not leftover.startswith("-") or leftover == "-"
        if getattr(arguments, "input", None) == "-" and len(extras) == 1 and is_file:
            arguments.input, extras = leftover, []
        if extras:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
    if not getattr(arguments, "command", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(arguments.handler(arguments) or 0)
    except AttnrnnError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnrnn", description="Attention-based recurrent neural networks."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", help="train a model from a YAML configuration")
    train.add_argument("config", nargs="?", help="YAML configuration (not needed with --resume)")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a configuration value, e.g. model.encoder.hidden_size=512",
    )
    train.add_argument("--output", "-o", help="run directory (default: runs/NAME-TIMESTAMP)")
    train.add_argument("--resume", metavar="RUN", help="continue an interrupted run")
    train.set_defaults(handler=command_train)

    evaluate = commands.add_parser("evaluate", help="score a trained run on labelled data")
    evaluate.add_argument("run", help="run directory")
    evaluate.add_argument(
        "--data",
        help="labelled file, read like the training data (translation: a prefix or "
        "TSV/JSONL; default the run's test split)",
    )
    evaluate.add_argument("--beam", type=int, help="translation: beam size (default: the run's)")
    evaluate.add_argument(
        "--int8", action="store_true", help="translation: int8 dynamic quantization (CPU)"
    )
    evaluate.set_defaults(handler=command_evaluate)

    translate = commands.add_parser("translate", help="translate sentences, one a line")
    translate.add_argument("run", help="translation run directory")
    translate.add_argument(
        "input", nargs="?", default="-", help="text file, one sentence a line (- = stdin)"
    )
    translate.add_argument("--beam", type=int, help="beam size (default: the run's)")
    translate.add_argument("--n-best", type=int, default=1, help="alternatives to print")
    translate.add_argument(
        "--int8", action="store_true", help="int8 dynamic quantization of the model (CPU)"
    )
    translate.add_argument(
        "--json", action="store_true", help="JSON lines with score, tokens and attention"
    )
    translate.set_defaults(handler=command_translate)

    summarize = commands.add_parser("summarize", help="summarize documents (JSON lines)")
    summarize.add_argument("run", help="summarization run directory")
    summarize.add_argument(
        "input", nargs="?", default="-", help="JSONL file, one document a line (- = stdin)"
    )
    summarize.add_argument(
        "--field", default="dialogue", help="the JSON field holding the text (default: dialogue)"
    )
    summarize.add_argument("--beam", type=int, help="beam size (default: the run's)")
    summarize.add_argument("--json", action="store_true", help="JSON lines with copy probabilities")
    summarize.set_defaults(handler=command_summarize)

    transcribe = commands.add_parser("transcribe", help="transcribe audio files (WAV, FLAC)")
    transcribe.add_argument("run", help="speech recognition run directory")
    transcribe.add_argument("audio", nargs="+", help="audio files")
    transcribe.add_argument("--beam", type=int, help="beam size (default: the run's)")
    transcribe.add_argument("--json", action="store_true", help="JSON lines with scores")
    transcribe.set_defaults(handler=command_transcribe)

    predict = commands.add_parser("predict", help="predict labels, one JSON line per text")
    predict.add_argument("run", help="run directory")
    predict.add_argument(
        "input", nargs="?", default="-", help="text file, one text a line (- = stdin)"
    )
    predict.add_argument("--attention", action="store_true", help="include tokens and weights")
    predict.set_defaults(handler=command_predict)

    explain = commands.add_parser("explain", help="show which tokens the attention picked")
    explain.add_argument("run", help="run directory")
    explain.add_argument("text", nargs="+", help="one or more texts (speech runs: audio files)")
    explain.add_argument(
        "--output",
        "-o",
        default="explain",
        help="folder for explain.html and explain.png (default: explain)",
    )
    explain.add_argument("--no-color", action="store_true", help="plain terminal output")
    explain.set_defaults(handler=command_explain)

    pretrain = commands.add_parser("pretrain", help="unsupervised pretraining on raw text")
    from attnrnn.pretrain.cli import add_pretrain_arguments

    add_pretrain_arguments(pretrain)

    data = commands.add_parser("data", help="download public datasets")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    fetch = data_commands.add_parser("fetch", help="download a dataset from its canonical source")
    fetch.add_argument("name", help="multi30k, dialogsum, fsdd or an4 (see `attnrnn data list`)")
    fetch.add_argument("--output", "-o", help="folder (default: data/NAME)")
    fetch.set_defaults(handler=command_fetch)
    listing = data_commands.add_parser("list", help="the datasets `fetch` knows")
    listing.set_defaults(handler=command_data_list)

    demo = commands.add_parser("demo", help="train on generated data and show the attention")
    demo.add_argument("--output", "-o", default="demo_out", help="output folder")
    demo.add_argument("--quick", action="store_true", help="a smaller, faster demo")
    demo.set_defaults(handler=command_demo)
    return parser


# --------------------------------------------------------------------------- commands


def load_run_config(path: str, overrides: Sequence[str]):
    """Read a run configuration, apply ``--set`` overrides and build its typed form."""
    from attnrnn.config import apply_overrides, load_yaml
    from attnrnn.tasks.classification import ClassificationRunConfig

    data = apply_overrides(load_yaml(path), overrides)
    task = data.get("task", "classification")
    from attnrnn.tasks.speech import SpeechRunConfig
    from attnrnn.tasks.summarization import SummarizationRunConfig
    from attnrnn.tasks.translation import TranslationRunConfig

    tasks: dict[str, Any] = {
        "classification": ClassificationRunConfig,
        "translation": TranslationRunConfig,
        "speech": SpeechRunConfig,
        "summarization": SummarizationRunConfig,
    }
    if task not in tasks:
        raise ConfigError(f"{path}: unknown task {task!r}; valid: {', '.join(tasks)}")
    try:
        return tasks[task].from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def run_task(run_directory: str) -> str:
    """The task of a run directory ("classification", "translation"), from its config.yaml."""
    from attnrnn.config import load_yaml
    from attnrnn.errors import RunError

    path = Path(run_directory) / "config.yaml"
    if not Path(run_directory).is_dir():
        raise RunError(f"{run_directory}: no such run directory")
    if not path.is_file():
        raise RunError(f"{run_directory}: not a run directory (missing config.yaml)")
    return str(load_yaml(path).get("task", "classification"))


def command_train(arguments: argparse.Namespace) -> int:
    from attnrnn.tasks import classifier_run, speech_run, summarization_run, translation_run

    if arguments.resume:
        run_directory = Path(arguments.resume)
        config_path = run_directory / "config.yaml"
        if not config_path.is_file():
            raise ConfigError(f"{run_directory}: not a run directory (no config.yaml)")
        config = load_run_config(str(config_path), arguments.set)
        if arguments.set:  # the run's config.yaml says how it was trained from now on
            from attnrnn.config import save_yaml

            save_yaml(config, config_path)
        resume = True
    else:
        if not arguments.config:
            raise ConfigError("train needs a CONFIG file (or --resume RUN)")
        config = load_run_config(arguments.config, arguments.set)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        default = Path("runs") / f"{Path(arguments.config).stem}-{stamp}"
        run_directory = Path(arguments.output) if arguments.output else default
        resume = False
    runs: dict[str, Any] = {
        "classification": classifier_run,
        "translation": translation_run,
        "speech": speech_run,
        "summarization": summarization_run,
    }
    results = runs[config.task].train(config, run_directory, resume=resume)
    print(json.dumps({"run": str(run_directory), **results}, indent=2))
    return 0


def command_evaluate(arguments: argparse.Namespace) -> int:
    from attnrnn.tasks.classification import read_split
    from attnrnn.tasks.classifier_run import ClassifierRun

    task = run_task(arguments.run)
    if arguments.int8 and task != "translation":
        raise ConfigError(f"--int8 applies to translation runs; {arguments.run} is a {task} run")
    if task == "translation":
        return evaluate_translation(arguments)
    if task == "speech":
        return evaluate_speech(arguments)
    if task == "summarization":
        return evaluate_summarization(arguments)
    if not arguments.data:
        raise ConfigError("evaluate needs --data FILE for a classification run")
    run = ClassifierRun(arguments.run)
    examples = read_split(arguments.data, run.config.data)
    metrics = run.evaluate(examples)
    print(json.dumps({"data": arguments.data, "examples": len(examples), **metrics}, indent=2))
    return 0


def _search_config(run: Any, beam: int | None, n_best: int = 1) -> Any:
    import dataclasses

    search = run.config.search
    beam_size = beam if beam is not None else search.beam_size
    return dataclasses.replace(search, beam_size=beam_size, n_best=max(n_best, 1))


def _translation_run(arguments: argparse.Namespace) -> Any:
    """The run of ``arguments.run``, int8-quantized on the CPU with ``--int8``."""
    from attnrnn.tasks.translation_run import TranslationRun

    device = "cpu" if arguments.int8 else "auto"
    return TranslationRun(arguments.run, device=device, int8=arguments.int8)


def evaluate_translation(arguments: argparse.Namespace) -> int:
    from attnrnn.tasks.translation import read_pairs

    run = _translation_run(arguments)
    location = arguments.data or run.config.data.test
    if not location:
        raise ConfigError(f"{arguments.run}: the run has no test split; pass --data PREFIX|FILE")
    examples = read_pairs(location, run.config.data)
    metrics = run.evaluate(examples, _search_config(run, arguments.beam))
    print(f"BLEU {metrics['bleu']:.2f} ({metrics['bleu_signature']})", file=sys.stderr)
    print(f"chrF {metrics['chrf']:.2f} ({metrics['chrf_signature']})", file=sys.stderr)
    print(json.dumps({"data": location, "examples": len(examples), **metrics}, indent=2))
    return 0


def evaluate_speech(arguments: argparse.Namespace) -> int:
    from attnrnn.tasks.speech import read_manifest
    from attnrnn.tasks.speech_run import SpeechRun

    run = SpeechRun(arguments.run)
    location = arguments.data or run.config.data.test
    if not location:
        raise ConfigError(f"{arguments.run}: the run has no test manifest; pass --data FILE")
    utterances = read_manifest(location, run.config.data)
    metrics = run.evaluate(utterances, _search_config(run, arguments.beam))
    print(json.dumps({"data": location, "utterances": len(utterances), **metrics}, indent=2))
    return 0


def evaluate_summarization(arguments: argparse.Namespace) -> int:
    from attnrnn.tasks.summarization import read_documents
    from attnrnn.tasks.summarization_run import SummarizationRun

    run = SummarizationRun(arguments.run)
    data = run.config.data
    location = arguments.data or data.test
    if not location:
        raise ConfigError(f"{arguments.run}: the run has no test file; pass --data FILE")
    fields = data.reference_fields if location == data.test else ()
    documents = read_documents(location, data, fields)
    metrics = run.evaluate(documents, _search_config(run, arguments.beam))
    print(json.dumps({"data": location, "documents": len(documents), **metrics}, indent=2))
    return 0


def command_summarize(arguments: argparse.Namespace) -> int:
    from attnrnn.data.parallel import read_parallel_jsonl
    from attnrnn.tasks.summarization_run import SummarizationRun

    if run_task(arguments.run) != "summarization":
        raise ConfigError(f"{arguments.run} is not a summarization run")
    run = SummarizationRun(arguments.run)
    texts = [
        example.source for example in read_parallel_jsonl(arguments.input, arguments.field, None)
    ]
    for item in run.summarize(texts, _search_config(run, arguments.beam)):
        if arguments.json:
            record = {
                "summary": item.summary,
                "tokens": item.tokens,
                "copy_probability": item.copy_probability,
            }
            print(json.dumps(record, ensure_ascii=False))
        else:
            print(item.summary)
    return 0


def command_transcribe(arguments: argparse.Namespace) -> int:
    from attnrnn.tasks.speech_run import SpeechRun

    if run_task(arguments.run) != "speech":
        raise ConfigError(f"{arguments.run} is not a speech recognition run")
    run = SpeechRun(arguments.run)
    search = _search_config(run, arguments.beam)
    for item in run.transcribe(arguments.audio, search):
        if arguments.json:
            record = {"audio": item.audio, "text": item.text, "score": item.score}
            print(json.dumps(record, ensure_ascii=False))
        else:
            print(f"{item.audio}\t{item.text}")
    return 0


def command_translate(arguments: argparse.Namespace) -> int:
    from attnrnn.data.parallel import read_sources

    if run_task(arguments.run) != "translation":
        raise ConfigError(f"{arguments.run} is not a translation run")
    run = _translation_run(arguments)
    texts = [example.source for example in read_sources(arguments.input)]
    search = _search_config(run, arguments.beam, arguments.n_best)
    for item in run.translate(texts, search):
        if arguments.json:
            record = {
                "translation": item.translation,
                "score": item.score,
                "alternatives": item.alternatives,
                "source_tokens": item.source_tokens,
                "target_tokens": item.target_tokens,
                "attention": item.attention,
            }
            print(json.dumps(record, ensure_ascii=False))
        else:
            print("\t".join([item.translation, *item.alternatives]))
    return 0


def command_predict(arguments: argparse.Namespace) -> int:
    from attnrnn.data.readers import read_plain
    from attnrnn.tasks.classifier_run import ClassifierRun

    run = ClassifierRun(arguments.run)
    texts = [example.text for example in read_plain(arguments.input)]
    for prediction in run.predict(texts):
        record: dict = {"label": prediction.label, "probabilities": prediction.probabilities}
        if arguments.attention:
            record["tokens"] = prediction.tokens
            record["attention"] = prediction.attention
        print(json.dumps(record, ensure_ascii=False))
    return 0


def command_explain(arguments: argparse.Namespace) -> int:
    from attnrnn.explain import explain_texts, explain_translations

    task = run_task(arguments.run)
    if task == "translation":
        explain_translations(arguments.run, arguments.text, Path(arguments.output))
        return 0
    if task == "summarization":
        from attnrnn.explain import explain_summaries

        explain_summaries(arguments.run, arguments.text, Path(arguments.output))
        return 0
    if task == "speech":
        from attnrnn.explain import explain_speech

        explain_speech(arguments.run, arguments.text, Path(arguments.output))
        return 0
    explain_texts(arguments.run, arguments.text, Path(arguments.output), not arguments.no_color)
    return 0


def command_fetch(arguments: argparse.Namespace) -> int:
    from attnrnn.data.fetch import fetch

    output = Path(arguments.output or Path("data") / arguments.name)
    print(f"fetched {arguments.name} into {fetch(arguments.name, output)}")
    return 0


def command_data_list(arguments: argparse.Namespace) -> int:
    from attnrnn.data.fetch import DATASETS

    for name, dataset in DATASETS.items():
        print(f"{name:10} {dataset.description}")
    return 0


def command_demo(arguments: argparse.Namespace) -> int:
    from attnrnn.demo import run_demo

    run_demo(Path(arguments.output), quick=arguments.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
