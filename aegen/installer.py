"""Installing plugins into the environment aegen runs in, with the pip of this interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
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


def _name(package: str) -> str:
    """`package`, which must be a distribution's name (pip would also take `pkg==1.0`)."""
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", package):
        raise UsageError(f"aegen uninstall needs a distribution name, not {package!r}")
    return package


def _located(package: str) -> list[tuple[Path, str]]:
    """Where the distributions called `package` that this interpreter sees lie (first the one
    it imports), with the name each one's metadata gives."""
    import importlib
    from importlib.metadata import distributions

    importlib.invalidate_caches()
    found = []
    for dist in distributions(name=package):
        where = dist.locate_file("")
        try:
            where = os.path.realpath(where)
        except (TypeError, ValueError):  # not on the file system
            pass
        found.append((Path(str(where)), dist.metadata["Name"] or package))
    return found


def _environment() -> list[Path]:
    """The folders that belong to this environment. In a virtual environment, its prefix, as
    for pip (not the base one's site folders, which --system-site-packages adds to sys.path);
    outside one, also the site folders (such as Debian's /usr/local/.../dist-packages) and the
    user's."""
    import site
    import sysconfig

    roots = {sys.prefix, *(sysconfig.get_paths().get(k) for k in ("purelib", "platlib"))}
    if sys.prefix == sys.base_prefix:
        roots.update(getattr(site, "getsitepackages", list)())
        if site.ENABLE_USER_SITE:
            roots.add(site.getusersitepackages())
    return [Path(os.path.realpath(r)) for r in roots if r]


def _installed_here(where: Path, name: str) -> bool:
    """Whether pip can remove the distribution `name` at `where` from this environment: it lies
    inside, or is a legacy editable install (`setup.py develop`) that an egg-link points at."""
    roots = _environment()
    if any(where == root or root in where.parents for root in roots):
        return True
    return any((root / f"{name}.egg-link").is_file() for root in roots)


def uninstall(package: str, yes: bool = False, quiet: bool = False) -> dict[str, Any]:
    """pip uninstall a distribution; report the plugins that went with it.

    Only a distribution installed in this environment is removed. pip itself, in a virtual
    environment, skips one that lies elsewhere (a folder on PYTHONPATH) and exits 0, and outside
    one it would delete files from that folder; aegen refuses both ways, and refuses what is not
    installed, with one line and exit status 1 before pip runs."""
    name = _name(package)
    where = _located(name)
    if not where:
        raise AegenError(f"cannot uninstall {name}: it is not installed")
    folder, _ = where[0]
    if not _installed_here(*where[0]):
        raise AegenError(
            f"cannot uninstall {name}: it lies outside this environment ({sys.prefix}), in "
            f"{folder}, which aegen leaves alone; take that folder off PYTHONPATH or delete the "
            "distribution from it"
        )
    before = _plugins(load=False)
    _pip(["uninstall", *(["-y"] if yes else []), name], quiet)
    left = _located(name)
    if left:
        raise AegenError(f"{name} is still installed, in {left[0][0]}: pip did not remove it")
    after = _plugins(load=False)
    removed = [before[p] for p in before if p not in after]
    return {"uninstalled": name, "removed": removed}
