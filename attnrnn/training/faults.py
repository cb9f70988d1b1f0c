"""Failpoints for crash testing (``benchmarks/crash_test.py``).

``crash_point(name)`` does nothing unless the environment variable
``ATTNRNN_CRASH_AT`` is ``name`` or ``name:N``: then the N-th time (default the
first) the process reaches that point it kills itself with SIGKILL, as a power
cut or the kernel's OOM killer would, with nothing flushed or cleaned up. The
points sit between the file-system steps of saving a checkpoint and between a
metrics row and the checkpoint that covers it, so the crash test can show that
every one of those moments leaves a run that resumes exactly. In a data-parallel
run, ``ATTNRNN_CRASH_RANK=R`` limits the crash to the process of rank R.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "ATTNRNN_CRASH_AT"
RANK_VARIABLE = "ATTNRNN_CRASH_RANK"
_reached: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Kill this process here when ``ATTNRNN_CRASH_AT`` names this point (see above)."""
    wanted = os.environ.get(VARIABLE)
    if not wanted:
        return
    point, _, count = wanted.partition(":")
    if point != name:
        return
    rank = os.environ.get(RANK_VARIABLE)
    if rank is not None and os.environ.get("RANK", "0") != rank:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
