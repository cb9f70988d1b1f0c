"""Answer input lines as they come: the CLI's ``predict`` (and ``translate``,
``summarize``, ``transcribe``) reading a file or standard input.

A reader thread reads lines; the main thread takes them in batches of at most
``batch_size`` lines, waiting at most ``wait_seconds`` for more once it has one,
so a line typed into a pipe is answered at once while a file is read in full
batches. Each batch goes through the model (which sorts it by length), and its
answers are written in input order and flushed before the next batch is read.
An empty input line gets an empty output line.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from attnrnn.console import Advance
from attnrnn.errors import DataError

_END = object()


@dataclass
class InputLine:
    """One line of input: its number (from 1), its text, where it came from."""

    number: int
    text: str
    name: str

    @property
    def origin(self) -> str:
        return f"{self.name}:{self.number}"


def batches(lines: Iterable[Any], batch_size: int, wait_seconds: float) -> Iterator[list[Any]]:
    """Group ``lines`` (read on a background thread) into batches of at most
    ``batch_size``, waiting at most ``wait_seconds`` for a batch to fill once it has its
    first line. An exception raised while reading is raised here, after the lines
    before it."""
    items: queue.Queue[Any] = queue.Queue(maxsize=4 * batch_size)

    def read() -> None:
        try:
            for line in lines:
                items.put(line)
        except BaseException as error:  # handed to the main thread
            items.put(error)
        items.put(_END)

    threading.Thread(target=read, daemon=True, name="attnrnn-input").start()
    finished = False
    while not finished:
        first = items.get()
        if first is _END:
            return
        if isinstance(first, BaseException):
            raise first
        batch = [first]
        deadline = time.monotonic() + wait_seconds
        while len(batch) < batch_size:
            try:
                item = items.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                break
            if item is _END:
                finished = True
                break
            if isinstance(item, BaseException):
                yield batch
                raise item
            batch.append(item)
        yield batch


def answer_lines(
    lines: Iterable[InputLine],
    parse: Callable[[InputLine], Any],
    predict: Callable[[list[Any]], list[Any]],
    write: Callable[[Any], str],
    out: IO[str],
    batch_size: int,
    wait_seconds: float,
    advance: Advance = lambda count: None,
) -> int:
    """Answer every input line with one output line; return the number of lines.

    ``parse`` turns a non-empty line into a model input (raising :class:`DataError`
    for a bad one), ``predict`` answers a list of inputs, ``write`` formats one
    answer as a line.
    """
    count = 0
    for batch in batches(lines, batch_size, wait_seconds):
        inputs = [parse(line) for line in batch if line.text.strip()]
        answers = iter(predict(inputs) if inputs else [])
        for line in batch:
            out.write((write(next(answers)) if line.text.strip() else "") + "\n")
        out.flush()
        count += len(batch)
        advance(len(batch))
    return count


def strict(lines: Iterable[InputLine]) -> Iterator[InputLine]:
    """``lines``, with an empty line a :class:`DataError` (``--strict``)."""
    for line in lines:
        if not line.text.strip():
            raise DataError(f"line {line.number} is empty", line.name, line.number)
        yield line
