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
from .errors import AegenError, ConfigError, UsageError
from .models import check_batch_statistics, sampling_mode
from .noise import Noise
from .options import resolve_options
from .plugins import Component, get_registry

DEFAULT_SAMPLER = builtin_names.SAMPLER


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
    """What a sampling run draws: `n` images of `shape` (C, H, W) in `steps` steps, image i
    from seed + i, in batches of `batch_size` (None: all at once), from `start` images (walks)
    or none, on `device`, batch norm on `running_stats` or the batch's own statistics.
    `noise_stream` picks an independent noise stream of the same seeds (a walk's noise must
    not repeat its starting images'); `shard=(rank, world)` runs only that rank's batches."""

    shape: Sequence[int]
    n: int = 16
    steps: int = 100
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
    batch_size = draw.batch_size or draw.n
    _check_counts(draw.n, draw.steps, batch_size)
    checked = _checked(sampler, options)
    chunks = batches(draw.n, batch_size)
    if not draw.running_stats:
        smallest = min(c.stop - c.start for c in chunks)
        check_batch_statistics(model, smallest, ["batch_size", "n"])
    rank, world = draw.shard
    with sampling_mode(model, draw.running_stats):
        runs = _start_runs(model, checked, draw, chunks[rank::world])
        yield from _lockstep(runs, checked, draw)


def _start_runs(model: torch.nn.Module, checked: CheckedSampler, draw: Draw,
                chunks: list[slice]) -> list[Iterator[torch.Tensor]]:
    """One sampler generator per batch, each with its images' own seeded noise."""
    device = torch.device(draw.device)
    start = None if draw.start is None else draw.start.to(device)
    seeds = [draw.seed + i for i in range(draw.n)]
    return [
        checked.spec.fn(
            model,
            None if start is None else start[chunk],
            steps=draw.steps,
            noise=Noise(seeds[chunk], draw.shape, device, stream=draw.noise_stream),
            **checked.options,
        )
        for chunk in chunks
    ]


def _lockstep(runs: list[Iterator[torch.Tensor]], checked: CheckedSampler,
              draw: Draw) -> Iterator[torch.Tensor]:
    """Advance every batch's run by one step at a time and yield the steps' whole frames."""
    for step in range(draw.steps):
        try:
            with torch.inference_mode():  # only around the sampler's own code
                frames = [next(run) for run in runs]
            if not frames:  # a rank with no batch of its own
                frames = [torch.empty((0, *draw.shape), device=torch.device(draw.device))]
        except StopIteration:
            return
        except (AegenError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise AegenError(
                f"sampler {checked.name!r} (plugin {checked.spec.plugin!r}) failed at step "
                f"{step + 1}: {type(exc).__name__}: {exc}"
            ) from exc
        yield frames[0] if len(frames) == 1 else torch.cat(frames)


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
    frames = sample(model, checked, draw=draw)
    last = None
    done = 0
    with reporter.task(f"sampling ({checked.name})", total=draw.steps) as task:
        for done, frame in enumerate(frames, start=1):
            last = frame
            if on_frame is not None:
                on_frame(done, frame)
            task.advance()
    if last is None:
        raise ConfigError(f"sampler {checked.name!r} yielded no frames")
    return Generation(
        images=last.float().cpu(),
        seeds=[draw.seed + i for i in shard_indices(draw.n, draw.batch_size, *draw.shard)],
        sampler=checked.name,
        options=checked.options,
        steps=done,
    )
