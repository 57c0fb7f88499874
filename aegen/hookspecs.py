"""The hooks a plugin may implement, and the kinds of component they register.

Each kind of component is one entry of `KIND_TABLE`; its hook `register_<plural>` is made from
that entry, so adding a kind is adding an entry. Each hook receives a `register` callback.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from .options import Option

# The plugin API's version, "major.minor": a minor release only adds, a major one may break.
# A plugin module may declare the versions it supports: AEGEN_API = ">=1.0,<2".
API_VERSION = "1.1"

hookspec = pluggy.HookspecMarker("aegen")
hookimpl = pluggy.HookimplMarker("aegen")


def _mapping(value: Any, what: str) -> dict[str, Any]:
    """A dict given to register (None: empty)."""
    if value is not None and not isinstance(value, Mapping):
        raise TypeError(f"{what}: expected a mapping, got {type(value).__name__}")
    return dict(value or {})


def _options(value: Any, what: str) -> dict[str, Option]:
    """Declared options: a mapping of names to aegen.api.Option, each declared soundly."""
    options = _mapping(value, what)
    for key, option in options.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise TypeError(f"{what}: option names must be identifiers, got {key!r}")
        if not isinstance(option, Option):
            raise TypeError(f"{what}: option {key!r} must be an aegen.api.Option")
        problem = option.problem()
        if problem:
            raise TypeError(f"{what}: option {key!r} {problem}")
    return options


def _limits(value: Any, what: str) -> dict[str, tuple[float | None, float | None]]:
    """An architecture's config limits: key -> (min, max), either None for no bound."""
    limits = _mapping(value, what)
    for key, bounds in limits.items():
        ok = isinstance(bounds, (tuple, list)) and len(bounds) == 2 and all(
            b is None or (isinstance(b, (int, float)) and not isinstance(b, bool)) for b in bounds
        )
        if not isinstance(key, str) or not ok:
            raise TypeError(f"{what}: limits map config keys to (min, max) numbers or None, "
                            f"got {key!r}: {bounds!r}")
        low, high = bounds
        if low is not None and high is not None and low > high:
            raise ValueError(f"{what}: limits of {key!r} have min {low} above max {high}")
        limits[key] = (low, high)
    return limits


def _optional_flag(value: Any, what: str) -> bool | None:
    """True, False, or None for "not said"."""
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{what}: expected True, False or None, got {value!r}")
    return value


def _default_steps(value: Any, what: str) -> int | None:
    """A sampler's own step count, used when a run asks for none (None: the command's)."""
    if value is None:
        return None
    try:
        steps = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        steps = None
    if steps is None or steps < 1:
        kind = TypeError if steps is None else ValueError
        raise kind(f"{what}: steps must be a whole number of at least 1 or None, got {value!r}")
    return steps


def _optional_callable(value: Any, what: str) -> Callable[..., Any] | None:
    if value is not None and not callable(value):
        raise TypeError(f"{what}: expected a callable or None, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Kind:
    """One kind of component plugins register.

    `plural` names the hook (`register_<plural>`), the registry's table (`registry.<plural>`)
    and the key in `aegen plugins --json`; `plural[:-1]` is the "kind" of a component there and
    the registry's getter (`registry.data_source(name)`). `singular` names it in messages.
    `callable` is the name of register's second argument, also readable as an attribute of the
    component (`architecture.build`, the same as `.fn`). `extras` are the keyword arguments
    register takes besides `description`: each maps to a function `(value, what) -> value`
    that checks and normalises it (given None when the plugin leaves it out); each becomes an
    attribute of the component.
    """

    plural: str
    singular: str
    callable: str
    what: str  # what the hook registers, for its docstring
    extras: Mapping[str, Callable[[Any, str], Any]] = field(default_factory=dict)
    positional: tuple[str, ...] = ()  # what aegen passes the callable by position
    keywords: tuple[str, ...] = ()  # and by keyword (besides the declared options)
    generator: bool = False  # the callable must be a generator function (samplers)

    @property
    def call(self) -> str:
        """How aegen calls the registered callable: `sampler(model, x, *, steps, noise,
        **options)`, for messages and docs."""
        parts = list(self.positional)
        if self.keywords:
            parts.append("*")
        parts += self.keywords
        if "options" in self.extras:
            parts.append("**options")
        return f"{self.callable}({', '.join(parts)})"

    @property
    def hook(self) -> str:
        return f"register_{self.plural}"

    @property
    def getter(self) -> str:
        return self.plural[:-1]


KIND_TABLE: tuple[Kind, ...] = (
    Kind(
        "architectures", "architecture", "build", "autoencoders",
        {"defaults": _mapping, "limits": _limits, "can_copy": _optional_flag},
        positional=("config",),
    ),
    Kind(
        "samplers", "sampler", "sampler", "samplers",
        {"options": _options, "steps": _default_steps},
        positional=("model", "x"), keywords=("steps", "noise"), generator=True,
    ),
    Kind(
        "schedules", "schedule", "schedule", "noise schedules", {"options": _options},
        positional=("n", "steps"),
    ),
    Kind(
        "data_sources", "data source", "load", "training data readers",
        {"detect": _optional_callable},
        positional=("path",), keywords=("size", "channels", "on_image"),
    ),
    Kind(
        "objectives", "objective", "make_input", "training objectives",
        {"options": _options, "corrupts": _optional_flag},
        positional=("clean",), keywords=("generator",),
    ),
)
KINDS = tuple(kind.plural for kind in KIND_TABLE)


def _register_hook(kind: Kind) -> Callable[..., None]:
    """The hookspec `register_<plural>(register)` of one kind."""

    def spec(register):  # pluggy reads the argument name: every hook receives `register`
        pass

    extras = "".join(f", {name}=..." for name in kind.extras)
    spec.__name__ = spec.__qualname__ = kind.hook
    call = f"register(name, {kind.callable}, description=...{extras})"
    spec.__doc__ = f"Register {kind.what}: {call}."
    return hookspec(spec)


for _kind in KIND_TABLE:  # one module-level hookspec per kind, as if written out by hand
    globals()[_kind.hook] = _register_hook(_kind)
del _kind


@hookspec
def register_commands(app):
    """Add commands to the Typer app of the `aegen` command line."""
