"""The public plugin and library API. Only what is documented in docs/plugins.md is public.

Importing this module is cheap (no torch): plugins import `hookimpl` and `Option` from here at
start-up, and the heavy functions load on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

from .errors import AegenError, CheckpointError, ConfigError, DataError, PluginError, UsageError
from .hookspecs import API_VERSION, KIND_TABLE, hookimpl
from .options import Option
from .plugins import get_registry as _get_registry
from .plugins import reset_registry as _reset_registry

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
    "data_budget": "aegen.data",
    "check_data_budget": "aegen.data",
}

__all__ = [
    "API_VERSION",
    "AegenError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Option",
    "PluginError",
    "UsageError",
    "get_component",
    "get_schedule",
    "reload_plugins",
    "hookimpl",
    *_LAZY,
]


def get_component(kind: str, name: str) -> Any:
    """The component of `kind` ("sampler", "schedule", "architecture", "objective",
    "data_source", or the plural) registered as `name`: `.name`, `.fn`, `.description`,
    `.plugin`, `.options`, and its kind's extras (`.defaults`, `.detect`). UsageError if no
    plugin registered it."""
    key = kind.replace(" ", "_")
    if key not in _KIND_NAMES:
        known = ", ".join(sorted(k for k in _KIND_NAMES if not k.endswith("s")))
        raise UsageError(f"unknown kind {kind!r} (kinds: {known})")
    return _get_registry().get(key, name)


def reload_plugins() -> None:
    """Forget the loaded plugins, so the next use loads them again: after installing one, or
    putting a folder of distributions on sys.path, in a running process (a plugin's tests)."""
    _reset_registry()


def get_schedule(name: str) -> Callable[[int, int], tuple[float, float]]:
    """The schedule `name` names as fn(n, steps) -> (c, d), with its options bound: a plain
    name ("linear") or a name with options ("sigmoid(k=12)")."""
    from .schedules import bind

    return bind(name)


_KIND_NAMES = {n for kind in KIND_TABLE for n in (kind.plural, kind.getter)}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aegen.api' has no attribute {name!r}")


def __dir__() -> list[str]:  # the public names, the lazily loaded ones included
    return sorted(__all__)
