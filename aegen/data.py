"""Images as data: folders found recursively, or any path a data-source plugin claims; resized,
centre-cropped and kept in memory. For training (`load_data`) and for `--input` (`load_inputs`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import functional as F

from .builtin_names import FOLDER_SOURCE
from .errors import DataError, PluginError, UsageError
from .plugins import get_registry

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


@dataclass
class ImageSet:
    """Images as a uint8 tensor (N, C, size, size), with what could not be read."""

    images: object  # torch.Tensor, uint8
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    source: str = ""

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])


def find_images(root: str | os.PathLike) -> list[Path]:
    """Every image file under `root` (recursively, sorted), or `root` itself if it is one."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: no such file or folder")
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_images(
    paths: Sequence[Path],
    size: int,
    channels: int | None = None,
    on_image: Callable[[], None] | None = None,
) -> ImageSet:
    """Read each image, resize its shorter side to `size` and centre-crop a square.

    Unreadable files are skipped and listed. `channels` None means 1 if every image is grey,
    else 3.
    """
    pictures, kept, skipped, grey = [], [], [], True
    for path in paths:
        try:
            with Image.open(path) as img:
                img.load()
                grey = grey and img.mode in _GREY_MODES
                rgb = img.convert("RGB")
            rgb = F.center_crop(F.resize(rgb, size, antialias=True), [size, size])
            pictures.append(F.pil_to_tensor(rgb))
            kept.append(Path(path))
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            skipped.append((Path(path), reason))
        if on_image is not None:
            on_image()
    if not pictures:
        raise DataError(f"none of the {len(paths)} image file(s) could be read")
    images = torch.stack(pictures)
    channels = channels or (1 if grey else 3)
    if channels == 1:
        images = F.rgb_to_grayscale(images) if not grey else images[:, :1].contiguous()
    elif channels != 3:
        raise DataError(f"channels must be 1 or 3, not {channels}")
    return ImageSet(images=images, paths=kept, skipped=skipped)


def fit_images(images, size: int, channels: int | None = None):
    """Resize a uint8 (N, C, H, W) batch so its shorter side is `size`, centre-crop it square,
    and convert it to `channels` (1 or 3; None keeps it). For array-based data sources."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DataError(f"expected images shaped (N, 1 or 3, H, W), got {tuple(images.shape)}")
    if images.shape[-2:] != (size, size):
        images = F.center_crop(F.resize(images, size, antialias=True), [size, size])
    if channels == 3 and images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    elif channels == 1 and images.shape[1] == 3:
        images = F.rgb_to_grayscale(images)
    elif channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 or 3, not {channels}")
    return images.contiguous()


def load_data(
    path: str | os.PathLike,
    size: int,
    channels: int | None = None,
    source: str | None = None,
    on_image: Callable[[], None] | None = None,
) -> ImageSet:
    """Training images from `path` through a registered data source: the one named, or the one
    whose `detect` claims the path (image folders when none does)."""
    if source is None:
        if not Path(path).exists():
            raise DataError(f"{path}: no such file or folder")
        claims = claiming_sources(Path(path))
        if len(claims) > 1:
            names = ", ".join(s.name for s in claims)
            raise DataError(
                f"{path} could be read by several data sources ({names}); choose one with `source`",
                parameters=["source"],
            )
        chosen = claims[0] if claims else get_registry().data_source(FOLDER_SOURCE)
    else:
        chosen = get_registry().data_source(source)
    return read_with(chosen, Path(path), size, channels, on_image)


def read_with(
    chosen, path: Path, size: int, channels: int | None, on_image: Callable[[], None] | None = None
) -> ImageSet:
    """Read `path` with the data source `chosen`, turning its failures into one-line errors."""
    try:
        images = chosen.fn(path, size=size, channels=channels, on_image=on_image)
    except (DataError, UsageError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise PluginError(
            f"data source {chosen.name!r} (plugin {chosen.plugin!r}) failed on "
            f"{path}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(images, ImageSet):
        raise PluginError(
            f"data source {chosen.name!r} (plugin {chosen.plugin!r}) returned a "
            f"{type(images).__name__} for {path}, not an aegen.api.ImageSet"
        )
    images.source = chosen.name
    return images


def claiming_sources(path: Path) -> list:
    """The registered data sources whose `detect` claims `path`."""
    return [s for s in get_registry().data_sources.values() if _claims(s, path)]


def _claims(source, path: Path) -> bool:
    """Whether a data source's `detect` claims `path`; a failing detect claims nothing."""
    if source.detect is None:
        return False
    try:
        return bool(source.detect(path))
    except Exception as exc:
        print(
            f"aegen: warning: data source {source.name!r} (plugin {source.plugin!r}) failed "
            f"to inspect {path}: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return False


def expand_stdin(inputs: Sequence[str | os.PathLike]) -> list[str | os.PathLike]:
    """Replace a "-" among the inputs by the paths read from stdin, one per line."""
    expanded: list[str | os.PathLike] = []
    for item in inputs:
        if str(item) == "-":
            expanded += [line.strip() for line in sys.stdin if line.strip()]
        else:
            expanded.append(item)
    return expanded


def load_inputs(
    inputs: Sequence[str | os.PathLike],
    size: int,
    channels: int,
    reporter,
    limit: int | None = None,
):
    """Images named as inputs, as a float batch in [0, 1] at the model's size and channels, with
    the paths they came from (at most `limit` images).

    Each input is a folder (its image files, recursively), "-" (paths read from stdin), a file
    a data-source plugin's `detect` claims (read through that source: e.g. a .npy file or an
    IDX file, whose image i is named "PATH[i]"), or an image file. Unreadable image files are
    skipped with a warning."""
    parts: list = []  # lists of image files, and (path, ImageSet) read by a data source
    for item in expand_stdin(inputs):
        source = _input_source(Path(item))
        if source is not None:
            parts.append((Path(item), read_with(source, Path(item), size, channels)))
        elif parts and isinstance(parts[-1], list):
            parts[-1].extend(find_images(item))
        else:
            parts.append(find_images(item))
    if not any(len(part[1].images) if isinstance(part, tuple) else part for part in parts):
        raise UsageError(
            "`inputs`: no images found in " + ", ".join(map(str, inputs)), parameters=["inputs"]
        )
    batches, names = [], []
    for part in filter(None, parts):  # an empty list: a folder without images
        wanted = None if limit is None else limit - len(names)
        if wanted is not None and wanted <= 0:
            break
        images, paths = _read_part(part, size, channels, reporter, wanted)
        batches.append(images)
        names += paths
    return torch.cat(batches).float().div_(255), names


def _input_source(path: Path):
    """The data source that reads input `path`: the one whose `detect` claims a file that is not
    an image file; None for folders (read as the folder source reads them) and image files."""
    if path.is_dir() or not path.is_file() or path.suffix.lower() in IMAGE_SUFFIXES:
        return None
    claims = claiming_sources(path)
    if len(claims) > 1:
        names = ", ".join(s.name for s in claims)
        raise DataError(f"{path} could be read by several data sources ({names})")
    return claims[0] if claims else None


def _read_part(part, size: int, channels: int, reporter, wanted: int | None):
    """A uint8 batch of at most `wanted` images from one part of `load_inputs`, and their
    names: image files (with spares for unreadable ones), or a set a data source read from one
    path (image i of a file holding several is named "PATH[i]")."""
    if isinstance(part, tuple):
        path, found = part
        for skipped, why in found.skipped:
            reporter.warn(f"skipped {skipped}: {why}")
        names = [f"{p}[{i}]" if Path(p) == path else str(p) for i, p in enumerate(found.paths)]
        return found.images[:wanted], names[:wanted]
    files = part if wanted is None else part[: wanted * 2]  # spares for unreadable files
    loaded = load_images(files, size, channels)
    for path, why in loaded.skipped:
        reporter.warn(f"skipped {path}: {why}")
    return loaded.images[:wanted], [str(p) for p in loaded.paths[:wanted]]
