"""The `aegen` command line: thin Typer commands over the library functions.

Only typer and the plugin registry load at start-up; torch loads inside the commands that
need it, so `aegen --help` and `aegen plugins` stay fast.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer

from .errors import AegenError, UsageError

Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or logs on stderr.")]
Force = Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")]
Seed = Annotated[
    int | None, typer.Option("--seed", help="Seed for every random draw (random if omitted).")
]


def _reporter(quiet: bool):
    from .console import Reporter

    return Reporter(quiet=quiet)


def _emit(payload: Any, as_json: bool, lines: list[str]) -> None:
    """Results go to stdout: JSON, or plain lines (paths) that scripts can read."""
    if as_json:
        print(json.dumps(payload, indent=2))
    else:
        for line in lines:
            print(line)


def _random_seed() -> int:
    import random

    return random.randrange(2**31)


def train_command(
    data: Annotated[
        Path, typer.Argument(metavar="DATA", help="Folder of images (searched recursively).")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Checkpoint to write. [default: model.safetensors, or the resumed file]",
        ),
    ] = None,
    arch: Annotated[
        str | None, typer.Option("--arch", help="Architecture. [default: unet]")
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
    seed: Seed = None,
    device: Device = "auto",
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue the run saved in this checkpoint.")
    ] = None,
    force: Force = False,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Train an autoencoder to copy the images in DATA (plain MSE) and save a checkpoint.

    A checkpoint is written after every epoch; --resume continues one.

    \b
    Examples:
      aegen train ./photos --arch unet --size 64 --epochs 20 --out model.safetensors
      aegen train ./photos --set width=32 --set depth=3 --seed 0
      aegen train ./photos --resume model.safetensors --epochs 40
    """
    from .options import parse_assignments
    from .training import train

    if channels is not None and channels not in (1, 3):
        raise UsageError(f"--channels must be 1 or 3, not {channels}")
    result = train(
        data,
        out or resume or Path("model.safetensors"),
        architecture=arch,
        config=parse_assignments(set_ or [], "--set"),
        size=size,
        channels=channels,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        resume=resume,
        force=force,
        reporter=_reporter(quiet),
    )
    _emit(result.as_json(), as_json, [str(result.path)])


def _load_model(checkpoint: Path | None, device: str, reporter):
    from .checkpoint import load_checkpoint
    from .devices import pick_device

    if checkpoint is None:
        raise UsageError("no checkpoint given: pass one with -c/--checkpoint")
    dev = pick_device(device)
    loaded = load_checkpoint(checkpoint, dev)
    reporter.info(
        f"loaded {checkpoint} ({loaded.info.architecture}, {loaded.info.channels}x"
        f"{loaded.info.size}x{loaded.info.size}) on {dev.type}"
    )
    return loaded, dev


def _expand(template: str, what: str, **fields: Any) -> str:
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        names = ", ".join("{" + k + "}" for k in fields)
        raise UsageError(f"{what} {template!r} is not a valid template ({names}): {exc}") from None


def generate_command(
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", "-c", help="Model checkpoint (.safetensors).")
    ] = None,
    sampler: Annotated[str, typer.Option("--sampler", help="Registered sampler.")] = "schedule",
    schedule: Annotated[
        str | None,
        typer.Option(
            "--schedule", help="Schedule for samplers that take one (linear, cosine, ...)."
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", "-O", help="Sampler option KEY=VALUE (repeatable), e.g. -O mu=0.6."
        ),
    ] = None,
    steps: Annotated[int, typer.Option("--steps", help="Sampling steps.")] = 100,
    n: Annotated[int, typer.Option("--n", "-n", help="Number of images.")] = 16,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", help="Images per forward pass. [default: all of them]"),
    ] = None,
    seed: Seed = None,
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            "-o",
            help="Grid PNG of all images; {seed} is the first seed. "
            "[default: grid-{seed}.png unless --out-dir is given]",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", help="Also write each image to this folder.")
    ] = None,
    name: Annotated[
        str, typer.Option("--name", help="File-name template for --out-dir: {seed}, {index}.")
    ] = "{seed}.png",
    frames: Annotated[
        Path | None,
        typer.Option("--frames", help="Write the grid of intermediate steps to this folder."),
    ] = None,
    every: Annotated[
        int | None,
        typer.Option("--every", help="With --frames: every K-th step (and the last). [default: 1]"),
    ] = None,
    running_stats: Annotated[
        bool,
        typer.Option(
            "--running-stats",
            help="Batch norm on stored running statistics instead of the "
            "batch's (the seed uses the batch's).",
        ),
    ] = False,
    device: Device = "auto",
    force: Force = False,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Generate images by running a sampler, and write them as a grid and/or single files.

    \b
    Examples:
      aegen generate -c model.safetensors --schedule cosine --steps 200 --n 16 --seed 0 --out grid.png
      aegen generate -c model.safetensors --n 64 --batch-size 16 --out-dir samples --name "{index:03d}-{seed}.png"
      aegen generate -c model.safetensors --every 10 --frames steps/
    """
    from .options import parse_assignments

    options: dict[str, Any] = parse_assignments(option or [], "--option")
    if schedule is not None:
        options["schedule"] = schedule
    if every is not None and frames is None:
        raise UsageError("--every needs --frames DIR")
    if every is not None and every < 1:
        raise UsageError(f"--every must be at least 1, got {every}")
    for flag, value in (("--n", n), ("--steps", steps), ("--batch-size", batch_size or n)):
        if value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    seed = _random_seed() if seed is None else seed
    seeds = [seed + i for i in range(n)]
    if out is None and out_dir is None:
        out = "grid-{seed}.png"
    grid = Path(_expand(out, "--out", seed=seed)) if out else None
    singles: list[Path] = []
    if out_dir is not None:
        singles = [out_dir / _expand(name, "--name", seed=s, index=i) for i, s in enumerate(seeds)]
        if len(set(singles)) < len(singles):
            raise UsageError(
                f"--name {name!r} gives several images one file name; use {{seed}} or {{index}}"
            )
    frame_paths = _frame_paths(frames, steps, every or 1)
    from .files import refuse_overwrite

    refuse_overwrite([*([grid] if grid else []), *singles, *frame_paths.values()], force)

    reporter = _reporter(quiet)
    loaded, dev = _load_model(checkpoint, device, reporter)
    from .media import save_grid, save_images
    from .sampling import generate

    def write_frame(step: int, frame) -> None:
        if step in frame_paths:
            save_grid(frame, frame_paths[step])

    info = loaded.info
    reporter.info(
        f"sampling {n} image(s) with {sampler!r}, {steps} steps, seeds {seed}..{seeds[-1]}"
    )
    result = generate(
        loaded.model,
        sampler,
        shape=(info.channels, info.size, info.size),
        n=n,
        steps=steps,
        seed=seed,
        batch_size=batch_size,
        options=options,
        device=dev,
        running_stats=running_stats,
        on_frame=write_frame if frames else None,
        reporter=reporter,
    )
    written: list[str] = []
    if grid is not None:
        written.append(str(save_grid(result.images, grid)))
    written += [str(p) for p in save_images(result.images, singles)]
    payload = {
        "checkpoint": str(checkpoint),
        "sampler": sampler,
        "options": result.options,
        "steps": steps,
        "n": n,
        "batch_size": batch_size or n,
        "seed": seed,
        "seeds": result.seeds,
        "device": dev.type,
        "grid": str(grid) if grid else None,
        "images": [
            {"index": i, "seed": s, "path": str(p) if singles else None}
            for i, (s, p) in enumerate(zip(seeds, singles or [None] * n))
        ],
        "frames": [str(p) for p in frame_paths.values()],
    }
    _emit(payload, as_json, written)


def _frame_paths(folder: Path | None, steps: int, every: int) -> dict[int, Path]:
    if folder is None:
        return {}
    chosen = [s for s in range(1, steps + 1) if s % every == 0 or s == steps]
    return {s: folder / f"step-{s:04d}.png" for s in chosen}


def plugins_command(as_json: Json = False) -> None:
    """List installed plugins and what each registers.

    AEGEN_LOAD_PLUGINS=a,b loads only those third-party plugins ('' loads none);
    AEGEN_STRICT_PLUGINS=1 makes a failing plugin an error.
    """
    from .plugins import KINDS, get_registry

    registry = get_registry()
    components = [
        {"kind": kind[:-1], "name": name, "plugin": entry.plugin, "description": entry.description}
        for kind in KINDS
        for name, entry in sorted(getattr(registry, kind).items())
    ]
    if as_json:
        print(
            json.dumps(
                {"plugins": [p.as_json() for p in registry.plugins], "components": components},
                indent=2,
            )
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Plugins")
    for column in ("plugin", "distribution", "version", "status", "registers"):
        table.add_column(column)
    for p in registry.plugins:
        names = ", ".join(n for names in p.registered.values() for n in names)
        status = p.status if not p.error else f"{p.status}: {p.error}"
        table.add_row(p.name, p.distribution, p.version, status, names)
    parts = Table(title="Components")
    for column in ("kind", "name", "plugin", "description"):
        parts.add_column(column)
    for c in components:
        parts.add_row(c["kind"], c["name"], c["plugin"], c["description"])
    console = Console()
    console.print(table)
    console.print(parts)


def info_command(
    checkpoint: Annotated[
        Path, typer.Argument(metavar="CHECKPOINT", help="Checkpoint (.safetensors).")
    ],
    as_json: Json = False,
) -> None:
    """Show a checkpoint's architecture, config, parameter count, image shape and provenance.

    Reads only the file's header: fast even for large models.
    """
    from .checkpoint import read_checkpoint_info

    info = read_checkpoint_info(checkpoint).as_json()
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
        f"resumable     {'yes' if info['resumable'] else 'no'}",
    ]
    lines += [f"{key:<14}{value}" for key, value in sorted(info["provenance"].items())]
    print("\n".join(lines))


def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"aegen {__version__}")
        raise typer.Exit()


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
    app.command("plugins")(plugins_command)
    app.command("info")(info_command)
    from .plugins import get_registry

    get_registry().add_commands(app)
    return app


def _fail(message: str, code: int) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)


def _click_kinds(exc: BaseException) -> set[str]:
    """Class names of a click exception: Typer may use click or its own vendored copy."""
    return {cls.__name__ for cls in type(exc).__mro__}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `aegen` script: one line on stderr and an exit code for every error."""
    try:
        app = build_app()
        code = app(args=argv, prog_name="aegen", standalone_mode=False)
    except AegenError as exc:
        _fail(f"aegen: error: {exc}", exc.exit_code)
    except KeyboardInterrupt:
        _fail("aegen: interrupted", 130)
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
    sys.exit(code if isinstance(code, int) else 0)
