"""Checkpoints: one .safetensors file holding weights, what they are, and where they came from.

Saving and loading the weights; the header is read and checked first (aegen/header.py, no
torch), before anything is built, and nothing is ever unpickled. See docs/checkpoints.md for
the format.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .errors import AegenError, CheckpointError, UsageError
from .files import atomic_output
from .header import (  # noqa: F401  (the header's names, re-exported: one import for both)
    FORMAT,
    FORMAT_VERSION,
    METADATA_KEY,
    OPTIMIZER_PREFIX,
    PICKLE_SUFFIXES,
    RAW_PREFIX,
    TRAINING_PREFIXES,
    CheckpointInfo,
    _objective,
    read_checkpoint_info,
)
from .models import IMAGE_KEYS, build_model
from .plugins import get_registry


@dataclass
class Checkpoint:
    """A loaded model with the header it came from."""

    model: Any
    info: CheckpointInfo


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
    """The file's tensors are exactly the model's: names, shapes and kinds of dtype."""
    expected = {k: v for k, v in model.state_dict().items()}
    found = {k: s for k, s in info.tensors.items() if not k.startswith(TRAINING_PREFIXES)}
    where = f"{info.path} (architecture {info.architecture!r})"
    missing = sorted(set(expected) - set(found))
    if missing:
        raise CheckpointError(f"{where} lacks {len(missing)} tensor(s), first {missing[0]!r}")
    extra = sorted(set(found) - set(expected))
    if extra:
        raise CheckpointError(f"{where} has {len(extra)} unexpected tensor(s), first {extra[0]!r}")
    for name, tensor in expected.items():
        if found[name] != tuple(tensor.shape):
            raise CheckpointError(
                f"{where}: tensor {name!r} has shape {list(found[name])}, the model needs "
                f"{list(tensor.shape)}"
            )
        dtype = info.dtypes.get(name) if info.dtypes else None
        if dtype is not None and _dtype_kind(dtype) != _torch_kind(tensor.dtype):
            raise CheckpointError(f"{where}: tensor {name!r} is {dtype}, the model needs "
                                  f"{str(tensor.dtype).removeprefix('torch.')}")


def _dtype_kind(dtype: str) -> str:
    return "bool" if dtype == "BOOL" else "float" if dtype[0] in "FB" else "int"


def _torch_kind(dtype: Any) -> str:
    return "bool" if dtype == torch.bool else "float" if dtype.is_floating_point else "int"


def _check_config(info: CheckpointInfo, defaults: dict[str, Any]) -> None:
    """Every config key is the architecture's, with the type of its default."""
    for key, value in info.config.items():
        if key in IMAGE_KEYS:
            continue
        if key not in defaults:
            raise CheckpointError(f"{info.path}: architecture {info.architecture!r} has no "
                                  f"config key {key!r}")
        like = defaults[key]
        fits = (like is None or type(value) is type(like)
                or type(like) is float and type(value) is int)
        if not fits:
            raise CheckpointError(
                f"{info.path}: config key {key!r} of architecture {info.architecture!r} is "
                f"{type(value).__name__} {value!r}, it takes a {type(like).__name__}"
            )


def check_against_architecture(info: CheckpointInfo) -> None:
    """Build the model the config describes on the meta device (shapes, no memory) and compare
    it with the file's tensors and parameter count, so that a few bytes of metadata never make
    aegen allocate more than the file holds. An architecture that cannot be built on meta
    (data-dependent initialisation) is compared after the real build instead."""
    registry = get_registry()
    if info.architecture not in registry.architectures:
        known = ", ".join(sorted(registry.architectures)) or "none"
        source = f" (provided by plugin {info.plugin!r})" if info.plugin else ""
        raise CheckpointError(
            f"{info.path} needs architecture {info.architecture!r}{source}, which is not "
            f"installed; installed architectures: {known}"
        )
    _check_config(info, dict(registry.architecture(info.architecture).defaults))
    try:
        with torch.device("meta"):
            model = build_model(info.architecture, info.config)
    except UsageError as exc:
        raise CheckpointError(f"{info.path}: its config cannot be built: {exc}") from None
    except AegenError:
        return  # not buildable on meta: load_checkpoint compares after the real build
    _check_tensors(info, model)
    count = sum(p.numel() for p in model.parameters())
    if count != info.parameters:
        raise CheckpointError(f"{info.path}: its metadata says {info.parameters} parameters, "
                              f"its config builds {count}")


def load_checkpoint(path: str | os.PathLike, device: Any = "cpu") -> Checkpoint:
    """Check a checkpoint completely (header, then the config against its tensors on the meta
    device), then build its model and load the weights into it."""
    info = read_checkpoint_info(path)
    check_against_architecture(info)
    try:
        model = build_model(info.architecture, info.config)
    except UsageError as exc:
        raise CheckpointError(
            f"{info.path}: its config cannot be built: {exc}"
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
    with safe_open(str(info.path), framework="pt") as fh:
        raw = {k[len(RAW_PREFIX):]: fh.get_tensor(k) for k in fh.keys() if k.startswith(RAW_PREFIX)}
    if not raw:
        raise CheckpointError(f"{info.path}: its training state names an average but holds no "
                              "raw weights")
    return raw


def load_optimizer_state(info: CheckpointInfo) -> dict[str, Any]:
    """The optimizer state_dict saved with a checkpoint, for resuming training."""
    if info.training_state is None:
        raise CheckpointError(f"{info.path} holds no training state, so it cannot be resumed")
    saved = info.training_state.get("optimizer")
    scalars = saved.get("scalars") if isinstance(saved, dict) else None
    if not (isinstance(scalars, dict) and isinstance(saved.get("param_groups"), list)
            and all(k.isdigit() and isinstance(v, dict) for k, v in scalars.items())):
        raise CheckpointError(f"{info.path}: its training state's 'optimizer' is malformed")
    state: dict[int, dict[str, Any]] = {}
    with safe_open(str(info.path), framework="pt") as fh:
        for name in fh.keys():
            if name.startswith(OPTIMIZER_PREFIX):
                index, _, key = name[len(OPTIMIZER_PREFIX) :].partition("/")
                if not index.isdigit() or not key:
                    raise CheckpointError(f"{info.path}: malformed optimizer tensor {name!r}")
                state.setdefault(int(index), {})[key] = fh.get_tensor(name)
    for index, values in scalars.items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": saved["param_groups"]}
