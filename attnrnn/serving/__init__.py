"""Serving trained models over HTTP (``attnrnn serve``), with the attention explorer.

- :func:`serve` loads runs and serves them on uvicorn (what the CLI calls);
- :func:`attnrnn.serving.app.create_app` builds the FastAPI app over loaded models;
- :class:`ServeSettings` holds batching, limits and access settings.

The modules: ``app`` (routes), ``batching`` (dynamic micro-batching per model),
``middleware`` (API key, body limit, request log and metrics), ``errors`` (JSON
errors), ``audio`` (uploaded recordings), ``schemas`` (request and response
models), ``metrics`` (Prometheus), ``settings``, ``server`` (uvicorn), ``static``
(the explorer page).
"""

from __future__ import annotations

from attnrnn.serving.server import name_runs, serve
from attnrnn.serving.settings import ServeSettings

__all__ = ["ServeSettings", "name_runs", "serve"]
