"""A generic training loop that knows nothing about the model it trains.

The task supplies three things (:class:`TrainingTask`): the batches of an
epoch, ``compute_loss(model, batch)``, and ``evaluate(model)`` on the dev set.
The trainer does the rest: AdamW with warmup and decay, gradient clipping,
evaluation, early stopping, ``best`` and ``last`` checkpoints, exact resume,
metrics.csv, TensorBoard (when installed) and a progress bar.

Resume is exact: the batch order of an epoch is a function of (seed, epoch),
the checkpoint records how many batches of the current epoch were done, and
RNG and optimizer states are saved with it; metrics.csv keeps only the rows of
the steps the checkpoint covers.

SIGINT (Ctrl-C) and SIGTERM end training after the current step with a ``last``
checkpoint saved (a second Ctrl-C stops at once). A step whose loss or gradient
norm is not finite is skipped (the weights stay as they were);
``MAX_NON_FINITE_STEPS`` in a row end training with an error, the last good
checkpoint kept.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from attnrnn.config import OptimizerConfig, TrainerConfig
from attnrnn.console import format_duration
from attnrnn.errors import AttnrnnError, RunError
from attnrnn.training import checkpoint, files
from attnrnn.training.faults import crash_point
from attnrnn.training.optim import (
    PlateauState,
    build_optimizer,
    learning_rate_at,
    set_learning_rate,
    update_plateau,
)

MAX_NON_FINITE_STEPS = 5
METRICS_FILE = "metrics.csv"


class Interrupted(AttnrnnError):
    """Training stopped on SIGINT / SIGTERM after saving its ``last`` checkpoint."""


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
    train_loss_sum: float = 0.0  # training loss since the last evaluation (metrics.csv)
    train_loss_count: int = 0
    skipped_steps: int = 0  # steps skipped for a non-finite loss or gradient
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
        self._non_finite_in_a_row = 0
        self._stop_signal: int | None = None
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
        self._keep_metrics_up_to(self.state.step)

    def discard_metrics(self) -> None:
        """Start metrics.csv again (a run restarted from the beginning)."""
        self._keep_metrics_up_to(-1)

    def _keep_metrics_up_to(self, step: int) -> None:
        """Drop the metrics.csv rows of steps after ``step``: a run killed between
        writing a row and saving its checkpoint redoes those steps on resume."""
        path = self.run_directory / METRICS_FILE
        if not path.is_file():
            return
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines[1:] if int(line.split(",", 1)[0]) <= step]
        if not kept:
            path.unlink()
        elif len(kept) + 1 != len(lines):
            files.write_text_atomic(path, "".join(lines[:1] + kept))

    def train(self) -> TrainerState:
        """Run until the epochs, ``max_steps`` or ``max_minutes`` are spent, or early stop.

        Raises :class:`Interrupted` (after saving ``last``) on SIGINT / SIGTERM.
        """
        with self._stop_on_signals():
            return self._train()

    @contextlib.contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """While training (in the main thread), SIGINT and SIGTERM ask for a stop after
        the current step instead of killing the process mid-step."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(number: int, frame: Any) -> None:
            if self._stop_signal is not None and number == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: stop now
            self._stop_signal = number

        previous = {
            number: signal.signal(number, request_stop)
            for number in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _train(self) -> TrainerState:
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
                if config.max_steps is not None and self.state.step >= config.max_steps:
                    self.state.stop_reason = "budget"  # a resumed run with no step left
                    break
                units_per_second = self._train_step(batches[position], total_steps, started)
                self.state.batch_in_epoch = position + 1
                progress.update(1)
                if units_per_second is None:  # a non-finite step, skipped
                    if self._stop_signal is not None:
                        self._interrupt(started)
                    continue
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
                if self._stop_signal is not None:
                    self._interrupt(started)
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
        if self.state.best_metric is None or self.state.train_loss_count:
            self._validate(started)
        self._save_last(started)
        if self._tensorboard is not None:
            self._tensorboard.close()
        return self.state

    def _interrupt(self, started: float) -> None:
        self._save_last(started)
        name = signal.Signals(self._stop_signal or signal.SIGINT).name
        raise Interrupted(
            f"{name} at step {self.state.step}: saved {self.run_directory / 'last'}; continue "
            f"with: attnrnn train --resume {self.run_directory}"
        )

    # ------------------------------------------------------------------ steps

    def _train_step(self, batch: Any, total_steps: int | None, started: float) -> float | None:
        """One optimizer step; units per second, or None when the step was skipped."""
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
        loss = float(output.loss.detach())
        norm = math.nan
        if math.isfinite(loss):
            output.loss.backward()
            # The norm is computed anyway (clip_norm 0: an infinite bound clips nothing).
            bound = self.optimizer_config.clip_norm or math.inf
            norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), bound))
        if not math.isfinite(norm):
            self._skip_step(loss if not math.isfinite(loss) else norm, learning_rate)
            return None
        self._non_finite_in_a_row = 0
        self.optimizer.step()
        self.state.step += 1
        self.state.units += output.units
        self.state.train_loss_sum += loss
        self.state.train_loss_count += 1
        crash_point("after_step")
        if self._tensorboard is not None and self.state.step % self.config.log_every_steps == 0:
            self._tensorboard.add_scalar("train/loss", loss, self.state.step)
            self._tensorboard.add_scalar("train/learning_rate", learning_rate, self.state.step)
        return output.units / max(time.perf_counter() - step_started, 1e-9)

    def _skip_step(self, value: float, learning_rate: float) -> None:
        """Leave the weights as they are after a non-finite loss or gradient norm; too
        many in a row end training (the last good checkpoint stays)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.state.skipped_steps += 1
        self._non_finite_in_a_row += 1
        print(
            f"step {self.state.step + 1}: non-finite loss or gradient norm ({value}) at learning "
            f"rate {learning_rate:.3g}; step skipped",
            file=sys.stderr,
            flush=True,
        )
        if self._non_finite_in_a_row >= MAX_NON_FINITE_STEPS:
            raise RunError(
                f"training diverged: {MAX_NON_FINITE_STEPS} steps in a row with a non-finite "
                f"loss or gradient at step {self.state.step}; the last good checkpoint is in "
                f"{self.run_directory / 'last'} (try a lower optimizer.learning_rate)"
            )

    def _validate(self, started: float) -> None:
        metrics = self.task.evaluate(self.model)
        if self.metric not in metrics:
            raise KeyError(f"evaluate() returned no {self.metric!r}: {sorted(metrics)}")
        value = metrics[self.metric]
        best = self.state.best_metric
        better = best is None or (value > best if self.higher_is_better else value < best)
        improved = math.isfinite(value) and better
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
        return self.state.train_loss_sum / max(self.state.train_loss_count, 1)

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
            "train_loss": self._mean_train_loss() if self.state.train_loss_count else math.nan,
            **{f"dev_{name}": value for name, value in sorted(metrics.items())},
        }
        self.state.train_loss_sum, self.state.train_loss_count = 0.0, 0
        path = self.run_directory / METRICS_FILE
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(row))
        if not path.exists():
            writer.writeheader()
        writer.writerow(row)
        files.append_text_no_follow(path, text.getvalue())
        crash_point("after_metrics_row")
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
