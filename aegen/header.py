"""Reading a checkpoint's header: what the weights are and where they came from, checked, with
no weights loaded and no torch imported (so `aegen info` is instant). See docs/checkpoints.md
for the format; aegen/checkpoint.py saves and loads the weights.
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .builtin_names import OBJECTIVE
from .errors import CheckpointError

FORMAT = "aegen.checkpoint"
FORMAT_VERSION = 1
METADATA_KEY = "aegen"
OPTIMIZER_PREFIX = "optimizer/"
RAW_PREFIX = "raw/"  # with --ema: the weights the optimizer trains (the model's are the average)
TRAINING_PREFIXES = (OPTIMIZER_PREFIX, RAW_PREFIX)
PICKLE_SUFFIXES = {".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin"}
_MAX_HEADER = 100 * 1024 * 1024
# Bounds on what a checkpoint may declare, checked before anything is built: a few hundred
# bytes of metadata must not make aegen allocate gigabytes or compute 2**depth for a minute.
MAX_SIZE = 1024  # image side
MAX_CHANNELS = 4
CONFIG_INT_LIMIT = 2**16  # any whole number in a config (widths, depths, counts)
MAX_CONFIG_KEYS = 64
MAX_CONFIG_TEXT = 256
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2,
    "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8,
}
_SPECIAL = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
_CONVERT_HINT = (
    "aegen never unpickles files; convert it in a Python session you trust: "
    "safetensors.torch.save_file(torch.load(PATH, weights_only=True), 'weights.safetensors')"
)


@dataclass
class CheckpointInfo:
    """What a checkpoint's header says, read without loading any weights."""

    path: Path
    architecture: str
    config: dict[str, Any]
    channels: int
    size: int
    parameters: int
    provenance: dict[str, Any]
    format_version: int
    plugin: str | None
    tensors: dict[str, tuple[int, ...]] = field(repr=False)
    training_state: dict[str, Any] | None = field(default=None, repr=False)
    objective: dict[str, Any] | None = None  # None: written before objectives (plain copying)
    dtypes: dict[str, str] = field(default_factory=dict, repr=False)  # safetensors' names

    def as_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format_version": self.format_version,
            "architecture": self.architecture,
            "plugin": self.plugin,
            "config": self.config,
            "image": {"channels": self.channels, "size": self.size},
            "parameters": self.parameters,
            "objective": self.objective or {"name": OBJECTIVE, "options": {}},
            "provenance": self.provenance,
            "resumable": self.training_state is not None,
        }


def _short(value: Any) -> str:
    """A value as an error shows it: repr (control characters escaped), at most 40 chars."""
    if _is_whole(value) and value.bit_length() > 128:
        return f"a number of {value.bit_length()} bits"  # repr refuses 4300+ digits
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _open_regular(path: Path) -> BinaryIO:
    """Open a regular file only: a FIFO would block forever and a device never end. The mode
    is checked before opening (opening a device can have effects) and again on the open file."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)) if stat.S_ISREG(mode) else -1
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if fd < 0 or not stat.S_ISREG(os.fstat(fd).st_mode):
        if fd >= 0:
            mode = os.fstat(fd).st_mode
            os.close(fd)
        what = next((name for test, name in _SPECIAL if test(mode)), "not a regular file")
        raise CheckpointError(f"{path} is {what}, not a checkpoint file")
    return os.fdopen(fd, "rb")


def _looks_pickled(path: Path, head: bytes) -> bool:
    return path.suffix.lower() in PICKLE_SUFFIXES or head[8:9] != b"{" and (
        head[:4] == b"PK\x03\x04" or head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05"
    )


def _read_raw_header(path: Path) -> tuple[dict[str, str], dict[str, Any], int]:
    """The metadata, the tensor entries and the bytes of tensor data after the header."""
    with _open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(9)
        if _looks_pickled(path, head):
            raise CheckpointError(f"{path} looks like a PyTorch pickle; {_CONVERT_HINT}")
        if len(head) < 9:
            raise CheckpointError(f"{path} is truncated or not a safetensors file")
        (length,) = struct.unpack("<Q", head[:8])
        if length > min(size - 8, _MAX_HEADER):
            raise CheckpointError(f"{path} is truncated or not a safetensors file")
        fh.seek(8)
        try:
            header = json.loads(fh.read(length))
            if not isinstance(header, dict):
                raise ValueError("not an object")
        except (ValueError, RecursionError):
            raise CheckpointError(
                f"{path} is corrupt: its safetensors header is not valid JSON"
            ) from None
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path} is corrupt: its safetensors metadata is not an object")
    return metadata, header, size - 8 - length


def _elements(shape: list[int], limit: int) -> int:
    """The product of `shape`, or limit + 1 once it exceeds `limit` (no huge products)."""
    if 0 in shape:
        return 0
    total = 1
    for side in shape:
        total *= side
        if total > limit:
            return limit + 1
    return total


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tensor_shapes(
    path: Path, header: dict[str, Any], data_size: int
) -> tuple[dict[str, tuple], dict[str, str]]:
    """Each tensor's shape, once its dtype, shape and byte range agree with each other and
    with the file (so the tensors a header describes never exceed the file's size)."""
    shapes: dict[str, tuple] = {}
    dtypes: dict[str, str] = {}
    for name, entry in header.items():
        entry = entry if isinstance(entry, dict) else {}
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        itemsize = DTYPE_BYTES.get(entry.get("dtype"), 0) if isinstance(
            entry.get("dtype"), str) else 0
        sound = (
            itemsize and isinstance(shape, list) and all(_is_whole(s) and s >= 0 for s in shape)
            and isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_whole, offsets))
        )
        if not sound:
            raise CheckpointError(
                f"{path} is corrupt: tensor {_short(name)} in its header is malformed"
            )
        begin, end = offsets
        if end > data_size:
            raise CheckpointError(
                f"{path} is truncated: its header describes {end} bytes of tensors, "
                f"{data_size} remain"
            )
        if not 0 <= begin <= end or _elements(shape, data_size) * itemsize != end - begin:
            raise CheckpointError(
                f"{path} is corrupt: tensor {_short(name)}'s shape {_short(shape)} does not "
                f"fit its {max(end - begin, 0)} bytes"
            )
        shapes[name], dtypes[name] = tuple(shape), entry["dtype"]
    return shapes, dtypes


def read_checkpoint_info(path: str | os.PathLike) -> CheckpointInfo:
    """Read and check a checkpoint's header. Cheap: no torch, no weights."""
    path = Path(path)
    raw, header, data_size = _read_raw_header(path)
    tensors, dtypes = _tensor_shapes(path, header, data_size)
    try:
        metadata = json.loads(raw[METADATA_KEY])
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise ValueError("no aegen metadata")
    except (KeyError, ValueError, TypeError, RecursionError):
        raise CheckpointError(f"{path} is a safetensors file but not an aegen checkpoint") from None
    weights = sum(_elements(list(shape), data_size) for name, shape in tensors.items()
                  if not name.startswith(TRAINING_PREFIXES))
    try:
        version = _whole(path, metadata, "format_version", 0, 2**31)
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"{path} has checkpoint format {version}; this aegen reads up to "
                f"{FORMAT_VERSION}: upgrade aegen"
            )
        if not isinstance(metadata.get("training_state") or {}, dict):
            raise TypeError("training_state is not an object")
        channels = _whole(path, metadata, "channels", 1, MAX_CHANNELS)
        size = _whole(path, metadata, "size", 1, MAX_SIZE)
        if not isinstance(metadata["architecture"], str):
            raise TypeError("architecture is not a string")
        if not isinstance(metadata.get("plugin"), (str, type(None))):
            raise TypeError("plugin is not a string")
        return CheckpointInfo(
            path=path,
            architecture=metadata["architecture"],
            config=_config(path, metadata["config"], channels, size),
            channels=channels,
            size=size,
            parameters=_whole(path, metadata, "parameters", 0, weights),
            provenance=dict(metadata.get("provenance") or {}),
            format_version=version,
            plugin=metadata.get("plugin"),
            tensors=tensors,
            training_state=metadata.get("training_state") or None,
            objective=_objective(metadata.get("objective")),
            dtypes=dtypes,
        )
    except (KeyError, ValueError, TypeError, OverflowError, AttributeError) as exc:
        raise CheckpointError(f"{path} has damaged aegen metadata ({exc})") from None


def _whole(path: Path, metadata: dict[str, Any], key: str, low: int, high: int) -> int:
    """A whole number of the metadata within [low, high]: a size of 0, false or 10**5 would
    fail later as a division by zero or a 100 GB allocation."""
    value = metadata[key]
    if not _is_whole(value) or not low <= value <= high:
        raise CheckpointError(
            f"{path} has damaged aegen metadata: {key!r} must be a whole number from {low} "
            f"to {high}, not {_short(value)}"
        )
    return value


def _sane(value: Any) -> bool:
    """A config value any architecture could take: a short string, a finite number of at
    most CONFIG_INT_LIMIT, a bool or null (never 10**20, which `2**depth` chokes on)."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) <= CONFIG_INT_LIMIT
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= MAX_CONFIG_TEXT


def _config(path: Path, config: Any, channels: int, size: int) -> dict[str, Any]:
    """The config, bounded, and agreeing with the image the metadata declares."""
    if not isinstance(config, dict) or len(config) > MAX_CONFIG_KEYS:
        raise CheckpointError(f"{path} has damaged aegen metadata: 'config' is not an object "
                              f"of at most {MAX_CONFIG_KEYS} keys")
    for key, value in config.items():
        if not _sane(value):
            raise CheckpointError(
                f"{path} has damaged aegen metadata: config key {_short(key)} is "
                f"{_short(value)}; whole numbers must lie within +-{CONFIG_INT_LIMIT}"
            )
    for key, image in (("channels", channels), ("size", size)):
        if config.get(key) != image or not _is_whole(config.get(key)):
            raise CheckpointError(
                f"{path} has damaged aegen metadata: its config's {key!r} is "
                f"{_short(config.get(key))}, its image's {image}"
            )
    return dict(config)


def _objective(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise TypeError("objective is not an object with a name")
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise TypeError("objective options are not an object")
    return {"name": raw["name"], "options": dict(options), "plugin": raw.get("plugin")}
