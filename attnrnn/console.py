"""Messages for people go to standard error; standard output is kept for results (JSON).

Progress is a bar with an ETA when standard error is a terminal, and a plain line
every ``PLAIN_EVERY_SECONDS`` otherwise (logs, pipes). Colour is used only on a
terminal and never when ``NO_COLOR`` is set (https://no-color.org).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO, Protocol

Log = Callable[[str], None]
Advance = Callable[[int], None]

PLAIN_EVERY_SECONDS = 10.0


def log(message: str) -> None:
    """Print a progress or status message to standard error."""
    print(message, file=sys.stderr, flush=True)


def silent(message: str) -> None:
    """A log that drops its messages (the processes of a data-parallel run but rank 0)."""


def use_color(stream: IO[str] | None = None) -> bool:
    """True when ``stream`` (standard output) is a terminal and ``NO_COLOR`` is not set."""
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def format_duration(seconds: float) -> str:
    """``1:02:03`` or ``2:03``."""
    seconds = max(round(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class ProgressFactory(Protocol):
    def __call__(
        self, total: int | None, description: str
    ) -> contextlib.AbstractContextManager[Advance]: ...


@contextlib.contextmanager
def silent_progress(total: int | None, description: str) -> Iterator[Advance]:
    """No progress shown (the library's default)."""
    yield lambda count: None


@contextlib.contextmanager
def progress(total: int | None, description: str) -> Iterator[Advance]:
    """Show progress on standard error: a tqdm bar with ETA on a terminal, otherwise a
    line every ``PLAIN_EVERY_SECONDS`` (done / total, rate, ETA) and one at the end."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        with tqdm(total=total, desc=description, leave=False, dynamic_ncols=True) as bar:

            def update(count: int) -> None:
                bar.update(count)

            yield update
        return
    started = last = time.monotonic()
    done = 0

    def line() -> str:
        elapsed = time.monotonic() - started
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"{description}: {done}" + (f"/{total}" if total else "")
        text += f", {rate:.1f}/s, {format_duration(elapsed)} elapsed"
        if total and rate > 0 and done < total:
            text += f", ETA {format_duration((total - done) / rate)}"
        return text

    def advance(count: int) -> None:
        nonlocal done, last
        done += count
        now = time.monotonic()
        if now - last >= PLAIN_EVERY_SECONDS:
            last = now
            log(line())

    yield advance
    if time.monotonic() - started >= PLAIN_EVERY_SECONDS:
        log(line())
