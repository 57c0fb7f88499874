"""What a caller asks of a task, as frozen objects: the CLI builds them, the library takes them.

- `Runtime`: where and how the model runs (device, precision, compile, memory format); the
  same group for every command, so a new fast-path flag is one field here.
- `TrainSettings`: what `aegen train` learns and how (everything but the data, the output
  file and the runtime).
- `SamplingSettings`: what `aegen generate` and `aegen walk` sample.
`Outputs` (aegen/outputs.py) plans the files a sampling run writes.

`None` means "the default", and for a resumed training run "what the run began with"; the
defaults themselves are applied in one place each (`TrainSettings.with_defaults`, ...).
Checks name the library's parameters (aegen/errors.py); they need no torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from . import builtin_names
from .errors import UsageError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LR_SCHEDULES = ("constant", "cosine")
SEED_LIMIT = 2**40

Settings = TypeVar("Settings")


@dataclass(frozen=True)
class Runtime:
    """The fast-path group: `device` (auto, cpu, cuda, cuda:1, mps, or a torch.device),
    `precision` (auto, fp32, bf16, fp16; None is auto, or a resumed training run's own),
    `compile` (torch.compile), `channels_last` (None: what auto measured faster)."""

    device: Any = "auto"
    precision: str | None = None
    compile: bool = False
    channels_last: bool | None = None

    def check(self) -> None:
        if self.precision is not None and self.precision not in PRECISIONS:
            raise UsageError(
                f"`precision` must be one of {', '.join(PRECISIONS)}; got {self.precision!r}",
                parameters=["precision"],
            )


TRAIN_DEFAULTS: Mapping[str, Any] = {
    "architecture": builtin_names.ARCHITECTURE,
    "size": 64,
    "batch_size": 16,
    "lr": 1e-4,
    "lr_schedule": "constant",
    "objective": builtin_names.OBJECTIVE,
    "flip": False,
}


@dataclass(frozen=True)
class TrainSettings:
    """Everything `train` learns with. None: the default (or, resuming, the saved run's)."""

    architecture: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    size: int | None = None
    channels: int | None = None
    epochs: int = 20
    batch_size: int | None = None
    lr: float | None = None
    lr_schedule: str | None = None
    ema: float | None = None
    seed: int | None = None
    source: str | None = None
    objective: str | None = None
    objective_options: Mapping[str, Any] = field(default_factory=dict)
    sync_bn: bool = False
    flip: bool | None = None

    def with_defaults(self) -> TrainSettings:
        """Every unset setting that has a default, set to it (the seed stays: it is drawn)."""
        unset = {k: v for k, v in TRAIN_DEFAULTS.items() if getattr(self, k) is None}
        return dataclasses.replace(self, **unset)

    def check(self) -> None:
        """Refuse values no run can use (after `with_defaults`)."""
        if self.epochs < 1:
            raise UsageError(f"`epochs` must be at least 1, got {self.epochs}",
                             parameters=["epochs"])
        if self.channels is not None and self.channels not in (1, 3):
            raise UsageError(f"`channels` must be 1 or 3, not {self.channels}",
                             parameters=["channels"])
        for name in ("batch_size", "size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"`{name}` must be at least 1, got {value}", parameters=[name])
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise UsageError(f"`lr` must be a positive number, got {self.lr}", parameters=["lr"])
        if self.ema is not None and not 0 < self.ema < 1:
            raise UsageError(f"`ema` must be between 0 and 1 (a decay per step), got {self.ema}",
                             parameters=["ema"])
        if self.lr_schedule is not None and self.lr_schedule not in LR_SCHEDULES:
            raise UsageError(
                f"`lr_schedule` must be one of {', '.join(LR_SCHEDULES)}; got {self.lr_schedule!r}",
                parameters=["lr_schedule"],
            )
        check_seed(self.seed)


@dataclass(frozen=True)
class SamplingSettings:
    """What a sampling run draws: `n` images (or chains) in batches of `batch_size` (None:
    all at once), `steps` steps of `sampler` with `options` (None: the sampler's own step
    count, else `command_steps`), seeds seed, seed + 1, ... (None: drawn), batch norm on
    `running_stats` or the batch's own statistics."""

    sampler: str = builtin_names.SAMPLER
    options: Mapping[str, Any] = field(default_factory=dict)
    steps: int | None = None
    n: int = 16
    batch_size: int | None = None
    seed: int | None = None
    running_stats: bool = False
    # The steps of a sampler that declares none, when `steps` is None: the article's 100.
    command_steps: ClassVar[int] = 100

    def check(self) -> None:
        for name in ("steps", "n"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"`{name}` must be at least 1, got {value}", parameters=[name])
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError(f"`batch_size` must be at least 1, got {self.batch_size}",
                             parameters=["batch_size"])

    @property
    def forward_batch(self) -> int:
        """The largest batch the model sees in one forward pass."""
        return min(self.batch_size or self.n, self.n)


def check_seed(seed: int | None) -> None:
    if seed is not None and not 0 <= seed < SEED_LIMIT:
        raise UsageError(f"`seed` must be between 0 and 2**40, got {seed}", parameters=["seed"])


def with_fields(settings: Settings | None, kind: type[Settings], runtime: Runtime | None,
                fields: Mapping[str, Any], task: str) -> tuple[Settings, Runtime]:
    """`settings` and `runtime` (or their defaults) with keyword arguments applied by field
    name: a Python caller's shorthand, `train(data, out, epochs=3, device="cpu")`. A name that
    is a field of neither is a TypeError, as for any function."""
    own = {f.name for f in dataclasses.fields(kind)}
    run = {f.name for f in dataclasses.fields(Runtime)}
    unknown = sorted(set(fields) - own - run)
    if unknown:
        raise TypeError(f"{task}() got an unexpected keyword argument {unknown[0]!r}")
    settings = dataclasses.replace(settings if settings is not None else kind(),
                                   **{k: v for k, v in fields.items() if k in own})
    runtime = dataclasses.replace(runtime if runtime is not None else Runtime(),
                                  **{k: v for k, v in fields.items() if k in run})
    return settings, runtime
