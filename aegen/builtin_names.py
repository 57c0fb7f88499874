"""The built-in plugins' names that the core uses as defaults, in one place.

The core never imports a built-in plugin: it looks these names up in the registry like any
other, so a third-party plugin could replace one (by being the only one to register it).
"""

from __future__ import annotations

ARCHITECTURE = "unet"  # `aegen train` without --arch
OBJECTIVE = "copy"  # training without --objective, and checkpoints written before objectives
SAMPLER = "schedule"  # `aegen generate`, and the starting images of `aegen walk`
WALK_SAMPLER = "walk"  # `aegen walk`
NOISELESS_WALK_SAMPLER = "noiseless-walk"  # `aegen walk --noiseless`
FOLDER_SOURCE = "folder"  # a path no data source's `detect` claims
