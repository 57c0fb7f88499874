"""What a plugin must get right, checked when it registers, so that a mistake is reported with
the plugin's name and what to change, not later as an internal error.

Two checks: the hook functions a plugin module defines (names, `@hookimpl`, the argument pluggy
passes by name), and how each registered callable can be called (`Kind.call`).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pluggy

from .hookspecs import KIND_TABLE, Kind

MARK = "aegen_impl"  # the attribute pluggy's HookimplMarker("aegen") sets on a hook function
HOOKS = tuple(kind.hook for kind in KIND_TABLE) + ("register_commands",)
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _hook_name(attr: str, fn: Any) -> str:
    """The hook a marked function implements: its name, or the `specname` it gives."""
    opts = getattr(fn, MARK, None) or {}
    return opts.get("specname") or attr


def checked_hooks(
    plugin: object, validate: Callable[[str, Callable[..., Any]], str | None]
) -> tuple[object, list[str]]:
    """A namespace holding only `plugin`'s sound hook functions, and what is wrong with the
    others. `validate(attr, fn)` returns pluggy's message for a hook it refuses, else None."""
    good: dict[str, Any] = {}
    problems: list[str] = []
    for attr in sorted(dir(plugin)):
        try:
            fn = getattr(plugin, attr, None)
        except Exception:  # a lazy attribute that cannot load (an optional dependency)
            continue
        if not inspect.isroutine(fn):
            continue
        marked = getattr(fn, MARK, None) is not None
        hook = _hook_name(attr, fn) if marked else attr
        if hook in HOOKS and not marked:
            problems.append(
                f"defines `{attr}` without @hookimpl (from aegen.api import hookimpl), so "
                "aegen never calls it"
            )
        elif hook in HOOKS:
            message = validate(attr, fn)
            if message is None:
                good[attr] = fn
            else:
                takes = "app" if hook == "register_commands" else "register"
                problems.append(
                    f"hook `{attr}` is refused by pluggy, which passes its argument by name "
                    f"(`{takes}`): " + " ".join(message.split())
                )
        elif marked or attr.startswith("register_") and _near_hook(attr) and _one_argument(fn):
            problems.append(f"defines `{attr}`, which is no aegen hook; {_suggest(hook)}")
    return types.SimpleNamespace(**good), problems


def _one_argument(fn: Callable[..., Any]) -> bool:
    """Whether `fn` takes one argument, as a hook does (a helper taking more is no hook)."""
    try:
        return len(inspect.signature(fn).parameters) == 1
    except (TypeError, ValueError):
        return True


def _near_hook(name: str) -> bool:
    return bool(difflib.get_close_matches(name, HOOKS, n=1, cutoff=0.8))


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, HOOKS, n=1, cutoff=0.6)
    hint = f"did you mean `{close[0]}`? " if close else ""
    return hint + "(hooks: " + ", ".join(HOOKS) + ")"


def pluggy_message(
    manager_factory: Callable[[], pluggy.PluginManager], plugin: str
) -> Callable[..., Any]:
    """A `validate` for `checked_hooks`: pluggy's own verdict on one hook function of
    `plugin`, from a scratch manager, so a refusal is pluggy's whole message and the real
    manager stays clean."""

    def validate(attr: str, fn: Callable[..., Any]) -> str | None:
        scratch = manager_factory()
        try:
            scratch.register(types.SimpleNamespace(**{attr: fn}), name=plugin)
        except pluggy.PluginValidationError as exc:
            return str(exc)
        return None

    return validate


def call_problems(kind: Kind, fn: Callable[..., Any], options: Iterable[str] = ()) -> list[str]:
    """Why aegen could not call `fn` as `kind.call` with `options` as keywords (empty when it
    can, or when Python cannot tell, e.g. for some built-in functions)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return []
    kinds = {p.kind for p in params}
    positional = [p for p in params if p.kind in _POSITIONAL]
    problems = []
    if len(positional) < len(kind.positional) and inspect.Parameter.VAR_POSITIONAL not in kinds:
        wanted = len(kind.positional)
        problems.append(f"takes {len(positional)} positional parameters, not {wanted}")
    first = {p.name for p in positional[: len(kind.positional)]}  # filled by position
    passed = set(kind.keywords) | set(options)
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if inspect.Parameter.VAR_KEYWORD not in kinds:
        missing = [k for k in (*kind.keywords, *options) if k not in named - first]
        if missing:
            problems.append("does not accept " + ", ".join(f"`{k}`" for k in missing))
    required = [
        p.name
        for p in params
        if p.name not in first | passed
        and p.default is p.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if required:
        problems.append("requires " + ", ".join(f"`{k}`" for k in required) + ", never passed")
    if not problems:
        return []
    return [f"cannot be called as aegen calls it, {kind.call}: " + "; ".join(problems)]


def generator_problem(kind: Kind, fn: Callable[..., Any]) -> str | None:
    """A warning when a sampler is not a generator function (aegen needs an iterator of frames;
    a callable that returns one still works, so this does not refuse it)."""
    if not kind.generator:
        return None
    target = fn.func if isinstance(fn, functools.partial) else inspect.unwrap(fn)
    if inspect.isclass(target) and hasattr(target, "__next__"):
        return None  # its instances are iterators of frames
    call = type(target).__call__ if not inspect.isroutine(target) else None
    if inspect.isgeneratorfunction(target) or inspect.isgeneratorfunction(call):
        return None
    return (
        "is not a generator function: yield one frame per step (`yield frame`), do not "
        "return a tensor (a wrapper that returns a generator should use functools.wraps)"
    )


def describe_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Declared options as JSON: type, default, help, choices and limits of each."""
    return {name: option.as_json() for name, option in sorted(options.items())}
