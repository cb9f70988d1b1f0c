"""The micro-batcher on a fake model: batches fill up to their size, requests with
other options never share one, an error reaches only its request, a full queue
refuses at once, and closing finishes what is queued."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from attnrnn.serving.batching import MicroBatcher, QueueFull


class FakeModel:
    """Echoes its inputs with the options; records every call; can be held."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[Any], dict[str, Any]]] = []
        self.go = threading.Event()
        self.go.set()

    def __call__(self, inputs: list[Any], options: dict[str, Any]) -> list[str]:
        self.go.wait(timeout=10)
        self.calls.append((list(inputs), dict(options)))
        if "bad" in inputs:
            raise ValueError("bad input")
        return [f"{item}:{options.get('beam')}" for item in inputs]


def batcher(model: FakeModel, **settings: Any) -> MicroBatcher:
    values = {"max_batch_size": 4, "max_wait_ms": 50, "queue_size": 100, **settings}
    return MicroBatcher(model, **values)


def test_batches_fill_up_to_their_size_in_arrival_order():
    model = FakeModel()
    batches = batcher(model)

    async def scenario() -> list[Any]:
        answers = await asyncio.gather(*(batches.submit([n], {}) for n in range(10)))
        await batches.close()
        return answers

    answers = asyncio.run(scenario())
    assert [answer.results for answer in answers] == [[f"{n}:None"] for n in range(10)]
    assert list(batches.batch_sizes) == [4, 4, 2]
    assert [inputs for inputs, _ in model.calls] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [answer.batch_size for answer in answers] == [4] * 8 + [2] * 2


def test_only_a_busy_model_waits_for_its_batch_to_fill():
    model = FakeModel()
    batches = batcher(model, max_wait_ms=300)

    async def scenario() -> tuple[float, float]:
        started = time.perf_counter()
        await batches.submit(["idle"], {})  # the model is idle: no wait
        alone = time.perf_counter() - started
        model.go.clear()
        running = asyncio.ensure_future(batches.submit(["a"], {}))
        while len(batches.batch_sizes) < 2:  # "a" is in the model
            await asyncio.sleep(0.001)
        waiting = asyncio.ensure_future(batches.submit(["b"], {}))  # arrives while busy
        await asyncio.sleep(0.01)
        model.go.set()
        await asyncio.sleep(0.05)  # "b" waits for company, which comes
        joining = asyncio.ensure_future(batches.submit(["c"], {}))
        await asyncio.gather(running, waiting, joining)
        started = time.perf_counter()
        await batches.submit(["d"], {})  # the last batch had two: still under load
        return alone, time.perf_counter() - started

    alone, after_a_batch = asyncio.run(scenario())
    assert alone < 0.2 and after_a_batch > 0.25
    assert list(batches.batch_sizes) == [1, 1, 2, 1] and model.calls[2][0] == ["b", "c"]


def test_requests_with_other_options_never_share_a_batch():
    model = FakeModel()
    batches = batcher(model, max_batch_size=8)

    async def scenario() -> list[Any]:
        requests = [batches.submit([n, n], {"beam": n % 2 + 1}) for n in range(6)]
        return await asyncio.gather(*requests)

    answers = asyncio.run(scenario())
    for n, answer in enumerate(answers):
        assert answer.results == [f"{n}:{n % 2 + 1}"] * 2
    for inputs, options in model.calls:
        assert {item % 2 + 1 for item in inputs} == {options["beam"]}
    assert sorted(batches.batch_sizes) == [6, 6]


def test_a_request_larger_than_a_batch_runs_alone():
    model = FakeModel()
    batches = batcher(model, max_batch_size=2)

    async def scenario() -> Any:
        return await asyncio.gather(batches.submit(list(range(5)), {}), batches.submit([9], {}))

    big, small = asyncio.run(scenario())
    assert big.batch_size == 5 and small.batch_size == 1 and len(big.results) == 5


def test_an_error_reaches_only_the_request_that_causes_it():
    model = FakeModel()
    batches = batcher(model)

    async def scenario() -> list[Any]:
        requests = [batches.submit([item], {}) for item in ("a", "bad", "c")]
        return await asyncio.gather(*requests, return_exceptions=True)

    first, bad, last = asyncio.run(scenario())
    assert first.results == ["a:None"] and last.results == ["c:None"]
    assert isinstance(bad, ValueError)
    assert [inputs for inputs, _ in model.calls] == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]


def test_a_full_queue_refuses_at_once_and_closing_drains_it():
    model = FakeModel()
    model.go.clear()  # the model is busy
    batches = batcher(model, max_batch_size=1, max_wait_ms=0, queue_size=2)

    async def scenario() -> tuple[list[Any], Any]:
        running = asyncio.ensure_future(batches.submit(["first"], {}))
        while not batches.batch_sizes:  # the worker has taken it
            await asyncio.sleep(0.001)
        queued = [asyncio.ensure_future(batches.submit([n], {})) for n in range(2)]
        await asyncio.sleep(0.01)
        assert batches.depth == 2
        with pytest.raises(QueueFull, match="2 requests waiting"):
            await batches.submit(["one too many"], {})
        model.go.set()
        closing = asyncio.ensure_future(batches.close())
        await asyncio.sleep(0)
        with pytest.raises(QueueFull, match="shutting down"):
            await batches.submit(["late"], {})
        answers = await asyncio.gather(running, *queued)
        await closing
        return answers, batches.depth

    answers, depth = asyncio.run(scenario())
    assert [answer.results for answer in answers] == [["first:None"], ["0:None"], ["1:None"]]
    assert depth == 0
