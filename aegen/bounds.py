"""Bounds on what a run may ask for, checked before anything is spent: file-name templates
whose fields would be wider than a file name, and more images than this machine's memory holds.

Pure Python (no torch), so the CLI refuses instantly; the library functions check the same.
"""

from __future__ import annotations

import os
import re
from string import Formatter

from .errors import UsageError

NAME_MAX = 255  # bytes in a file name on common file systems: no template field is wider
COPIES = 4  # float32 copies of every image a sampling run holds at once (state, frame, final, grid)
PER_IMAGE_BYTES = 1024  # and per image: its seed, its paths, its share of the grid PNG


def check_template(template: str | None, parameter: str) -> None:
    """Refuse a file-name template whose fields would be wider than a file name may be, or
    hold fields in their format (`{seed:>{index}}`), before anything is filled in: a
    `{seed:>2000000000}` would build a 2 GB string first. Its other mistakes `expand` says."""
    try:
        fields = [(f, spec or "") for _, f, spec, _ in Formatter().parse(template or "") if f]
    except ValueError:
        return
    for field, spec in fields:
        widths = [d.lstrip("0") for d in re.findall(r"\d+", spec)]
        if "{" in spec:
            why = "its format holds a field; give a fixed width, e.g. {index:04d}"
        elif any(len(d) > 3 or d and int(d) > NAME_MAX for d in widths):
            why = f"it would be wider than a file name ({NAME_MAX} characters)"
        else:
            continue
        raise UsageError(f"`{parameter}` {template!r}: field {{{field}:{spec[:20]}}}: {why}",
                         parameters=[parameter])


def check_images_fit(n: int, channels: int, size: int) -> None:
    """Refuse `n` images of `channels` x `size` x `size` that would not fit in this machine's
    memory (a sampling run holds each COPIES times as float32), before a seed is drawn."""
    if n < 1:
        return  # the settings say what is wrong with it
    need = n * (COPIES * 4 * channels * size**2 + PER_IMAGE_BYTES)
    have = memory_bytes()
    if need > have:
        raise UsageError(
            f"`n` {n}: {n} images of {channels}x{size}x{size} need about {gib(need)} of "
            f"memory, more than this machine's {gib(have)}; sample them in several runs, each "
            "with `seed` where the last one ended",
            parameters=["n", "seed"],
        )


def memory_bytes() -> int:
    """This machine's physical memory (16 GiB where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 16 * 2**30


def gib(count: int) -> str:
    return f"{count / 2**30:,.1f} GiB"
