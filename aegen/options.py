"""Typed options for samplers and architecture configs, parsed from `key=value` strings."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import AegenError, ConfigError, PluginError, UsageError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def coerce(value: Any, like: Any, what: str) -> Any:
    """Convert `value` (often a string from the command line) to the type of `like`.

    `what` names the value in the error, e.g. "option 'mu' of sampler 'schedule'".
    """
    kind = type(like)
    if like is None or isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        if kind is float and not math.isfinite(value):
            raise ConfigError(f"{what} expects a finite number, got {value!r}")
        return _bounded(value, what) if kind is int else value
    if isinstance(value, int) and not isinstance(value, bool) and kind in (int, str):
        value = _bounded(value, what)  # before str(): Python will not write out 4300+ digits
    text = str(value).strip()
    digits = text.lstrip("+-0")
    if kind is int and digits.isdigit() and len(digits) > len(str(INT_LIMIT)):
        raise ConfigError(f"{what} {INT_RANGE}; got a number of {len(text)} characters")
    try:
        if kind is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError
        if kind is int:
            if isinstance(value, float) and value.is_integer():
                return _bounded(int(value), what)
            return _bounded(int(text), what)
        if kind is float:
            number = float(text)
            if not math.isfinite(number):
                raise ValueError
            return number
    except ValueError:
        names = {bool: "true or false", int: "a whole number", float: "a finite number"}
        raise ConfigError(f"{what} expects {names[kind]}, got {_shown(text)}") from None
    return text


INT_LIMIT = 2**63  # no tensor, size, count or seed is larger: a whole number is refused beyond
INT_RANGE = "must be between -2**63 and 2**63 - 1"


def _bounded(number: int, what: str) -> int:
    """`number`, if a 64-bit integer holds it; else a ConfigError (not a huge allocation later)."""
    if not -INT_LIMIT <= number < INT_LIMIT:
        raise ConfigError(f"{what} {INT_RANGE}; got a number of {number.bit_length()} bits")
    return number


def _shown(text: str, limit: int = 60) -> str:
    """`text` quoted for an error line, cut to about `limit` characters."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


TYPES = (bool, int, float, str)  # what an Option's default may be: what a command line can say


@dataclass(frozen=True)
class Option:
    """One option of a sampler, schedule or objective: its default (which fixes its type: bool,
    int, float or str), help, and accepted values. `check(value)` is called with the converted
    value after `choices`, `min` and `max`; its return value is ignored, and a ConfigError,
    UsageError or ValueError it raises becomes a ConfigError prefixed with the option's name
    and owner ("option 'k' of schedule 'sigmoid': ..."); any other exception is the plugin's
    bug, a PluginError naming the option."""

    default: Any
    help: str = ""
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    check: Callable[[Any], Any] | None = None

    @property
    def type_name(self) -> str:
        return type(self.default).__name__

    def parse(self, value: Any, what: str) -> Any:
        """Return `value` converted and checked, or raise ConfigError naming `what`."""
        parsed = coerce(value, self.default, what)
        if self.choices is not None and parsed not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise ConfigError(f"{what} must be one of {allowed}; got {parsed!r}")
        if self.min is not None and parsed < self.min:
            raise ConfigError(f"{what} must be at least {self.min}; got {parsed!r}")
        if self.max is not None and parsed > self.max:
            raise ConfigError(f"{what} must be at most {self.max}; got {parsed!r}")
        if self.check is not None:
            try:
                self.check(parsed)
            except (UsageError, ValueError) as exc:  # say which option of what was wrong
                raise ConfigError(f"{what}: {exc}") from None
            except AegenError:
                raise
            except Exception as exc:  # a bug in the plugin's check, not the user's value
                raise PluginError(
                    f"the check of {what} failed: {type(exc).__name__}: {exc}"
                ) from exc
        return parsed

    def problem(self) -> str | None:
        """What is wrong with this declaration, for the plugin's author; None if nothing."""
        if type(self.default) not in TYPES:
            return (
                f"has a default of type {type(self.default).__name__}; an Option's default "
                "must be a bool, int, float or str (it fixes the type values are converted to)"
            )
        for name in ("min", "max"):
            limit = getattr(self, name)
            if limit is not None and (
                isinstance(limit, bool) or not isinstance(limit, (int, float))
            ):
                return f"has {name}={limit!r}; limits must be numbers"
        if self.choices is not None:
            if isinstance(self.choices, (str, bytes)) or not isinstance(
                self.choices, Iterable
            ):
                return f"has choices={self.choices!r}; choices must be a tuple of values"
            wrong = [c for c in self.choices if not _same_type(c, self.default)]
            if wrong:
                return f"has choice {wrong[0]!r}, not a {self.type_name} like its default"
        if self.check is not None and not callable(self.check):
            return f"has check={self.check!r}, which is not callable"
        return None

    def as_json(self) -> dict[str, Any]:
        """The option as `aegen plugins --verbose --json` shows it; `check` is the name of
        its check function (None without one)."""
        return {
            "type": self.type_name,
            "default": self.default,
            "help": self.help,
            "choices": list(self.choices) if self.choices is not None else None,
            "min": self.min,
            "max": self.max,
            "check": getattr(self.check, "__name__", repr(self.check)) if self.check else None,
        }


def _same_type(value: Any, like: Any) -> bool:
    """Whether `value` is of `like`'s type (an int counts as a float)."""
    if type(like) is float and type(value) is int:
        return True
    return type(value) is type(like)


def parse_assignments(items: Iterable[str], flag: str) -> dict[str, str]:
    """Turn ["width=16", "depth=3"] into {"width": "16", "depth": "3"}."""
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} expects KEY=VALUE, got {item!r}")
        result[key.strip()] = value.strip()
    return result


def resolve_options(
    declared: Mapping[str, Option], given: Mapping[str, Any], owner: str
) -> dict[str, Any]:
    """Defaults of `declared` updated with `given`, each value validated.

    `schedule.KEY` entries of `given` set options of the schedule that the `schedule` option
    names (`schedule.k=12` with schedule "sigmoid" gives schedule "sigmoid(k=12.0)")."""
    given = _fold_schedule_options(declared, given, owner)
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise ConfigError(f"{owner} has no option {unknown[0]!r} (its options: {known})")
    values = {name: option.default for name, option in declared.items()}
    for name, value in given.items():
        values[name] = declared[name].parse(value, f"option {name!r} of {owner}")
    return values


def _fold_schedule_options(
    declared: Mapping[str, Option], given: Mapping[str, Any], owner: str
) -> dict[str, Any]:
    """`given` with its `schedule.KEY` entries folded into the `schedule` value, which is then
    written in its canonical form (checked against the schedule's declared options)."""
    from .schedules import canonical, join, split

    dotted = {k: v for k, v in given.items() if "." in k}
    rest = {k: v for k, v in given.items() if "." not in k}
    for key in dotted:
        if key.split(".", 1)[0] != "schedule" or "schedule" not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise ConfigError(
                f"{owner} has no option {key!r}: schedule.KEY sets an option of the schedule "
                f"named by an option 'schedule', which {owner} lacks (its options: {known})"
            )
    if "schedule" not in declared or not (dotted or "(" in str(rest.get("schedule", ""))):
        return rest
    what = f"option 'schedule' of {owner}"
    try:
        name, options = split(str(rest.get("schedule", declared["schedule"].default)))
        options.update({k.split(".", 1)[1]: v for k, v in dotted.items()})
        rest["schedule"] = canonical(join(name, options))
    except UsageError as exc:  # as the option's own check would say it
        raise type(exc)(f"{what}: {exc}", parameters=exc.parameters) from None
    return rest
