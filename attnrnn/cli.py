"""The ``attnrnn`` command line: parse arguments and dispatch, nothing more.

Every command that uses a trained run goes through the task registry
(:data:`attnrnn.tasks.TASKS`) and the run loader: the CLI never names a task.
``translate``, ``transcribe`` and ``summarize`` are ``predict`` under the name of
what it does for a task; each checks that the run is of that task.

Errors in what the user gave (files, configuration, run directories) are
printed as one ``error:`` line with exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from attnrnn.errors import AttnrnnError, ConfigError, DataError
from attnrnn.training.trainer import Interrupted

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
RUN_COMMANDS = ("evaluate", "predict", "explain")
# Options of every run command, handled when loading; the rest go to the task.
LOAD_OPTIONS = ("device", "int8", "precision")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments, extras = parser.parse_known_args(argv)
    if extras:
        # Inputs after options (`translate RUN --beam 5 FILE`): argparse leaves them over.
        if hasattr(arguments, "inputs") and not any(e.startswith("-") and e != "-" for e in extras):
            arguments.inputs = [*arguments.inputs, *extras]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
    if not getattr(arguments, "command", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(arguments.handler(arguments) or 0)
    except Interrupted as error:
        if os.environ.get("RANK", "0") == "0":  # under torchrun, one process says it
            print(f"interrupted: {error}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except AttnrnnError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0


# --------------------------------------------------------------------------- the parser


def build_parser() -> argparse.ArgumentParser:
    from attnrnn.tasks import TASKS

    parser = argparse.ArgumentParser(
        prog="attnrnn", description="Attention-based recurrent neural networks."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", help="train a model from a YAML configuration")
    train.add_argument("config", nargs="?", help="YAML configuration (not needed with --resume)")
    add_set_option(train)
    train.add_argument("--output", "-o", help="run directory (default: runs/NAME-TIMESTAMP)")
    train.add_argument(
        "--resume",
        metavar="RUN",
        help="continue an interrupted run exactly (--set may change only how long and how fast "
        "it goes on, the optimizer and decoding)",
    )
    train.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train data-parallel in N processes on this machine (starts torchrun; for "
        "several machines run torchrun yourself: docs/distributed.md)",
    )
    train.set_defaults(handler=command_train)

    evaluate = commands.add_parser("evaluate", help="score a trained run on labelled data")
    add_run_argument(evaluate)
    evaluate.add_argument(
        "--data",
        help="labelled data, read like the training data (default: the run's test split)",
    )
    add_task_options(evaluate, "evaluate")
    evaluate.set_defaults(handler=command_evaluate)

    names = {task.command for task in TASKS.values()} - {"predict"}
    for command in ("predict", *sorted(names)):
        add_predict_parser(commands, command)

    explain = commands.add_parser(
        "explain",
        help="show what the attention picked",
        description="Predict, print which inputs the attention picked, and write pictures. "
        + " ".join(
            f"{task.name}: {task.explain_files}." for task in TASKS.values() if task.explain_files
        ),
    )
    add_run_argument(explain)
    explain.add_argument("inputs", nargs="+", metavar="INPUT", help="texts (speech: audio files)")
    explain.add_argument(
        "--output", "-o", default="explain", help="folder for the pictures (default: explain)"
    )
    explain.add_argument("--no-color", action="store_true", help="plain terminal output")
    add_task_options(explain, "explain")
    explain.set_defaults(handler=command_explain)

    shortlist = commands.add_parser(
        "shortlist",
        help="(translation) write a lexical shortlist into a run, for `translate --shortlist`",
    )
    add_run_argument(shortlist)
    shortlist.add_argument(
        "--per-word", type=int, default=50, help="target words kept per source word (50)"
    )
    shortlist.add_argument(
        "--frequent", type=int, default=500, help="most frequent target words always kept (500)"
    )
    shortlist.set_defaults(handler=command_shortlist)

    export = commands.add_parser(
        "export",
        help="write an inference-only bundle (weights, assets, model card) or ONNX graphs",
    )
    add_run_argument(export)
    export.add_argument("--output", "-o", required=True, help="the new folder to write")
    export.add_argument(
        "--format",
        choices=("bundle", "onnx"),
        default="bundle",
        help="bundle: PyTorch weights (default); onnx: graphs for ONNX Runtime, no PyTorch "
        "needed to run them (docs/export.md)",
    )
    export.add_argument(
        "--int8",
        action="store_true",
        help="(onnx) int8 weights by ONNX Runtime's dynamic quantization",
    )
    export.set_defaults(handler=command_export)

    report = commands.add_parser(
        "report",
        help="write one self-contained HTML page about a run",
        description="Training curves, final scores, dev examples with their attention and "
        "the attention diagnostics of a run, in one HTML file that needs no network.",
    )
    add_run_argument(report)
    report.add_argument("--output", "-o", help="the page (default: RUN/report.html)")
    report.add_argument(
        "--diagnostics",
        metavar="FILE",
        help="diagnostics.json to show (default: RUN/diagnostics/diagnostics.json, if there)",
    )
    report.add_argument(
        "--examples", type=int, default=4, help="dev examples to show (default 4; 0: none)"
    )
    report.add_argument("--device", default="auto", help="auto, cpu, cuda:0... (for the examples)")
    report.set_defaults(handler=command_report)

    diagnose = commands.add_parser(
        "diagnose",
        help="test whether the attention explains the predictions",
        description="Run the attention diagnostics of a trained run on labelled data "
        "(classifiers: agreement with feature importance, permuted and adversarial attention, "
        "erasure, uniform-attention and pooled-MLP baselines; encoder-decoders: alignment with "
        "a reference, counterfactual attention per step, erasure, copying; speech: "
        "monotonicity, diagonality, coverage, CTC alignment) and write diagnostics.json and "
        "diagnostics.html. See docs/diagnostics.md.",
    )
    add_run_argument(diagnose)
    diagnose.add_argument(
        "--data", help="labelled data, read like the training data (default: the test split)"
    )
    diagnose.add_argument(
        "--limit", type=int, default=200, help="examples diagnosed, a seeded sample (default 200)"
    )
    diagnose.add_argument(
        "--output", "-o", help="folder for diagnostics.json/html (default: RUN/diagnostics)"
    )
    diagnose.add_argument(
        "--compare",
        nargs="+",
        default=[],
        metavar="RUN",
        help="(classifiers) runs of the same configuration with other seeds",
    )
    diagnose.add_argument(
        "--alignments",
        help="(translation) reference links of --data in Pharaoh format (i-j sure, i?j possible)",
    )
    diagnose.add_argument(
        "--alignment-units",
        choices=("words", "characters"),
        help="(translation) what the links' indices count (default: the run's "
        "data.alignment_units)",
    )
    diagnose.add_argument(
        "--mlp-train",
        type=int,
        default=2000,
        help="(classifiers) training texts of the pooled-MLP baseline (default 2000; 0: skip)",
    )
    diagnose.add_argument("--seed", type=int, default=0, help="sample and random draws (default 0)")
    diagnose.add_argument("--device", default="auto", help="auto, cpu, cuda:0...")
    diagnose.set_defaults(handler=command_diagnose)

    add_serve_parser(commands)

    pretrain = commands.add_parser("pretrain", help="unsupervised pretraining on raw text")
    from attnrnn.pretrain.cli import add_pretrain_arguments

    add_pretrain_arguments(pretrain)

    data = commands.add_parser("data", help="download public datasets, align parallel text")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    fetch = data_commands.add_parser("fetch", help="download a dataset from its canonical source")
    fetch.add_argument("name", help="multi30k, dialogsum, fsdd or an4 (see `attnrnn data list`)")
    fetch.add_argument("--output", "-o", help="folder (default: data/NAME)")
    fetch.set_defaults(handler=command_fetch)
    listing = data_commands.add_parser("list", help="the datasets `fetch` knows")
    listing.set_defaults(handler=command_data_list)
    align = data_commands.add_parser(
        "align",
        help="word-align two line-aligned files (eflomal, both directions, symmetrised)",
        description="Align the whitespace-separated words of SOURCE and TARGET, line by "
        "line, with eflomal in both directions, symmetrised by grow-diag-final-and, and "
        "write Pharaoh links (i-j: source word i, target word j, from 0), one line per pair: "
        "the data.alignments of guided alignment training or the --alignments of diagnose.",
    )
    align.add_argument("source", help="source sentences, one a line")
    align.add_argument("target", help="target sentences, line-aligned with the source")
    align.add_argument("--output", "-o", required=True, help="the links file to write")
    align.add_argument("--keep-case", action="store_true", help="do not lowercase before aligning")
    align.set_defaults(handler=command_align)

    demo = commands.add_parser("demo", help="train on generated data and show the attention")
    demo.add_argument("--output", "-o", default="demo_out", help="output folder")
    demo.add_argument("--quick", action="store_true", help="a smaller, faster demo")
    demo.set_defaults(handler=command_demo)
    return parser


# `attnrnn serve` options that are ServeSettings fields (defaults live there: None = default).
SERVE_SETTINGS = (
    ("--max-batch-size", int, "largest micro-batch of inputs (1: no batching; default 32)"),
    ("--max-wait-ms", float, "how long a busy model waits to fill a batch (default 2)"),
    ("--queue-size", int, "requests waiting per model before 503 (default 256)"),
    ("--max-body-bytes", int, "largest request body (default 10 MiB)"),
    ("--max-texts", int, "texts per request at most (default 64)"),
    ("--max-text-chars", int, "characters per text at most (default 5000)"),
    ("--max-audio-seconds", float, "longest recording (default 30)"),
    ("--max-beam", int, "largest beam a request may ask for (default 16)"),
    ("--max-n-best", int, "largest n-best a request may ask for (default 8)"),
)


def add_serve_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve runs over HTTP, with the attention explorer at /",
        description="Serve trained runs (PATH or NAME=PATH) over HTTP: a JSON API under /v1, "
        "the attention explorer at /, /health, /metrics and the OpenAPI docs at /docs.",
    )
    serve.add_argument("runs", nargs="+", metavar="RUN", help="run directory, or NAME=PATH")
    serve.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    serve.add_argument(
        "--api-key", help="require this bearer token (default: $ATTNRNN_API_KEY, if set)"
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        dest="cors_origins",
        metavar="ORIGIN",
        help="allow browser requests from this origin (repeatable; default: none)",
    )
    for flag, kind, text in SERVE_SETTINGS:
        serve.add_argument(flag, type=kind, help=text)
    serve.add_argument("--no-request-log", action="store_true", help="no log line per request")
    serve.add_argument("--threads", type=int, help="torch threads per process")
    serve.add_argument("--device", default="auto", help="auto, cpu, cuda:0...")
    serve.add_argument("--int8", action="store_true", help="int8 weights (translation, CPU)")
    serve.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="bf16: translation decodes with bf16 matmuls where the hardware has them",
    )
    serve.set_defaults(handler=command_serve)


def command_serve(arguments: argparse.Namespace) -> int:
    from attnrnn.extras import require

    require("fastapi")
    require("uvicorn")
    from attnrnn.serving import ServeSettings, serve

    settings = ServeSettings.from_options(
        api_key=arguments.api_key,
        cors_origins=arguments.cors_origins,
        log_requests=False if arguments.no_request_log else None,
        **{flag[2:].replace("-", "_"): getattr(arguments, flag[2:].replace("-", "_"))
           for flag, _, _ in SERVE_SETTINGS},
    )  # fmt: skip
    serve(
        arguments.runs,
        arguments.host,
        arguments.port,
        settings=settings,
        device=arguments.device,
        int8=arguments.int8,
        precision=arguments.precision,
        threads=arguments.threads,
        workers=arguments.workers,
    )
    return 0


def add_set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a configuration value, e.g. model.encoder.hidden_size=512",
    )


def add_run_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory or exported bundle")


def add_predict_parser(commands: Any, command: str) -> None:
    from attnrnn.tasks import TASKS

    tasks = [task for task in TASKS.values() if command in ("predict", task.command)]
    kinds = ", ".join(task.name for task in tasks)
    predict = commands.add_parser(
        command,
        help=f"answer inputs one line at a time ({kinds})",
        description="Read inputs (one a line) from files or standard input and answer each "
        "with one line as soon as its batch is done; an empty line gets an empty line. "
        "Speech runs take audio files as arguments (or their paths, one a line).",
    )
    add_run_argument(predict)
    predict.add_argument(
        "inputs", nargs="*", metavar="INPUT", help="input file(s); - or none: standard input"
    )
    predict.add_argument(
        "--json",
        "--attention",
        action="store_true",
        dest="json",
        help="JSON lines with scores, tokens and attention weights",
    )
    predict.add_argument(
        "--strict", action="store_true", help="stop with an error at an empty line"
    )
    predict.add_argument(
        "--runtime",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="auto (default): ONNX Runtime for a folder of `attnrnn export --format onnx`, "
        "PyTorch otherwise",
    )
    add_task_options(predict, "predict", tasks)
    predict.set_defaults(handler=command_predict, alias=command)


def add_task_options(parser: argparse.ArgumentParser, command: str, tasks: Any = None) -> None:
    """The options of every task for ``command`` (each once), and the load options."""
    from attnrnn.tasks import TASKS

    tasks = list(TASKS.values()) if tasks is None else tasks
    parser.add_argument(
        "--device",
        default=argparse.SUPPRESS,
        help="auto (default: CUDA when available), cpu, cuda:0...",
    )
    if any(task.supports_int8 for task in tasks):
        parser.add_argument(
            "--int8",
            action="store_true",
            default=argparse.SUPPRESS,
            help="int8 dynamic quantization for CPU inference (tasks that support it)",
        )
    if any(task.supports_bf16 for task in tasks):
        parser.add_argument(
            "--precision",
            choices=("fp32", "bf16"),
            default=argparse.SUPPRESS,
            help="bf16: decode with bfloat16 matmuls where the hardware has them (AMX, "
            "AVX512-BF16, recent GPUs; elsewhere fp32 with a warning); default fp32",
        )
    seen: set[str] = set()
    for task in tasks:
        for option in task.options:
            if command not in option.commands or option.dest in seen:
                continue
            seen.add(option.dest)
            keywords: dict[str, Any] = {"dest": option.dest, "default": argparse.SUPPRESS}
            if option.action:
                keywords["action"] = option.action
            if option.type is not None:
                keywords["type"] = option.type
            parser.add_argument(*option.flags, help=option.help, **keywords)


# --------------------------------------------------------------------------- using a run


def load_run(arguments: argparse.Namespace, command: str) -> tuple[Any, dict[str, Any]]:
    """The run of ``arguments.run`` and the task options given, checked against its task."""
    import attnrnn.onnx

    runtime = getattr(arguments, "runtime", "auto")
    exported = attnrnn.onnx.is_exported(arguments.run)
    if exported and runtime != "torch":
        return load_exported(arguments, command)
    if exported:
        raise ConfigError(f"{arguments.run} is an ONNX export: it runs with --runtime onnx")
    if runtime == "onnx":
        raise ConfigError(
            f"{arguments.run} is not an ONNX export; write one with "
            f"`attnrnn export {arguments.run} --format onnx --output DIR`"
        )
    from attnrnn.tasks.runs import load, run_task

    task = run_task(arguments.run)
    alias = getattr(arguments, "alias", "predict")
    if alias not in ("predict", task.command):
        other = f"attnrnn {task.command}" if task.command != "predict" else "attnrnn predict"
        raise ConfigError(f"{arguments.run} is a {task.name} run; use `{other}` for it")
    known = {option.dest for option in task.options if command in option.commands}
    given = {
        key: value
        for key, value in vars(arguments).items()
        if key in _task_option_names() and key not in LOAD_OPTIONS
    }
    for key in given:
        if key not in known:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(f"{flag} does not apply to {task.name} runs ({arguments.run})")
    if getattr(arguments, "int8", False) and not task.supports_int8:
        raise ConfigError(f"--int8 does not apply to {task.name} runs ({arguments.run})")
    precision = getattr(arguments, "precision", "fp32")
    if precision != "fp32" and not task.supports_bf16:
        raise ConfigError(f"--precision does not apply to {task.name} runs ({arguments.run})")
    model = load(
        arguments.run,
        device=getattr(arguments, "device", "auto"),
        int8=getattr(arguments, "int8", False),
        precision=precision,
    )
    return model, given


# The options the ONNX predictors take (search settings), by command.
SEARCH_KEYS = ("beam", "n_best", "length_penalty")
ONNX_OPTIONS = {
    "translate": (*SEARCH_KEYS, "shortlist"),
    "summarize": (*SEARCH_KEYS, "field"),
    "transcribe": (*SEARCH_KEYS, "ctc_weight"),
    "predict": (),
}


def load_exported(arguments: argparse.Namespace, command: str) -> tuple[Any, dict[str, Any]]:
    """The ONNX predictor of an exported folder and the options given, checked."""
    import attnrnn.onnx

    if command != "predict":
        raise ConfigError(
            f"{arguments.run} is an ONNX export, which answers `attnrnn predict` and the "
            f"task's command; {command} needs the PyTorch run it was exported from"
        )
    model = attnrnn.onnx.load(arguments.run)
    alias = getattr(arguments, "alias", "predict")
    if alias not in ("predict", model.command):
        raise ConfigError(
            f"{arguments.run} is a {model.task.name} export; use `attnrnn {model.command}` for it"
        )
    known = ONNX_OPTIONS.get(model.command, ())
    given = {
        key: value
        for key, value in vars(arguments).items()
        if key in _task_option_names() | set(LOAD_OPTIONS)
    }
    for key in given:
        if key not in known:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(f"{flag} does not apply to the ONNX {model.task.name} predictor")
    return model, given


def _task_option_names() -> set[str]:
    from attnrnn.tasks import TASKS

    return {option.dest for task in TASKS.values() for option in task.options}


def command_train(arguments: argparse.Namespace) -> int:
    from attnrnn.tasks.runs import read_config, resume, train
    from attnrnn.training.distributed import world_from_environment

    if arguments.nproc is not None:
        return launch_processes(arguments)
    if arguments.resume:
        run_directory = Path(arguments.resume)
        results = resume(run_directory, arguments.set)
    else:
        if not arguments.config:
            raise ConfigError("train needs a CONFIG file (or --resume RUN)")
        config = read_config(arguments.config, arguments.set)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        default = Path("runs") / f"{Path(arguments.config).stem}-{stamp}"
        run_directory = Path(arguments.output) if arguments.output else default
        results = train(config, run_directory)
    if world_from_environment().is_main:
        print(json.dumps({"run": str(run_directory), **results}, indent=2))
    return 0


def launch_processes(arguments: argparse.Namespace) -> int:
    """``train --nproc N``: the same command under ``torchrun --standalone`` with N
    processes; returns torchrun's exit status."""
    import signal

    if arguments.nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {arguments.nproc}")
    if "WORLD_SIZE" in os.environ:
        raise ConfigError("--nproc starts torchrun itself: leave it out under torchrun")
    if not (arguments.config or arguments.resume):
        raise ConfigError("train needs a CONFIG file (or --resume RUN)")
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser
    from torch.distributed.run import run as torchrun

    command = ["--standalone", f"--nproc_per_node={arguments.nproc}", "-m", "attnrnn", "train"]
    command += [arguments.config] if arguments.config else []
    for item in arguments.set:
        command += ["--set", item]
    if arguments.resume:
        command += ["--resume", arguments.resume]
    if arguments.output or arguments.config:  # one name chosen here for every process
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        default = Path("runs") / f"{Path(arguments.config or '').stem}-{stamp}"
        command += ["--output", arguments.output or str(default)]
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # what torchrun sets, without its warning
    try:
        torchrun(get_args_parser().parse_args(command))
    except ChildFailedError as error:
        # The processes printed their own errors; say which were killed.
        for rank, failure in sorted(error.failures.items()):
            if failure.exitcode < 0:
                name = signal.Signals(-failure.exitcode).name
                print(f"error: process {rank} was killed ({name})", file=sys.stderr)
        codes = [failure.exitcode for _, failure in sorted(error.failures.items())]
        return next((code for code in codes if code > 0), 1)
    except SignalException:
        return EXIT_INTERRUPTED
    return 0


def command_evaluate(arguments: argparse.Namespace) -> int:
    from attnrnn.console import progress

    model, options = load_run(arguments, "evaluate")
    model.progress = progress
    metrics = model.evaluate(arguments.data, **options)
    print(json.dumps(metrics, indent=2, ensure_ascii=False))
    return 0


def command_predict(arguments: argparse.Namespace) -> int:
    from attnrnn import streaming
    from attnrnn.console import progress, silent_progress

    model, options = load_run(arguments, "predict")
    model.progress = silent_progress
    inference = model.config.inference
    if model.task.input_files and arguments.inputs and arguments.inputs != ["-"]:
        lines: Any = (
            streaming.InputLine(number, path, "<arguments>")
            for number, path in enumerate(arguments.inputs, start=1)
        )
        total: int | None = len(arguments.inputs)
    else:
        lines, total = input_lines(arguments.inputs or ["-"])
    if arguments.strict:
        lines = streaming.strict(lines)
    if arguments.json:

        def write(result: Any) -> str:
            return json.dumps(model.record(result), ensure_ascii=False)

    else:
        write = model.line

    def parse(line: Any) -> Any:
        try:
            return model.parse_input(line.text, options)
        except DataError as error:
            if error.path is not None:
                raise
            raise DataError(str(error), line.name, line.number) from None

    stdin = total is None
    show = silent_progress if stdin else progress
    with show(total, arguments.alias) as advance:
        streaming.answer_lines(
            lines,
            parse,
            lambda inputs: model.predict(inputs, **options),
            write,
            sys.stdout,
            batch_size=inference.max_batch_size * (1 if stdin else 16),
            wait_seconds=inference.stream_wait_ms / 1000 if stdin else 60.0,
            advance=advance,
        )
    return 0


def input_lines(paths: Sequence[str]) -> tuple[Any, int | None]:
    """The lines of the input files (``-``: standard input) and their number (None when
    reading standard input, whose length is unknown)."""
    from attnrnn.data.readers import read_lines
    from attnrnn.streaming import InputLine

    def lines() -> Any:
        for path in paths:
            name = "<stdin>" if path == "-" else path
            for number, text in read_lines(path):
                yield InputLine(number, text, name)

    if not all(Path(path).is_file() for path in paths):  # stdin, a pipe: length unknown
        return lines(), None
    total = 0
    for path in paths:
        total += sum(1 for _ in read_lines(path))
    return lines(), total


def command_explain(arguments: argparse.Namespace) -> int:
    from attnrnn.console import use_color

    model, options = load_run(arguments, "explain")
    color = use_color() and not arguments.no_color
    explanation = model.explain(arguments.inputs, output=arguments.output, color=color, **options)
    print(explanation.text)
    for path in explanation.files:
        print(f"wrote {path}")
    return 0


def command_shortlist(arguments: argparse.Namespace) -> int:
    from attnrnn.tasks.runs import load, run_task

    task = run_task(arguments.run)
    if task.name != "translation":
        raise ConfigError(f"{arguments.run} is a {task.name} run; shortlists are for translation")
    from attnrnn.tasks.translation import Translator

    model = load(arguments.run, device="cpu")
    assert isinstance(model, Translator)
    summary = model.write_shortlist(arguments.per_word, arguments.frequent)
    print(json.dumps(summary, indent=2))
    return 0


def command_export(arguments: argparse.Namespace) -> int:
    if arguments.format == "onnx":
        from attnrnn.onnx.export import export_onnx

        written = export_onnx(arguments.run, arguments.output, int8=arguments.int8)
        print(f"exported {arguments.run} to {written} (ONNX)")
        return 0
    if arguments.int8:
        raise ConfigError("--int8 applies to --format onnx (bundles quantize when loaded)")
    from attnrnn.tasks.runs import export

    print(f"exported {arguments.run} to {export(arguments.run, arguments.output)}")
    return 0


def command_diagnose(arguments: argparse.Namespace) -> int:
    from attnrnn.console import log
    from attnrnn.diagnostics.run import DiagnoseOptions, diagnose, write_diagnostics
    from attnrnn.tasks.runs import load

    options = DiagnoseOptions(
        limit=arguments.limit, mlp_train=arguments.mlp_train, seed=arguments.seed
    )
    model = load(arguments.run, device=arguments.device)
    compare = [load(run, device=arguments.device) for run in arguments.compare]
    document = diagnose(
        model,
        arguments.data,
        options,
        compare,
        arguments.alignments,
        log,
        alignment_units=arguments.alignment_units,
    )
    folder = Path(arguments.output) if arguments.output else Path(arguments.run) / "diagnostics"
    for path in write_diagnostics(document, folder):
        print(f"wrote {path}")
    return 0


def command_report(arguments: argparse.Namespace) -> int:
    from attnrnn.report import write_report

    path = write_report(
        arguments.run,
        arguments.output,
        diagnostics=arguments.diagnostics,
        examples=arguments.examples,
        device=arguments.device,
    )
    print(f"wrote {path}")
    return 0


def command_fetch(arguments: argparse.Namespace) -> int:
    from attnrnn.data.fetch import fetch

    output = Path(arguments.output or Path("data") / arguments.name)
    print(f"fetched {arguments.name} into {fetch(arguments.name, output)}")
    return 0


def command_align(arguments: argparse.Namespace) -> int:
    from attnrnn.data.alignments import align_files

    aligned = align_files(
        arguments.source, arguments.target, arguments.output, lowercase=not arguments.keep_case
    )
    print(
        f"aligned {aligned.sentences} sentence pairs ({aligned.links} links, "
        f"{aligned.without_links} pairs without any): wrote {arguments.output}"
    )
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
