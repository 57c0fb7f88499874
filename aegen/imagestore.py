"""Decoded images on disk: a uint8 (N, C, size, size) .npy file, written one image at a time
and read one batch at a time.

Batches are read with positioned reads, not through a memory map: the pages stay in the
operating system's file cache, shared by every process and dropped under memory pressure, and
never count towards a process's resident memory, so what training holds does not grow with
the data set. `numpy.load(path, mmap_mode="r")` opens the same file.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

HEADER_BYTES = 128  # a .npy 1.0 header for any uint8 4-d shape fits in 128 bytes
CONVERT_CHUNK = 1024  # images converted at a time when the channels are settled at the end

_writer: contextvars.ContextVar[ImageFileWriter | None] = contextvars.ContextVar(
    "aegen_image_writer", default=None)


def luma(images: torch.Tensor) -> torch.Tensor:
    """torchvision's grey of an RGB batch (`rgb_to_grayscale`), imported only when a colour
    image must become grey: importing torchvision costs a command seconds."""
    from torchvision.transforms.functional import rgb_to_grayscale

    return rgb_to_grayscale(images)


class ImageFile:
    """A read-only uint8 (N, C, size, size) .npy file that indexes like the tensor it holds:
    `images[index]` (an int, a slice, or a sequence or tensor of indices) reads those images."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read is None:
                raise ValueError(f"{self.path}: .npy version {version} is not read")
            shape, fortran, dtype = read(f)
            self.offset = f.tell()
        if dtype != np.uint8 or fortran or len(shape) != 4:
            raise ValueError(f"{self.path}: not a C-ordered uint8 N x C x H x W array")
        self.shape = tuple(int(n) for n in shape)
        self.row = int(np.prod(self.shape[1:]))
        if os.path.getsize(self.path) != self.offset + self.shape[0] * self.row:
            raise ValueError(f"{self.path}: its length is not what its header declares")
        self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._lock = threading.Lock()  # for the seek-and-read fallback without preadv

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.row

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, (int, np.integer)):
            return self[[int(index)]][0]
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                out = np.empty((max(0, stop - start), *self.shape[1:]), dtype=np.uint8)
                self._read_into(out, start)
                return torch.from_numpy(out)
            index = range(start, stop, step)
        rows = torch.as_tensor(index, dtype=torch.long).reshape(-1).tolist()
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)
        for i, row in enumerate(rows):
            if not -len(self) <= row < len(self):
                raise IndexError(f"image {row} of {len(self)}")
            self._read_into(out[i : i + 1], row % len(self))
        return torch.from_numpy(out)

    def _read_into(self, out: np.ndarray, first: int) -> None:
        """Fill `out` (consecutive images) from image `first` on."""
        view, where = memoryview(out).cast("B"), self.offset + first * self.row
        done = 0
        while done < len(view):
            if hasattr(os, "preadv"):
                got = os.preadv(self._fd, [view[done:]], where + done)
            else:
                with self._lock:
                    os.lseek(self._fd, where + done, os.SEEK_SET)
                    got = os.readv(self._fd, [view[done:]])
            if got <= 0:
                raise OSError(f"{self.path} ended early")
            done += got

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except (OSError, AttributeError):
            pass

    def __repr__(self) -> str:
        return f"ImageFile({str(self.path)!r}, shape={self.shape})"


def npy_header(shape: tuple[int, ...]) -> bytes:
    """The .npy 1.0 header of a C-ordered uint8 array of `shape`, padded to HEADER_BYTES."""
    text = repr({"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    body = text.encode("latin1")
    pad = HEADER_BYTES - 10 - len(body) - 1
    if pad < 0:
        raise ValueError(f"shape {shape} does not fit a {HEADER_BYTES}-byte header")
    body += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


class ImageFileWriter:
    """Writes decoded RGB images one at a time to `rgb_path`, then `finish` settles the
    channels and writes the .npy at `path` (both names chosen by the caller, who renames the
    result into place)."""

    def __init__(self, path: Path, rgb_path: Path, size: int):
        self.path, self.rgb_path, self.size = Path(path), Path(rgb_path), size
        self._file = open(self.rgb_path, "wb")
        self._file.write(b"\0" * HEADER_BYTES)  # a header once the count is known
        self.count = 0

    def add(self, pixels: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())
        self.count += 1

    def finish(self, channels: int, grey: bool) -> ImageFile:
        """The images kept as (count, channels, size, size): RGB as written, or one channel
        (the first where every image was grey, else torchvision's luma), as in memory."""
        shape = (self.count, 3, self.size, self.size)
        self._file.seek(0)
        self._file.write(npy_header(shape))
        self._file.close()
        if channels == 3:
            os.replace(self.rgb_path, self.path)
            return ImageFile(self.path)
        rgb = ImageFile(self.rgb_path)
        try:
            with open(self.path, "wb") as out:
                out.write(npy_header((self.count, 1, self.size, self.size)))
                for start in range(0, self.count, CONVERT_CHUNK):
                    chunk = rgb[start : start + CONVERT_CHUNK]
                    one = chunk[:, :1] if grey else luma(chunk)
                    out.write(one.contiguous().numpy().tobytes())
        finally:
            rgb.close()
            self.rgb_path.unlink(missing_ok=True)
        return ImageFile(self.path)

    def discard(self) -> None:
        self._file.close()
        for path in (self.rgb_path, self.path):
            path.unlink(missing_ok=True)


@contextmanager
def writing_to(writer: ImageFileWriter) -> Iterator[ImageFileWriter]:
    """Within this block `load_images` writes what it decodes to `writer`, not to memory."""
    token = _writer.set(writer)
    try:
        yield writer
    finally:
        _writer.reset(token)


def current_writer() -> ImageFileWriter | None:
    return _writer.get()
