"""The loop `generate` and `walk` share: sample with a checked sampler, feed the recorder each
frame as it comes, and write the final images.

Under torchrun each rank samples its whole batches (sampling.shard_indices) and writes its own
single images; rank 0 gathers what needs every image (grid, video, GIF, frames, walk stats).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch

from .. import distributed
from ..console import Reporter
from ..interrupts import stop_between_steps
from ..loading import LoadedModel
from ..outputs import Plan, write_images
from ..sampling import CheckedSampler, Generation, batches, generate, shard_indices
from ..settings import SamplingSettings


def draw_seed(seed: int | None) -> int:
    """`seed`, or one drawn at random when None (rank 0's, under torchrun)."""
    return distributed.current().agree(random.randrange(2**31)) if seed is None else seed


def my_images(settings: SamplingSettings) -> list[int]:
    """The images this process samples: all of them, or its batches under torchrun."""
    ctx = distributed.current()
    return shard_indices(settings.n, settings.batch_size, ctx.rank, ctx.world)


def warn_idle(settings: SamplingSettings, reporter: Reporter) -> None:
    """Say when there are fewer batches than processes, so some would only wait."""
    ctx = distributed.current()
    n = settings.n
    count = len(batches(n, settings.batch_size or n))
    if ctx.active and count < ctx.world:
        reporter.warn(
            f"{n} image(s) make {count} batch(es) for {ctx.world} processes, so "
            f"{ctx.world - count} have nothing to do; give a smaller `batch_size`"
        )


def run_sampler(
    loaded: LoadedModel,
    sampler: CheckedSampler,
    settings: SamplingSettings,
    reporter: Reporter,
    *,
    steps: int | None = None,
    start: torch.Tensor | None = None,
    noise_stream: int = 0,
    on_frame: Callable[[int, torch.Tensor], None] | None = None,
) -> Generation:
    """`settings`' run of `sampler` on the loaded model (`steps` overrides its steps), this
    process's share of it under torchrun."""
    ctx = distributed.current()
    return generate(
        loaded.model, sampler, shape=loaded.shape, n=settings.n,
        steps=settings.steps if steps is None else steps, seed=settings.seed,
        batch_size=settings.batch_size, start=start, device=loaded.device,
        running_stats=settings.running_stats, on_frame=on_frame, reporter=reporter,
        noise_stream=noise_stream, shard=(ctx.rank, ctx.world),
    )  # fmt: skip


def sample_and_record(
    plan: Plan,
    loaded: LoadedModel,
    sampler: CheckedSampler,
    settings: SamplingSettings,
    reporter: Reporter,
    *,
    start: torch.Tensor | None = None,
    noise_stream: int = 0,
    extra: Callable[[torch.Tensor], None] | None = None,
    need_frames: bool = False,
) -> Generation:
    """Run the sampler, feeding the plan's recorder (and `extra`) every frame. Ctrl-C stops the
    run after the step in progress, so every file being written is closed whole. Under
    torchrun, when frames are recorded (or `need_frames`), each step's frame is gathered to
    rank 0, which alone records."""
    ctx = distributed.current()
    recorder = plan.recorder
    mine = my_images(settings)
    gather = ctx.active and (recorder.active or need_frames)
    try:
        # Outer: the SIGINT guard stays up while the recorder closes its files.
        with stop_between_steps() as checkpoint, recorder:

            def on_frame(step: int, frame: torch.Tensor) -> None:
                if gather:
                    frame = ctx.gather(frame, mine, settings.n)
                if ctx.main:
                    recorder(step, frame)
                    if extra is not None:
                        extra(frame)
                checkpoint()

            return run_sampler(
                loaded, sampler, settings, reporter, start=start, noise_stream=noise_stream,
                on_frame=on_frame,
            )
    except KeyboardInterrupt:
        kept = ", ".join(str(w.path) for w in recorder.writers if w.frames)
        reporter.warn(
            f"interrupted after {recorder.steps_recorded} step(s)"
            + (f"; {kept} keep(s) the frames so far" if kept else "")
        )
        raise


def write_final(plan: Plan, generation: Generation, settings: SamplingSettings) -> list[str]:
    """Write this process's final images (and rank 0 the grid); every path the run wrote."""
    return write_images(plan, generation.images, my_images(settings), settings.n)
