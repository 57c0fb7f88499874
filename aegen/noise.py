"""Seeded noise for a batch of images, one generator per image."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class Noise:
    """Image i of the batch draws all its noise from a generator seeded with `seeds[i]`.

    So an image's noise never depends on how many images were drawn before it, and a sample can
    be re-made from its seed alone (given the same batch, since batch norm mixes the batch).
    `stream` > 0 gives other, independent draws for the same seeds (a walk that starts from
    images the schedule sampler made with those seeds uses stream 1).
    """

    def __init__(
        self,
        seeds: Sequence[int],
        shape: Sequence[int],
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        stream: int = 0,
    ):
        self.seeds = list(seeds)
        self.shape = tuple(shape)  # (C, H, W) of one image
        self.device = torch.device(device)
        self.dtype = dtype
        offset = stream * 0x9E3779B97F4A7C15  # golden-ratio spacing keeps streams apart
        self.generators = [
            torch.Generator(self.device).manual_seed((s + offset) % 2**63) for s in self.seeds
        ]

    def __len__(self) -> int:
        return len(self.seeds)

    def normal(
        self, mean: float = 0.0, std: float = 1.0, like: torch.Tensor | None = None
    ) -> torch.Tensor:
        """A fresh (B, *shape) draw of N(mean, std), or shaped like `like` (batch first)."""
        shape = (len(self.seeds), *self.shape) if like is None else tuple(like.shape)
        if shape[0] != len(self.seeds):
            raise ValueError(f"noise for a batch of {len(self.seeds)} asked for shape {shape}")
        out = torch.empty(shape, device=self.device, dtype=self.dtype)
        for row, generator in zip(out, self.generators):
            row.normal_(mean, std, generator=generator)
        return out
