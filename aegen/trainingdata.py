"""Training images from a data source, through the decoded cache (aegen/datacache.py): read
back when the source's files are unchanged, else decoded by worker processes straight to disk,
or read into memory with `cache` False (or where no cache can be written)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .data import ImageSet, choose_source, read_with
from .datacache import Cached, build, data_cache_dir, fingerprint, lookup, names_of
from .decoding import decoding_workers


def read_training_data(
    path: str | os.PathLike,
    size: int,
    channels: int | None = None,
    source: str | None = None,
    *,
    cache: bool = True,
    workers: int | None = None,
    on_image: Callable[[], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> ImageSet:
    """The images under `path` at `size` (and `channels`), read by their data source (as
    `load_data` chooses it). With `cache`, from the decoded cache when it holds these files,
    else decoded into it; `images.cache` says which ({"state": "hit" | "built" | "off" |
    "unavailable", "path": ...}). `workers` processes decode (None: the CPUs, up to 8)."""
    chosen = choose_source(path, source)

    def read() -> ImageSet:
        return read_with(chosen, Path(path), size, channels, on_image)

    with decoding_workers(workers):
        if not cache:
            return _said(read(), {"state": "off"})
        try:
            found = fingerprint(path, chosen.name, size, channels)
        except OSError as exc:
            return _unavailable(read, f"cannot list {path}: {exc.strerror or exc}", warn)
        hit = lookup(found)
        if hit is not None:
            return _from_cache(hit, chosen.name, "hit")
        try:
            made = build(found, read)
        except OSError as exc:
            why = f"cannot write the decoded cache in {data_cache_dir()}: {exc.strerror or exc}"
            return _unavailable(read, why, warn)
        return _from_cache(made, chosen.name, "built")


def _said(images: ImageSet, cache: dict) -> ImageSet:
    images.cache = cache
    return images


def _unavailable(read: Callable[[], ImageSet], why: str,
                 warn: Callable[[str], None] | None) -> ImageSet:
    if warn is not None:
        warn(f"{why}; reading the images into memory")
    return _said(read(), {"state": "unavailable", "reason": why})


def _from_cache(cached: Cached, source: str, state: str) -> ImageSet:
    """The ImageSet a cache entry holds, with its files named as the source named them."""
    root, meta = Path(cached.fingerprint.path), cached.meta

    def named(name: str) -> Path:
        return root / name if root.is_dir() else Path(name)

    return ImageSet(
        images=cached.images,
        paths=[named(p) for p in names_of(meta["paths"])],
        skipped=[(named(p), why) for p, why in meta.get("skipped", [])],
        source=source,
        cache={"state": state, "path": str(cached.images.path)},
    )
