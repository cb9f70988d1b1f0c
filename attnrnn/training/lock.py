"""One writer per run directory: an exclusive OS file lock on ``RUN/.lock``.

Training (new or resumed) holds the lock until it ends. The lock is the
operating system's (``fcntl.flock``), so it dies with the process: a killed run
leaves no stale lock, only the file, which the next writer takes over. The file
holds the PID of the process that has it, so a second writer is told who is
training the run.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from attnrnn.errors import RunError

LOCK_FILE = ".lock"


@contextlib.contextmanager
def run_lock(directory: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``directory`` (which must exist) for the block.

    Raises :class:`RunError` naming the PID of the process that holds it.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, as before
        yield
        return
    path = Path(directory) / LOCK_FILE
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(path, flags, 0o644)
    except OSError as error:
        raise RunError(f"{path}: cannot open the run's lock file ({error.strerror})") from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise RunError(f"{path}: cannot lock the run ({error.strerror})") from None
            holder = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip() or "?"
            raise RunError(
                f"{directory} is being trained by another process (PID {holder}); wait for it "
                "to finish or stop it first"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(descriptor)  # releases the lock
