"""Training steps: one epoch over this rank's share of the images, and what a step needs.

Everything random here is a function of (seed, epoch[, rank]), never of how many epochs ran
before in this process: that is what makes a resumed run end with an uninterrupted run's
weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .console import Reporter
from .distributed import SINGLE, Context
from .errors import AegenError, PluginError
from .precision import FastPath, to_memory_format
from .settings import TrainSettings


def _epoch_generator(seed: int, epoch: int, device: Any = "cpu") -> torch.Generator:
    """The data order of each epoch depends only on (seed, epoch), so resuming replays it."""
    return torch.Generator(device).manual_seed(seed * 1_000_003 + epoch)


def _objective_generator(seed: int, epoch: int, device: Any, rank: int = 0) -> torch.Generator:
    """The objective's draws (noise, corruption levels) per (seed, epoch), apart from the order.
    Under torchrun each rank draws its own (rank 0 the one-process draws): the ranks' images
    differ, and identical noise on each would only correlate their corruptions."""
    base = (seed * 1_000_003 + epoch) ^ 0x5DEECE66D
    return torch.Generator(device).manual_seed((base + rank * 0x9E3779B97F4A7C15) % 2**63)


def flips_of_epoch(seed: int, epoch: int, count: int, rank: int = 0) -> torch.Tensor:
    """Which of this rank's `count` images of `epoch` `flip` mirrors (a fair coin each), per
    (seed, epoch, rank) and apart from the order and the objective's draws."""
    base = (seed * 1_000_003 + epoch) ^ 0x2545F4914F6CDD1D
    generator = torch.Generator().manual_seed((base + rank * 0x9E3779B97F4A7C15) % 2**63)
    return torch.rand(count, generator=generator) < 0.5


def epoch_shard(count: int, batch_size: int, seed: int, epoch: int, rank: int = 0,
                world: int = 1) -> torch.Tensor:
    """The image indices this rank trains on in `epoch`, in order: every `world`-th of the
    (seed, epoch) permutation from `rank` on, as DistributedSampler with set_epoch does, cut to
    whole batches so that every rank takes the same number of steps. One process: all of it."""
    order = torch.randperm(count, generator=_epoch_generator(seed, epoch))
    per_rank = count // world
    shard = order[rank : per_rank * world : world]
    return shard[: per_rank // batch_size * batch_size]


def learning_rate(lr: float, schedule: str, epochs_done: float, epochs: int) -> float:
    """The rate for a step taken after `epochs_done` epochs (fractional) of `epochs`: a pure
    function of progress, so a resumed run continues the schedule exactly."""
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * min(epochs_done / epochs, 1.0)))
    return lr


@dataclass
class Learner:
    """What a training step needs: the model as the steps run it (DDP, compiled), its
    optimizer, the objective that makes each input from a clean batch, the fast path, the
    settings that fix order and rate, and what to do after each step (the EMA update)."""

    model: Any
    optimizer: Any
    objective: Any  # the registered objective: .name, .fn, .plugin
    objective_options: dict[str, Any]
    fast: FastPath
    settings: TrainSettings
    device: Any
    after_step: Callable[[], None] | None = None

    def set_rate(self, progress: float) -> None:
        rate = learning_rate(self.settings.lr, self.settings.lr_schedule, progress,
                             self.settings.epochs)
        for group in self.optimizer.param_groups:
            group["lr"] = rate

    def make_input(self, clean: torch.Tensor, draws: torch.Generator) -> torch.Tensor:
        """The objective's input for `clean`; a failing or misbehaving plugin is named."""
        where = f"objective {self.objective.name!r} (plugin {self.objective.plugin!r})"
        try:
            given = self.objective.fn(clean, generator=draws, **self.objective_options)
        except AegenError:  # e.g. a schedule it uses failed, named already
            raise
        except Exception as exc:
            raise PluginError(f"{where} failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(given, torch.Tensor) or given.shape != clean.shape:
            raise AegenError(f"{where} must return a tensor of shape {list(clean.shape)}")
        return given

    def step(self, clean: torch.Tensor, draws: torch.Generator) -> torch.Tensor:
        """One optimizer step on a clean batch; returns the loss (MSE to the clean batch,
        taken in fp32 whatever precision the forward pass ran in)."""
        given = self.make_input(clean, draws)
        with self.fast.autocast():
            output = self.model(to_memory_format(given, self.fast.channels_last))
        loss = F.mse_loss(output.float(), clean)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.after_step is not None:
            self.after_step()
        return loss.detach()


def train_epoch(learner: Learner, pixels: torch.Tensor, epoch: int, reporter: Reporter,
                ctx: Context = SINGLE) -> float:
    """One pass over this rank's share of `pixels` (uint8: a tensor, or an ImageFile that reads
    only the rows asked for) in the order fixed by (seed, epoch); the last partial batch is
    dropped, as in the original article. Returns the mean loss over all ranks."""
    settings, device = learner.settings, learner.device
    batch_size = settings.batch_size
    order = epoch_shard(len(pixels), batch_size, settings.seed, epoch, ctx.rank, ctx.world)
    batches = len(order) // batch_size
    draws = _objective_generator(settings.seed, epoch, device, ctx.rank)
    flips = flips_of_epoch(settings.seed, epoch, len(order), ctx.rank) if settings.flip else None
    total = torch.zeros((), device=device)
    learner.model.train()
    with reporter.task(f"epoch {epoch + 1}/{settings.epochs}", total=batches, loss=True) as task:
        for b in range(batches):
            index = order[b * batch_size : (b + 1) * batch_size]
            batch = pixels[index]  # a tensor's rows, or the decoded cache's read from disk
            if flips is not None:
                mirror = flips[b * batch_size : (b + 1) * batch_size].view(-1, 1, 1, 1)
                batch = torch.where(mirror, batch.flip(-1), batch)
            clean = batch.to(device, non_blocking=True).float().div_(255)
            learner.set_rate(epoch + b / batches)
            total += learner.step(clean, draws)
            if b + 1 == batches or (task.active and b % 10 == 9):  # a sync only when shown
                task.advance(1, loss=f"{total.item() / (b + 1):.5f}")
            else:
                task.advance()
    return ctx.mean(total).item() / batches


def averager(average: Any, trained: Any, decay: float) -> Callable[[], None]:
    """A function that moves `average`'s parameters towards `trained`'s by (1 - decay)."""
    raw = dict(trained.named_parameters())
    pairs = [(a, raw[name]) for name, a in average.named_parameters()]

    def update() -> None:
        with torch.no_grad():
            for mean, value in pairs:
                mean.lerp_(value, 1 - decay)

    return update


def copy_buffers(source: Any, target: Any) -> None:
    """Batch norm's running statistics of `source` into `target`."""
    found = dict(source.named_buffers())
    with torch.no_grad():
        for name, buffer in target.named_buffers():
            buffer.copy_(found[name])
