"""Images on disk: grids and single images, written atomically with torchvision."""

from __future__ import annotations

import math
import os
from pathlib import Path

from torchvision.utils import save_image

from .files import atomic_output


def grid_columns(count: int) -> int:
    """Columns of a near-square grid of `count` images."""
    return max(1, math.ceil(math.sqrt(count)))


def save_grid(images, path: str | os.PathLike, columns: int | None = None) -> Path:
    """Write a (N, C, H, W) batch in [0, 1] as one PNG grid (values outside are clamped)."""
    images = images.detach().float().cpu().clamp(0, 1)
    with atomic_output(path) as tmp:
        save_image(images, tmp, nrow=columns or grid_columns(len(images)), padding=2, format="PNG")
    return Path(path)


def save_images(images, paths: list[Path]) -> list[Path]:
    """Write each image of a (N, C, H, W) batch in [0, 1] to its own PNG."""
    images = images.detach().float().cpu().clamp(0, 1)
    for image, path in zip(images, paths):
        with atomic_output(path) as tmp:
            save_image(image, tmp, format="PNG", padding=0)
    return list(paths)
