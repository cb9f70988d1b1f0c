"""The HTTP API of ``attnrnn serve``: a FastAPI app over trained models.

Endpoints (``NAME`` is a model's name; ``/docs`` has the OpenAPI page)::

    GET  /health                          {"status": "ok"}
    GET  /v1/models                       the models, their endpoints, metrics, limits
    POST /v1/models/NAME/classify         {"texts": [...], "attention": true}
    POST /v1/models/NAME/score            (language models) the same body
    POST /v1/models/NAME/translate        {"texts", "attention", "beam", "n_best",
    POST /v1/models/NAME/summarize         "length_penalty"}
    POST /v1/models/NAME/transcribe       a recording (multipart file "audio" or the raw
                                          body); ?beam=&n_best=&length_penalty=&attention=
    GET  /metrics                         Prometheus metrics
    GET  /                                the attention explorer (static/explorer.html)

Each answer is ``{"model": NAME, "results": [RECORD, ...]}``, a record per input: the
model's ``--json`` record (:meth:`TrainedModel.record`), without its attention keys
when ``attention`` is false. Errors are ``{"error": {"code", "message", "field"}}``.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

import attnrnn
from attnrnn.data.io import read_run_json
from attnrnn.errors import AttnrnnError, ConfigError
from attnrnn.explorer import spectrogram
from attnrnn.extras import require
from attnrnn.serving.audio import AUDIO_BODY, decode_audio, uploaded_audio
from attnrnn.serving.batching import MicroBatcher, QueueFull
from attnrnn.serving.errors import ApiError, Json, install_error_handlers
from attnrnn.serving.metrics import ServerMetrics
from attnrnn.serving.middleware import RequestGate
from attnrnn.serving.schemas import (
    ERROR_RESPONSES,
    MAX_LENGTH_PENALTY,
    Health,
    ModelInfo,
    ModelList,
    Results,
    SearchRequest,
    TextsRequest,
    openapi_with_limits,
)
from attnrnn.serving.settings import ServeSettings
from attnrnn.tasks.base import TrainedModel
from attnrnn.tasks.sequence import search_config

STATIC = Path(__file__).parent / "static"
PAGE = STATIC / "explorer.html"  # the attention explorer, at GET /

# The endpoint (action) of each task; a task not listed is served at /predict.
ACTIONS = {
    "classification": "classify",
    "translation": "translate",
    "summarization": "summarize",
    "speech": "transcribe",
    "language_model": "score",
}


@dataclass
class Served:
    """One model as the server serves it."""

    name: str
    model: TrainedModel
    action: str
    batcher: MicroBatcher
    info: dict[str, Any]  # its entry in GET /v1/models


def create_app(
    models: Mapping[str, TrainedModel], settings: ServeSettings | None = None
) -> FastAPI:
    """An app serving ``models`` (name -> loaded model) with ``settings``.

    ``app.state.served`` maps each name to its :class:`Served` (its batcher has the
    batch sizes seen), ``app.state.metrics`` is the app's :class:`ServerMetrics`.
    """
    settings = settings or ServeSettings()
    if not models:
        raise ConfigError("no models to serve")
    metrics = ServerMetrics()
    served = {name: serve_model(name, model, settings, metrics) for name, model in models.items()}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for item in served.values():
            item.batcher.open()
        yield
        await asyncio.gather(*(item.batcher.close() for item in served.values()))

    app = FastAPI(
        title="attnrnn",
        version=attnrnn.__version__,
        summary="Attention RNNs over HTTP: every answer carries the tokens and attention.",
        lifespan=lifespan,
    )
    app.state.served = served
    app.state.metrics = metrics
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(RequestGate, settings=settings, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.include_router(model_routes(served, settings))
    app.include_router(service_routes(served, metrics))
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            app.openapi_schema = openapi_with_limits(schema, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def serve_model(
    name: str, model: TrainedModel, settings: ServeSettings, metrics: ServerMetrics
) -> Served:
    action = ACTIONS.get(model.task.name, "predict")
    if action == "transcribe":
        require("soundfile")  # uploads are decoded with it: fail at start, not per request

    def predict(inputs: list[Any], options: dict[str, Any]) -> list[Any]:
        return list(model.predict(inputs, **options))

    batcher = MicroBatcher(
        predict,
        settings.max_batch_size,
        settings.max_wait_ms,
        settings.queue_size,
        name,
        on_batch=metrics.batch_size.labels(name).observe,
        on_queue=metrics.queue_depth.labels(name).set,
    )
    return Served(name, model, action, batcher, model_info(name, model, action, settings))


# --------------------------------------------------------------------------- the models


def model_routes(served: dict[str, Served], settings: ServeSettings) -> APIRouter:
    """POST /v1/models/NAME/ACTION for every action."""
    router = APIRouter(prefix="/v1/models/{name}", tags=["models"], responses=ERROR_RESPONSES)

    def lookup(action: str) -> Callable[[str], Served]:
        def served_model(name: str) -> Served:
            if name not in served:
                known = ", ".join(sorted(served))
                raise ApiError(404, f"no model named {name!r} (models: {known})", "name")
            item = served[name]
            if item.action != action:
                raise ApiError(
                    404,
                    f"model {name!r} is a {item.model.task.name} model: "
                    f"POST /v1/models/{name}/{item.action}",
                    "name",
                )
            return item

        return served_model

    async def answer(
        item: Served,
        request: Request,
        inputs: list[Any],
        options: dict[str, Any],
        attention: bool,
        audio: str | None = None,
    ) -> Response:
        try:
            batched = await item.batcher.submit(inputs, options)
        except QueueFull as error:
            retry = {"Retry-After": str(settings.retry_after_s)}
            raise ApiError(503, str(error), headers=retry) from None
        except AttnrnnError as error:  # the model refused an input (a text with no tokens)
            raise ApiError(422, str(error), "texts" if audio is None else "audio") from None
        request.state.batch_size = batched.batch_size
        model = item.model
        records = [served_record(model, result, attention, audio) for result in batched.results]
        return Json({"model": item.name, "results": records})

    def text_endpoint(action: str, summary: str) -> None:
        @router.post(f"/{action}", response_model=Results, summary=summary, name=action)
        async def endpoint(
            body: TextsRequest, request: Request, item: Annotated[Served, Depends(lookup(action))]
        ) -> Response:
            check_texts(body.texts, settings)
            return await answer(item, request, body.texts, {}, body.attention)

    def search_endpoint(action: str, summary: str) -> None:
        @router.post(f"/{action}", response_model=Results, summary=summary, name=action)
        async def endpoint(
            body: SearchRequest, request: Request, item: Annotated[Served, Depends(lookup(action))]
        ) -> Response:
            check_texts(body.texts, settings)
            options = search_options(item, settings, body.beam, body.n_best, body.length_penalty)
            return await answer(item, request, body.texts, options, body.attention)

    text_endpoint("classify", "Classify texts (label, probabilities, attention per token)")
    text_endpoint("score", "Score texts with a language model (per-token log-probabilities)")
    text_endpoint("predict", "Predict with a model of another task")
    search_endpoint("translate", "Translate texts (tokens, attention, n-best)")
    search_endpoint("summarize", "Summarize texts (tokens, attention, copy probabilities)")

    @router.post(
        "/transcribe",
        response_model=Results,
        summary="Transcribe a recording (WAV, FLAC; resampled as the CLI does)",
        openapi_extra={"requestBody": AUDIO_BODY},
    )
    async def transcribe(
        request: Request,
        item: Annotated[Served, Depends(lookup("transcribe"))],
        beam: Annotated[int | None, Query(ge=1, description="beam size")] = None,
        n_best: Annotated[int | None, Query(ge=1, description="hypotheses per recording")] = None,
        length_penalty: Annotated[
            float | None, Query(ge=0.0, le=MAX_LENGTH_PENALTY, allow_inf_nan=False)
        ] = None,
        attention: Annotated[
            bool, Query(description="include the attention and the spectrogram")
        ] = True,
    ) -> Response:
        options = search_options(item, settings, beam, n_best, length_penalty)
        data, name = await uploaded_audio(request)
        features = getattr(item.model.config, "features", None)
        max_seconds = min(settings.max_audio_seconds, getattr(features, "max_seconds", 1e9))
        samples, rate = await run_in_threadpool(decode_audio, data, max_seconds)
        options["sample_rate"] = rate
        return await answer(item, request, [samples], options, attention, audio=name)

    return router


def check_texts(texts: list[str], settings: ServeSettings) -> None:
    """Texts per request, characters per text, and text UTF-8 can hold (422 otherwise)."""
    if len(texts) > settings.max_texts:
        raise ApiError(
            422,
            f"texts: {len(texts)} texts; at most {settings.max_texts} per request",
            "texts",
        )
    for number, text in enumerate(texts):
        field = f"texts[{number}]"
        if len(text) > settings.max_text_chars:
            raise ApiError(
                422,
                f"{field}: {len(text):,} characters; at most {settings.max_text_chars:,}",
                field,
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(422, f"{field}: not valid Unicode (a lone surrogate)", field) from None


def search_options(
    item: Served,
    settings: ServeSettings,
    beam: int | None,
    n_best: int | None,
    length_penalty: float | None,
) -> dict[str, Any]:
    """The search options a request gave, checked against the limits and the run's
    search settings (n_best above the beam is a 422)."""
    if beam is not None and beam > settings.max_beam:
        raise ApiError(422, f"beam: {beam}; at most {settings.max_beam}", "beam")
    if n_best is not None and n_best > settings.max_n_best:
        raise ApiError(422, f"n_best: {n_best}; at most {settings.max_n_best}", "n_best")
    given = {"beam": beam, "n_best": n_best, "length_penalty": length_penalty}
    options = {key: value for key, value in given.items() if value is not None}
    base = getattr(item.model.config, "search", None)
    if base is not None:
        try:
            config = search_config(base, **options)
        except ConfigError as error:
            raise ApiError(422, str(error), "n_best") from None
        if config.beam_size > settings.max_beam:  # the run's beam, grown to n_best
            raise ApiError(422, f"beam: {config.beam_size}; at most {settings.max_beam}", "beam")
    return options


def served_record(model: TrainedModel, result: Any, attention: bool, audio: str | None) -> dict:
    """The model's record of ``result``: for a recording, named after the upload and
    with its spectrogram; without attention keys when ``attention`` is false."""
    record = model.record(result)
    if audio is not None:
        record["audio"] = audio
        if attention:
            hop_seconds = model.config.features.hop_ms / 1000
            record["spectrogram"] = spectrogram(result.features, hop_seconds)
    if not attention:
        record.pop("attention", None)
        for alternative in record.get("alternatives_detail", []):
            alternative.pop("attention", None)
    return record


# --------------------------------------------------------------------------- the rest


def service_routes(served: dict[str, Served], metrics: ServerMetrics) -> APIRouter:
    router = APIRouter()

    @router.get("/health", response_model=Health, tags=["service"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/v1/models", response_model=ModelList, tags=["models"])
    async def models() -> Response:
        return Json({"models": [item.info for item in served.values()]})

    @router.get("/metrics", tags=["service"], response_class=Response)
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @router.get("/", include_in_schema=False)
    async def page() -> Response:
        if PAGE.is_file():
            return FileResponse(PAGE, media_type="text/html")
        return HTMLResponse('<p>attnrnn: the API is at <a href="/docs">/docs</a>.</p>')

    return router


def model_info(
    name: str, model: TrainedModel, action: str, settings: ServeSettings
) -> dict[str, Any]:
    """The entry of ``GET /v1/models`` for a model."""
    config = model.config
    info: dict[str, Any] = {
        "name": name,
        "task": model.task.name,
        "action": action,
        "endpoint": f"/v1/models/{name}/{action}",
        "metrics": run_results(model.directory),
        "attnrnn_version": model.info.get("attnrnn_version", attnrnn.__version__),
        "limits": settings.limits(),
        "languages": None,
        "labels": None,
        "search": None,
    }
    if model.task.name == "translation":
        data = config.data
        info["languages"] = {"source": data.source_language, "target": data.target_language}
    labels = getattr(model.assets, "labels", None)
    if isinstance(labels, list):
        info["labels"] = [str(label) for label in labels]
    search = getattr(config, "search", None)
    if search is not None:
        info["search"] = {
            "beam": search.beam_size,
            "n_best": search.n_best,
            "length_penalty": search.length_penalty,
        }
    return ModelInfo.model_validate(info).model_dump()


def run_results(directory: Path | None) -> dict[str, Any]:
    """A run's results.json, or {} when it has none (or an unreadable one)."""
    if directory is None:
        return {}
    try:
        results: dict[str, Any] = read_run_json(Path(directory), "results.json", "results")
    except AttnrnnError:  # missing, damaged, nested too deep: the server still starts
        return {}
    return results
