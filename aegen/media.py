"""Images on disk: grids and single images, written atomically as PNGs.

The grid and the PNG are torchvision's `make_grid` and `save_image`, pixel for pixel and byte
for byte (tested against them), written here with torch and PIL because importing torchvision
costs a sampling command about 2.5 s of a few seconds' run (docs/design-notes.md).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from PIL import Image

from .files import atomic_output


def grid_columns(count: int) -> int:
    """Columns of a near-square grid of `count` images."""
    return max(1, math.ceil(math.sqrt(count)))


def make_grid(images: torch.Tensor, columns: int, padding: int = 2) -> torch.Tensor:
    """A (N, C, H, W) batch as one (3, H', W') image, `columns` images a row, `padding` black
    pixels around each; grey images become three equal channels and a batch of one is that
    image unpadded, as torchvision's `make_grid` does."""
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if len(images) == 1:
        return images[0].clone()
    count, channels, height, width = images.shape
    across = min(columns, count)
    down = math.ceil(count / across)
    cell_h, cell_w = height + padding, width + padding
    grid = images.new_zeros((channels, cell_h * down + padding, cell_w * across + padding))
    for k in range(count):
        y, x = divmod(k, across)
        top, left = y * cell_h + padding, x * cell_w + padding
        grid[:, top:top + height, left:left + width] = images[k]
    return grid


def _write_png(image: torch.Tensor, path: str | os.PathLike) -> None:
    """A (3, H, W) image in [0, 1] as an 8-bit RGB PNG, rounded as torchvision's `save_image`."""
    pixels = image.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(path, format="PNG")


def save_grid(images, path: str | os.PathLike, columns: int | None = None) -> Path:
    """Write a (N, C, H, W) batch in [0, 1] as one PNG grid (values outside are clamped)."""
    images = images.detach().float().cpu().clamp(0, 1)
    with atomic_output(path) as tmp:
        _write_png(make_grid(images, columns or grid_columns(len(images))), tmp)
    return Path(path)


def save_images(images, paths: list[Path]) -> list[Path]:
    """Write each image of a (N, C, H, W) batch in [0, 1] to its own PNG."""
    images = images.detach().float().cpu().clamp(0, 1)
    for image, path in zip(images, paths):
        with atomic_output(path) as tmp:
            _write_png(make_grid(image[None], 1, padding=0), tmp)
    return list(paths)
