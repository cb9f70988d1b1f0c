"""A new task is one module and one registry line: this file is that module.

"Loudest digit": a line of digits is labelled ``high`` when its largest digit is 5
or more, else ``low``; the attention should find the largest digit. The test
registers the task and uses it through the CLI and the Python API like any
built-in task.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

import attnrnn
from attnrnn.cli import main
from attnrnn.config import InferenceConfig, OptimizerConfig, TrainerConfig
from attnrnn.data.batching import pad_sequences
from attnrnn.errors import DataError
from attnrnn.nn import AttentionPooling, RNNEncoder, lengths_to_mask
from attnrnn.tasks import TASKS
from attnrnn.tasks.base import Explanation, Metric, Option, Task, TrainedModel, as_list
from attnrnn.training.files import write_json_atomic
from attnrnn.training.trainer import LossOutput

LABELS = ("low", "high")


@dataclass(frozen=True)
class DigitsData:
    train: str
    dev: str | None = None
    test: str | None = None
    dev_fraction: float = 0.1


@dataclass(frozen=True)
class DigitsConfig:
    data: DigitsData
    task: Literal["digits"] = "digits"
    hidden_size: int = 16
    optimizer: OptimizerConfig = OptimizerConfig(learning_rate=0.02, warmup_steps=5)
    trainer: TrainerConfig = TrainerConfig(
        epochs=15, batch_tokens=800, progress=False, num_threads=1
    )
    inference: InferenceConfig = InferenceConfig()


class DigitsModel(nn.Module):
    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(11, hidden_size, padding_idx=10)
        self.encoder = RNNEncoder(hidden_size, hidden_size, bidirectional=False)
        self.pooling = AttentionPooling(hidden_size, hidden_size)
        self.output = nn.Linear(hidden_size, len(LABELS))

    def forward(self, digits: torch.Tensor, lengths: torch.Tensor) -> tuple[Any, Any]:
        states = self.encoder(self.embedding(digits), lengths).outputs  # (B, S, H)
        pooled = self.pooling(states, lengths_to_mask(lengths, digits.size(1)))
        return self.output(pooled.pooled), pooled.weights  # (B, 2), (B, 1, S)


@dataclass
class Loudest:
    digits: str
    label: str
    attention: list[float]


@dataclass
class Assets:
    labels: list[str]

    def save(self, directory: Path) -> None:
        write_json_atomic(directory / "labels.json", self.labels)


def encode_digits(text: str) -> list[int]:
    return [int(character) for character in text if character.isdigit()]


class DigitsPredictor(TrainedModel):
    def run(self, inputs: list[list[int]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        def batch(indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
            digits, lengths = pad_sequences([inputs[i] for i in indices], 10)
            logits, weights = self.model(digits, lengths)
            return [(logits[row], weights[row, 0, : lengths[row]]) for row in range(len(indices))]

        return self.batched([len(x) for x in inputs], batch)

    def predict(self, inputs: Any, **options: Any) -> list[Loudest]:
        texts = list(inputs)
        answers = self.run([encode_digits(text) for text in texts])
        return [
            Loudest(text, LABELS[int(logits.argmax())], weights.tolist())
            for text, (logits, weights) in zip(texts, answers, strict=True)
        ]

    def score(self, split: Any, **options: Any) -> dict[str, float]:
        inputs, labels = split
        answers = self.run(inputs)
        right = sum(
            int(logits.argmax()) == label
            for (logits, _), label in zip(answers, labels, strict=True)
        )
        return {"accuracy": right / len(labels)}

    def explain(
        self, inputs: Any, output: Any = None, color: bool = False, **options: Any
    ) -> Explanation:
        texts, _ = as_list(inputs)
        results = self.predict(texts)
        lines = []
        for result in results:
            top = max(range(len(result.attention)), key=result.attention.__getitem__)
            lines.append(f"{result.label}: attended to {result.digits[top]}")
        files = []
        if output is not None:
            Path(output).mkdir(parents=True, exist_ok=True)
            files = [Path(output) / "digits.json"]
            files[0].write_text(json.dumps([r.attention for r in results]))
        return Explanation("\n".join(lines), files, results)

    def record(self, result: Loudest) -> dict[str, Any]:
        return {"label": result.label, "attention": result.attention}

    def line(self, result: Loudest) -> str:
        return result.label

    def parse_input(self, line: str, options: dict[str, Any]) -> str:
        if not encode_digits(line):
            raise DataError("a line of digits is needed")
        return line


class DigitsTask(Task):
    name = "digits"
    config_class = DigitsConfig
    model_class = DigitsPredictor
    explain_files = "digits.json (the attention weights)"
    options = (Option(("--shout",), "shout", "a task option", action="store_true"),)

    def read_split(self, config: Any, location: str, role: str) -> list[tuple[str, str]]:
        rows = Path(location).read_text().splitlines()
        return [tuple(row.split("\t")) for row in rows]  # type: ignore[misc]

    def fit_assets(self, config: Any, train: list[Any], workdir: Path) -> Assets:
        return Assets(sorted({label for _, label in train}))

    def load_assets(self, directory: Path) -> Assets:
        return Assets(json.loads((directory / "labels.json").read_text()))

    def encode(self, config: Any, assets: Assets, examples: list[Any], role: str) -> Any:
        return [encode_digits(text) for text, _ in examples], [
            LABELS.index(label) for _, label in examples
        ]

    def describe(self, prepared: Any) -> str:
        return f"{len(prepared.train[0])} training lines"

    def build_model(self, config: Any, assets: Assets) -> nn.Module:
        return DigitsModel(config.hidden_size)

    def metric(self, config: Any) -> Metric:
        return Metric("accuracy", higher_is_better=True)

    def lengths(self, split: Any) -> list[int]:
        return [len(digits) for digits in split[0]]

    def loss(self, model: Any, config: Any, split: Any, indices: list[int], device: Any):
        digits, lengths = pad_sequences([split[0][i] for i in indices], 10)
        logits, _ = model(digits, lengths)
        labels = torch.tensor([split[1][i] for i in indices])
        return LossOutput(F.cross_entropy(logits, labels), len(indices))


def write_digits(path: Path, count: int, seed: int) -> Path:
    generator = random.Random(seed)
    lines = []
    for _ in range(count):
        digits = "".join(str(generator.randrange(5)) for _ in range(generator.randrange(3, 9)))
        if generator.random() < 0.5:
            position = generator.randrange(len(digits))
            digits = digits[:position] + str(generator.randrange(5, 10)) + digits[position + 1 :]
        lines.append(f"{digits}\t{'high' if max(digits) >= '5' else 'low'}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def digits_task(monkeypatch):
    monkeypatch.setitem(TASKS, "digits", DigitsTask())  # the one registry line


def test_a_registered_task_trains_evaluates_predicts_and_explains_through_the_cli(
    tmp_path, capsys, digits_task, monkeypatch
):
    config = {
        "task": "digits",
        "data": {
            "train": str(write_digits(tmp_path / "train.tsv", 600, 1)),
            "test": str(write_digits(tmp_path / "test.tsv", 200, 2)),
        },
    }
    (tmp_path / "digits.yaml").write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "digits.yaml"), "-o", str(run)]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["test_accuracy"] > 0.9, results
    assert json.loads((run / "run.json").read_text())["task"] == "digits"

    assert main(["evaluate", str(run)]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == results["test_accuracy"]

    inputs = tmp_path / "inputs.txt"
    inputs.write_text("1234\n\n0109\n")
    assert main(["predict", str(run), str(inputs), "--shout"]) == 0
    assert capsys.readouterr().out.splitlines() == ["low", "", "high"]
    assert main(["predict", str(run), str(inputs), "--json"]) == 0
    records = [json.loads(line) if line else None for line in capsys.readouterr().out.splitlines()]
    assert records[0]["label"] == "low" and records[1] is None
    assert len(records[2]["attention"]) == 4

    inputs.write_text("123\nabc\n")
    assert main(["predict", str(run), str(inputs)]) == 2
    assert f"{inputs}:2: a line of digits is needed" in capsys.readouterr().err

    assert main(["explain", str(run), "0190", "-o", str(tmp_path / "pictures")]) == 0
    out = capsys.readouterr().out
    assert "high: attended to 9" in out and "digits.json" in out

    assert main(["translate", str(run), str(inputs)]) == 2
    assert "is a digits run; use `attnrnn predict`" in capsys.readouterr().err

    model = attnrnn.load(run)
    assert [r.label for r in model.predict(["0000", "0600"])] == ["low", "high"]
