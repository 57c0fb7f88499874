"""The two image sets `aegen eval` compares, read from folders, image files or any data source,
and the cache of reference features.

Both sets are compared at one resolution: the samples' own (every sample image must then have
the same size), the model's when aegen samples them, or `size` when given; reference images are
resized (shorter side) and centre-cropped to it as `aegen train` reads data, so a model is
judged against its data as it saw it. The Inception network then takes both to 299x299.

Reference features are cached in $AEGEN_CACHE_DIR/eval (else $XDG_CACHE_HOME/aegen/eval, else
~/.cache/aegen/eval), one safetensors file per key: the SHA-256 of the reference files' bytes
(each file read, in order, with its length), the comparison size, the image limit and the
feature extractor's name. Changing a reference file, the size, the limit or the extractor
makes a new key; deleting the folder only costs extracting again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from safetensors.torch import load_file, save_file

from ..cache import cache_dir
from ..console import Reporter
from ..data import IMAGE_SUFFIXES, claiming_sources, find_images, load_data, load_images
from ..errors import DataError, UsageError
from ..files import atomic_output
from .inception import Extractor

CACHE_FORMAT = 1


@dataclass
class Images:
    """A set of uint8 images (N, C, size, size) and the files they were read from."""

    images: torch.Tensor
    files: list[Path]
    label: str


def _is_data_source_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES and bool(
        claiming_sources(path))


def image_files(path: Path, limit: int | None, parameter: str) -> list[Path]:
    """The image files of a folder (recursively, sorted) or one file, at most `limit`."""
    files = find_images(path)[:limit]
    if not files:
        raise DataError(f"`{parameter}` {path}: no images found (looked recursively for "
                        f"{', '.join(sorted(IMAGE_SUFFIXES))})", parameters=[parameter])
    return files


def native_size(files: list[Path], parameter: str) -> int:
    """The one size every image file has (square); an error naming two that differ."""
    sizes: dict[tuple[int, int], Path] = {}
    for path in files:
        try:
            with Image.open(path) as img:
                sizes.setdefault(img.size, path)
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"`{parameter}` {path}: cannot read it ({exc})",
                            parameters=[parameter]) from None
        if len(sizes) > 1:
            (a, first), (b, second) = list(sizes.items())[:2]
            raise DataError(
                f"`{parameter}` holds images of mixed sizes ({first}: {a[0]}x{a[1]}, {second}: "
                f"{b[0]}x{b[1]}); give `size` to bring every image to one size",
                parameters=[parameter, "size"])
    (w, h), path = next(iter(sizes.items()))
    if w != h:
        raise DataError(f"`{parameter}` {path} is {w}x{h}, not square; give `size` to "
                        "centre-crop every image to one size", parameters=[parameter, "size"])
    return w


def read_set(path: str | os.PathLike, size: int | None, limit: int | None,
             parameter: str, reporter: Reporter) -> tuple[Images, int]:
    """The images at `path` (a folder, an image file or a data source's file) at `size`
    (None: their own, which must be one), and the size used."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"`{parameter}` {path}: no such file or folder", parameters=[parameter])
    if _is_data_source_file(path):
        if size is None:
            raise UsageError(f"`{parameter}` {path} is read by a data source: give `size`, the "
                             "resolution to compare at", parameters=[parameter, "size"])
        found = load_data(path, size)
        images, files = found.images[:limit], [path]
    else:
        files = image_files(path, limit, parameter)
        size = size or native_size(files, parameter)
        with reporter.task(f"reading {path}", total=len(files), unit="images") as task:
            found = load_images(files, size, on_image=task.advance)
        for skipped, why in found.skipped:
            reporter.warn(f"skipped {skipped}: {why}")
        images = found.images
    return Images(images, files, str(path)), size


def check_count(images: Images, parameter: str) -> None:
    """FID needs a covariance, so two images at the very least (KID and precision/recall
    more; the figures mean little below a few hundred)."""
    if len(images.images) < 2:
        raise DataError(f"`{parameter}` {images.label}: {len(images.images)} image(s); FID "
                        "needs at least 2 (and means little below a few hundred)",
                        parameters=[parameter])


def content_key(files: list[Path], fields: dict) -> str:
    """SHA-256 of the files' lengths and bytes, in order, and of `fields`."""
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    for path in files:
        digest.update(str(path.stat().st_size).encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:40]


def features_dir() -> Path:
    """Where reference features are cached (module docstring)."""
    return cache_dir() / "eval"


def cached_features(key: str) -> torch.Tensor | None:
    """The features stored under `key`, or None (absent or unreadable: extracted anew)."""
    path = features_dir() / f"reference-{key}.safetensors"
    try:
        return load_file(str(path))["features"]
    except (OSError, KeyError, ValueError, RuntimeError):
        return None


def store_features(key: str, features: torch.Tensor, about: dict) -> Path | None:
    """Cache `features` under `key`; None if the cache cannot be written (no harm done)."""
    path = features_dir() / f"reference-{key}.safetensors"
    meta = {"format": str(CACHE_FORMAT), "about": json.dumps(about, sort_keys=True)}
    try:
        with atomic_output(path) as tmp:
            save_file({"features": features.contiguous()}, str(tmp), metadata=meta)
    except OSError:
        return None
    return path


def extract(images: Images, extractor: Extractor, reporter: Reporter, what: str) -> torch.Tensor:
    """Features of a set of images, with a progress bar."""
    total = len(images.images)
    with reporter.task(f"Inception features of {what}", total=total, unit="images") as task:
        return extractor(images.images, on_batch=task.advance)
