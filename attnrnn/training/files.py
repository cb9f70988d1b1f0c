"""Writing the files of a run safely: atomic replacement, appends and a staged run
directory, never through a symbolic link, every disk error one :class:`RunError`.

A run directory may come from anywhere (a download, an archive): a link planted
where attnrnn is about to write is refused, so a run cannot make attnrnn write
outside itself. A full disk, a read-only folder or a file-size limit is one
:class:`RunError` naming the file, with the partial files removed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from attnrnn.errors import RunError

_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOSE_ON_EXEC = getattr(os, "O_CLOEXEC", 0)
_NON_BLOCKING = getattr(os, "O_NONBLOCK", 0)  # a FIFO must not hang an open
# Opening a run's file for reading: not through a link, never hanging on a FIFO.
READ_FLAGS = os.O_RDONLY | _NO_FOLLOW | _NON_BLOCKING | _CLOSE_ON_EXEC


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (see :func:`write_bytes_atomic`)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with a file holding ``data``: readers see the old file or the
    new one, never a part.

    The data goes to a new temporary file of a unique name in the same folder
    (created exclusively, never through a symbolic link), is flushed to disk and
    renamed over ``path``. ``path`` itself must not be a symbolic link. Any
    failure is a :class:`RunError` naming ``path``, with the temporary removed.
    """
    path = Path(path)
    refuse_link(path)
    temporary: str | None = None
    try:
        while temporary is None:
            candidate = str(path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp"))
            with contextlib.suppress(FileExistsError):
                descriptor = create_new(candidate)
                temporary = candidate
        write_and_close(descriptor, data)
        os.replace(temporary, path)
        temporary = None
        sync_directory(path.parent)
    except OSError as error:
        raise RunError(f"cannot write {path}: {reason(error)}") from None
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def append_text_no_follow(path: Path, text: str) -> None:
    """Append ``text`` (UTF-8) to the regular file ``path``, creating it if need be,
    never through a symbolic link (metrics.csv): a link, a FIFO or a device there is
    a :class:`RunError`, and so is a failed write, after which the file is cut back
    to its old length (no half row)."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NO_FOLLOW | _NON_BLOCKING | _CLOSE_ON_EXEC
    try:
        descriptor = os.open(path, flags, 0o666)
    except OSError as error:
        if error.errno == errno.ELOOP or path.is_symlink():
            raise RunError(
                f"{path} is a symbolic link; attnrnn does not write through links"
            ) from None
        if error.errno == errno.ENXIO:  # a FIFO nobody reads
            raise RunError(f"cannot write {path}: not a regular file") from None
        raise RunError(f"cannot write {path}: {reason(error)}") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise RunError(f"cannot write {path}: not a regular file")
        try:
            write_all(descriptor, text.encode("utf-8"))
            os.fsync(descriptor)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, status.st_size)
            raise RunError(f"cannot write {path}: {reason(error)}") from None
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def staged_run_directory(run_directory: Path) -> Iterator[Path]:
    """Yield an empty staging folder that becomes ``run_directory`` when the block ends
    without an error; on an error it is removed, so no half-made run is left behind.

    An existing, non-empty ``run_directory`` is an error (resume it instead), and so
    is a symbolic link there. The staging folder is ``.staging-PID-*`` beside it (so
    that the leftover of a killed process can be told from a living one's). A disk
    error (full, read-only) is one :class:`RunError`.
    """
    run_directory = Path(run_directory)
    refuse_link(run_directory)
    if run_directory.exists() and (not run_directory.is_dir() or any(run_directory.iterdir())):
        raise RunError(
            f"{run_directory} already exists; pass --resume to continue it or choose "
            "another --output"
        )
    try:
        prefix = f".staging-{os.getpid()}-"
        staging = Path(tempfile.mkdtemp(prefix=prefix, dir=run_directory.parent))
    except OSError as error:
        raise RunError(f"cannot create {run_directory}: {reason(error)}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; a run is an ordinary folder
        yield staging
        if run_directory.exists():
            run_directory.rmdir()
        staging.rename(run_directory)
        sync_directory(run_directory.parent)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise RunError(f"cannot create {run_directory}: {reason(error)}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# --------------------------------------------------------------------------- low level


def refuse_link(path: Path) -> None:
    if path.is_symlink():
        raise RunError(f"{path} is a symbolic link; attnrnn does not write through links")


def create_new(path: str | Path) -> int:
    """A new file, opened for writing: never an existing one, never through a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW | _CLOSE_ON_EXEC
    return os.open(path, flags, 0o666)


def write_and_close(descriptor: int, data: bytes) -> None:
    try:
        write_all(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]


def sync_directory(directory: Path) -> None:
    """Flush a folder's entries (new names, renames) to disk; best effort, as some
    file systems cannot."""
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def remove(path: Path, missing_ok: bool = False) -> None:
    """Remove a file, a link (not its target) or a folder tree."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path) or not missing_ok:
        os.unlink(path)


def reason(error: OSError) -> str:
    """``No space left on device`` (and the file, when the error names one)."""
    reason = error.strerror or str(error)
    return f"{reason} ({error.filename})" if error.filename else reason
