"""Does a walk keep moving? Per-chain change between consecutive frames, measured on the fly.

The article reports "the proportion of inputs that walk": the share of starting images whose
noiseless walk has not come to rest. Here a chain's change at a step is the RMS per-pixel
difference between consecutive frames (pixels in [0, 1]); a chain is *moving at the end* when its
mean change over the last `window` steps (10% of the steps, at least 5) exceeds `tolerance`
(default 1e-3, a thousandth of the pixel range).
"""

from __future__ import annotations

from typing import Any

import torch

DEFAULT_TOLERANCE = 1e-3


class WalkStats:
    """Feed it every frame (`update`); no host synchronisation until `summary`."""

    def __init__(self, start: torch.Tensor, steps: int, tolerance: float = DEFAULT_TOLERANCE):
        self.previous = start.detach().float()
        self.window = min(steps, max(5, steps // 10))
        self.tolerance = tolerance
        count = start.shape[0]
        self.total = torch.zeros(count, device=start.device)
        self.recent = torch.zeros(self.window, count, device=start.device)
        self.steps = 0

    def update(self, frame: torch.Tensor) -> None:
        frame = frame.detach().float()
        change = (frame - self.previous).pow(2).flatten(1).mean(1).sqrt()
        self.total += change
        self.recent[self.steps % self.window] = change
        self.previous = frame
        self.steps += 1

    def summary(self, seeds: list[int]) -> dict[str, Any]:
        """Per-chain mean and final change, whether each still moves, and the moving share."""
        if self.steps == 0:
            raise ValueError("no frames were recorded")
        filled = min(self.steps, self.window)
        means = (self.total / self.steps).tolist()
        finals = (self.recent[:filled].mean(0)).tolist()
        chains = [
            {
                "index": i,
                "seed": seed,
                "mean_change": mean,
                "final_change": final,
                "moving": final > self.tolerance,
            }
            for i, (seed, mean, final) in enumerate(zip(seeds, means, finals))
        ]
        moving = sum(c["moving"] for c in chains)
        return {
            "criterion": f"mean RMS per-pixel change over the last {filled} steps > "
            f"{self.tolerance:g}",
            "tolerance": self.tolerance,
            "window": filled,
            "steps": self.steps,
            "chains": chains,
            "moving": moving,
            "total": len(chains),
            "share_moving": moving / len(chains),
        }
