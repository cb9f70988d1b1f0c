"""The life of a run, the same for every task: train (new or resumed) into a run
directory, load a run (or an exported bundle) for inference, export a bundle.

A run directory holds::

    run.json        the attnrnn version and run format that wrote it, the task, and the
                    working directory its relative data paths are relative to
    config.yaml     the full configuration, defaults filled in
    (assets)        the task's tokenizers, vocabularies, labels, normalizer (JSON + models)
    best/ last/     checkpoints (safetensors; last/ can resume)
    metrics.csv     dev metrics per evaluation; results.json: the best checkpoint's scores

An exported bundle (:func:`export`) keeps only what inference needs: run.json,
config.yaml, the assets, ``best/model.safetensors``, results.json and a model card
(README.md).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

import attnrnn
from attnrnn.config import TrainerConfig, apply_overrides, load_yaml, save_yaml, to_dict
from attnrnn.console import Log, silent
from attnrnn.console import log as log_stderr
from attnrnn.data.io import read_run_json
from attnrnn.data.readers import text_encoding
from attnrnn.errors import ConfigError, RunError
from attnrnn.tasks.base import Prepared, Task, TrainedModel, data_encoding
from attnrnn.tasks.text import split_off_dev
from attnrnn.training import checkpoint, files
from attnrnn.training.distributed import (
    World,
    backend_for,
    barrier,
    device_for,
    from_rank0,
    process_group,
    world_from_environment,
)
from attnrnn.training.faults import crash_point
from attnrnn.training.lock import run_lock
from attnrnn.training.runtime import configure_runtime, native_bf16, resolve_device
from attnrnn.training.trainer import Trainer, seed_process

RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
RESULTS_FILE = "results.json"
# The layout of run directories this attnrnn writes; it reads every format up to it.
# Runs written before run.json existed are format 1.
RUN_FORMAT = 1


# --------------------------------------------------------------------------- configurations


def task_named(name: Any, where: str = "") -> Task:
    """The registered task called ``name``; an unknown name lists the valid ones."""
    from attnrnn.tasks import TASKS

    if not isinstance(name, str) or name not in TASKS:
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}unknown task {name!r}; valid: {', '.join(TASKS)}")
    return TASKS[name]


def read_config(path: str | Path, overrides: Sequence[str] = ()) -> Any:
    """A run configuration from YAML with ``--set`` overrides, typed by its task."""
    data = apply_overrides(load_yaml(path), overrides)
    task = task_named(data.get("task", "classification"), str(path))
    try:
        return task.config_from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


# --------------------------------------------------------------------------- training


# What `train --resume RUN --set KEY=VALUE` may change: how long and how fast to go on,
# the optimizer, and decoding; never the data, the assets or the model the checkpoint has.
RESUMABLE_KEYS = (
    "trainer.epochs",
    "trainer.max_steps",
    "trainer.max_minutes",
    "trainer.eval_every_steps",
    "trainer.early_stopping_patience",
    "trainer.log_every_steps",
    "trainer.num_threads",
    "trainer.device",
    "trainer.progress",
    "trainer.accumulate_steps",
    "trainer.precision",
    "trainer.distributed_timeout_seconds",
    "optimizer.",
    "inference.",
    "dev_search.",
    "search.",
    "ctc_weight",
    "data.test",
)


def resume(
    run_directory: str | Path, overrides: Sequence[str] = (), log: Log = log_stderr
) -> dict[str, Any]:
    """Continue a run exactly; ``overrides`` (``--set``) may change only the
    :data:`RESUMABLE_KEYS`. The run's config.yaml is rewritten only once the run has
    loaded its checkpoint with the new configuration."""
    run_directory = Path(run_directory)
    read_run_info(run_directory)
    saved = read_config(run_directory / CONFIG_FILE)
    config = read_config(run_directory / CONFIG_FILE, tuple(overrides))
    changed = changed_keys(to_dict(saved), to_dict(config))
    refused = [key for key in changed if not key.startswith(RESUMABLE_KEYS)]
    if refused:
        raise ConfigError(
            f"--resume cannot change {', '.join(refused)} (the checkpoint was trained with the "
            f"old values); it may change: {', '.join(RESUMABLE_KEYS)}"
        )
    return train(config, run_directory, resume=True, log=log, save_config=bool(changed))


def changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested mappings."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def train(
    config: Any,
    run_directory: str | Path,
    resume: bool = False,
    log: Log = log_stderr,
    save_config: bool = False,
) -> dict[str, Any]:
    """Train ``config`` into ``run_directory`` (or continue it exactly with ``resume``;
    a run killed before its first checkpoint starts again from the beginning);
    return the best checkpoint's dev and test scores, also written to results.json.

    One process at a time trains a run (:func:`attnrnn.training.lock.run_lock`).
    ``save_config``: write ``config`` to the run's config.yaml once the checkpoint
    has loaded (a resume with changed settings).

    Started by ``torchrun``, every process calls this; they train data-parallel
    (:mod:`attnrnn.training.distributed`), rank 0 alone writes the run directory, and
    only rank 0 returns the scores (the others return ``{}``).
    """
    world = world_from_environment()
    device = device_for(world, configure_runtime(config.trainer))
    timeout = config.trainer.distributed_timeout_seconds
    with process_group(world, device, timeout):
        try:
            return _train(config, Path(run_directory), resume, log, save_config, world, device)
        except RuntimeError as error:  # gloo reports a lost peer as a plain RuntimeError
            if not world.distributed or not collective_failure(error):
                raise
            raise RunError(lost_contact(world, error, Path(run_directory))) from None


def collective_failure(error: RuntimeError) -> bool:
    """Whether ``error`` is a collective that failed (a process died, hung or is
    unreachable) rather than a fault of this process."""
    text = str(error)
    return isinstance(error, dist.DistError) or any(
        word in text for word in ("gloo", "NCCL", "c10d", "Connection reset", "Connection closed")
    )


def lost_contact(world: World, error: Exception, run_directory: Path) -> str:
    """The message of a process whose collective failed: another one died or hung."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)  # gloo's source location
    text = text.split(" This is typically")[0][:300]
    return (
        f"process {world.rank} of {world.world_size}: another training process stopped or "
        f"could not be reached ({text}); the last checkpoint is "
        f"{run_directory / 'last'} (continue with: attnrnn train --resume {run_directory})"
    )


def _train(
    config: Any,
    run_directory: Path,
    resume: bool,
    log: Log,
    save_config: bool,
    world: World,
    device: torch.device,
) -> dict[str, Any]:
    task = task_named(config.task)
    run_directory = Path(from_rank0(str(run_directory)))  # one name for all processes
    if not world.is_main:
        log = silent
    with contextlib.ExitStack() as stack:
        if world.is_main:
            run_directory.parent.mkdir(parents=True, exist_ok=True)
            remove_leftovers(run_directory.parent)
        if resume:
            read_run_info(run_directory)
            if world.is_main:
                stack.enter_context(run_lock(run_directory))
                remove_partial_files(run_directory)
        elif not world.is_main:
            barrier()  # rank 0 fits the assets and writes the run directory first
            check_shared(run_directory, world)
        assets = task.load_assets(run_directory) if resume or not world.is_main else None
        workdir = stack.enter_context(
            tempfile.TemporaryDirectory(
                dir=run_directory.parent if world.is_main else None,
                prefix=leftover_prefix("prepare"),
            )
        )
        prepared = prepare(task, config, Path(workdir), log, assets)
        model = task.build_model(config, prepared.assets).to(device)
        if not resume and world.is_main:
            task.initialise(model, config, prepared.assets, log)
            with files.staged_run_directory(run_directory) as staging:
                write_run_files(staging, task, config, prepared.assets)
                crash_point("staged_run")
                stack.enter_context(run_lock(staging))  # the lock moves with the folder
            barrier()  # the others may read it now
        if world.rank:
            seed_process(config.trainer.seed, world.rank)  # its own dropout noise
        trained = task.model_class(task, config, prepared.assets, model, device, run_directory)
        metric = task.metric(config)
        trainer = Trainer(
            model,
            task.training(trained, prepared),
            config.optimizer,
            config.trainer,
            run_directory,
            metric.name,
            higher_is_better=metric.higher_is_better,
            world=world,
            log=log,
        )
        describe_parallelism(config.trainer, world, device, log)
        if resume and checkpoint.has_checkpoint(run_directory / "last"):
            trainer.resume()
            log(f"resumed {run_directory} at step {trainer.state.step}")
        elif resume:
            if world.is_main:
                trainer.discard_metrics()
            log(f"{run_directory} has no checkpoint yet: training it from the beginning")
        if save_config and world.is_main:
            save_yaml(config, run_directory / CONFIG_FILE)
        trainer.train()
        if not world.is_main:
            return {}
        checkpoint.load_weights(run_directory / "best", model, device)
        results: dict[str, Any] = {}
        for name, split in (("dev", prepared.dev), ("test", prepared.test)):
            if split is not None:
                with trained.lock:
                    scores = trained.score(split)
                results.update({f"{name}_{key}": value for key, value in scores.items()})
        files.write_json_atomic(run_directory / RESULTS_FILE, results)
        for message in task.warnings(config, results):
            log(f"warning: {message}")
        return results


def check_shared(run_directory: Path, world: World) -> None:
    """A process other than rank 0 reads the run directory rank 0 wrote: it must see it."""
    if not (run_directory / CONFIG_FILE).is_file():
        raise RunError(
            f"process {world.rank} cannot see the run directory {run_directory} that process 0 "
            f"wrote (on {socket.gethostname()}): with several machines, put runs on storage "
            "every machine shares (docs/distributed.md)"
        )


def describe_parallelism(
    trainer: TrainerConfig, world: World, device: torch.device, log: Log
) -> None:
    """One log line about the processes and the batch of one step, when not the default."""
    processes, accumulate = world.world_size, trainer.accumulate_steps
    if processes == 1 and accumulate == 1:
        return
    group = processes * accumulate
    if processes == 1:
        log(
            f"gradient accumulation: 1 process adding up {accumulate} batches of up to "
            f"{trainer.batch_tokens} padded tokens per step (up to {group * trainer.batch_tokens} "
            "tokens)"
        )
        return
    log(
        f"data-parallel: {processes} processes ({backend_for(device)}), each adding up "
        f"{accumulate} batch(es) of up to {trainer.batch_tokens} padded tokens per step: a step "
        f"takes {group} batches, up to {group * trainer.batch_tokens} tokens"
    )


def leftover_prefix(kind: str) -> str:
    """``.prepare-PID-``: temporary folders beside a run name the process that made them."""
    return f".{kind}-{os.getpid()}-"


def remove_leftovers(folder: Path) -> None:
    """Remove the temporary folders (``.prepare-PID-*``, ``.staging-PID-*``) that a killed
    process left in ``folder``; those of living processes stay."""
    for path in folder.glob(".*-*-*"):
        kind, _, rest = path.name[1:].partition("-")
        pid = rest.split("-", 1)[0]
        if kind in ("prepare", "staging") and pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def remove_partial_files(run_directory: Path) -> None:
    """Remove the temporary files (``.NAME.XXXXXXXX.tmp``) of writes a killed process left
    half done in a run directory; only the holder of the run's lock calls this."""
    for path in run_directory.glob(".*.tmp"):
        if path.is_file() and not path.is_symlink():
            path.unlink()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare(
    task: Task, config: Any, workdir: Path, log: Log, assets: Any | None = None
) -> Prepared:
    """Read the splits (holding out ``data.dev_fraction`` of train when there is no dev
    file), fit the assets unless given (a resumed run has its own), encode."""
    data = config.data
    with text_encoding(data_encoding(config)):
        train_examples = task.read_split(config, data.train, "train")
        dev_examples = task.read_split(config, data.dev, "dev") if data.dev else None
        test_examples = task.read_split(config, data.test, "test") if data.test else None
    if dev_examples is None:
        train_examples, dev_examples = split_off_dev(
            train_examples, data.dev_fraction, config.trainer.seed, data.train
        )
    train_examples = task.prepare_examples(config, train_examples, "train", log)
    dev_examples = task.prepare_examples(config, dev_examples, "dev", log)
    if test_examples is not None:
        test_examples = task.prepare_examples(config, test_examples, "test", log)
    if assets is None:
        assets = task.fit_assets(config, train_examples, workdir)
    prepared = Prepared(
        assets,
        task.encode(config, assets, train_examples, "train"),
        task.encode(config, assets, dev_examples, "dev"),
        None if test_examples is None else task.encode(config, assets, test_examples, "test"),
    )
    log(task.describe(prepared))
    return prepared


def write_run_files(directory: Path, task: Task, config: Any, assets: Any) -> None:
    """run.json, config.yaml and the assets."""
    info = {
        "attnrnn_version": attnrnn.__version__,
        "run_format": RUN_FORMAT,
        "task": task.name,
        "working_directory": os.getcwd(),
    }
    files.write_json_atomic(directory / RUN_FILE, info)
    save_yaml(config, directory / CONFIG_FILE)
    assets.save(directory)


# --------------------------------------------------------------------------- loading


def read_run_info(directory: Path) -> dict[str, Any]:
    """run.json of a run directory ({} for runs from before it existed); a run written in
    a newer format than this attnrnn reads is an error that says so."""
    if not directory.is_dir():
        raise RunError(f"{directory}: no such run directory")
    if not (directory / CONFIG_FILE).is_file():
        raise RunError(f"{directory}: not a run directory (missing {CONFIG_FILE})")
    path = directory / RUN_FILE
    if not os.path.lexists(path):
        return {}
    info = read_run_json(directory, RUN_FILE, "run information")
    run_format = info.get("run_format", 1)
    if not isinstance(run_format, int):
        raise RunError(f"{path}: no run_format number")
    if run_format > RUN_FORMAT:
        raise RunError(
            f"{directory} was written by attnrnn {info.get('attnrnn_version', '?')} (run format "
            f"{run_format}); this attnrnn {attnrnn.__version__} reads formats up to {RUN_FORMAT}: "
            "upgrade attnrnn to use it"
        )
    return dict(info)


def run_task(directory: str | Path) -> Task:
    """The task of a run directory (from its config.yaml)."""
    directory = Path(directory)
    read_run_info(directory)
    return task_named(
        load_yaml(directory / CONFIG_FILE).get("task", "classification"), str(directory)
    )


def load(
    directory: str | Path,
    device: str = "auto",
    int8: bool = False,
    checkpoint_name: str = "best",
    precision: str = "fp32",
) -> TrainedModel:
    """Load a trained run or an exported bundle; the task is worked out from its config.

    Args:
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda:0``...
        int8: int8 dynamic quantization of linear and RNN layers (CPU inference; tasks
            that support it).
        checkpoint_name: ``best`` (default) or ``last``.
        precision: ``fp32`` (default) or ``bf16``: decoding's matmuls in bfloat16 (tasks
            that support it); where the hardware has no native bfloat16 the model
            decodes in fp32, with one warning line on standard error.
    """
    directory = Path(directory)
    info = read_run_info(directory)
    task = run_task(directory)
    config = task.config_from_dict(load_yaml(directory / CONFIG_FILE))
    assets = task.load_assets(directory)
    if int8 and not task.supports_int8:
        raise ConfigError(f"int8 quantization is not available for {task.name} runs")
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"unknown precision {precision!r}; valid: fp32, bf16")
    if precision == "bf16" and not task.supports_bf16:
        raise ConfigError(f"bf16 decoding is not available for {task.name} runs")
    if precision == "bf16" and int8:
        raise ConfigError("int8 and bf16 exclude each other: choose one")
    target = resolve_device("cpu" if int8 and device == "auto" else device)
    if precision == "bf16" and not native_bf16(target):
        what = "this CPU" if target.type == "cpu" else str(target)
        log_stderr(f"warning: {what} has no native bfloat16: decoding in fp32 instead of bf16")
        precision = "fp32"
    model = task.build_model(config, assets).to(target)
    checkpoint.load_weights(directory / checkpoint_name, model, target)
    model.eval()
    if int8:
        from attnrnn.models.quantize import quantize_int8

        model = quantize_int8(model)
    return task.model_class(task, config, assets, model, target, directory, info, precision)


# --------------------------------------------------------------------------- export


def export(directory: str | Path, output: str | Path) -> Path:
    """Write an inference-only bundle of a run to ``output`` (a new folder): the best
    weights, config, assets, results and a model card; no optimizer state."""
    model = load(directory, device="cpu")
    source, output = Path(directory), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with files.staged_run_directory(output) as staging:
        info = dict(model.info)
        info.update(
            attnrnn_version=attnrnn.__version__,
            run_format=RUN_FORMAT,
            task=model.task.name,
            exported_from=str(source),
        )
        info.setdefault("working_directory", os.getcwd())
        files.write_json_atomic(staging / RUN_FILE, info)
        shutil.copy(source / CONFIG_FILE, staging / CONFIG_FILE)
        model.assets.save(staging)
        from attnrnn.decoding.shortlist import SHORTLIST_FILE

        if (source / SHORTLIST_FILE).is_file():  # translation's lexical shortlist
            shutil.copy(source / SHORTLIST_FILE, staging / SHORTLIST_FILE)
        best = checkpoint.checkpoint_path(source / "best")
        (staging / "best").mkdir()
        for name in (checkpoint.MODEL_FILE, checkpoint.STATE_FILE):  # no optimizer state
            shutil.copy(best / name, staging / "best" / name)
        results = _read_results(source)
        if results:
            files.write_json_atomic(staging / RESULTS_FILE, results)
        (staging / "README.md").write_text(model_card(model, results, output), encoding="utf-8")
    return output


def _read_results(directory: Path) -> dict[str, Any]:
    if not (directory / RESULTS_FILE).is_file():
        return {}
    results: dict[str, Any] = read_run_json(directory, RESULTS_FILE, "results")
    return results


def model_card(model: TrainedModel, results: dict[str, Any], output: Path) -> str:
    """The bundle's README.md: task, data, metrics, intended use, how to load."""
    config = model.config
    data = config.data
    splits = []
    for name in ("train", "dev", "test"):
        location = getattr(data, name, None)
        if location:
            shown = ", ".join(location) if isinstance(location, tuple) else location
            splits.append(f"- {name}: `{shown}`")
    metrics = [
        f"| {name} | {value:.4f} |" if isinstance(value, float) else f"| {name} | {value} |"
        for name, value in results.items()
    ]
    parameters = sum(p.numel() for p in model.model.parameters())
    metric = model.task.metric(config)
    command = model.task.command
    lines = [
        f"# {output.name}: an attnrnn {model.task.name} model",
        "",
        f"Exported by attnrnn {attnrnn.__version__} from `{model.info.get('exported_from', '')}`"
        if model.info.get("exported_from")
        else f"Exported by attnrnn {attnrnn.__version__}.",
        "",
        "## Model",
        "",
        f"Task: {model.task.name}; {parameters:,} parameters; the checkpoint with the best "
        f"dev {metric.name} ({'higher' if metric.higher_is_better else 'lower'} is better). "
        "The full configuration is in config.yaml.",
        "",
        "## Data",
        "",
        *splits,
        "",
        "## Metrics",
        "",
        *(["| metric | value |", "|---|---|", *metrics] if metrics else ["(no results.json)"]),
        "",
        "## Intended use",
        "",
        f"Inference with attnrnn on inputs like the training data ({model.task.name}). "
        "Quality outside that domain is unmeasured; check it on your own data with "
        "`attnrnn evaluate` before relying on it.",
        "",
        "## How to load",
        "",
        "```python",
        "import attnrnn",
        f'model = attnrnn.load("{output.name}")',
        "```",
        "",
        "```bash",
        f"attnrnn {command} {output.name} INPUT",
        f"attnrnn evaluate {output.name} --data FILE",
        "```",
        "",
    ]
    return "\n".join(lines)
