"""`aegen walk` as a function: walk from starting images (given, or made by the schedule
sampler) along the learned manifold, and record the walk."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .. import builtin_names, distributed
from ..bounds import check_images_fit
from ..checkpoint import CheckpointInfo, read_checkpoint_info
from ..console import Reporter
from ..data import load_inputs
from ..defaults import resolve_checkpoint
from ..errors import UsageError
from ..handoff import sampler_for_run
from ..loading import LoadedModel, load_model
from ..outputs import Outputs, Plan, plan
from ..precision import FastPath
from ..sampling import Generation, with_sampler_steps
from ..settings import Runtime, SamplingSettings
from ..walkstats import DEFAULT_TOLERANCE, WalkStats
from .result import Result
from .sampling_run import (
    draw_seed,
    my_images,
    run_sampler,
    sample_and_record,
    warn_idle,
    write_final,
)


@dataclass(frozen=True)
class WalkSettings(SamplingSettings):
    """What a walk does: `steps` steps of `sampler` (None: the sampler's own count, else 300)
    from `inputs` (image files or folders, at most `n` of them) or, without inputs, from `n`
    images made by the schedule sampler in `start_steps` steps; with `stats`, whether each
    chain still moves by more than `tolerance` (RMS per-pixel change per step) at the end."""

    sampler: str = builtin_names.WALK_SAMPLER
    command_steps: ClassVar[int] = 300  # the steps of a sampler that declares none
    inputs: Sequence[str | os.PathLike] = ()
    start_steps: int = 100
    stats: bool = False
    tolerance: float = DEFAULT_TOLERANCE

    def check(self) -> None:
        super().check()
        if self.start_steps < 1:
            raise UsageError(f"`start_steps` must be at least 1, got {self.start_steps}",
                             parameters=["start_steps"])
        if not (0 <= self.tolerance < float("inf")):
            raise UsageError(f"`tolerance` must be a finite number >= 0, got {self.tolerance}",
                             parameters=["tolerance"])


@dataclass(frozen=True)
class WalkResult(Result):
    """What `walk_files` did; `as_json()` is `aegen walk --json`."""

    checkpoint: str
    sampler: str
    options: dict[str, Any]
    steps: int
    n: int
    seed: int
    seeds: list[int]
    device: str
    fast_path: FastPath
    # Where the chains began: {"from": "input", "paths": [...]} or, made by the built-in
    # sampler, {"from": "schedule", "steps": start_steps}.
    start: dict[str, Any]
    grid: str | None
    video: str | None
    gif: str | None
    frames: list[str]
    frames_recorded: int
    stats: dict[str, Any] | None
    written: list[str]

    @property
    def media(self) -> list[str]:
        """The video, the GIF and the frame files written, in that order."""
        return [p for p in (self.video, self.gif) if p] + self.frames


@distributed.task(WalkSettings)
def walk_files(
    checkpoint: str | os.PathLike | None,
    outputs: Outputs,
    settings: WalkSettings | None = None,
    *,
    runtime: Runtime | None = None,
    reporter: Reporter | None = None,
    **fields: Any,
) -> WalkResult:
    """Walk from starting images and record the walk as `outputs` asks.

    `runtime` chooses the device and the fast path, as for `generate_files`; `stats` keeps
    `auto` to fp32 (bf16's rounding alone moves a settled chain). Under torchrun the chains
    are shared out by batch, as in `generate_files`."""
    settings = with_sampler_steps(dataclasses.replace(settings, seed=draw_seed(settings.seed)))
    header = read_checkpoint_info(resolve_checkpoint(checkpoint))
    check_images_fit(settings.n, header.channels, header.size)  # before n seeds are listed
    seeds = [settings.seed + i for i in range(settings.n)]
    plan(outputs, seeds, settings.steps, header.size)  # fail fast on outputs
    sampler = sampler_for_run(settings.sampler, settings.options, header, reporter)
    distributed.current().barrier()  # every rank has checked the outputs before any writes
    loaded = _load(checkpoint, runtime, settings, reporter)
    start, origin, stream = _starting_images(loaded, settings, header, reporter)
    settings = dataclasses.replace(settings, n=len(start))
    seeds = [settings.seed + i for i in range(settings.n)]
    files = plan(outputs, seeds, settings.steps, header.size)
    main = distributed.current().main
    tracker = WalkStats(start.to(loaded.device), settings.steps, settings.tolerance) \
        if settings.stats and main else None
    reporter.info(
        f"walking {settings.n} chain(s) with {settings.sampler!r} for {settings.steps} steps, "
        f"seeds {settings.seed}..{seeds[-1]}"
    )
    warn_idle(settings, reporter)
    generation = sample_and_record(
        files, loaded, sampler, settings, reporter, start=start, noise_stream=stream,
        extra=tracker.update if tracker else None, need_frames=settings.stats,
    )
    written = write_final(files, generation, settings)
    summary = tracker.summary(seeds) if tracker else None
    if summary is not None:
        reporter.info(
            f"{summary['moving']} of {summary['total']} chain(s) still moving "
            f"({summary['criterion']})"
        )
    return _result(loaded, files, generation, settings, origin, summary, written)


def _load(checkpoint: str | os.PathLike | None, runtime: Runtime, settings: WalkSettings,
          reporter: Reporter) -> LoadedModel:
    """The model on its fast path; fp32 under `auto` when `stats` measures, with a warning
    when a reduced precision was asked for anyway."""
    # stats tells still chains from moving ones by changes of `tolerance` per step: bf16's
    # rounding alone moves a settled chain by about 1e-3 a step (docs/performance.md).
    exact = (f"--stats measures per-step changes down to {settings.tolerance:g}"
             if settings.stats else None)
    loaded = load_model(
        checkpoint, runtime, reporter, running_stats=settings.running_stats, exact=exact,
        batch_size=settings.forward_batch,
    )
    if settings.stats and loaded.fast.precision != "fp32":
        reporter.warn(
            f"`stats` under {loaded.fast.precision}: its rounding moves even a settled chain by "
            "about 1e-3 a step, so chains may count as moving; `precision` fp32 measures exactly"
        )
    return loaded


def _starting_images(
    loaded: LoadedModel, settings: WalkSettings, header: CheckpointInfo, reporter: Reporter
) -> tuple[torch.Tensor, dict[str, Any], int]:
    """The chains' first images (every process gets all of them: the walk indexes them by
    batch), where they came from, and the noise stream the walk then uses."""
    info = loaded.info
    if settings.inputs:
        start, paths = load_inputs(
            settings.inputs, info.size, info.channels, reporter, limit=settings.n
        )
        return start, {"from": "input", "paths": paths}, 0
    reporter.info(
        f"making {settings.n} starting image(s) with the {builtin_names.SAMPLER} sampler, "
        f"{settings.start_steps} steps"
    )
    sampler = sampler_for_run(builtin_names.SAMPLER, {}, header, reporter)
    start = run_sampler(loaded, sampler, settings, reporter, steps=settings.start_steps).images
    start = distributed.current().gather(start, my_images(settings), settings.n, True)
    # The walk's noise must not repeat the start's: stream 1.
    return start, {"from": builtin_names.SAMPLER, "steps": settings.start_steps}, 1


def _result(loaded: LoadedModel, files: Plan, generation: Generation, settings: WalkSettings,
            origin: dict[str, Any], summary: dict[str, Any] | None,
            written: list[str]) -> WalkResult:
    return WalkResult(
        checkpoint=str(loaded.info.path),
        sampler=settings.sampler,
        options=generation.options,
        steps=settings.steps,
        n=settings.n,
        seed=settings.seed,
        seeds=[settings.seed + i for i in range(settings.n)],
        device=loaded.device.type,
        fast_path=loaded.fast,
        start=origin,
        grid=str(files.grid) if files.grid else None,
        **files.recorder.written(),
        stats=summary,
        written=written,
    )
