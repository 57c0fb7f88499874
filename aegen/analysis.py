"""What `aegen denoise` and `aegen represent` do, as functions that end in files and reports."""

from __future__ import annotations

import os
import random
from typing import Any

import torch

from .console import Reporter
from .data import load_inputs
from .denoising import Corruption, measure_denoising
from .errors import UsageError
from .files import refuse_overwrite
from .media import save_grid
from .representation import layer_names, represent
from .runs import fast_model, load_model


def denoise_files(
    checkpoint: str | os.PathLike | None,
    inputs: list[str | os.PathLike],
    corruptions: list[Corruption],
    *,
    limit: int | None = None,
    out: str | os.PathLike | None = None,
    show: int = 8,
    seed: int = 0,
    batch_size: int = 16,
    device: str = "auto",
    running_stats: bool = False,
    precision: str = "auto",
    compile: bool = False,
    channels_last: bool | None = None,
    force: bool = False,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Measure how much the model denoises each input under each corruption (on the fast path
    that `precision` and `compile` choose, as for `generate_files`)."""
    reporter = reporter or Reporter(quiet=True)
    for corruption in corruptions:
        corruption.check()
    if batch_size < 1 or show < 1 or (limit is not None and limit < 1):
        raise UsageError("--batch-size, --show and --limit must be at least 1")
    if out is not None:
        refuse_overwrite([out], force)
    loaded, dev = load_model(checkpoint, device, reporter)
    model, fast = fast_model(
        loaded, dev, precision, compile, running_stats, reporter, channels_last=channels_last,
        batch_size=batch_size,
    )
    info = loaded.info
    images, paths = load_inputs(inputs, info.size, info.channels, reporter, limit=limit)
    reporter.info(f"denoising {len(images)} image(s) under {len(corruptions)} setting(s)")
    results = measure_denoising(
        model,
        images,
        corruptions,
        seed=seed,
        batch_size=batch_size,
        device=dev,
        running_stats=running_stats,
    )
    if out is not None:
        k = min(show, len(images))
        rows = [images[:k]] + [t[:k] for r in results for t in (r.corrupted, r.outputs)]
        save_grid(torch.cat(rows), out, columns=k)
    settings = []
    for result in results:
        summary = result.summary()
        summary["per_image"] = [
            {
                "path": p,
                "input_distance": i,
                "output_distance": o,
                "ratio": r,
                "psnr_input": pi,
                "psnr_output": po,
                "closer": c,
            }
            for p, i, o, r, pi, po, c in zip(
                paths,
                result.input_distance,
                result.output_distance,
                result.ratios,
                result.psnr_input,
                result.psnr_output,
                result.closer,
            )
        ]
        settings.append(summary)
    return {
        "checkpoint": str(loaded.info.path),
        "images": len(images),
        "seed": seed,
        "fast_path": fast.as_json(),
        "settings": settings,
        "grid": str(out) if out else None,
    }


def list_layers(checkpoint: str | os.PathLike | None) -> list[str]:
    loaded, _ = load_model(checkpoint, "cpu", Reporter(quiet=True))
    return layer_names(loaded.model)


def represent_files(
    checkpoint: str | os.PathLike | None,
    inputs: list[str | os.PathLike],
    *,
    layer: str = "output",
    steps: int = 500,
    lr: float = 0.1,
    loss_scale: float = 0.01,
    mu: float = 0.7,
    seed: int | None = None,
    untrained: bool = False,
    compare: bool = False,
    out: str | os.PathLike | None = None,
    limit: int | None = None,
    device: str = "auto",
    running_stats: bool = False,
    force: bool = False,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Find each input's representation at `layer` in the trained model (or an untrained one
    of the same config, or both with `compare`), and write them as a grid."""
    from .models import build_model

    reporter = reporter or Reporter(quiet=True)
    seed = random.randrange(2**31) if seed is None else seed
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    if out is not None:
        refuse_overwrite([out], force)
    loaded, dev = load_model(checkpoint, device, reporter)
    info = loaded.info
    if layer not in layer_names(loaded.model):
        raise UsageError(f"no layer {layer!r} in this model; see --list-layers")
    images, paths = load_inputs(inputs, info.size, info.channels, reporter, limit=limit)
    reporter.info(f"representing {len(images)} image(s) at layer {layer!r}, seed {seed}")
    models: dict[str, torch.nn.Module] = {}
    if not untrained or compare:
        models["trained"] = loaded.model
    if untrained or compare:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            models["untrained"] = build_model(info.architecture, info.config).to(dev)
    found: dict[str, list] = {name: [] for name in models}
    for name, model in models.items():
        for p in model.parameters():
            p.requires_grad_(False)
        for index, image in enumerate(images):
            reporter.info(f"{name} model, {paths[index]}: {steps} steps at layer {layer!r}")
            found[name].append(
                represent(
                    model,
                    image,
                    layer=layer,
                    steps=steps,
                    lr=lr,
                    loss_scale=loss_scale,
                    mu=mu,
                    seed=seed + index,
                    running_stats=running_stats,
                )
            )
    if out is not None:
        columns = [images] + [torch.stack([r.x for r in found[n]]) for n in models]
        if compare:
            grid = torch.stack(columns, dim=1).flatten(0, 1)
            save_grid(grid, out, columns=len(columns))
        else:
            save_grid(columns[1], out)
    return {
        "checkpoint": str(loaded.info.path),
        "layer": layer,
        "steps": steps,
        "lr": lr,
        "loss_scale": loss_scale,
        "mu": mu,
        "seed": seed,
        "results": {
            name: [
                {"path": p, "loss": r.loss, "distance": r.distance, "losses": r.losses}
                for p, r in zip(paths, found[name])
            ]
            for name in models
        },
        "out": str(out) if out else None,
    }
