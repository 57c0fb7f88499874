"""Installing plugins into the environment aegen runs in, with the pip of this interpreter."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from .errors import AegenError, UsageError


def _pip(args: list[str], quiet: bool = False) -> None:
    """Run pip; its output goes to stderr so that stdout carries only aegen's result."""
    command = [sys.executable, "-m", "pip", *args, *(["-q"] if quiet else [])]
    result = subprocess.run(command, stdout=sys.stderr, stderr=sys.stderr)
    if result.returncode != 0:
        raise AegenError(f"pip {' '.join(args)} failed with exit status {result.returncode}")


def _plugins(load: bool) -> dict[str, dict[str, Any]]:
    """A fresh scan of the installed plugins; with `load`, imported to see what they register
    (without, only their names: a broken plugin then cannot interfere)."""
    import importlib

    from .plugins import Registry

    importlib.invalidate_caches()
    registry = Registry()
    registry.load_entry_points(allowed=None if load else set())
    return {p.name: p.as_json() for p in registry.plugins}


def install(
    target: str, editable: bool = False, upgrade: bool = False, quiet: bool = False
) -> dict[str, Any]:
    """pip install a plugin (a name on the index, or a path); report the plugins it added."""
    if not target:
        raise UsageError("aegen install needs a package name or a path")
    before = _plugins(load=False)
    _pip(["install", *(["-e"] if editable else []), *(["-U"] if upgrade else []), target], quiet)
    after = _plugins(load=True)
    added = [after[name] for name in after if name not in before]
    updated = [
        after[name]
        for name in after
        if name in before and after[name]["version"] != before[name]["version"]
    ]
    return {"installed": target, "added": added, "updated": updated}


def uninstall(package: str, yes: bool = False, quiet: bool = False) -> dict[str, Any]:
    """pip uninstall a distribution; report the plugins that went with it."""
    before = _plugins(load=False)
    _pip(["uninstall", *(["-y"] if yes else []), package], quiet)
    after = _plugins(load=False)
    removed = [before[name] for name in before if name not in after]
    return {"uninstalled": package, "removed": removed}
