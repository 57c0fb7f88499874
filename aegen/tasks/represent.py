"""`aegen represent` as a function: which input does a layer see as each input image?"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..console import Reporter
from ..data import load_inputs
from ..errors import UsageError
from ..files import refuse_overwrite
from ..loading import LoadedModel, load_model
from ..media import save_grid
from ..models import build_model
from ..representation import Representation, activation_of, layer_names, represent
from ..settings import Runtime, with_fields
from .result import Result


@dataclass(frozen=True)
class RepresentSettings:
    """What `represent_files` finds: for each of at most `limit` inputs, the input x whose
    activation at `layer` matches the input's, after `steps` steps of x -= lr * grad of
    loss_scale * sum |A(a) - A(x)| from x0 = mu + N(0, 1)/20 (image i: seed + i; None:
    drawn); in the trained model, an `untrained` one of its config, or both (`compare`)."""

    layer: str = "output"
    steps: int = 500
    lr: float = 0.1
    loss_scale: float = 0.01
    mu: float = 0.7
    seed: int | None = None
    untrained: bool = False
    compare: bool = False
    limit: int | None = None
    running_stats: bool = False

    def check(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"`limit` must be at least 1, got {self.limit}", parameters=["limit"])
        if self.steps < 1 or self.lr <= 0:
            raise UsageError("`steps` must be at least 1 and `lr` positive",
                             parameters=["steps", "lr"])


@dataclass(frozen=True)
class RepresentResult(Result):
    """What `represent_files` found; `as_json()` is `aegen represent --json`."""

    checkpoint: str
    layer: str
    steps: int
    lr: float
    loss_scale: float
    mu: float
    seed: int
    results: dict[str, list[dict[str, Any]]]  # per model (trained, untrained): per image
    out: str | None


def list_layers(checkpoint: str | os.PathLike | None) -> list[str]:
    """The layers `represent_files` can match in this checkpoint's model."""
    loaded = load_model(checkpoint, Runtime(device="cpu"), Reporter(quiet=True), fast=False)
    return layer_names(loaded.model)


def represent_files(
    checkpoint: str | os.PathLike | None,
    inputs: Sequence[str | os.PathLike],
    settings: RepresentSettings | None = None,
    *,
    out: str | os.PathLike | None = None,
    force: bool = False,
    runtime: Runtime | None = None,
    reporter: Reporter | None = None,
    **fields: Any,
) -> RepresentResult:
    """Find each input's representation at `layer` in the trained model (or an untrained one
    of the same config, or both with `compare`), and with `out` write them as a grid. Of
    `runtime` only the device counts: the descent runs on the weights as saved, in fp32."""
    settings, runtime = with_fields(settings, RepresentSettings, runtime, fields,
                                    "represent_files")
    settings.check()
    runtime.check()
    reporter = reporter or Reporter(quiet=True)
    seed = random.randrange(2**31) if settings.seed is None else settings.seed
    if out is not None:
        refuse_overwrite([out], force)
    loaded = load_model(checkpoint, runtime, reporter, fast=False)
    info = loaded.info
    activation_of(loaded.model, settings.layer)  # an unknown layer fails before any input is read
    images, paths = load_inputs(inputs, info.size, info.channels, reporter, limit=settings.limit)
    reporter.info(
        f"representing {len(images)} image(s) at layer {settings.layer!r}, seed {seed}"
    )
    models = _models(loaded, settings, seed)
    found = {
        name: _represent_all(model, name, images, paths, settings, seed, reporter)
        for name, model in models.items()
    }
    if out is not None:
        _draw(images, found, settings.compare, out)
    return RepresentResult(
        checkpoint=str(info.path), layer=settings.layer, steps=settings.steps, lr=settings.lr,
        loss_scale=settings.loss_scale, mu=settings.mu, seed=seed,
        results={name: [_figures(p, r) for p, r in zip(paths, found[name])] for name in models},
        out=str(out) if out else None,
    )  # fmt: skip


def _models(loaded: LoadedModel, settings: RepresentSettings,
            seed: int) -> dict[str, torch.nn.Module]:
    """The trained model, a freshly initialised one of its config (drawn from `seed`), or
    both, their weights frozen."""
    models: dict[str, torch.nn.Module] = {}
    if not settings.untrained or settings.compare:
        models["trained"] = loaded.model
    if settings.untrained or settings.compare:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = build_model(loaded.info.architecture, loaded.info.config)
            models["untrained"] = fresh.to(loaded.device)
    for model in models.values():
        for p in model.parameters():
            p.requires_grad_(False)
    return models


def _represent_all(model: torch.nn.Module, name: str, images: torch.Tensor, paths: list[str],
                   settings: RepresentSettings, seed: int,
                   reporter: Reporter) -> list[Representation]:
    found = []
    for index, image in enumerate(images):
        reporter.info(
            f"{name} model, {paths[index]}: {settings.steps} steps at layer {settings.layer!r}"
        )
        found.append(represent(
            model, image, layer=settings.layer, steps=settings.steps, lr=settings.lr,
            loss_scale=settings.loss_scale, mu=settings.mu, seed=seed + index,
            running_stats=settings.running_stats,
        ))  # fmt: skip
    return found


def _draw(images: torch.Tensor, found: dict[str, list[Representation]], compare: bool,
          out: str | os.PathLike) -> None:
    """Compare: rows of input, trained, untrained; else the representations alone."""
    columns = [images] + [torch.stack([r.x for r in reps]) for reps in found.values()]
    if compare:
        save_grid(torch.stack(columns, dim=1).flatten(0, 1), out, columns=len(columns))
    else:
        save_grid(columns[1], out)


def _figures(path: str, found: Representation) -> dict[str, Any]:
    return {"path": path, "loss": found.loss, "distance": found.distance, "losses": found.losses}
