"""The sampling runner: everything around a sampler (seeds, device, batching, progress).

A sampler is a plain generator function registered by a plugin; the runner drives one per
sub-batch in lockstep, so each yielded frame holds every image at that step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .console import Reporter
from .errors import AegenError, ConfigError, UsageError
from .models import check_batch_statistics, sampling_mode
from .noise import Noise
from .options import resolve_options
from .plugins import get_registry

DEFAULT_SAMPLER = "schedule"


@dataclass
class Generation:
    """The final images (on the CPU, unclamped) and the seed each one used."""

    images: torch.Tensor
    seeds: list[int]
    sampler: str
    options: dict[str, Any]
    steps: int


def _check_counts(n: int, steps: int, batch_size: int) -> None:
    for name, value in (("--n", n), ("--steps", steps), ("--batch-size", batch_size)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1, got {value}")


def batches(n: int, batch_size: int) -> list[slice]:
    """The batches `n` images are sampled in: whole batches of `batch_size`, the last smaller."""
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def shard_indices(n: int, batch_size: int | None, rank: int = 0, world: int = 1) -> list[int]:
    """The images a rank samples under torchrun: whole batches rank, rank + world, ... (batch
    norm mixes a batch, so only whole batches give the one-process images)."""
    chunks = batches(n, batch_size or n)[rank::world]
    return [i for chunk in chunks for i in range(chunk.start, chunk.stop)]


def sample(
    model: torch.nn.Module,
    sampler: str = DEFAULT_SAMPLER,
    *,
    shape: Sequence[int],
    n: int,
    steps: int,
    seed: int,
    batch_size: int | None = None,
    options: Mapping[str, Any] | None = None,
    start: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    running_stats: bool = False,
    noise_stream: int = 0,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[torch.Tensor]:
    """Yield one (n, C, H, W) frame per step; image i uses seed + i; the last frame is the result.

    Batch norm uses batch statistics (the seed's way) unless `running_stats`, and the model's
    stored statistics are never changed. `shard=(rank, world)` runs only that rank's batches
    (`shard_indices`): its frames hold those images, each exactly as in the whole run.
    """
    batch_size = batch_size or n
    _check_counts(n, steps, batch_size)
    spec = get_registry().sampler(sampler)
    values = resolve_options(spec.options, options or {}, f"sampler {sampler!r}")
    seeds = [seed + i for i in range(n)]
    chunks = batches(n, batch_size)
    if not running_stats:
        smallest = min(c.stop - c.start for c in chunks)
        check_batch_statistics(model, smallest, "raise --batch-size or --n, or use --running-stats")
    rank, world = shard
    chunks = chunks[rank::world]
    device = torch.device(device)
    if start is not None:
        start = start.to(device)
    with sampling_mode(model, running_stats):
        runs = [
            spec.fn(
                model,
                None if start is None else start[chunk],
                steps=steps,
                noise=Noise(seeds[chunk], shape, device, stream=noise_stream),
                **values,
            )
            for chunk in chunks
        ]
        for step in range(steps):
            try:
                with torch.inference_mode():  # only around the sampler's own code
                    frames = [next(run) for run in runs]
                if not frames:  # a rank with no batch of its own
                    frames = [torch.empty((0, *shape), device=device)]
            except StopIteration:
                return
            except (AegenError, KeyboardInterrupt):
                raise
            except Exception as exc:
                raise AegenError(
                    f"sampler {sampler!r} (plugin {spec.plugin!r}) failed at step {step + 1}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            yield frames[0] if len(frames) == 1 else torch.cat(frames)


def generate(
    model: torch.nn.Module,
    sampler: str = DEFAULT_SAMPLER,
    *,
    shape: Sequence[int],
    n: int = 16,
    steps: int = 100,
    seed: int = 0,
    batch_size: int | None = None,
    options: Mapping[str, Any] | None = None,
    start: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    running_stats: bool = False,
    on_frame: Callable[[int, torch.Tensor], None] | None = None,
    reporter: Reporter | None = None,
    noise_stream: int = 0,
    shard: tuple[int, int] = (0, 1),
) -> Generation:
    """Run a sampler to the end and return the last frame; `on_frame(step, frame)` sees each
    frame as it is made (step counts from 1), for writing frames or videos. With `shard`, only
    that rank's images (`shard_indices`), and `seeds` are theirs."""
    reporter = reporter or Reporter(quiet=True)
    spec = get_registry().sampler(sampler)
    values = resolve_options(spec.options, options or {}, f"sampler {sampler!r}")
    frames = sample(
        model,
        sampler,
        shape=shape,
        n=n,
        steps=steps,
        seed=seed,
        batch_size=batch_size,
        options=values,
        start=start,
        device=device,
        running_stats=running_stats,
        noise_stream=noise_stream,
        shard=shard,
    )
    last = None
    done = 0
    with reporter.task(f"sampling ({sampler})", total=steps) as task:
        for done, frame in enumerate(frames, start=1):
            last = frame
            if on_frame is not None:
                on_frame(done, frame)
            task.advance()
    if last is None:
        raise ConfigError(f"sampler {sampler!r} yielded no frames")
    return Generation(
        images=last.float().cpu(),
        seeds=[seed + i for i in shard_indices(n, batch_size, *shard)],
        sampler=sampler,
        options=values,
        steps=done,
    )
