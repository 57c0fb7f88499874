"""Errors a user can cause. The CLI prints their message as one line and exits with `exit_code`.

A library error names the library's own parameters (`epochs must be at least 1`) and lists
them in `parameters`; the CLI swaps each for its flag (`--epochs`) in one table (aegen/cli.py
`FLAGS`), so a Python caller reads about the arguments it passed and a shell user about flags.
"""

from __future__ import annotations

from collections.abc import Iterable


class AegenError(Exception):
    """A runtime failure the user should read about (exit 1), never a traceback."""

    exit_code = 1

    def __init__(self, message: str = "", *, parameters: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.parameters = tuple(parameters)


class UsageError(AegenError):
    """The command line or a value in it is wrong (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration value an architecture or sampler cannot take; raise it from plugins."""


class CheckpointError(AegenError):
    """A checkpoint file that cannot be used as it is."""


class DataError(AegenError):
    """Training data that cannot be used as it is."""


class PluginError(AegenError):
    """A plugin that failed, or two plugins that claim one name."""
