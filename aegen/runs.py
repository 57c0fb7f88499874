"""Sampling runs that end in files: what `aegen generate` and `aegen walk` do, as functions.

Every output path is worked out and checked before the model is loaded, so a name clash or an
existing file is reported at once; frames stream to their writers while the sampler runs.

Under torchrun each rank samples its whole batches (sampling.shard_indices) and writes its own
single images; rank 0 gathers what needs every image (grid, video, GIF, frames, walk stats).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import distributed
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
from .sampling import DEFAULT_SAMPLER, batches, generate, shard_indices

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
    dev = pick_device(device) if isinstance(device, str) else device
    loaded = load_checkpoint(checkpoint, dev)
    info = loaded.info
    reporter.info(
        f"loaded {checkpoint} ({info.architecture}, {info.channels}x{info.size}x"
        f"{info.size}) on {dev.type}"
    )
    return loaded, dev


def fast_model(loaded, dev, precision: str, compile: bool, running_stats: bool,
               reporter: Reporter, exact: str | None = None,
               channels_last: bool | None = None, batch_size: int | None = None,
               agree: Any = None):
    """The loaded model on its fast path (`--precision`, `--compile`), saying which and why;
    `exact` is a reason this run needs fp32 (then `auto` takes it)."""
    from .precision import prepare

    info = loaded.info
    model, fast = prepare(
        loaded.model, dev, precision, compile, shape=(info.channels, info.size, info.size),
        running_stats=running_stats, exact=exact, channels_last=channels_last,
        batch_size=batch_size, agree=agree,
    )
    extras = [x for x, on in (("channels-last", fast.channels_last), ("compiled", fast.compile))
              if on]
    reporter.info(f"fast path: {', '.join([fast.precision, *extras])} ({fast.reason})")
    return model, fast


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


def _sample_and_record(
    plan: _Plan,
    reporter: Reporter,
    extra=None,
    ctx: distributed.Context = distributed.SINGLE,
    need_frames: bool = False,
    **kwargs,
):
    """Run `generate`, feeding the recorder (and `extra`). Ctrl-C stops the run after the step
    in progress, so every file being written is closed whole. Under torchrun this rank runs its
    own batches; when frames are recorded (or `need_frames`) each step's frame is gathered to
    rank 0, which alone records."""
    recorder = plan.recorder
    n, batch_size = kwargs["n"], kwargs.get("batch_size")
    mine = shard_indices(n, batch_size, ctx.rank, ctx.world)
    gather = ctx.active and (recorder.active or need_frames)
    try:
        # Outer: the SIGINT guard stays up while the recorder closes its files.
        with stop_between_steps() as checkpoint, recorder:

            def on_frame(step, frame):
                if gather:
                    frame = ctx.gather(frame, mine, n)
                if ctx.main:
                    recorder(step, frame)
                    if extra is not None:
                        extra(frame)
                checkpoint()

            return generate(
                on_frame=on_frame, reporter=reporter, shard=(ctx.rank, ctx.world), **kwargs
            )
    except KeyboardInterrupt:
        kept = ", ".join(str(w.path) for w in recorder.writers if w.frames)
        reporter.warn(
            f"interrupted after {recorder.steps_recorded} step(s)"
            + (f"; {kept} keep(s) the frames so far" if kept else "")
        )
        raise


def _write_results(
    plan: _Plan, images, ctx: distributed.Context = distributed.SINGLE, mine=None, n=None
) -> list[str]:
    """Write the grid (rank 0, from every rank's images) and this rank's single images; return
    every path written by the run, once all ranks are done."""
    n = len(images) if n is None else n
    mine = list(range(n)) if mine is None else mine
    if plan.grid:
        every = ctx.gather(images, mine, n)
        if ctx.main:
            save_grid(every, plan.grid)
    save_images(images, [plan.singles[i] for i in mine] if plan.singles else [])
    ctx.barrier()  # report only what is on disk, and fail here if another rank failed
    return ([str(plan.grid)] if plan.grid else []) + [str(p) for p in plan.singles]


def _warn_idle(ctx: distributed.Context, n: int, batch_size: int | None, reporter) -> None:
    count = len(batches(n, batch_size or n))
    if ctx.active and count < ctx.world:
        reporter.warn(
            f"{n} image(s) make {count} batch(es) for {ctx.world} processes, so "
            f"{ctx.world - count} have nothing to do; give a smaller --batch-size"
        )


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
    precision: str = "auto",
    compile: bool = False,
    channels_last: bool | None = None,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Sample `n` images from a checkpoint and write them; returns the JSON report.

    `precision` and `compile` choose the fast path (aegen/precision.py): `auto` takes bf16
    where the device computes it natively and this model stays within tolerance of fp32;
    `channels_last` True/False overrides the memory format it picks.

    Under torchrun the batches are shared out between the processes (docs/scaling.md); the
    files are those one process writes with the same settings."""
    where = pick_device(device) if distributed.launched() else device
    with distributed.session(where) as ctx:
        return _generate_files(
            ctx,
            checkpoint,
            outputs,
            sampler=sampler,
            options=options,
            steps=steps,
            n=n,
            batch_size=batch_size,
            seed=seed,
            device=distributed.device_for(where, ctx),
            running_stats=running_stats,
            precision=precision,
            compile=compile,
            channels_last=channels_last,
            reporter=ctx.reporter(reporter or Reporter(quiet=True)),
        )


def _generate_files(
    ctx: distributed.Context,
    checkpoint,
    outputs: Outputs,
    *,
    sampler: str,
    options,
    steps: int,
    n: int,
    batch_size: int | None,
    seed: int | None,
    device,
    running_stats: bool,
    precision: str,
    compile: bool,
    channels_last: bool | None,
    reporter: Reporter,
) -> dict[str, Any]:
    seed = ctx.agree(random.randrange(2**31)) if seed is None else seed
    if n < 1:
        raise UsageError(f"--n must be at least 1, got {n}")
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    seeds = [seed + i for i in range(n)]
    if outputs.grid is None and outputs.out_dir is None:
        outputs.grid = "grid-{seed}.png"
    header = _read_info(checkpoint)
    plan = _plan(outputs, seeds, steps, header.size)
    options = _checked_options(sampler, options, header, reporter)
    ctx.barrier()  # every rank has checked the outputs before any writes one
    loaded, dev = load_model(checkpoint, device, reporter)
    model, fast = fast_model(
        loaded, dev, precision, compile, running_stats, reporter, channels_last=channels_last,
        batch_size=min(batch_size or n, n), agree=ctx.agree,  # the batch the model sees
    )
    info = loaded.info
    reporter.info(
        f"sampling {n} image(s) with {sampler!r}, {steps} steps, seeds {seed}..{seeds[-1]}"
        + (f", {ctx.world} processes" if ctx.active else "")
    )
    _warn_idle(ctx, n, batch_size, reporter)
    result = _sample_and_record(
        plan,
        reporter,
        ctx=ctx,
        model=model,
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
    mine = shard_indices(n, batch_size, ctx.rank, ctx.world)
    written = _write_results(plan, result.images, ctx, mine, n)
    return {
        "checkpoint": str(loaded.info.path),
        "sampler": sampler,
        "options": result.options,
        "steps": steps,
        "n": n,
        "batch_size": batch_size or n,
        "seed": seed,
        "seeds": seeds,
        "device": dev.type,
        "fast_path": fast.as_json(),
        "grid": str(plan.grid) if plan.grid else None,
        "images": [
            {"index": i, "seed": s, "path": str(plan.singles[i]) if plan.singles else None}
            for i, s in enumerate(seeds)
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
    precision: str = "auto",
    compile: bool = False,
    channels_last: bool | None = None,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Walk from images (given, or made by the schedule sampler) and record the walk.

    `precision` and `compile` choose the fast path, as for `generate_files`.

    Under torchrun the chains are shared out by batch, as in `generate_files`."""
    where = pick_device(device) if distributed.launched() else device
    with distributed.session(where) as ctx:
        return _walk_files(
            ctx,
            checkpoint,
            outputs,
            inputs=inputs,
            sampler=sampler,
            options=options,
            steps=steps,
            n=n,
            batch_size=batch_size,
            seed=seed,
            start_steps=start_steps,
            stats=stats,
            tolerance=tolerance,
            device=distributed.device_for(where, ctx),
            running_stats=running_stats,
            precision=precision,
            compile=compile,
            channels_last=channels_last,
            reporter=ctx.reporter(reporter or Reporter(quiet=True)),
        )


def _walk_files(
    ctx: distributed.Context,
    checkpoint,
    outputs: Outputs,
    *,
    inputs,
    sampler: str,
    options,
    steps: int,
    n: int,
    batch_size: int | None,
    seed: int | None,
    start_steps: int,
    stats: bool,
    tolerance: float,
    device,
    running_stats: bool,
    precision: str,
    compile: bool,
    channels_last: bool | None,
    reporter: Reporter,
) -> dict[str, Any]:
    from .walkstats import WalkStats

    seed = ctx.agree(random.randrange(2**31)) if seed is None else seed
    if n < 1:
        raise UsageError(f"--n must be at least 1, got {n}")
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if start_steps < 1:
        raise UsageError(f"--start-steps must be at least 1, got {start_steps}")
    if not (0 <= tolerance < float("inf")):
        raise UsageError(f"--tolerance must be a finite number >= 0, got {tolerance}")
    header = _read_info(checkpoint)
    size = header.size
    _plan(outputs, [seed + i for i in range(n)], steps, size)  # fail fast on outputs
    options = _checked_options(sampler, options, header, reporter)
    ctx.barrier()  # every rank has checked the outputs before any writes one
    loaded, dev = load_model(checkpoint, device, reporter)
    # --stats tells still chains from moving ones by changes of `tolerance` per step: bf16's
    # rounding alone moves a settled chain by about 1e-3 a step (docs/performance.md).
    exact = f"--stats measures per-step changes down to {tolerance:g}" if stats else None
    model, fast = fast_model(
        loaded, dev, precision, compile, running_stats, reporter, exact, channels_last,
        min(batch_size or n, n), agree=ctx.agree,
    )
    if stats and fast.precision != "fp32":
        reporter.warn(
            f"--stats under {fast.precision}: its rounding moves even a settled chain by about "
            "1e-3 a step, so chains may count as moving; --precision fp32 measures exactly"
        )
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
            model,
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
            shard=(ctx.rank, ctx.world),
        ).images
        # Every rank needs every start: the walk indexes it by batch.
        start = ctx.gather(start, shard_indices(n, batch_size, ctx.rank, ctx.world), n, True)
        origin = {"from": "schedule", "steps": start_steps}
        stream = 1  # the walk's noise must not repeat the start's
    seeds = [seed + i for i in range(n)]
    plan = _plan(outputs, seeds, steps, size)
    tracker = WalkStats(start.to(dev), steps, tolerance) if stats and ctx.main else None
    reporter.info(
        f"walking {n} chain(s) with {sampler!r} for {steps} steps, seeds {seed}..{seeds[-1]}"
    )
    _warn_idle(ctx, n, batch_size, reporter)
    result = _sample_and_record(
        plan,
        reporter,
        extra=tracker.update if tracker else None,
        ctx=ctx,
        need_frames=stats,
        model=model,
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
    mine = shard_indices(n, batch_size, ctx.rank, ctx.world)
    written = _write_results(plan, result.images, ctx, mine, n)
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
        "fast_path": fast.as_json(),
        "start": origin,
        "grid": str(plan.grid) if plan.grid else None,
        **plan.recorder.written(),
        "stats": summary,
        "written": written,
    }
