"""Errors a user can cause. The CLI prints their message as one line and exits with `exit_code`.

A library message marks each parameter it names with backticks ("`epochs` must be at least
1") and lists it in `parameters`; the CLI swaps each mark for its flag (--epochs) with one table
(aegen/cli.py `FLAGS`), so a Python caller reads about the arguments it passed and a shell user
about flags. Warnings and log lines mark parameters the same way (aegen/console.py `Reporter`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MARKED = re.compile(r"`([a-z][a-z0-9_]*)`")  # a parameter, as a library message names it


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
