"""How ``attnrnn serve`` serves: micro-batching, request limits, access.

One frozen dataclass, the only home of every default; the CLI's options map onto its
fields one to one. Importing this module needs none of the ``serve`` extra's
libraries.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from attnrnn.config import check_non_negative, check_positive
from attnrnn.errors import ConfigError


@dataclass(frozen=True)
class ServeSettings:
    """Settings of one server (every model it serves shares them).

    max_batch_size: inputs (texts, recordings) one model call takes at most; requests
        waiting for the same model with the same search options are batched up to it
        (1 turns micro-batching off: every request runs alone).
    max_wait_ms: how long a batch that has its first request waits for more, when the
        model is under load (on an idle model, a lone request runs at once).
    queue_size: requests waiting per model at most; one more is answered 503 with
        ``Retry-After: retry_after_s``.
    max_body_bytes: request bodies larger than this are answered 413.
    max_texts, max_text_chars: texts per request, characters per text.
    max_audio_seconds: the longest recording (the run's ``features.max_seconds``
        applies too).
    max_beam, max_n_best: the largest search options a request may ask for.
    api_key: when set, every ``/v1`` request and ``/metrics`` need the header
        ``Authorization: Bearer API_KEY`` (compared in constant time).
    cors_origins: origins allowed to call the API from a browser (none: CORS off;
        ``*`` allows any).
    log_requests: one line per request on the ``attnrnn.serving`` logger.
    """

    max_batch_size: int = 32
    max_wait_ms: float = 2.0
    queue_size: int = 256
    retry_after_s: int = 1
    max_body_bytes: int = 10 * 2**20
    max_texts: int = 64
    max_text_chars: int = 5000
    max_audio_seconds: float = 30.0
    max_beam: int = 16
    max_n_best: int = 8
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    log_requests: bool = True

    def __post_init__(self) -> None:
        check_positive(
            self,
            "max_batch_size",
            "queue_size",
            "retry_after_s",
            "max_body_bytes",
            "max_texts",
            "max_text_chars",
            "max_audio_seconds",
            "max_beam",
            "max_n_best",
        )
        check_non_negative(self, "max_wait_ms")
        if self.max_n_best > self.max_beam:
            raise ConfigError(
                f"max_n_best ({self.max_n_best}) cannot exceed max_beam ({self.max_beam})"
            )
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("api_key must not be empty")

    @classmethod
    def from_options(cls, **options: Any) -> ServeSettings:
        """Settings from command-line values named like the fields: None (an option not
        given) keeps the default, lists become tuples; an unknown name is an error."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown serve settings: {', '.join(unknown)}")
        given: dict[str, Any] = {
            name: tuple(value) if isinstance(value, list) else value
            for name, value in options.items()
            if value is not None
        }
        return cls(**given)

    def limits(self) -> dict[str, Any]:
        """The request limits, as ``GET /v1/models`` lists them."""
        return {
            "max_body_bytes": self.max_body_bytes,
            "max_texts": self.max_texts,
            "max_text_chars": self.max_text_chars,
            "max_audio_seconds": self.max_audio_seconds,
            "max_beam": self.max_beam,
            "max_n_best": self.max_n_best,
        }
