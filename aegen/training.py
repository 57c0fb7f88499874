"""Training an autoencoder (MSE to the clean image), with a resumable checkpoint per epoch.

What the model sees as input is the objective's choice: `copy` (the seed's plain autoencoding,
the default) or any registered objective, e.g. `denoise`.
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__, distributed
from .checkpoint import (
    load_checkpoint,
    load_optimizer_state,
    load_raw_weights,
    read_checkpoint_info,
    save_checkpoint,
)
from .console import Reporter
from .data import load_data
from .devices import pick_device
from .errors import AegenError, CheckpointError, UsageError
from .files import refuse_overwrite
from .models import build_model, check_batch_statistics, resolve_config
from .plugins import get_registry

DEFAULT_ARCHITECTURE = "unet"
DEFAULT_SIZE = 64
DEFAULT_OBJECTIVE = "copy"


@dataclass
class TrainResult:
    """Where the checkpoint went and how training ended."""

    path: Path
    architecture: str
    config: dict[str, Any]
    epochs: int
    final_loss: float
    losses: list[float]
    images: int
    skipped: int
    seed: int
    seconds: float
    objective: dict[str, Any]
    fast_path: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "checkpoint": str(self.path),
            "architecture": self.architecture,
            "config": self.config,
            "objective": self.objective,
            "epochs": self.epochs,
            "final_loss": self.final_loss,
            "losses": self.losses,
            "images": self.images,
            "skipped": self.skipped,
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
            "fast_path": self.fast_path,
        }


def _epoch_generator(seed: int, epoch: int, device: Any = "cpu"):
    """The data order of each epoch depends only on (seed, epoch), so resuming replays it."""
    import torch

    return torch.Generator(device).manual_seed(seed * 1_000_003 + epoch)


def _objective_generator(seed: int, epoch: int, device: Any, rank: int = 0):
    """The objective's draws (noise, corruption levels) per (seed, epoch), apart from the order.
    Under torchrun each rank draws its own (rank 0 the one-process draws): the ranks' images
    differ, and identical noise on each would only correlate their corruptions."""
    import torch

    base = (seed * 1_000_003 + epoch) ^ 0x5DEECE66D
    return torch.Generator(device).manual_seed((base + rank * 0x9E3779B97F4A7C15) % 2**63)


def epoch_shard(count: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1):
    """The image indices this rank trains on in `epoch`, in order: every `world`-th of the
    (seed, epoch) permutation from `rank` on, as DistributedSampler with set_epoch does, cut to
    whole batches so that every rank takes the same number of steps. One process: all of it."""
    import torch

    order = torch.randperm(count, generator=_epoch_generator(seed, epoch))
    per_rank = count // world
    shard = order[rank : per_rank * world : world]
    return shard[: per_rank // batch_size * batch_size]


def resolve_objective(name: str | None, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """{"name", "options"} with every option of the registered objective validated."""
    from .options import resolve_options
    from .plugins import get_registry

    name = name or DEFAULT_OBJECTIVE
    spec = get_registry().objective(name)
    values = resolve_options(spec.options, options or {}, f"objective {name!r}")
    return {"name": name, "options": values, "plugin": spec.plugin}


def train(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    architecture: str | None = None,
    config: Mapping[str, Any] | None = None,
    size: int | None = None,
    channels: int | None = None,
    epochs: int = 20,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int | None = None,
    device: str = "auto",
    resume: str | os.PathLike | None = None,
    source: str | None = None,
    objective: str | None = None,
    objective_options: Mapping[str, Any] | None = None,
    sync_bn: bool = False,
    precision: str | None = None,
    compile: bool = False,
    lr_schedule: str | None = None,
    channels_last: bool | None = None,
    ema: float | None = None,
    force: bool = False,
    reporter: Reporter | None = None,
) -> TrainResult:
    """Train on the images under `data` and write a checkpoint to `out` after every epoch.

    `objective` (default "copy") makes the model's input from each clean batch; it and its
    options are stored in the checkpoint, and samplers take their defaults from them.

    With `resume`, continue a checkpoint's run (weights, optimizer state, data order) up to
    `epochs` in total; the result equals an uninterrupted run with the same settings.

    Under torchrun this is data-parallel training (DistributedDataParallel): `batch_size` is
    per process, each rank trains on its shard of every epoch, `sync_bn` makes batch norm use
    the statistics of all ranks' batches, and rank 0 alone writes the checkpoint (see
    docs/scaling.md). In one process `sync_bn` changes nothing.

    `precision` (auto | fp32 | bf16 | fp16; default auto, or the resumed run's) runs the forward
    pass under autocast, with weights, optimizer and loss in fp32; channels-last and `compile`
    as in aegen/precision.py; `channels_last` True/False overrides the memory format. Both are
    stored in the training state, and a resumed run keeps them unless told otherwise.

    `lr_schedule` "constant" (default; the seed's) keeps `lr`; "cosine" lowers it along a half
    cosine from `lr` at the first step to 0 after the last step of epoch `epochs`.

    `ema` (a decay per step, e.g. 0.999) keeps an exponential moving average of the weights and
    saves it as the model, the usual way to steadier samples; the trained weights and the
    optimizer state stay in the checkpoint for `resume`.
    """
    # Under torchrun the device picks the backend; otherwise it is resolved where it always was.
    where = pick_device(device) if distributed.launched() else device
    with distributed.session(where) as ctx:
        return _train(
            ctx,
            data,
            out,
            architecture=architecture,
            config=config,
            size=size,
            channels=channels,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            device=distributed.device_for(where, ctx),
            resume=resume,
            source=source,
            objective=objective,
            objective_options=objective_options,
            sync_bn=sync_bn,
            precision=precision,
            compile=compile,
            lr_schedule=lr_schedule,
            channels_last=channels_last,
            ema=ema,
            force=force,
            reporter=ctx.reporter(reporter or Reporter(quiet=True)),
        )


def _train(
    ctx: distributed.Context,
    data,
    out,
    *,
    architecture,
    config,
    size,
    channels,
    epochs,
    batch_size,
    lr,
    seed,
    device,
    resume,
    source,
    objective,
    objective_options,
    sync_bn,
    precision,
    compile,
    lr_schedule,
    channels_last,
    ema,
    force,
    reporter,
) -> TrainResult:
    import torch

    from .precision import auto_training_path, choose, compiled, for_model
    out = Path(out)
    if epochs < 1:
        raise UsageError("--epochs must be at least 1")
    state: dict[str, Any] = {}
    if resume is not None:
        info = read_checkpoint_info(resume)
        if info.training_state is None:
            raise UsageError(f"{resume} holds no training state, so it cannot be resumed")
        state = info.training_state
        missing = {"epochs_done", "batch_size", "lr", "seed"} - set(state)
        if missing:
            raise CheckpointError(f"{resume}: its training state lacks {sorted(missing)[0]!r}")
        for name, given, saved in [
            ("--arch", architecture, info.architecture),
            ("--size", size, info.size),
            ("--channels", channels, info.channels),
            ("--batch-size", batch_size, state["batch_size"]),
            ("--lr", lr, state["lr"]),
            ("--seed", seed, state["seed"]),
        ]:
            if given is not None and given != saved:
                raise UsageError(f"{name} {given} differs from the resumed run's {saved}")
        if config:
            raise UsageError("--set cannot change the config of a resumed run")
        saved_objective = info.objective or {"name": DEFAULT_OBJECTIVE, "options": {}}
        if objective is not None and objective != saved_objective["name"]:
            raise UsageError(
                f"--objective {objective} differs from the resumed run's {saved_objective['name']}"
            )
        if objective_options:
            raise UsageError("--option cannot change the objective of a resumed run")
        objective, objective_options = saved_objective["name"], saved_objective["options"]
        if precision is None:  # continue as the run began (fp32 NCHW before these existed)
            precision = state.get("precision", "fp32")
        if channels_last is None:
            channels_last = state.get("channels_last", False)
        saved_schedule = state.get("lr_schedule", "constant")
        if lr_schedule is not None and lr_schedule != saved_schedule:
            raise UsageError(
                f"--lr-schedule {lr_schedule} differs from the resumed run's {saved_schedule}"
            )
        lr_schedule = saved_schedule
        saved_ema = state.get("ema")
        if ema is not None and ema != saved_ema:
            raise UsageError(f"--ema {ema} differs from the resumed run's {saved_ema or 'none'}")
        ema = saved_ema
        if lr_schedule != "constant" and state.get("planned_epochs", epochs) != epochs:
            reporter.warn(
                f"the {lr_schedule} learning-rate schedule of {resume} was planned for "
                f"{state.get('planned_epochs')} epochs; stretched to {epochs}, the rate "
                "jumps and the result differs from an uninterrupted run"
            )
        architecture, size, channels = info.architecture, info.size, info.channels
        batch_size, lr, seed = state["batch_size"], state["lr"], state["seed"]
        resumed_config = dict(info.config)
        if state["epochs_done"] >= epochs:
            raise UsageError(
                f"{resume} already has {state['epochs_done']} epochs; ask for more with --epochs"
            )
        if out.resolve() != Path(resume).resolve():
            refuse_overwrite([out], force)
    else:
        refuse_overwrite([out], force)
    architecture = architecture or DEFAULT_ARCHITECTURE
    size = DEFAULT_SIZE if size is None else size
    batch_size = 16 if batch_size is None else batch_size
    lr = 1e-4 if lr is None else lr
    seed = ctx.agree(random.randrange(2**31)) if seed is None else seed
    if batch_size < 1 or size < 1 or not (lr > 0 and math.isfinite(lr)):
        raise UsageError("--batch-size, --size and --lr must be positive")
    if ema is not None and not 0 < ema < 1:
        raise UsageError(f"--ema must be between 0 and 1 (a decay per step), got {ema}")
    lr_schedule = lr_schedule or "constant"
    if lr_schedule not in LR_SCHEDULES:
        raise UsageError(
            f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}; got {lr_schedule!r}"
        )
    if not 0 <= seed < 2**40:
        raise UsageError(f"--seed must be between 0 and 2**40, got {seed}")
    dev = pick_device(device) if isinstance(device, str) else device
    if precision == "fp16":
        raise UsageError(
            "train --precision fp16 is not supported: fp16 training needs gradient scaling, "
            "which aegen does not do; use bf16 or fp32"
        )
    fast = choose(precision or "auto", dev, compile, channels_last)
    goal = resolve_objective(objective, objective_options)
    make_input = get_registry().objective(goal["name"]).fn

    # Check the architecture takes this size before reading any data (cheap: no weights).
    if resume is not None:
        config_values = resumed_config
    else:
        config_values = resolve_config(architecture, config or {}, channels or 3, size)
    with torch.device("meta"):
        fast = for_model(fast, build_model(architecture, config_values))

    with reporter.task("reading images", total=None) as task:
        images = load_data(data, size, channels, source, on_image=task.advance)
    for path, why in images.skipped[:5]:
        reporter.warn(f"skipped {path}: {why}")
    if images.skipped:
        total = len(images.paths) + len(images.skipped)
        reporter.warn(f"skipped {len(images.skipped)} unreadable file(s) of {total}")
    count = len(images.paths)
    if count < batch_size:
        raise UsageError(f"only {count} readable image(s), fewer than --batch-size {batch_size}")
    if count < batch_size * ctx.world:
        raise UsageError(
            f"only {count} readable image(s), fewer than --batch-size {batch_size} times "
            f"{ctx.world} processes"
        )
    if resume is None:
        config_values = resolve_config(architecture, config or {}, images.channels, size)
    elif info.provenance.get("images") not in (None, count):
        reporter.warn(
            f"{resume} was trained on {info.provenance['images']} images, {data} has "
            f"{count}: the result will differ from an uninterrupted run"
        )
    if (precision or "auto") == "auto":
        fast = auto_training_path(
            lambda: build_model(architecture, config_values), dev,
            shape=(images.channels, size, size), batch=batch_size,
            channels_last=channels_last, compile=compile, agree=ctx.agree,
        )
    path_state = {"precision": fast.precision, "channels_last": fast.channels_last,
                  "compiled": fast.compile}
    # Only a non-constant schedule is recorded: constant-rate checkpoints stay what they were.
    schedule_state = (
        {} if lr_schedule == "constant"
        else {"lr_schedule": lr_schedule, "planned_epochs": epochs}
    )
    saved_path = {k: state.get(k, v) for k, v in
                  (("precision", "fp32"), ("channels_last", False), ("compiled", False))}
    if resume is not None and saved_path != path_state:
        reporter.warn(
            f"{resume} was trained with {_path_words(saved_path)}, this run uses "
            f"{_path_words(path_state)}: the result will differ from an uninterrupted run"
        )
    spread = state.get("processes", 1), state.get("sync_bn", False)
    if resume is not None and spread != (ctx.world, sync_bn and ctx.active):
        reporter.warn(
            f"{resume} was trained by {spread[0]} process(es)"
            f"{' with --sync-bn' if spread[1] else ''}, this run has {ctx.world}"
            f"{' with --sync-bn' if sync_bn and ctx.active else ''}: the result will differ "
            "from an uninterrupted run"
        )
    where = f"{ctx.world} processes ({dev.type}, batch {batch_size} each" + (
        ", batch norm synchronised)" if sync_bn else ")"
    )
    reporter.info(
        f"training {architecture} on {count} images ({images.channels}x{size}x{size}) "
        f"on {where if ctx.active else dev.type}, objective {goal['name']}, seed {seed}, "
        f"{_path_words(path_state)} ({fast.reason})"
    )

    average = None  # with --ema: the averaged copy that the checkpoint saves as the model
    if resume is not None:
        model = load_checkpoint(resume).model.to(dev)
        if ema:
            average = copy.deepcopy(model)  # a --ema checkpoint's model is the average
            model.load_state_dict(load_raw_weights(info))
    else:
        with torch.random.fork_rng(devices=[]):  # seed the init without touching global state
            torch.manual_seed(seed)
            model = build_model(architecture, config_values).to(dev)
    check_batch_statistics(model, batch_size, "raise --batch-size")
    if ema and average is None:
        average = copy.deepcopy(model)
    if ctx.active and sync_bn:
        model = distributed.sync_batchnorm(model, ctx)
    if fast.channels_last:
        model = model.to(memory_format=torch.channels_last)  # the checkpoint stays contiguous
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if resume is not None:
        try:
            optimizer.load_state_dict(load_optimizer_state(info))
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise CheckpointError(
                f"{resume}: its optimizer state cannot be restored ({exc})"
            ) from None
    start = state.get("epochs_done", 0)
    losses: list[float] = list(state.get("losses", []))
    provenance = {
        "data": str(Path(data).resolve()),
        "images": count,
        "skipped": len(images.skipped),
        "source": images.source,
        "seed": seed,
        "batch_size": batch_size,
        "lr": lr,
        **schedule_state,
        **path_state,
        "aegen_version": __version__,
    }
    spread_state: dict[str, Any] = {}
    if ctx.active:  # only then: a one-process checkpoint stays byte for byte what it was
        spread_state = {"processes": ctx.world, "sync_bn": bool(sync_bn)}
        provenance.update(spread_state)
    ema_state = {"ema": ema} if ema else {}
    provenance.update(ema_state)
    trained = model  # what the checkpoint saves: never the DDP wrapper
    update_average = _averager(average, trained, ema) if ema else None
    if ctx.active:
        from torch.nn.parallel import DistributedDataParallel

        with distributed.translate_failures(ctx):
            model = DistributedDataParallel(
                model, device_ids=[dev.index] if dev.type == "cuda" else None
            )
    if fast.compile:
        model = compiled(model)  # the steps run compiled; `trained` is saved
    began = time.perf_counter()
    saved = start  # epochs the checkpoint on disk holds
    try:
        for epoch in range(start, epochs):
            with distributed.translate_failures(ctx):  # a peer lost in DDP's own collectives
                losses.append(
                    _train_epoch(
                        model, optimizer, images.images, batch_size, seed, epoch, epochs, dev,
                        reporter, goal, make_input, ctx, fast,
                        lambda done: learning_rate(lr, lr_schedule, done, epochs),
                        update_average,
                    )
                )
            if ctx.main:
                if average is not None:
                    _copy_buffers(trained, average)  # batch norm's running statistics
                save_checkpoint(
                    out,
                    average if average is not None else trained,
                    raw_model=trained if average is not None else None,
                    architecture=architecture,
                    config=config_values,
                    provenance={**provenance, "epochs": epoch + 1, "final_loss": losses[-1]},
                    optimizer=optimizer,
                    objective=goal,
                    training_state={
                        "epochs_done": epoch + 1,
                        "seed": seed,
                        "batch_size": batch_size,
                        "lr": lr,
                        "losses": losses,
                        **schedule_state,
                        **path_state,
                        **spread_state,
                        **ema_state,
                    },
                )
                saved = epoch + 1
            ctx.barrier()  # the others wait until the checkpoint is whole
            saved = epoch + 1
            reporter.info(f"epoch {epoch + 1}/{epochs}  loss {losses[-1]:.6f}  saved {out}")
    except KeyboardInterrupt:
        done = len(losses)
        reporter.warn(
            f"interrupted: {out} holds epoch {done}; continue with --resume {out}"
            if done > start
            else "interrupted before the first epoch ended; nothing written"
        )
        raise
    except distributed.PeerFailure as exc:
        kept = (
            f"{out} holds epoch {saved}; continue with --resume {out}"
            if saved > start
            else "no epoch ended"
        )
        raise distributed.PeerFailure(f"{exc}; {kept}") from None
    return TrainResult(
        path=out,
        architecture=architecture,
        config=config_values,
        epochs=epochs,
        final_loss=losses[-1],
        losses=losses,
        images=count,
        skipped=len(images.skipped),
        seed=seed,
        seconds=time.perf_counter() - began,
        objective=goal,
        fast_path=fast.as_json(),
    )


LR_SCHEDULES = ("constant", "cosine")


def _averager(average, trained, decay: float):
    """A function that moves `average`'s parameters towards `trained`'s by (1 - decay)."""
    import torch

    raw = dict(trained.named_parameters())
    pairs = [(a, raw[name]) for name, a in average.named_parameters()]

    def update() -> None:
        with torch.no_grad():
            for mean, value in pairs:
                mean.lerp_(value, 1 - decay)

    return update


def _copy_buffers(source, target) -> None:
    import torch

    found = dict(source.named_buffers())
    with torch.no_grad():
        for name, buffer in target.named_buffers():
            buffer.copy_(found[name])


def learning_rate(lr: float, schedule: str, epochs_done: float, epochs: int) -> float:
    """The rate for a step taken after `epochs_done` epochs (fractional) of `epochs`: a pure
    function of progress, so a resumed run continues the schedule exactly."""
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * min(epochs_done / epochs, 1.0)))
    return lr


def _path_words(path: Mapping[str, Any]) -> str:
    return (path["precision"] + (", channels-last" if path["channels_last"] else "")
            + (", compiled" if path.get("compiled") else ""))


def _train_epoch(
    model, optimizer, pixels, batch_size, seed, epoch, epochs, device, reporter, goal, make_input,
    ctx=distributed.SINGLE, fast=None, rate=None, after_step=None,
):
    """One pass over this rank's share of the data, in the order fixed by (seed, epoch);
    returns the mean loss (over all ranks). The forward pass runs on `fast`'s precision and
    memory format; the loss is taken in fp32."""
    import torch
    import torch.nn.functional as F

    from .precision import choose, to_memory_format

    fast = fast or choose("fp32", device, channels_last=False)

    # The last partial batch is dropped, as in the seed.
    order = epoch_shard(len(pixels), batch_size, seed, epoch, ctx.rank, ctx.world)
    batches = len(order) // batch_size
    draws = _objective_generator(seed, epoch, device, ctx.rank)
    name, options = goal["name"], goal["options"]
    total = torch.zeros((), device=device)
    model.train()
    with reporter.task(f"epoch {epoch + 1}/{epochs}", total=batches, loss=True) as task:
        for b in range(batches):
            index = order[b * batch_size : (b + 1) * batch_size]
            x = pixels[index].to(device, non_blocking=True).float().div_(255)
            try:
                given = make_input(x, generator=draws, **options)
            except Exception as exc:
                raise AegenError(
                    f"objective {name!r} (plugin {goal['plugin']!r}) failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if not isinstance(given, torch.Tensor) or given.shape != x.shape:
                raise AegenError(
                    f"objective {name!r} (plugin {goal['plugin']!r}) must return a tensor of "
                    f"shape {list(x.shape)}"
                )
            if rate is not None:
                for group in optimizer.param_groups:
                    group["lr"] = rate(epoch + b / batches)
            with fast.autocast():
                output = model(to_memory_format(given, fast.channels_last))
            loss = F.mse_loss(output.float(), x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step()
            total += loss.detach()
            if b + 1 == batches or (task.active and b % 10 == 9):  # a sync only when shown
                task.advance(1, loss=f"{total.item() / (b + 1):.5f}")
            else:
                task.advance()
    return ctx.mean(total).item() / batches
