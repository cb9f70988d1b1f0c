"""Typed configuration: frozen dataclasses, stored as YAML.

Every component has a frozen dataclass whose field defaults are the only
defaults in the code base. A run configuration nests them. YAML is only how a
configuration is stored: :func:`from_dict` checks every key and value against
the dataclass fields, rejects unknown keys with a "did you mean" hint, and
:func:`apply_overrides` applies ``--set model.encoder.hidden_size=512``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from attnrnn.errors import ConfigError

T = TypeVar("T")


# --------------------------------------------------------------------------- shared parts


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """The recurrent encoder (see :class:`attnrnn.nn.encoders.RNNEncoder`)."""

    cell: Literal["gru", "lstm", "rnn"] = "gru"
    hidden_size: int = 256
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_positive(self, "hidden_size", "num_layers")
        check_probability(self, "dropout")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """AdamW with warmup and a decay schedule (see :mod:`attnrnn.training.optim`)."""

    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_steps: int = 100
    schedule: Literal["constant", "linear", "cosine", "plateau"] = "linear"
    min_learning_rate_ratio: float = 0.0
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    plateau_start_step: int = 0
    clip_norm: float = 5.0

    def __post_init__(self) -> None:
        check_positive(self, "learning_rate")
        check_non_negative(self, "weight_decay", "warmup_steps", "plateau_start_step", "clip_norm")
        check_probability(self, "min_learning_rate_ratio")
        if not 0.0 < self.plateau_factor < 1.0:
            raise ConfigError(f"plateau_factor must be in (0, 1), got {self.plateau_factor}")


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """The generic training loop (see :class:`attnrnn.training.trainer.Trainer`)."""

    epochs: int = 10
    max_steps: int | None = None
    max_minutes: float | None = None
    batch_tokens: int = 4000
    max_batch_size: int = 128
    eval_every_steps: int | None = None
    early_stopping_patience: int | None = 3
    log_every_steps: int = 50
    seed: int = 1
    deterministic: bool = False
    device: str = "auto"
    num_threads: int | None = None
    precision: Literal["fp32", "bf16"] = "fp32"
    progress: bool = True

    def __post_init__(self) -> None:
        check_positive(self, "epochs", "batch_tokens", "max_batch_size", "log_every_steps")
        for name in ("max_steps", "eval_every_steps", "early_stopping_patience", "num_threads"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive or null, got {value}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ConfigError(f"max_minutes must be positive or null, got {self.max_minutes}")
        if self.device != "auto" and not self.device.startswith(("cpu", "cuda", "mps")):
            raise ConfigError(f"device must be auto, cpu, cuda[:N] or mps, got {self.device!r}")


@dataclasses.dataclass(frozen=True)
class InferenceConfig:
    """Batching of prediction, evaluation and dev scoring (not of training).

    Inputs are sorted by length and grouped into batches of at most
    ``batch_tokens`` padded tokens (frames for speech; beam search counts each
    input K times) and ``max_batch_size`` inputs; results come back in input
    order. ``stream_wait_ms``: how long the CLI, reading standard input, waits
    for more lines before it answers the ones it has.
    """

    batch_tokens: int = 8000
    max_batch_size: int = 128
    stream_wait_ms: int = 50

    def __post_init__(self) -> None:
        check_positive(self, "batch_tokens", "max_batch_size")
        check_non_negative(self, "stream_wait_ms")


# --------------------------------------------------------------------------- loading


def from_dict(cls: type[T], data: Any, where: str = "", base: Any = None) -> T:
    """Build the dataclass ``cls`` from a plain mapping, checking every key and value.

    ``where`` is the dotted path of ``data`` inside the whole configuration,
    used in messages (``model.encoder``). Keys ``data`` leaves out take their
    values from ``base`` when given, else the field defaults; a nested section
    given in part keeps the rest of its default (a task whose ``trainer`` default
    has ``batch_tokens: 20000`` keeps it when a configuration sets only
    ``trainer.epochs``).
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'configuration'}: expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    names = list(fields)
    values: dict[str, Any] = {}
    if base is not None:
        values = {name: getattr(base, name) for name in names}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise ConfigError(f"unknown key {path!r}{_did_you_mean(str(key), names)}")
        default = values[key] if key in values else _default(fields[key])
        if dataclasses.is_dataclass(default) and isinstance(value, Mapping):
            values[key] = from_dict(type(default), value, path, base=default)
        else:
            values[key] = _convert(hints[key], value, path)
    try:
        return cls(**values)
    except ConfigError as error:
        raise ConfigError(f"{where or 'configuration'}: {error}") from None
    except TypeError as error:  # a required field is missing
        raise ConfigError(f"{where or 'configuration'}: {error}") from None


def _default(field: dataclasses.Field) -> Any:
    """A field's default value (None when it has none)."""
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def to_dict(config: Any) -> dict[str, Any]:
    """The plain mapping of a configuration dataclass (for YAML)."""
    return dataclasses.asdict(config)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such configuration file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error.reason})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def save_yaml(config: Any, path: str | Path) -> None:
    """Write a configuration dataclass as YAML (through a temporary file and a rename)."""
    text = yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True)
    temporary = Path(path).with_name(Path(path).name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested mapping."""
    result = _deep_copy(data)
    for override in overrides:
        key, separator, raw = override.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {override!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return result


# --------------------------------------------------------------------------- internals


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: _deep_copy(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_deep_copy(value) for value in data]
    return data


def _did_you_mean(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; valid keys: {', '.join(candidates)}"


def _convert(hint: Any, value: Any, path: str) -> Any:
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, path)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if errors else f"{path}: invalid value {value!r}")
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices:
            listed = ", ".join(repr(choice) for choice in choices)
            hint_text = _did_you_mean(str(value), [str(c) for c in choices])
            if "did you mean" not in hint_text:
                hint_text = ""
            raise ConfigError(f"{path}: {value!r} is not one of {listed}{hint_text}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (item_hint, *_rest) = get_args(hint) or (Any,)
        return tuple(_convert(item_hint, item, f"{path}[{i}]") for i, item in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, path)  # type: ignore[arg-type]
    return _convert_scalar(hint, value, path)


def _convert_scalar(hint: Any, value: Any, path: str) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    raise ConfigError(f"{path}: unsupported configuration type {hint!r}")


def check_positive(config: Any, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if value <= 0:
            raise ConfigError(f"{name} must be positive, got {value}")


def check_non_negative(config: Any, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if value < 0:
            raise ConfigError(f"{name} must not be negative, got {value}")


def check_probability(config: Any, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {value}")
