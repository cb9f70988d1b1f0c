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

Data-parallel (``torchrun``, see :mod:`attnrnn.training.distributed` and
docs/distributed.md): every process runs this loop on its own share of each step's
batches; DistributedDataParallel averages the gradients, so the weights and the
optimizer stay identical everywhere. A step takes ``world_size x accumulate_steps``
neighbouring batches of the epoch's order (a *group*): rank r takes the r-th, the
(r + world_size)-th... and accumulates its ``accumulate_steps`` micro-batches before the
update. The epoch's order depends on the group size only, so 2 processes and 1 process
accumulating 2 batches train on the same batches, step for step. Rank 0 alone evaluates
on dev, writes checkpoints, metrics.csv, TensorBoard and progress; every decision to
skip a step, stop or go on is one every rank takes together.
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
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from attnrnn.config import OptimizerConfig, TrainerConfig
from attnrnn.console import format_duration, silent
from attnrnn.console import log as console_log
from attnrnn.data.batching import share, steps
from attnrnn.errors import AttnrnnError, RunError
from attnrnn.training import checkpoint, files
from attnrnn.training.averaging import WeightAverage
from attnrnn.training.distributed import (
    World,
    check_replicas_agree,
    from_rank0,
    gathered,
    replicate,
    sum_over_ranks,
)
from attnrnn.training.faults import crash_point
from attnrnn.training.optim import (
    PlateauState,
    build_optimizer,
    drop_frozen_gradients,
    frozen_layers,
    learning_rate_at,
    set_learning_rate,
    update_plateau,
    warmup_length,
)
from attnrnn.training.runtime import seed_everything, training_precision

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
    def train_batches(self, epoch: int, group: int = 1) -> list[Any]:
        """The batches of an epoch in training order, a function of the seed, ``epoch``
        and ``group`` (the batches one step takes: neighbouring batches of ``group`` are
        of similar length, so that no process waits on a much longer one)."""
        ...

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
    step_seconds: float = 0.0  # of it, in training steps (no evaluation, no checkpoints)
    units: int = 0  # tokens / examples / frames trained on so far
    stop_reason: str | None = None  # "epochs", "budget" or "early_stopping"
    train_loss_sum: float = 0.0  # training loss since the last evaluation (metrics.csv)
    train_loss_count: int = 0
    skipped_steps: int = 0  # steps skipped for a non-finite loss or gradient
    evaluations: int = 0  # dev checks so far
    plateau: dict[str, Any] = field(default_factory=lambda: asdict(PlateauState()))
    world_size: int = 1  # processes training (torchrun)
    accumulate_steps: int = 1  # batches each process adds up per step
    loss_scale: float | None = None  # fp16's gradient scaler


class Trainer:
    """Train ``model`` on ``task``, writing checkpoints and logs under ``run_directory``.

    Args:
        metric: the dev metric that selects the best checkpoint and stops early.
        higher_is_better: direction of ``metric``.
        world: this process among the training processes (one by default); with
            several, the process group must be up (:func:`distributed.process_group`).
        log: where rank 0's messages go.
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
        world: World | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.model = model
        self.task = task
        self.optimizer_config = optimizer_config
        self.config = trainer_config
        self.run_directory = Path(run_directory)
        self.metric = metric
        self.higher_is_better = higher_is_better
        self.world = world = world or World()
        self.log = (log or console_log) if world.is_main else silent
        parameter = next(model.parameters(), None)
        self.device = parameter.device if parameter is not None else torch.device("cpu")
        self.precision = training_precision(trainer_config.precision, self.device, self.log)
        # The loss as a module: DistributedDataParallel around it with several processes.
        unused = getattr(task, "unused_parameters", True)
        self.replica = replicate(model, task.compute_loss, self.device, unused)
        self.optimizer = build_optimizer(model, optimizer_config)
        decay = trainer_config.ema_decay
        self.average = WeightAverage(model, decay) if decay else None
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.group = world.world_size * trainer_config.accumulate_steps
        self.state = TrainerState(
            world_size=world.world_size, accumulate_steps=trainer_config.accumulate_steps
        )
        self._non_finite_in_a_row = 0
        self._stop_signal: int | None = None
        self._stop_agreed: int | None = None
        self._time_up = False  # rank 0's clock passed max_minutes (agreed at each step)
        self._tensorboard = (
            _open_tensorboard(self.run_directory / "tensorboard") if world.is_main else None
        )
        self._session = (time.monotonic(), 0)  # (start, step) of this process's training
        self.total_steps: int | None = None  # the run's updates, known once training starts

    # ------------------------------------------------------------------ public

    def resume(self) -> None:
        """Continue from the run directory's ``last`` checkpoint.

        Every process loads the same weights and optimizer state and its own RNG state.
        A run resumed with another number of processes or ``accumulate_steps`` says in
        the log what that changes (see :meth:`_regroup`).
        """
        saved = checkpoint.load_training_state(
            self.run_directory / "last",
            self.model,
            self.optimizer,
            rank=self.world.rank,
            average=self.average,
        )
        self.state = TrainerState(**saved)
        if self.state.stop_reason in ("epochs", "budget"):
            self.state.stop_reason = None  # the budget may have been raised since
        if self.world.rank >= self.state.world_size:  # a process the checkpoint did not have
            seed_process(self.config.seed, self.world.rank, self.state.step)
        self._regroup()
        if self.scaler is not None and self.state.loss_scale is not None:
            self.scaler = torch.amp.GradScaler("cuda", init_scale=self.state.loss_scale)
        if self.world.is_main:
            self._keep_metrics_up_to(self.state.step)

    def _regroup(self) -> None:
        """Take this session's processes and accumulation, logging what changes."""
        before = (self.state.world_size, self.state.accumulate_steps)
        now = (self.world.world_size, self.config.accumulate_steps)
        if before == now:
            return
        group_before = before[0] * before[1]
        what = (
            f"resuming with {now[0]} process(es) x {now[1]} accumulated batch(es) where the "
            f"checkpoint was trained with {before[0]} x {before[1]}"
        )
        if group_before == self.group:
            self.log(
                f"{what}: the same {self.group} batches per step, so the data order, the "
                "learning-rate schedule and every update are the same as before; only the "
                "random numbers of the new processes (dropout) differ"
            )
        else:
            self.log(
                f"{what}: a step now takes {self.group} batches instead of {group_before}, so "
                "the data order from here on, the steps per epoch and the length of the "
                "learning-rate schedule change; the weights, optimizer state, step count and "
                "the epoch reached do not (consider trainer.accumulate_steps to keep "
                f"{group_before} batches per step)"
            )
        self.state.world_size, self.state.accumulate_steps = now

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
            # A second Ctrl-C stops at once; not under torchrun, which passes the user's
            # Ctrl-C on to processes that got it already, and kills them itself when
            # they take too long to stop.
            again = self._stop_signal is not None and number == signal.SIGINT
            if again and not self.world.distributed:
                raise KeyboardInterrupt
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
        self.total_steps = total_steps = self._estimate_total_steps()
        self._session = (time.monotonic(), self.state.step)
        group, world = self.group, self.world
        while self.state.epoch < config.epochs and self.state.stop_reason is None:
            # The batches of each step; an incomplete last group waits for another epoch.
            groups = steps(self.task.train_batches(self.state.epoch, group), group)
            checks = self._checks_in_epoch(len(groups))
            # A run resumed with another group size goes on from the same point of the epoch.
            first = -(-self.state.batch_in_epoch // group)
            progress = tqdm(
                total=len(groups),
                initial=min(first, len(groups)),
                desc=f"epoch {self.state.epoch + 1}/{config.epochs}",
                # None: off when not a terminal; only rank 0 shows progress.
                disable=True if not (config.progress and world.is_main) else None,
                leave=False,
                dynamic_ncols=True,
            )
            for index in range(first, len(groups)):
                if config.max_steps is not None and self.state.step >= config.max_steps:
                    self.state.stop_reason = "budget"  # a resumed run with no step left
                    break
                mine = share(groups[index], world.rank, world.world_size)
                units_per_second = self._train_step(mine, total_steps, started)
                self.state.batch_in_epoch = (index + 1) * group
                progress.update(1)
                if units_per_second is None:  # a non-finite step, skipped
                    if self._stop_agreed is not None:
                        self._interrupt(started)
                    continue
                eta = self._eta(total_steps, started)
                progress.set_postfix(
                    loss=f"{self._mean_train_loss():.4f}",
                    units_s=f"{units_per_second:.0f}",
                    run_eta=format_duration(eta) if eta is not None else "?",
                )
                if progress.disable and config.progress and world.is_main:  # plain log lines
                    self._log_progress(len(groups), units_per_second, started, eta)
                every = config.eval_every_steps
                if (every and self.state.step % every == 0) or index + 1 in checks:
                    self._validate(started)
                if self.state.stop_reason is None and self._out_of_budget():
                    self.state.stop_reason = "budget"
                if self._stop_agreed is not None:
                    self._interrupt(started)
                if self.state.stop_reason is not None:
                    break
            progress.close()
            if self.state.stop_reason is not None:
                break
            self.state.epoch += 1
            self.state.batch_in_epoch = 0
            if not (config.eval_every_steps or config.evals_per_epoch):
                self._validate(started)
        self.state.stop_reason = self.state.stop_reason or "epochs"
        if self.state.best_metric is None or self.state.train_loss_count:
            self._validate(started)
        self._save_last(started)
        self.log(self.stop_message())
        if self._tensorboard is not None:
            self._tensorboard.close()
        return self.state

    def _checks_in_epoch(self, steps: int) -> set[int]:
        """With ``evals_per_epoch``: after which steps of an epoch (1-based) dev is checked,
        evenly spaced, the last at the end of the epoch."""
        wanted = self.config.evals_per_epoch
        if not wanted or not steps:
            return set()
        return {max(round(k * steps / wanted), 1) for k in range(1, wanted + 1)}

    def stop_message(self) -> str:
        """Why training ended, and the best checkpoint it kept."""
        state, config = self.state, self.config
        if state.stop_reason == "early_stopping":
            why = (
                f"early stopping: no better dev {self.metric} in {state.evaluations_without_gain} "
                f"dev checks (trainer.early_stopping_patience)"
            )
        elif state.stop_reason == "budget" and self._time_up:
            why = f"trainer.max_minutes ({config.max_minutes:g}) spent"
        elif state.stop_reason == "budget":
            why = f"trainer.max_steps ({config.max_steps}) reached"
        else:
            why = f"all {config.epochs} epochs (trainer.epochs) done"
        best = "" if state.best_metric is None else f"{state.best_metric:.4f}"
        return (
            f"training stopped after {state.step} steps and {state.evaluations} dev checks: "
            f"{why}; best dev {self.metric} {best} at step {state.best_step}"
        )

    def _interrupt(self, started: float) -> None:
        self._save_last(started)
        name = signal.Signals(self._stop_signal or signal.SIGINT).name
        raise Interrupted(
            f"{name} at step {self.state.step}: saved {self.run_directory / 'last'}; continue "
            f"with: attnrnn train --resume {self.run_directory}"
        )

    # ------------------------------------------------------------------ steps

    def _train_step(
        self, batches: list[Any], total_steps: int | None, started: float
    ) -> float | None:
        """One optimizer step over this process's ``batches`` (its micro-batches, their
        gradients added up); units per second of all processes, or None when skipped."""
        step_started = time.perf_counter()
        plateau = PlateauState(**self.state.plateau)
        learning_rate = learning_rate_at(
            self.state.step, total_steps, self.optimizer_config, plateau
        )
        set_learning_rate(self.optimizer, learning_rate)
        self.replica.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum, units, non_finite = 0.0, 0, 0
        for index, batch in enumerate(batches):
            last = index == len(batches) - 1
            # DDP averages the gradients during the last micro-batch's backward pass only.
            with self._no_sync(not last), autocast(self.device, self.precision):
                output = self.replica(batch)
            loss = float(output.loss.detach())
            loss_sum, units = loss_sum + loss, units + output.units
            if not math.isfinite(loss):
                non_finite += 1
            elif not last:
                with self._no_sync(True):
                    self._backward(output.loss / len(batches))
        # Every process learns the others' losses and stop requests before the step.
        agreed = self._agree(loss_sum / max(len(batches), 1), units, non_finite, started)
        if agreed.non_finite:
            self._skip_step(math.nan, learning_rate, diverging=True)
            return None
        self._backward(output.loss / len(batches))
        if self.optimizer_config.gradual_unfreezing:  # the lower layers wait their epoch
            drop_frozen_gradients(self.optimizer, frozen_layers(self.optimizer, self.state.epoch))
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        # The norm is computed anyway (clip_norm 0: an infinite bound clips nothing).
        bound = self.optimizer_config.clip_norm or math.inf
        norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), bound))
        if not math.isfinite(norm):
            if self.scaler is not None:  # an fp16 overflow: a smaller scale next time
                self.scaler.update(self.scaler.get_scale() * self.scaler.get_backoff_factor())
                self.state.loss_scale = self.scaler.get_scale()
            self._skip_step(norm, learning_rate, diverging=self.scaler is None)
            return None
        self._non_finite_in_a_row = 0
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.state.loss_scale = self.scaler.get_scale()
        else:
            self.optimizer.step()
        self.state.step += 1
        if self.average is not None:
            self.average.update(self.state.step)
        self.state.units += agreed.units
        self.state.train_loss_sum += agreed.loss
        self.state.train_loss_count += 1
        seconds = time.perf_counter() - step_started
        self.state.step_seconds += seconds
        crash_point("after_step")
        if self._tensorboard is not None and self.state.step % self.config.log_every_steps == 0:
            self._tensorboard.add_scalar("train/loss", agreed.loss, self.state.step)
            self._tensorboard.add_scalar("train/learning_rate", learning_rate, self.state.step)
        return agreed.units / max(seconds, 1e-9)

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def _no_sync(self, skip: bool) -> contextlib.AbstractContextManager[Any]:
        """DDP's ``no_sync`` (gradients kept local) for all but a step's last micro-batch."""
        if skip and isinstance(self.replica, nn.parallel.DistributedDataParallel):
            return self.replica.no_sync()
        return contextlib.nullcontext()

    def _agree(self, loss: float, units: int, non_finite: int, started: float) -> _Agreed:
        """What every process must decide alike after a step's forward passes: the mean
        loss, the units of all processes, whether any loss was not finite, and whether to
        stop (a signal any process got; rank 0's clock for ``max_minutes``)."""
        timed_out = self.world.is_main and self._time_spent(started)
        values = [
            loss if not non_finite else 0.0,
            float(units),
            float(non_finite),
            1.0 if self._stop_signal is not None else 0.0,
            1.0 if timed_out else 0.0,
        ]
        summed = sum_over_ranks(values, self.device)
        if summed[3] and self._stop_signal is None:
            self._stop_signal = signal.SIGTERM  # another process was asked to stop
        self._stop_agreed = self._stop_signal if summed[3] else None
        self._time_up = bool(summed[4])
        return _Agreed(summed[0] / self.world.world_size, int(summed[1]), int(summed[2]))

    def _skip_step(self, value: float, learning_rate: float, diverging: bool) -> None:
        """Leave the weights as they are after a non-finite loss or gradient norm; too
        many in a row end training (the last good checkpoint stays). ``diverging``: False
        for fp16 overflows, which the gradient scaler answers with a smaller scale."""
        self.optimizer.zero_grad(set_to_none=True)
        self.state.skipped_steps += 1
        what = "non-finite loss or gradient norm" if diverging else "fp16 gradient overflow"
        self.log(
            f"step {self.state.step + 1}: {what} ({value}) at learning rate "
            f"{learning_rate:.3g}; step skipped"
        )
        if not diverging:
            return
        self._non_finite_in_a_row += 1
        if self._non_finite_in_a_row >= MAX_NON_FINITE_STEPS:
            raise RunError(
                f"training diverged: {MAX_NON_FINITE_STEPS} steps in a row with a non-finite "
                f"loss or gradient at step {self.state.step}; the last good checkpoint is in "
                f"{self.run_directory / 'last'} (try a lower optimizer.learning_rate)"
            )

    def _validate(self, started: float) -> None:
        """Rank 0 scores dev while the others wait; every process takes its decisions
        (best so far, early stopping, the plateau schedule)."""
        decided: dict[str, Any] = {}
        if self.world.is_main:
            # dev scores, and the best checkpoint, are those of the averaged weights
            with self.average.applied() if self.average else contextlib.nullcontext():
                metrics = self.task.evaluate(self.model)
                if self.metric not in metrics:
                    raise KeyError(f"evaluate() returned no {self.metric!r}: {sorted(metrics)}")
                self._judge(metrics[self.metric], metrics)
            self._log_metrics(metrics, started)
            decided = {name: getattr(self.state, name) for name in _DECIDED_BY_RANK0}
        for name, value in from_rank0(decided).items():
            setattr(self.state, name, value)
        self.state.train_loss_sum, self.state.train_loss_count = 0.0, 0
        self._save_last(started)

    def _judge(self, value: float, metrics: dict[str, float]) -> None:
        """Best checkpoint, early stopping and the plateau schedule after one evaluation."""
        self.state.evaluations += 1
        best = self.state.best_metric
        better = best is None or (value > best if self.higher_is_better else value < best)
        improved = math.isfinite(value) and better
        # A model still warming up, or checked only a few times, is not judged stalled.
        judged = (
            self.state.step >= warmup_length(self.optimizer_config, self.total_steps)
            and self.state.evaluations >= self.config.min_evaluations
        )
        if improved:
            self.state.best_metric = value
            self.state.best_step = self.state.step
            self.state.evaluations_without_gain = 0
            checkpoint.save_checkpoint(
                self.run_directory / "best", self.model, state={"metrics": metrics}
            )
        elif judged:
            self.state.evaluations_without_gain += 1
        if improved or judged:
            plateau = PlateauState(**self.state.plateau)
            optimizer, step = self.optimizer_config, self.state.step
            update_plateau(plateau, improved, optimizer, step, self.total_steps)
            self.state.plateau = asdict(plateau)
        patience = self.config.early_stopping_patience
        if patience is not None and self.state.evaluations_without_gain >= patience:
            self.state.stop_reason = "early_stopping"

    def _save_last(self, started: float) -> None:
        """The ``last`` checkpoint, written by rank 0 with every process's RNG state,
        once the processes are checked to hold the same model."""
        random_states = gathered(checkpoint.random_state())
        check_replicas_agree(self.model)
        if not self.world.is_main:
            return
        self.state.elapsed_seconds = time.monotonic() - started
        checkpoint.save_checkpoint(
            self.run_directory / "last",
            self.model,
            self.optimizer,
            asdict(self.state),
            other_ranks=random_states[1:],
            average=self.average,
        )

    # ------------------------------------------------------------------ bookkeeping

    def _mean_train_loss(self) -> float:
        return self.state.train_loss_sum / max(self.state.train_loss_count, 1)

    def _log_progress(
        self, steps: int, units_per_second: float, started: float, eta: float | None
    ) -> None:
        if self.state.step % self.config.log_every_steps:
            return
        elapsed = time.monotonic() - started
        remaining = f", run ETA {format_duration(eta)}" if eta is not None else ""
        print(
            f"step {self.state.step} epoch {self.state.epoch + 1} "
            f"batch {self.state.batch_in_epoch // self.group}/{steps}: loss "
            f"{self._mean_train_loss():.4f}, {units_per_second:.0f} units/s, "
            f"{elapsed / 60:.1f} min{remaining}",
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

    def _out_of_budget(self) -> bool:
        max_steps = self.config.max_steps
        return self._time_up or (max_steps is not None and self.state.step >= max_steps)

    def _time_spent(self, started: float) -> bool:
        minutes = (time.monotonic() - started) / 60.0
        return self.config.max_minutes is not None and minutes >= self.config.max_minutes

    def _estimate_total_steps(self) -> int | None:
        per_epoch = len(steps(self.task.train_batches(0, self.group), self.group))
        total = per_epoch * self.config.epochs
        if self.config.max_steps is not None:
            total = min(total, self.config.max_steps)
        return total or None

    def _log_metrics(self, metrics: dict[str, float], started: float) -> None:
        row = {
            "step": self.state.step,
            "epoch": self.state.epoch,
            "elapsed_seconds": round(time.monotonic() - started, 2),
            "learning_rate": self.optimizer.param_groups[-1]["lr"],  # the top layer's
            "train_loss": self._mean_train_loss() if self.state.train_loss_count else math.nan,
            **{f"dev_{name}": value for name, value in sorted(metrics.items())},
        }
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


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """Mixed precision for the forward pass: ``bf16`` or ``fp16`` (CUDA, with a gradient
    scaler) matmuls; ``fp32`` turns it off.

    Parameters, gradients and the optimizer stay fp32; only the forward pass
    (and so its backward) runs the autocast-listed ops (linear, matmul, RNN
    layers) in the lower precision.
    """
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=precision in ("bf16", "fp16"))


@dataclass(frozen=True)
class _Agreed:
    """A step's numbers, the same on every process: the mean loss over the processes,
    the units of all of them, and how many non-finite losses there were."""

    loss: float
    units: int
    non_finite: int


# The state rank 0 alone decides, at each evaluation, for every process.
_DECIDED_BY_RANK0 = (
    "evaluations",
    "best_metric",
    "best_step",
    "evaluations_without_gain",
    "plateau",
    "stop_reason",
)


def seed_process(seed: int, rank: int, step: int = 0) -> None:
    """Seed the random numbers (dropout...) of process ``rank`` of a data-parallel run,
    different for every rank and, after a resume that adds processes, every step."""
    seed_everything(seed + 1_000_003 * rank + 7_919 * step)
