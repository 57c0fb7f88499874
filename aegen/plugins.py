"""Plugin discovery and the registry of what plugins provide.

Every plugin, the built-ins included, is a module named by an entry point in the group "aegen".
Each hook receives a `register` callback; what a plugin registers is staged and committed only if
all of its hooks succeed, so a failing plugin is skipped whole and the rest of aegen keeps working.
A plugin's mistakes against the contract (aegen/contracts.py) are warnings naming it: the hook or
component concerned is left out and the rest of the plugin loads.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import contracts, hookspecs
from .errors import PluginError, UsageError
from .hookspecs import API_VERSION, KIND_TABLE, KINDS, Kind

GROUP = "aegen"
BUILTIN_DISTRIBUTION = "aegen"
_BY_NAME = {kind.plural: kind for kind in KIND_TABLE} | {kind.getter: kind for kind in KIND_TABLE}


@dataclass(frozen=True)
class Component:
    """One thing a plugin registered, of any kind: its name, callable, description and plugin,
    plus its kind's extras as attributes (`.defaults` of architectures, `.options` and
    `.steps` of samplers, `.options` of objectives, `.detect` of data sources) and the
    callable under its kind's name for it (`.build` of architectures)."""

    kind: Kind
    name: str
    fn: Callable[..., Any]
    description: str
    plugin: str
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, attr: str) -> Any:  # only for what normal lookup did not find
        fields = self.__dict__
        if attr in fields.get("extras", {}):
            return fields["extras"][attr]
        if "kind" in fields and attr == fields["kind"].callable:
            return fields["fn"]
        if attr == "options":  # kinds that declare none
            return {}
        raise AttributeError(f"{type(self).__name__} has no attribute {attr!r}")

    def as_json(self, verbose: bool = False) -> dict[str, Any]:
        """What `aegen plugins` shows; `verbose` adds how it is called, its options (type,
        default, limits, help) and an architecture's config defaults."""
        entry = {
            "kind": self.kind.getter,
            "name": self.name,
            "plugin": self.plugin,
            "description": self.description,
        }
        if verbose:
            entry["call"] = self.kind.call
            entry["options"] = contracts.describe_options(self.options)
            if "defaults" in self.kind.extras:
                entry["config"] = {
                    key: {"type": type(value).__name__, "default": value,
                          "min": self.limits.get(key, (None, None))[0],
                          "max": self.limits.get(key, (None, None))[1]}
                    for key, value in sorted(self.defaults.items())
                }
            if "steps" in self.kind.extras:  # None: the command's default
                entry["steps"] = self.steps
            if "detect" in self.kind.extras:
                entry["detects_paths"] = self.detect is not None
        return entry


@dataclass
class PluginInfo:
    """What `aegen plugins` reports about one plugin."""

    name: str
    distribution: str
    version: str
    builtin: bool
    status: str = "ok"  # ok | failed | disabled | incompatible (| removed, by uninstall)
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "status": self.status,
            "error": self.error,
            "hooks": self.hooks,
            "registered": self.registered,
            "warnings": self.warnings,
        }


def _warn(message: str) -> None:
    """A warning line on stderr, its plugin-given text escaped (aegen/console.py printable)."""
    from .console import printable

    print(f"aegen: warning: {printable(message)}", file=sys.stderr)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class Registry:
    """Everything the loaded plugins registered, looked up by kind and name.

    Each kind's components are a dict by name, `registry.<plural>` (`registry.samplers`), and
    `registry.get(kind, name)` looks one up, as does `registry.<plural[:-1]>(name)`
    (`registry.sampler("walk")`, `registry.data_source("idx")`).
    """

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Component]] = {kind.plural: {} for kind in KIND_TABLE}
        self.plugins: list[PluginInfo] = []
        self.conflicts: dict[tuple[str, str], list[str]] = {}
        self.manager = pluggy.PluginManager(GROUP)
        self.manager.add_hookspecs(hookspecs)

    def __getattr__(self, attr: str) -> Any:  # registry.samplers, registry.sampler(name), ...
        kind = _BY_NAME.get(attr)
        if kind is None or "tables" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__} has no attribute {attr!r}")
        if attr == kind.plural:
            return self.tables[kind.plural]
        return functools.partial(self.get, kind.plural)

    # -- lookups ---------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Component:
        """The component of `kind` (e.g. "samplers" or "sampler") registered as `name`."""
        spec = _BY_NAME[kind]
        table = self.tables[spec.plural]
        if (spec.plural, name) in self.conflicts:
            first, second = self.conflicts[(spec.plural, name)][:2]
            raise PluginError(
                f"{spec.singular} {name!r} is registered by both plugin {first!r} and plugin "
                f"{second!r}; uninstall one, or choose with AEGEN_LOAD_PLUGINS"
            )
        if name not in table:
            known = ", ".join(sorted(table)) or "none"
            raise UsageError(
                f"unknown {spec.singular} {name!r} (installed: {known}; see `aegen plugins`)"
            )
        return table[name]

    # -- loading ---------------------------------------------------------------------------
    def load_entry_points(self, allowed: set[str] | None, strict: bool = False) -> None:
        """Import and register each plugin of the entry-point group, isolating failures."""
        for ep in sorted(entry_points(group=GROUP), key=_builtin_first):
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                distribution=dist.name if dist else "?",
                version=dist.version if dist else "?",
                builtin=bool(dist) and dist.name == BUILTIN_DISTRIBUTION,
            )
            twin = next((p for p in self.plugins if p.name == info.name), None)
            if twin is not None and twin.distribution == info.distribution:
                continue  # the same distribution seen twice on sys.path
            self.plugins.append(info)
            if (
                not info.builtin
                and allowed is not None
                and not {
                    info.name,
                    info.distribution,
                }
                & allowed
            ):
                info.status = "disabled"
                continue
            try:
                module = ep.load()
            except (Exception, SystemExit) as exc:  # any import failure of third-party code
                self._fail(info, f"failed to import: {_describe(exc)}", strict)
                continue
            if self._compatible(module, info, strict):
                self.add_plugin(module, info, strict)
        self._check_allowed(allowed)

    def _compatible(self, module: object, info: PluginInfo, strict: bool) -> bool:
        """Whether the plugin supports this aegen's API (its `AEGEN_API` specifier, if any)."""
        wanted = getattr(module, "AEGEN_API", None)
        if wanted is None:
            return True
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            fits = API_VERSION in SpecifierSet(str(wanted))
        except InvalidSpecifier:
            self._fail(
                info,
                f"declares AEGEN_API = {wanted!r}, which is no version specifier "
                '(write one such as ">=1.0,<2")',
                strict,
            )
            return False
        if not fits:
            self._fail(
                info,
                f"supports aegen API {wanted}, but this aegen provides API {API_VERSION} "
                "(install a release of the plugin made for it)",
                strict,
                status="incompatible",
            )
        return fits

    def _check_allowed(self, allowed: set[str] | None) -> None:
        """Warn about names in AEGEN_LOAD_PLUGINS that match no installed plugin."""
        seen = {_normal(name) for p in self.plugins for name in (p.name, p.distribution)}
        unknown = sorted((allowed or set()) - seen)
        if unknown:
            third = sorted({p.name for p in self.plugins if not p.builtin}) or ["none"]
            _warn(
                f"AEGEN_LOAD_PLUGINS names {', '.join(map(repr, unknown))}, which no installed "
                f"plugin or distribution is called (third-party plugins: {', '.join(third)})"
            )

    def add_plugin(self, module: object, info: PluginInfo, strict: bool = False) -> None:
        """Register `module` as plugin `info.name` and collect what its hooks register."""
        if info not in self.plugins:
            self.plugins.append(info)
        try:
            validate = contracts.pluggy_message(_manager, info.name)
            hooks, problems = contracts.checked_hooks(module, validate)
            self.manager.register(hooks, name=info.name)
        except Exception as exc:  # anything pluggy refuses that the checks above let through
            self._fail(info, f"is not a valid plugin: {_describe(exc)}", strict)
            return
        staged: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        try:
            for kind in KIND_TABLE:
                caller = getattr(self.manager.hook, kind.hook)
                for impl in caller.get_hookimpls():
                    if impl.plugin_name == info.name:
                        info.hooks.append(kind.hook)
                        register = _stager(kind, info.name, staged[kind.plural], problems)
                        impl.function(register=register)
        except Exception as exc:
            self.manager.unregister(name=info.name)
            self._fail(info, f"failed while registering: {_describe(exc)}", strict)
            return
        if problems and strict:
            self.manager.unregister(name=info.name)
            self._fail(info, problems[0], strict)
        for problem in problems:
            info.warnings.append(problem)
            _warn(f"plugin {info.name!r} ({info.distribution}) {problem}")
        for kind in KINDS:
            for name, entry in staged[kind].items():
                self._commit(kind, name, entry)
            info.registered[kind] = sorted(staged[kind])
        impls = self.manager.hook.register_commands.get_hookimpls()
        if any(impl.plugin_name == info.name for impl in impls):
            info.hooks.append("register_commands")

    def add_commands(self, app: Any) -> None:
        """Let each loaded plugin add its Typer commands; a failing plugin is reported."""
        for impl in self.manager.hook.register_commands.get_hookimpls():
            info = next(p for p in self.plugins if p.name == impl.plugin_name)
            before = len(app.registered_commands)
            taken = {c.name or c.callback.__name__ for c in app.registered_commands}
            try:
                impl.function(app=app)
            except Exception as exc:
                del app.registered_commands[before:]
                _warn(f"plugin {info.name!r} failed to add commands: {_describe(exc)}; skipped")
                continue
            added = []
            for command in list(app.registered_commands[before:]):
                name = command.name or command.callback.__name__.replace("_", "-")
                if name in taken:  # never let a plugin replace an existing command
                    app.registered_commands.remove(command)
                    _warn(f"plugin {info.name!r} adds a command {name!r} that exists; skipped")
                else:
                    taken.add(name)
                    added.append(name)
            info.registered["commands"] = added

    def _commit(self, kind: str, name: str, entry: Component) -> None:
        table = self.tables[kind]
        if name in table:
            owners = [table[name].plugin, entry.plugin]
            self.conflicts[(kind, name)] = owners
            _warn(
                f"{entry.kind.singular} {name!r} is registered by both plugin {owners[0]!r} "
                f"and plugin {owners[1]!r}; using it is an error until one is removed"
            )
            return
        table[name] = entry

    def _fail(self, info: PluginInfo, message: str, strict: bool, status: str = "failed") -> None:
        info.status, info.error = status, message
        text = f"plugin {info.name!r} ({info.distribution}) {message}"
        if strict:
            raise PluginError(text)
        _warn(f"{text}; skipped")


def _manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(GROUP)
    manager.add_hookspecs(hookspecs)
    return manager


def _stager(
    kind: Kind, plugin: str, staged: dict[str, Component], problems: list[str]
) -> Callable[..., None]:
    """The `register` callback a plugin's hook for `kind` receives: it stages components that
    meet the contract, and notes in `problems` why it leaves out any that do not."""

    def register(name: str, fn: Callable[..., Any], *, description: str = "", **extras: Any):
        what = f"{kind.singular} {name!r}"
        try:
            entry = _component(kind, plugin, name, fn, description, extras, staged)
        except (TypeError, ValueError) as exc:
            reason = str(exc).removeprefix(f"{what}: ")
            problems.append(f"cannot register {what}: {reason}; left out")
            return
        trouble = contracts.call_problems(kind, fn, entry.options)
        if trouble:
            problems.extend(f"{what} {text}; left out" for text in trouble)
            return
        advice = contracts.generator_problem(kind, fn)
        if advice:
            problems.append(f"{what} {advice}")
        staged[name] = entry

    return register


def _component(
    kind: Kind, plugin: str, name: Any, fn: Any, description: Any, extras: dict[str, Any],
    staged: dict[str, Component],
) -> Component:
    """The component `register` was called for, or TypeError/ValueError saying what is wrong."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"{kind.singular} names must be non-empty strings, got {name!r}")
    if not callable(fn):
        raise TypeError(f"expected a callable, got {type(fn).__name__}")
    if not isinstance(description, str):
        raise TypeError(f"description must be a string, got {type(description).__name__}")
    if name in staged:
        raise ValueError("registered twice")
    unknown = sorted(set(extras) - set(kind.extras))
    if unknown:
        takes = ", ".join(["description", *kind.extras])
        raise TypeError(f"register() got unexpected keyword {unknown[0]!r} (it takes {takes})")
    what = f"{kind.singular} {name!r}"
    checked = {key: check(extras.get(key), what) for key, check in kind.extras.items()}
    return Component(kind, name, fn, description, plugin, checked)


def _builtin_first(ep: Any) -> tuple[bool, str]:
    dist = getattr(ep, "dist", None)
    return (not (dist and dist.name == BUILTIN_DISTRIBUTION), ep.name)


def allowed_from_env() -> set[str] | None:
    """AEGEN_LOAD_PLUGINS=a,b loads only those third-party plugins; '' loads none of them."""
    raw = os.environ.get("AEGEN_LOAD_PLUGINS")
    if raw is None:
        return None
    return {_normal(part) for part in raw.split(",") if part.strip()}


def _normal(name: str) -> str:
    """Names compared as pip compares distributions: case, '-', '_' and '.' do not matter."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def strict_from_env() -> bool:
    """AEGEN_STRICT_PLUGINS=1 turns a failing plugin into an error instead of a warning."""
    return os.environ.get("AEGEN_STRICT_PLUGINS", "").lower() in {"1", "true", "yes"}


_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loading plugins on first use."""
    global _registry
    if _registry is None:
        registry = Registry()
        registry.load_entry_points(allowed_from_env(), strict_from_env())
        _registry = registry
    return _registry


def reset_registry() -> None:
    """Forget loaded plugins (for tests and long-running hosts after an install)."""
    global _registry
    _registry = None
