"""Sampling runs that end in files: what `aegen generate` and `aegen walk` do, as functions.

Every output path is worked out and checked before the model is loaded, so a name clash or an
existing file is reported at once; frames stream to their writers while the sampler runs.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import load_checkpoint
from .console import Reporter
from .data import load_inputs
from .defaults import resolve_checkpoint
from .devices import pick_device
from .errors import UsageError
from .files import refuse_overwrite
from .interrupts import stop_between_steps
from .media import save_grid, save_images
from .recording import Recorder
from .sampling import DEFAULT_SAMPLER, generate

WALK_SAMPLER = "walk"


@dataclass
class Outputs:
    """Where a run writes: a final grid, single images, a video, a GIF, frame PNGs."""

    grid: str | None = None  # may hold {seed}
    out_dir: Path | None = None
    name: str = "{seed}.png"
    video: Path | None = None
    gif: Path | None = None
    frames: Path | None = None
    every: int | None = None
    fps: float = 24.0
    scale: int | None = None
    force: bool = False


def _expand(template: str, what: str, **fields: Any) -> str:
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
        names = ", ".join("{" + k + "}" for k in fields)
        raise UsageError(f"{what} {template!r} is not a valid template ({names}): {exc}") from None


@dataclass
class _Plan:
    grid: Path | None
    singles: list[Path]
    recorder: Recorder


def _plan(outputs: Outputs, seeds: list[int], steps: int, size: int) -> _Plan:
    for flag, value in (("--steps", steps), ("--n", len(seeds))):
        if value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    if not (0 < outputs.fps < 1000):
        raise UsageError(f"--fps must be between 0 and 1000, got {outputs.fps}")
    if outputs.every is not None and outputs.frames is None:
        raise UsageError("--every needs --frames DIR")
    if outputs.every is not None and outputs.every < 1:
        raise UsageError(f"--every must be at least 1, got {outputs.every}")
    if outputs.scale is not None and outputs.scale < 1:
        raise UsageError(f"--scale must be at least 1, got {outputs.scale}")
    for flag, path, suffix in (("--video", outputs.video, ".mp4"), ("--gif", outputs.gif, ".gif")):
        if path is not None and Path(path).suffix.lower() != suffix:
            raise UsageError(f"{flag} writes {suffix} files; got {path}")
    grid = Path(_expand(outputs.grid, "--out", seed=seeds[0])) if outputs.grid else None
    singles: list[Path] = []
    if outputs.out_dir is not None:
        singles = [
            Path(outputs.out_dir) / _expand(outputs.name, "--name", seed=s, index=i)
            for i, s in enumerate(seeds)
        ]
        if len(set(singles)) < len(singles):
            raise UsageError(
                f"--name {outputs.name!r} gives several images one file name; use {{seed}} or "
                "{index}"
            )
    recorder = Recorder(
        steps=steps,
        count=len(seeds),
        size=size,
        video=outputs.video,
        gif=outputs.gif,
        frames=outputs.frames,
        every=outputs.every or 1,
        fps=outputs.fps,
        scale=outputs.scale,
    )
    planned = [*([grid] if grid else []), *singles, *recorder.planned()]
    seen: set[Path] = set()
    for path in planned:
        if path in seen:
            raise UsageError(f"{path} would be written twice: give the outputs different names")
        seen.add(path)
    refuse_overwrite(planned, outputs.force)
    return _Plan(grid, singles, recorder)


def load_model(checkpoint: str | os.PathLike | None, device: str, reporter: Reporter):
    """Load a checkpoint (the default model when None) for a command, saying what and where."""
    checkpoint = resolve_checkpoint(checkpoint, reporter)
    dev = pick_device(device)
    loaded = load_checkpoint(checkpoint, dev)
    info = loaded.info
    reporter.info(
        f"loaded {checkpoint} ({info.architecture}, {info.channels}x{info.size}x"
        f"{info.size}) on {dev.type}"
    )
    return loaded, dev


def _read_info(checkpoint: str | os.PathLike | None):
    from .checkpoint import read_checkpoint_info

    return read_checkpoint_info(resolve_checkpoint(checkpoint))


def checkpoint_defaults(info, sampler: str) -> dict[str, Any]:
    """Sampler options the checkpoint's training objective fixed: each objective option whose
    name the sampler also declares (e.g. `denoise`'s mu, sigma and schedule for `schedule`), so
    sampling sees the inputs training saw. Options given explicitly win over these."""
    from .plugins import get_registry

    declared = get_registry().sampler(sampler).options
    trained = (info.objective or {}).get("options") or {}
    return {name: value for name, value in trained.items() if name in declared}


def _checked_options(
    sampler: str, options: dict[str, Any] | None, info=None, reporter: Reporter | None = None
) -> dict[str, Any]:
    """Validate sampler options before anything is loaded, so a typo costs no time; fill the
    ones not given from the checkpoint's objective."""
    from .options import resolve_options
    from .plugins import get_registry

    spec = get_registry().sampler(sampler)
    given = dict(options or {})
    inherited = {k: v for k, v in checkpoint_defaults(info, sampler).items() if k not in given}
    if inherited and reporter is not None:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(inherited.items()))
        reporter.info(f"sampler {sampler!r}: {shown} from the checkpoint's training objective")
    return resolve_options(spec.options, {**inherited, **given}, f"sampler {sampler!r}")


def _sample_and_record(plan: _Plan, reporter: Reporter, extra=None, **kwargs):
    """Run `generate`, feeding the recorder (and `extra`). Ctrl-C stops the run after the step
    in progress, so every file being written is closed whole."""
    recorder = plan.recorder
    try:
        # Outer: the SIGINT guard stays up while the recorder closes its files.
        with stop_between_steps() as checkpoint, recorder:

            def on_frame(step, frame):
                recorder(step, frame)
                if extra is not None:
                    extra(frame)
                checkpoint()

            return generate(on_frame=on_frame, reporter=reporter, **kwargs)
    except KeyboardInterrupt:
        kept = ", ".join(str(w.path) for w in recorder.writers if w.frames)
        reporter.warn(
            f"interrupted after {recorder.steps_recorded} step(s)"
            + (f"; {kept} keep(s) the frames so far" if kept else "")
        )
        raise


def _write_results(plan: _Plan, images) -> list[str]:
    written = [str(save_grid(images, plan.grid))] if plan.grid else []
    return written + [str(p) for p in save_images(images, plan.singles)]


def generate_files(
    checkpoint: str | os.PathLike | None,
    outputs: Outputs,
    *,
    sampler: str = DEFAULT_SAMPLER,
    options: dict[str, Any] | None = None,
    steps: int = 100,
    n: int = 16,
    batch_size: int | None = None,
    seed: int | None = None,
    device: str = "auto",
    running_stats: bool = False,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Sample `n` images from a checkpoint and write them; returns the JSON report."""
    reporter = reporter or Reporter(quiet=True)
    seed = random.randrange(2**31) if seed is None else seed
    if n < 1:
        raise UsageError(f"--n must be at least 1, got {n}")
    seeds = [seed + i for i in range(n)]
    if outputs.grid is None and outputs.out_dir is None:
        outputs.grid = "grid-{seed}.png"
    header = _read_info(checkpoint)
    plan = _plan(outputs, seeds, steps, header.size)
    options = _checked_options(sampler, options, header, reporter)
    loaded, dev = load_model(checkpoint, device, reporter)
    info = loaded.info
    reporter.info(
        f"sampling {n} image(s) with {sampler!r}, {steps} steps, seeds {seed}..{seeds[-1]}"
    )
    result = _sample_and_record(
        plan,
        reporter,
        model=loaded.model,
        sampler=sampler,
        shape=(info.channels, info.size, info.size),
        n=n,
        steps=steps,
        seed=seed,
        batch_size=batch_size,
        options=options,
        device=dev,
        running_stats=running_stats,
    )
    written = _write_results(plan, result.images)
    return {
        "checkpoint": str(loaded.info.path),
        "sampler": sampler,
        "options": result.options,
        "steps": steps,
        "n": n,
        "batch_size": batch_size or n,
        "seed": seed,
        "seeds": result.seeds,
        "device": dev.type,
        "grid": str(plan.grid) if plan.grid else None,
        "images": [
            {"index": i, "seed": s, "path": str(plan.singles[i]) if plan.singles else None}
            for i, s in enumerate(result.seeds)
        ],
        **plan.recorder.written(),
        "written": written,
    }


def walk_files(
    checkpoint: str | os.PathLike | None,
    outputs: Outputs,
    *,
    inputs: list[str | os.PathLike] | None = None,
    sampler: str = WALK_SAMPLER,
    options: dict[str, Any] | None = None,
    steps: int = 300,
    n: int = 16,
    batch_size: int | None = None,
    seed: int | None = None,
    start_steps: int = 100,
    stats: bool = False,
    tolerance: float = 1e-3,
    device: str = "auto",
    running_stats: bool = False,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Walk from images (given, or made by the schedule sampler) and record the walk."""
    from .walkstats import WalkStats

    reporter = reporter or Reporter(quiet=True)
    seed = random.randrange(2**31) if seed is None else seed
    if n < 1:
        raise UsageError(f"--n must be at least 1, got {n}")
    if start_steps < 1:
        raise UsageError(f"--start-steps must be at least 1, got {start_steps}")
    if not (0 <= tolerance < float("inf")):
        raise UsageError(f"--tolerance must be a finite number >= 0, got {tolerance}")
    header = _read_info(checkpoint)
    size = header.size
    _plan(outputs, [seed + i for i in range(n)], steps, size)  # fail fast on outputs
    options = _checked_options(sampler, options, header, reporter)
    loaded, dev = load_model(checkpoint, device, reporter)
    info = loaded.info
    shape = (info.channels, info.size, info.size)
    if inputs:
        start, start_paths = load_inputs(inputs, info.size, info.channels, reporter, limit=n)
        n = len(start)
        origin: dict[str, Any] = {"from": "input", "paths": start_paths}
        stream = 0
    else:
        reporter.info(
            f"making {n} starting image(s) with the schedule sampler, {start_steps} steps"
        )
        start = generate(
            loaded.model,
            DEFAULT_SAMPLER,
            shape=shape,
            n=n,
            steps=start_steps,
            seed=seed,
            batch_size=batch_size,
            options=_checked_options(DEFAULT_SAMPLER, {}, header, reporter),
            device=dev,
            running_stats=running_stats,
            reporter=reporter,
        ).images
        origin = {"from": "schedule", "steps": start_steps}
        stream = 1  # the walk's noise must not repeat the start's
    seeds = [seed + i for i in range(n)]
    plan = _plan(outputs, seeds, steps, size)
    tracker = WalkStats(start.to(dev), steps, tolerance) if stats else None
    reporter.info(f"walking {n} chain(s) with {sampler!r} for {steps} steps")
    result = _sample_and_record(
        plan,
        reporter,
        extra=tracker.update if tracker else None,
        model=loaded.model,
        sampler=sampler,
        shape=shape,
        n=n,
        steps=steps,
        seed=seed,
        batch_size=batch_size,
        options=options,
        start=start,
        device=dev,
        running_stats=running_stats,
        noise_stream=stream,
    )
    written = _write_results(plan, result.images)
    summary = tracker.summary(seeds) if tracker else None
    if summary is not None:
        reporter.info(
            f"{summary['moving']} of {summary['total']} chain(s) still moving "
            f"({summary['criterion']})"
        )
    return {
        "checkpoint": str(loaded.info.path),
        "sampler": sampler,
        "options": result.options,
        "steps": steps,
        "n": n,
        "seed": seed,
        "seeds": seeds,
        "device": dev.type,
        "start": origin,
        "grid": str(plan.grid) if plan.grid else None,
        **plan.recorder.written(),
        "stats": summary,
        "written": written,
    }
