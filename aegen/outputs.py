"""The files a sampling run writes: asked for (`Outputs`), planned and checked (`plan`), written
(`write_images`).

Every output path is worked out and checked before the model is loaded, so a name clash or an
existing file is reported at once. Under torchrun each rank writes its own single images and
rank 0 the grid, from every rank's images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import distributed
from .bounds import check_template
from .errors import UsageError
from .files import refuse_overwrite
from .media import save_grid, save_images
from .recording import Recorder


@dataclass(frozen=True)
class Outputs:
    """Where a run writes: a final grid, single images, a video, a GIF, frame PNGs."""

    grid: str | None = None  # may hold {seed}
    out_dir: Path | None = None
    name: str = "{seed}.png"
    video: Path | None = None
    gif: Path | None = None
    frames: Path | None = None
    every: int | None = None
    fps: float = 24.0
    scale: int | None = None
    force: bool = False


@dataclass(frozen=True)
class Plan:
    """The checked paths of one run, and the recorder that writes its frames."""

    grid: Path | None
    singles: list[Path]
    recorder: Recorder

    @property
    def paths(self) -> list[str]:
        """The grid and the single images, as the report lists them."""
        return ([str(self.grid)] if self.grid else []) + [str(p) for p in self.singles]


def expand(template: str, parameter: str, **fields: Any) -> str:
    """`template` with `fields` filled in; a bad template is a usage error naming `parameter`."""
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
        names = ", ".join("{" + k + "}" for k in fields)
        raise UsageError(
            f"`{parameter}` {template!r} is not a valid template ({names}): {exc}",
            parameters=[parameter],
        ) from None


def check(outputs: Outputs) -> None:
    """Refuse settings no recorder can use, before any path is worked out."""
    if outputs.grid is not None and not str(outputs.grid).strip():
        raise UsageError("`grid` must name a file, got ''", parameters=["grid"])
    check_template(outputs.grid, "grid")
    check_template(outputs.name, "name")
    if not (0 < outputs.fps < 1000):
        raise UsageError(f"`fps` must be between 0 and 1000, got {outputs.fps}", parameters=["fps"])
    if outputs.every is not None and outputs.frames is None:
        raise UsageError("`every` needs `frames` DIR", parameters=["every", "frames"])
    if outputs.every is not None and outputs.every < 1:
        raise UsageError(f"`every` must be at least 1, got {outputs.every}", parameters=["every"])
    if outputs.scale is not None and outputs.scale < 1:
        raise UsageError(f"`scale` must be at least 1, got {outputs.scale}", parameters=["scale"])
    for name, path, suffix in (("video", outputs.video, ".mp4"), ("gif", outputs.gif, ".gif")):
        if path is not None and Path(path).suffix.lower() != suffix:
            raise UsageError(f"`{name}` writes {suffix} files; got {path}", parameters=[name])


def inside(name: str) -> str:
    """An expanded `name`, refused if it would leave `out_dir` (absolute, or through ..)."""
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts or name.endswith(("/", os.sep)):
        raise UsageError(
            f"`name` must give a file name inside `out_dir` (no absolute path, no ..), got "
            f"{name!r}", parameters=["name", "out_dir"],
        )
    return name


def _singles(outputs: Outputs, seeds: Sequence[int]) -> list[Path]:
    if outputs.out_dir is None:
        return []
    singles = [
        Path(outputs.out_dir) / inside(expand(outputs.name, "name", seed=s, index=i))
        for i, s in enumerate(seeds)
    ]
    if len(set(singles)) < len(singles):
        raise UsageError(
            f"`name` {outputs.name!r} gives several images one file name; use {{seed}} or "
            "{index}",
            parameters=["name"],
        )
    return singles


def plan(outputs: Outputs, seeds: Sequence[int], steps: int, size: int) -> Plan:
    """Every path the run will write, checked: templates filled in, no path twice, and none
    that exists unless `outputs.force`."""
    check(outputs)
    grid = Path(expand(outputs.grid, "grid", seed=seeds[0])) if outputs.grid else None
    singles = _singles(outputs, seeds)
    recorder = Recorder(
        steps=steps,
        count=len(seeds),
        size=size,
        video=outputs.video,
        gif=outputs.gif,
        frames=outputs.frames,
        every=outputs.every or 1,
        fps=outputs.fps,
        scale=outputs.scale,
    )
    planned = [*([grid] if grid else []), *singles, *recorder.planned()]
    seen: set[Path] = set()
    for path in planned:
        if path in seen:
            raise UsageError(f"{path} would be written twice: give the outputs different names")
        seen.add(path)
    refuse_overwrite(planned, outputs.force)
    return Plan(grid, singles, recorder)


def write_images(plan: Plan, images: Any, mine: Sequence[int], n: int) -> list[str]:
    """Write the grid (rank 0, from every rank's images) and this rank's single images
    (`images` are rows `mine` of the run's `n`); return every path the run wrote, once all
    ranks are done."""
    ctx = distributed.current()
    if plan.grid:
        every = ctx.gather(images, mine, n)
        if ctx.main:
            save_grid(every, plan.grid)
    save_images(images, [plan.singles[i] for i in mine] if plan.singles else [])
    ctx.barrier()  # report only what is on disk, and fail here if another rank failed
    return plan.paths
