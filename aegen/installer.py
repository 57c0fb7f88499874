"""Installing plugins into the environment aegen runs in, with the pip of this interpreter."""

from __future__ import annotations

import json
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
    """A scan of the installed plugins in this process; with `load`, imported to see what they
    register (without, only their names: a broken plugin then cannot interfere). This process
    read the .pth files at its start, so what pip installed since may not import here."""
    import importlib

    from .plugins import Registry

    importlib.invalidate_caches()
    registry = Registry()
    registry.load_entry_points(allowed=None if load else set())
    return {p.name: p.as_json() for p in registry.plugins}


# Run in a fresh interpreter, which reads the .pth files that pip has just written (and so sees
# an editable install, importable only through them) and forgets those it removed. The working
# directory, which -c puts first on sys.path, is dropped: the `aegen` script does not have it.
_FRESH = 'import sys\nif sys.path[:1] == [""]:\n    del sys.path[0]\n'
_LISTED = _FRESH + f"from {__package__}.cli import main\nmain(['plugins', '--json'])\n"
_LEFT = (
    _FRESH
    + f"from {__package__} import installer as i\nprint(i.json.dumps(i._left(sys.argv[1])))\n"
)


def _fresh(code: str, *args: str) -> tuple[Any, str]:
    """Run `code` in a fresh interpreter, where every plugin may load and a failing one is only
    warned about (whatever this one's AEGEN_LOAD_PLUGINS and AEGEN_STRICT_PLUGINS say, and
    `main` sets the first for install): the JSON it prints last, and its stderr.
    AegenError, saying how it ended, when it fails or prints no JSON."""
    skipped = ("AEGEN_LOAD_PLUGINS", "AEGEN_STRICT_PLUGINS")
    env = {k: v for k, v in os.environ.items() if k not in skipped}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env
    )
    last = (done.stderr.strip().splitlines() or [""])[-1]
    if done.returncode != 0:
        raise AegenError(f"exit status {done.returncode}" + (f": {last}" if last else ""))
    lines = done.stdout.splitlines()  # a plugin may print before the JSON; never after it
    start = next((i for i in reversed(range(len(lines))) if lines[i].startswith("{")), None)
    try:
        return json.loads("\n".join(lines[start or 0 :])), done.stderr
    except ValueError:  # json.JSONDecodeError is one
        raise AegenError("it printed no JSON" + (f": {last}" if last else "")) from None


def _listed_after_pip() -> tuple[dict[str, dict[str, Any]], str]:
    """The installed plugins as a fresh `aegen plugins --json` lists them, imported: what each
    registers, or why it failed (that listing isolates a broken plugin); and its warnings. If
    the listing itself fails (a plugin that ends the interpreter), the plugins as this process
    sees them, each marked as not checked."""
    try:
        listed, warnings = _fresh(_LISTED)
    except AegenError as exc:
        print(
            f"aegen: warning: listing the plugins after pip failed ({exc}); see `aegen plugins`",
            file=sys.stderr,
        )
        unchecked = _plugins(load=False)
        for info in unchecked.values():
            info.update(status="failed", error=f"not checked: listing the plugins failed ({exc})")
        return unchecked, ""
    return {p["name"]: p for p in listed["plugins"]}, warnings


def _pass_on(warnings: str, names: set[str]) -> None:
    """Pass on the warnings (each "aegen: ..." with the lines that continue it) that name one of
    the plugins `names`; those about other plugins are not this command's business."""
    messages: list[list[str]] = []
    for line in warnings.splitlines():
        if line.startswith("aegen: ") or not messages:
            messages.append([])
        messages[-1].append(line)
    for message in messages:
        if message[0].startswith("aegen: ") and any(repr(n) in "\n".join(message) for n in names):
            print("\n".join(message), file=sys.stderr)


def install(
    target: str, editable: bool = False, upgrade: bool = False, quiet: bool = False
) -> dict[str, Any]:
    """pip install a plugin (a name on the index, or a path); report the plugins it added, as
    a new interpreter (the next `aegen`) loads them."""
    if not target:
        raise UsageError("aegen install needs a package name or a path")
    before = _plugins(load=False)
    _pip(["install", *(["-e"] if editable else []), *(["-U"] if upgrade else []), target], quiet)
    after, warnings = _listed_after_pip()
    added = [after[name] for name in after if name not in before]
    updated = [
        after[name]
        for name in after
        if name in before and after[name]["version"] != before[name]["version"]
    ]
    _pass_on(warnings, {p["name"] for p in added + updated})
    return {"installed": target, "added": added, "updated": updated}


def _name(package: str) -> str:
    """`package`, which must be a distribution's name (pip would also take `pkg==1.0`)."""
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", package):
        raise UsageError(f"aegen uninstall needs a distribution name, not {package!r}")
    return package


def _located(package: str) -> list[dict[str, Any]]:
    """The distributions called `package` that this interpreter sees (first the one it
    imports): where each lies, the name and version its metadata gives, and the aegen plugins
    (entry points) it declares."""
    import importlib
    from importlib.metadata import distributions

    from .plugins import GROUP

    importlib.invalidate_caches()
    found = []
    for dist in distributions(name=package):
        where = dist.locate_file("")
        try:
            where = os.path.realpath(where)
        except (TypeError, ValueError):  # not on the file system
            pass
        found.append(
            {
                "where": str(where),
                "name": dist.metadata["Name"] or package,
                "version": dist.version,
                "plugins": sorted({ep.name for ep in dist.entry_points if ep.group == GROUP}),
            }
        )
    return found


def _left(package: str) -> dict[str, Any]:
    """What remains after removing `package` (run in a fresh interpreter): where it still
    lies, and the names of the installed plugins (not imported)."""
    return {"where": [d["where"] for d in _located(package)], "plugins": sorted(_plugins(False))}


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


def _hint(name: str) -> str:
    """Where `name` is a plugin's name, not its distribution's: the distribution to give."""
    from .plugins import _normal

    owners = sorted({
        plugin["distribution"] for plugin in _plugins(load=False).values()
        if _normal(plugin["name"]) == _normal(name) and not plugin["builtin"]
    })
    if not owners:
        return ""
    return f" (plugin {name!r} comes from the distribution {owners[0]}: uninstall that)"


def _removable(package: str, force: bool) -> dict[str, Any]:
    """The distribution `package` as `_located` describes it, if aegen may remove it: installed,
    in this environment, and (unless `force`) an aegen plugin other than aegen itself. Else
    AegenError, one line, before pip runs (pip would exit 0 for what is not installed, and
    remove anything it is given)."""
    from .plugins import BUILTIN_DISTRIBUTION, _normal

    name = _name(package)
    where = _located(name)
    if not where:
        raise AegenError(f"cannot uninstall {name}: it is not installed{_hint(name)}")
    dist = where[0]
    if not _installed_here(Path(dist["where"]), dist["name"]):
        raise AegenError(
            f"cannot uninstall {name}: it lies outside this environment ({sys.prefix}), in "
            f"{dist['where']}, which aegen leaves alone; take that folder off PYTHONPATH or "
            "delete the distribution from it"
        )
    if force:
        return dist
    if _normal(dist["name"]) == _normal(BUILTIN_DISTRIBUTION):
        raise AegenError(
            f"cannot uninstall {dist['name']}: it is aegen itself, with its built-in plugins; "
            "pass `force` to remove it anyway",
            parameters=["force"],
        )
    if not dist["plugins"]:
        raise AegenError(
            f"cannot uninstall {dist['name']}: it registers no aegen plugin (no entry point in "
            "group 'aegen'), so aegen leaves it to pip; pass `force` to remove it anyway",
            parameters=["force"],
        )
    return dist


def _confirm(dist: dict[str, Any]) -> None:
    """Ask on the terminal whether to remove `dist` (pip would ask too, but on stdout, which
    carries aegen's result, and with a traceback when stdin is not a terminal). Without a
    terminal, refuse: a script says what it wants with `yes`."""
    what = f"{dist['name']} {dist['version']}"
    plugins = dist["plugins"]
    if plugins:
        what += f" and its plugin{'s' if len(plugins) > 1 else ''} {', '.join(plugins)}"
    if not sys.stdin or not sys.stdin.isatty():
        raise UsageError(
            f"aegen uninstall asks before removing {what}, and stdin is not a terminal; pass "
            "`yes` to remove it without asking",
            parameters=["yes"],
        )
    print(f"Remove {what}? [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if not answer.endswith("\n"):  # end of input: the next line starts on a line of its own
        print(file=sys.stderr)
    if answer.strip().lower() not in ("y", "yes"):
        raise AegenError(f"{dist['name']} not uninstalled: not confirmed")


def uninstall(
    package: str, yes: bool = False, force: bool = False, quiet: bool = False
) -> dict[str, Any]:
    """pip uninstall a distribution; report the plugins that went with it.

    Only an aegen plugin's distribution installed in this environment is removed (any one with
    `force`); pip itself, in a virtual environment, skips one that lies elsewhere (a folder on
    PYTHONPATH) and exits 0, and outside one it would delete files from that folder. What is
    left is checked in a fresh interpreter: this one may still see an editable install's
    source folder, which a .pth file that pip has just removed put on sys.path."""
    dist = _removable(package, force)
    name = dist["name"]
    if not yes:
        _confirm(dist)
    before = _plugins(load=False)
    _pip(["uninstall", "-y", name], quiet)
    left, _ = _fresh(_LEFT, name)
    if left["where"]:
        raise AegenError(f"{name} is still installed, in {left['where'][0]}: pip did not remove it")
    removed = [
        {**info, "status": "removed", "error": None}
        for plugin, info in before.items()
        if plugin not in left["plugins"]
    ]
    return {"uninstalled": name, "removed": removed}
