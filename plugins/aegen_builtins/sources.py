"""Data-source plugins: image folders, NumPy arrays, and IDX files (MNIST's format).

aegen.api's image functions load torch, so they are imported where they are used: `aegen
plugins` and `aegen --help` import this module without torch.

Array files are untrusted input (docs/security.md). Their header is read first and what it
declares is checked before anything is allocated: the dtype and shape; the images that will be
kept (N x C x size x size) and the decoding of one image, against the data budget; the length
of the data, against the file (compressed data by a first pass that counts the bytes and keeps
none). The pixels are then decoded a few MB at a time, each chunk fitted to the training size,
so memory holds the result and one chunk, never the raw file.
"""

from __future__ import annotations

import gzip
import math
import os
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aegen.api import DataError, hookimpl

IDX_TYPES = {0x08: "u1"}  # unsigned bytes: the image files of MNIST and Fashion-MNIST
CHUNK_BYTES = 8 << 20  # about this much working memory for each chunk of images decoded
COUNT_BYTES = 1 << 20  # a counting pass reads this much at a time
DEFLATE_RATIO = 1032  # deflate's largest expansion: a 258-byte match from 2 bits
_UNREADABLE = (OSError, EOFError, ValueError, zlib.error, zipfile.BadZipFile)
_SPECIAL = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
            (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
            (stat.S_ISSOCK, "a socket"))


def load_folder(path: Path, size: int, channels=None, on_image=None):
    """Every png/jpg/jpeg/webp/bmp under `path`, recursively; unreadable files skipped."""
    from aegen.api import find_images, load_images

    paths = find_images(path)
    if not paths:
        raise DataError(
            f"{path}: no images found (looked recursively for .bmp, .jpeg, .jpg, .png, .webp)"
        )
    return load_images(paths, size, channels, on_image=on_image)


@dataclass(frozen=True)
class Declared:
    """What an array file's header declares: N x H x W or N x H x W x C uint8 images."""

    path: Path
    shape: tuple[int, ...]
    fortran: bool = False  # column-major data: read whole, not in chunks

    @property
    def image_bytes(self) -> int:
        return math.prod(self.shape[1:])

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.image_bytes


def _check_shape(path: Path, shape: tuple[int, ...]) -> Declared:
    if not (len(shape) == 3 or len(shape) == 4 and shape[-1] in (1, 3, 4)):
        raise DataError(f"{path}: expected N x H x W or N x H x W x C images, got shape {shape}")
    if shape[0] == 0:
        raise DataError(f"{path} holds no images")
    if 0 in shape[1:3]:
        raise DataError(f"{path}: its images are {shape[1]} x {shape[2]} pixels")
    return Declared(path, shape)


def _image_work(shape: tuple[int, ...], size: int) -> int:
    """Bytes that fitting one image of `shape[1:]` takes: its pixels, and the float copies the
    resize makes of them and of its result (the longer side scaled like the shorter)."""
    height, width = shape[1:3]
    raw = math.prod(shape[1:])
    if (height, width) == (size, size):
        return 2 * raw
    channels = 1 if len(shape) == 3 else min(shape[3], 3)
    resized = size * (size * max(height, width) // min(height, width) + 1)
    return 2 * raw + channels * (4 * height * width + 5 * resized)


def _check_budget(declared: Declared, size: int, channels: int | None) -> None:
    """Refuse, before decoding, what the data budget cannot hold: the images kept, one image's
    decoding, and a column-major array (read whole)."""
    from aegen.api import check_data_budget

    shape, path = declared.shape, declared.path
    given = 1 if len(shape) == 3 else min(shape[3], 3)
    kept = channels if channels in (1, 3) else given
    images = shape[0] * kept * size * size
    check_data_budget(path, images, f"{shape[0]} images of {kept} x {size} x {size}")
    check_data_budget(path, _image_work(shape, size),
                      f"decoding one image of {' x '.join(map(str, shape[1:]))}")
    if declared.fortran:
        check_data_budget(path, declared.nbytes + images, "a Fortran-ordered array, read whole,")


@contextmanager
def _readable(path: Path, what: str) -> Iterator[None]:
    """Failures of the file or its decompressor as one line."""
    try:
        yield
    except _UNREADABLE as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: not a readable {what} ({detail})") from None


def _open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file; a FIFO would block the open and a
    device never end, so the mode is checked before opening and again on the open file."""
    try:
        mode = os.stat(path).st_mode
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)) if stat.S_ISREG(mode) else -1
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if fd >= 0 and stat.S_ISREG(os.fstat(fd).st_mode):
        return os.fdopen(fd, "rb")
    if fd >= 0:
        mode = os.fstat(fd).st_mode
        os.close(fd)
    kind = next((name for test, name in _SPECIAL if test(mode)), "a special file")
    raise DataError(f"{path} is {kind}, not a data file")


def _file_size(stream: BinaryIO) -> int:
    return os.fstat(stream.fileno()).st_size


def _read_exact(stream: BinaryIO, count: int, path: Path) -> bytearray:
    """The next `count` bytes of `stream` (a file or a decompressor)."""
    buffer = bytearray(count)
    with memoryview(buffer) as view, _readable(path, "file to its end"):
        done = 0
        while done < count:
            got = stream.readinto(view[done:])
            if not got:
                raise DataError(f"{path} is truncated: {done} of {count} bytes")
            done += got
    return buffer


def _count(stream: BinaryIO, limit: int) -> int:
    """The bytes left in `stream`, read and dropped; it stops once past `limit`."""
    total = 0
    while total <= limit:
        part = stream.read(min(COUNT_BYTES, limit + 1 - total))
        if not part:
            break
        total += len(part)
    return total


def _check_length(declared: Declared, found: int, exact: bool = True) -> None:
    """The file's data length `found` must be what the header declares (`exact` False: a count
    that stopped once past it)."""
    path, wanted = declared.path, declared.nbytes
    if found < wanted:
        raise DataError(f"{path} is truncated: {found} of {wanted} bytes")
    if found > wanted:
        more = f"{found} bytes of data, more than" if exact else "more than"
        raise DataError(f"{path} holds {more} the {wanted} bytes its header declares")


def _check_expansion(declared: Declared, total: int, stored: int, what: str,
                     ratio: int = DEFLATE_RATIO) -> None:
    """`total` bytes cannot come out of `what` of `stored` bytes that expands at most `ratio`
    times (deflate: DEFLATE_RATIO); checked before inflating anything."""
    if total > ratio * stored:
        raise DataError(
            f"{declared.path} is truncated: its header declares {declared.nbytes} bytes, more "
            f"than {what} of {stored} bytes can hold"
        )


def _as_nchw(array):
    """(k, H, W[, C]) uint8 images as a contiguous, writable (k, 1 or 3, H, W) array."""
    import numpy as np

    if array.ndim == 3:
        array = array[:, None]  # grey
    else:
        array = array[..., :3].transpose(0, 3, 1, 2)  # alpha dropped
    array = np.ascontiguousarray(array)
    return array if array.flags.writeable else array.copy()


def _decode(declared: Declared, take: Callable[[int], object], size: int, channels):
    """The images, fitted a chunk at a time: `take(k)` gives the next k as a (k, H, W[, C])
    uint8 array. Each chunk fits as the whole array would (fit_images works image by image)."""
    import torch

    from aegen.api import ImageSet, fit_images

    count = declared.shape[0]
    per_chunk = max(1, CHUNK_BYTES // _image_work(declared.shape, size))
    images, done = None, 0
    while done < count:
        k = min(per_chunk, count - done)
        fitted = fit_images(torch.from_numpy(_as_nchw(take(k))), size, channels)
        if images is None:
            images = torch.empty((count, *fitted.shape[1:]), dtype=torch.uint8)
        images[done : done + k] = fitted
        done += k
    return ImageSet(images=images, paths=[declared.path] * count)


def _chunks(stream: BinaryIO, declared: Declared) -> Callable[[int], object]:
    """`take` for `_decode`, reading `stream` from the start of the data."""
    import numpy as np

    if declared.fortran:  # column-major: every image spans the whole array
        data = _read_exact(stream, declared.nbytes, declared.path)
        whole = np.frombuffer(data, dtype=np.uint8).reshape(declared.shape, order="F")
        done = 0

        def take_whole(k: int):
            nonlocal done
            done += k
            return whole[done - k : done]

        return take_whole

    def take(k: int):
        data = _read_exact(stream, k * declared.image_bytes, declared.path)
        return np.frombuffer(data, dtype=np.uint8).reshape((k, *declared.shape[1:]))

    return take


def _npy_header(stream: BinaryIO, path: Path) -> tuple[Declared, int]:
    """The declared array of a .npy stream (read up to its data), and the header's length."""
    import numpy as np

    with _readable(path, "NumPy file"):
        version = np.lib.format.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise DataError(f"{path}: .npy format version {version[0]}.{version[1]} is not read "
                            "(1.0 and 2.0 are, which np.save writes for uint8 arrays)")
        read = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}[version]
        shape, fortran, dtype = read(stream)
        start = stream.tell()
    if dtype != np.uint8:
        raise DataError(f"{path}: expected uint8 pixels, got {dtype}")
    declared = _check_shape(path, tuple(int(d) for d in shape))
    return Declared(path, declared.shape, bool(fortran)), start


def load_numpy(path: Path, size: int, channels=None, on_image=None):
    """A .npy array, or the `images` (else the first) array of a .npz archive."""
    path = Path(path)
    with _open_regular(path) as raw:
        with _readable(path, "NumPy file"):
            zipped = raw.read(2) == b"PK"  # a zip archive, as np.savez writes
            raw.seek(0)
        if zipped:
            return _load_npz(raw, path, size, channels)
        declared, start = _npy_header(raw, path)
        _check_budget(declared, size, channels)
        _check_length(declared, _file_size(raw) - start)
        return _decode(declared, _chunks(raw, declared), size, channels)


def _load_npz(raw: BinaryIO, path: Path, size: int, channels):
    """The `images` (else the first) array of a .npz archive, its length counted first: a zip
    member's sizes are claims, and a small member can inflate a thousandfold."""
    with _readable(path, "NumPy file"):
        archive = zipfile.ZipFile(raw)
    with archive:
        member = _pick_member(archive, path, _file_size(raw))
        with _open_member(archive, member, path) as stream:
            declared, start = _npy_header(stream, path)
        _check_budget(declared, size, channels)
        _check_length(declared, member.file_size - start)
        if member.compress_type == zipfile.ZIP_STORED:
            _check_expansion(declared, member.file_size, member.compress_size,
                             "a stored member", ratio=1)
        else:
            _check_expansion(declared, member.file_size, member.compress_size, "a deflated member")
        with _open_member(archive, member, path, start) as stream, _readable(path, "NumPy file"):
            found = _count(stream, declared.nbytes)  # and zipfile checks the CRC at the end
        _check_length(declared, found, exact=False)
        with _open_member(archive, member, path, start) as stream:
            return _decode(declared, _chunks(stream, declared), size, channels)


def _open_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path,
                 start: int = 0) -> BinaryIO:
    """A member of a zip archive, open for reading from byte `start` of its data."""
    with _readable(path, "NumPy file"):
        stream = archive.open(member)
    _read_exact(stream, start, path)
    return stream


def _pick_member(archive: zipfile.ZipFile, path: Path, file_size: int) -> zipfile.ZipInfo:
    """The member np.load would give for `images`, else the first; stored or deflated (as
    np.savez and np.savez_compressed write), not encrypted, within the archive."""
    members = archive.infolist()
    if not members:
        raise DataError(f"{path} is an empty .npz archive")
    member = next((m for m in members if m.filename in ("images.npy", "images")), members[0])
    if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise DataError(f"{path}: {member.filename} is compressed with zip method "
                        f"{member.compress_type}; aegen reads stored or deflated members")
    if member.flag_bits & 0x1:
        raise DataError(f"{path}: {member.filename} is encrypted")
    if member.compress_size > file_size:
        raise DataError(f"{path} is truncated: {member.filename} claims {member.compress_size} "
                        f"compressed bytes in a file of {file_size}")
    return member


def _idx_header(stream: BinaryIO, path: Path) -> tuple[Declared, int]:
    """The declared images of an IDX stream (read up to its data), and the header's length."""
    with _readable(path, "IDX file"):
        magic = stream.read(4)
        if len(magic) < 4 or magic[:2] != b"\x00\x00" or magic[2] not in IDX_TYPES:
            raise DataError(f"{path}: not an IDX file of unsigned bytes")
        dims = stream.read(4 * magic[3])
    if len(dims) < 4 * magic[3]:
        raise DataError(f"{path} is truncated: its header holds {len(dims)} of {4 * magic[3]} "
                        "bytes of dimensions")
    shape = tuple(int.from_bytes(dims[i : i + 4], "big") for i in range(0, len(dims), 4))
    return _check_shape(path, shape), 4 + len(dims)


def load_idx(path: Path, size: int, channels=None, on_image=None):
    """IDX images (N x H x W unsigned bytes), e.g. train-images-idx3-ubyte[.gz]."""
    path = Path(path)
    with _open_regular(path) as raw:
        with _readable(path, "IDX file"):
            gzipped = raw.read(2) == b"\x1f\x8b"
        if not gzipped:
            raw.seek(0)
            declared, start = _idx_header(raw, path)
            _check_budget(declared, size, channels)
            _check_length(declared, _file_size(raw) - start)
            return _decode(declared, _chunks(raw, declared), size, channels)
        with _gunzip(raw, path) as stream:
            declared, start = _idx_header(stream, path)
        _check_budget(declared, size, channels)
        _check_expansion(declared, start + declared.nbytes, _file_size(raw), "a gzip file")
        with _gunzip(raw, path, start) as stream, _readable(path, "gzip file"):
            found = _count(stream, declared.nbytes)
        _check_length(declared, found, exact=False)
        with _gunzip(raw, path, start) as stream:
            return _decode(declared, _chunks(stream, declared), size, channels)


def _gunzip(raw: BinaryIO, path: Path, start: int = 0) -> gzip.GzipFile:
    """A decompressing stream over the gzip file `raw`, from byte `start` of what it holds."""
    raw.seek(0)
    stream = gzip.GzipFile(fileobj=raw, mode="rb")
    _read_exact(stream, start, path)
    return stream


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
