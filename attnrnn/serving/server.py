"""``attnrnn serve``: load runs, build the app, run it on uvicorn.

uvicorn drains in-flight requests on SIGINT / SIGTERM (up to
``shutdown_timeout_s``), then the app's batchers finish what is queued. With
``workers`` > 1, uvicorn starts that many processes, each loading every model (and
each with its own /metrics); the runs and settings reach them through the
environment variable ``ATTNRNN_SERVE``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnrnn.errors import ConfigError
from attnrnn.extras import require
from attnrnn.serving.settings import ServeSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ENVIRONMENT = "ATTNRNN_SERVE"
API_KEY_VARIABLE = "ATTNRNN_API_KEY"


def name_runs(runs: Sequence[str]) -> dict[str, str]:
    """Name -> run directory: ``NAME=PATH`` names a run, a plain ``PATH`` is named after
    its folder. Names are letters, digits, ``.``, ``_`` and ``-`` (they go in URLs)."""
    named: dict[str, str] = {}
    for run in runs:
        name, separator, path = run.partition("=")
        if not separator or Path(run).exists():
            name, path = Path(run).resolve().name, run
        if not NAME.fullmatch(name):
            raise ConfigError(
                f"{run}: {name!r} cannot name a model (letters, digits, '.', '_', '-'; at "
                "most 64); name it with NAME=PATH"
            )
        if name in named:
            raise ConfigError(
                f"two runs are named {name!r} ({named[name]} and {path}): name them with NAME=PATH"
            )
        named[name] = path
    if not named:
        raise ConfigError("no runs to serve")
    return named


def load_models(
    runs: dict[str, str], device: str = "auto", int8: bool = False, precision: str = "fp32"
) -> dict[str, Any]:
    import attnrnn

    return {
        name: attnrnn.load(path, device=device, int8=int8, precision=precision)
        for name, path in runs.items()
    }


def serve(
    runs: Sequence[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    settings: ServeSettings | None = None,
    device: str = "auto",
    int8: bool = False,
    threads: int | None = None,
    workers: int = 1,
    shutdown_timeout_s: float = 30.0,
    precision: str = "fp32",
) -> None:
    """Serve ``runs`` (paths or ``NAME=PATH``) at ``http://host:port`` until stopped.

    ``settings``: batching, limits, access (:class:`ServeSettings`); its ``api_key``
    defaults to the environment variable ``ATTNRNN_API_KEY``. ``threads``: torch
    threads per process (default: torch's). ``precision``: ``bf16`` decodes translation
    runs with bf16 matmuls (see :func:`attnrnn.load`). Binding to an address other than the
    loopback prints a warning. Returns when the server has shut down.
    """
    for module in ("fastapi", "uvicorn", "prometheus_client", "multipart"):
        require(module)
    import uvicorn

    settings = settings or ServeSettings()
    if settings.api_key is None and os.environ.get(API_KEY_VARIABLE):
        settings = dataclasses.replace(settings, api_key=os.environ[API_KEY_VARIABLE])
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    named = name_runs(runs)
    warn_about_host(host, settings)
    log_to_stderr()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "access_log": False,  # the app logs one line per request itself
        "timeout_graceful_shutdown": shutdown_timeout_s,
        "log_level": "info",
    }
    environment = {
        "runs": named,
        "settings": dataclasses.asdict(settings),
        "device": device,
        "int8": int8,
        "threads": threads,
        "precision": precision,
    }
    if workers > 1:
        os.environ[ENVIRONMENT] = json.dumps(environment)
        target = f"{__name__}:app_from_environment"
        uvicorn.run(target, factory=True, workers=workers, **options)
        return
    app = build_app(named, settings, device, int8, threads, precision)
    describe(app, host, port)
    uvicorn.run(app, **options)


def build_app(
    runs: dict[str, str],
    settings: ServeSettings,
    device: str = "auto",
    int8: bool = False,
    threads: int | None = None,
    precision: str = "fp32",
) -> FastAPI:
    from attnrnn.serving.app import create_app

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return create_app(load_models(runs, device, int8, precision), settings)


def app_from_environment() -> FastAPI:
    """The app of one worker process, from ``ATTNRNN_SERVE`` (set by :func:`serve`)."""
    environment = json.loads(os.environ[ENVIRONMENT])
    settings = environment["settings"]
    settings["cors_origins"] = tuple(settings["cors_origins"])
    log_to_stderr()
    return build_app(
        environment["runs"],
        ServeSettings(**settings),
        environment["device"],
        environment["int8"],
        environment["threads"],
        environment["precision"],
    )


def warn_about_host(host: str, settings: ServeSettings) -> None:
    if host in LOOPBACK:
        return
    access = (
        "requests need the API key"
        if settings.api_key
        else f"no API key is set (--api-key or {API_KEY_VARIABLE}): anyone who can reach it "
        "can use the models"
    )
    print(f"warning: serving on {host}, not only this machine; {access}", file=sys.stderr)


def log_to_stderr() -> None:
    """One line per request on standard error (the ``attnrnn.serving`` logger)."""
    logger = logging.getLogger("attnrnn.serving")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def describe(app: FastAPI, host: str, port: int) -> None:
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    for item in app.state.served.values():
        print(
            f"{item.name} ({item.model.task.name}): POST {where}{item.info['endpoint']}",
            file=sys.stderr,
        )
    print(f"explorer: {where}/   API docs: {where}/docs", file=sys.stderr)
