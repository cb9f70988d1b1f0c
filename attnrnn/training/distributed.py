"""Data-parallel training on several processes: the process group torchrun sets up.

``torchrun --nproc_per_node=N -m attnrnn train CONFIG`` starts N copies of the trainer and
tells each, through environment variables, who it is (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``) and where to meet (``MASTER_ADDR``, ``MASTER_PORT``). This module reads
them (:func:`world_from_environment`), joins PyTorch's process group with the backend the
device needs (gloo on the CPU, NCCL on CUDA) and a timeout on every collective, so that a
dead rank stops the others with an error instead of a hang (:func:`process_group`), and
gives the trainer the few collectives it needs: summing numbers over the ranks
(:func:`sum_over_ranks`), rank 0's decisions on every rank (:func:`from_rank0`) and every
rank's random state on rank 0 (:func:`gathered`). Gradients are averaged by
:class:`torch.nn.parallel.DistributedDataParallel` around the task's loss (:func:`replicate`).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast

import torch
import torch.distributed as dist

from attnrnn.errors import ConfigError, RunError

T = TypeVar("T")


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
def process_group(world: World, device: torch.device, timeout_seconds: float) -> Iterator[World]:
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
        # Leave together: a rank that tears its connections down while another is still
        # in its last collective can make that one abort (gloo raises in its own thread).
        dist.barrier()
    finally:
        # DistributedDataParallel replicas hold the group's pending work; freed after the
        # group (at interpreter exit) they can abort the process.
        gc.collect()
        dist.destroy_process_group()


def sum_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """Each value summed over the ranks (float64; the values as they are for one process)."""
    if not _several():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return [float(value) for value in tensor.tolist()]


def from_rank0(value: T) -> T:
    """Rank 0's ``value`` (any picklable object made by this process) on every rank."""
    if not _several():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return cast(T, holder[0])


def gathered(value: T) -> list[T]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not _several():
        return [value]
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def barrier() -> None:
    """Wait until every rank gets here (nothing for one process)."""
    if _several():
        dist.barrier()


def check_replicas_agree(model: torch.nn.Module) -> None:
    """Raise :class:`RunError` when the ranks' copies of ``model`` differ.

    Compares a SHA-256 of the weights' bytes across ranks: replicas that drifted apart
    would otherwise go on training silently different models. Called at every
    checkpoint (hashing costs about a second per GB of weights).
    """
    if not _several():
        return
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    digests = gathered(digest.hexdigest())
    if len(set(digests)) > 1:
        differing = [rank for rank, value in enumerate(digests) if value != digests[0]]
        raise RunError(
            f"the model on rank(s) {differing} differs from rank 0's: data-parallel training "
            "went wrong (please report it with the configuration)"
        )


def _several() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class LossOf(torch.nn.Module):
    """A model with its task's loss as ``forward(batch)``.

    DistributedDataParallel averages the gradients of whatever runs inside its own
    ``forward``. The tasks' losses call a model's other methods too (``copy_forward``,
    ``joint_loss``, ``output_loss``...), so it is this module, whose ``forward`` is the
    whole loss, that DDP wraps: every parameter the loss touches has its gradient
    averaged, whichever method used it.
    """

    def __init__(self, model: torch.nn.Module, loss: Callable[[Any, Any], Any]) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, batch: Any) -> Any:
        return self.loss(self.model, batch)


def replicate(
    model: torch.nn.Module,
    loss: Callable[[Any, Any], Any],
    device: torch.device,
    unused_parameters: bool = True,
) -> torch.nn.Module:
    """``batch -> loss(model, batch)`` as a module: wrapped in DistributedDataParallel
    when a process group is up (DDP broadcasts rank 0's parameters to the others on
    wrapping), plain for one process.

    ``unused_parameters``: a step may leave parameters without a gradient (an
    adaptive-softmax cluster no target fell in, the CTC head at weight 0); DDP then
    looks for them after each forward pass and marks them ready instead of waiting for
    them forever. Tasks where every step trains every parameter skip that search.
    """
    module = LossOf(model, loss)
    if not _several():
        return module
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(
        module, device_ids=device_ids, find_unused_parameters=unused_parameters
    )
