"""Process-wide settings of a run: device, threads, seeds, determinism, allocator."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import random
import sys
from collections.abc import Callable

import numpy as np
import torch

from attnrnn.config import TrainerConfig
from attnrnn.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; an unavailable device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} requested but MPS is not available here")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_allocator_tuned = False


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back.

    PyTorch's CPU tensors come straight from malloc. By default glibc serves large
    blocks with a fresh ``mmap`` and trims the heap as soon as its top is free,
    so a training step that allocates and frees the same few-megabyte tensors at
    every decoder step pays page faults (the kernel zeroing fresh pages) again and
    again. Serving blocks up to 32 MiB from the heap and trimming only beyond 1 GiB
    made Multi30k training 4% faster on the development machine (the process keeps
    its peak heap, which a training run reaches in its first steps anyway).
    Returns whether the settings took (only on Linux with glibc; once per process).
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    settings = ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 64 << 20))
    _allocator_tuned = all(mallopt(option, value) == 1 for option, value in settings)
    return _allocator_tuned


def configure_runtime(config: TrainerConfig) -> torch.device:
    """Apply threads, seed and determinism from the trainer configuration; return the device."""
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    seed_everything(config.seed)
    keep_freed_memory()
    return resolve_device(config.device)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags the CPU reports (Linux ``/proc/cpuinfo``; empty elsewhere),
    read once per process: training asks at every batch (:func:`shape_multiple`)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 in hardware: CUDA devices from Ampere on;
    CPUs with AVX512-BF16 or AMX (without them, bf16 matmuls are emulated and run tens of
    times slower than fp32)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
    return False


# Training batches in bf16 on the CPU are padded to a multiple of this many tokens, and
# batched by those padded lengths, so that they come in few shapes. oneDNN (the CPU's bf16
# RNNs under autocast) builds and caches kernels per input shape; with a batch shape per
# length, a bf16 language model on IMDB text grew by 2 GB and its steps slowed from 0.9 to
# 2.5 s over 6,500 updates (a restart brought the speed back); in fp32, without oneDNN, a
# small model's steps stayed flat. Extra padding is masked like any other.
SHAPE_STEP = 16


def shape_multiple(precision: str, device: torch.device) -> int:
    """What training batches' lengths are rounded up to: :data:`SHAPE_STEP` for bf16 on a
    CPU that computes it natively (what oneDNN runs), else 1 (no padding)."""
    bf16_on_cpu = precision == "bf16" and device.type == "cpu"
    return SHAPE_STEP if bf16_on_cpu and native_bf16(device) else 1


def training_precision(precision: str, device: torch.device, warn: Callable[[str], None]) -> str:
    """The precision a run trains in on ``device``: ``precision`` (trainer.precision) when the
    device supports it; bf16 falls back to fp32 with one warning where the hardware has no
    bf16; fp16 (which needs a gradient scaler and pays only on GPUs) is refused elsewhere."""
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(
            f"trainer.precision fp16 needs a CUDA device (this run uses {device}); use bf16 or fp32"
        )
    if precision == "bf16" and not native_bf16(device):
        what = "this CPU" if device.type == "cpu" else str(device)
        warn(f"warning: {what} has no native bfloat16: training in fp32 instead of bf16")
        return "fp32"
    return precision
