"""What a task returns: a dataclass whose `as_json()` is the report `--json` prints."""

from __future__ import annotations

import dataclasses
from typing import Any


class Result:
    """Base of the tasks' results: `as_json()` gives each field under its own name, in field
    order, with values made plain (anything with its own `as_json`, dataclasses, lists)."""

    def as_json(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _plain(value: Any) -> Any:
    if hasattr(value, "as_json"):
        return value.as_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
