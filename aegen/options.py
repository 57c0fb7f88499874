"""Typed options for samplers and architecture configs, parsed from `key=value` strings."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, UsageError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def coerce(value: Any, like: Any, what: str) -> Any:
    """Convert `value` (often a string from the command line) to the type of `like`.

    `what` names the value in the error, e.g. "option 'mu' of sampler 'schedule'".
    """
    kind = type(like)
    if like is None or isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    text = str(value).strip()
    try:
        if kind is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError
        if kind is int:
            if isinstance(value, float) and value.is_integer():
                return int(value)
            return int(text)
        if kind is float:
            number = float(text)
            if not math.isfinite(number):
                raise ValueError
            return number
    except ValueError:
        names = {bool: "true or false", int: "a whole number", float: "a finite number"}
        raise ConfigError(f"{what} expects {names[kind]}, got {text!r}") from None
    return text


@dataclass(frozen=True)
class Option:
    """One sampler option: its default (which fixes its type), help, and accepted values."""

    default: Any
    help: str = ""
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    check: Callable[[Any], Any] | None = None  # raises ConfigError/UsageError for a bad value

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
            except UsageError as exc:  # say which option of which sampler was wrong
                raise ConfigError(f"{what}: {exc}") from None
        return parsed


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
    """Defaults of `declared` updated with `given`, each value validated."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise ConfigError(f"{owner} has no option {unknown[0]!r} (its options: {known})")
    values = {name: option.default for name, option in declared.items()}
    for name, value in given.items():
        values[name] = declared[name].parse(value, f"option {name!r} of {owner}")
    return values
