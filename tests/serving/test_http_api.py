"""The HTTP API against a live uvicorn on a loopback port, serving a tiny run of every
task: each endpoint answers what the Python API answers, each error has its code and
names its field, concurrent requests are batched, a full queue answers 503, the API
key, CORS, metrics, the request log and a graceful shutdown work."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile

from attnrnn.errors import ConfigError
from attnrnn.serving import name_runs
from attnrnn.serving import server as server_module
from attnrnn.serving.app import create_app
from attnrnn.serving.server import ENVIRONMENT, app_from_environment, warn_about_host
from attnrnn.serving.settings import ServeSettings

# Small limits, so that every limit is quick to reach.
LIMITS = ServeSettings(
    max_texts=4,
    max_text_chars=200,
    max_beam=4,
    max_n_best=3,
    max_body_bytes=50_000,
    max_audio_seconds=1.0,
    max_wait_ms=20,
)
REVIEWS = ["a fine film", "the plot was dull but the music was wonderful", "bad"]
DATES = ["9 April 2023", "2001/12/31", "17.03.1960"]


@pytest.fixture(scope="module")
def server(models, live_server) -> Iterator[Any]:
    with live_server(create_app(models, LIMITS)) as running:
        yield running


@pytest.fixture
def client(server) -> Iterator[Any]:
    with httpx.Client(base_url=server.url, timeout=30) as session:
        yield session


def same(value: Any) -> Any:
    """``value`` as JSON gives it back (lists for tuples, plain floats)."""
    return json.loads(json.dumps(value))


def check_error(response: Any, code: int, field: str | None, *fragments: str) -> None:
    assert response.status_code == code, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "field"}
    assert error["code"] == code and error["field"] == field, error
    for fragment in fragments:
        assert fragment in error["message"], error


# --------------------------------------------------------------------------- endpoints


def test_health_and_the_list_of_models(client):
    assert client.get("/health").json() == {"status": "ok"}
    listed = {model["name"]: model for model in client.get("/v1/models").json()["models"]}
    assert {name: model["action"] for name, model in listed.items()} == {
        "classifier": "classify",
        "dates": "translate",
        "tones": "transcribe",
        "dialogues": "summarize",
    }
    dates = listed["dates"]
    assert dates["endpoint"] == "/v1/models/dates/translate" and dates["task"] == "translation"
    assert dates["languages"] == {"source": "src", "target": "tgt"}
    assert dates["search"] == {"beam": 2, "n_best": 1, "length_penalty": 1.0}
    assert "dev_exact_match" in dates["metrics"] and dates["attnrnn_version"]
    assert dates["limits"]["max_texts"] == 4 and dates["limits"]["max_beam"] == 4
    assert listed["classifier"]["labels"] == ["negative", "positive"]


def test_classify_answers_what_the_python_api_does(client, models):
    response = client.post("/v1/models/classifier/classify", json={"texts": REVIEWS})
    assert response.status_code == 200
    model = models["classifier"]
    expected = [model.record(prediction) for prediction in model.predict(REVIEWS)]
    assert response.json() == {"model": "classifier", "results": same(expected)}
    light = client.post(
        "/v1/models/classifier/classify", json={"texts": REVIEWS, "attention": False}
    ).json()["results"]
    assert [record.pop("attention") for record in expected] and light == same(expected)


def test_translate_with_search_options_and_alternatives(client, models):
    body = {"texts": DATES, "beam": 3, "n_best": 2, "length_penalty": 0.5}
    response = client.post("/v1/models/dates/translate", json=body)
    assert response.status_code == 200
    model = models["dates"]
    translations = model.translate(DATES, beam=3, n_best=2, length_penalty=0.5)
    assert response.json()["results"] == same([model.record(item) for item in translations])
    for record in response.json()["results"]:
        (alternative,) = record["alternatives_detail"]
        assert alternative["text"] == record["alternatives"][0]
        assert len(alternative["attention"]) == len(alternative["target_tokens"])
        assert {len(row) for row in alternative["attention"]} == {len(record["source_tokens"])}
    light = client.post("/v1/models/dates/translate", json={**body, "attention": False})
    for record in light.json()["results"]:
        assert "attention" not in record
        assert all("attention" not in item for item in record["alternatives_detail"])
        assert record["alternatives_detail"][0]["target_tokens"]


def test_summarize_answers_what_the_python_api_does(client, models):
    text = "#Person1#: Hello anna, would you like some soup?\n#Person2#: Yes please."
    response = client.post("/v1/models/dialogues/summarize", json={"texts": [text], "n_best": 2})
    assert response.status_code == 200
    model = models["dialogues"]
    expected = [model.record(item) for item in model.summarize([text], n_best=2)]
    assert response.json()["results"] == same(expected)
    [record] = response.json()["results"]
    assert len(record["copy_probability"]) == len(record["tokens"])
    assert [item["text"] for item in record["alternatives_detail"]] == record["alternatives"]


@pytest.mark.parametrize("upload", ["multipart", "raw"])
def test_transcribe_an_upload_like_a_file(client, models, tone_files, upload):
    path = tone_files[1]  # 16 kHz: resampled to the run's 8 kHz
    data = path.read_bytes()
    if upload == "multipart":
        files = {"audio": (path.name, data, "audio/wav")}
        response = client.post("/v1/models/tones/transcribe?beam=2&n_best=2", files=files)
    else:
        headers = {"Content-Type": "audio/wav"}
        response = client.post(
            "/v1/models/tones/transcribe?beam=2&n_best=2", content=data, headers=headers
        )
    assert response.status_code == 200, response.text
    model = models["tones"]
    [transcript] = model.transcribe([path], beam=2, n_best=2)
    expected = {
        **model.record(transcript),
        "audio": path.name if upload == "multipart" else "upload",
    }
    [record] = response.json()["results"]
    spectrogram = record.pop("spectrogram")
    assert record == same(expected)
    frames, bins = transcript.features.shape
    assert spectrogram["frames"] == frames and spectrogram["bins"] == bins == 20
    assert spectrogram["hop_seconds"] == pytest.approx(0.01)
    assert np.allclose(spectrogram["values"], transcript.features.numpy(), atol=0.005 + 1e-6)
    light = client.post(
        "/v1/models/tones/transcribe?attention=false",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    ).json()["results"][0]
    assert "attention" not in light and "spectrogram" not in light


def test_docs_and_the_schema_show_the_limits(client):
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    texts = schema["components"]["schemas"]["SearchRequest"]["properties"]["texts"]
    assert texts["maxItems"] == 4 and texts["items"]["maxLength"] == 200
    assert (
        "audio/flac"
        in schema["paths"]["/v1/models/{name}/transcribe"]["post"]["requestBody"]["content"]
    )
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


# --------------------------------------------------------------------------- errors


def wav_bytes(seconds: float, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    samples = 0.1 * np.sin(np.arange(int(seconds * rate)) / rate * 2 * np.pi * 440)
    soundfile.write(buffer, samples.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


TRANSLATE = "/v1/models/dates/translate"


@pytest.mark.parametrize(
    ("path", "body", "code", "field", "fragment"),
    [
        ("/v1/models/nobody/translate", {"texts": ["x"]}, 404, "name", "no model named 'nobody'"),
        ("/v1/models/dates/classify", {"texts": ["x"]}, 404, "name", "/v1/models/dates/translate"),
        (TRANSLATE, {"texts": ["x"] * 5}, 422, "texts", "at most 4"),
        (TRANSLATE, {"texts": ["x", "y" * 201]}, 422, "texts[1]", "at most 200"),
        (TRANSLATE, {"texts": []}, 422, "texts", "at least 1"),
        (TRANSLATE, {"texts": ["x"], "beam": 5}, 422, "beam", "at most 4"),
        (TRANSLATE, {"texts": ["x"], "beam": 0}, 422, "beam", "greater than or equal to 1"),
        (TRANSLATE, {"texts": ["x"], "n_best": 4}, 422, "n_best", "at most 3"),
        (TRANSLATE, {"texts": ["x"], "beam": 2, "n_best": 3}, 422, "n_best", "cannot exceed"),
        (TRANSLATE, {"texts": ["x"], "length_penalty": 11}, 422, "length_penalty", "10"),
        (TRANSLATE, {"texts": ["x"], "bean": 3}, 422, "bean", "unknown field"),
        (TRANSLATE, {"texts": "x"}, 422, "texts", "valid list"),
        (TRANSLATE, {}, 422, "texts", "required"),
        ("/v1/models/classifier/classify", {"texts": ["x"], "beam": 2}, 422, "beam", "unknown"),
        ("/v1/models/dialogues/summarize", {"texts": ["ok", " "]}, 422, "texts", "no tokens"),
    ],
)
def test_bad_requests_name_the_field_and_the_limit(client, path, body, code, field, fragment):
    check_error(client.post(path, json=body), code, field, fragment)


def test_bodies_that_are_not_requests(client):
    check_error(
        client.post(
            TRANSLATE, content=b'{"texts": [', headers={"Content-Type": "application/json"}
        ),
        400,
        "body",
        "not valid JSON",
    )
    check_error(client.post(TRANSLATE), 422, "body", "JSON body")
    # A lone surrogate is valid JSON but no text.
    lone = b'{"texts": ["ok", "\\ud800"]}'
    check_error(
        client.post(TRANSLATE, content=lone, headers={"Content-Type": "application/json"}),
        422,
        "texts[1]",
        "surrogate",
    )
    deep = b'{"texts": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"  # deeper than Python recurses
    response = client.post(TRANSLATE, content=deep, headers={"Content-Type": "application/json"})
    check_error(response, 400, None, "error parsing the body")
    check_error(client.get(TRANSLATE), 405, None, "GET is not allowed")
    check_error(client.get("/v2/nothing"), 404, None, "no such endpoint")


def test_bodies_over_the_size_limit_are_cut_off(client):
    big = {"texts": ["x" * 30_000, "y" * 30_000]}
    check_error(client.post(TRANSLATE, json=big), 413, "body", "50,000 bytes")
    chunks = iter([b'{"texts": ["' + b"x" * 30_000, b"y" * 30_000 + b'"]}'])  # no Content-Length
    response = client.post(TRANSLATE, content=chunks, headers={"Content-Type": "application/json"})
    check_error(response, 413, "body", "50,000 bytes")


def test_bad_audio_is_a_clear_error(client, tone_files):
    transcribe = "/v1/models/tones/transcribe"
    wav = {"Content-Type": "audio/wav"}
    check_error(
        client.post(transcribe, content=b"RIFF not audio", headers=wav),
        422,
        "audio",
        "not a readable",
    )
    check_error(client.post(transcribe, content=b"", headers=wav), 422, "audio", "empty")
    check_error(
        client.post(transcribe, content=wav_bytes(1.5), headers=wav), 422, "audio", "1 seconds"
    )
    check_error(client.post(transcribe, files={"other": ("a.wav", b"x")}), 422, "audio", "'audio'")
    check_error(
        client.post(transcribe, content=b"x", headers={"Content-Type": "text/plain"}),
        415,
        "Content-Type",
        "multipart/form-data",
    )
    check_error(
        client.post(transcribe + "?beam=9", content=wav_bytes(0.5), headers=wav), 422, "beam", "4"
    )
    check_error(
        client.post(transcribe + "?length_penalty=nan", content=wav_bytes(0.5), headers=wav),
        422,
        "length_penalty",
    )
    # A path in the request is never read: it is not audio.
    check_error(
        client.post(transcribe, content=str(tone_files[0]).encode(), headers=wav),
        422,
        "audio",
        "not a readable",
    )


# --------------------------------------------------------------------------- batching


def test_concurrent_requests_are_batched_with_the_same_answers(server, models):
    batcher = server.app.state.served["dates"].batcher
    seen = len(batcher.batch_sizes)
    sources = [f"{day} April 20{day:02d}" for day in range(1, 17)]

    async def send_all() -> list[Any]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return await asyncio.gather(
                *(client.post(TRANSLATE, json={"texts": [text]}) for text in sources)
            )

    responses = asyncio.run(send_all())
    assert [response.status_code for response in responses] == [200] * 16
    sizes = list(batcher.batch_sizes)[seen:]
    assert sum(sizes) == 16 and max(sizes) > 1, sizes
    expected = models["dates"].translate(sources)
    for response, translation in zip(responses, expected, strict=True):
        [record] = response.json()["results"]
        assert record["translation"] == translation.translation
        assert np.allclose(record["attention"], translation.attention, atol=1e-5)


def test_a_full_queue_answers_503_with_retry_after(models, live_server):
    settings = ServeSettings(max_batch_size=1, max_wait_ms=0, queue_size=2)
    model = models["classifier"]
    held = [False]

    def release() -> None:
        if held[0]:
            model.lock.release()
            held[0] = False

    with live_server(create_app({"classifier": model}, settings)) as running:

        async def overfill() -> list[Any]:
            async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
                sends = [
                    asyncio.ensure_future(
                        client.post("/v1/models/classifier/classify", json={"texts": ["good"]})
                    )
                    for _ in range(6)
                ]
                while sum(send.done() for send in sends) < 3:  # the refused ones
                    await asyncio.sleep(0.01)
                release()  # the model runs again: the queue drains
                return await asyncio.gather(*sends)

        held[0] = model.lock.acquire()  # the model is busy: its worker waits, requests queue
        try:
            responses = asyncio.run(overfill())
        finally:
            release()
    codes = sorted(response.status_code for response in responses)
    assert codes.count(503) >= 3 and set(codes) == {200, 503}, codes
    refused = next(response for response in responses if response.status_code == 503)
    assert refused.headers["Retry-After"] == "1"
    check_error(refused, 503, None, "queue")


# --------------------------------------------------------------------------- access


def test_the_api_key_is_needed_where_set(models, live_server):
    app = create_app({"dates": models["dates"]}, ServeSettings(api_key="s3cret"))
    with live_server(app) as running, httpx.Client(base_url=running.url) as client:
        body = {"texts": ["1 May 2020"]}
        check_error(client.post(TRANSLATE, json=body), 401, None, "Bearer")
        wrong = {"Authorization": "Bearer s3crets"}
        check_error(client.post(TRANSLATE, json=body, headers=wrong), 401, None, "API key")
        assert client.get("/metrics").status_code == 401
        assert (
            client.get("/v1/models", headers={"Authorization": "Basic s3cret"}).status_code == 401
        )
        right = {"Authorization": "Bearer s3cret"}
        assert client.post(TRANSLATE, json=body, headers=right).status_code == 200
        assert client.get("/health").status_code == 200  # public: health, page, docs
        assert client.get("/openapi.json").status_code == 200


def test_cors_is_off_unless_origins_are_given(client, models, live_server):
    origin = {"Origin": "https://example.org"}
    preflight = {**origin, "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options(TRANSLATE, headers=preflight).headers
    settings = ServeSettings(cors_origins=("https://example.org",))
    with live_server(create_app({"dates": models["dates"]}, settings)) as running:
        answer = httpx.options(running.url + TRANSLATE, headers=preflight)
        assert answer.headers["access-control-allow-origin"] == "https://example.org"


def test_metrics_and_one_log_line_per_request(client, caplog):
    def logged() -> list[str]:
        return [
            record.getMessage() for record in caplog.records if record.name == "attnrnn.serving"
        ]

    with caplog.at_level(logging.INFO, logger="attnrnn.serving"):
        assert client.post(TRANSLATE, json={"texts": ["3 June 1999"]}).status_code == 200
        client.get("/v1/models/nobody")
        deadline = time.monotonic() + 5
        while len(logged()) < 2 and time.monotonic() < deadline:  # written once answered
            time.sleep(0.01)
    translated, missing = logged()
    assert translated.startswith("POST /v1/models/dates/translate 200 ")
    assert translated.endswith(" ms batch 1")
    assert missing.startswith("GET /v1/models/nobody 404 ") and missing.endswith(" ms")
    metrics = client.get("/metrics").text
    assert (
        'attnrnn_requests_total{endpoint="/v1/models/{name}/translate",method="POST",status="200"}'
        in metrics
    )
    assert 'attnrnn_requests_total{endpoint="unmatched",method="GET",status="404"}' in metrics
    assert 'attnrnn_request_seconds_bucket{endpoint="/v1/models/{name}/translate"' in metrics
    assert 'attnrnn_batch_size_count{model="dates"}' in metrics
    assert 'attnrnn_queue_depth{model="dates"} 0.0' in metrics


def test_shutdown_finishes_the_requests_in_flight(models, live_server):
    model = models["dates"]
    running = live_server(create_app({"dates": model}, ServeSettings()))
    answers: list[Any] = []
    with running:
        model.lock.acquire()
        try:

            def ask() -> None:
                answers.append(httpx.post(running.url + TRANSLATE, json={"texts": ["1 May"]}))

            asker = threading.Thread(target=ask)
            asker.start()
            batcher = running.app.state.served["dates"].batcher
            while not batcher.batch_sizes:  # the request is in the model
                time.sleep(0.01)
            running.server.should_exit = True
            time.sleep(0.3)
            assert asker.is_alive() and running.thread.is_alive()  # waiting, not dropped
        finally:
            model.lock.release()
        asker.join(timeout=30)
    assert answers[0].status_code == 200 and answers[0].json()["results"][0]["translation"]
    assert not running.thread.is_alive()


# --------------------------------------------------------------------------- serve()


def test_runs_are_named_after_their_folder_or_by_name(tmp_path):
    (tmp_path / "run-a").mkdir()
    (tmp_path / "b").mkdir()
    assert name_runs([str(tmp_path / "run-a"), f"other={tmp_path / 'b'}"]) == {
        "run-a": str(tmp_path / "run-a"),
        "other": str(tmp_path / "b"),
    }
    with pytest.raises(ConfigError, match="two runs are named 'b'"):
        name_runs([str(tmp_path / "b"), f"b={tmp_path / 'run-a'}"])
    with pytest.raises(ConfigError, match="cannot name a model"):
        name_runs([f"a b={tmp_path / 'b'}"])


def test_binding_beyond_loopback_warns(capsys):
    warn_about_host("127.0.0.1", ServeSettings())
    assert capsys.readouterr().err == ""
    warn_about_host("0.0.0.0", ServeSettings())
    assert "no API key is set" in capsys.readouterr().err
    warn_about_host("0.0.0.0", ServeSettings(api_key="k"))
    assert "requests need the API key" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="max_n_best"):
        ServeSettings(max_beam=2, max_n_best=3)


def test_settings_from_command_line_values():
    settings = ServeSettings.from_options(max_beam=8, cors_origins=["https://a.org"], api_key=None)
    assert settings.max_beam == 8 and settings.cors_origins == ("https://a.org",)
    assert settings.max_texts == ServeSettings().max_texts  # None: the default
    with pytest.raises(ConfigError, match="unknown serve settings: max_beams"):
        ServeSettings.from_options(max_beams=8)


def test_each_worker_builds_its_app_from_the_environment(dates_run, monkeypatch):
    chosen = ServeSettings(max_beam=3, max_n_best=2, cors_origins=("https://a.org",))
    settings = dataclasses.asdict(chosen)
    environment = {"runs": {"d": str(dates_run)}, "settings": settings, "device": "cpu"}
    chosen_load = {"int8": False, "threads": 1, "precision": "bf16"}
    monkeypatch.setenv(ENVIRONMENT, json.dumps({**environment, **chosen_load}))
    monkeypatch.setattr(server_module, "log_to_stderr", lambda: None)  # keep pytest's logging
    monkeypatch.setattr("attnrnn.tasks.runs.native_bf16", lambda device: True)
    app = app_from_environment()
    assert list(app.state.served) == ["d"] and app.state.settings.max_beam == 3
    assert app.state.settings.cors_origins == ("https://a.org",)
    assert app.state.served["d"].model.precision == "bf16"


def test_attnrnn_serve_runs_until_terminated(dates_run):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        *(sys.executable, "-m", "attnrnn.cli", "serve", f"dates={dates_run}", "--port", str(port)),
        *("--threads", "1", "--device", "cpu", "--max-beam", "4", "--max-n-best", "2"),
    ]
    environment = {**os.environ, "ATTNRNN_API_KEY": "k3y", "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while server.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        assert httpx.get(url + "/v1/models").status_code == 401  # the key from the environment
        listed = httpx.get(url + "/v1/models", headers={"Authorization": "Bearer k3y"})
        assert [model["name"] for model in listed.json()["models"]] == ["dates"]
        too_wide = httpx.post(
            url + "/v1/models/dates/translate",
            json={"texts": ["9 April 2023"], "beam": 5},
            headers={"Authorization": "Bearer k3y"},
        )
        assert too_wide.status_code == 422 and too_wide.json()["error"]["field"] == "beam"
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    # uvicorn ends by raising the signal it caught again, once it has shut down
    assert server.returncode in (0, -signal.SIGTERM), err
    assert "Application shutdown complete" in err
    assert f"dates (translation): POST {url}/v1/models/dates/translate" in err
    assert "GET /v1/models 401 " in err and "GET /v1/models 200 " in err
