"""The small default model shipped inside the package, used when no checkpoint is given."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from .errors import AegenError

DEFAULT_NAME = "default.safetensors"
DESCRIPTION = "a small U-Net trained on Fashion-MNIST at 32x32 (docs/default-model.md)"


def default_checkpoint() -> Path:
    """Where the shipped default model lies."""
    return Path(str(files("aegen") / "data" / DEFAULT_NAME))


def resolve_checkpoint(checkpoint: str | os.PathLike | None, reporter=None) -> Path:
    """`checkpoint`, or the default model (saying so on stderr) when none is given."""
    if checkpoint is not None:
        return Path(checkpoint)
    path = default_checkpoint()
    if not path.exists():
        raise AegenError(
            f"no checkpoint given, and the default model is missing from {path}; "
            "pass one with `checkpoint`",
            parameters=["checkpoint"],
        )
    if reporter is not None:
        reporter.info(f"no -c given: using the default model, {DESCRIPTION}")
    return path
