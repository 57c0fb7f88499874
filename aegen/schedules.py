"""Schedules named with their options: "sigmoid(k=12.0)".

A schedule may declare `Option`s as a sampler does. The text "NAME(KEY=VALUE, ...)" names a
schedule together with the options it runs with; it is what a sampler's `schedule` option holds,
what results and checkpoints record, and what `get_schedule` binds into a plain `(n, steps)`
function. A plain name is the schedule with its defaults.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import AegenError, ConfigError, PluginError

_TEXT = re.compile(r"\s*([^\s(),=]+)\s*(?:\((.*)\))?\s*")


def split(text: str) -> tuple[str, dict[str, str]]:
    """("sigmoid", {"k": "12"}) from "sigmoid(k=12)"; a plain name has no options."""
    found = _TEXT.fullmatch(text)
    if not found:
        raise ConfigError(
            f"cannot read the schedule {text!r}: write NAME or NAME(KEY=VALUE, ...), "
            "e.g. sigmoid(k=12)"
        )
    name, inside = found.group(1), found.group(2)
    options: dict[str, str] = {}
    for item in filter(str.strip, (inside or "").split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"cannot read the schedule {text!r}: {item.strip()!r} is not KEY=VALUE"
            )
        options[key.strip()] = value.strip()
    return name, options


def join(name: str, options: Mapping[str, Any]) -> str:
    """"sigmoid(k=12.0)": the options in name order; a plain name without any."""
    if not options:
        return name
    return name + "(" + ", ".join(f"{k}={v}" for k, v in sorted(options.items())) + ")"


def _resolved(text: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The schedule component `text` names, its options with defaults, and those `text` gives."""
    from .options import resolve_options
    from .plugins import get_registry

    name, given = split(text)
    schedule = get_registry().schedule(name)
    owner = f"schedule {name!r}"
    if given and not schedule.options:
        raise ConfigError(f"{owner} takes no options, got {', '.join(sorted(given))}")
    values = resolve_options(schedule.options, given, owner)
    return schedule, values, {k: values[k] for k in given}


def canonical(text: str) -> str:
    """`text` checked against the schedule's declared options and written canonically."""
    schedule, _, given = _resolved(text)
    return join(schedule.name, given)


def bind(text: str) -> Callable[[int, int], tuple[float, float]]:
    """The schedule `text` names as a function (n, steps) -> (c, d), its options bound; its
    failures and wrong results are the schedule plugin's, named."""
    schedule, values, _ = _resolved(text)
    weights = functools.partial(schedule.fn, **values) if values else schedule.fn
    blame = f"schedule {join(schedule.name, values)!r} (plugin {schedule.plugin!r})"

    def checked(n: int, steps: int) -> tuple[float, float]:
        try:
            c, d = weights(n, steps)
            return float(c), float(d)
        except AegenError:
            raise
        except Exception as exc:
            raise PluginError(
                f"{blame} failed at n={n} of {steps}: {type(exc).__name__}: {exc}; a schedule "
                "returns (c, d), two numbers"
            ) from exc

    checked.__name__ = checked.__qualname__ = schedule.name
    checked.__doc__ = getattr(schedule.fn, "__doc__", None)
    return checked
