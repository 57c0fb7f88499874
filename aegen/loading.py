"""Loading the model a command runs: the checkpoint (the shipped default model when none is
given) on its device and, for the commands that sample or measure, on its fast path
(aegen/precision.py). Every command that runs a saved model loads through here, so each says
the same two lines about what it loaded and how it runs (`train --resume` continues a run and
reads its training state too: aegen/training.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from . import distributed
from .checkpoint import CheckpointInfo, load_checkpoint
from .console import Reporter
from .defaults import resolve_checkpoint
from .devices import pick_device
from .precision import FastPath, prepare
from .settings import Runtime


@dataclass(frozen=True)
class LoadedModel:
    """A loaded model ready to run: on its fast path (`fast`) or as saved (`fast` None)."""

    model: torch.nn.Module
    fast: FastPath | None
    info: CheckpointInfo
    device: torch.device

    @property
    def shape(self) -> tuple[int, int, int]:
        """One image's (channels, height, width)."""
        return (self.info.channels, self.info.size, self.info.size)


def load_model(
    checkpoint: str | os.PathLike | None,
    runtime: Runtime,
    reporter: Reporter,
    *,
    fast: bool = True,
    running_stats: bool = False,
    exact: str | None = None,
    batch_size: int | None = None,
) -> LoadedModel:
    """Load `checkpoint` on `runtime.device` and, with `fast`, put it on the fast path that
    `runtime` asks for (`--precision auto` measures at `batch_size`; `exact` is a reason this
    run needs fp32). Under torchrun every process takes rank 0's choice."""
    path = resolve_checkpoint(checkpoint, reporter)
    device = pick_device(runtime.device) if isinstance(runtime.device, str) else runtime.device
    loaded = load_checkpoint(path, device)
    info = loaded.info
    reporter.info(
        f"loaded {path} ({info.architecture}, {info.channels}x{info.size}x{info.size}) "
        f"on {device.type}"
    )
    result = LoadedModel(loaded.model, None, info, device)
    if not fast:
        return result
    model, path_taken = prepare(
        loaded.model, device, runtime.precision or "auto", runtime.compile, shape=result.shape,
        running_stats=running_stats, exact=exact, channels_last=runtime.channels_last,
        batch_size=batch_size, agree=distributed.current().agree,
    )
    _say_fast_path(path_taken, reporter)
    return LoadedModel(model, path_taken, info, device)


def _say_fast_path(fast: FastPath, reporter: Reporter) -> None:
    extras = [x for x, on in (("channels-last", fast.channels_last), ("compiled", fast.compile))
              if on]
    reporter.info(f"fast path: {', '.join([fast.precision, *extras])} ({fast.reason})")
