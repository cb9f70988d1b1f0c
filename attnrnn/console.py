"""Messages for people go to standard error; standard output is kept for results (JSON)."""

from __future__ import annotations

import sys
from collections.abc import Callable

Log = Callable[[str], None]


def log(message: str) -> None:
    """Print a progress or status message to standard error."""
    print(message, file=sys.stderr, flush=True)
