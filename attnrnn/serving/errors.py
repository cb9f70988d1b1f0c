"""Errors as JSON: every error answer is ``{"error": {"code", "message", "field"}}``.

User errors (a bad body, an input over a limit, an unknown model, unreadable audio,
an :class:`~attnrnn.errors.AttnrnnError` from the model) get a 4xx naming the
problem; a 500 means a bug, and its traceback goes to the log, not to the client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from attnrnn.errors import AttnrnnError
from attnrnn.explorer import finite

log = logging.getLogger("attnrnn.serving")


class ApiError(Exception):
    """An error answer: HTTP ``code``, a message for a person, the field at fault."""

    def __init__(
        self,
        code: int,
        message: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})


class Json(JSONResponse):
    """A JSON response; floats that JSON cannot hold (NaN, infinities) become null and
    characters UTF-8 cannot hold (lone surrogates) become "?"."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except ValueError:  # a non-finite float or a lone surrogate
            text = json.dumps(
                finite(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")
            )
            return text.encode("utf-8", "replace")


def error_response(
    code: int, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> Json:
    return Json(
        {"error": {"code": code, "message": message, "field": field}},
        status_code=code,
        headers=dict(headers or {}),
    )


def field_name(location: tuple[Any, ...]) -> str | None:
    """A pydantic error location as a field path: ``("body", "texts", 2)`` -> ``texts[2]``."""
    parts = list(location)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or None


def validation_error(error: RequestValidationError) -> Json:
    """The first problem of an invalid request, as 422 (400 when the body is not JSON)."""
    errors = error.errors()
    problem: dict[str, Any] = dict(errors[0]) if errors else {"msg": "invalid request"}
    kind = problem.get("type", "")
    if kind == "json_invalid":
        reason = problem.get("ctx", {}).get("error", "")
        return error_response(400, f"the body is not valid JSON ({reason})", "body")
    field = field_name(tuple(problem.get("loc", ())))
    if field is None and kind == "missing":
        return error_response(422, "the request needs a JSON body", "body")
    message = str(problem.get("msg", "invalid value"))
    if kind == "extra_forbidden":
        message = "unknown field"
    return error_response(422, f"{field}: {message}" if field else message, field)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error with :func:`error_response`."""

    async def api_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiError)
        return error_response(error.code, error.message, error.field, error.headers)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        message = str(error.detail)
        if error.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        field = "body" if error.status_code == 413 else None
        return error_response(error.status_code, message, field, error.headers)

    async def invalid_request(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        return validation_error(error)

    async def user_error(request: Request, error: Exception) -> Response:
        return error_response(422, str(error))

    async def bug(request: Request, error: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return error_response(500, "internal error (the server's log has the details)")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(AttnrnnError, user_error)
    app.add_exception_handler(Exception, bug)
