"""Checkpoints without pickle: tensors in safetensors files, everything else in JSON.

A checkpoint is a directory::

    model.safetensors       the weights
    optimizer.safetensors   optimizer tensors and RNG states   (training checkpoints only)
    state.json              counters, optimizer hyperparameters, Python RNG state

It is written into a temporary sibling directory and moved into place with
renames, so a crash never leaves a half-written checkpoint where a complete
one is expected.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from attnrnn.errors import RunError

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and a rename."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=False), encoding="utf-8")
    os.replace(temporary, path)


@contextlib.contextmanager
def staged_run_directory(run_directory: Path) -> Iterator[Path]:
    """Yield an empty staging folder that becomes ``run_directory`` when the block ends
    without an error; on an error it is removed, so no half-made run is left behind.

    An existing, non-empty ``run_directory`` is an error (resume it instead).
    """
    if run_directory.exists() and any(run_directory.iterdir()):
        raise RunError(
            f"{run_directory} already exists; pass --resume to continue it or choose "
            "another --output"
        )
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=run_directory.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; a run is an ordinary folder
        yield staging
        if run_directory.exists():
            run_directory.rmdir()
        staging.rename(run_directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def save_checkpoint(
    directory: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    state: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint directory atomically (see the module docstring)."""
    directory = Path(directory)
    staging = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_file(weights_on_cpu(model), str(staging / MODEL_FILE))
    document: dict[str, Any] = {"state": state or {}}
    if optimizer is not None:
        tensors, optimizer_json = _flatten_optimizer(optimizer)
        tensors.update(_rng_tensors())
        save_file(tensors, str(staging / OPTIMIZER_FILE))
        document["optimizer"] = optimizer_json
        document["python_rng"] = _python_rng_to_json(random.getstate())
    (staging / STATE_FILE).write_text(json.dumps(document, indent=2), encoding="utf-8")
    _swap_into_place(staging, directory)


def weights_on_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state as separate contiguous CPU tensors.

    Copies, because safetensors refuses tensors that share storage: tied
    weights, and the flattened weight buffer cuDNN keeps for an RNN on a GPU.
    """
    return {
        name: tensor.detach().to("cpu", copy=True).contiguous()
        for name, tensor in model.state_dict().items()
    }


def _swap_into_place(staging: Path, directory: Path) -> None:
    previous = directory.with_name(directory.name + ".old")
    shutil.rmtree(previous, ignore_errors=True)
    if directory.exists():
        os.replace(directory, previous)
    os.replace(staging, directory)
    shutil.rmtree(previous, ignore_errors=True)


def checkpoint_path(directory: Path) -> Path:
    """The complete checkpoint at ``directory`` (or the previous one left by a crash)."""
    directory = Path(directory)
    for candidate in (directory, directory.with_name(directory.name + ".old")):
        if (candidate / MODEL_FILE).is_file() and (candidate / STATE_FILE).is_file():
            return candidate
    raise RunError(f"{directory}: no complete checkpoint here")


def load_weights(directory: Path, model: nn.Module, device: str | torch.device = "cpu") -> None:
    """Load a checkpoint's weights into ``model`` (shapes must match)."""
    path = checkpoint_path(directory) / MODEL_FILE
    try:
        state = load_file(str(path), device=str(device))
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError, OSError) as error:
        raise RunError(f"{path}: weights do not fit this model ({error})") from None


def load_training_state(
    directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Restore weights, optimizer and RNG states; return the saved trainer counters."""
    directory = checkpoint_path(directory)
    device = next(model.parameters()).device
    load_weights(directory, model, device)
    document = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    if "optimizer" not in document:
        raise RunError(f"{directory}: this checkpoint has no optimizer state to resume from")
    tensors = load_file(str(directory / OPTIMIZER_FILE), device=str(device))
    optimizer.load_state_dict(_unflatten_optimizer(tensors, document["optimizer"]))
    _restore_rng(tensors)
    random.setstate(_python_rng_from_json(document["python_rng"]))
    return dict(document["state"])


def read_state(directory: Path) -> dict[str, Any]:
    """The trainer counters saved in a checkpoint, without loading anything else."""
    document = json.loads((checkpoint_path(directory) / STATE_FILE).read_text(encoding="utf-8"))
    return dict(document["state"])


# --------------------------------------------------------------------------- internals


def _flatten_optimizer(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for parameter_id, parameter_state in state_dict["state"].items():
        for name, value in parameter_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{parameter_id}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(parameter_id), {})[name] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], saved: dict[str, Any]) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if not key.startswith("state."):
            continue
        _, parameter_id, name = key.split(".", 2)
        state.setdefault(int(parameter_id), {})[name] = value
    for parameter_id, values in saved["scalars"].items():
        state.setdefault(int(parameter_id), {}).update(values)
    return {"state": state, "param_groups": saved["param_groups"]}


def _rng_tensors() -> dict[str, torch.Tensor]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{index}"] = cuda_state
    return tensors


def _restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["rng.torch"].cpu())
    cuda_states = [tensors[k].cpu() for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)


def _python_rng_to_json(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_rng_from_json(saved: list) -> tuple:
    version, internal, gauss = saved
    return (version, tuple(internal), gauss)
