"""Errors a user can cause. The CLI prints their message as one line and exits with `exit_code`."""


class AegenError(Exception):
    """A runtime failure the user should read about (exit 1), never a traceback."""

    exit_code = 1


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
