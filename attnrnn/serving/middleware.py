"""What every HTTP request passes first: the API key, the body size limit, then one log
line and the request metrics when it has been answered.

A plain ASGI middleware, so a refused request is refused before any of its body is
read: a wrong key costs the server nothing, and a body over the limit is cut off as
soon as it is (its Content-Length says so, or its bytes pass the limit).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from attnrnn.serving.errors import error_response
from attnrnn.serving.metrics import ServerMetrics
from attnrnn.serving.settings import ServeSettings
from attnrnn.viz import printable_token

log = logging.getLogger("attnrnn.serving")

# Paths anyone may get without the API key: the page, its assets, the docs, health.
PUBLIC_PATHS = frozenset(
    {"/", "/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
PUBLIC_PREFIXES = ("/static/",)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class RequestGate:
    """The outermost layer of the app (inside CORS): refuses requests without the API
    key (401) or with a body over ``max_body_bytes`` (413), and records every answer
    (its status, latency and the batch size the endpoint put in ``request.state``)."""

    def __init__(self, app: ASGIApp, settings: ServeSettings, metrics: ServerMetrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state: MutableMapping[str, Any] = scope.setdefault("state", {})
        status = 500  # unless an answer starts

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            refusal = self.refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send_and_note)
            else:
                await self.app(scope, self.limited(receive), send_and_note)
        finally:
            self.record(scope, status, time.perf_counter() - started, state.get("batch_size"))

    def refusal(self, scope: Scope) -> Callable[[Scope, Receive, Send], Awaitable[None]] | None:
        """The answer to a request refused before it is read, or None."""
        headers = {name.lower(): value for name, value in scope["headers"]}
        key = self.settings.api_key
        if key and not is_public(scope["path"]) and not authorized(headers, key):
            return error_response(
                401,
                "missing or wrong API key: send the header 'Authorization: Bearer KEY'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        length = headers.get(b"content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > self.settings.max_body_bytes:
            return error_response(413, self.too_large(), "body")
        return None

    def too_large(self) -> str:
        limit = self.settings.max_body_bytes
        return f"the body is larger than this server's limit of {limit:,} bytes"

    def limited(self, receive: Receive) -> Receive:
        """``receive`` that stops a body (sent without Content-Length) at the limit."""
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.settings.max_body_bytes:
                    raise HTTPException(413, self.too_large())
            return message

        return receive_limited

    def record(self, scope: Scope, status: int, seconds: float, batch_size: int | None) -> None:
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or "unmatched"
        self.metrics.observe_request(endpoint, scope["method"], status, seconds)
        if self.settings.log_requests:
            batch = f" batch {batch_size}" if batch_size else ""
            path = printable_token(scope["path"])
            log.info("%s %s %d %.1f ms%s", scope["method"], path, status, seconds * 1000, batch)


def authorized(headers: dict[bytes, bytes], key: str) -> bool:
    """Whether ``Authorization: Bearer TOKEN`` carries ``key`` (compared in constant time)."""
    scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return hmac.compare_digest(token.strip(), key.encode("utf-8"))
