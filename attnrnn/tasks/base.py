"""The task contract.

A task (text classification, translation, speech recognition, summarization,
language-model pretraining) is one module with two classes:

- a :class:`Task`: its configuration class, how it reads a split, fits, saves
  and loads its assets (tokenizers, vocabularies, labels, feature statistics),
  encodes examples, builds its model, computes the training loss, and which dev
  metric picks the best checkpoint;
- a :class:`TrainedModel` subclass: what a trained model does for its users
  (predict, score a labelled split, explain one input) and how the CLI writes its
  results.

Everything else is shared and knows no task: the training lifecycle and the run
loader (:mod:`attnrnn.tasks.runs`), the batched inference loop
(:mod:`attnrnn.tasks.inference`), the CLI (:mod:`attnrnn.cli`) and the public
API (:func:`attnrnn.load`). A new task is one module and one line in the registry
(:data:`attnrnn.tasks.TASKS`).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import torch
from torch import nn

from attnrnn.config import InferenceConfig, OptimizerConfig, TrainerConfig, from_dict
from attnrnn.console import Log, ProgressFactory, silent_progress
from attnrnn.data.batching import make_batches, round_up
from attnrnn.data.readers import text_encoding
from attnrnn.errors import ConfigError
from attnrnn.training.runtime import shape_multiple
from attnrnn.training.trainer import LossOutput

ConfigT = TypeVar("ConfigT", bound="RunConfig")
AssetsT = TypeVar("AssetsT", bound="Assets")
SplitT = TypeVar("SplitT")
R = TypeVar("R")


class RunConfig(Protocol):
    """What every task's run configuration has (a frozen dataclass, stored as config.yaml)."""

    @property
    def task(self) -> str: ...
    @property
    def data(self) -> Any: ...
    @property
    def optimizer(self) -> OptimizerConfig: ...
    @property
    def trainer(self) -> TrainerConfig: ...
    @property
    def inference(self) -> InferenceConfig: ...


class Assets(Protocol):
    """What a task fits on its training data and keeps in the run directory."""

    def save(self, directory: Path) -> None: ...


@dataclass(frozen=True)
class Metric:
    """The dev metric that selects the best checkpoint and stops training early."""

    name: str
    higher_is_better: bool


@dataclass
class Prepared(Generic[AssetsT, SplitT]):
    """Assets and encoded splits, ready for training."""

    assets: AssetsT
    train: SplitT
    dev: SplitT
    test: SplitT | None


@dataclass(frozen=True)
class Option:
    """A command-line option a task adds to some commands (evaluate, predict, explain).

    ``dest`` is the keyword the option's value is passed as to the task's
    :meth:`TrainedModel.predict` / ``evaluate`` / ``explain`` (or to loading, for
    ``int8``)."""

    flags: tuple[str, ...]
    dest: str
    help: str
    commands: tuple[str, ...] = ("evaluate", "predict", "explain")
    type: Any = None
    action: str | None = None


@dataclass
class Explanation:
    """What :meth:`TrainedModel.explain` shows: the text printed and the files written."""

    text: str
    files: list[Path] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)


class Task(ABC, Generic[ConfigT, AssetsT, SplitT]):
    """One kind of model and data. Subclasses set the class attributes and implement
    the abstract methods; the defaults fit most tasks."""

    name: ClassVar[str]
    config_class: ClassVar[type]
    model_class: ClassVar[type[TrainedModel]]
    # The CLI command that names what this task's `predict` does (translate, transcribe...).
    command: ClassVar[str] = "predict"
    # True when the CLI's inputs are files themselves (audio), not lines of text.
    input_files: ClassVar[bool] = False
    # What `explain` writes, for `attnrnn explain --help`.
    explain_files: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    # Inference options of `attnrnn.load` the task's model takes: int8 dynamic
    # quantization; bf16 matmuls in decoding (where the hardware has bf16).
    supports_int8: ClassVar[bool] = False
    supports_bf16: ClassVar[bool] = False
    # Whether a training step may leave some parameters without a gradient (an adaptive
    # softmax's rare-word clusters): data-parallel training then has DDP look for them
    # at every step. False only where every step trains every parameter.
    unused_parameters: ClassVar[bool] = True

    def config_from_dict(self, data: dict[str, Any]) -> ConfigT:
        config: ConfigT = from_dict(self.config_class, data)
        return config

    # ------------------------------------------------------------------ data

    @abstractmethod
    def read_split(self, config: ConfigT, location: str, role: str) -> list[Any]:
        """The examples at ``location`` (a file or prefix); ``role`` is train, dev, test (the
        run's test split) or evaluate (other labelled data given to ``evaluate``)."""

    def prepare_examples(
        self, config: ConfigT, examples: list[Any], role: str, log: Log
    ) -> list[Any]:
        """What reading could not do before the dev split is held out (speech computes
        features here, and speed-perturbed copies of the training utterances)."""
        return examples

    @abstractmethod
    def fit_assets(self, config: ConfigT, train: list[Any], workdir: Path) -> AssetsT:
        """Tokenizers, vocabularies, labels... fitted on the training examples; files
        they need (a SentencePiece model) may be written to ``workdir``."""

    @abstractmethod
    def load_assets(self, directory: Path) -> AssetsT:
        """The assets saved in a run directory by ``assets.save``."""

    @abstractmethod
    def encode(self, config: ConfigT, assets: AssetsT, examples: list[Any], role: str) -> SplitT:
        """Examples as model inputs (token ids, features)."""

    def describe(self, prepared: Prepared[AssetsT, Any]) -> str:
        """One log line about the prepared data."""
        return f"{len(prepared.train)} training examples, {len(prepared.dev)} dev"

    # ------------------------------------------------------------------ model and training

    @abstractmethod
    def build_model(self, config: ConfigT, assets: AssetsT) -> nn.Module:
        """A freshly initialised model."""

    def initialise(self, model: nn.Module, config: ConfigT, assets: AssetsT, log: Log) -> None:
        """Copy pretrained weights into a new model (before its first step)."""

    @abstractmethod
    def metric(self, config: ConfigT) -> Metric:
        """The dev metric that selects the best checkpoint."""

    @abstractmethod
    def lengths(self, split: SplitT) -> list[int]:
        """The padded length every training example costs in a batch."""

    @abstractmethod
    def loss(
        self, model: nn.Module, config: ConfigT, split: SplitT, indices: list[int], device: Any
    ) -> LossOutput:
        """The training loss of the examples ``indices`` of ``split``."""

    def warnings(self, config: ConfigT, results: dict[str, Any]) -> list[str]:
        """What a finished run's scores (``dev_...``, ``test_...``) say is wrong with the
        model beyond its metric; logged after training as ``warning:`` lines."""
        return []

    def dev_scores(self, trained: TrainedModel, split: SplitT) -> dict[str, float]:
        """Dev metrics during training (by default what :meth:`TrainedModel.score` gives)."""
        return trained.score(split)

    def training(self, trained: TrainedModel, prepared: Prepared[AssetsT, SplitT]) -> TaskTraining:
        """What the generic trainer asks for: batches, loss, dev metrics."""
        return TaskTraining(self, trained, prepared)


class TaskTraining:
    """Adapts a :class:`Task` to :class:`attnrnn.training.trainer.TrainingTask`."""

    def __init__(self, task: Task, trained: TrainedModel, prepared: Prepared) -> None:
        self.task = task
        self.trained = trained
        self.prepared = prepared
        # bf16 on the CPU: batched by lengths rounded as the batches are padded (few shapes)
        multiple = shape_multiple(trained.config.trainer.precision, trained.device)
        self.lengths = [round_up(length, multiple) for length in task.lengths(prepared.train)]
        self.unused_parameters = task.unused_parameters

    def train_batches(self, epoch: int, group: int = 1) -> list[list[int]]:
        trainer = self.trained.config.trainer
        return make_batches(
            self.lengths,
            trainer.batch_tokens,
            trainer.max_batch_size,
            shuffle=True,
            seed=trainer.seed,
            epoch=epoch,
            group=group,
        )

    def compute_loss(self, model: nn.Module, indices: list[int]) -> LossOutput:
        trained = self.trained
        return self.task.loss(model, trained.config, self.prepared.train, indices, trained.device)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return self.task.dev_scores(self.trained, self.prepared.dev)


class TrainedModel(ABC, Generic[ConfigT, AssetsT]):
    """A trained model with what it needs to be used: configuration, assets, device.

    Made by :func:`attnrnn.load` (or by training, to score dev). Calls from several
    threads are safe: they take turns (one lock per model); for parallel inference
    use processes.

    Subclasses implement :meth:`predict` (named after the task: ``translate``,
    ``transcribe``...), :meth:`score` and :meth:`explain`, and say how the CLI writes
    a result (:meth:`record`, :meth:`line`).
    """

    def __init__(
        self,
        task: Task,
        config: ConfigT,
        assets: AssetsT,
        model: nn.Module,
        device: torch.device,
        directory: Path | None = None,
        info: dict[str, Any] | None = None,
        precision: str = "fp32",
    ) -> None:
        self.task = task
        self.config = config
        self.assets = assets
        self.model = model
        self.device = device
        # the matmul precision of inference: fp32, or bf16 (tasks that support it)
        self.precision = precision
        self.directory = directory
        # run.json: the attnrnn version that wrote the run, the working directory
        # its relative data paths are relative to.
        self.info = info or {}
        self.lock = threading.RLock()
        # progress(total, description) -> a context giving advance(count); silent here.
        self.progress: ProgressFactory = silent_progress

    def __repr__(self) -> str:
        where = f" from {self.directory}" if self.directory else ""
        return f"<{type(self).__name__} ({self.task.name}){where} on {self.device}>"

    # ------------------------------------------------------------------ use

    @abstractmethod
    def predict(self, inputs: Sequence[Any], **options: Any) -> list[Any]:
        """One result per input, in order."""

    @abstractmethod
    def score(self, split: Any, **options: Any) -> dict[str, Any]:
        """Metrics of the model on an encoded, labelled split."""

    @abstractmethod
    def explain(
        self, inputs: Any, output: str | Path | None = None, color: bool = False, **options: Any
    ) -> Explanation:
        """Predict ``inputs`` (one or a list), describe what the attention picked, and
        write pictures to ``output`` when given."""

    def evaluate(self, data: str | None = None, **options: Any) -> dict[str, Any]:
        """Metrics on a labelled file read like the training data (default: the run's
        test split). Relative paths recorded in the run resolve against the folder the
        run was trained in."""
        location, role, examples = self.labelled_examples(data, "evaluate")
        split = self.task.encode(self.config, self.assets, examples, role)
        with self.lock:
            scores = self.score(split, **options)
        return {"data": location, "examples": len(examples), **scores}

    def labelled_examples(self, data: str | None, command: str) -> tuple[str, str, list[Any]]:
        """Read labelled ``data`` like the training data (default: the run's test split),
        for ``command`` (named in the error when there is nothing to read).

        Returns the location read, the role it was read in (``test``: the run's own test
        split; ``evaluate``: other labelled data) and the prepared examples.
        """
        location = data if data is not None else self.config.data.test
        if not location:
            raise ConfigError(
                f"{self.name}: the run has no test split; pass the labelled data "
                f"(attnrnn {command} RUN --data FILE)"
            )
        if data is None:
            location = self.resolve(location)
        role = "test" if data is None or data == self.config.data.test else "evaluate"
        with text_encoding(data_encoding(self.config)):
            examples = self.task.read_split(self.config, location, role)
        examples = self.task.prepare_examples(self.config, examples, role, lambda message: None)
        return location, role, examples

    def write_explorer(self, folder: Path, records: Sequence[dict[str, Any]]) -> Path:
        """``folder/explain.html``: the interactive attention explorer of these result
        records (:func:`attnrnn.explorer.write_explorer_html`), one self-contained file."""
        from attnrnn.explorer import write_explorer_html

        title = f"attnrnn: {self.name}"
        return write_explorer_html(folder / "explain.html", self.task.name, list(records), title)

    # ------------------------------------------------------------------ the CLI

    def parse_input(self, line: str, options: dict[str, Any]) -> Any:
        """One input from one line of the CLI's input (default: the line's text)."""
        return line

    @abstractmethod
    def record(self, result: Any) -> dict[str, Any]:
        """A result as a JSON object (``--json``): with tokens and attention."""

    def line(self, result: Any) -> str:
        """A result as one line of text (the CLI's default output)."""
        import json

        return json.dumps(self.record(result), ensure_ascii=False)

    # ------------------------------------------------------------------ helpers

    @property
    def name(self) -> str:
        return str(self.directory) if self.directory else self.task.name

    def resolve(self, location: str) -> str:
        """A data path of the run's configuration, as it resolves from here."""
        path = Path(location)
        base = self.info.get("working_directory")
        if path.is_absolute() or path.exists() or not base:
            return location
        recorded = Path(base) / path
        prefix_exists = any(recorded.parent.glob(recorded.name + ".*"))
        return str(recorded) if recorded.exists() or prefix_exists else location

    def batched(
        self,
        lengths: Sequence[int],
        run_batch: Callable[[list[int]], Sequence[R]],
        rows_per_input: int = 1,
        description: str = "",
    ) -> list[R]:
        """The one batched inference loop of every task: inputs sorted by length, grouped
        into batches under ``inference.batch_tokens`` (a beam of K counts each input K
        times), ``run_batch(indices)`` called on each, results back in input order.

        Runs without gradients, the model in eval mode, under the model's lock, with a
        progress bar when :attr:`progress` is set (the CLI sets it).
        """
        inference = self.config.inference
        budget = max(inference.batch_tokens // max(rows_per_input, 1), 1)
        results: list[Any] = [None] * len(lengths)
        with self.lock, torch.no_grad(), self.progress(len(lengths), description) as advance:
            self.model.eval()
            for indices in make_batches(lengths, budget, inference.max_batch_size):
                for index, result in zip(indices, run_batch(indices), strict=True):
                    results[index] = result
                advance(len(indices))
        return results


def data_encoding(config: Any) -> str:
    """The encoding of a run's text files: its ``data.encoding`` (tasks whose data section
    has none read UTF-8)."""
    return str(getattr(config.data, "encoding", "utf-8"))


def as_list(inputs: Any) -> tuple[list[Any], bool]:
    """``inputs`` as a list, and whether one input (not a list) was given."""
    if isinstance(inputs, str | Path) or not isinstance(inputs, Sequence):
        return [inputs], True
    return list(inputs), False


def output_folder(output: str | Path | None) -> Path | None:
    if output is None:
        return None
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
