"""A small per-user cache of measurements (JSON), so a choice measured once is made the same way
on every later run: the same run settings then give the same files.

Location: $AEGEN_CACHE_DIR, else $XDG_CACHE_HOME/aegen, else ~/.cache/aegen. Deleting it only
means measuring again. A cache that cannot be read is measured anew; one that cannot be written
is skipped (the run still works, it only measures again next time).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    """Where aegen keeps what it measured on this machine."""
    if os.environ.get("AEGEN_CACHE_DIR"):
        return Path(os.environ["AEGEN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aegen"


def key_of(fields: dict[str, Any]) -> str:
    """A stable key for a dict of JSON values."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


def _file(name: str) -> Path:
    return cache_dir() / f"{name}.json"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def recall(name: str, key: str) -> dict[str, Any] | None:
    """The entry stored under `key` in cache file `name`, or None."""
    entry = _read(_file(name)).get(key)
    return entry if isinstance(entry, dict) else None


def remember(name: str, key: str, entry: dict[str, Any]) -> Path | None:
    """Store `entry` under `key` (atomically: a reader never sees half a file). Returns the
    file, or None if it could not be written."""
    path = _file(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read(path)
        data[key] = entry
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{name}.", suffix=".part")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        return None
    return path
