"""Recordings sent to ``/transcribe``: read from the request body only, never from a
path the request names, and decoded in memory with a bounded length.

The samples are read as the CLI reads a file (float32, channels kept), then handed to
:meth:`~attnrnn.tasks.speech.Recognizer.transcribe` with their sample rate, which
averages the channels and resamples exactly as for a file.
"""

from __future__ import annotations

import io

import numpy as np
from starlette.datastructures import UploadFile
from starlette.requests import Request

from attnrnn.extras import require
from attnrnn.serving.errors import ApiError

# The body types a raw upload may have (besides multipart/form-data with a file "audio").
AUDIO_TYPES = ("audio/wav", "audio/x-wav", "audio/wave", "audio/flac", "audio/x-flac")
RAW_TYPES = (*AUDIO_TYPES, "application/octet-stream")
MAX_CHANNELS = 2
SAMPLE_RATES = (1000, 96000)  # the rates accepted, in Hz

# The request body of /transcribe in the OpenAPI schema.
AUDIO_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"audio": {"type": "string", "format": "binary"}},
                "required": ["audio"],
            }
        },
        **{kind: {"schema": {"type": "string", "format": "binary"}} for kind in RAW_TYPES},
    },
}


async def uploaded_audio(request: Request) -> tuple[bytes, str]:
    """The bytes of the recording and its name: the multipart file ``audio`` (its
    file name) or the raw body (``upload``)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=8)
        try:
            audio = form.get("audio")
            if not isinstance(audio, UploadFile):
                message = "audio: send the recording as the multipart file 'audio'"
                raise ApiError(422, message, "audio")
            return await audio.read(), audio.filename or "upload"
        finally:
            await form.close()
    if kind in RAW_TYPES:
        return await request.body(), "upload"
    raise ApiError(
        415,
        f"unsupported Content-Type {kind or '(none)'!r}: send multipart/form-data with a "
        f"file 'audio', or the raw recording as {', '.join(RAW_TYPES)}",
        "Content-Type",
    )


def decode_audio(data: bytes, max_seconds: float) -> tuple[np.ndarray, int]:
    """(samples, channels) float32 samples and their rate, from a WAV, FLAC... in
    memory; unreadable, empty, over ``max_seconds`` or odd (rate, channels, NaN
    samples) audio is an :class:`ApiError` 422 naming the field ``audio``."""
    soundfile = require("soundfile")
    if not data:
        raise ApiError(422, "audio: the recording is empty", "audio")
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as audio:
            rate, channels = audio.samplerate, audio.channels
            check_format(rate, channels)
            limit = int(max_seconds * rate) + 1  # one frame more than allowed
            samples = audio.read(frames=limit, dtype="float32", always_2d=True)
    except (RuntimeError, TypeError, ValueError, soundfile.LibsndfileError) as error:
        reason = getattr(error, "error_string", None) or str(error)  # libsndfile's own words
        raise ApiError(422, f"audio: not a readable recording ({reason})", "audio") from None
    if len(samples) == 0:
        raise ApiError(422, "audio: the recording has no samples", "audio")
    if len(samples) >= limit:
        raise ApiError(
            422, f"audio: longer than this server's limit of {max_seconds:g} seconds", "audio"
        )
    if not np.isfinite(samples).all():
        raise ApiError(422, "audio: the recording has NaN or infinite samples", "audio")
    return samples, rate


def check_format(rate: int, channels: int) -> None:
    low, high = SAMPLE_RATES
    if not low <= rate <= high:
        raise ApiError(422, f"audio: sample rate {rate} Hz is outside {low}-{high} Hz", "audio")
    if not 1 <= channels <= MAX_CHANNELS:
        raise ApiError(
            422, f"audio: {channels} channels; at most {MAX_CHANNELS} are accepted", "audio"
        )
