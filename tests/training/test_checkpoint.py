"""Checkpoints: no checkpoint lost to a crash at any step of a save or of its recovery,
every damaged file named in one error, disk errors without leftovers, and no write
through a symbolic link (issue 14, defects 4, 5, 7 and 8)."""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import itertools
import json
import os
import random
import re
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from attnrnn.errors import RunError
from attnrnn.training import checkpoint, files

MODEL, OPTIMIZER, STATE = "model.safetensors", "optimizer.safetensors", "state.json"
SEEDS = {"A": 1, "B": 2, "C": 3}  # A saved first, then B, then C


class Net(nn.Module):
    """Twelve small tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(5, 4)  # 1 tensor
        self.rnn = nn.LSTM(4, 3, num_layers=2)  # 8
        self.norm = nn.LayerNorm(3)  # 2
        self.output = nn.Linear(3, 2, bias=False)  # 1


@functools.cache
def trained(tag: str) -> tuple[Net, torch.optim.Optimizer]:
    """A model and its Adam optimizer after one step, different for each tag."""
    torch.manual_seed(SEEDS[tag])
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    torch.stack([(parameter**2).sum() for parameter in model.parameters()]).sum().backward()
    optimizer.step()
    return model, optimizer


def save(directory: Path, tag: str, with_optimizer: bool = True) -> None:
    model, optimizer = trained(tag)
    torch.manual_seed(0)  # the RNG states saved with it: the same bytes every time
    random.seed(0)
    checkpoint.save_checkpoint(
        directory, model, optimizer if with_optimizer else None, {"tag": tag}
    )


def loaded_tag(directory: Path) -> str:
    """Load the training state; check the weights are those of the tag it says."""
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    tag = checkpoint.load_training_state(directory, model, optimizer)["tag"]
    for name, tensor in trained(tag)[0].state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor, rtol=0, atol=0)
    assert optimizer.state_dict()["state"], "the optimizer state was restored"
    return tag


@pytest.fixture(autouse=True)
def _keep_the_global_rng() -> Iterator[None]:
    torch_state, python_state = torch.get_rng_state(), random.getstate()
    yield
    torch.set_rng_state(torch_state)
    random.setstate(python_state)


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> dict[str, dict[str, bytes]]:
    """The files of each tag's checkpoint, saved without a crash."""
    files = {}
    for tag in SEEDS:
        directory = tmp_path_factory.mktemp("reference") / "last"
        save(directory, tag)
        files[tag] = {path.name: path.read_bytes() for path in directory.iterdir()}
    return files


# --------------------------------------------------------------------------- crashes (4)

FILE_SYSTEM_CALLS = ("mkdir", "open", "write", "fsync", "replace", "rename", "unlink", "rmdir")


class Crash(BaseException):
    """A kill: nothing after it runs (no `except OSError` cleanup catches it)."""


@contextlib.contextmanager
def crash_after(monkeypatch, calls: int | None) -> Iterator[list[str]]:
    """Let ``calls`` file-system calls through, then crash at the next (a write crashes
    half done); yield the log of calls made. fsync only counts (fast): a kill, unlike a
    power cut, loses nothing already written."""
    made: list[str] = []

    def wrap(name: str, original: Callable) -> Callable:
        def call(*args, **kwargs):
            if calls is not None and len(made) >= calls:
                if name == "write":
                    descriptor, data = args
                    original(descriptor, bytes(data[: len(data) // 2]))
                raise Crash(name)
            made.append(name)
            return None if name == "fsync" else original(*args, **kwargs)

        return call

    with monkeypatch.context() as patch:
        for name in FILE_SYSTEM_CALLS:
            patch.setattr(os, name, wrap(name, getattr(os, name)))
        yield made


def save_crashing(monkeypatch, directory: Path, tag: str, after: int) -> bool:
    """Save, crashing after ``after`` file-system calls; whether it crashed."""
    with crash_after(monkeypatch, after):
        try:
            save(directory, tag)
        except Crash:
            return True
    return False


def newest_complete(directory: Path, references: dict[str, dict[str, bytes]]) -> str | None:
    """The newest tag of which X, X.tmp or X.old holds a complete, intact copy."""
    complete = set()
    for name in (directory.name, directory.name + ".tmp", directory.name + ".old"):
        candidate = directory.with_name(name)
        if candidate.is_dir():
            files = {path.name: path.read_bytes() for path in candidate.iterdir()}
            complete |= {tag for tag, reference in references.items() if files == reference}
    return max(complete, default=None)  # "C" > "B" > "A": the order they were saved in


def check_recovery(directory: Path, references: dict[str, dict[str, bytes]]) -> None:
    expected = newest_complete(directory, references)
    assert checkpoint.has_checkpoint(directory) == (expected is not None)
    if expected is None:
        with pytest.raises(RunError, match="no complete checkpoint"):
            checkpoint.checkpoint_path(directory)
    else:
        assert loaded_tag(directory) == expected


def tree(folder: Path) -> tuple:
    """What a folder holds: each path, with a digest of each file."""
    entries = []
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            entries.append((name, f"link to {os.readlink(path)}"))
        elif path.is_dir():
            entries.append((name, "folder"))
        else:
            entries.append((name, hashlib.sha256(path.read_bytes()).hexdigest()))
    return tuple(entries)


def test_a_crash_at_any_step_of_a_save_or_of_its_recovery_keeps_the_newest_checkpoint(
    tmp_path, monkeypatch, references
):
    """Crash (as a kill would) between any two file-system calls of the first save (A),
    of a save over it (B), and of the save after that (C, which first finishes what the
    crash left): loading gives the newest checkpoint that was complete, every time."""
    crashed_states: dict[tuple, Path] = {}
    runs = itertools.count()
    for saved_before, tag in (("", "A"), ("A", "B")):
        for after in itertools.count():
            directory = tmp_path / f"run-{next(runs)}" / "last"
            if saved_before:
                save(directory, saved_before)
            else:
                directory.parent.mkdir()
            crashed = save_crashing(monkeypatch, directory, tag, after)
            check_recovery(directory, references)
            if not crashed:
                assert os.listdir(directory.parent) == ["last"]
                break
            crashed_states.setdefault(tree(directory.parent), directory.parent)
    assert len(crashed_states) > 10
    for state in crashed_states.values():
        for after in itertools.count():
            directory = tmp_path / f"run-{next(runs)}" / "last"
            shutil.copytree(state, directory.parent)
            crashed = save_crashing(monkeypatch, directory, "C", after)
            check_recovery(directory, references)
            if not crashed:
                assert os.listdir(directory.parent) == ["last"]
                break
            shutil.rmtree(directory.parent)


def test_checkpoint_path_prefers_a_complete_tmp_and_skips_a_partial_one(tmp_path):
    directory = tmp_path / "last"
    save(directory, "A")
    save(tmp_path / "B" / "last", "B")
    # the moment between "last -> last.old" and "last.tmp -> last"
    os.replace(directory, tmp_path / "last.old")
    os.replace(tmp_path / "B" / "last", tmp_path / "last.tmp")
    assert checkpoint.checkpoint_path(directory) == tmp_path / "last.tmp"
    assert checkpoint.read_state(directory) == {"tag": "B"}
    # a crash while writing last.tmp: its state.json is missing
    (tmp_path / "last.tmp" / STATE).unlink()
    assert checkpoint.checkpoint_path(directory) == tmp_path / "last.old"
    assert loaded_tag(directory) == "A"


# --------------------------------------------------------------------------- damage (5)


def tensor_regions(data: bytes) -> dict[str, tuple[int, int]]:
    """Where each tensor's bytes lie in a safetensors file."""
    header_size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_size])
    start = 8 + header_size
    return {
        name: (start + entry["data_offsets"][0], start + entry["data_offsets"][1])
        for name, entry in header.items()
        if name != "__metadata__"
    }


def test_one_flipped_bit_in_any_tensor_is_an_error_naming_the_file(tmp_path):
    directory = tmp_path / "best"
    save(directory, "A", with_optimizer=False)
    path = directory / MODEL
    original = path.read_bytes()
    regions = tensor_regions(original)
    assert len(regions) == 12
    for begin, end in regions.values():
        damaged = bytearray(original)
        damaged[(begin + end) // 2] ^= 0x04
        path.write_bytes(damaged)
        with pytest.raises(RunError, match=re.escape(f"{path}: damaged")):
            checkpoint.load_weights(directory, Net())
    path.write_bytes(original)
    checkpoint.load_weights(directory, Net())


def flip_state_value(data: bytes) -> bytes:
    """Valid JSON still, one value changed (as a flipped bit in a digit would)."""
    return data.replace(b'"tag": "A"', b'"tag": "C"')


DAMAGES: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "model truncated": (MODEL, lambda data: data[: len(data) // 2]),
    "model emptied": (MODEL, lambda data: b""),
    "model header size garbage": (MODEL, lambda data: b"\xff" * 8 + data[8:]),
    "model header damaged": (MODEL, lambda data: data[:9] + b"#" + data[10:]),
    "optimizer bit flipped": (
        OPTIMIZER,
        lambda data: data[:-3] + bytes([data[-3] ^ 1]) + data[-2:],
    ),
    "optimizer truncated": (OPTIMIZER, lambda data: data[:100]),
    "state not UTF-8": (STATE, lambda data: b"\xff\xfe" + data),
    "state truncated": (STATE, lambda data: data[: len(data) // 2]),
    "state value changed": (STATE, flip_state_value),
    "state not an object": (STATE, lambda data: b"[1, 2]"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_file_is_one_error_naming_it(tmp_path, damage):
    directory = tmp_path / "last"
    save(directory, "A")
    name, change = DAMAGES[damage]
    path = directory / name
    path.write_bytes(change(path.read_bytes()))
    with pytest.raises(RunError, match=re.escape(str(path))):
        loaded_tag(directory)


def test_a_missing_optimizer_file_is_one_error_naming_it(tmp_path):
    directory = tmp_path / "last"
    save(directory, "A")
    (directory / OPTIMIZER).unlink()
    checkpoint.load_weights(directory, Net())  # the weights alone are fine
    with pytest.raises(RunError, match=re.escape(f"{directory / OPTIMIZER}: missing")):
        loaded_tag(directory)


def make_legacy(directory: Path) -> None:
    """Turn a checkpoint into one saved before checksums existed."""
    document = json.loads((directory / STATE).read_text())
    del document["files"], document["sha256"]
    (directory / STATE).write_text(json.dumps(document, indent=2))


def test_a_checkpoint_without_checksums_still_loads_and_its_damage_is_still_one_error(tmp_path):
    directory = tmp_path / "last"
    save(directory, "A")
    make_legacy(directory)
    assert loaded_tag(directory) == "A"
    path = directory / MODEL
    path.write_bytes(b"\xff" * 8 + path.read_bytes()[8:])  # a SafetensorError underneath
    with pytest.raises(RunError, match=re.escape(f"{path}: damaged")):
        checkpoint.load_weights(directory, Net())


def test_a_damaged_checkpoint_gives_way_to_the_complete_copy_beside_it(tmp_path):
    directory = tmp_path / "last"
    save(directory, "A")
    save(tmp_path / "B", "B")
    os.replace(directory, tmp_path / "last.old")  # a crash left A as last.old
    os.replace(tmp_path / "B", directory)
    model = directory / MODEL
    model.write_bytes(model.read_bytes()[:-1] + b"\0")  # and B got damaged later
    assert loaded_tag(directory) == "A"
    save(directory, "C")  # the next save keeps A until C is complete
    assert loaded_tag(directory) == "C"
    assert os.listdir(tmp_path) == ["last"]


# --------------------------------------------------------------------------- disk errors (7)


@contextlib.contextmanager
def failing(monkeypatch, call: str, index: int, error_number: int) -> Iterator[list[int]]:
    """Make the ``index``-th call of ``os.<call>`` that writes fail with ``error_number``;
    yield a list that holds 1 once it has."""
    failed: list[int] = []
    seen = itertools.count()
    original = getattr(os, call)

    def writes(args, kwargs) -> bool:
        flags = args[1] if len(args) > 1 else kwargs.get("flags", 0)
        return call != "open" or bool(flags & os.O_CREAT)

    def replacement(*args, **kwargs):
        if writes(args, kwargs) and next(seen) == index:
            failed.append(1)
            raise OSError(error_number, os.strerror(error_number))
        return original(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, call, replacement)
        yield failed


@pytest.mark.parametrize(
    ("call", "error_number"),
    [
        ("write", errno.ENOSPC),
        ("write", errno.EFBIG),
        ("open", errno.EROFS),
        ("mkdir", errno.EROFS),
        ("fsync", errno.EIO),
    ],
)
def test_a_disk_error_while_saving_is_one_error_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch, call, error_number
):
    for index in itertools.count():
        directory = tmp_path / str(index) / "last"
        save(directory, "A")
        with failing(monkeypatch, call, index, error_number) as failed:
            try:
                save(directory, "B")
            except RunError as error:
                assert str(error).startswith(f"cannot write checkpoint {directory}: ")
                assert os.strerror(error_number) in str(error)
                assert loaded_tag(directory) == "A"
            else:
                assert loaded_tag(directory) == "B"
        assert os.listdir(directory.parent) == ["last"]  # no last.tmp, no partial file
        if not failed:
            break
    assert index > 0


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Files may not grow past ``limit`` bytes (a write past it fails: EFBIG)."""
    resource = pytest.importorskip("resource")
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_a_file_size_limit_while_saving_is_one_error_and_keeps_the_last_checkpoint(tmp_path):
    directory = tmp_path / "last"
    save(directory, "A")
    with file_size_limit(512), pytest.raises(RunError, match="File too large"):
        save(directory, "B")
    assert loaded_tag(directory) == "A"
    assert os.listdir(tmp_path) == ["last"]


def test_a_file_size_limit_while_writing_json_is_one_error_without_leftovers(tmp_path):
    path = tmp_path / "results.json"
    files.write_json_atomic(path, {"old": True})
    with file_size_limit(64), pytest.raises(RunError, match=f"{re.escape(str(path))}.*too large"):
        files.write_json_atomic(path, {"scores": list(range(100))})
    assert json.loads(path.read_text()) == {"old": True}
    assert os.listdir(tmp_path) == ["results.json"]


def test_a_full_disk_while_writing_json_is_one_error_without_leftovers(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    files.write_json_atomic(path, {"old": True})
    full = pytest.raises(RunError, match="No space left on device")
    with failing(monkeypatch, "write", 0, errno.ENOSPC), full:
        files.write_json_atomic(path, {"new": True})
    assert json.loads(path.read_text()) == {"old": True}
    assert os.listdir(tmp_path) == ["results.json"]


def test_a_disk_error_in_a_staged_run_is_one_error_without_leftovers(tmp_path, monkeypatch):
    run = tmp_path / "run"
    full = pytest.raises(RunError, match=f"cannot create {re.escape(str(run))}: No space left")
    with full, files.staged_run_directory(run) as staging:
        (staging / "config.yaml").write_text("a: 1\n")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(
        files.tempfile, "mkdtemp", lambda **_: _raise(OSError(errno.EROFS, "Read-only"))
    )
    with pytest.raises(RunError, match="Read-only"), files.staged_run_directory(run):
        pass
    assert os.listdir(tmp_path) == []


def _raise(error: BaseException):
    raise error


# --------------------------------------------------------------------------- links (8)


@pytest.fixture
def outside(tmp_path) -> Path:
    """A file outside the run directory that a hostile run links to."""
    target = tmp_path / "outside" / "precious.txt"
    target.parent.mkdir()
    target.write_text("precious\n")
    return target


WRITERS = {
    "json": lambda path: files.write_json_atomic(path, {"a": 1}),
    "text": lambda path: files.write_text_atomic(path, "a: 1\n"),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_linked_temporary_file_is_not_written_through(tmp_path, outside, writer):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("results.json", "config.yaml"):
        (run / f"{name}.tmp").symlink_to(outside)
        WRITERS[writer](run / name)
        assert outside.read_text() == "precious\n"
        assert (run / name).is_file() and not (run / name).is_symlink()


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_linked_file_is_refused_and_its_target_kept(tmp_path, outside, writer):
    path = tmp_path / "results.json"
    path.symlink_to(outside)
    with pytest.raises(RunError, match=f"{re.escape(str(path))} is a symbolic link"):
        WRITERS[writer](path)
    assert outside.read_text() == "precious\n"
    assert path.is_symlink()


def test_an_atomic_write_makes_an_ordinary_file_and_leaves_nothing_else(tmp_path):
    files.write_text_atomic(tmp_path / "config.yaml", "a: 1\n")
    (tmp_path / "plain.txt").write_text("a: 1\n")
    assert sorted(os.listdir(tmp_path)) == ["config.yaml", "plain.txt"]
    mode = (tmp_path / "config.yaml").stat().st_mode
    assert mode == (tmp_path / "plain.txt").stat().st_mode


def test_appending_never_follows_a_link_nor_waits_on_a_fifo(tmp_path, outside):
    metrics = tmp_path / "metrics.csv"
    files.append_text_no_follow(metrics, "step,loss\n")
    files.append_text_no_follow(metrics, "1,0.5\n")
    assert metrics.read_text() == "step,loss\n1,0.5\n"
    metrics.unlink()
    metrics.symlink_to(outside)
    with pytest.raises(RunError, match=f"{re.escape(str(metrics))} is a symbolic link"):
        files.append_text_no_follow(metrics, "2,0.4\n")
    assert outside.read_text() == "precious\n"
    metrics.unlink()
    os.mkfifo(metrics)
    with pytest.raises(RunError, match="not a regular file"):
        files.append_text_no_follow(metrics, "2,0.4\n")


def test_a_full_disk_while_appending_leaves_no_half_row(tmp_path, monkeypatch):
    metrics = tmp_path / "metrics.csv"
    files.append_text_no_follow(metrics, "step,loss\n")
    original_write = os.write

    def half_then_full(descriptor, data):
        if len(data) > 3:
            return original_write(descriptor, bytes(data[:3]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(RunError, match="No space left on device"):
        files.append_text_no_follow(metrics, "1,0.5\n")
    monkeypatch.undo()
    assert metrics.read_text() == "step,loss\n"


@pytest.mark.parametrize("name", ["last", "last.tmp", "last.old"])
def test_a_checkpoint_is_never_written_through_a_link(tmp_path, name):
    run = tmp_path / "run"
    save(run / "last", "A")
    outside = tmp_path / "outside"
    save(outside / "last", "B")
    before = tree(outside)
    link = run / name
    if link.exists():
        shutil.rmtree(link)
    link.symlink_to(outside / "last", target_is_directory=True)
    with pytest.raises(RunError, match=f"{re.escape(str(link))} is a symbolic link"):
        save(run / "last", "C")
    assert tree(outside) == before
    assert link.is_symlink()


def test_a_linked_tmp_or_old_is_never_loaded(tmp_path):
    save(tmp_path / "run" / "last", "A")
    save(tmp_path / "outside" / "last", "C")
    (tmp_path / "run" / "last.tmp").symlink_to(tmp_path / "outside" / "last")
    assert loaded_tag(tmp_path / "run" / "last") == "A"


def test_a_staged_run_refuses_a_link(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "run").symlink_to(tmp_path / "elsewhere")
    refused = pytest.raises(RunError, match="symbolic link")
    with refused, files.staged_run_directory(tmp_path / "run"):
        pass
    assert os.listdir(tmp_path / "elsewhere") == []
