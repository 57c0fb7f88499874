"""Checkpoints: one .safetensors file holding weights, what they are, and where they came from.

The header is read and checked before anything is built, and nothing is ever unpickled.
See docs/checkpoints.md for the format.
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
from .files import atomic_output

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


@dataclass
class Checkpoint:
    """A loaded model with the header it came from."""

    model: Any
    info: CheckpointInfo


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


def save_checkpoint(
    path: str | os.PathLike,
    model: Any,
    *,
    architecture: str,
    config: dict[str, Any],
    provenance: dict[str, Any] | None = None,
    optimizer: Any = None,
    training_state: dict[str, Any] | None = None,
    objective: dict[str, Any] | None = None,
    raw_model: Any = None,
) -> Path:
    """Write weights and metadata atomically; with `optimizer`, also what resuming needs
    (and with `raw_model`, the trained weights behind an averaged `model`).

    `objective` ({"name", "options"[, "plugin"]}) records how the model was trained; samplers
    take defaults for options of the same name from it.
    """
    from safetensors.torch import save_file

    from .plugins import get_registry

    arch = get_registry().architecture(architecture)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    fields: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": architecture,
        "plugin": arch.plugin,
        "config": config,
        "channels": config["channels"],
        "size": config["size"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "provenance": provenance or {},
    }
    if objective is not None:
        fields["objective"] = _objective(objective)
    if optimizer is not None:
        state = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for index, entries in state["state"].items():
            for key, value in entries.items():
                if hasattr(value, "detach"):
                    tensors[f"{OPTIMIZER_PREFIX}{index}/{key}"] = value.detach().cpu().contiguous()
                else:
                    scalars.setdefault(str(index), {})[key] = value
        if raw_model is not None:
            for key, value in raw_model.state_dict().items():
                tensors[f"{RAW_PREFIX}{key}"] = value.detach().cpu().contiguous()
        training = dict(training_state or {})
        training["optimizer"] = {"param_groups": state["param_groups"], "scalars": scalars}
        fields["training_state"] = training
    # One key holding sorted JSON: safetensors stores metadata in a hash map whose order
    # varies between runs, and identical settings must give identical files.
    metadata = {METADATA_KEY: json.dumps(fields, sort_keys=True)}
    target = Path(path)
    with atomic_output(target) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return target


def weights_only(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Copy a checkpoint without its optimizer state and training state: a third of the size
    for Adam, and no longer resumable. Weights, config, objective and provenance are kept
    (provenance notes the training state was dropped)."""
    loaded = load_checkpoint(source)
    info = loaded.info
    provenance = {**info.provenance, "training_state": "dropped (weights only)"}
    return save_checkpoint(
        target, loaded.model, architecture=info.architecture, config=info.config,
        provenance=provenance, objective=info.objective,
    )


def _check_tensors(info: CheckpointInfo, model: Any) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: s for k, s in info.tensors.items() if not k.startswith(TRAINING_PREFIXES)}
    where = f"{info.path} (architecture {info.architecture!r})"
    missing = sorted(set(expected) - set(found))
    if missing:
        raise CheckpointError(f"{where} lacks {len(missing)} tensor(s), first {missing[0]!r}")
    extra = sorted(set(found) - set(expected))
    if extra:
        raise CheckpointError(f"{where} has {len(extra)} unexpected tensor(s), first {extra[0]!r}")
    for name, shape in expected.items():
        if found[name] != shape:
            raise CheckpointError(
                f"{where}: tensor {name!r} has shape {list(found[name])}, the model needs "
                f"{list(shape)}"
            )


def load_checkpoint(path: str | os.PathLike, device: Any = "cpu") -> Checkpoint:
    """Check a checkpoint completely, then build its model and load the weights into it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .errors import UsageError
    from .models import build_model
    from .plugins import get_registry

    info = read_checkpoint_info(path)
    registry = get_registry()
    if info.architecture not in registry.architectures:
        known = ", ".join(sorted(registry.architectures)) or "none"
        source = f" (provided by plugin {info.plugin!r})" if info.plugin else ""
        raise CheckpointError(
            f"{info.path} needs architecture {info.architecture!r}{source}, which is not "
            f"installed; installed architectures: {known}"
        )
    try:
        model = build_model(info.architecture, info.config)
    except UsageError as exc:
        raise CheckpointError(
            f"{info.path}: its config cannot be built: {exc}", parameters=exc.parameters
        ) from None
    _check_tensors(info, model)
    try:
        state = load_file(str(info.path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{info.path} is corrupt: {exc}") from None
    weights = {k: v for k, v in state.items() if not k.startswith(TRAINING_PREFIXES)}
    model.load_state_dict(weights, strict=True)
    model.to(device)
    return Checkpoint(model=model, info=info)


def load_raw_weights(info: CheckpointInfo) -> dict[str, Any]:
    """The trained (not averaged) weights a checkpoint made with --ema keeps for resuming."""
    from safetensors import safe_open

    with safe_open(str(info.path), framework="pt") as fh:
        raw = {k[len(RAW_PREFIX):]: fh.get_tensor(k) for k in fh.keys() if k.startswith(RAW_PREFIX)}
    if not raw:
        raise CheckpointError(f"{info.path}: its training state names an average but holds no "
                              "raw weights")
    return raw


def load_optimizer_state(info: CheckpointInfo) -> dict[str, Any]:
    """The optimizer state_dict saved with a checkpoint, for resuming training."""
    from safetensors import safe_open

    if info.training_state is None:
        raise CheckpointError(f"{info.path} holds no training state, so it cannot be resumed")
    saved = info.training_state["optimizer"]
    state: dict[int, dict[str, Any]] = {}
    with safe_open(str(info.path), framework="pt") as fh:
        for name in fh.keys():
            if name.startswith(OPTIMIZER_PREFIX):
                index, _, key = name[len(OPTIMIZER_PREFIX) :].partition("/")
                if not index.isdigit() or not key:
                    raise CheckpointError(f"{info.path}: malformed optimizer tensor {name!r}")
                state.setdefault(int(index), {})[key] = fh.get_tensor(name)
    for index, values in saved["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": saved["param_groups"]}
