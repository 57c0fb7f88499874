"""The `aegen` command line: thin Typer commands over the library functions.

Only typer and the plugin registry load at start-up; torch loads inside the commands that
need it, so `aegen --help` and `aegen plugins` stay fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from . import bounds, builtin_names
from .errors import MARKED, AegenError, UsageError
from .hardware import NOTABLE_FLAGS
from .launcher import env_rank, launched, stop_on_sigterm

# The library names its own parameters in errors (aegen/errors.py); these are the flags that
# set them where a flag is not "--" + the name with dashes. `main` swaps one for the other.
FLAGS = {
    "architecture": "--arch",
    "config": "--set",
    "objective_options": "--option",
    "options": "--option",
    "grid": "--out",
    "inputs": "--input",
    "kind": "--noise",
    "checkpoint": "-c/--checkpoint",
    "yes": "-y/--yes",
    "samples": "samples",  # `aegen eval`'s argument SAMPLES
    "samples_n": "--n",
}


def flag_of(parameter: str) -> str:
    """The command-line flag that sets a library parameter (as its help names it)."""
    return FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


def shell_message(exc: AegenError) -> str:
    """An error's message as a shell user reads it: each parameter it marks (`epochs`)
    becomes the flag that sets it (--epochs); a mark of anything else loses its backticks."""
    message = str(exc)
    for parameter in exc.parameters:
        message = message.replace(f"`{parameter}`", flag_of(parameter))
    return MARKED.sub(lambda found: found.group(1), message)


Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or logs on stderr.")]
Force = Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")]
Seed = Annotated[
    int | None, typer.Option("--seed", help="Seed for every random draw (random if omitted).")
]
Precision = Annotated[
    str,
    typer.Option(
        "--precision",
        help="auto, fp32, bf16 or fp16. auto runs the model the fastest way measured on this "
        "machine for this model and batch size (bf16 only where the CPU/GPU computes it "
        "natively and the model stays within tolerance of fp32); see: aegen info --device.",
    ),
]
MemoryFormat = Annotated[
    bool | None,
    typer.Option(
        "--channels-last/--contiguous",
        help="Memory format of the model's tensors. [default: what --precision auto measured "
        "faster]",
        show_default=False,
    ),
]
DataCache = Annotated[
    bool,
    typer.Option(
        "--cache/--no-cache",
        help="Decode the images once into the decoded cache and read batches from it (docs/"
        "data.md); --no-cache reads them into memory.",
    ),
]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers", min=1,
        help="Processes that decode images. [default: the CPUs, up to 8]",
        show_default=False,
    ),
]
Compile = Annotated[
    bool,
    typer.Option(
        "--compile", help="torch.compile the model: faster steps after a slow first one."
    ),
]


def _reporter(quiet: bool):
    from .console import Reporter

    return Reporter(quiet=quiet, names=flag_of)


def _emit(payload: Any, as_json: bool, lines: list[str]) -> None:
    """Results go to stdout: JSON, or plain lines (paths) that scripts can read. Under
    torchrun only rank 0 prints them, so they appear once."""
    if env_rank() != 0:
        return
    if as_json:
        print(json.dumps(payload, indent=2))
    else:
        from .console import printable

        for line in lines:  # a path may hold any character; --json gives it exactly
            print(printable(line))


def train_command(
    data: Annotated[
        Path, typer.Argument(metavar="DATA", help="Folder of images (searched recursively).")
    ],
    out: Annotated[
        str | None,  # str: Typer would turn '' into '.'
        typer.Option(
            "--out",
            "-o",
            help="Checkpoint to write. [default: model.safetensors, or the resumed file]",
        ),
    ] = None,
    arch: Annotated[
        str | None, typer.Option("--arch", help=f"Architecture. [default: {builtin_names.ARCHITECTURE}]")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Architecture config KEY=VALUE (repeatable), e.g. --set width=32."
        ),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option("--size", help="Resize and centre-crop images to SIZE x SIZE. [default: 64]"),
    ] = None,
    channels: Annotated[
        int | None,
        typer.Option("--channels", help="1 or 3. [default: 1 if every image is grey, else 3]"),
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs in total.")] = 20,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="[default: 16]")] = None,
    lr: Annotated[
        float | None, typer.Option("--lr", help="Adam learning rate. [default: 1e-4]")
    ] = None,
    lr_schedule: Annotated[
        str | None,
        typer.Option(
            "--lr-schedule",
            help="constant (the original article's) or cosine: from --lr down to 0 at the last epoch. "
            "[default: constant, or the resumed run's]",
        ),
    ] = None,
    ema: Annotated[
        float | None,
        typer.Option(
            "--ema",
            help="Save an exponential moving average of the weights as the model (decay per "
            "step, e.g. 0.999); the trained weights stay in the checkpoint for --resume.",
        ),
    ] = None,
    seed: Seed = None,
    device: Device = "auto",
    source: Annotated[
        str | None,
        typer.Option(
            "--source", help="Data source: folder, numpy, idx, ... [default: from the path]"
        ),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue the run saved in this checkpoint.")
    ] = None,
    objective: Annotated[
        str | None,
        typer.Option(
            "--objective",
            help="What the model sees: copy (the clean image, the original article's) or denoise (the "
            f"schedule sampler's noisy mix), or a plugin's. [default: {builtin_names.OBJECTIVE}]",
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", "-O", help="Objective option KEY=VALUE (repeatable), e.g. -O sigma=0.3."
        ),
    ] = None,
    sync_bn: Annotated[
        bool,
        typer.Option(
            "--sync-bn",
            help="Under torchrun: batch norm uses the statistics of every process's batch "
            "(docs/scaling.md). No effect in one process.",
        ),
    ] = False,
    flip: Annotated[
        bool | None,
        typer.Option(
            "--flip/--no-flip",
            help="Mirror a random half of each batch left to right (seeded; off in the original "
            "article). [default: off, or the resumed run's]",
        ),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            "--precision",
            help="auto, fp32, bf16 or fp16 for the forward pass (weights and optimizer stay "
            "fp32). [default: auto, or the resumed run's]",
        ),
    ] = None,
    compile_: Compile = False,
    channels_last: MemoryFormat = None,
    cache: DataCache = True,
    workers: Workers = None,
    force: Force = False,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Train an autoencoder to reproduce the images in DATA (MSE) and save a checkpoint.

    By default it copies its input (the original article's method); --objective denoise trains on the
    schedule sampler's own noisy inputs instead. A checkpoint is written after every epoch;
    --resume continues one. The images are decoded once into the decoded cache and read from it a
    batch at a time (docs/data.md). Under torchrun it trains data-parallel, one process per
    device (--batch-size is per process; docs/scaling.md).

    \b
    Examples:
      aegen train ./photos --arch unet --size 64 --epochs 20 --out model.safetensors
      aegen train ./photos --set width=32 --set depth=3 --seed 0
      aegen train ./photos --objective denoise -O mu=0.5 -O sigma=0.25
      aegen train ./photos --epochs 12 --lr 1e-3 --lr-schedule cosine --precision bf16
      aegen train ./photos --resume model.safetensors --epochs 40
      aegen train ./photos --flip --workers 4 --size 128
      torchrun --nproc-per-node 4 $(command -v aegen) train ./photos --sync-bn --epochs 40
    """
    from .options import parse_assignments
    from .settings import Runtime, TrainSettings
    from .training import train

    settings = TrainSettings(
        architecture=arch,
        config=parse_assignments(set_ or [], "--set"),
        size=size,
        channels=channels,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        lr_schedule=lr_schedule,
        ema=ema,
        seed=seed,
        source=source,
        objective=objective,
        objective_options=parse_assignments(option or [], "--option"),
        sync_bn=sync_bn,
        flip=flip,
    )
    runtime = Runtime(device, precision, compile_, channels_last)
    result = train(
        data,
        out if out is not None else resume or Path("model.safetensors"),
        settings,
        runtime=runtime,
        resume=resume,
        force=force,
        reporter=_reporter(quiet),
        cache=cache,
        workers=workers,
    )
    _emit(result.as_json(), as_json, [str(result.path)])


Option_ = Annotated[
    list[str] | None,
    typer.Option("--option", "-O", help="Sampler option KEY=VALUE (repeatable), e.g. -O mu=0.6."),
]
Checkpoint = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        "-c",
        help="Model checkpoint (.safetensors). [default: the "
        "shipped default model, Fashion-MNIST 32x32]",
    ),
]
SamplingSteps = Annotated[
    int | None,
    typer.Option("--steps", help="Sampling steps. [default: the sampler's own (aegen plugins "
                 "show NAME), else 100]"),
]
BatchSize = Annotated[
    int | None,
    typer.Option("--batch-size", help="Images per forward pass. [default: all of them]"),
]
RunningStats = Annotated[
    bool,
    typer.Option(
        "--running-stats",
        help="Batch norm on stored running statistics instead of the batch's (the original "
        "article uses the batch's).",
    ),
]
Frames = Annotated[
    Path | None, typer.Option("--frames", help="Write the grid of steps to this folder as PNGs.")
]
Every = Annotated[
    int | None,
    typer.Option("--every", help="With --frames: every K-th step (and the last). [default: 1]"),
]
Video = Annotated[
    Path | None,
    typer.Option("--video", help="Write every step as one frame of an MP4 (H.264) video."),
]
Gif = Annotated[Path | None, typer.Option("--gif", help="Write every step into an animated GIF.")]
Fps = Annotated[float, typer.Option("--fps", help="Frames per second of --video and --gif.")]
Scale = Annotated[
    int | None,
    typer.Option(
        "--scale",
        help="Nearest-neighbour upscaling of video frames. [default: 128 // image size, >= 1]",
    ),
]
OutDir = Annotated[Path | None, typer.Option("--out-dir", help="Also write each image here.")]
Name = Annotated[
    str, typer.Option("--name", help="File-name template for --out-dir: {seed}, {index}.")
]


def check_images_fit(checkpoint: Path | None, n: int) -> None:
    """Refuse `n` images that would not fit in memory, from the checkpoint's header, before
    torch loads (the library checks the same, later)."""
    from .defaults import resolve_checkpoint
    from .header import read_checkpoint_info

    if n >= 1:
        info = read_checkpoint_info(resolve_checkpoint(checkpoint))
        bounds.check_images_fit(n, info.channels, info.size)


def _options(option: list[str] | None, **named: Any) -> dict[str, Any]:
    from .options import parse_assignments

    options: dict[str, Any] = parse_assignments(option or [], "--option")
    options.update({k: v for k, v in named.items() if v is not None})
    return options


def generate_command(
    checkpoint: Checkpoint = None,
    sampler: Annotated[
        str, typer.Option("--sampler", help="Registered sampler.")
    ] = builtin_names.SAMPLER,
    schedule: Annotated[
        str | None,
        typer.Option(
            "--schedule",
            help="Schedule for samplers that take one; its options: -O schedule.KEY=VALUE.",
        ),
    ] = None,
    option: Option_ = None,
    steps: SamplingSteps = None,
    n: Annotated[int, typer.Option("--n", "-n", help="Number of images.")] = 16,
    batch_size: BatchSize = None,
    seed: Seed = None,
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            "-o",
            help="Grid PNG of the final images; {seed} is the first seed. "
            "[default: grid-{seed}.png unless --out-dir is given]",
        ),
    ] = None,
    out_dir: OutDir = None,
    name: Name = "{seed}.png",
    video: Video = None,
    gif: Gif = None,
    fps: Fps = 24.0,
    scale: Scale = None,
    frames: Frames = None,
    every: Every = None,
    running_stats: RunningStats = False,
    device: Device = "auto",
    precision: Precision = "auto",
    compile_: Compile = False,
    channels_last: MemoryFormat = None,
    force: Force = False,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Generate images by running a sampler, and write them as a grid and/or single files.

    \b
    Examples:
      aegen generate -c model.safetensors --schedule cosine --steps 200 --n 16 --seed 0 --out grid.png
      aegen generate -c model.safetensors --n 64 --batch-size 16 --out-dir samples --name "{index:03d}-{seed}.png"
      aegen generate -c model.safetensors --steps 200 --video denoising.mp4
      aegen generate -c model.safetensors --every 10 --frames steps/
      torchrun --nproc-per-node 2 $(command -v aegen) generate -c model.safetensors --n 256 --batch-size 32 --out-dir samples
    """
    bounds.check_template(out, "grid")  # before torch loads: a refusal is instant
    bounds.check_template(name, "name")
    check_images_fit(checkpoint, n)
    from .outputs import Outputs
    from .settings import Runtime, SamplingSettings
    from .tasks.generate import generate_files

    outputs = Outputs(
        grid=out,
        out_dir=out_dir,
        name=name,
        video=video,
        gif=gif,
        frames=frames,
        every=every,
        fps=fps,
        scale=scale,
        force=force,
    )
    settings = SamplingSettings(
        sampler=sampler,
        options=_options(option, schedule=schedule),
        steps=steps,
        n=n,
        batch_size=batch_size,
        seed=seed,
        running_stats=running_stats,
    )
    runtime = Runtime(device, precision, compile_, channels_last)
    result = generate_files(
        checkpoint, outputs, settings, runtime=runtime, reporter=_reporter(quiet)
    )
    _emit(result.as_json(), as_json, result.written + result.media)


def walk_command(
    checkpoint: Checkpoint = None,
    inputs: Annotated[
        list[Path] | None,
        typer.Option(
            "--input",
            "-i",
            help="Starting images: files or folders (repeatable; - reads paths from stdin). "
            "[default: made by the schedule sampler]",
        ),
    ] = None,
    noiseless: Annotated[
        bool,
        typer.Option(
            "--noiseless",
            help=f"Use the {builtin_names.NOISELESS_WALK_SAMPLER} sampler: g = D(E(g)).",
        ),
    ] = False,
    sampler: Annotated[
        str | None,
        typer.Option(
            "--sampler",
            help=f"Any registered sampler. [default: {builtin_names.WALK_SAMPLER}]",
        ),
    ] = None,
    eps: Annotated[
        float | None, typer.Option("--eps", help="Latent noise of `walk`. [default: 0.2]")
    ] = None,
    option: Option_ = None,
    steps: Annotated[
        int | None,
        typer.Option("--steps", help="Walk steps. [default: the sampler's own (aegen plugins "
                     "show NAME), else 300]"),
    ] = None,
    n: Annotated[int, typer.Option("--n", "-n", help="Number of chains.")] = 16,
    batch_size: BatchSize = None,
    seed: Seed = None,
    start_steps: Annotated[
        int,
        typer.Option("--start-steps", help="Schedule steps that make the start without --input."),
    ] = 100,
    out: Annotated[
        str | None, typer.Option("--out", "-o", help="Grid PNG of the last step.")
    ] = None,
    out_dir: OutDir = None,
    name: Name = "{seed}.png",
    video: Video = None,
    gif: Gif = None,
    fps: Fps = 24.0,
    scale: Scale = None,
    frames: Frames = None,
    every: Every = None,
    stats: Annotated[
        bool, typer.Option("--stats", help="Report per chain whether it keeps moving.")
    ] = False,
    tolerance: Annotated[
        float,
        typer.Option(
            "--tolerance",
            help="RMS per-pixel change below which a chain counts as at rest (--stats).",
        ),
    ] = 1e-3,
    running_stats: RunningStats = False,
    device: Device = "auto",
    precision: Precision = "auto",
    compile_: Compile = False,
    channels_last: MemoryFormat = None,
    force: Force = False,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Walk along the learned manifold from starting images, and watch it.

    \b
    Examples:
      aegen walk -c model.safetensors --input photos/ --n 16 --steps 300 --eps 0.2 --video walk.mp4
      aegen walk -c model.safetensors --noiseless --steps 300 --stats
      aegen walk -c model.safetensors --gif walk.gif --scale 4 --out last.png
    """
    bounds.check_template(out, "grid")  # before torch loads: a refusal is instant
    bounds.check_template(name, "name")
    check_images_fit(checkpoint, n)
    from .outputs import Outputs
    from .settings import Runtime
    from .tasks.walk import WalkSettings, walk_files

    noiseless_sampler = builtin_names.NOISELESS_WALK_SAMPLER
    if noiseless and sampler not in (None, noiseless_sampler):
        raise UsageError("--noiseless and --sampler name different samplers; give one")
    chosen = sampler or (noiseless_sampler if noiseless else builtin_names.WALK_SAMPLER)
    outputs = Outputs(
        grid=out,
        out_dir=out_dir,
        name=name,
        video=video,
        gif=gif,
        frames=frames,
        every=every,
        fps=fps,
        scale=scale,
        force=force,
    )
    if not (out or out_dir or video or gif or frames or stats):
        raise UsageError(
            "nothing to write: give --video, --gif, --out, --out-dir, --frames or --stats"
        )
    settings = WalkSettings(
        inputs=[str(p) for p in inputs or []],
        sampler=chosen,
        options=_options(option, eps=eps),
        steps=steps,
        n=n,
        batch_size=batch_size,
        seed=seed,
        start_steps=start_steps,
        stats=stats,
        tolerance=tolerance,
        running_stats=running_stats,
    )
    runtime = Runtime(device, precision, compile_, channels_last)
    result = walk_files(checkpoint, outputs, settings, runtime=runtime, reporter=_reporter(quiet))
    lines = result.written + result.media
    if result.stats and not as_json:
        lines += _stats_lines(result.stats)
    _emit(result.as_json(), as_json, lines)


def _stats_lines(stats: dict[str, Any]) -> list[str]:
    lines = ["chain  seed  mean change  final change  moving"]
    for c in stats["chains"]:
        lines.append(
            f"{c['index']:>5} {c['seed']:>5}  {c['mean_change']:>11.5f}  "
            f"{c['final_change']:>12.5f}  {'yes' if c['moving'] else 'no'}"
        )
    lines.append(
        f"moving: {stats['moving']}/{stats['total']} ({stats['share_moving']:.0%}); "
        f"criterion: {stats['criterion']}"
    )
    return lines


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{flag} expects numbers separated by commas, got {text!r}") from None


Inputs = Annotated[
    list[Path],
    typer.Option(
        "--input", "-i", help="Image files or folders (repeatable); - reads paths from stdin."
    ),
]


def denoise_command(
    checkpoint: Checkpoint = None,
    inputs: Inputs = ...,  # type: ignore[assignment]
    noise: Annotated[
        str, typer.Option("--noise", help="gaussian (the original article's), blur, or additive.")
    ] = "gaussian",
    alpha: Annotated[
        str,
        typer.Option(
            "--alpha",
            help="gaussian: a_hat = alpha*a + (1-alpha)*N(mu, sigma); several, comma-separated.",
        ),
    ] = "0.1,0.3,0.5,0.9",
    mu: Annotated[float, typer.Option("--mu", help="Mean of the gaussian noise.")] = 0.7,
    sigma: Annotated[
        float, typer.Option("--sigma", help="Std of the gaussian noise, or of additive noise.")
    ] = 0.2,
    kernel: Annotated[int, typer.Option("--kernel", help="blur: kernel size (odd).")] = 19,
    blur_sigma: Annotated[float, typer.Option("--blur-sigma", help="blur: its sigma.")] = 8.0,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Use at most this many images.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Grid PNG: rows a, then a_hat and O(a_hat) per setting."),
    ] = None,
    show: Annotated[int, typer.Option("--show", help="Images (columns) in --out.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the noise (image i: seed+i).")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per pass.")] = 16,
    running_stats: RunningStats = False,
    device: Device = "auto",
    precision: Precision = "auto",
    compile_: Compile = False,
    channels_last: MemoryFormat = None,
    force: Force = False,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Measure how well a model denoises: is O(a_hat) closer to a than a_hat was?

    \b
    Examples:
      aegen denoise -c model.safetensors --input photos/ --noise gaussian --alpha 0.1,0.3,0.5,0.9 --out denoise.png
      aegen denoise -c model.safetensors --input photos/ --noise blur --json
      aegen denoise -c model.safetensors --input photos/ --noise additive --sigma 0.1
    """
    from .denoising import Corruption
    from .settings import Runtime
    from .tasks.denoise import DenoiseSettings, denoise_files

    common = dict(kind=noise, mu=mu, sigma=sigma, kernel=kernel, blur_sigma=blur_sigma)
    if noise == "gaussian":
        corruptions = [Corruption(alpha=a, **common) for a in _floats(alpha, "--alpha")]
    else:
        corruptions = [Corruption(**common)]
    if not corruptions:
        raise UsageError("--alpha gave no values")
    settings = DenoiseSettings(
        corruptions=corruptions,
        limit=limit,
        show=show,
        seed=seed,
        batch_size=batch_size,
        running_stats=running_stats,
    )
    runtime = Runtime(device, precision, compile_, channels_last)
    result = denoise_files(
        checkpoint,
        list(inputs),
        settings,
        out=out,
        force=force,
        runtime=runtime,
        reporter=_reporter(quiet),
    )
    report = result.as_json()
    if as_json:
        _emit(report, True, [])
        return
    from rich.table import Table

    table = Table(
        title=f"denoising {report['images']} image(s): in dist = ||a_hat - a||, "
        "out dist = ||O(a_hat) - a||, closer = share with out < in",
    )
    for column in ("setting", "in dist", "out dist", "ratio", "PSNR in", "PSNR out", "closer"):
        table.add_column(column, justify="left" if column == "setting" else "right", no_wrap=True)
    for s in report["settings"]:
        table.add_row(
            s["name"],
            f"{s['mean_input_distance']:.3f}",
            f"{s['mean_output_distance']:.3f}",
            f"{s['mean_ratio']:.3f}",
            _db(s["mean_psnr_input"]),
            _db(s["mean_psnr_output"]),
            f"{s['share_closer']:.0%}",
        )
    _console().print(table)
    if report["grid"]:
        print(report["grid"])


def eval_command(
    samples: Annotated[
        Path | None,
        typer.Argument(
            metavar="SAMPLES",
            help="Generated images: a folder, an image file or a data source's file. "
            "[default: sample from -c, or the default model]",
        ),
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            "--reference",
            "-r",
            help="Real images to compare with: a folder or a data source's file. [default "
            "without -c and SAMPLES: the default model's own, Fashion-MNIST's test images at "
            "/usr/share/datasets/fashion-mnist]",
        ),
    ] = None,
    checkpoint: Checkpoint = None,
    sampler: Annotated[
        str, typer.Option("--sampler", help="Registered sampler.")
    ] = builtin_names.SAMPLER,
    schedule: Annotated[
        str | None,
        typer.Option(
            "--schedule",
            help="Schedule for samplers that take one; its options: -O schedule.KEY=VALUE.",
        ),
    ] = None,
    option: Option_ = None,
    steps: SamplingSteps = None,
    n: Annotated[
        int | None,
        typer.Option("--n", "-n", help="Images to sample; with SAMPLES, use the first N. "
                     "[default: 1000 sampled; all of SAMPLES]"),
    ] = None,
    batch_size: BatchSize = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the samples (image i: seed + i).")
    ] = 0,
    sweep: Annotated[
        list[str] | None,
        typer.Option(
            "--sweep",
            help="KEY=V1,V2,... (repeatable): evaluate every combination; KEY is steps, n, "
            "seed, batch-size, sampler, or a sampler option (schedule, mu, ...).",
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="With --sweep: PNG of FID against model evaluations. "
                     "[default: eval-sweep.png]"),
    ] = None,
    out: Annotated[
        str | None,
        typer.Option("--out", "-o", help="Also write a grid PNG of the samples."),
    ] = None,
    out_dir: OutDir = None,
    name: Name = "{seed}.png",
    size: Annotated[
        int | None,
        typer.Option(
            "--size",
            help="Compare at SIZE x SIZE (images resized and centre-cropped). [default: the "
            "samples' own size, which must be one, or the model's]",
        ),
    ] = None,
    reference_n: Annotated[
        int | None,
        typer.Option("--reference-n", help="Use the first N reference images. [default: all]"),
    ] = None,
    feature_batch: Annotated[
        int, typer.Option("--feature-batch", help="Images per Inception forward pass.")
    ] = 50,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            help="Extract the reference features (and, in a sweep, every setting) anew, and "
            "store nothing. Cache: $AEGEN_CACHE_DIR/eval, else ~/.cache/aegen/eval.",
        ),
    ] = False,
    running_stats: RunningStats = False,
    device: Device = "auto",
    precision: Precision = "auto",
    compile_: Compile = False,
    channels_last: MemoryFormat = None,
    force: Force = False,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Measure samples as the field does: FID, KID and precision/recall (k = 3) against real
    images, on Inception-v3 (2015-12-05) pool3 features, offline (docs/evaluation.md).

    Needs the eval extra: pip install 'aegen[eval]'.

    \b
    Examples:
      aegen eval samples/ --reference photos/
      aegen eval -c model.safetensors --reference photos/ -n 1000 --schedule cosine --steps 200
      aegen eval --reference-n 1000 -n 1000
      aegen eval -c model.safetensors --reference photos/ --sweep steps=10,25,50,100 --sweep schedule=linear,cosine
    """
    bounds.check_template(out, "grid")
    bounds.check_template(name, "name")
    from .evaluation import EvalSettings, evaluate
    from .evaluation.sweep import parse_sweeps
    from .evaluation.task import DEFAULT_N
    from .outputs import Outputs
    from .settings import Runtime, SamplingSettings

    if samples is not None and (out or out_dir):
        raise UsageError("--out and --out-dir write sampled images; SAMPLES are files already")
    settings = EvalSettings(
        reference=reference, samples=samples, size=size, reference_n=reference_n,
        sweeps=parse_sweeps(sweep or []), feature_batch=feature_batch, cache=not no_cache,
        plot=plot, force=force, samples_n=n if samples is not None else None,
    )
    sampling = SamplingSettings(
        sampler=sampler, options=_options(option, schedule=schedule), steps=steps,
        n=DEFAULT_N if n is None else n,
        batch_size=batch_size, seed=seed, running_stats=running_stats,
    )
    outputs = Outputs(grid=out, out_dir=out_dir, name=name, force=force) if out or out_dir else None
    result = evaluate(
        checkpoint, settings, sampling, outputs=outputs,
        runtime=Runtime(device, precision, compile_, channels_last), reporter=_reporter(quiet),
    )
    report = result.as_json()
    if as_json:
        _emit(report, True, [])
        return
    _console().print(_eval_table(report))
    for path in ([report["plot"]] if report["plot"] else []) + report["written"]:
        print(path)


def _eval_table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    ref = report["reference"]
    table = Table(
        title="FID, KID x 1000 (mean ± std over subsets), precision and recall (k = 3)",
        caption=f"against {ref['images']} reference image(s) of {ref['path']} at "
        f"{ref['size']}x{ref['size']}",
    )
    sweeping = any(row["setting"] for row in report["rows"])
    columns = (["setting", "evals/image"] if sweeping else []) + [
        "samples", "FID", "KID x 1000", "precision", "recall"]
    for column in columns:
        table.add_column(column, justify="left" if column == "setting" else "right", no_wrap=True)
    for row in report["rows"]:
        cells = [row["label"], f"{row['nfe_per_image']:g}"] if sweeping else []
        cells += [
            str(row["n"]), f"{row['fid']:.2f}",
            f"{row['kid_mean'] * 1000:.2f} ± {row['kid_std'] * 1000:.2f}",
            _share(row["precision"]), _share(row["recall"]),
        ]
        table.add_row(*cells)
    return table


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _db(value: float | None) -> str:
    return "inf" if value is None else f"{value:.2f} dB"


def represent_command(
    checkpoint: Checkpoint = None,
    inputs: Annotated[
        list[Path] | None,
        typer.Option(
            "--input", "-i", help="Image files or folders (repeatable); - reads paths from stdin."
        ),
    ] = None,
    layer: Annotated[
        str, typer.Option("--layer", help="encoder, output, or a module name (--list-layers).")
    ] = "output",
    steps: Annotated[int, typer.Option("--steps", help="Gradient steps.")] = 500,
    lr: Annotated[float, typer.Option("--lr", help="Step size: x -= lr * grad.")] = 0.1,
    loss_scale: Annotated[
        float, typer.Option("--loss-scale", help="k in the loss k * sum |A(a) - A(x)|.")
    ] = 0.01,
    mu: Annotated[float, typer.Option("--mu", help="Start: x0 = mu + N(0, 1)/20.")] = 0.7,
    seed: Seed = None,
    untrained: Annotated[
        bool,
        typer.Option(
            "--untrained",
            help="Use a freshly initialised model of the checkpoint's config instead.",
        ),
    ] = False,
    compare: Annotated[
        bool,
        typer.Option("--compare", help="Grid of input, trained and untrained representations."),
    ] = False,
    list_layers_: Annotated[
        bool, typer.Option("--list-layers", help="List the layers that can be chosen and exit.")
    ] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="PNG to write.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many images.")] = None,
    running_stats: RunningStats = False,
    device: Device = "auto",
    force: Force = False,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Find the input x a layer sees as the input a (gradient descent on x, L1 loss).

    \b
    Examples:
      aegen represent -c model.safetensors --input photo.png --layer encoder --steps 500 --out rep.png
      aegen represent -c model.safetensors --input photo.png --untrained --out rep-untrained.png
      aegen represent -c model.safetensors --input photo.png --compare --out compare.png
      aegen represent -c model.safetensors --list-layers
    """
    from .settings import Runtime
    from .tasks.represent import RepresentSettings, list_layers, represent_files

    if list_layers_:
        names = list_layers(checkpoint)
        _emit({"layers": names}, as_json, names)
        return
    if not inputs:
        raise UsageError("--input is required (or use --list-layers)")
    settings = RepresentSettings(
        layer=layer,
        steps=steps,
        lr=lr,
        loss_scale=loss_scale,
        mu=mu,
        seed=seed,
        untrained=untrained,
        compare=compare,
        limit=limit,
        running_stats=running_stats,
    )
    report = represent_files(
        checkpoint,
        list(inputs),
        settings,
        out=out,
        force=force,
        runtime=Runtime(device=device),
        reporter=_reporter(quiet),
    ).as_json()
    lines = [report["out"]] if report["out"] else []
    for name, results in report["results"].items():
        lines += [
            f"{name}: {r['path']}  loss {r['loss']:.4f}  ||x - a|| {r['distance']:.4f}"
            for r in results
        ]
    _emit(report, as_json, lines)


def install_command(
    target: Annotated[str, typer.Argument(metavar="PKG_OR_PATH", help="Package or folder.")],
    editable: Annotated[bool, typer.Option("--editable", "-e", help="Editable install.")] = False,
    upgrade: Annotated[bool, typer.Option("--upgrade", "-U", help="Upgrade if installed.")] = False,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Install a plugin into the environment aegen runs in (with its own pip).

    \b
    Examples:
      aegen install ./examples/aegen-restart
      aegen install -e ./my-plugin
      aegen install -U aegen-some-plugin
    """
    from .installer import install

    report = install(target, editable=editable, upgrade=upgrade, quiet=quiet)
    lines = [
        f"{p['name']} ({p['distribution']} {p['version']}): "
        + ", ".join(n for names in p["registered"].values() for n in names)
        for p in report["added"] + report["updated"]
    ]
    _emit(report, as_json, lines)


def uninstall_command(
    package: Annotated[str, typer.Argument(metavar="PKG", help="Distribution to remove.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Remove it even if it registers no aegen plugin."),
    ] = False,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Remove a plugin's distribution from the environment aegen runs in.

    Third-party plugins are not loaded for this command, so a broken one can always be removed.
    Without -y it asks first (and refuses when stdin is not a terminal).

    \b
    Example:
      aegen uninstall aegen-restart -y
    """
    from .installer import uninstall

    report = uninstall(package, yes=yes, force=force, quiet=quiet)
    _emit(report, as_json, [p["name"] for p in report["removed"]])


Verbose = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", help="Also each component's options: type, default, limits, help."
    ),
]


def plugins_command(
    ctx: typer.Context, verbose: Verbose = False, as_json: Json = False, quiet: Quiet = False
) -> None:
    """List installed plugins and what each registers; `show` and `new` below.

    AEGEN_LOAD_PLUGINS=a,b loads only those third-party plugins ('' loads none);
    AEGEN_STRICT_PLUGINS=1 makes a failing plugin, or one that breaks the contract, an error.

    \b
    Examples:
      aegen plugins
      aegen plugins --verbose --json
      aegen plugins show schedule
      aegen plugins new momentum --kind sampler
    """
    if ctx.invoked_subcommand is not None:
        return
    from .catalog import catalog, component_tables, summary_tables
    from .plugins import get_registry

    payload = catalog(get_registry(), verbose)
    if as_json:
        print(json.dumps(payload, indent=2))
        return
    tables = summary_tables(payload)
    if verbose:
        tables += component_tables(payload["components"])
    console = _console()
    for table in tables:
        console.print(table)


def plugins_show_command(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A component or plugin name.")],
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            help="Only components of this kind: sampler, schedule, architecture, objective, "
            "data_source.",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Show a component (or plugin) in full: how aegen calls it, its options and their help.

    \b
    Examples:
      aegen plugins show schedule
      aegen plugins show cosine --kind schedule --json
    """
    from .catalog import component_tables, show, summary_tables
    from .plugins import get_registry

    found = show(get_registry(), name, kind)
    if as_json:
        print(json.dumps(found, indent=2))
        return
    console = _console()
    if found["plugins"]:
        console.print(summary_tables({"plugins": found["plugins"], "components": []})[0])
    for table in component_tables(found["components"]):
        console.print(table)


def plugins_new_command(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The component's name, e.g. momentum.")
    ],
    kind: Annotated[
        str,
        typer.Option(
            "--kind", help="sampler, schedule, architecture, objective or source."
        ),
    ] = "sampler",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder to write aegen-NAME/ in. [default: .]"),
    ] = None,
    force: Force = False,
    as_json: Json = False,
) -> None:
    """Write a plugin package to start from: pyproject, the hook, an example, tests, README.

    \b
    Examples:
      aegen plugins new momentum --kind sampler
      aegen install -e ./aegen-momentum && aegen plugins show momentum
      cd aegen-momentum && python -m pytest -q
    """
    from .scaffold import new_plugin

    report = new_plugin(name, kind, dest=out, force=force)
    _emit(report, as_json, [report["path"]])


def info_command(
    checkpoint: Annotated[
        Path | None,
        typer.Argument(
            metavar="[CHECKPOINT]",
            help="Checkpoint (.safetensors). [default: the shipped default model]",
        ),
    ] = None,
    checkpoint_option: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            "-c",
            help="The checkpoint, given as the other commands take it (same as CHECKPOINT).",
        ),
    ] = None,
    device: Annotated[
        bool,
        typer.Option(
            "--device",
            help="Instead: this machine's device, and the fast path --precision auto picks "
            "for the checkpoint, and why.",
        ),
    ] = False,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            help="With --device: the batch size to choose for (generate's default is 16).",
        ),
    ] = 16,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Show a checkpoint's architecture, config, parameter count, image shape and provenance.

    Reads only the file's header: fast even for large models. With --device, loads the model
    and shows what --precision auto chooses for it on this machine, and why.

    \b
    Examples:
      aegen info model.safetensors
      aegen info -c model.safetensors --json
      aegen info --device            # the default model on this machine's fast path
      aegen info --device --batch-size 64
    """
    from .defaults import resolve_checkpoint
    from .header import read_checkpoint_info

    checkpoint = _one_checkpoint(checkpoint, checkpoint_option)

    if device:
        if batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
        _device_info(checkpoint, batch_size, as_json, quiet)
        return
    info = read_checkpoint_info(resolve_checkpoint(checkpoint, _reporter(quiet))).as_json()
    if as_json:
        print(json.dumps(info, indent=2))
        return
    image = info["image"]
    lines = [
        f"path          {info['path']}",
        f"architecture  {info['architecture']} (plugin {info['plugin']})",
        f"config        {json.dumps(info['config'], sort_keys=True)}",
        f"parameters    {info['parameters']:,}",
        f"image         {image['channels']} x {image['size']} x {image['size']}",
        f"objective     {_objective_text(info['objective'])}",
        f"resumable     {'yes' if info['resumable'] else 'no'}",
    ]
    lines += [f"{key:<14}{value}" for key, value in sorted(info["provenance"].items())]
    _print_lines(lines)


def _one_checkpoint(positional: Path | None, option: Path | None) -> Path | None:
    """`info CKPT` and `info -c CKPT` alike; both only when they name the same file."""
    if positional is not None and option is not None:
        if positional.resolve() != option.resolve():
            raise UsageError(
                f"CHECKPOINT {positional} and -c/--checkpoint {option} name different files; "
                "give one"
            )
    return positional if positional is not None else option


def _device_info(checkpoint: Path | None, batch_size: int, as_json: bool, quiet: bool) -> None:
    from .cache import cache_dir
    from .loading import load_model
    from .precision import describe
    from .settings import Runtime

    loaded = load_model(checkpoint, Runtime(device="auto"), _reporter(quiet), fast=False)
    report = describe(loaded.device, loaded.model, loaded.shape, batch_size)
    report["checkpoint"] = str(loaded.info.path)
    report["cache"] = str(cache_dir())
    if as_json:
        print(json.dumps(report, indent=2))
        return
    auto = report["auto"]
    flags = ", ".join(report["cpu_flags"]) or "none of " + ", ".join(NOTABLE_FLAGS)
    lines = [
        f"device        {report['device']} (torch {report['torch']}"
        + (f", {report['threads']} threads)" if report["threads"] else ")"),
        f"cpu           {report['cpu']} (flags: {flags})",
        f"native bf16   {'yes' if report['native_bf16'] else 'no'}: {report['why']}",
        f"checkpoint    {report['checkpoint']}",
    ]
    lines += [
        f"{name:<14}max |diff| vs fp32 {check['max_diff']:.4f} (tolerance {check['tolerance']})"
        for name, check in report.get("model", {}).items()
    ]
    lines.append(f"auto picks    {auto['reason'].removeprefix('auto: ')}")
    lines.append(f"measurements  {report['cache']} (delete it to measure again)")
    _print_lines(lines)


def _print_lines(lines: list[str]) -> None:
    """Lines for people on stdout, each one line whatever a checkpoint's strings hold."""
    from .console import printable

    print("\n".join(printable(line) for line in lines))


def _objective_text(objective: dict[str, Any]) -> str:
    options = objective.get("options") or {}
    shown = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
    return objective["name"] + (f" ({shown})" if shown else "")


def _console():
    """A rich console on stdout; wide enough for tables when stdout is a file or a pipe."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=120)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"aegen {__version__}")
        raise typer.Exit()


def data_inspect_command(
    data: Annotated[
        Path, typer.Argument(metavar="DATA", help="Folder of images, or a file a data source reads.")
    ],
    size: Annotated[
        int, typer.Option("--size", min=1, help="The training size whose cache state to show.")
    ] = 64,
    channels: Annotated[
        int | None,
        typer.Option("--channels", help="1 or 3, as given to aegen train. [default: auto]"),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--source", help="Data source. [default: from the path]"),
    ] = None,
    workers: Workers = None,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Say what DATA holds as aegen train would read it: how many images, how many cannot be
    read (and why), their sizes and modes, and whether the decoded cache holds them.

    \b
    Examples:
      aegen data inspect ./photos
      aegen data inspect ./photos --size 128 --json
      aegen data inspect train-images-idx3-ubyte.gz --size 32
    """
    from .inspection import inspect_data

    if channels not in (None, 1, 3):
        raise typer.BadParameter("must be 1 or 3", param_hint="--channels")
    reporter = _reporter(quiet)
    with reporter.task("reading images", total=None) as task:
        report = inspect_data(data, source, size, channels, workers, on_image=task.advance)
    _emit(report.as_json(), as_json, report.lines())


def build_app() -> typer.Typer:
    """The Typer app with the built-in commands and those plugins add."""
    app = typer.Typer(
        name="aegen",
        help="Generate images from autoencoders trained only to copy their input.",
        no_args_is_help=True,
        rich_markup_mode=None,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def _root(
        version: Annotated[
            bool,
            typer.Option(
                "--version", callback=_version, is_eager=True, help="Show the version and exit."
            ),
        ] = False,
    ) -> None:
        """Generate images from autoencoders trained only to copy their input."""

    app.command("train")(train_command)
    app.command("generate")(generate_command)
    app.command("walk")(walk_command)
    app.command("denoise")(denoise_command)
    app.command("eval")(eval_command)
    app.command("represent")(represent_command)
    app.command("install")(install_command)
    app.command("uninstall")(uninstall_command)
    plugins = typer.Typer(
        name="plugins", invoke_without_command=True, no_args_is_help=False,
        rich_markup_mode=None, add_completion=False,
    )
    plugins.callback()(plugins_command)
    plugins.command("show")(plugins_show_command)
    plugins.command("new")(plugins_new_command)
    app.add_typer(plugins)
    app.command("info")(info_command)
    data = typer.Typer(name="data", help="Inspect training data.", no_args_is_help=True,
                       rich_markup_mode=None, add_completion=False)
    data.command("inspect")(data_inspect_command)
    app.add_typer(data)
    from .plugins import get_registry

    get_registry().add_commands(app)
    return app


def build_command() -> Any:
    """The click command of `build_app()`, its help naming the installed samplers and
    schedules (plugins add them, so the help cannot say them in advance)."""
    from .plugins import get_registry

    registry = get_registry()
    command = typer.main.get_command(build_app())
    installed = {
        "sampler": ", ".join(sorted(registry.samplers)) or "none",
        "schedule": ", ".join(sorted(registry.schedules)) or "none",
    }
    for name in ("generate", "walk"):
        for param in getattr(command, "commands", {})[name].params:
            if param.name in installed and getattr(param, "help", None):
                param.help += f" Installed: {installed[param.name]}."
    return command


def _fail(message: str, code: int) -> None:
    """One line on stderr, whatever the message held, then exit. Under torchrun a usage error
    is said once, by rank 0: every rank meets the same one, so another rank first gives rank 0
    time to say it (torchrun stops the others when rank 0 exits); it speaks only if still
    running after that, i.e. if the error was its own."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if code == 2 and env_rank() != 0:
        import signal
        import time

        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        time.sleep(USAGE_GRACE_S)
    from .console import printable

    print(printable(lines[0]) if lines else "aegen: error", file=sys.stderr, flush=True)
    sys.exit(code)


USAGE_GRACE_S = 5.0


def _one_line(text: Any) -> str:
    from .console import printable

    return printable(str(text).strip())


DISTRIBUTED_COMMANDS = ("train", "generate", "walk")


def _click_kinds(exc: BaseException) -> set[str]:
    """Class names of a click exception: Typer may use click or its own vendored copy."""
    return {cls.__name__ for cls in type(exc).__mro__}


@contextlib.contextmanager
def _warnings_as_lines():
    """Python warnings (a library's: torch, PIL) said as `aegen: warning:` lines, one each,
    escaped, not as the raw two-line form with a source line; the known harmless ones not at
    all (HARMLESS_WARNINGS)."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        from .console import Reporter

        text = str(message).strip() or category.__name__
        Reporter(stream=file).warn(_warning_text(category, text))

    before = warnings.showwarning
    warnings.showwarning = show
    with warnings.catch_warnings():
        for pattern, category in HARMLESS_WARNINGS:
            warnings.filterwarnings("ignore", pattern, category)
        try:
            yield
        finally:
            warnings.showwarning = before


# Warnings a run meets where nothing is wrong and the user can do nothing: (message regex, class).
HARMLESS_WARNINGS: list[tuple[str, type[Warning]]] = []


def _warning_text(category: type[Warning], text: str) -> str:
    """What a library's warning says, for a user of aegen."""
    if category.__name__ == "DecompressionBombWarning":  # PIL: an image of many pixels
        return f"{text.rstrip('.')}; it is read anyway (PIL refuses twice that size)"
    return f"{text} ({category.__name__})"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `aegen` script: one line on stderr and an exit code for every error."""
    with _warnings_as_lines():
        _main(sys.argv[1:] if argv is None else argv)


def _main(args: list[str]) -> None:
    if args[:1] in (["install"], ["uninstall"]) and "AEGEN_LOAD_PLUGINS" not in os.environ:
        # Never let a broken third-party plugin stand in the way of (un)installing it.
        os.environ["AEGEN_LOAD_PLUGINS"] = ""
    try:
        command = next((a for a in args if not a.startswith("-")), None)
        if launched() and command not in (None, *DISTRIBUTED_COMMANDS):
            raise UsageError(
                f"`aegen {command or ''}` does not run under torchrun; only "
                + ", ".join(DISTRIBUTED_COMMANDS)
                + " do"
            )
        command = build_command()
        with stop_on_sigterm():
            code = command.main(args=args, prog_name="aegen", standalone_mode=False)
    except AegenError as exc:  # all of it on one line: a name in it may hold a newline
        _fail(f"aegen: error: {_one_line(shell_message(exc))}", exc.exit_code)
    except KeyboardInterrupt:
        _fail("aegen: interrupted", 130)
    except MemoryError:
        _fail("aegen: error: out of memory: ask for fewer or smaller images, or a smaller "
              "batch size", 1)
    except OSError as exc:  # a file that cannot be read or written: the user's to fix
        where = f"{_one_line(exc.filename)}: " if getattr(exc, "filename", None) else ""
        _fail(f"aegen: error: {where}{exc.strerror or exc}", 1)
    except Exception as exc:
        kinds = _click_kinds(exc)
        ctx = getattr(exc, "ctx", None)
        if "NoArgsIsHelpError" in kinds:  # the help is already shown
            sys.exit(2)
        if "UsageError" in kinds:
            where = ctx.command_path if ctx else "aegen"
            _fail(f"{where}: error: {exc.format_message()} (see `{where} --help`)", 2)
        if "ClickException" in kinds:
            _fail(f"aegen: error: {exc.format_message()}", getattr(exc, "exit_code", 1))
        if "Abort" in kinds:
            _fail("aegen: interrupted", 130)
        # A bug, not a user error: say so; the traceback on request.
        if os.environ.get("AEGEN_DEBUG"):
            traceback.print_exc()
        _fail(
            f"aegen: internal error: {type(exc).__name__}: {exc} "
            "(set AEGEN_DEBUG=1 for a traceback; please report it)",
            1,
        )
    if code == 130:  # Typer turns a KeyboardInterrupt inside a command into exit 130
        _fail("aegen: interrupted", 130)
    sys.exit(code if isinstance(code, int) else 0)
