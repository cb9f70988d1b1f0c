"""Checkpoints without pickle: tensors in safetensors files, everything else in JSON.

A checkpoint is a directory::

    model.safetensors       the weights
    optimizer.safetensors   optimizer tensors and RNG states   (training checkpoints only)
    state.json              counters, optimizer hyperparameters, Python RNG state, and
                            the manifest: the size and SHA-256 of each file above
                            ("files") and of state.json's own contents ("sha256")

Every file is checked against the manifest when it is read, so a damaged
checkpoint (a flipped bit, a truncated file) is one :class:`RunError` naming the
file, never a traceback or a silently different model. Checkpoints written
before the manifest existed still load, unchecked.

Saving ``X`` never leaves it without a complete checkpoint, whatever moment a
crash, a kill or a full disk strikes:

1. the new checkpoint is written into ``X.tmp`` (state.json last; each file and
   the folder flushed to disk);
2. ``X.old`` is removed (when a crash left one), ``X`` renamed ``X.old``,
   ``X.tmp`` renamed ``X``;
3. ``X.old`` is removed.

The newest complete checkpoint is therefore the first complete one of ``X.tmp``
(trusted only with a verified manifest), ``X`` and ``X.old``: that is the one
:func:`checkpoint_path` loads, and the one the next save first moves to ``X``
before it writes anything (finishing whatever a crash interrupted).

Files are written through :mod:`attnrnn.training.files`: never through a
symbolic link, and a disk error (full, read-only, file too large) is one
:class:`RunError` with the partial files removed and the last good checkpoint
intact.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import nn

from attnrnn.errors import RunError
from attnrnn.training.averaging import WeightAverage
from attnrnn.training.faults import crash_point
from attnrnn.training.files import (
    READ_FLAGS,
    create_new,
    reason,
    refuse_link,
    remove,
    sync_directory,
    write_and_close,
)

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
STAGING_SUFFIX = ".tmp"  # X.tmp: the checkpoint being written
PREVIOUS_SUFFIX = ".old"  # X.old: the previous one, while X.tmp takes its place


# --------------------------------------------------------------------------- saving


def save_checkpoint(
    directory: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    state: dict[str, Any] | None = None,
    other_ranks: Sequence[RandomState] = (),
    average: WeightAverage | None = None,
) -> None:
    """Write a checkpoint directory atomically (see the module docstring).

    ``other_ranks``: the :func:`random_state` of processes 1, 2... of a data-parallel
    run (this process is rank 0), so that each can resume its own random numbers.
    ``average``: the moving average of the weights, kept beside the optimizer state.

    Raises :class:`RunError` when it cannot be written (a disk error, a symbolic
    link in the way); the newest complete checkpoint then stays loadable.
    """
    directory = Path(directory)
    files = {MODEL_FILE: safetensors.torch.save(weights_on_cpu(model))}
    document: dict[str, Any] = {"state": state or {}}
    if optimizer is not None:
        tensors, optimizer_json = _flatten_optimizer(optimizer)
        tensors.update(_rng_tensors())
        for rank, other in enumerate(other_ranks, start=1):
            tensors.update({f"rank.{rank}.{name}": value for name, value in other.tensors.items()})
        if average is not None:
            tensors.update(average.tensors())
        files[OPTIMIZER_FILE] = safetensors.torch.save(tensors)
        document["optimizer"] = optimizer_json
        document["python_rng"] = _python_rng_to_json(random.getstate())
        if other_ranks:
            document["rank_python_rng"] = [other.python for other in other_ranks]
    files[STATE_FILE] = _manifest(document, files)
    try:
        for path in _siblings(directory):
            refuse_link(path)
        directory.parent.mkdir(parents=True, exist_ok=True)
        _settle(directory)
        _write_staging(_sibling(directory, STAGING_SUFFIX), files)
        crash_point("checkpoint_manifest_written")
        _promote(directory)
    except OSError as error:
        raise RunError(f"cannot write checkpoint {directory}: {reason(error)}") from None


def weights_on_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state as separate contiguous CPU tensors.

    Copies, because safetensors refuses tensors that share storage: tied
    weights, and the flattened weight buffer cuDNN keeps for an RNN on a GPU.
    """
    return {
        name: tensor.detach().to("cpu", copy=True).contiguous()
        for name, tensor in model.state_dict().items()
    }


def _manifest(document: dict[str, Any], files: dict[str, bytes]) -> bytes:
    """state.json: ``document`` with each file's size and SHA-256, and its own."""
    document = json.loads(json.dumps(document))  # the form it is read back in
    document["files"] = {
        name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for name, data in files.items()
    }
    document["sha256"] = _document_digest(document)
    return json.dumps(document, indent=2).encode("utf-8")


def _write_staging(staging: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (state.json last) into the new folder ``staging``; on a disk
    error remove what was written."""
    os.mkdir(staging, 0o777)
    try:
        for name, data in files.items():  # STATE_FILE is the last key
            if name == STATE_FILE:
                crash_point("checkpoint_files_written")
            write_and_close(create_new(staging / name), data)
        sync_directory(staging)
    except OSError:
        remove(staging, missing_ok=True)
        raise


def _promote(directory: Path) -> None:
    """Move the complete ``X.tmp`` to ``X``, keeping ``X`` as ``X.old`` until then."""
    staging, previous = _sibling(directory, STAGING_SUFFIX), _sibling(directory, PREVIOUS_SUFFIX)
    if os.path.lexists(directory):
        remove(previous, missing_ok=True)  # X and X.tmp are complete
        os.replace(directory, previous)
        sync_directory(directory.parent)
        crash_point("checkpoint_old_moved")
    os.replace(staging, directory)
    sync_directory(directory.parent)
    crash_point("checkpoint_new_moved")
    with contextlib.suppress(OSError):  # a leftover X.old is harmless: the next save removes it
        remove(previous, missing_ok=True)
    crash_point("checkpoint_swapped")


def _settle(directory: Path) -> None:
    """Finish what a crash interrupted: leave the newest complete checkpoint at ``X``
    and nothing at ``X.tmp`` or ``X.old``; every step keeps one complete copy."""
    staging, previous = _sibling(directory, STAGING_SUFFIX), _sibling(directory, PREVIOUS_SUFFIX)
    if not (os.path.lexists(staging) or os.path.lexists(previous)):
        return
    newest = _newest_complete(directory)[0]
    if newest == staging:
        _promote(directory)
        return
    remove(staging, missing_ok=True)
    if newest == previous:
        remove(directory, missing_ok=True)  # damaged, or it would be the newest
        os.replace(previous, directory)
        sync_directory(directory.parent)
    elif newest == directory:
        remove(previous, missing_ok=True)


# --------------------------------------------------------------------------- loading


def checkpoint_path(directory: Path) -> Path:
    """The newest complete checkpoint saved at ``directory``: ``directory`` itself, or
    ``X.tmp`` / ``X.old`` beside it when a crash interrupted a save.

    When ``directory`` is alone (the usual case) its files are checked as they are
    loaded; when a crash left copies beside it, each candidate is verified here.
    Raises :class:`RunError` when there is none.
    """
    directory = Path(directory)
    staging, previous = _sibling(directory, STAGING_SUFFIX), _sibling(directory, PREVIOUS_SUFFIX)
    if not (os.path.lexists(staging) or os.path.lexists(previous)):
        missing = [name for name in (STATE_FILE, MODEL_FILE) if not (directory / name).is_file()]
        if not missing:
            return directory
        if not directory.is_dir():
            raise RunError(f"{directory}: no complete checkpoint here")
        raise RunError(f"{directory}: no complete checkpoint here ({missing[0]} is missing)")
    newest, problems = _newest_complete(directory)
    if newest is None:
        raise RunError(f"{directory}: no complete checkpoint here ({'; '.join(problems)})")
    return newest


def has_checkpoint(directory: Path) -> bool:
    """Whether a checkpoint was ever saved at ``directory``: ``X`` or ``X.old`` exists
    (complete or damaged: loading a damaged one is the error that names the file), or
    a crash left a complete ``X.tmp`` (the very first save)."""
    directory = Path(directory)
    staging, previous = _sibling(directory, STAGING_SUFFIX), _sibling(directory, PREVIOUS_SUFFIX)
    if os.path.lexists(directory) or os.path.lexists(previous):
        return True
    return os.path.lexists(staging) and _newest_complete(directory)[0] is not None


def load_weights(directory: Path, model: nn.Module, device: str | torch.device = "cpu") -> None:
    """Load a checkpoint's weights into ``model`` (shapes must match), checking the
    file against the manifest. ``device`` is kept for callers: the weights go to
    wherever the model's parameters are."""
    del device
    chosen = checkpoint_path(directory)
    _load_weights(chosen, _read_document(chosen), model)


def load_training_state(
    directory: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    rank: int = 0,
    average: WeightAverage | None = None,
) -> dict[str, Any]:
    """Restore weights, optimizer and RNG states (and ``average``, the moving average of
    the weights, when given); return the saved trainer counters.

    ``rank``: the process of a data-parallel run; it takes its own RNG states when the
    checkpoint has them (a process the saving run did not have keeps its own)."""
    chosen = checkpoint_path(directory)
    document = _read_document(chosen)
    _load_weights(chosen, document, model)
    if "optimizer" not in document:
        raise RunError(f"{chosen}: this checkpoint has no optimizer state to resume from")
    path = chosen / OPTIMIZER_FILE
    tensors = _load_tensors(path, _read_checked(chosen, OPTIMIZER_FILE, document))
    try:
        optimizer.load_state_dict(_unflatten_optimizer(tensors, document["optimizer"]))
        if average is not None:
            average.load(tensors)
        if rank == 0:
            _restore_rng(tensors)
            random.setstate(_python_rng_from_json(document["python_rng"]))
        elif rank <= len(document.get("rank_python_rng", [])):
            prefix = f"rank.{rank}."
            _restore_rng({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
            random.setstate(_python_rng_from_json(document["rank_python_rng"][rank - 1]))
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise RunError(f"{path}: the optimizer state does not fit this model ({error})") from None
    return dict(document["state"])


def read_state(directory: Path) -> dict[str, Any]:
    """The trainer counters saved in a checkpoint, without loading anything else."""
    return dict(_read_document(checkpoint_path(directory))["state"])


def _load_weights(chosen: Path, document: dict[str, Any], model: nn.Module) -> None:
    path = chosen / MODEL_FILE
    tensors = _load_tensors(path, _read_checked(chosen, MODEL_FILE, document))
    try:
        model.load_state_dict(tensors, strict=True)
    except (RuntimeError, ValueError) as error:
        raise RunError(f"{path}: weights do not fit this model ({error})") from None


def _load_tensors(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    try:
        return safetensors.torch.load(data)
    except SafetensorError as error:
        raise RunError(f"{path}: damaged ({error})") from None


def _read_document(directory: Path) -> dict[str, Any]:
    """state.json, its own checksum verified (when it has one)."""
    path = directory / STATE_FILE
    try:
        document = json.loads(_read_bytes(path).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise RunError(f"{path}: damaged (not UTF-8 JSON: {error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("state"), dict):
        raise RunError(f"{path}: damaged (not a checkpoint's state)")
    if ("files" in document or "sha256" in document) and (
        document.get("sha256") != _document_digest(document)
        or not _valid_listing(document.get("files"))
    ):
        raise RunError(f"{path}: damaged (its checksum does not match its contents)")
    return document


def _valid_listing(files: Any) -> bool:
    return isinstance(files, dict) and all(
        isinstance(entry, dict)
        and isinstance(entry.get("bytes"), int)
        and isinstance(entry.get("sha256"), str)
        for entry in files.values()
    )


def _read_checked(directory: Path, name: str, document: dict[str, Any]) -> bytes:
    """The bytes of ``directory/name``, checked against the manifest (when it has one)."""
    path = directory / name
    listed = document.get("files")
    if listed is not None and name not in listed:
        raise RunError(f"{directory / STATE_FILE}: damaged (it does not list {name})")
    data = _read_bytes(path)
    if listed is not None:
        expected = listed[name]
        if len(data) != expected["bytes"]:
            raise RunError(
                f"{path}: damaged ({len(data)} bytes where {expected['bytes']} were written)"
            )
        if hashlib.sha256(data).hexdigest() != expected["sha256"]:
            raise RunError(f"{path}: damaged (its SHA-256 checksum does not match {STATE_FILE})")
    return data


def _read_bytes(path: Path) -> bytes:
    """The contents of the regular file ``path`` (not through a symbolic link)."""
    try:
        descriptor = os.open(path, READ_FLAGS)
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except OSError as error:
        raise RunError(f"cannot read {path}: {reason(error)}") from None
    with open(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise RunError(f"cannot read {path}: not a regular file")
        try:
            return handle.read()
        except OSError as error:
            raise RunError(f"cannot read {path}: {reason(error)}") from None


def _newest_complete(directory: Path) -> tuple[Path | None, list[str]]:
    """The first complete one of X.tmp (only with a manifest), X and X.old, and what
    is wrong with those before it. A link at X.tmp or X.old is never followed."""
    problems = []
    for suffix in (STAGING_SUFFIX, "", PREVIOUS_SUFFIX):
        candidate = _sibling(directory, suffix)
        if not os.path.lexists(candidate) or (suffix and candidate.is_symlink()):
            continue
        try:
            document = _read_document(candidate)
            if suffix == STAGING_SUFFIX and "files" not in document:
                raise RunError(f"{candidate / STATE_FILE}: no checksums to trust it by")
            for name in document.get("files", [MODEL_FILE]):
                _read_checked(candidate, name, document)
        except RunError as error:
            problems.append(str(error))
            continue
        return candidate, problems
    return None, problems


# --------------------------------------------------------------------------- file system


def _sibling(directory: Path, suffix: str) -> Path:
    return directory.with_name(directory.name + suffix)


def _siblings(directory: Path) -> tuple[Path, Path, Path]:
    """X, X.tmp, X.old."""
    return (
        directory,
        _sibling(directory, STAGING_SUFFIX),
        _sibling(directory, PREVIOUS_SUFFIX),
    )


def _document_digest(document: dict[str, Any]) -> str:
    """SHA-256 of state.json's contents but its own checksum, in a canonical form."""
    body = {key: value for key, value in document.items() if key != "sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


# --------------------------------------------------------------------------- state


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


@dataclass(frozen=True)
class RandomState:
    """One process's random-number states: torch's (CPU and its CUDA devices) as tensors,
    Python's as JSON."""

    tensors: dict[str, torch.Tensor]
    python: list[Any]


def random_state() -> RandomState:
    """This process's random-number states, to save in another process's checkpoint."""
    return RandomState(_rng_tensors(), _python_rng_to_json(random.getstate()))


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
