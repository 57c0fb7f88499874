"""Decoding image files to uint8 pixels at the training size, in this process or in several.

One image at a time is all a worker holds: `decode_files` yields each file's pixels in the
order given, so whoever consumes them (a tensor in memory, or the decoded cache on disk) keeps
only what it keeps. The workers are started with forkserver (spawn where there is none), never
by forking a process whose torch threads are running, and only for enough files to repay
starting them. This module imports PIL and NumPy alone, so a worker starts in a fraction of a
second; its resize and crop are torchvision's for PIL images (`F.resize(img, size)` then
`F.center_crop`), pixel for pixel (tests/test_data_cache.py).
"""

from __future__ import annotations

import contextvars
import importlib.machinery
import multiprocessing
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
SPECIAL = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
           (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
           (stat.S_ISSOCK, "a socket"))
UNREADABLE = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)
CHUNK = 32  # files a worker decodes per task: few round trips, little held at once
MOST_WORKERS = 8
_asked: contextvars.ContextVar[int | None] = contextvars.ContextVar("aegen_workers", default=None)


@dataclass(frozen=True)
class Decoded:
    """One file's outcome: its (3, size, size) uint8 pixels and whether it was grey, or why it
    could not be read."""

    pixels: np.ndarray | None
    grey: bool = False
    reason: str = ""


@contextmanager
def decoding_workers(workers: int | None) -> Iterator[None]:
    """Within this block `decode_files` (and so a data source's `load_images`) uses `workers`
    processes unless told otherwise (None: `default_workers`)."""
    token = _asked.set(workers)
    try:
        yield
    finally:
        _asked.reset(token)


def default_workers() -> int:
    """Processes that decode: as `decoding_workers` says, else this machine's CPUs (as this
    process may use them), up to 8."""
    if _asked.get() is not None:
        return max(1, _asked.get())
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MOST_WORKERS))


def amount(n: int) -> str:
    """Bytes as a person reads them: 1.5 GiB."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def decode_image(path: Path, size: int, budget: int) -> tuple[np.ndarray, bool]:
    """One image file as uint8 (3, size, size) pixels (shorter side resized to `size`, centre
    crop), and whether it was grey. OSError for a path that is not a regular file (a FIFO would
    block the open), ValueError for an image whose decoding would take more than `budget`
    bytes (PIL keeps 4 bytes a pixel, decoded and again converted to RGB), known from its
    header before any pixel is decoded."""
    _refuse_special(path)
    with Image.open(path) as img:
        needed = 8 * img.width * img.height
        if needed > budget:
            raise ValueError(f"decoding its {img.width} x {img.height} pixels would take "
                             f"{amount(needed)}, more than the data budget of {amount(budget)} "
                             "(set AEGEN_DATA_BUDGET to change it)")
        img.load()
        grey = img.mode in GREY_MODES
        rgb = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(fit_square(rgb, size)).transpose(2, 0, 1)), grey


def _refuse_special(path: Path) -> None:
    """OSError, from os.stat alone, for a path that is not a regular file."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in SPECIAL if test(mode)), "a special file")
        raise OSError(f"{kind}, not an image file")


def fit_square(img: Image.Image, size: int) -> Image.Image:
    """The shorter side resized to `size` (bilinear, PIL's antialiasing), the longer in
    proportion (rounded down), then a centred `size` x `size` crop: torchvision's
    `F.center_crop(F.resize(img, size), size)` for a PIL image, without importing torch."""
    width, height = img.size
    short, long = (width, height) if width <= height else (height, width)
    if short != size:
        long = int(size * long / short)
        new = (size, long) if width <= height else (long, size)
        img = img.resize(new, Image.BILINEAR)
    width, height = img.size
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def decode_or_say_why(path: Path, size: int, budget: int) -> Decoded:
    """`decode_image`, with a failure as its first line instead of an exception."""
    try:
        pixels, grey = decode_image(Path(path), size, budget)
    except UNREADABLE as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Decoded(None, reason=reason)
    return Decoded(pixels, grey)


def decode_files(paths: Sequence[Path], size: int, budget: int,
                 workers: int | None = None) -> Iterator[Decoded]:
    """Each file decoded, in the order given: by `workers` processes (None: `default_workers`)
    where there are enough files to repay starting them, else here."""
    return in_order(partial(decode_or_say_why, size=size, budget=budget), paths, workers)


@dataclass(frozen=True)
class Probed:
    """One file as `aegen data inspect` sees it: its pixel size and mode once fully decoded,
    or why it could not be."""

    width: int = 0
    height: int = 0
    mode: str = ""
    reason: str = ""


def probe(path: Path, budget: int) -> Probed:
    """Open and decode one file (a truncated one fails only once its pixels are read)."""
    try:
        _refuse_special(path)
        with Image.open(path) as img:
            if 8 * img.width * img.height > budget:
                raise ValueError(f"decoding its {img.width} x {img.height} pixels would take "
                                 f"more than the data budget of {amount(budget)}")
            img.load()
            return Probed(img.width, img.height, img.mode)
    except UNREADABLE as exc:
        return Probed(reason=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def in_order(work, paths: Sequence[Path], workers: int | None = None) -> Iterator:
    """`work(path)` for each path, in order: by `workers` processes (None: `default_workers`)
    where there are enough files to repay starting them, else here."""
    workers = default_workers() if workers is None else max(1, workers)
    if workers == 1 or len(paths) < 2 * CHUNK:
        yield from map(work, paths)
        return
    with _main_left_alone():
        pool = _context().Pool(min(workers, -(-len(paths) // CHUNK)))
    with pool:
        yield from pool.imap(work, paths, chunksize=CHUNK)


@contextmanager
def _main_left_alone() -> Iterator[None]:
    """While workers start, make multiprocessing believe the main module is a package's
    `__main__`, which it never re-runs. Otherwise each worker runs the user's script again to
    find functions that live here: seconds of imports per worker for a script that imports
    torch, and, in a script that calls aegen without an `if __name__ == "__main__":` guard,
    a RuntimeError instead of training (tests/test_data_cache.py)."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    had, spec = "__spec__" in vars(main), vars(main).get("__spec__")
    main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
    try:
        yield
    finally:
        if had:
            main.__spec__ = spec
        else:
            del main.__spec__


def _context():
    """forkserver where there is one (its server imports this module once; each worker is a
    fork of it), else spawn: a fork of a process whose torch threads run could deadlock."""
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context
