"""AdamW and the learning-rate schedule.

The schedule is a pure function of the step (plus, for "plateau", a small
state object saved with the trainer), so resuming needs no pickled scheduler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from attnrnn.config import OptimizerConfig


def build_optimizer(model: nn.Module, config: OptimizerConfig) -> torch.optim.AdamW:
    """AdamW over trainable parameters; no weight decay on biases, norms and embeddings."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if parameter.dim() < 2 or "embedding" in name:
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    parameters = decay + no_decay
    # The fused update (one kernel over all tensors) where PyTorch has one: CPU and
    # CUDA floating-point parameters.
    fused = bool(parameters) and all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in parameters
    )
    return torch.optim.AdamW(
        groups,
        lr=config.learning_rate,
        betas=(config.beta1, config.beta2),
        fused=fused or None,
    )


@dataclass
class PlateauState:
    """Decay-on-plateau bookkeeping: the current factor and evaluations without gain."""

    factor: float = 1.0
    bad_evaluations: int = 0


def warmup_length(config: OptimizerConfig, total_steps: int | None) -> int:
    """The updates of linear warmup: ``warmup_ratio`` of ``total_steps`` when set (and the
    total is known), else ``warmup_steps``."""
    if config.warmup_ratio and total_steps:
        return max(round(config.warmup_ratio * total_steps), 1)
    return config.warmup_steps


def learning_rate_at(
    step: int, total_steps: int | None, config: OptimizerConfig, plateau: PlateauState
) -> float:
    """The learning rate for optimizer step ``step`` (0-based).

    Linear warmup over :func:`warmup_length` updates, then constant, linear or cosine
    decay to ``min_learning_rate_ratio x learning_rate`` at ``total_steps``, or decay
    by ``plateau_factor`` whenever the dev metric stalls.
    """
    peak = config.learning_rate
    warmup = warmup_length(config, total_steps)
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    if config.schedule == "plateau":
        return peak * plateau.factor
    if config.schedule == "constant" or not total_steps:
        return peak
    floor = peak * config.min_learning_rate_ratio
    span = max(total_steps - warmup, 1)
    progress = min(max(step - warmup, 0) / span, 1.0)
    if config.schedule == "linear":
        return floor + (peak - floor) * (1.0 - progress)
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def update_plateau(
    plateau: PlateauState,
    improved: bool,
    config: OptimizerConfig,
    step: int,
    total_steps: int | None = None,
) -> None:
    """Record one evaluation; decay the factor after ``plateau_patience`` without gain.

    Evaluations during warmup and before ``plateau_start_step`` are not counted:
    a model that has not started to learn (a speech model before its attention
    locks on, say) must not have its rate halved away.
    """
    if step < max(warmup_length(config, total_steps), config.plateau_start_step):
        return
    if improved:
        plateau.bad_evaluations = 0
        return
    plateau.bad_evaluations += 1
    if plateau.bad_evaluations >= config.plateau_patience:
        plateau.factor *= config.plateau_factor
        plateau.bad_evaluations = 0


def set_learning_rate(optimizer: torch.optim.Optimizer, learning_rate: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = learning_rate
