"""Grids and PNGs: exactly torchvision's `make_grid` and `save_image`, pixel for pixel and byte
for byte, without importing torchvision in the sampling commands (it costs them seconds)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torchvision.utils import make_grid as torchvision_grid
from torchvision.utils import save_image

from aegen.media import make_grid, save_grid, save_images
from aegen.recording import grid_pixels

SHAPES = [(1, 1, 5, 7), (1, 3, 4, 4), (2, 1, 3, 3), (5, 3, 6, 4), (7, 1, 8, 8), (16, 3, 2, 2)]


def batch(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("columns", [1, 3, 8])
@pytest.mark.parametrize("padding", [0, 2])
def test_a_grid_is_torchvisions(shape, columns, padding):
    images = batch(shape)
    expected = torchvision_grid(images, nrow=columns, padding=padding)
    assert torch.equal(make_grid(images, columns, padding), expected)


@pytest.mark.parametrize("shape", SHAPES)
def test_grid_and_single_pngs_are_torchvisions_byte_for_byte(shape, tmp_path):
    images = batch(shape, seed=1).mul(1.2).sub(0.1)  # values outside [0, 1] are clamped
    clamped = images.clamp(0, 1)
    save_grid(images, tmp_path / "ours.png", columns=3)
    save_image(clamped, tmp_path / "theirs.png", nrow=3, padding=2, format="PNG")
    assert (tmp_path / "ours.png").read_bytes() == (tmp_path / "theirs.png").read_bytes()
    ours = save_images(images, [tmp_path / f"{i}.png" for i in range(len(images))])
    for i, path in enumerate(ours):
        save_image(clamped[i], tmp_path / "single.png", format="PNG", padding=0)
        assert path.read_bytes() == (tmp_path / "single.png").read_bytes()


def test_video_frames_keep_grey_as_one_channel():
    pixels = grid_pixels(batch((4, 1, 6, 6)), columns=2)
    assert pixels.shape == (2 * 8 + 2, 2 * 8 + 2)
    colour = grid_pixels(batch((1, 3, 5, 5)), columns=1, scale=3)
    assert colour.shape == (5 + 1, 5 + 1, 3)  # 15 px upscaled: padded to even sides for H.264


def test_sampling_and_training_do_not_import_torchvision():
    code = ("import sys, aegen.tasks.generate, aegen.tasks.walk, aegen.training, "
            "aegen.evaluation.task; print('torchvision' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
