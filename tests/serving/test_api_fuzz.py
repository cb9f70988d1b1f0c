"""Schema-based fuzzing (Schemathesis) of the served OpenAPI schema against a live server
on loopback: requests that fit the schema and requests that break it, a bounded number
per operation. No answer may be a 5xx, and every error has the JSON error shape.

The counts are printed (``pytest -s``): requests sent per operation and status.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import hypothesis
import schemathesis

from attnrnn.serving.app import create_app
from attnrnn.serving.settings import ServeSettings

EXAMPLES = 20  # per operation and generation mode
# The model each endpoint is fuzzed on (score and predict have none: 404s).
MODEL_OF_ACTION = {
    "classify": "classifier",
    "translate": "dates",
    "summarize": "dialogues",
    "transcribe": "tones",
}
SETTINGS = ServeSettings(max_texts=4, max_text_chars=200, max_body_bytes=100_000, max_wait_ms=1)


def fuzz_operation(operation: Any, mode: Any, url: str, counts: collections.Counter) -> None:
    action = operation.path.rsplit("/", 1)[-1]
    name = MODEL_OF_ACTION.get(action)
    fixed = {"name": name} if "{name}" in operation.path and name else None
    strategy = operation.as_strategy(mode, path_parameters=fixed)

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=strategy)
    def check(case: Any) -> None:
        response = case.call(base_url=url, timeout=30)
        counts[(operation.label, str(response.status_code))] += 1
        assert response.status_code < 500, (case.as_curl_command(), response.text[:500])
        if response.status_code >= 400:
            error = response.json()["error"]
            assert error["code"] == response.status_code and error["message"], response.text

    try:
        check()
    except hypothesis.errors.Unsatisfiable:  # nothing to break (GET /health in negative mode)
        counts[(operation.label, "nothing to break")] += 1


def test_no_request_the_schema_allows_or_breaks_gets_a_5xx(models, live_server):
    counts: collections.Counter = collections.Counter()
    started = time.monotonic()
    with live_server(create_app(models, SETTINGS)) as running:
        schema = schemathesis.openapi.from_url(running.url + "/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        for mode in schemathesis.GenerationMode:
            for operation in operations:
                fuzz_operation(operation, mode, running.url, counts)
    total = sum(count for (_, status), count in counts.items() if status.isdigit())
    by_status = collections.Counter()
    for (_, status), count in counts.items():
        by_status[status] += count
    print(
        f"\nfuzz: {total} requests on {len(operations)} operations in "
        f"{time.monotonic() - started:.1f} s; by status {dict(sorted(by_status.items()))}"
    )
    for (label, status), count in sorted(counts.items()):
        print(f"  {label}: {status} x {count}")
    assert len(operations) >= 9 and total >= len(operations)
    assert by_status["200"] > 0 and by_status["422"] > 0
