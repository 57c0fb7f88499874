"""The training state a checkpoint saves for `--resume`, and resuming's reconciliation.

`TrainingState` is the one class that reads and writes the saved state; the defaults of
checkpoints written before a field existed are here and nowhere else. `reconcile` meets a
resumed run's saved settings with the ones asked for: it refuses a contradiction, fills what
was not asked from the saved run, and returns the warnings.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .checkpoint import CheckpointInfo, check_against_architecture
from .errors import CheckpointError, UsageError
from .precision import PRECISIONS
from .settings import LR_SCHEDULES, SEED_LIMIT, Runtime, TrainSettings

REQUIRED = ("epochs_done", "seed", "batch_size", "lr")
MAX_BATCH = 2**20


def _whole(low: int, high: int) -> Any:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# What each saved field must be, checked at `--resume` before any work: a string for an epoch
# count would fail as a TypeError mid-run, and a string of losses be saved back as characters.
FIELD_CHECKS: dict[str, tuple[Any, str]] = {
    "epochs_done": (_whole(0, 2**31), "a whole number of at least 0"),
    "seed": (_whole(0, SEED_LIMIT - 1), f"a whole number from 0 to {SEED_LIMIT - 1}"),
    "batch_size": (_whole(1, MAX_BATCH), f"a whole number from 1 to {MAX_BATCH}"),
    "lr": (lambda v: _number(v) and math.isfinite(v) and v > 0, "a positive number"),
    "losses": (lambda v: isinstance(v, list) and all(map(_number, v)), "a list of numbers"),
    "lr_schedule": (lambda v: v in LR_SCHEDULES, "one of " + ", ".join(LR_SCHEDULES)),
    "planned_epochs": (lambda v: v is None or _whole(1, 2**31)(v), "null or a whole number"),
    "precision": (lambda v: v in PRECISIONS and v != "auto", "fp32, bf16 or fp16"),
    "channels_last": (lambda v: isinstance(v, bool), "true or false"),
    "compiled": (lambda v: isinstance(v, bool), "true or false"),
    "processes": (_whole(1, 2**20), "a whole number of at least 1"),
    "sync_bn": (lambda v: isinstance(v, bool), "true or false"),
    "ema": (lambda v: v is None or _number(v) and 0 <= v < 1, "null or a number in [0, 1)"),
    "flip": (lambda v: isinstance(v, bool), "true or false"),
}


def _check_fields(info: CheckpointInfo, saved: Mapping[str, Any]) -> None:
    for name, (fits, what) in FIELD_CHECKS.items():
        if name in saved and not fits(saved[name]):
            shown = repr(saved[name])
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise CheckpointError(
                f"{info.path}: its training state's {name!r} must be {what}, not {shown}"
            )


@dataclass(frozen=True)
class TrainingState:
    """Where a run stands after `epochs_done` epochs, and what it must keep to continue. The
    defaults are what a checkpoint written before a field existed meant by leaving it out
    (fp32 NCHW, one process, constant rate, no EMA)."""

    epochs_done: int
    seed: int
    batch_size: int
    lr: float
    losses: list[float] = field(default_factory=list)
    lr_schedule: str = "constant"
    planned_epochs: int | None = None
    precision: str = "fp32"
    channels_last: bool = False
    compiled: bool = False
    processes: int = 1
    sync_bn: bool = False
    ema: float | None = None
    flip: bool = False

    @classmethod
    def read(cls, info: CheckpointInfo) -> TrainingState:
        """The state saved in a checkpoint, with the defaults of older checkpoints filled."""
        saved = info.training_state
        if saved is None:
            raise UsageError(
                f"{info.path} holds no training state, so it cannot be resumed"
            )
        missing = [name for name in REQUIRED if name not in saved]
        if missing:
            raise CheckpointError(f"{info.path}: its training state lacks {missing[0]!r}")
        _check_fields(info, saved)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in known})

    def saved(self) -> dict[str, Any]:
        """The dict written into the checkpoint. Fields at their old default are left out
        where older files left them out, so such a file stays byte for byte what it was."""
        state: dict[str, Any] = {
            "epochs_done": self.epochs_done,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "losses": list(self.losses),
        }
        return {**state, **self.settings()}

    def settings(self) -> dict[str, Any]:
        """The run's settings as recorded (in the training state and the provenance)."""
        recorded: dict[str, Any] = {}
        if self.lr_schedule != "constant":
            recorded.update(lr_schedule=self.lr_schedule, planned_epochs=self.planned_epochs)
        recorded.update(self.fast_path())
        if self.processes > 1:
            recorded.update(processes=self.processes, sync_bn=self.sync_bn)
        if self.ema:
            recorded["ema"] = self.ema
        if self.flip:
            recorded["flip"] = True
        return recorded

    def fast_path(self) -> dict[str, Any]:
        return {"precision": self.precision, "channels_last": self.channels_last,
                "compiled": self.compiled}

    def drift(self, now: TrainingState, name: Any) -> list[str]:
        """Why continuing this run (saved in `name`) as `now` will not end as an
        uninterrupted run would: a different fast path or number of processes."""
        said = []
        if self.fast_path() != now.fast_path():
            said.append(f"{name} was trained with {path_words(self.fast_path())}, this run "
                        f"uses {path_words(now.fast_path())}")
        if (self.processes, self.sync_bn) != (now.processes, now.sync_bn):
            said.append(f"{name} was trained by {self.processes} process(es)"
                        f"{_sync_words(self)}, this run has {now.processes}{_sync_words(now)}")
        return [f"{line}: the result will differ from an uninterrupted run" for line in said]


def path_words(path: Mapping[str, Any]) -> str:
    """"bf16, channels-last, compiled": a fast path as a log line says it."""
    return (path["precision"] + (", channels-last" if path["channels_last"] else "")
            + (", compiled" if path.get("compiled") else ""))


def _sync_words(state: TrainingState) -> str:
    return " with `sync_bn`" if state.sync_bn else ""


@dataclass(frozen=True)
class Reconciled:
    """A resumed run's settings and runtime, and what the user should hear about them."""

    settings: TrainSettings
    runtime: Runtime
    state: TrainingState
    warnings: list[str]


def reconcile(info: CheckpointInfo, asked: TrainSettings, runtime: Runtime) -> Reconciled:
    """Continue the run saved in `info`: every setting asked for must equal the saved one
    (the run could not continue otherwise); what was not asked comes from the saved run.
    The checkpoint's tensors are checked against its config first, before any data is read."""
    state = TrainingState.read(info)
    check_against_architecture(info)
    objective = info.objective or {"name": TrainSettings().with_defaults().objective,
                                   "options": {}}
    _refuse_changes(asked, {
        "architecture": info.architecture,
        "size": info.size,
        "channels": info.channels,
        "batch_size": state.batch_size,
        "lr": state.lr,
        "seed": state.seed,
        "objective": objective["name"],
        "lr_schedule": state.lr_schedule,
    })
    if asked.ema is not None and asked.ema != state.ema:
        raise UsageError(f"`ema` {asked.ema} differs from the resumed run's {state.ema or 'none'}",
                         parameters=["ema"])
    if asked.flip is not None and asked.flip != state.flip:
        raise UsageError(f"`flip` {str(asked.flip).lower()} differs from the resumed run's "
                         f"{str(state.flip).lower()}", parameters=["flip"])
    for name, what in (("config", "config"), ("objective_options", "objective")):
        if getattr(asked, name):
            raise UsageError(f"`{name}` cannot change the {what} of a resumed run",
                             parameters=[name])
    if state.epochs_done >= asked.epochs:
        raise UsageError(
            f"{info.path} already has {state.epochs_done} epochs; ask for more with `epochs`",
            parameters=["epochs"],
        )
    settings = dataclasses.replace(
        asked, architecture=info.architecture, config=dict(info.config), size=info.size,
        channels=info.channels, batch_size=state.batch_size, lr=state.lr, seed=state.seed,
        objective=objective["name"], objective_options=objective["options"],
        lr_schedule=state.lr_schedule, ema=state.ema, flip=state.flip,
    )
    runtime = dataclasses.replace(
        runtime,
        precision=state.precision if runtime.precision is None else runtime.precision,
        channels_last=(state.channels_last if runtime.channels_last is None
                       else runtime.channels_last),
    )
    warnings = []
    if state.lr_schedule != "constant" and state.planned_epochs not in (None, asked.epochs):
        warnings.append(
            f"the {state.lr_schedule} learning-rate schedule of {info.path} was planned for "
            f"{state.planned_epochs} epochs; stretched to {asked.epochs}, the rate jumps and "
            "the result differs from an uninterrupted run"
        )
    return Reconciled(settings, runtime, state, warnings)


def _refuse_changes(asked: TrainSettings, saved: Mapping[str, Any]) -> None:
    for name, value in saved.items():
        given = getattr(asked, name)
        if given is not None and given != value:
            raise UsageError(f"`{name}` {given} differs from the resumed run's {value}",
                             parameters=[name])
