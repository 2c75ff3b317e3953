"""User-facing errors: the CLI prints their message on one line, never a traceback."""

from models.errors import ConfigError


class BenchmarkError(Exception):
    """Something the user can fix; the message says what is wrong and how to fix it."""


class DataError(BenchmarkError):
    """A dataset is missing, malformed or empty."""


__all__ = ["BenchmarkError", "ConfigError", "DataError"]
