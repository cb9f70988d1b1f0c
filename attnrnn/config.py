"""Typed configuration: frozen dataclasses, stored as YAML.

Every component has a frozen dataclass whose field defaults are the only
defaults in the code base. A run configuration nests them. YAML is only how a
configuration is stored: :func:`from_dict` checks every key and value against
the dataclass fields, rejects unknown keys with a "did you mean" hint, and
:func:`apply_overrides` applies ``--set model.encoder.hidden_size=512``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

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
    """AdamW with warmup and a decay schedule (see :mod:`attnrnn.training.optim`).

    ``warmup_ratio`` > 0 sets the warmup as that fraction of the run's updates (all
    epochs, or ``max_steps``) instead of ``warmup_steps``: a schedule that fits small and
    large training sets alike.

    Fine-tuning a pretrained model (ULMFiT, Howard & Ruder 2018), for models that name
    their layer groups from the input up (``layer_groups()``; the classifier: embedding,
    each encoder layer, attention and MLP):

    - ``layer_lr_decay``: each group learns at this factor of the rate of the group
      above it (discriminative learning rates; ULMFiT divides by 2.6: 0.385);
    - ``gradual_unfreezing``: the top group alone trains in the first epoch, one more
      group joins in each epoch after, from the top down.
    """

    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_steps: int = 100
    warmup_ratio: float = 0.0
    schedule: Literal["constant", "linear", "cosine", "plateau"] = "linear"
    min_learning_rate_ratio: float = 0.0
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    plateau_start_step: int = 0
    clip_norm: float = 5.0
    layer_lr_decay: float = 1.0
    gradual_unfreezing: bool = False

    def __post_init__(self) -> None:
        check_positive(self, "learning_rate")
        if not 0.0 < self.layer_lr_decay <= 1.0:
            raise ConfigError(f"layer_lr_decay must be in (0, 1], got {self.layer_lr_decay}")
        check_non_negative(self, "weight_decay", "warmup_steps", "plateau_start_step", "clip_norm")
        check_probability(self, "min_learning_rate_ratio", "beta1", "beta2")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
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
    evals_per_epoch: int | None = None
    early_stopping_patience: int | None = 3
    min_evaluations: int = 3
    log_every_steps: int = 50
    seed: int = 1
    deterministic: bool = False
    device: str = "auto"
    num_threads: int | None = None
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    progress: bool = True
    accumulate_steps: int = 1
    distributed_timeout_seconds: float = 600.0
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        check_positive(
            self,
            "epochs",
            "batch_tokens",
            "max_batch_size",
            "log_every_steps",
            "accumulate_steps",
            "distributed_timeout_seconds",
        )
        check_non_negative(self, "min_evaluations")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(
                f"trainer.ema_decay must be 0 (off) or in (0, 1), e.g. 0.999; got {self.ema_decay}"
            )
        if self.eval_every_steps is not None and self.evals_per_epoch is not None:
            raise ConfigError(
                "set eval_every_steps or evals_per_epoch, not both (null both: one dev check at "
                "the end of every epoch)"
            )
        names = ("max_steps", "eval_every_steps", "evals_per_epoch", "early_stopping_patience")
        for name in (*names, "num_threads"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive or null, got {value}")
        if self.max_minutes is not None and not 0 < self.max_minutes < math.inf:
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
    """Read a YAML mapping, with errors that name the file.

    Within bounded time and memory: a file over :data:`MAX_YAML_BYTES`, nesting deeper
    than :data:`MAX_YAML_DEPTH`, more than :data:`MAX_YAML_NODES` values once aliases
    are expanded (the "billion laughs"), or a number longer than
    :data:`MAX_YAML_NUMBER_CHARACTERS` is a :class:`ConfigError`.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such configuration file")
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_YAML_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read: {error.strerror}") from None
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_YAML_BYTES} bytes; not a configuration")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error.reason})") from None
    data = parse_yaml(text, str(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def parse_yaml(text: str, where: str) -> Any:
    """The value of the YAML document ``text`` (safe tags only), within the limits of
    :func:`load_yaml`; every problem is a :class:`ConfigError` naming ``where``."""
    loader = None
    try:
        loader = _BoundedLoader(text)  # checks the characters
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node)
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        raise ConfigError(f"{where}: invalid YAML: {_yaml_problem(error)}") from None
    except ValueError as error:  # a date such as 2020-13-45
        raise ConfigError(f"{where}: invalid YAML value: {error}") from None
    finally:
        if loader is not None:
            loader.dispose()


def save_yaml(config: Any, path: str | Path) -> None:
    """Write a configuration dataclass as YAML, atomically and never through a symbolic
    link (:func:`attnrnn.training.files.write_text_atomic`); a failure (disk full) is a
    :class:`ConfigError` naming ``path``, with nothing left behind."""
    from attnrnn.errors import RunError
    from attnrnn.training.files import write_text_atomic

    text = yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True)
    try:
        write_text_atomic(Path(path), text)
    except RunError as error:
        raise ConfigError(str(error)) from None


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested mapping."""
    result = _deep_copy(data)
    for override in overrides:
        key, separator, raw = override.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {override!r}")
        try:
            value = parse_yaml(raw, f"--set {key}") if raw.strip() else None
        except ConfigError as error:
            if "invalid YAML:" not in str(error):
                raise
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

# Limits of what a configuration file may hold: far above any real configuration
# (about 100 values, 5 levels, a few kilobytes), far below what exhausts memory.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 100_000
MAX_YAML_NUMBER_CHARACTERS = 100
_INTEGER_LIMIT = 2**63


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting deeper than :data:`MAX_YAML_DEPTH` while
    it composes (before Python's recursion limit is near) and numbers longer than
    :data:`MAX_YAML_NUMBER_CHARACTERS` characters (a 5,000-digit integer, or a
    sexagesimal ``1:1:1:...`` whose value takes quadratic time)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise ComposerError(
                    None,
                    None,
                    f"nested more than {MAX_YAML_DEPTH} levels deep",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node: Any) -> Any:
        self._check_number(node)
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node: Any) -> Any:
        self._check_number(node)
        return super().construct_yaml_float(node)

    def _check_number(self, node: Any) -> None:
        if len(node.value) > MAX_YAML_NUMBER_CHARACTERS:
            raise ConstructorError(
                None,
                None,
                f"a number longer than {MAX_YAML_NUMBER_CHARACTERS} characters",
                node.start_mark,
            )


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)
_BoundedLoader.add_constructor("tag:yaml.org,2002:float", _BoundedLoader.construct_yaml_float)


def _children(node: Any) -> list[Any]:
    """The nodes directly inside a composed YAML node (keys and values of a mapping)."""
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _check_expanded_size(root: Any) -> None:
    """Refuse a document with more than :data:`MAX_YAML_NODES` nodes, or deeper than
    :data:`MAX_YAML_DEPTH`, once every alias is replaced by what it names, or with an
    alias inside the node it names. Each distinct node is visited once (no recursion),
    so nine aliases of nine aliases of ... cost nine steps, not 9**9."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, expanded depth)
    open_nodes: set[int] = set()  # nodes whose children are being measured
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, measured = stack.pop()
        key = id(node)
        if measured:
            children = [sizes[id(child)] for child in _children(node)]
            size = 1 + sum(child_size for child_size, _ in children)
            depth = 1 + max((child_depth for _, child_depth in children), default=0)
            open_nodes.discard(key)
            if size > MAX_YAML_NODES or depth > MAX_YAML_DEPTH:
                limits = f"{MAX_YAML_NODES} values or {MAX_YAML_DEPTH} levels"
                raise ComposerError(
                    None, None, f"aliases expand to more than {limits}", node.start_mark
                )
            sizes[key] = (size, depth)
        elif key not in sizes:
            if key in open_nodes:
                raise ComposerError(
                    None, None, "an alias inside the node it refers to", node.start_mark
                )
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))


def _yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong, and where (line and column from 1)."""
    if not isinstance(error, yaml.MarkedYAMLError):
        return " ".join(str(error).split())
    parts = [part for part in (error.context, error.problem) if part]
    where = error.problem_mark or error.context_mark
    text = " ".join(" ".join(parts).split()) or "malformed"
    if where is not None:
        text += f" (line {where.line + 1}, column {where.column + 1})"
    return text


def _shown(value: Any, limit: int = 60) -> str:
    """``repr(value)`` for a message, cut to ``limit`` characters."""
    if isinstance(value, int) and abs(value) >= 10**limit:
        return f"an integer of more than {limit} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


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
        integer: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            integer = value
        elif isinstance(value, float) and value.is_integer():
            integer = int(value)
        if integer is None:
            raise ConfigError(f"{path}: expected an integer, got {_shown(value)}")
        if not -_INTEGER_LIMIT <= integer < _INTEGER_LIMIT:
            raise ConfigError(f"{path}: {_shown(value)} is out of range (at most 2**63 - 1)")
        return integer
    if hint is float:
        number: float | None = None
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            # "1e-3" from a string too; a non-number string, an int beyond floats: None
            with contextlib.suppress(ValueError, OverflowError):
                number = float(value)
        if number is None:
            raise ConfigError(f"{path}: expected a number, got {_shown(value)}")
        if not math.isfinite(number):
            raise ConfigError(f"{path}: expected a finite number, got {_shown(value)}")
        return number
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: expected a string, got {_shown(value)}")
    raise ConfigError(f"{path}: unsupported configuration type {hint!r}")


def check_positive(config: Any, *names: str) -> None:
    """Each field of ``names`` must be a finite number above 0."""
    for name in names:
        value = getattr(config, name)
        if not 0 < value < math.inf:  # false for NaN
            raise ConfigError(f"{name} must be positive, got {value}")


def check_non_negative(config: Any, *names: str) -> None:
    """Each field of ``names`` must be a finite number, 0 or above."""
    for name in names:
        value = getattr(config, name)
        if not 0 <= value < math.inf:  # false for NaN
            raise ConfigError(f"{name} must not be negative, got {value}")


def check_probability(config: Any, *names: str) -> None:
    """Each field of ``names`` must be in [0, 1)."""
    for name in names:
        value = getattr(config, name)
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {value}")
