"""The training state a checkpoint saves for `--resume`, and resuming's reconciliation.

`TrainingState` is the one class that reads and writes the saved state; the defaults of
checkpoints written before a field existed are here and nowhere else. `reconcile` meets a
resumed run's saved settings with the ones asked for: it refuses a contradiction, fills what
was not asked from the saved run, and returns the warnings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .checkpoint import CheckpointInfo
from .errors import CheckpointError, UsageError
from .settings import Runtime, TrainSettings

REQUIRED = ("epochs_done", "seed", "batch_size", "lr")


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
    (the run could not continue otherwise); what was not asked comes from the saved run."""
    state = TrainingState.read(info)
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
        lr_schedule=state.lr_schedule, ema=state.ema,
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
