"""Load benchmark of ``attnrnn serve``: translation requests over loopback, with dynamic
micro-batching on and off.

    python benchmarks/serve.py [--requests 1000] [--concurrency 1 8 32]
                               [--max-batch-size 32] [--max-wait-ms 2] [--note TEXT]

Serves the trained Multi30k De->En run (benchmarks/cache/multi30k_de_en/run, its
test sentences as requests) when it is cached, otherwise the date model of ``attnrnn
demo`` (:func:`attnrnn.demo_dates.dates_config`, quick; trained once into
benchmarks/cache/serve/, generated dates as requests). The server runs in its own
process with one torch thread, once with micro-batching (``--max-batch-size``,
``--max-wait-ms``) and once without (max batch size 1: one request per model
call). For each concurrency, ``--requests`` requests of one sentence each are sent
by that many clients, each on its own keep-alive connection (after a warm-up), and
recorded: requests/s, latency p50 / p95 / p99, errors (any answer but 200; must be
0), and the mean batch size the server ran (from its /metrics).

Writes benchmarks/results/serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from common import ROOT, WORK, write_results

MULTI30K_RUN = WORK / "multi30k_de_en" / "run"
DATES_DIRECTORY = WORK / "serve"
WARM_UP = 50


# --------------------------------------------------------------------------- the model


def dates_run() -> Path:
    """The date model of ``attnrnn demo`` (quick), trained once into benchmarks/cache/serve."""
    import attnrnn
    from attnrnn.data.dates import split_date_pairs, write_parallel
    from attnrnn.demo_dates import dates_config

    run = DATES_DIRECTORY / "dates-run"
    if (run / "best").is_dir():
        return run
    data = DATES_DIRECTORY / "dates-data"
    data.mkdir(parents=True, exist_ok=True)
    splits = split_date_pairs(6000, 500, 1000, seed=11)
    for name, pairs in zip(("train", "dev", "test"), splits, strict=True):
        write_parallel(pairs, data / f"{name}.human", data / f"{name}.iso")
    print(f"training the date model into {run}", flush=True)
    attnrnn.train(dates_config(data, quick=True), run)
    return run


def date_sentences(count: int) -> list[str]:
    from attnrnn.data.dates import split_date_pairs

    _, _, test = split_date_pairs(0, 0, count, seed=29)
    return [pair.source for pair in test]


def multi30k_sentences(run: Path, count: int) -> list[str]:
    """The first ``count`` German sentences of the run's test split (repeated if short)."""
    from attnrnn.tasks.runs import read_config

    config = read_config(run / "config.yaml")
    lines = Path(f"{config.data.test}.{config.data.source_language}").read_text("utf-8")
    sentences = [line.strip() for line in lines.splitlines() if line.strip()]
    return [sentences[n % len(sentences)] for n in range(count)]


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(run: Path, port: int, max_batch_size: int, max_wait_ms: float) -> Any:
    """``attnrnn serve`` of ``run`` in a child process with one torch thread."""
    code = (
        "from attnrnn.serving import ServeSettings, serve; "
        f"serve([{str(run)!r}], port={port}, threads=1, settings=ServeSettings("
        f"max_batch_size={max_batch_size}, max_wait_ms={max_wait_ms}, "
        "queue_size=4096, log_requests=False))"
    )
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
    server.kill()
    raise SystemExit("the server did not start in 120 s")


def batch_totals(url: str, name: str) -> tuple[float, float]:
    """The sum and count of the batch sizes the server has run for model ``name``."""
    text = httpx.get(f"{url}/metrics").text
    found = {}
    for kind in ("sum", "count"):
        match = re.search(rf'^attnrnn_batch_size_{kind}{{model="{name}"}} (\S+)$', text, re.M)
        found[kind] = float(match.group(1)) if match else 0.0
    return found["sum"], found["count"]


# --------------------------------------------------------------------------- the load


class Connection:
    """One keep-alive HTTP/1.1 connection posting JSON: a lean client, so that the load
    generator costs far less than the server it measures (httpx's pool slows down
    with many concurrent connections: at 32 it sent fewer requests/s than at 8)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """The status and body of the answer to ``POST path`` with a JSON ``body``."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode("ascii") + body)
        answer = await self.reader.readuntil(b"\r\n\r\n")
        status = int(answer.split(b" ", 2)[1])
        length = re.search(rb"(?im)^content-length:\s*(\d+)", answer)
        content = await self.reader.readexactly(int(length.group(1)) if length else 0)
        return status, content

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def send_load(
    url: str, path: str, sentences: list[str], concurrency: int
) -> tuple[list[float], int, float]:
    """Send every sentence as one request by ``concurrency`` clients (a connection
    each); the latencies (seconds), the number of failed requests and the wall time."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    pending = iter(sentences)
    latencies: list[float] = []
    errors = 0

    async def client() -> None:
        nonlocal errors
        connection = Connection(host, int(port))
        try:
            for sentence in pending:
                body = json.dumps({"texts": [sentence]}).encode("utf-8")
                started = time.perf_counter()
                try:
                    status, content = await connection.post(path, body)
                    ok = status == 200 and bool(json.loads(content)["results"])
                except (OSError, ValueError, asyncio.IncompleteReadError):
                    ok = False
                    connection.close()
                    connection = Connection(host, int(port))
                latencies.append(time.perf_counter() - started)
                errors += not ok
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(
    url: str, name: str, sentences: list[str], concurrency: int, requests: int
) -> dict[str, Any]:
    endpoint = f"/v1/models/{name}/translate"
    asyncio.run(send_load(url, endpoint, sentences[:WARM_UP], concurrency))
    before = batch_totals(url, name)
    chosen = random.Random(concurrency).sample(sentences, requests)
    latencies, errors, seconds = asyncio.run(send_load(url, endpoint, chosen, concurrency))
    after = batch_totals(url, name)
    batches = after[1] - before[1]
    result = {
        "concurrency": concurrency,
        "requests": requests,
        "requests_per_second": round(requests / seconds, 1),
        "latency_ms_p50": round(1000 * percentile(latencies, 0.50), 1),
        "latency_ms_p95": round(1000 * percentile(latencies, 0.95), 1),
        "latency_ms_p99": round(1000 * percentile(latencies, 0.99), 1),
        "latency_ms_mean": round(1000 * statistics.fmean(latencies), 1),
        "errors": errors,
        "mean_batch_size": round((after[0] - before[0]) / batches, 2) if batches else None,
    }
    print(f"  {result}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--note", default="", help="how the machine was shared, for the record")
    arguments = parser.parse_args()

    if (MULTI30K_RUN / "best").is_dir():
        run, model = MULTI30K_RUN, "multi30k_de_en"
        sentences = multi30k_sentences(run, max(arguments.requests, 1000))
    else:
        run, model = dates_run(), "dates_demo"
        sentences = date_sentences(max(arguments.requests, 1000))
    name = run.resolve().name
    modes = {
        "batched": (arguments.max_batch_size, arguments.max_wait_ms),
        "unbatched": (1, 0.0),
    }
    results: dict[str, Any] = {}
    for mode, (max_batch_size, max_wait_ms) in modes.items():
        port = free_port()
        print(f"{mode}: max_batch_size {max_batch_size}, max_wait_ms {max_wait_ms}", flush=True)
        server = start_server(run, port, max_batch_size, max_wait_ms)
        try:
            url = f"http://127.0.0.1:{port}"
            results[mode] = {
                "max_batch_size": max_batch_size,
                "max_wait_ms": max_wait_ms,
                "runs": [
                    measure(url, name, sentences, concurrency, arguments.requests)
                    for concurrency in arguments.concurrency
                ],
            }
        finally:
            server.terminate()
            server.wait(timeout=60)
    highest = max(arguments.concurrency)
    throughput = {
        mode: next(r for r in results[mode]["runs"] if r["concurrency"] == highest)[
            "requests_per_second"
        ]
        for mode in modes
    }
    speedup = round(throughput["batched"] / throughput["unbatched"], 2)
    print(f"concurrency {highest}: batched / unbatched throughput = {speedup}x")
    write_results(
        "serve",
        {
            "model": model,
            "run": str(run.relative_to(ROOT)) if run.is_relative_to(ROOT) else str(run),
            "request": "POST /v1/models/NAME/translate, one sentence, attention on",
            "server": "one process, one torch thread, uvicorn, loopback; clients: one "
            "keep-alive connection each, asyncio, in another process on the same machine",
            "results": results,
            f"speedup_at_concurrency_{highest}": speedup,
            "errors": sum(r["errors"] for mode in results.values() for r in mode["runs"]),
            "note": arguments.note,
        },
    )


if __name__ == "__main__":
    main()
