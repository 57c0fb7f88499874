"""Training an autoencoder (MSE to the clean image), with a resumable checkpoint per epoch.

`train` reads as its steps: plan the run (defaults, or a resumed run's settings), read the
images, choose the fast path for this model and batch, build the model and its optimizer, fit
epoch by epoch (a checkpoint after each), report. What the model sees as input is the
objective's choice: `copy` (the original article's plain autoencoding, the default) or any
registered objective, e.g. `denoise`.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from . import __version__, distributed, fitting
from .checkpoint import (
    CheckpointInfo,
    load_checkpoint,
    load_optimizer_state,
    load_raw_weights,
    read_checkpoint_info,
    save_checkpoint,
)
from .console import Reporter
from .data import ImageSet
from .devices import pick_device
from .errors import CheckpointError, UsageError
from .files import check_writable, refuse_overwrite
from .models import build_model, check_batch_statistics, resolve_config
from .options import resolve_options
from .plugins import get_registry
from .precision import FastPath, auto_training_path, choose, compiled, for_model
from .settings import Runtime, TrainSettings
from .trainingdata import read_training_data
from .trainstate import Reconciled, TrainingState, path_words, reconcile


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
    data_cache: dict[str, Any] | None = None

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
            "data_cache": self.data_cache,
        }


@dataclass(frozen=True)
class TrainingPlan:
    """A run's settings once every default is applied (or taken from the resumed run)."""

    settings: TrainSettings
    runtime: Runtime
    device: Any
    fast: FastPath
    objective: dict[str, Any]  # {"name", "options", "plugin"}, options validated
    config: dict[str, Any]
    resumed: Reconciled | None = None
    info: CheckpointInfo | None = None  # the resumed checkpoint's header


@dataclass
class Parts:
    """The model three ways (as the steps run it, as trained, as averaged) and its optimizer."""

    learner: fitting.Learner
    trained: Any
    average: Any | None


@distributed.task(TrainSettings)
def train(
    data: str | os.PathLike,
    out: str | os.PathLike,
    settings: TrainSettings | None = None,
    *,
    runtime: Runtime | None = None,
    resume: str | os.PathLike | None = None,
    force: bool = False,
    reporter: Reporter | None = None,
    cache: bool = True,
    workers: int | None = None,
    **fields: Any,
) -> TrainResult:
    """Train on the images under `data` and write a checkpoint to `out` after every epoch.

    `settings` (TrainSettings) says what to learn and how, `runtime` (Runtime) where and on
    which fast path; their fields may also be given as keywords: `train(data, out, epochs=3,
    device="cpu")`. `objective` (default "copy") makes the model's input from each clean
    batch; it and its options are stored in the checkpoint, and samplers take their defaults
    from them.

    With `resume`, continue a checkpoint's run (weights, optimizer state, data order) up to
    `epochs` in total; the result equals an uninterrupted run with the same settings.

    Under torchrun this is data-parallel training (DistributedDataParallel): `batch_size` is
    per process, each rank trains on its shard of every epoch, `sync_bn` makes batch norm use
    the statistics of all ranks' batches, and rank 0 alone writes the checkpoint (see
    docs/scaling.md). In one process `sync_bn` changes nothing.

    `precision` (auto | fp32 | bf16; default auto, or the resumed run's) runs the forward
    pass under autocast, with weights, optimizer and loss in fp32; `channels_last` True/False
    overrides the memory format auto measured. Both are stored in the training state, and a
    resumed run keeps them unless told otherwise.

    `lr_schedule` "constant" (default; the original article's) keeps `lr`; "cosine" lowers it
    along a half cosine from `lr` at the first step to 0 after the last step of `epochs`.

    `ema` (a decay per step, e.g. 0.999) keeps an exponential moving average of the weights and
    saves it as the model, the usual way to steadier samples; the trained weights and the
    optimizer state stay in the checkpoint for `resume`.

    `flip` True flips a random half of each batch left to right (drawn from the seed and the
    epoch, so reproducible and resumable). The images are decoded once into the decoded cache
    (docs/data.md) by `workers` processes and read from it a batch at a time; `cache` False
    reads them into memory instead.
    """
    out = check_writable(out, "out")  # settings, runtime, reporter: from the task decorator
    plan = plan_run(out, settings, runtime, resume, force, reporter)
    images = read_images(data, plan, reporter, cache, workers)
    plan = fit_to_images(plan, images, data, reporter)
    parts = build_parts(plan, resume)
    began = time.perf_counter()
    losses = fit(plan, parts, images, provenance(plan, images, data), out, reporter)
    return TrainResult(
        path=out,
        architecture=plan.settings.architecture,
        config=plan.config,
        epochs=plan.settings.epochs,
        final_loss=losses[-1],
        losses=losses,
        images=len(images.paths),
        skipped=len(images.skipped),
        seed=plan.settings.seed,
        seconds=time.perf_counter() - began,
        objective=plan.objective,
        fast_path=plan.fast.as_json(),
        data_cache=images.cache,
    )


def plan_run(out: Path, settings: TrainSettings, runtime: Runtime,
             resume: str | os.PathLike | None, force: bool, reporter: Reporter) -> TrainingPlan:
    """Settings with their defaults (or the resumed run's), checked before any work: the
    output path, the objective's options, the architecture's config and the fast path."""
    ctx = distributed.current()
    resumed = info = None
    if resume is not None:
        info = read_checkpoint_info(resume)
        resumed = reconcile(info, settings, runtime)
        settings, runtime = resumed.settings, resumed.runtime
        for warning in resumed.warnings:
            reporter.warn(warning)
    same = resume is not None and out.resolve() == Path(resume).resolve()
    refuse_overwrite([out], force or same)  # a resumed file may be replaced by its own run
    settings = settings.with_defaults()
    if settings.seed is None:
        settings = dataclasses.replace(settings, seed=ctx.agree(random.randrange(2**31)))
    settings.check()
    device = pick_device(runtime.device) if isinstance(runtime.device, str) else runtime.device
    if runtime.precision == "fp16":
        raise UsageError(
            "train `precision` fp16 is not supported: fp16 training needs gradient scaling, "
            "which aegen does not do; use bf16 or fp32", parameters=["precision"],
        )
    fast = choose(runtime.precision or "auto", device, runtime.compile, runtime.channels_last)
    objective = resolve_objective(settings)
    warn_if_it_can_copy(settings, reporter)
    config = dict(info.config) if info is not None else resolve_config(
        settings.architecture, settings.config, settings.channels or 3, settings.size)
    with torch.device("meta"):  # the architecture takes this config: cheap, no weights
        fast = for_model(fast, build_model(settings.architecture, config))
    return TrainingPlan(settings, runtime, device, fast, objective, config, resumed, info)


def warn_if_it_can_copy(settings: TrainSettings, reporter: Reporter) -> None:
    """An architecture that can pass its input straight through (skip connections) learns
    nothing from an objective whose input is its target: say so before the run spends hours."""
    arch = get_registry().architecture(settings.architecture)
    objective = get_registry().objective(settings.objective)
    if arch.can_copy and objective.corrupts is False:
        reporter.warn(
            f"architecture {arch.name!r} can pass its input straight through, and objective "
            f"{objective.name!r} trains it on uncorrupted inputs: it can learn the identity and "
            "generate nothing; train it with an objective that corrupts its input, such as "
            "denoise"
        )


def resolve_objective(settings: TrainSettings) -> dict[str, Any]:
    """{"name", "options", "plugin"} with every option of the registered objective checked."""
    name = settings.with_defaults().objective
    spec = get_registry().objective(name)
    options = resolve_options(spec.options, settings.objective_options or {},
                              f"objective {name!r}")
    return {"name": name, "options": options, "plugin": spec.plugin}


def read_images(data: str | os.PathLike, plan: TrainingPlan, reporter: Reporter,
                cache: bool = True, workers: int | None = None) -> ImageSet:
    """The training images (from the decoded cache unless `cache` is False), with unreadable
    files skipped (and said); enough for one batch on every process, or an error before any
    training. Under torchrun the first process of each machine decodes into the cache while
    the others wait, then each reads only its share of every epoch from it."""
    settings, ctx = plan.settings, distributed.current()
    decodes = not (cache and ctx.active) or ctx.local_rank == 0
    if not decodes:
        ctx.barrier()  # the cache is being built on this machine
    with reporter.task("reading images", total=None) as task:
        images = read_training_data(
            data, settings.size, settings.channels, settings.source, cache=cache,
            workers=workers, on_image=task.advance, warn=reporter.warn)
    if cache and ctx.active and decodes:
        ctx.barrier()
    if images.cache and images.cache.get("path"):
        done = {"hit": "read from", "built": "decoded into"}[images.cache["state"]]
        reporter.info(f"{len(images.paths)} images {done} the decoded cache "
                      f"{images.cache['path']}")
    for path, why in images.skipped[:5]:
        reporter.warn(f"skipped {path}: {why}")
    if images.skipped:
        total = len(images.paths) + len(images.skipped)
        reporter.warn(f"skipped {len(images.skipped)} unreadable file(s) of {total}")
    count, batch_size = len(images.paths), settings.batch_size
    if count < batch_size:
        raise UsageError(f"only {count} readable image(s), fewer than `batch_size` {batch_size}",
                         parameters=["batch_size"])
    if count < batch_size * ctx.world:
        raise UsageError(
            f"only {count} readable image(s), fewer than `batch_size` {batch_size} times "
            f"{ctx.world} processes", parameters=["batch_size"],
        )
    return images


def fit_to_images(plan: TrainingPlan, images: ImageSet, data: Any,
                  reporter: Reporter) -> TrainingPlan:
    """The plan for these images: the config for their channels, the fast path measured for
    this model and batch (with `precision` auto), and what the user should know before the
    first epoch."""
    settings, runtime, ctx = plan.settings, plan.runtime, distributed.current()
    count = len(images.paths)
    config = plan.config
    if plan.resumed is None:
        config = resolve_config(settings.architecture, settings.config, images.channels,
                                settings.size)
    elif plan.info.provenance.get("images") not in (None, count):
        reporter.warn(
            f"{plan.info.path} was trained on {plan.info.provenance['images']} images, {data} "
            f"has {count}: the result will differ from an uninterrupted run"
        )
    fast = plan.fast
    if (runtime.precision or "auto") == "auto":
        fast = auto_training_path(
            lambda: build_model(settings.architecture, config), plan.device,
            shape=(images.channels, settings.size, settings.size), batch=settings.batch_size,
            channels_last=runtime.channels_last, compile=runtime.compile, agree=ctx.agree,
        )
    plan = dataclasses.replace(plan, config=config, fast=fast)
    if plan.resumed is not None:
        for warning in plan.resumed.state.drift(state_after(plan, 0, []), plan.info.path):
            reporter.warn(warning)
    say_what_runs(plan, images, reporter)
    return plan


def say_what_runs(plan: TrainingPlan, images: ImageSet, reporter: Reporter) -> None:
    settings, ctx = plan.settings, distributed.current()
    where = plan.device.type
    if ctx.active:
        where = f"{ctx.world} processes ({where}, batch {settings.batch_size} each" + (
            ", batch norm synchronised)" if settings.sync_bn else ")"
        )
    reporter.info(
        f"training {settings.architecture} on {len(images.paths)} images ({images.channels}x"
        f"{settings.size}x{settings.size}) on {where}, objective {plan.objective['name']}, "
        f"seed {settings.seed}, {path_words(state_after(plan, 0, []).fast_path())} "
        f"({plan.fast.reason})"
    )


def state_after(plan: TrainingPlan, epochs_done: int, losses: list[float]) -> TrainingState:
    """The training state a checkpoint of this run holds after `epochs_done` epochs."""
    settings, ctx = plan.settings, distributed.current()
    return TrainingState(
        epochs_done=epochs_done,
        seed=settings.seed,
        batch_size=settings.batch_size,
        lr=settings.lr,
        losses=list(losses),
        lr_schedule=settings.lr_schedule,
        planned_epochs=settings.epochs if settings.lr_schedule != "constant" else None,
        precision=plan.fast.precision,
        channels_last=plan.fast.channels_last,
        compiled=plan.fast.compile,
        processes=ctx.world,
        sync_bn=bool(settings.sync_bn) and ctx.active,
        ema=settings.ema,
        flip=bool(settings.flip),
    )


def build_parts(plan: TrainingPlan, resume: str | os.PathLike | None) -> Parts:
    """The model (seeded, or the resumed weights), its average with `ema`, synchronised batch
    norm, memory format, optimizer (resumed state), DDP and compilation, in that order."""
    settings, ctx, device = plan.settings, distributed.current(), plan.device
    trained, average = _models(plan, resume)
    check_batch_statistics(trained, settings.batch_size, ["batch_size"], running_stats=False)
    if ctx.active and settings.sync_bn:
        trained = distributed.sync_batchnorm(trained, ctx)
    if plan.fast.channels_last:
        trained = trained.to(memory_format=torch.channels_last)  # the checkpoint stays contiguous
    optimizer = torch.optim.Adam(trained.parameters(), lr=settings.lr)
    if resume is not None:
        try:
            optimizer.load_state_dict(load_optimizer_state(plan.info))
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise CheckpointError(
                f"{resume}: its optimizer state cannot be restored ({exc})"
            ) from None
    stepped = trained
    if ctx.active:
        with distributed.translate_failures(ctx):
            stepped = DistributedDataParallel(
                trained, device_ids=[device.index] if device.type == "cuda" else None
            )
    if plan.fast.compile:
        stepped = compiled(stepped)  # the steps run compiled; `trained` is saved
    learner = fitting.Learner(
        model=stepped, optimizer=optimizer,
        objective=get_registry().objective(plan.objective["name"]),
        objective_options=plan.objective["options"], fast=plan.fast, settings=settings,
        device=device,
        after_step=fitting.averager(average, trained, settings.ema) if settings.ema else None,
    )
    return Parts(learner, trained, average)


def _models(plan: TrainingPlan, resume: str | os.PathLike | None) -> tuple[Any, Any | None]:
    """The model to train and, with `ema`, its average (a resumed --ema checkpoint's model is
    the average; the trained weights lie beside it)."""
    settings, device = plan.settings, plan.device
    if resume is not None:
        model = load_checkpoint(resume).model.to(device)
        average = copy.deepcopy(model) if settings.ema else None
        if settings.ema:
            model.load_state_dict(load_raw_weights(plan.info))
        return model, average
    with torch.random.fork_rng(devices=[]):  # seed the init without touching global state
        torch.manual_seed(settings.seed)
        model = build_model(settings.architecture, plan.config).to(device)
    return model, copy.deepcopy(model) if settings.ema else None


def provenance(plan: TrainingPlan, images: ImageSet, data: Any) -> dict[str, Any]:
    """Where the weights came from, as the checkpoint records it (epochs and loss added per
    epoch)."""
    settings = plan.settings
    return {
        "data": str(Path(data).resolve()),
        "images": len(images.paths),
        "skipped": len(images.skipped),
        "source": images.source,
        "seed": settings.seed,
        "batch_size": settings.batch_size,
        "lr": settings.lr,
        **state_after(plan, 0, []).settings(),
        "aegen_version": __version__,
    }


def fit(plan: TrainingPlan, parts: Parts, images: ImageSet, origin: dict[str, Any], out: Path,
        reporter: Reporter) -> list[float]:
    """Train epoch by epoch up to `epochs`, saving after each; on Ctrl-C or a lost peer, say
    which epoch the file on disk holds and how to continue."""
    ctx = distributed.current()
    state = plan.resumed.state if plan.resumed is not None else None
    start = state.epochs_done if state else 0
    losses = list(state.losses) if state else []
    saved = start  # epochs the checkpoint on disk holds
    try:
        for epoch in range(start, plan.settings.epochs):
            with distributed.translate_failures(ctx):  # a peer lost in DDP's own collectives
                losses.append(fitting.train_epoch(parts.learner, images.images, epoch,
                                                  reporter, ctx))
            if ctx.main:
                save_epoch(plan, parts, origin, losses, out)
                saved = epoch + 1
            ctx.barrier()  # the others wait until the checkpoint is whole
            saved = epoch + 1
            reporter.info(f"epoch {epoch + 1}/{plan.settings.epochs}  loss {losses[-1]:.6f}  "
                          f"saved {out}")
    except KeyboardInterrupt:
        reporter.warn(
            f"interrupted: {out} holds epoch {len(losses)}; continue with `resume` {out}"
            if len(losses) > start
            else "interrupted before the first epoch ended; nothing written"
        )
        raise
    except distributed.PeerFailure as exc:
        kept = (f"{out} holds epoch {saved}; continue with `resume` {out}" if saved > start
                else "no epoch ended")
        raise distributed.PeerFailure(f"{exc}; {kept}", parameters=["resume"]) from None
    return losses


def save_epoch(plan: TrainingPlan, parts: Parts, origin: dict[str, Any], losses: list[float],
               out: Path) -> None:
    """The checkpoint after `len(losses)` epochs: the model (the average with `ema`), and what
    resuming needs (optimizer, trained weights, training state)."""
    average, trained = parts.average, parts.trained
    if average is not None:
        fitting.copy_buffers(trained, average)  # batch norm's running statistics
    save_checkpoint(
        out,
        average if average is not None else trained,
        raw_model=trained if average is not None else None,
        architecture=plan.settings.architecture,
        config=plan.config,
        provenance={**origin, "epochs": len(losses), "final_loss": losses[-1]},
        optimizer=parts.learner.optimizer,
        objective=plan.objective,
        training_state=state_after(plan, len(losses), losses).saved(),
    )
