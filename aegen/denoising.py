"""The article's denoising measurement: is O(a_hat) closer to a than the corrupted a_hat was?

Corruptions: `gaussian` a_hat = alpha * a + (1 - alpha) * N(mu, sigma) (the article's);
`blur` a Gaussian blur (kernel 19, sigma 8 in the article); `additive` a + N(0, sigma) clamped to
[0, 1], the denoising literature's. Distances are L2 norms over all pixels of an image; PSNRs use
the peak 1 (pixels in [0, 1]). The model output is not clamped, as in the article.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import UsageError
from .models import check_batch_statistics, sampling_mode
from .noise import Noise

NOISES = ("gaussian", "blur", "additive")


@dataclass(frozen=True)
class Corruption:
    """One corruption setting."""

    kind: str
    alpha: float = 0.5
    mu: float = 0.7
    sigma: float = 0.2
    kernel: int = 19
    blur_sigma: float = 8.0

    @property
    def name(self) -> str:
        if self.kind == "gaussian":
            return f"gaussian alpha={self.alpha:g}"
        if self.kind == "blur":
            return f"blur kernel={self.kernel} sigma={self.blur_sigma:g}"
        return f"additive sigma={self.sigma:g}"

    def check(self) -> None:
        if self.kind not in NOISES:
            raise UsageError(f"`kind` must be one of {', '.join(NOISES)}, not {self.kind!r}",
                             parameters=["kind"])
        if self.kind == "gaussian" and not 0 <= self.alpha <= 1:
            raise UsageError(f"`alpha` values must lie in [0, 1], got {self.alpha:g}",
                             parameters=["alpha"])
        if self.kind == "blur" and (self.kernel < 1 or self.kernel % 2 == 0):
            raise UsageError(f"`kernel` must be a positive odd number, got {self.kernel}",
                             parameters=["kernel"])
        if self.kind == "blur" and self.blur_sigma <= 0:
            raise UsageError(f"`blur_sigma` must be positive, got {self.blur_sigma:g}",
                             parameters=["blur_sigma"])
        if self.sigma < 0:
            raise UsageError(f"`sigma` must not be negative, got {self.sigma:g}",
                             parameters=["sigma"])

    def apply(self, a: torch.Tensor, noise: Noise) -> torch.Tensor:
        """The corrupted batch a_hat."""
        if self.kind == "gaussian":
            return self.alpha * a + (1 - self.alpha) * noise.normal(self.mu, self.sigma, like=a)
        if self.kind == "blur":
            from torchvision.transforms.functional import gaussian_blur

            return gaussian_blur(a, [self.kernel, self.kernel], [self.blur_sigma, self.blur_sigma])
        return (a + noise.normal(0.0, self.sigma, like=a)).clamp(0, 1)

    def as_json(self) -> dict[str, Any]:
        fields = {
            "gaussian": ("alpha", "mu", "sigma"),
            "blur": ("kernel", "blur_sigma"),
            "additive": ("sigma",),
        }[self.kind]
        return {"name": self.name, "noise": self.kind, **{k: getattr(self, k) for k in fields}}


def psnr(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB with peak 1; infinite for identical images."""
    mse = (x - reference).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse)


def distance(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image L2 norm of the difference, over all pixels."""
    return (x - reference).flatten(1).norm(dim=1)


@dataclass
class Measurement:
    """One setting's per-image figures (a, a_hat and outputs kept for the grid)."""

    corruption: Corruption
    input_distance: list[float]
    output_distance: list[float]
    psnr_input: list[float]
    psnr_output: list[float]
    corrupted: torch.Tensor = field(repr=False)
    outputs: torch.Tensor = field(repr=False)

    @property
    def ratios(self) -> list[float]:
        return [
            o / i if i > 0 else math.inf for i, o in zip(self.input_distance, self.output_distance)
        ]

    @property
    def closer(self) -> list[bool]:
        return [o < i for i, o in zip(self.input_distance, self.output_distance)]

    def summary(self) -> dict[str, Any]:
        def mean(values):
            finite = [v for v in values if math.isfinite(v)]
            return sum(finite) / len(finite) if finite else None

        return {
            **self.corruption.as_json(),
            "images": len(self.input_distance),
            "mean_input_distance": mean(self.input_distance),
            "mean_output_distance": mean(self.output_distance),
            "mean_ratio": mean(self.ratios),
            "mean_psnr_input": mean(self.psnr_input),
            "mean_psnr_output": mean(self.psnr_output),
            "share_closer": sum(self.closer) / len(self.closer),
        }


def measure_denoising(
    model: torch.nn.Module,
    images: torch.Tensor,
    corruptions: Sequence[Corruption],
    *,
    seed: int = 0,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    running_stats: bool = False,
) -> list[Measurement]:
    """Corrupt every image with every setting, run the model, and measure. Image i draws its
    noise from seed + i (the same noise for every alpha, so settings compare like for like)."""
    for corruption in corruptions:
        corruption.check()
    if not running_stats:
        last = len(images) % batch_size or batch_size
        check_batch_statistics(model, min(batch_size, len(images), last), ["batch_size"])
    device = torch.device(device)
    results = []
    for corruption in corruptions:
        figures: dict[str, list] = {k: [] for k in ("din", "dout", "pin", "pout", "hat", "out")}
        for start in range(0, len(images), batch_size):
            a = images[start : start + batch_size].to(device)
            seeds = [seed + i for i in range(start, start + len(a))]
            noise = Noise(seeds, a.shape[1:], device)
            with torch.inference_mode(), sampling_mode(model, running_stats):
                a_hat = corruption.apply(a, noise)
                out = model(a_hat)
            figures["din"] += distance(a_hat, a).tolist()
            figures["dout"] += distance(out, a).tolist()
            figures["pin"] += psnr(a_hat, a).tolist()
            figures["pout"] += psnr(out, a).tolist()
            figures["hat"].append(a_hat.cpu())
            figures["out"].append(out.cpu())
        results.append(
            Measurement(
                corruption,
                figures["din"],
                figures["dout"],
                figures["pin"],
                figures["pout"],
                torch.cat(figures["hat"]),
                torch.cat(figures["out"]),
            )
        )
    return results
