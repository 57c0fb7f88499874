"""Reading a checkpoint's header: what the weights are and where they came from, checked, with
no weights loaded and no torch imported (so `aegen info` is instant). See docs/checkpoints.md
for the format; aegen/checkpoint.py saves and loads the weights.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def _read_raw_header(path: Path) -> tuple[dict[str, str], dict[str, Any]]:
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(9)
        looks_safetensors = head[8:9] == b"{"
        if (
            path.suffix.lower() in PICKLE_SUFFIXES
            or not looks_safetensors
            and (
                head[:4] == b"PK\x03\x04"
                or head[:1] == b"\x80"
                and head[1:2] in b"\x02\x03\x04\x05"
            )
        ):
            raise CheckpointError(f"{path} looks like a PyTorch pickle; {_CONVERT_HINT}")
        head = head[:8]
        fh.seek(8)
        if len(head) < 8:
            raise CheckpointError(f"{path} is truncated or not a safetensors file")
        (length,) = struct.unpack("<Q", head)
        if length > min(size - 8, _MAX_HEADER):
            raise CheckpointError(f"{path} is truncated or not a safetensors file")
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
    data_size = size - 8 - length
    try:
        end = max((int(t["data_offsets"][1]) for t in header.values()), default=0)
    except (KeyError, TypeError, ValueError, IndexError, OverflowError, AttributeError):
        raise CheckpointError(
            f"{path} is corrupt: a tensor entry in its header is malformed"
        ) from None
    if end > data_size:
        raise CheckpointError(
            f"{path} is truncated: its header describes {end} bytes of tensors, {data_size} remain"
        )
    return metadata, header


def read_checkpoint_info(path: str | os.PathLike) -> CheckpointInfo:
    """Read and check a checkpoint's header. Cheap: no torch, no weights."""
    path = Path(path)
    raw, header = _read_raw_header(path)
    try:
        metadata = json.loads(raw[METADATA_KEY])
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise ValueError("no aegen metadata")
    except (KeyError, ValueError, TypeError, RecursionError):
        raise CheckpointError(f"{path} is a safetensors file but not an aegen checkpoint") from None
    try:
        version = int(metadata["format_version"])
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"{path} has checkpoint format {version}; this aegen reads up to "
                f"{FORMAT_VERSION}: upgrade aegen"
            )
        if not isinstance(metadata.get("training_state") or {}, dict):
            raise TypeError("training_state is not an object")
        return CheckpointInfo(
            path=path,
            architecture=str(metadata["architecture"]),
            config=dict(metadata["config"]),
            channels=int(metadata["channels"]),
            size=int(metadata["size"]),
            parameters=int(metadata["parameters"]),
            provenance=dict(metadata.get("provenance") or {}),
            format_version=version,
            plugin=metadata.get("plugin"),
            tensors={name: tuple(entry["shape"]) for name, entry in header.items()},
            training_state=metadata.get("training_state") or None,
            objective=_objective(metadata.get("objective")),
        )
    except (KeyError, ValueError, TypeError, OverflowError, AttributeError) as exc:
        raise CheckpointError(f"{path} has damaged aegen metadata ({exc})") from None


def _objective(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise TypeError("objective is not an object with a name")
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise TypeError("objective options are not an object")
    return {"name": raw["name"], "options": dict(options), "plugin": raw.get("plugin")}
