"""A generic training loop that knows nothing about the model it trains.

The task supplies three things (:class:`TrainingTask`): the batches of an
epoch, ``compute_loss(model, batch)``, and ``evaluate(model)`` on the dev set.
The trainer does the rest: AdamW with warmup and decay, gradient clipping,
evaluation, early stopping, ``best`` and ``last`` checkpoints, exact resume,
metrics.csv, TensorBoard (when installed) and a progress bar.

Resume is exact: the batch order of an epoch is a function of (seed, epoch),
the checkpoint records how many batches of the current epoch were done, and
RNG and optimizer states are saved with it.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from attnrnn.config import OptimizerConfig, TrainerConfig
from attnrnn.console import format_duration
from attnrnn.training import checkpoint
from attnrnn.training.optim import (
    PlateauState,
    build_optimizer,
    learning_rate_at,
    set_learning_rate,
    update_plateau,
)


@dataclass
class LossOutput:
    """What a task's ``compute_loss`` returns: the loss to minimise and the
    number of units (tokens, examples, frames) it covers, for throughput."""

    loss: torch.Tensor
    units: int


class TrainingTask(Protocol):
    def train_batches(self, epoch: int) -> list[Any]: ...

    def compute_loss(self, model: Any, batch: Any) -> LossOutput: ...

    def evaluate(self, model: Any) -> dict[str, float]: ...


@dataclass
class TrainerState:
    """Counters saved with every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_metric: float | None = None
    best_step: int = 0
    evaluations_without_gain: int = 0
    elapsed_seconds: float = 0.0
    units: int = 0  # tokens / examples / frames trained on so far
    stop_reason: str | None = None  # "epochs", "budget" or "early_stopping"
    plateau: dict[str, Any] = field(default_factory=lambda: asdict(PlateauState()))


class Trainer:
    """Train ``model`` on ``task``, writing checkpoints and logs under ``run_directory``.

    Args:
        metric: the dev metric that selects the best checkpoint and stops early.
        higher_is_better: direction of ``metric``.
    """

    def __init__(
        self,
        model: nn.Module,
        task: TrainingTask,
        optimizer_config: OptimizerConfig,
        trainer_config: TrainerConfig,
        run_directory: Path,
        metric: str,
        higher_is_better: bool = True,
    ) -> None:
        self.model = model
        self.task = task
        self.optimizer_config = optimizer_config
        self.config = trainer_config
        self.run_directory = Path(run_directory)
        self.metric = metric
        self.higher_is_better = higher_is_better
        self.optimizer = build_optimizer(model, optimizer_config)
        self.state = TrainerState()
        self._train_loss_sum = 0.0
        self._train_loss_count = 0
        self._tensorboard = _open_tensorboard(self.run_directory / "tensorboard")
        self._session = (time.monotonic(), 0)  # (start, step) of this process's training

    # ------------------------------------------------------------------ public

    def resume(self) -> None:
        """Continue from the run directory's ``last`` checkpoint."""
        saved = checkpoint.load_training_state(
            self.run_directory / "last", self.model, self.optimizer
        )
        self.state = TrainerState(**saved)
        if self.state.stop_reason in ("epochs", "budget"):
            self.state.stop_reason = None  # the budget may have been raised since

    def train(self) -> TrainerState:
        """Run until the epochs, ``max_steps`` or ``max_minutes`` are spent, or early stop."""
        config = self.config
        started = time.monotonic() - self.state.elapsed_seconds
        total_steps = self._estimate_total_steps()
        self._session = (time.monotonic(), self.state.step)
        while self.state.epoch < config.epochs and self.state.stop_reason is None:
            batches = self.task.train_batches(self.state.epoch)
            progress = tqdm(
                total=len(batches),
                initial=self.state.batch_in_epoch,
                desc=f"epoch {self.state.epoch + 1}/{config.epochs}",
                disable=True if not config.progress else None,  # None: off when not a TTY
                leave=False,
                dynamic_ncols=True,
            )
            for position in range(self.state.batch_in_epoch, len(batches)):
                units_per_second = self._train_step(batches[position], total_steps, started)
                self.state.batch_in_epoch = position + 1
                progress.update(1)
                eta = self._eta(total_steps, started)
                progress.set_postfix(
                    loss=f"{self._mean_train_loss():.4f}",
                    units_s=f"{units_per_second:.0f}",
                    run_eta=format_duration(eta) if eta is not None else "?",
                )
                if progress.disable and config.progress:  # not a terminal: plain log lines
                    self._log_progress(len(batches), units_per_second, started, eta)
                if config.eval_every_steps and self.state.step % config.eval_every_steps == 0:
                    self._validate(started)
                if self.state.stop_reason is None and self._out_of_budget(started):
                    self.state.stop_reason = "budget"
                if self.state.stop_reason is not None:
                    break
            progress.close()
            if self.state.stop_reason is not None:
                break
            self.state.epoch += 1
            self.state.batch_in_epoch = 0
            if not config.eval_every_steps:
                self._validate(started)
        self.state.stop_reason = self.state.stop_reason or "epochs"
        if self.state.best_metric is None or self._train_loss_count:
            self._validate(started)
        self._save_last(started)
        if self._tensorboard is not None:
            self._tensorboard.close()
        return self.state

    # ------------------------------------------------------------------ steps

    def _train_step(self, batch: Any, total_steps: int | None, started: float) -> float:
        step_started = time.perf_counter()
        plateau = PlateauState(**self.state.plateau)
        learning_rate = learning_rate_at(
            self.state.step, total_steps, self.optimizer_config, plateau
        )
        set_learning_rate(self.optimizer, learning_rate)
        self.model.train()
        with autocast(self.model, self.config.precision):
            output = self.task.compute_loss(self.model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        if self.optimizer_config.clip_norm:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.optimizer_config.clip_norm)
        self.optimizer.step()
        self.state.step += 1
        self.state.units += output.units
        loss = float(output.loss.detach())
        self._train_loss_sum += loss
        self._train_loss_count += 1
        if self._tensorboard is not None and self.state.step % self.config.log_every_steps == 0:
            self._tensorboard.add_scalar("train/loss", loss, self.state.step)
            self._tensorboard.add_scalar("train/learning_rate", learning_rate, self.state.step)
        return output.units / max(time.perf_counter() - step_started, 1e-9)

    def _validate(self, started: float) -> None:
        metrics = self.task.evaluate(self.model)
        if self.metric not in metrics:
            raise KeyError(f"evaluate() returned no {self.metric!r}: {sorted(metrics)}")
        value = metrics[self.metric]
        best = self.state.best_metric
        improved = best is None or (value > best if self.higher_is_better else value < best)
        if improved:
            self.state.best_metric = value
            self.state.best_step = self.state.step
            self.state.evaluations_without_gain = 0
            checkpoint.save_checkpoint(
                self.run_directory / "best", self.model, state={"metrics": metrics}
            )
        else:
            self.state.evaluations_without_gain += 1
        plateau = PlateauState(**self.state.plateau)
        update_plateau(plateau, improved, self.optimizer_config, self.state.step)
        self.state.plateau = asdict(plateau)
        patience = self.config.early_stopping_patience
        if patience is not None and self.state.evaluations_without_gain >= patience:
            self.state.stop_reason = "early_stopping"
        self._log_metrics(metrics, started)
        self._save_last(started)

    def _save_last(self, started: float) -> None:
        self.state.elapsed_seconds = time.monotonic() - started
        checkpoint.save_checkpoint(
            self.run_directory / "last", self.model, self.optimizer, asdict(self.state)
        )

    # ------------------------------------------------------------------ bookkeeping

    def _mean_train_loss(self) -> float:
        return self._train_loss_sum / max(self._train_loss_count, 1)

    def _log_progress(
        self, batches: int, units_per_second: float, started: float, eta: float | None
    ) -> None:
        if self.state.step % self.config.log_every_steps:
            return
        elapsed = time.monotonic() - started
        remaining = f", run ETA {format_duration(eta)}" if eta is not None else ""
        print(
            f"step {self.state.step} epoch {self.state.epoch + 1} "
            f"batch {self.state.batch_in_epoch}/{batches}: loss {self._mean_train_loss():.4f}, "
            f"{units_per_second:.0f} units/s, {elapsed / 60:.1f} min{remaining}",
            file=sys.stderr,
            flush=True,
        )

    def _eta(self, total_steps: int | None, started: float) -> float | None:
        """Seconds until the whole run ends at this session's pace: the remaining steps
        of all epochs (or ``max_steps``), capped by ``max_minutes``; evaluation time is
        included in the pace. Early stopping may end it sooner."""
        session_started, first_step = self._session
        done = self.state.step - first_step
        if total_steps is None or done <= 0:
            return None
        seconds_per_step = (time.monotonic() - session_started) / done
        eta = max(total_steps - self.state.step, 0) * seconds_per_step
        if self.config.max_minutes is not None:
            eta = min(eta, max(self.config.max_minutes * 60 - (time.monotonic() - started), 0))
        return eta

    def _out_of_budget(self, started: float) -> bool:
        config = self.config
        if config.max_steps is not None and self.state.step >= config.max_steps:
            return True
        minutes = (time.monotonic() - started) / 60.0
        return config.max_minutes is not None and minutes >= config.max_minutes

    def _estimate_total_steps(self) -> int | None:
        per_epoch = len(self.task.train_batches(0))
        total = per_epoch * self.config.epochs
        if self.config.max_steps is not None:
            total = min(total, self.config.max_steps)
        return total or None

    def _log_metrics(self, metrics: dict[str, float], started: float) -> None:
        row = {
            "step": self.state.step,
            "epoch": self.state.epoch,
            "elapsed_seconds": round(time.monotonic() - started, 2),
            "learning_rate": self.optimizer.param_groups[0]["lr"],
            "train_loss": self._mean_train_loss() if self._train_loss_count else math.nan,
            **{f"dev_{name}": value for name, value in sorted(metrics.items())},
        }
        self._train_loss_sum, self._train_loss_count = 0.0, 0
        path = self.run_directory / "metrics.csv"
        new_file = not path.exists()
        with path.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new_file:
                writer.writeheader()
            writer.writerow(row)
        if self._tensorboard is not None:
            for name, value in metrics.items():
                self._tensorboard.add_scalar(f"dev/{name}", value, self.state.step)
        if self.config.progress:
            shown = " ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
            tqdm.write(f"step {self.state.step}: dev {shown}", file=sys.stderr)


def _open_tensorboard(directory: Path) -> Any:
    """A TensorBoard writer when the tensorboard package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(directory))


def autocast(model: nn.Module, precision: str) -> torch.autocast:
    """Mixed precision for the forward pass: bf16 matmuls where the device supports them.

    Parameters, gradients and the optimizer stay fp32; only the forward pass
    (and so its backward) runs the autocast-listed ops (linear, matmul, RNN
    layers) in bfloat16.
    """
    parameter = next(model.parameters(), None)
    device_type = parameter.device.type if parameter is not None else "cpu"
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16")
