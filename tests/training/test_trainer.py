"""The generic trainer: learning, checkpoints, exact resume."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from safetensors.torch import load_file

import attnrnn
from attnrnn.config import OptimizerConfig, TrainerConfig, from_dict
from attnrnn.errors import ConfigError
from attnrnn.tasks import runs
from attnrnn.tasks.classification import ClassificationRunConfig
from attnrnn.training.averaging import WeightAverage
from attnrnn.training.optim import PlateauState, learning_rate_at, update_plateau
from attnrnn.training.runtime import native_bf16
from attnrnn.training.trainer import LossOutput, Trainer


def quiet(message: str) -> None:
    pass


def test_tiny_synthetic_task_reaches_95_percent(tmp_path, review_files, tiny_config):
    config = from_dict(ClassificationRunConfig, tiny_config(review_files, epochs=12))
    results = runs.train(config, tmp_path / "run", log=quiet)
    assert results["test_accuracy"] >= 0.95
    for name in (
        "config.yaml",
        "tokenizer.json",
        "vocab.json",
        "labels.json",
        "metrics.csv",
        "best/model.safetensors",
        "last/model.safetensors",
        "last/optimizer.safetensors",
        "last/state.json",
        "results.json",
    ):
        assert (tmp_path / "run" / name).is_file(), name
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert "dev_accuracy" in header and "train_loss" in header


def test_resume_continues_exactly(tmp_path, review_files, tiny_config):
    straight = from_dict(ClassificationRunConfig, tiny_config(review_files, epochs=2))
    runs.train(straight, tmp_path / "straight", log=quiet)
    # The same run, stopped mid-epoch after 7 updates, then resumed to the end.
    stopped = from_dict(ClassificationRunConfig, tiny_config(review_files, epochs=2, max_steps=7))
    runs.train(stopped, tmp_path / "resumed", log=quiet)
    state = json.loads((tmp_path / "resumed" / "last" / "state.json").read_text())["state"]
    assert state["step"] == 7 and state["batch_in_epoch"] == 7
    runs.train(straight, tmp_path / "resumed", resume=True, log=quiet)
    a = load_file(str(tmp_path / "straight" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path, review_files, tiny_config):
    config = from_dict(ClassificationRunConfig, tiny_config(review_files, epochs=1))
    runs.train(config, tmp_path / "run", log=quiet)
    texts = ["the movie was not good", "i saw it and the plot was superb"]
    first = attnrnn.load(tmp_path / "run").predict(texts)
    second = attnrnn.load(tmp_path / "run").predict(texts)
    for one, two in zip(first, second, strict=True):
        assert one.probabilities == two.probabilities
        assert one.attention == two.attention


def test_existing_run_directory_is_not_overwritten(tmp_path, review_files, tiny_config):
    config = from_dict(ClassificationRunConfig, tiny_config(review_files, max_steps=2))
    runs.train(config, tmp_path / "run", log=quiet)
    with pytest.raises(Exception, match="already exists"):
        runs.train(config, tmp_path / "run", log=quiet)


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine", "plateau"])
def test_schedule_warms_up_then_decays(schedule):
    config = OptimizerConfig(
        learning_rate=1.0, warmup_steps=10, schedule=schedule, min_learning_rate_ratio=0.1
    )
    rates = [learning_rate_at(step, 100, config, PlateauState()) for step in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    if schedule in ("linear", "cosine"):
        assert rates[-1] < 0.15 and all(a >= b for a, b in itertools.pairwise(rates[10:]))
    else:
        assert rates[-1] == pytest.approx(1.0)


def test_plateau_decays_only_after_warmup_and_start_step():
    config = OptimizerConfig(
        warmup_steps=10, schedule="plateau", plateau_patience=2, plateau_start_step=50
    )
    plateau = PlateauState()
    for step in (5, 20, 30, 40):  # a model that has not started to learn yet
        update_plateau(plateau, improved=False, config=config, step=step)
    assert plateau.factor == 1.0 and plateau.bad_evaluations == 0
    update_plateau(plateau, improved=False, config=config, step=50)
    assert plateau.factor == 1.0 and plateau.bad_evaluations == 1
    update_plateau(plateau, improved=False, config=config, step=60)
    assert plateau.factor == 0.5 and plateau.bad_evaluations == 0
    update_plateau(plateau, improved=True, config=config, step=70)
    update_plateau(plateau, improved=False, config=config, step=80)
    assert plateau.factor == 0.5 and plateau.bad_evaluations == 1


def test_progress_is_logged_as_lines_when_not_a_terminal(
    tmp_path, review_files, tiny_config, capsys
):
    config = from_dict(
        ClassificationRunConfig,
        tiny_config(review_files, max_steps=4, progress=True, log_every_steps=2),
    )
    runs.train(config, tmp_path / "run", log=quiet)
    err = capsys.readouterr().err
    assert "step 2 epoch 1 batch 2/" in err and "units/s" in err
    assert "step 4: dev accuracy=" in err


class LinearTask:
    """A regression task that records the dtype its forward pass computed in."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.inputs = torch.randn(64, 8, generator=generator)
        self.targets = self.inputs @ torch.randn(8, 1, generator=generator)
        self.dtypes: list[torch.dtype] = []

    def train_batches(self, epoch: int, group: int = 1) -> list[list[int]]:
        return [list(range(start, start + 16)) for start in range(0, 64, 16)]

    def compute_loss(self, model, batch):
        predictions = model(self.inputs[batch])
        self.dtypes.append(predictions.dtype)
        loss = torch.nn.functional.mse_loss(predictions.float(), self.targets[batch])
        return LossOutput(loss, len(batch))

    def evaluate(self, model) -> dict[str, float]:
        with torch.no_grad():
            predictions = model(self.inputs)
        return {"mse": float(torch.nn.functional.mse_loss(predictions, self.targets))}


# bf16 where the CPU computes it natively (AVX512-BF16, AMX); fp32 elsewhere (emulated
# bf16 would be tens of times slower), which Trainer warns about.
BF16 = torch.bfloat16 if native_bf16(torch.device("cpu")) else torch.float32


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32), ("bf16", BF16)])
def test_precision_sets_the_forward_dtype_and_keeps_fp32_weights(tmp_path, precision, dtype):
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    task = LinearTask()
    trainer = Trainer(
        model,
        task,
        OptimizerConfig(learning_rate=0.05, warmup_steps=0, schedule="constant"),
        TrainerConfig(epochs=30, progress=False, early_stopping_patience=None, precision=precision),
        tmp_path / "run",
        metric="mse",
        higher_is_better=False,
    )
    trainer.train()
    assert set(task.dtypes) == {dtype}
    assert model.weight.dtype == torch.float32
    assert task.evaluate(model)["mse"] < 0.05  # it learned, in either precision


class StalledTask(LinearTask):
    """LinearTask whose dev score never improves after the first check."""

    def __init__(self) -> None:
        super().__init__()
        self.checks: list[int] = []

    def evaluate(self, model) -> dict[str, float]:
        self.checks.append(len(self.dtypes))  # forward passes so far = steps done
        return {"mse": 1.0}


def stalled_trainer(tmp_path, task, optimizer=None, **trainer) -> Trainer:
    settings = {"epochs": 50, "progress": False, "early_stopping_patience": 1, **trainer}
    return Trainer(
        torch.nn.Linear(8, 1),
        task,
        optimizer or OptimizerConfig(warmup_steps=0),
        TrainerConfig(**settings),
        tmp_path / "run",
        metric="mse",
        higher_is_better=False,
    )


def test_evals_per_epoch_spreads_the_dev_checks_over_each_epoch(tmp_path):
    task = StalledTask()  # 4 steps an epoch
    trainer = stalled_trainer(
        tmp_path, task, epochs=2, evals_per_epoch=2, early_stopping_patience=None
    )
    trainer.train()
    assert task.checks == [2, 4, 6, 8]
    with pytest.raises(ConfigError, match="eval_every_steps or evals_per_epoch"):
        TrainerConfig(eval_every_steps=10, evals_per_epoch=2)


def test_early_stopping_waits_for_warmup_and_a_minimum_of_dev_checks(tmp_path, capsys):
    task = StalledTask()  # one dev check an epoch (4 steps), never better than the first
    trainer = stalled_trainer(tmp_path, task, min_evaluations=3)
    trainer.train()
    assert task.checks == [4, 8, 12]  # patience 1, but not before the third check
    assert trainer.state.stop_reason == "early_stopping"
    message = capsys.readouterr().err
    assert "training stopped after 12 steps and 3 dev checks: early stopping" in message
    assert "best dev mse 1.0000 at step 4" in message
    # Checks during warmup (10 steps) never count as stalled, whatever their number.
    task = StalledTask()
    warm = OptimizerConfig(warmup_steps=10)
    stalled_trainer(tmp_path / "warm", task, warm, min_evaluations=0).train()
    assert task.checks == [4, 8, 12]  # 4 and 8 are inside the warmup; 12 is judged


def test_the_reason_training_stopped_is_logged(tmp_path, capsys):
    trainer = stalled_trainer(tmp_path, StalledTask(), max_steps=6, early_stopping_patience=None)
    trainer.train()
    assert "training stopped after 6 steps and 2 dev checks: trainer.max_steps (6) reached" in (
        capsys.readouterr().err
    )
    trainer = stalled_trainer(tmp_path / "b", StalledTask(), epochs=2, early_stopping_patience=None)
    trainer.train()
    assert "all 2 epochs (trainer.epochs) done" in capsys.readouterr().err


def test_warmup_ratio_sizes_the_warmup_by_the_run():
    config = OptimizerConfig(learning_rate=1.0, warmup_steps=500, warmup_ratio=0.1)
    plateau = PlateauState()
    for total in (200, 4000):  # a small and a large training set: a tenth of each run
        warmup = total // 10
        assert learning_rate_at(0, total, config, plateau) == pytest.approx(1 / warmup)
        assert learning_rate_at(warmup - 1, total, config, plateau) == pytest.approx(1.0)
        assert learning_rate_at(warmup, total, config, plateau) == pytest.approx(1.0)
    assert learning_rate_at(0, None, config, plateau) == pytest.approx(1 / 500)  # unknown total
    with pytest.raises(ConfigError, match="warmup_ratio"):
        OptimizerConfig(warmup_ratio=1.0)


# --------------------------------------------------------------------------- weight average


def test_the_weight_average_follows_its_formula_and_swaps_in_and_out():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model, 0.9)
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    average.update(1)  # d_1 = min(0.9, 2 / 11): the average moves most of the way
    d1 = 2 / 11
    expected = {name: start[name] + (1 - d1) * 1.0 for name in start}
    for name, value in zip(average.names, average.average, strict=True):
        torch.testing.assert_close(value, expected[name])
    assert average.decay_at(1000) == 0.9
    live = {name: p.detach().clone() for name, p in model.named_parameters()}
    with average.applied():
        for name, p in model.named_parameters():
            torch.testing.assert_close(p.detach(), expected[name])
    for name, p in model.named_parameters():  # the live weights are back
        assert torch.equal(p.detach(), live[name])
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, 1.0)
    with pytest.raises(ConfigError, match="ema_decay"):
        TrainerConfig(ema_decay=1.5)


def test_dev_checks_score_the_average_and_the_best_checkpoint_holds_it(
    tmp_path, review_files, tiny_config
):
    # One epoch, one dev check (at its end): the best checkpoint is the average then.
    config = from_dict(ClassificationRunConfig, tiny_config(review_files, epochs=1, ema_decay=0.9))
    runs.train(config, tmp_path / "run", log=quiet)
    best = load_file(str(tmp_path / "run" / "best" / "model.safetensors"))
    live = load_file(str(tmp_path / "run" / "last" / "model.safetensors"))
    saved = load_file(str(tmp_path / "run" / "last" / "optimizer.safetensors"))
    averaged = {key[len("average.") :]: value for key, value in saved.items() if "average." in key}
    assert averaged and set(averaged) <= set(best)
    for key, value in averaged.items():
        assert torch.equal(best[key], value)
    assert any(not torch.equal(live[key], best[key]) for key in averaged)


def test_resume_with_a_weight_average_continues_exactly(tmp_path, review_files, tiny_config):
    straight = from_dict(
        ClassificationRunConfig, tiny_config(review_files, epochs=2, ema_decay=0.9)
    )
    runs.train(straight, tmp_path / "straight", log=quiet)
    stopped = from_dict(
        ClassificationRunConfig, tiny_config(review_files, epochs=2, max_steps=7, ema_decay=0.9)
    )
    runs.train(stopped, tmp_path / "resumed", log=quiet)
    runs.train(straight, tmp_path / "resumed", resume=True, log=quiet)
    # the weights, and the optimizer file with the average (the stopped run's own last
    # dev check may have left another best checkpoint)
    for name in ("model", "optimizer"):
        a = load_file(str(tmp_path / "straight" / "last" / f"{name}.safetensors"))
        b = load_file(str(tmp_path / "resumed" / "last" / f"{name}.safetensors"))
        assert a.keys() == b.keys() and any(key.startswith("average.") for key in a) == (
            name == "optimizer"
        )
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
