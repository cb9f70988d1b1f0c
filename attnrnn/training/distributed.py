"""Data-parallel training on several processes: the process group torchrun sets up.

``torchrun --nproc_per_node=N -m attnrnn train CONFIG`` starts N copies of the trainer and
tells each, through environment variables, who it is (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``) and where to meet (``MASTER_ADDR``, ``MASTER_PORT``). This module reads
them (:func:`world_from_environment`), joins PyTorch's process group with the backend the
device needs (gloo on the CPU, NCCL on CUDA) and a timeout on every collective, so that a
dead rank stops the others with an error instead of a hang (:func:`process_group`), and
gives the trainer the few collectives it needs: averaging numbers over the ranks and
making every rank take rank 0's decision (:func:`mean_over_ranks`, :func:`same_as_rank0`).
Gradients are averaged by :class:`torch.nn.parallel.DistributedDataParallel` itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from attnrnn.errors import ConfigError

DEFAULT_TIMEOUT_SECONDS = 600
"""How long a collective may wait for a missing rank before the job fails."""


@dataclass(frozen=True)
class World:
    """Who this process is among the training processes.

    rank: 0..world_size-1 over all machines; local_rank: the index on this machine (the
    CUDA device it takes); world_size: the number of processes.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run directory and the logs."""
        return self.rank == 0


def _integer(environment: Mapping[str, str], name: str, default: int) -> int:
    text = environment.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"environment variable {name}={text!r} is not an integer") from None


def world_from_environment(environment: Mapping[str, str] = os.environ) -> World:
    """The world torchrun describes in ``environment`` (one process when it says nothing)."""
    world_size = _integer(environment, "WORLD_SIZE", 1)
    rank = _integer(environment, "RANK", 0)
    local_rank = _integer(environment, "LOCAL_RANK", 0)
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ConfigError(
            f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world_size}, "
            f"LOCAL_RANK={local_rank}"
        )
    return World(rank, world_size, local_rank)


def device_for(world: World, device: torch.device) -> torch.device:
    """One CUDA device per process (``cuda:LOCAL_RANK``) when several share a machine's
    GPUs; other devices as they are."""
    if device.type == "cuda" and world.distributed:
        if world.local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"process {world.local_rank} on this machine has no GPU of its own "
                f"({torch.cuda.device_count()} visible): start at most that many processes"
            )
        return torch.device("cuda", world.local_rank)
    return device


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA devices, gloo for the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


@contextlib.contextmanager
def process_group(
    world: World, device: torch.device, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
) -> Iterator[World]:
    """Join the process group for the duration of a run (nothing to do for one process).

    Every collective fails after ``timeout_seconds`` without the other ranks, so a rank
    that died stops the job with an error instead of leaving the others waiting.
    """
    if not world.distributed or dist.is_initialized():
        yield world
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend_for(device),
        rank=world.rank,
        world_size=world.world_size,
        timeout=timedelta(seconds=timeout_seconds),
    )
    try:
        yield world
    finally:
        dist.destroy_process_group()


def mean_over_ranks(values: Mapping[str, float], device: torch.device) -> dict[str, float]:
    """Each value averaged over the ranks (the values as they are for one process)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return dict(values)
    names = sorted(values)
    tensor = torch.tensor([float(values[name]) for name in names], dtype=torch.float64)
    tensor = tensor.to(device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    tensor /= dist.get_world_size()
    return dict(zip(names, tensor.tolist(), strict=True))


def same_as_rank0(decision: bool, device: torch.device) -> bool:
    """Rank 0's ``decision`` on every rank (early stopping, a stop request), so that the
    ranks never disagree about whether to go on."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return decision
    flag = torch.tensor([1 if decision else 0], dtype=torch.int64, device=device)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


class Replicated(torch.nn.parallel.DistributedDataParallel):
    """DistributedDataParallel that also answers for the model's own attributes.

    The tasks' losses call the model (its ``forward``, which DDP wraps) and then its other
    methods and fields (``output_loss``, ``pad_index``...). Those are looked up on the
    wrapped model; the parameters they use still get their gradients averaged, because
    DDP's hooks sit on the parameters, not on ``forward``.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def replicate(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` wrapped for data-parallel training when a process group is up; the model
    itself otherwise. DDP broadcasts rank 0's parameters to the others on wrapping."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return Replicated(model, device_ids=device_ids)
