"""Build models from registered architectures and run them the way the original article samples."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .errors import AegenError, ConfigError, UsageError
from .options import coerce
from .plugins import get_registry

IMAGE_KEYS = ("channels", "size")


def resolve_config(
    architecture: str, overrides: Mapping[str, Any], channels: int, size: int
) -> dict[str, Any]:
    """The architecture's defaults, updated by `overrides`, plus the image channels and size."""
    arch = get_registry().architecture(architecture)
    unknown = sorted(set(overrides) - set(arch.defaults))
    if unknown:
        if unknown[0] in IMAGE_KEYS:
            key = unknown[0]  # the CLI reads: set size with --size, not --set (aegen/cli.py FLAGS)
            raise UsageError(f"set {key} with `{key}`, not `config`", parameters=[key, "config"])
        known = ", ".join(sorted(arch.defaults)) or "none"
        raise UsageError(
            f"architecture {architecture!r} has no config key {unknown[0]!r} (its keys: {known})"
        )
    config = dict(arch.defaults)
    for key, value in overrides.items():
        config[key] = coerce(value, arch.defaults[key], f"config key {key!r} of {architecture!r}")
    config.update(channels=int(channels), size=int(size))
    check_limits(architecture, config)
    return config


def check_limits(architecture: str, config: Mapping[str, Any]) -> None:
    """Refuse config values outside the limits the architecture declares, before it builds
    anything: a checkpoint's or a user's width of 10**6 is one line, not gigabytes."""
    arch = get_registry().architecture(architecture)
    for key, (low, high) in sorted(arch.limits.items()):
        value = config.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue  # the architecture's defaults give the type; coerce checked it
        if (low is not None and value < low) or (high is not None and value > high):
            span = f"from {low} to {high}" if low is not None and high is not None else (
                f"at least {low}" if high is None else f"at most {high}")
            raise ConfigError(
                f"architecture {architecture!r}: `config` {key} must be {span}, got {value}",
                parameters=["config"],
            )


def build_model(architecture: str, config: Mapping[str, Any]):
    """Build an nn.Module from a registered architecture, turning plugin failures into errors."""
    arch = get_registry().architecture(architecture)
    check_limits(architecture, config)
    try:
        model = arch.build(dict(config))
    except ConfigError:
        raise
    except Exception as exc:
        raise AegenError(
            f"architecture {architecture!r} (plugin {arch.plugin!r}) failed to build: {exc}"
        ) from exc
    for method in ("encode", "decode"):
        if not callable(getattr(model, method, None)):
            raise AegenError(f"architecture {architecture!r} built a model without {method}()")
    return model


@contextlib.contextmanager
def batch_statistics(model) -> Iterator[None]:
    """Run batch norm on batch statistics (the article's sampling) without touching its stored
    running statistics; every other module is in eval mode. Restores the model afterwards."""
    saved = [(m, m.training, getattr(m, "track_running_stats", None)) for m in model.modules()]
    try:
        model.eval()
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                module.train()
                module.track_running_stats = False
        yield
    finally:
        for module, training, tracking in saved:
            module.training = training
            if tracking is not None:
                module.track_running_stats = tracking


def check_batch_statistics(model, smallest_batch: int, larger: Sequence[str] = (),
                           running_stats: bool = True) -> None:
    """Refuse, in words, a batch that batch statistics cannot use: BatchNorm1d needs two
    samples per batch (BatchNorm2d can use the pixels of one image). The advice names the
    caller's parameters that would help: `larger` ones to raise, or `running_stats`."""
    if smallest_batch < 2 and any(isinstance(m, nn.BatchNorm1d) for m in model.modules()):
        remedies = ["raise " + " or ".join(f"`{p}`" for p in larger)] if larger else []
        remedies += ["use `running_stats`"] if running_stats else []
        advice = (", or " if len(larger) > 1 else " or ").join(remedies)
        raise UsageError(
            "this model has BatchNorm1d, whose batch statistics need at least 2 images per "
            f"batch; {advice}", parameters=[*larger, *(["running_stats"] if running_stats else [])],
        )


@contextlib.contextmanager
def running_statistics(model) -> Iterator[None]:
    """Run the model in eval mode (batch norm on its stored statistics), then restore it."""
    saved = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for module, training in saved:
            module.training = training


def sampling_mode(model, running_stats: bool = False):
    """The context a model runs in when sampling: batch statistics (the article's) or stored."""
    return running_statistics(model) if running_stats else batch_statistics(model)
