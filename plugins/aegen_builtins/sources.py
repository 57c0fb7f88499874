"""Data-source plugins: image folders, NumPy arrays, and IDX files (MNIST's format).

aegen.api's image functions load torch, so they are imported where they are used: `aegen
plugins` and `aegen --help` import this module without torch.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from aegen.api import DataError, hookimpl

IDX_TYPES = {0x08: "u1"}  # unsigned bytes: the image files of MNIST and Fashion-MNIST


def load_folder(path: Path, size: int, channels=None, on_image=None):
    """Every png/jpg/jpeg/webp/bmp under `path`, recursively; unreadable files skipped."""
    from aegen.api import find_images, load_images

    paths = find_images(path)
    if not paths:
        raise DataError(
            f"{path}: no images found (looked recursively for .bmp, .jpeg, .jpg, .png, .webp)"
        )
    return load_images(paths, size, channels, on_image=on_image)


def _array_to_images(array, path: Path, size: int, channels):
    import numpy as np
    import torch

    from aegen.api import ImageSet, fit_images

    if array.dtype != np.uint8:
        raise DataError(f"{path}: expected uint8 pixels, got {array.dtype}")
    if array.ndim == 3:
        array = array[:, None]  # N x H x W: grey
    elif array.ndim == 4 and array.shape[-1] in (1, 3, 4):
        array = array[..., :3].transpose(0, 3, 1, 2)  # N x H x W x C; alpha dropped
    else:
        raise DataError(
            f"{path}: expected N x H x W or N x H x W x C images, got shape {array.shape}"
        )
    if len(array) == 0:
        raise DataError(f"{path} holds no images")
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:  # e.g. read straight from a buffer
        array = array.copy()
    images = fit_images(torch.from_numpy(array), size, channels)
    return ImageSet(images=images, paths=[path] * len(images))


def load_numpy(path: Path, size: int, channels=None, on_image=None):
    """A .npy array, or the `images` (else the first) array of a .npz archive."""
    import numpy as np

    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            keys = list(data.keys())
            if not keys:
                raise DataError(f"{path} is an empty .npz archive")
            data = data["images" if "images" in keys else keys[0]]
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable NumPy file ({exc})") from None
    return _array_to_images(data, path, size, channels)


def read_idx(path: Path):
    """An IDX file (gzipped or not) as a NumPy array."""
    import numpy as np

    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_TYPES:
        raise DataError(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    count = int(np.prod(dims))
    start = 4 + 4 * ndim
    if len(raw) < start + count:
        raise DataError(f"{path} is truncated: {len(raw) - start} of {count} bytes")
    return np.frombuffer(raw, dtype=IDX_TYPES[raw[2]], count=count, offset=start).reshape(dims)


def load_idx(path: Path, size: int, channels=None, on_image=None):
    """IDX images (N x H x W unsigned bytes), e.g. train-images-idx3-ubyte[.gz]."""
    return _array_to_images(read_idx(path), path, size, channels)


def _is_folder_or_image(path: Path) -> bool:
    return path.is_dir()


def _is_numpy(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".npy", ".npz")


def _is_idx(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and ("idx" in name or "-ubyte" in name)


@hookimpl
def register_data_sources(register):
    register(
        "folder",
        load_folder,
        description="image files in a folder, recursively",
        detect=_is_folder_or_image,
    )
    register(
        "numpy", load_numpy, description=".npy/.npz uint8 arrays, N x H x W [x C]", detect=_is_numpy
    )
    register(
        "idx",
        load_idx,
        description="IDX files (MNIST, Fashion-MNIST), gzipped or not",
        detect=_is_idx,
    )
