"""The decoded cache: training images decoded once into a uint8 .npy file at the training size,
read a batch at a time by every later run over the same files.

An entry is two files in `data_cache_dir()`, named by a key over what the images depend on:
the source's resolved path, every file under it (relative path, size, modification time), the
data source, the size, the channels asked for and the cache format. Change a file, add one or
delete one, and the key changes: the next run decodes anew, and the entry it replaces (same
path, size and channels) is deleted. `KEY.npy` holds the pixels, `KEY.json` what was kept and
skipped; both are written under temporary names and renamed, the .json last, so an entry with
both files is whole. A cache that cannot be written is not an error: the run reads into memory
and says why.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .cache import cache_dir
from .decoding import amount
from .imagestore import ImageFile, ImageFileWriter, writing_to

FORMAT = 1
CACHE_ENV = "AEGEN_CACHE_DIR"


def data_cache_dir() -> Path:
    """$AEGEN_CACHE_DIR/data, else $XDG_CACHE_HOME/aegen/data, else ~/.cache/aegen/data."""
    return cache_dir() / "data"


@dataclass(frozen=True)
class Fingerprint:
    """What a source's decoded images depend on, and the key that names them."""

    key: str
    path: str
    source: str
    size: int
    channels: int | None
    files: int
    bytes: int

    @property
    def npy(self) -> Path:
        return data_cache_dir() / f"{self.key}.npy"

    @property
    def meta(self) -> Path:
        return data_cache_dir() / f"{self.key}.json"


def fingerprint(path: str | os.PathLike, source: str, size: int,
                channels: int | None) -> Fingerprint:
    """The key of `path` read by `source` at `size` and `channels`: over the stat of every
    regular file under it (one stat each; nothing is opened)."""
    root = Path(path).resolve()
    digest = hashlib.sha256(json.dumps(
        [FORMAT, __version__, str(root), source, size, channels]).encode())
    files = total = 0
    for name, st in _files(root):
        line = f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n"
        digest.update(line.encode("utf-8", "surrogateescape"))
        files, total = files + 1, total + st.st_size
    return Fingerprint(digest.hexdigest()[:32], str(root), source, size, channels, files, total)


def _files(root: Path):
    """(relative name, stat) of `root` itself if it is a file, else of every regular file
    under it, sorted; what cannot be stat'ed is left out (a source will skip it too)."""
    if not root.is_dir():
        yield "", root.stat()
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                yield os.path.relpath(full, root), st


@dataclass
class Cached:
    """A cache entry read back: the images on disk and what its .json says."""

    images: ImageFile
    meta: dict[str, Any]
    fingerprint: Fingerprint


def lookup(found: Fingerprint) -> Cached | None:
    """The whole entry for `found`, or None (absent, half written, or unreadable)."""
    try:
        meta = json.loads(found.meta.read_text())
        images = ImageFile(found.npy)
    except (OSError, ValueError):
        return None
    try:
        whole = meta["images"] == len(images) == len(names_of(meta["paths"])) and all(
            isinstance(name, str) and isinstance(why, str) for name, why in meta["skipped"])
    except (TypeError, ValueError, KeyError):
        whole = False
    if not whole:
        images.close()
        return None
    return Cached(images, meta, found)


def build(found: Fingerprint, read: Callable[[], Any], workers: int | None = None) -> Cached:
    """Decode the source with `read()` (a data source's ImageSet; `load_images` inside it
    writes to disk as it decodes) into the entry for `found`, atomically. OSError when the
    cache cannot be written: nothing of it is left behind."""
    folder = data_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < _decoded_estimate(found):
        raise OSError(f"{amount(free)} free in {folder}, too little for the decoded images")
    _drop_abandoned(folder)
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".{found.key}.{os.getpid()}."))
    writer = ImageFileWriter(tmp / "images.npy", tmp / "rgb.part", found.size)
    try:
        with writing_to(writer):
            images = read()
        if not isinstance(images.images, ImageFile):  # a source that kept them in memory
            writer.discard()
            _save_tensor(images.images, tmp / "images.npy")
        meta = _meta(found, images)
        (tmp / "meta.json").write_text(json.dumps(meta))
        os.replace(tmp / "images.npy", found.npy)
        os.replace(tmp / "meta.json", found.meta)
    except BaseException:
        writer.discard()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    _drop_replaced(found)
    cached = lookup(found)
    if cached is None:
        raise OSError(f"{found.npy} could not be read back")
    return cached


def _drop_abandoned(folder: Path, quiet_for: float = 600.0) -> None:
    """Remove the temporary folders of builds whose process is gone (killed, so it could not
    clean up), untouched for `quiet_for` seconds (another machine's pid means nothing here)."""
    for tmp in folder.glob(".*.*.*"):
        try:
            pid = int(tmp.name.split(".")[2])
            touched = max([tmp.stat().st_mtime, *(p.stat().st_mtime for p in tmp.iterdir())])
            old = time.time() - touched > quiet_for  # a build appends to its files
        except (ValueError, IndexError, OSError):
            continue
        if old and not _alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process
        return True
    return True


def _decoded_estimate(found: Fingerprint) -> int:
    """Bytes the entry may need while written: RGB images, and a one-channel copy. The count
    of images is not known before decoding; the files under the source bound it."""
    return 2 * found.files * 3 * found.size * found.size


def _save_tensor(images, path: Path) -> None:
    import numpy as np

    from .imagestore import npy_header

    array = np.ascontiguousarray(images.numpy(), dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(npy_header(array.shape))
        f.write(array.tobytes())


def _meta(found: Fingerprint, images) -> dict[str, Any]:
    root = Path(found.path)

    def name(p: Path) -> str:
        return os.path.relpath(p, root) if root.is_dir() else str(p)

    return {
        "format": FORMAT,
        "path": found.path,
        "source": found.source,
        "size": found.size,
        "channels_asked": found.channels,
        "channels": int(images.images.shape[1]),
        "images": len(images.paths),
        "files": found.files,
        "paths": _runs([name(Path(p)) for p in images.paths]),
        "skipped": [[name(Path(p)), why] for p, why in images.skipped],
        "made": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "aegen_version": __version__,
    }


def _runs(names: list[str]) -> list[list]:
    """[name, times] for each run of equal names: an array source names its one file for
    every image, which would otherwise be written 60,000 times."""
    runs: list[list] = []
    for name in names:
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    return runs


def names_of(runs: list[list]) -> list[str]:
    """The names `_runs` ran together, one per image again."""
    return [name for name, times in runs for _ in range(times)]


def _drop_replaced(found: Fingerprint) -> None:
    """Delete the entries this one replaces: the same path, source, size and channels, made
    from files that have since changed."""
    for other in entries():
        meta = other[1]
        same = (meta.get("path"), meta.get("source"), meta.get("size"),
                meta.get("channels_asked")) == (found.path, found.source, found.size,
                                                found.channels)
        if same and other[0] != found.key:
            remove(other[0])


def entries() -> list[tuple[str, dict[str, Any]]]:
    """(key, meta) of every whole entry in the cache."""
    found = []
    for meta_path in sorted(data_cache_dir().glob("*.json")):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta_path.with_suffix(".npy").exists():
            found.append((meta_path.stem, meta))
    return found


def remove(key: str) -> None:
    """Delete one entry (its .json first: a half-deleted entry is never read as whole)."""
    for suffix in (".json", ".npy"):
        (data_cache_dir() / f"{key}{suffix}").unlink(missing_ok=True)
