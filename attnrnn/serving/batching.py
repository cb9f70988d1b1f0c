"""Dynamic micro-batching: requests to one model that arrive together run as one batch.

A :class:`MicroBatcher` belongs to one model. Request handlers ``await
submit(inputs, options)``; one worker task takes the oldest waiting request, then
the next ones asking for the same options (search settings, sample rate) until it
has ``max_batch_size`` inputs or ``max_wait_ms`` have passed, and runs the model on
the whole batch in the model's own thread, off the event loop. Each request gets its
own results back and the size of the batch they ran in.

The wait is for a model under load: the oldest request waits up to ``max_wait_ms``
for others to join it when it arrived while a batch was running or when the last
batch had several inputs; on an idle model, a lone request runs at once (waiting
could only add to its latency).

The number of waiting requests is bounded: past ``queue_size``, :meth:`submit`
raises :class:`QueueFull` at once (the server answers 503) instead of letting memory
grow. A batch whose model call fails is run again one request at a time, so an
error reaches only the requests that cause it.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

# predict(inputs, options) -> one result per input; runs in the model's thread.
Predict = Callable[[list[Any], dict[str, Any]], Sequence[Any]]


class QueueFull(Exception):
    """The model has ``queue_size`` requests waiting (or the server is shutting down)."""


class Batched(NamedTuple):
    """A request's results and the number of inputs in the batch they ran in."""

    results: list[Any]
    batch_size: int


@dataclass
class Job:
    """One waiting request."""

    inputs: list[Any]
    options: dict[str, Any]
    key: Hashable  # requests with equal keys may share a batch
    future: asyncio.Future[Batched]
    busy: bool  # it arrived while the model was running a batch


def options_key(options: dict[str, Any]) -> Hashable:
    return tuple(sorted(options.items()))


class MicroBatcher:
    """Batches the concurrent requests to one model (see the module's docstring).

    ``on_batch(size)`` is called with every batch's size and ``on_queue(depth)``
    whenever the number of waiting requests changes (for metrics). The sizes of
    the last 10,000 batches are kept in :attr:`batch_sizes`.
    """

    def __init__(
        self,
        predict: Predict,
        max_batch_size: int,
        max_wait_ms: float,
        queue_size: int,
        name: str = "model",
        on_batch: Callable[[int], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
    ) -> None:
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.queue_size = queue_size
        self.name = name
        self.on_batch = on_batch or (lambda size: None)
        self.on_queue = on_queue or (lambda depth: None)
        self.batch_sizes: collections.deque[int] = collections.deque(maxlen=10_000)
        self._waiting: collections.deque[Job] = collections.deque()
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self._running = False
        self._last_size = 0

    @property
    def depth(self) -> int:
        """Requests waiting for a batch (not counting the batch running)."""
        return len(self._waiting)

    # ------------------------------------------------------------------ requests

    async def submit(self, inputs: Sequence[Any], options: dict[str, Any]) -> Batched:
        """The results of ``inputs`` (one per input), run with ``options``."""
        if self._closing:
            raise QueueFull("the server is shutting down")
        if len(self._waiting) >= self.queue_size:
            raise QueueFull(
                f"model {self.name!r} has {len(self._waiting)} requests waiting, its "
                f"queue's limit; retry later"
            )
        self._ensure_worker()
        assert self._loop is not None and self._arrived is not None
        future = self._loop.create_future()
        job = Job(list(inputs), dict(options), options_key(options), future, self._running)
        self._waiting.append(job)
        self.on_queue(len(self._waiting))
        self._arrived.set()
        return await job.future

    def open(self) -> None:
        """Accept requests (again, after :meth:`close`)."""
        self._closing = False

    async def close(self) -> None:
        """Refuse new requests, finish the waiting ones, stop the worker and its thread."""
        self._closing = True
        if self._arrived is not None:
            self._arrived.set()
        if self._worker is not None and self._loop is asyncio.get_running_loop():
            await self._worker
        self._worker = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # ------------------------------------------------------------------ the worker

    def _ensure_worker(self) -> None:
        """Start the worker on the running loop (the first request's, or a new one)."""
        loop = asyncio.get_running_loop()
        if self._worker is not None and not self._worker.done() and self._loop is loop:
            return
        if self._loop is not loop:  # futures of another loop cannot be answered here
            self._waiting.clear()
        self._loop, self._arrived = loop, asyncio.Event()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"attnrnn-{self.name}")
        self._worker = loop.create_task(self._work(), name=f"attnrnn-batcher-{self.name}")

    async def _work(self) -> None:
        assert self._arrived is not None
        while True:
            while not self._waiting:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
            batch = await self._gather()
            if batch:
                await self._run(batch)

    async def _gather(self) -> list[Job]:
        """Wait up to ``max_wait`` for the oldest request's batch to fill (under load,
        see the module's docstring); take it."""
        assert self._loop is not None and self._arrived is not None
        first = self._waiting[0]
        key = first.key
        under_load = first.busy or self._last_size > 1
        deadline = self._loop.time() + (self.max_wait if under_load else 0.0)
        while self._matching(key) < self.max_batch_size and not self._closing:
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        return self._take(key)

    def _matching(self, key: Hashable) -> int:
        return sum(len(job.inputs) for job in self._waiting if job.key == key)

    def _take(self, key: Hashable) -> list[Job]:
        """The oldest requests with ``key`` that fit in one batch (the first always
        does), in arrival order; the others keep their places. Requests whose
        client has gone are dropped."""
        batch: list[Job] = []
        rest: collections.deque[Job] = collections.deque()
        size, full = 0, False
        for job in self._waiting:
            if job.future.done():
                continue
            fits = not batch or size + len(job.inputs) <= self.max_batch_size
            if job.key == key and fits and not full:
                batch.append(job)
                size += len(job.inputs)
            else:
                full = full or job.key == key
                rest.append(job)
        self._waiting = rest
        self.on_queue(len(rest))
        return batch

    async def _run(self, batch: list[Job]) -> None:
        assert self._loop is not None
        size = sum(len(job.inputs) for job in batch)
        self._last_size = size
        self.batch_sizes.append(size)
        self.on_batch(size)
        self._running = True
        try:
            outcomes = await self._loop.run_in_executor(self._executor, self._compute, batch)
        finally:
            self._running = False
        for job, outcome in zip(batch, outcomes, strict=True):
            if job.future.done():  # the client has gone
                continue
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(Batched(outcome, size))

    def _compute(self, batch: list[Job]) -> list[list[Any] | BaseException]:
        """Each job's results (or the exception its inputs raised); in the model's thread."""
        inputs = [item for job in batch for item in job.inputs]
        try:
            results = list(self.predict(inputs, batch[0].options))
        except Exception as error:
            if len(batch) == 1:
                return [error]
            return [self._compute([job])[0] for job in batch]
        if len(results) != len(inputs):
            mismatch = RuntimeError(f"{len(inputs)} inputs gave {len(results)} results")
            return [mismatch for _ in batch]
        outcomes: list[list[Any] | BaseException] = []
        start = 0
        for job in batch:
            outcomes.append(results[start : start + len(job.inputs)])
            start += len(job.inputs)
        return outcomes
