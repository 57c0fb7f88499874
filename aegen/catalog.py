"""What `aegen plugins` shows: the installed plugins and their components, as data for `--json`
and as rich tables, so that a user learns every option's name, type, default, limits and help
from the tool instead of from an error."""

from __future__ import annotations

import json
from typing import Any

from .console import printable
from .errors import UsageError
from .plugins import KINDS, Registry

_SINGULAR = {kind[:-1]: kind for kind in KINDS}


def catalog(registry: Registry, verbose: bool = False) -> dict[str, Any]:
    """Every plugin and every component it registered (with options when `verbose`)."""
    return {
        "plugins": [p.as_json() for p in registry.plugins],
        "components": [
            entry.as_json(verbose)
            for kind in KINDS
            for _, entry in sorted(registry.tables[kind].items())
        ],
    }


def show(registry: Registry, name: str, kind: str | None = None) -> dict[str, Any]:
    """The components called `name` (of `kind`, if given) and the plugins called `name`,
    in full."""
    if kind is not None and kind not in _SINGULAR and kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r} (kinds: {', '.join(_SINGULAR)})",
                         parameters=["kind"])
    plural = _SINGULAR.get(kind, kind) if kind else None
    components = [
        entry.as_json(verbose=True)
        for table in KINDS
        if plural in (None, table)
        for entry in [registry.tables[table].get(name)]
        if entry is not None
    ]
    plugins = [p.as_json() for p in registry.plugins if p.name == name and plural is None]
    if not components and not plugins:
        what = f"{kind} " if kind else "plugin or component "
        raise UsageError(f"no {what}is called {name!r} (see `aegen plugins`)")
    return {"components": components, "plugins": plugins}


def _limits(option: dict[str, Any]) -> str:
    parts = []
    if option["choices"] is not None:
        parts.append("one of " + ", ".join(str(c) for c in option["choices"]))
    if option["min"] is not None:
        parts.append(f">= {option['min']}")
    if option["max"] is not None:
        parts.append(f"<= {option['max']}")
    if option.get("check"):
        parts.append(f"checked by {option['check']}")
    return "; ".join(parts)


def _cell(value: Any) -> str:
    """A plugin's text as a table shows it: control characters escaped (it cannot move the
    cursor or forge lines) and rich markup escaped (it cannot restyle, or break, the table)."""
    from rich.markup import escape

    return escape(printable(value))


def _row(table: Any, *values: Any) -> None:
    table.add_row(*(_cell(v) for v in values))


def component_tables(components: list[dict[str, Any]]) -> list[Any]:
    """One rich table per component: how it is called and its options or config."""
    from rich.table import Table

    tables = []
    for c in components:
        caption = [c["description"], c["call"]] if c["description"] else [c["call"]]
        table = Table(title=_cell(f"{c['kind']} {c['name']} (plugin {c['plugin']})"),
                      caption="\n".join(_cell(line) for line in caption),
                      title_justify="left", caption_justify="left")
        for column in ("option", "type", "default", "limits", "help"):
            table.add_column(column)
        for name, option in c["options"].items():
            _row(table, name, option["type"], json.dumps(option["default"]), _limits(option),
                 option["help"])
        if c.get("steps") is not None:  # a sampler's own step count
            _row(table, "--steps", "int", json.dumps(c["steps"]), ">= 1",
                 "the sampler's own step count: what a run takes without --steps")
        for key, value in c.get("config", {}).items():  # an architecture's --set keys
            _row(table, f"--set {key}", value["type"], json.dumps(value["default"]),
                 _limits({"choices": None, **value}), "")
        tables.append(table)
    return tables


def summary_tables(payload: dict[str, Any]) -> list[Any]:
    """The plugins table and the components table of plain `aegen plugins`."""
    from rich.table import Table

    plugins = Table(title="Plugins")
    for column in ("plugin", "distribution", "version", "status", "registers"):
        plugins.add_column(column)
    for p in payload["plugins"]:
        names = ", ".join(n for names in p["registered"].values() for n in names)
        status = p["status"] if not p["error"] else f"{p['status']}: {p['error']}"
        count = len(p.get("warnings", []))
        if count:  # each is on stderr as the plugin loads, and in --json
            status += f", {count} warning{'s' if count > 1 else ''}"
        _row(plugins, p["name"], p["distribution"], p["version"], status, names)
    parts = Table(title="Components")
    for column in ("kind", "name", "plugin", "description"):
        parts.add_column(column)
    for c in payload["components"]:
        _row(parts, c["kind"], c["name"], c["plugin"], c["description"])
    return [plugins, parts]
