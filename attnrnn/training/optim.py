"""AdamW and the learning-rate schedule.

The schedule is a pure function of the step (plus, for "plateau", a small
state object saved with the trainer), so resuming needs no pickled scheduler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from attnrnn.config import OptimizerConfig
from attnrnn.errors import ConfigError


def layer_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """The model's parameters in layer groups from the input up, as the model's own
    ``layer_groups()`` gives them (the classifier's); a :class:`ConfigError` for models
    without (the fine-tuning options need them)."""
    groups = getattr(model, "layer_groups", None)
    if not callable(groups):
        raise ConfigError(
            "optimizer.layer_lr_decay and optimizer.gradual_unfreezing fine-tune models with "
            f"layer groups (text classifiers); a {type(model).__name__} has none"
        )
    named: list[list[nn.Parameter]] = groups()
    return named


def build_optimizer(model: nn.Module, config: OptimizerConfig) -> torch.optim.AdamW:
    """AdamW over trainable parameters; no weight decay on biases, norms and embeddings.

    Parameter groups carry ``layer`` (the model's layer group, 0 at the input) and
    ``lr_scale`` (``layer_lr_decay`` to the power of the groups above it), which
    :func:`set_learning_rate` applies.
    """
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    fine_tuning = config.layer_lr_decay < 1 or config.gradual_unfreezing
    layers = layer_groups(model) if fine_tuning else [list(model.parameters())]
    top = len(layers) - 1
    groups: list[dict[str, Any]] = []
    parameters: list[nn.Parameter] = []
    for layer, members in enumerate(layers):
        decay, no_decay = [], []
        for parameter in members:
            if not parameter.requires_grad:
                continue
            if parameter.dim() < 2 or "embedding" in names[id(parameter)]:
                no_decay.append(parameter)
            else:
                decay.append(parameter)
        scale = config.layer_lr_decay ** (top - layer)
        for chosen, weight_decay in ((decay, config.weight_decay), (no_decay, 0.0)):
            groups.append(
                {"params": chosen, "weight_decay": weight_decay, "layer": layer, "lr_scale": scale}
            )
            parameters += chosen
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


def frozen_layers(optimizer: torch.optim.Optimizer, epoch: int) -> int:
    """Gradual unfreezing: how many layer groups from the input up stay frozen in
    ``epoch`` (0-based): all but the top ``epoch + 1``."""
    layers = 1 + max((group.get("layer", 0) for group in optimizer.param_groups), default=0)
    return max(layers - (epoch + 1), 0)


def drop_frozen_gradients(optimizer: torch.optim.Optimizer, frozen: int) -> None:
    """Forget the gradients of the ``frozen`` lowest layer groups, so that the update
    leaves them (and their Adam moments) as they are."""
    for group in optimizer.param_groups:
        if group.get("layer", 0) < frozen:
            for parameter in group["params"]:
                parameter.grad = None


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
    """The schedule's rate, times each group's ``lr_scale`` (discriminative rates)."""
    for group in optimizer.param_groups:
        group["lr"] = learning_rate * group.get("lr_scale", 1.0)
