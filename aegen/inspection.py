"""`aegen data inspect`: what a data source holds before any training — how many images, how
many cannot be read and why, their sizes and modes, and whether the decoded cache holds them."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from .builtin_names import FOLDER_SOURCE
from .data import choose_source, data_budget, find_images, read_with
from .datacache import entries, fingerprint, lookup
from .decoding import decoding_workers, in_order, probe
from .errors import DataError

SHOWN = 5  # reasons and sizes listed


@dataclass
class DataReport:
    """What `inspect_data` found."""

    path: str
    source: str
    files: int
    readable: int
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    sizes: Counter = field(default_factory=Counter)  # (width, height) -> images
    modes: Counter = field(default_factory=Counter)
    cache: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "source": self.source,
            "files": self.files,
            "readable": self.readable,
            "unreadable": len(self.unreadable),
            "reasons": [{"path": p, "reason": r} for p, r in self.unreadable[:SHOWN]],
            "sizes": [{"width": w, "height": h, "images": n}
                      for (w, h), n in self.sizes.most_common()],
            "modes": dict(self.modes.most_common()),
            "cache": self.cache,
        }

    def lines(self) -> list[str]:
        """The report as a person reads it."""
        said = [f"{self.path}: {self.readable} image(s) readable of {self.files} "
                f"(data source {self.source})"]
        if self.unreadable:
            said.append(f"unreadable: {len(self.unreadable)}")
            said += [f"  {p}: {r}" for p, r in self.unreadable[:SHOWN]]
            if len(self.unreadable) > SHOWN:
                said.append(f"  ... and {len(self.unreadable) - SHOWN} more")
        if self.sizes:
            common = ", ".join(f"{w}x{h} ({n})" for (w, h), n in self.sizes.most_common(SHOWN))
            more = len(self.sizes) - SHOWN
            said.append(f"sizes: {common}" + (f", and {more} other sizes" if more > 0 else ""))
            widths = [w for w, _ in self.sizes.elements()]
            heights = [h for _, h in self.sizes.elements()]
            said.append(f"smallest side: {min(map(min, widths, heights))} px, largest: "
                        f"{max(map(max, widths, heights))} px")
        if self.modes:
            said.append("modes: " + ", ".join(f"{m} ({n})" for m, n in self.modes.most_common()))
        cache = self.cache
        state = (f"cached at {cache['path']} ({cache['images']} images, made {cache['made']})"
                 if cache.get("cached") else "not cached: the next `aegen train` decodes it")
        said.append(f"decoded cache at size {cache['size']}, channels "
                    f"{cache['channels'] or 'auto'}: {state}")
        others = cache.get("other_sizes") or []
        if others:
            said.append("also cached: " + ", ".join(
                f"size {o['size']} ({o['channels']} channel(s))" for o in others))
        return said


def inspect_data(
    path: str | os.PathLike,
    source: str | None = None,
    size: int = 64,
    channels: int | None = None,
    workers: int | None = None,
    on_image: Callable[[], None] | None = None,
) -> DataReport:
    """Read every image of `path` as `aegen train` would (the same data source) and report.
    An image folder's files are each fully decoded, by `workers` processes; another source
    reads its files itself (at `size`). The cache state is for `size` and `channels`."""
    chosen = choose_source(path, source)
    root = Path(path)
    with decoding_workers(workers):
        if chosen.name == FOLDER_SOURCE and root.is_dir():
            report = _inspect_files(root, chosen.name, on_image)
        else:
            found = read_with(chosen, root, size, channels, on_image)
            report = DataReport(str(root), chosen.name, len(found.paths) + len(found.skipped),
                                len(found.paths), [(str(p), r) for p, r in found.skipped])
            report.sizes[(size, size)] = len(found.paths)  # as the source fitted them
    report.cache = _cache_state(root, chosen.name, size, channels)
    return report


def _inspect_files(root: Path, source: str, on_image) -> DataReport:
    files = find_images(root)
    if not files:
        raise DataError(f"{root}: no images found (looked recursively for .bmp, .jpeg, .jpg, "
                        ".png, .webp)")
    report = DataReport(str(root), source, len(files), 0)
    budget = data_budget()
    for file, seen in zip(files, in_order(partial(probe, budget=budget), files)):
        if seen.reason:
            report.unreadable.append((str(file), seen.reason))
        else:
            report.readable += 1
            report.sizes[(seen.width, seen.height)] += 1
            report.modes[seen.mode] += 1
        if on_image is not None:
            on_image()
    return report


def _cache_state(root: Path, source: str, size: int, channels: int | None) -> dict[str, Any]:
    found = fingerprint(root, source, size, channels)
    state: dict[str, Any] = {"size": size, "channels": channels, "cached": False,
                             "path": str(found.npy)}
    hit = lookup(found)
    if hit is not None:
        state.update(cached=True, images=len(hit.images), made=hit.meta.get("made", "?"))
        hit.images.close()
    state["other_sizes"] = [
        {"size": meta.get("size"), "channels": meta.get("channels"), "key": key}
        for key, meta in entries()
        if meta.get("path") == found.path and key != found.key
    ]
    return state
