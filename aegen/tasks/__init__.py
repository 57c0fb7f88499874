"""The commands that run a model, as library functions: each takes a checkpoint, what to read
and write, a settings object (or its fields as keywords) and a `Runtime`, and returns a result
dataclass whose `as_json()` is the command's `--json` report.

- `generate_files` (`aegen generate`), `walk_files` (`aegen walk`): sampling into files, under
  torchrun too (aegen/distributed.py `task`);
- `denoise_files` (`aegen denoise`), `represent_files` and `list_layers` (`aegen represent`).
"""

from __future__ import annotations

from .denoise import DenoiseResult, DenoiseSettings, denoise_files
from .generate import GenerateResult, generate_files
from .represent import RepresentResult, RepresentSettings, list_layers, represent_files
from .walk import WalkResult, WalkSettings, walk_files

__all__ = [
    "DenoiseResult",
    "DenoiseSettings",
    "GenerateResult",
    "RepresentResult",
    "RepresentSettings",
    "WalkResult",
    "WalkSettings",
    "denoise_files",
    "generate_files",
    "list_layers",
    "represent_files",
    "walk_files",
]
