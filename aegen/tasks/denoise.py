"""`aegen denoise` as a function: how much the model denoises each input under each corruption."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..console import Reporter
from ..data import load_inputs
from ..denoising import Corruption, Measurement, measure_denoising
from ..errors import UsageError
from ..files import refuse_overwrite
from ..loading import load_model
from ..media import save_grid
from ..precision import FastPath
from ..settings import Runtime, with_fields
from .result import Result

DEFAULT_CORRUPTIONS = tuple(Corruption("gaussian", alpha=a) for a in (0.1, 0.3, 0.5, 0.9))


@dataclass(frozen=True)
class DenoiseSettings:
    """What `denoise_files` measures: each of `corruptions` on at most `limit` inputs (image i
    draws its noise from seed + i), `batch_size` images a pass, batch norm on `running_stats`
    or the batch's; `show` images a row in the grid."""

    corruptions: Sequence[Corruption] = DEFAULT_CORRUPTIONS
    limit: int | None = None
    show: int = 8
    seed: int = 0
    batch_size: int = 16
    running_stats: bool = False

    def check(self) -> None:
        for corruption in self.corruptions:
            corruption.check()
        if self.batch_size < 1 or self.show < 1 or (self.limit is not None and self.limit < 1):
            raise UsageError("`batch_size`, `show` and `limit` must be at least 1",
                             parameters=["batch_size", "show", "limit"])


@dataclass(frozen=True)
class DenoiseResult(Result):
    """What `denoise_files` measured; `as_json()` is `aegen denoise --json`."""

    checkpoint: str
    images: int
    seed: int
    fast_path: FastPath
    settings: list[dict[str, Any]]  # per corruption: its summary and "per_image" figures
    grid: str | None


def denoise_files(
    checkpoint: str | os.PathLike | None,
    inputs: Sequence[str | os.PathLike],
    settings: DenoiseSettings | None = None,
    *,
    out: str | os.PathLike | None = None,
    force: bool = False,
    runtime: Runtime | None = None,
    reporter: Reporter | None = None,
    **fields: Any,
) -> DenoiseResult:
    """Measure how much the model denoises each input under each corruption, on the fast path
    `runtime` chooses (as for `generate_files`); with `out`, draw the rows a, then a_hat and
    O(a_hat) per corruption. Keyword fields of the settings or the runtime are shorthand."""
    settings, runtime = with_fields(settings, DenoiseSettings, runtime, fields, "denoise_files")
    settings.check()
    runtime.check()
    reporter = reporter or Reporter(quiet=True)
    if out is not None:
        refuse_overwrite([out], force)
    loaded = load_model(
        checkpoint, runtime, reporter, running_stats=settings.running_stats,
        batch_size=settings.batch_size,
    )
    info = loaded.info
    images, paths = load_inputs(inputs, info.size, info.channels, reporter, limit=settings.limit)
    reporter.info(
        f"denoising {len(images)} image(s) under {len(settings.corruptions)} setting(s)"
    )
    results = measure_denoising(
        loaded.model, images, settings.corruptions, seed=settings.seed,
        batch_size=settings.batch_size, device=loaded.device, running_stats=settings.running_stats,
    )
    if out is not None:
        _draw(images, results, settings.show, out)
    return DenoiseResult(
        checkpoint=str(info.path),
        images=len(images),
        seed=settings.seed,
        fast_path=loaded.fast,
        settings=[_report(result, paths) for result in results],
        grid=str(out) if out else None,
    )


def _draw(images: torch.Tensor, results: list[Measurement], show: int,
          out: str | os.PathLike) -> None:
    k = min(show, len(images))
    rows = [images[:k]] + [t[:k] for r in results for t in (r.corrupted, r.outputs)]
    save_grid(torch.cat(rows), out, columns=k)


def _report(result: Measurement, paths: list[str]) -> dict[str, Any]:
    """One corruption's summary with its figures for every image."""
    summary = result.summary()
    summary["per_image"] = [
        {
            "path": p,
            "input_distance": i,
            "output_distance": o,
            "ratio": r,
            "psnr_input": pi,
            "psnr_output": po,
            "closer": c,
        }
        for p, i, o, r, pi, po, c in zip(
            paths,
            result.input_distance,
            result.output_distance,
            result.ratios,
            result.psnr_input,
            result.psnr_output,
            result.closer,
        )
    ]
    return summary
