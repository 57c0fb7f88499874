"""`aegen generate` as a function: sample images from a checkpoint and write them."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from .. import distributed
from ..bounds import check_images_fit
from ..checkpoint import read_checkpoint_info
from ..console import Reporter
from ..defaults import resolve_checkpoint
from ..handoff import sampler_for_run
from ..loading import LoadedModel, load_model
from ..outputs import Outputs, Plan, plan
from ..precision import FastPath
from ..sampling import Generation, with_sampler_steps
from ..settings import Runtime, SamplingSettings
from .result import Result
from .sampling_run import draw_seed, sample_and_record, warn_idle, write_final

DEFAULT_GRID = "grid-{seed}.png"


@dataclass(frozen=True)
class SavedImage:
    """One sampled image: its index in the run, its seed, and its file (with `out_dir`)."""

    index: int
    seed: int
    path: str | None


@dataclass(frozen=True)
class GenerateResult(Result):
    """What `generate_files` did; `as_json()` is `aegen generate --json`."""

    checkpoint: str
    sampler: str
    options: dict[str, Any]
    steps: int
    n: int
    batch_size: int
    seed: int
    seeds: list[int]
    device: str
    fast_path: FastPath
    grid: str | None
    images: list[SavedImage]
    video: str | None
    gif: str | None
    frames: list[str]
    frames_recorded: int
    written: list[str]

    @property
    def media(self) -> list[str]:
        """The video, the GIF and the frame files written, in that order."""
        return [p for p in (self.video, self.gif) if p] + self.frames


@distributed.task(SamplingSettings)
def generate_files(
    checkpoint: str | os.PathLike | None,
    outputs: Outputs,
    settings: SamplingSettings | None = None,
    *,
    runtime: Runtime | None = None,
    reporter: Reporter | None = None,
    **fields: Any,
) -> GenerateResult:
    """Sample `settings.n` images from a checkpoint (the default model when None) and write
    them as `outputs` asks (a grid `grid-{seed}.png` when it asks for nothing).

    `runtime` chooses the device and the fast path (aegen/precision.py): precision `auto`
    runs what measured fastest here. Keyword fields of either are accepted as shorthand:
    `generate_files(ckpt, Outputs(grid="g.png"), n=4, seed=0, device="cpu")`.

    Under torchrun the batches are shared out between the processes (docs/scaling.md); the
    files are those one process writes with the same settings."""
    settings = with_sampler_steps(dataclasses.replace(settings, seed=draw_seed(settings.seed)))
    if outputs.grid is None and outputs.out_dir is None:
        outputs = dataclasses.replace(outputs, grid=DEFAULT_GRID)
    header = read_checkpoint_info(resolve_checkpoint(checkpoint))
    check_images_fit(settings.n, header.channels, header.size)  # before n seeds are listed
    seeds = [settings.seed + i for i in range(settings.n)]
    files = plan(outputs, seeds, settings.steps, header.size)
    sampler = sampler_for_run(settings.sampler, settings.options, header, reporter)
    distributed.current().barrier()  # every rank has checked the outputs before any writes
    loaded = load_model(
        checkpoint, runtime, reporter, running_stats=settings.running_stats,
        batch_size=settings.forward_batch,  # the batch the model sees
    )
    _say_what(settings, reporter)
    warn_idle(settings, reporter)
    generation = sample_and_record(files, loaded, sampler, settings, reporter)
    written = write_final(files, generation, settings)
    return _result(loaded, files, generation, settings, written)


def _say_what(settings: SamplingSettings, reporter: Reporter) -> None:
    ctx = distributed.current()
    last = settings.seed + settings.n - 1
    reporter.info(
        f"sampling {settings.n} image(s) with {settings.sampler!r}, {settings.steps} steps, "
        f"seeds {settings.seed}..{last}" + (f", {ctx.world} processes" if ctx.active else "")
    )


def _result(loaded: LoadedModel, files: Plan, generation: Generation,
            settings: SamplingSettings, written: list[str]) -> GenerateResult:
    seeds = [settings.seed + i for i in range(settings.n)]
    singles = [str(p) for p in files.singles]
    return GenerateResult(
        checkpoint=str(loaded.info.path),
        sampler=settings.sampler,
        options=generation.options,
        steps=settings.steps,
        n=settings.n,
        batch_size=settings.batch_size or settings.n,
        seed=settings.seed,
        seeds=seeds,
        device=loaded.device.type,
        fast_path=loaded.fast,
        grid=str(files.grid) if files.grid else None,
        images=[SavedImage(i, s, singles[i] if singles else None) for i, s in enumerate(seeds)],
        **files.recorder.written(),
        written=written,
    )
