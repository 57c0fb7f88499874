"""The public plugin and library API. Only what is documented in docs/plugins.md is public.

Importing this module is cheap (no torch): plugins import `hookimpl` and `Option` from here at
start-up, and the heavy functions load on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

from .errors import AegenError, CheckpointError, ConfigError, DataError, PluginError, UsageError
from .hookspecs import hookimpl
from .options import Option
from .plugins import get_registry

_LAZY = {
    "Noise": "aegen.noise",
    "batch_statistics": "aegen.models",
    "build_model": "aegen.models",
    "Checkpoint": "aegen.checkpoint",
    "load_checkpoint": "aegen.checkpoint",
    "read_checkpoint_info": "aegen.header",
    "save_checkpoint": "aegen.checkpoint",
    "train": "aegen.training",
    "TrainResult": "aegen.training",
    "Runtime": "aegen.settings",
    "TrainSettings": "aegen.settings",
    "SamplingSettings": "aegen.settings",
    "Outputs": "aegen.outputs",
    "generate_files": "aegen.tasks.generate",
    "GenerateResult": "aegen.tasks.generate",
    "walk_files": "aegen.tasks.walk",
    "WalkSettings": "aegen.tasks.walk",
    "WalkResult": "aegen.tasks.walk",
    "denoise_files": "aegen.tasks.denoise",
    "DenoiseSettings": "aegen.tasks.denoise",
    "DenoiseResult": "aegen.tasks.denoise",
    "represent_files": "aegen.tasks.represent",
    "RepresentSettings": "aegen.tasks.represent",
    "RepresentResult": "aegen.tasks.represent",
    "Draw": "aegen.sampling",
    "Corruption": "aegen.denoising",
    "generate": "aegen.sampling",
    "sample": "aegen.sampling",
    "Generation": "aegen.sampling",
    "ImageSet": "aegen.data",
    "find_images": "aegen.data",
    "load_images": "aegen.data",
    "fit_images": "aegen.data",
}

__all__ = [
    "AegenError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Option",
    "PluginError",
    "UsageError",
    "get_schedule",
    "hookimpl",
    *_LAZY,
]


def get_schedule(name: str) -> Callable[[int, int], tuple[float, float]]:
    """The schedule function registered as `name`: fn(n, steps) -> (c, d)."""
    return get_registry().schedule(name).fn


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aegen.api' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
