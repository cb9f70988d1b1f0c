"""The JSON bodies of the HTTP API, as pydantic models (they make the OpenAPI schema).

Requests forbid unknown fields, so a misspelt option (``"bean": 3``) is an error
rather than silently ignored. The limits that :class:`ServeSettings` sets per server
(texts per request, beam size...) are checked by the endpoints and written into the
served OpenAPI schema (:func:`openapi_with_limits`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from attnrnn.serving.settings import ServeSettings

# The largest GNMT length penalty a request may ask for (0 = raw log-probability).
MAX_LENGTH_PENALTY = 10.0


class TextsRequest(BaseModel):
    """Texts for a model that reads text (classify, score)."""

    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(
        min_length=1, description="the inputs, one result each (in this order)"
    )
    attention: bool = Field(
        True, description="include the attention weights (false saves bandwidth)"
    )


class SearchRequest(TextsRequest):
    """Texts for a model that writes a sequence (translate, summarize), with search
    options; an option left out keeps the run's setting."""

    beam: int | None = Field(None, ge=1, description="beam size (1: greedy)")
    n_best: int | None = Field(
        None, ge=1, description="hypotheses per input; the beam grows to n_best when smaller"
    )
    length_penalty: float | None = Field(
        None,
        ge=0.0,
        le=MAX_LENGTH_PENALTY,
        allow_inf_nan=False,
        description="GNMT length penalty alpha",
    )


class Results(BaseModel):
    """One record per input, in input order: the task's ``--json`` record (output,
    tokens on both sides, attention; ``alternatives_detail`` with n_best > 1; for
    speech a ``spectrogram`` when attention is on)."""

    model: str
    results: list[dict[str, Any]]


class ModelInfo(BaseModel):
    """A served model: where to call it, what it was trained for, its scores."""

    name: str
    task: str = Field(description="classification, translation, speech, summarization...")
    action: str = Field(description="classify, translate, summarize, transcribe or score")
    endpoint: str = Field(description="POST here: /v1/models/NAME/ACTION")
    metrics: dict[str, Any] = Field(description="the run's results.json ({} without one)")
    attnrnn_version: str | None = Field(description="the attnrnn version that trained the run")
    limits: dict[str, Any]
    languages: dict[str, str] | None = Field(None, description="translation: source and target")
    labels: list[str] | None = Field(None, description="classification: the classes")
    search: dict[str, Any] | None = Field(
        None, description="the run's search settings (beam, n_best, length_penalty)"
    )


class ModelList(BaseModel):
    models: list[ModelInfo]


class Health(BaseModel):
    status: str = "ok"


class ErrorDetail(BaseModel):
    code: int = Field(description="the HTTP status")
    message: str = Field(description="what was wrong, for a person")
    field: str | None = Field(None, description="the request field at fault, when one is")


class ErrorResponse(BaseModel):
    """Every error answer has this shape."""

    error: ErrorDetail


# The error answers every model endpoint documents.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": description}
    for code, description in {
        400: "malformed body (not JSON, broken multipart)",
        401: "missing or wrong API key (when the server has one)",
        404: "no such model, or the model does another task",
        413: "body larger than the server's limit",
        415: "a recording sent with a Content-Type that is not audio or multipart",
        422: "invalid input or over a limit (the field and the limit are named)",
        503: "the model's queue is full; retry after Retry-After seconds",
    }.items()
}


def openapi_with_limits(schema: dict[str, Any], settings: ServeSettings) -> dict[str, Any]:
    """The OpenAPI schema with this server's limits on the request fields (maxItems of
    texts, maxLength of a text, maximum beam and n_best)."""
    schemas = schema.get("components", {}).get("schemas", {})
    for model in ("TextsRequest", "SearchRequest"):
        properties = schemas.get(model, {}).get("properties", {})
        if "texts" in properties:
            properties["texts"]["maxItems"] = settings.max_texts
            properties["texts"].setdefault("items", {})["maxLength"] = settings.max_text_chars
        for field, limit in (("beam", settings.max_beam), ("n_best", settings.max_n_best)):
            if field in properties:
                set_maximum(properties[field], limit)
    query_limits = {"beam": settings.max_beam, "n_best": settings.max_n_best}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                name = parameter.get("name")
                if parameter.get("in") == "query" and name in query_limits:
                    set_maximum(parameter["schema"], query_limits[name])
    return schema


def set_maximum(schema: dict[str, Any], limit: int) -> None:
    """``maximum: limit`` on an integer schema (or the integer branch of an anyOf)."""
    for branch in [schema, *schema.get("anyOf", [])]:
        if branch.get("type") == "integer":
            branch["maximum"] = limit
