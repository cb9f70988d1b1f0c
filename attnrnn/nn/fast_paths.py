"""The one switch for the hand-written training fast paths.

Four places train through code written by hand instead of through autograd:

- :func:`attnrnn.nn.gru.gru_states`: the encoder's one-layer GRUs (CPU);
- :class:`attnrnn.nn.fused_decoder.LuongGRUAdditive`: the one-layer Luong GRU
  decoder with input feeding and additive attention (CPU);
- :func:`attnrnn.nn.losses.linear_cross_entropy`: the output layer fused with
  the label-smoothed loss (CPU and CUDA);
- :func:`attnrnn.nn.losses.adaptive_cross_entropy`: the language model's adaptive
  softmax, each cluster through ``linear_cross_entropy`` (CPU and CUDA).

Each gives the values and gradients of the autograd computation it replaces
(the tests compare the two), so the switch changes speed, not results (up to
floating-point rounding); the autograd path is always the fallback. Every call
site asks this module whether fast paths are wanted at all (the switch is on
and a backward pass may follow: :func:`gradients_wanted`; in a dtype the
hand-written code computes in exactly: :func:`runs_in`), and keeps only its
own structural condition (cell type, layers, attention, device).

``with hand_written(False):`` routes all four through autograd: to compare
the paths, to time the difference, or to rule the fast paths out when
debugging. The switch is thread-local, like ``torch.no_grad``: a block affects
only the thread that enters it, and every thread starts with the switch on.
(So threads that run a model's replicas, as ``nn.DataParallel`` does, do not
inherit it; nothing here uses them.)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class _Switch(threading.local):
    """Per-thread state; the class attribute is every thread's starting value."""

    enabled: bool = True


_SWITCH = _Switch()


def enabled() -> bool:
    """Whether this thread may take the hand-written fast paths (on by default)."""
    return _SWITCH.enabled


@contextmanager
def hand_written(enabled: bool) -> Iterator[None]:
    """Turn the hand-written fast paths on or off in this thread for a ``with`` block;
    the previous setting comes back on leaving it (blocks nest)."""
    previous = _SWITCH.enabled
    _SWITCH.enabled = enabled
    try:
        yield
    finally:
        _SWITCH.enabled = previous


def gradients_wanted() -> bool:
    """True when the switch is on and autograd records (a backward pass may follow):
    every fast path computes its gradients ahead, which only pays for training."""
    return _SWITCH.enabled and torch.is_grad_enabled()


def runs_in(dtype: torch.dtype, *tensors: torch.Tensor) -> bool:
    """True when every tensor has ``dtype`` (its weights') and autocast is off on their
    device: the hand-written recurrences compute in one dtype and would bypass
    autocast's casts, so mixed precision stays with autograd."""
    return all(tensor.dtype == dtype for tensor in tensors) and not any(
        torch.is_autocast_enabled(tensor.device.type) for tensor in tensors
    )
