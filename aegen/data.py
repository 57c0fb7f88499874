"""Images as data: folders found recursively, or any path a data-source plugin claims; resized,
centre-cropped, and kept in memory or, while the decoded cache is built (aegen/datacache.py),
written to disk. For training (`load_data`) and for `--input` (`load_inputs`).

What is kept is bounded by the data budget (`data_budget`, docs/security.md): a source checks
the images it will keep against it before decoding any. Paths that are neither regular files
nor folders (FIFOs, devices, sockets) are refused, or skipped inside folders, without being
opened.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .builtin_names import FOLDER_SOURCE
from .decoding import amount as _amount
from .decoding import decode_files
from .errors import DataError, PluginError, UsageError
from .imagestore import current_writer, luma
from .plugins import get_registry

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
BUDGET_ENV = "AEGEN_DATA_BUDGET"
DEFAULT_BUDGET = 4 << 30  # where the OS does not say how much memory it has
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_AMOUNT = re.compile(r"(\d{1,30})\s*(?:([KMGT])(?:IB)?|(B)?)")
_SPECIAL = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def data_budget() -> int:
    """Bytes the images of one data set may take once decoded (N x C x size x size, as they are
    kept): AEGEN_DATA_BUDGET (a number of bytes, or with K, M, G, T, KiB, MiB, GiB or TiB, all
    powers of 1024), else half of this machine's memory: its physical memory, or its container's
    limit where that is lower (8 GiB, so a budget of 4 GiB, where neither is known)."""
    text = os.environ.get(BUDGET_ENV, "").strip()
    if not text:
        return _memory() // 2
    match = _AMOUNT.fullmatch(text.upper())
    if match is None or int(match[1]) == 0:
        raise UsageError(
            f"{BUDGET_ENV} must be a number of bytes above 0, optionally with K, M, G or T "
            f"(KiB, MiB, GiB, TiB), got {text!r}"
        )
    return int(match[1]) * _UNITS[match[2] or ""]


def _memory() -> int:
    """Physical memory, or the cgroup's memory limit (v2, else v1) where that is lower."""
    try:
        found = [os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
    except (ValueError, OSError, AttributeError):
        found = []
    for limit in _CGROUP_LIMITS:
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # "max": no limit
            found.append(int(text))
    return min((n for n in found if n > 0), default=2 * DEFAULT_BUDGET)


def check_data_budget(path: str | os.PathLike, needed: int, what: str) -> None:
    """DataError unless `needed` bytes (for `what`, e.g. "60000 images of 1 x 28 x 28") fit the
    data budget; data sources call it before allocating what they decode."""
    budget = data_budget()
    if needed > budget:
        raise DataError(
            f"{path}: {what} would take {_amount(needed)}, more than the data budget of "
            f"{_amount(budget)} (set {BUDGET_ENV} to change it)"
        )


def _check_kind(path: str | os.PathLike) -> str:
    """"file" or "folder", from os.stat alone; DataError for anything else, which is never
    opened: a FIFO would block whoever opens it, and a device might never end."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DataError(f"{path}: no such file or folder") from None
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    kind = next((name for test, name in _SPECIAL if test(mode)), "a special file")
    raise DataError(f"{path} is {kind}, not a regular file or folder")


@dataclass
class ImageSet:
    """Images as a uint8 tensor (N, C, size, size), with what could not be read."""

    images: object  # torch.Tensor, uint8
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    source: str = ""
    cache: dict | None = None  # where the decoded cache was found or made (docs/data.md)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])


def find_images(root: str | os.PathLike) -> list[Path]:
    """Every image file under `root` (recursively, sorted), or `root` itself if it is one."""
    root = Path(root)
    if _check_kind(root) == "file":
        return [root]
    # is_file() is os.stat's S_ISREG: FIFOs, devices and sockets inside are passed over unopened
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_images(
    paths: Sequence[Path],
    size: int,
    channels: int | None = None,
    on_image: Callable[[], None] | None = None,
    workers: int | None = None,
) -> ImageSet:
    """Read each image, resize its shorter side to `size` and centre-crop a square.

    Unreadable files are skipped and listed, as are paths that are not regular files (never
    opened) and images whose decoding alone would not fit the data budget. `channels` None
    means 1 if every image is grey, else 3. `workers` processes decode (None: this machine's
    CPUs, up to 8; only for enough files to repay starting them). In memory, N x 3 x size x
    size bytes must fit the data budget (checked before reading any); while aegen builds its
    decoded cache (docs/data.md) the images go to disk one at a time instead.
    """
    writer = current_writer()
    if writer is None:
        check_data_budget(_common_folder(paths), len(paths) * 3 * size * size,
                          f"{len(paths)} images of 3 x {size} x {size}")
        memory = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    kept, skipped, grey = [], [], True
    for path, found in zip(paths, decode_files(paths, size, data_budget(), workers)):
        if found.pixels is None:
            skipped.append((Path(path), found.reason))
        else:
            if writer is None:
                memory[len(kept)] = torch.from_numpy(found.pixels)
            else:
                writer.add(found.pixels)
            grey = grey and found.grey
            kept.append(Path(path))
        if on_image is not None:
            on_image()
    if not kept:
        raise DataError(f"none of the {len(paths)} image file(s) could be read")
    channels = channels or (1 if grey else 3)
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, not {channels}")
    if writer is not None:
        return ImageSet(images=writer.finish(channels, grey), paths=kept, skipped=skipped)
    images = memory[: len(kept)]
    if channels == 1:
        images = luma(images) if not grey else images[:, :1].contiguous()
    return ImageSet(images=images, paths=kept, skipped=skipped)


def _common_folder(paths: Sequence[Path]) -> str:
    """What an error about a list of image files names: the folder they share."""
    try:
        return os.path.commonpath([os.fspath(p) for p in paths]) or "."
    except ValueError:  # none, or relative and absolute paths mixed
        return "the image files"


def fit_images(images, size: int, channels: int | None = None):
    """Resize a uint8 (N, C, H, W) batch so its shorter side is `size`, centre-crop it square,
    and convert it to `channels` (1 or 3; None keeps it). For array-based data sources."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DataError(f"expected images shaped (N, 1 or 3, H, W), got {tuple(images.shape)}")
    if images.shape[-2:] != (size, size):
        from torchvision.transforms import functional as F  # here: its import costs seconds

        images = F.center_crop(F.resize(images, size, antialias=True), [size, size])
    if channels == 3 and images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    elif channels == 1 and images.shape[1] == 3:
        images = luma(images)
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
    return read_with(choose_source(path, source), Path(path), size, channels, on_image)


def choose_source(path: str | os.PathLike, source: str | None = None):
    """The registered data source that reads `path`: the one named, or the one whose `detect`
    claims it (image folders when none does)."""
    if source is None or os.path.lexists(path):  # a named source may read a path to be made
        _check_kind(path)  # before any `detect` or `load` could open a FIFO
    if source is not None:
        return get_registry().data_source(source)
    claims = claiming_sources(Path(path))
    if len(claims) > 1:
        names = ", ".join(s.name for s in claims)
        raise DataError(
            f"{path} could be read by several data sources ({names}); choose one with `source`",
            parameters=["source"],
        )
    return claims[0] if claims else get_registry().data_source(FOLDER_SOURCE)


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
        _check_kind(item)
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
