"""User-facing errors.

Every problem caused by the user's input (a bad file, a bad configuration
value, a bad request) is raised as an :class:`AttnrnnError`. The CLI prints its
message and exits with status 2, without a traceback. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class AttnrnnError(Exception):
    """Base class of errors whose message is meant for the user."""


class ConfigError(AttnrnnError):
    """A configuration file or override is invalid."""


class DataError(AttnrnnError):
    """An input data file is missing, malformed or inconsistent.

    The message names the file and, where it applies, the line.
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


class RunError(AttnrnnError):
    """A run directory is missing, incomplete or incompatible."""
