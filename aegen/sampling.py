"""The sampling runner: everything around a sampler (seeds, device, batching, progress).

A sampler is a plain generator function registered by a plugin; the runner drives one per
sub-batch in lockstep, so each yielded frame holds every image at that step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from . import builtin_names
from .console import Reporter
from .errors import AegenError, PluginError, UsageError
from .models import check_batch_statistics, sampling_mode
from .noise import Noise
from .options import resolve_options
from .plugins import Component, get_registry
from .settings import SamplingSettings

DEFAULT_SAMPLER = builtin_names.SAMPLER
DEFAULT_STEPS = SamplingSettings.command_steps  # a sampler that registers none: the article's


@dataclass(frozen=True)
class CheckedSampler:
    """A registered sampler with its options checked and their defaults filled: what a run
    hands the runner, so the options are resolved once however many layers pass them on."""

    name: str
    spec: Component  # the registered sampler
    options: dict[str, Any]


def check_sampler(sampler: str, options: Mapping[str, Any] | None = None) -> CheckedSampler:
    """Look `sampler` up and validate `options` against what it declares (a typo is a
    ConfigError naming the option)."""
    spec = get_registry().sampler(sampler)
    values = resolve_options(spec.options, options or {}, f"sampler {sampler!r}")
    return CheckedSampler(sampler, spec, values)


def sampler_steps(sampler: str) -> int | None:
    """The step count `sampler` registered as its own (`steps=`, API 1.1), or None."""
    return get_registry().sampler(sampler).steps


def with_sampler_steps(settings: SamplingSettings) -> SamplingSettings:
    """`settings` with its step count decided: as given, else the sampler's own, else the
    command's (`command_steps`). Done first, so every file, message and JSON names it."""
    if settings.steps is not None:
        return settings
    steps = sampler_steps(settings.sampler) or settings.command_steps
    return dataclasses.replace(settings, steps=steps)


def _checked(sampler: str | CheckedSampler, options: Mapping[str, Any] | None) -> CheckedSampler:
    if isinstance(sampler, CheckedSampler):
        if options:
            raise TypeError("options go into check_sampler, not beside a CheckedSampler")
        return sampler
    return check_sampler(sampler, options)


@dataclass
class Generation:
    """The final images (on the CPU, unclamped) and the seed each one used."""

    images: torch.Tensor
    seeds: list[int]
    sampler: str
    options: dict[str, Any]
    steps: int


def _check_counts(n: int, steps: int, batch_size: int) -> None:
    for name, value in (("n", n), ("steps", steps), ("batch_size", batch_size)):
        if value < 1:
            raise UsageError(f"`{name}` must be at least 1, got {value}", parameters=[name])


def batches(n: int, batch_size: int) -> list[slice]:
    """The batches `n` images are sampled in: whole batches of `batch_size`, the last smaller."""
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def shard_indices(n: int, batch_size: int | None, rank: int = 0, world: int = 1) -> list[int]:
    """The images a rank samples under torchrun: whole batches rank, rank + world, ... (batch
    norm mixes a batch, so only whole batches give the one-process images)."""
    chunks = batches(n, batch_size or n)[rank::world]
    return [i for chunk in chunks for i in range(chunk.start, chunk.stop)]


@dataclass(frozen=True)
class Draw:
    """What a sampling run draws: `n` images of `shape` (C, H, W) in `steps` steps (None: the
    sampler's own step count, else DEFAULT_STEPS), image i from seed + i, in batches of
    `batch_size` (None: all at once), from `start` images (walks) or none, on `device`, batch
    norm on `running_stats` or the batch's own statistics.
    `noise_stream` picks an independent noise stream of the same seeds (a walk's noise must
    not repeat its starting images'); `shard=(rank, world)` runs only that rank's batches."""

    shape: Sequence[int]
    n: int = 16
    steps: int | None = None
    seed: int = 0
    batch_size: int | None = None
    start: torch.Tensor | None = None
    device: torch.device | str = "cpu"
    running_stats: bool = False
    noise_stream: int = 0
    shard: tuple[int, int] = (0, 1)


def _draw(draw: Draw | None, fields: Mapping[str, Any], caller: str) -> Draw:
    """`draw` (or a new one) with keyword fields applied: `sample(model, shape=..., n=4)`."""
    known = {f.name for f in dataclasses.fields(Draw)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}")
    return dataclasses.replace(draw, **fields) if draw is not None else Draw(**fields)


def _steps_decided(draw: Draw, checked: CheckedSampler) -> Draw:
    """`draw` with its steps as given, else the sampler's own, else DEFAULT_STEPS."""
    if draw.steps is not None:
        return draw
    return dataclasses.replace(draw, steps=checked.spec.steps or DEFAULT_STEPS)


def sample(
    model: torch.nn.Module,
    sampler: str | CheckedSampler = DEFAULT_SAMPLER,
    *,
    options: Mapping[str, Any] | None = None,
    draw: Draw | None = None,
    **fields: Any,
) -> Iterator[torch.Tensor]:
    """Yield one (n, C, H, W) frame per step; image i uses seed + i; the last frame is the result.

    What is drawn is a `Draw`, or its fields as keywords (`shape=`, `n=`, `steps=`, `seed=`,
    ...). Batch norm uses batch statistics (the original article's way) unless
    `running_stats`, and the model's stored statistics are never changed. With `shard` the
    frames hold that rank's images, each exactly as in the whole run. `sampler` is a name (its
    `options` checked here) or a `CheckedSampler` (checked already).
    """
    draw = _draw(draw, fields, "sample")
    checked = _checked(sampler, options)
    draw = _steps_decided(draw, checked)
    batch_size = draw.batch_size or draw.n
    _check_counts(draw.n, draw.steps, batch_size)
    chunks = batches(draw.n, batch_size)
    if not draw.running_stats:
        smallest = min(c.stop - c.start for c in chunks)
        check_batch_statistics(model, smallest, ["batch_size", "n"])
    rank, world = draw.shard
    mine = chunks[rank::world]
    with sampling_mode(model, draw.running_stats):
        runs = _start_runs(model, checked, draw, mine)
        try:
            yield from _lockstep(runs, [c.stop - c.start for c in mine], checked, draw)
        finally:
            _close(runs, checked)


def _close(runs: list[Iterator[torch.Tensor]], checked: CheckedSampler) -> None:
    """End each sampler: aegen takes exactly `steps` frames (a failing clean-up is the
    plugin's failure, named)."""
    for run in runs:
        close = getattr(run, "close", None)
        if close is not None:
            with _plugin_code(checked, "when closed after its last frame"):
                close()


def _blame(checked: CheckedSampler) -> str:
    return f"sampler {checked.name!r} (plugin {checked.spec.plugin!r})"


def _start_runs(model: torch.nn.Module, checked: CheckedSampler, draw: Draw,
                chunks: list[slice]) -> list[Iterator[torch.Tensor]]:
    """One sampler generator per batch, each with its images' own seeded noise."""
    device = torch.device(draw.device)
    start = None if draw.start is None else draw.start.to(device)
    seeds = [draw.seed + i for i in range(draw.n)]
    runs = []
    for chunk in chunks:
        with _plugin_code(checked, "when called"):
            run = checked.spec.fn(
                model,
                None if start is None else start[chunk],
                steps=draw.steps,
                noise=Noise(seeds[chunk], draw.shape, device, stream=draw.noise_stream),
                **checked.options,
            )
        if not isinstance(run, Iterator):
            raise PluginError(
                f"{_blame(checked)} returned a {type(run).__name__}, not an iterator of "
                "frames: a sampler yields one frame per step (`yield frame`)"
            )
        runs.append(run)
    return runs


class _plugin_code:
    """Around a sampler's own code: its usage errors pass (a setting it refuses, exit 2); any
    other exception is the plugin's failure, named, exit 1."""

    def __init__(self, checked: CheckedSampler, when: str) -> None:
        self.checked, self.when = checked, when

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, (AegenError, KeyboardInterrupt, StopIteration)):
            return False
        if isinstance(exc, SystemExit):  # a plugin does not end aegen
            raise PluginError(
                f"{_blame(self.checked)} called sys.exit({exc.code!r}) {self.when}"
            ) from exc
        if not isinstance(exc, Exception):
            return False
        raise PluginError(
            f"{_blame(self.checked)} failed {self.when}: {type(exc).__name__}: {exc}"
        ) from exc


def _lockstep(runs: list[Iterator[torch.Tensor]], sizes: list[int], checked: CheckedSampler,
              draw: Draw) -> Iterator[torch.Tensor]:
    """Advance every batch's run by one step at a time and yield the steps' whole frames,
    each checked against the frame contract (a tensor of shape (batch, *shape))."""
    for step in range(1, draw.steps + 1):
        try:
            with _plugin_code(checked, f"at step {step}"), torch.inference_mode():
                frames = [next(run) for run in runs]  # inference mode only around its code
        except StopIteration:
            made = step - 1
            done = "yielded no frames" if made == 0 else (
                f"stopped after {made} frame{'s' if made > 1 else ''}"
            )
            raise PluginError(
                f"{_blame(checked)} {done}, but {draw.steps} steps were asked for: a sampler "
                "yields exactly one frame per step"
            ) from None
        for frame, size in zip(frames, sizes):
            _check_frame(frame, (size, *draw.shape), checked, step)
            _check_device(frame, torch.device(draw.device), checked, step)
        if not frames:  # a rank with no batch of its own
            frames = [torch.empty((0, *draw.shape), device=torch.device(draw.device))]
        yield frames[0] if len(frames) == 1 else torch.cat(frames)


def _check_device(frame: torch.Tensor, device: torch.device, checked: CheckedSampler,
                  step: int) -> None:
    if frame.device.type != device.type or device.index not in (None, frame.device.index):
        raise PluginError(
            f"{_blame(checked)} yielded a frame on {frame.device} at step {step}; frames stay "
            f"on the run's device, {device} (draw them through `noise`, or like the model's "
            "output)"
        )


def _check_frame(frame: Any, shape: tuple[int, ...], checked: CheckedSampler, step: int) -> None:
    if not isinstance(frame, torch.Tensor) or not frame.is_floating_point():
        what = frame.dtype if isinstance(frame, torch.Tensor) else type(frame).__name__
        raise PluginError(
            f"{_blame(checked)} yielded a {what} at step {step}; a frame is a floating-point "
            "tensor (B, C, H, W)"
        )
    if tuple(frame.shape) != tuple(shape):
        raise PluginError(
            f"{_blame(checked)} yielded a frame of shape {tuple(frame.shape)} at step {step}; "
            f"expected {tuple(shape)} (this batch's images, the model's channels and size)"
        )


def generate(
    model: torch.nn.Module,
    sampler: str | CheckedSampler = DEFAULT_SAMPLER,
    *,
    options: Mapping[str, Any] | None = None,
    draw: Draw | None = None,
    on_frame: Callable[[int, torch.Tensor], None] | None = None,
    reporter: Reporter | None = None,
    **fields: Any,
) -> Generation:
    """Run a sampler to the end and return the last frame; `on_frame(step, frame)` sees each
    frame as it is made (step counts from 1), for writing frames or videos. What is drawn is
    a `Draw` or its fields as keywords, as for `sample`. With `shard`, only that rank's images
    (`shard_indices`), and `seeds` are theirs."""
    draw = _draw(draw, fields, "generate")
    reporter = reporter or Reporter(quiet=True)
    checked = _checked(sampler, options)
    draw = _steps_decided(draw, checked)
    frames = sample(model, checked, draw=draw)
    last = None
    done = 0
    with reporter.task(f"sampling ({checked.name})", total=draw.steps) as task:
        for done, frame in enumerate(frames, start=1):
            last = frame
            if on_frame is not None:
                on_frame(done, frame)
            task.advance()
    if last is None:  # _lockstep refuses a sampler without frames; this is a safeguard
        raise PluginError(f"{_blame(checked)} yielded no frames")
    if not bool(torch.isfinite(last).all()):
        reporter.warn(
            f"{_blame(checked)} produced NaN or infinite values in its final images; they are "
            "written as they are (black or white pixels)"
        )
    return Generation(
        images=last.float().cpu(),
        seeds=[draw.seed + i for i in shard_indices(draw.n, draw.batch_size, *draw.shard)],
        sampler=checked.name,
        options=checked.options,
        steps=done,
    )
