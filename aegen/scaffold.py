"""`aegen plugins new`: write a plugin package to start from, one kind of component at a time.

The package is rendered from the templates in `aegen/plugin_template/` (shared files at the top,
one folder per kind) with `string.Template`, and written into a temporary sibling folder that is
renamed into place only when every file is written, so a failure leaves no half package. Torch-
free: it only writes text.
"""

from __future__ import annotations

import builtins
import keyword
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from .errors import UsageError


@dataclass(frozen=True)
class Blueprint:
    """One kind a package can be made for: the registry's kind (`plural`, as `aegen plugins
    --json` names it), what the README calls it, and its one-line summary."""

    plural: str
    words: str
    summary: str
    extra_modules: tuple[str, ...] = ()  # more modules of the package than __init__.py


BLUEPRINTS: dict[str, Blueprint] = {
    "sampler": Blueprint(
        "samplers", "sampler",
        "iterated denoising on a schedule whose frames each keep part of the last one",
    ),
    "schedule": Blueprint(
        "schedules", "schedule",
        "c = (n/N)^k, d = 1 - c, the weights of the model output and of noise at step n",
    ),
    "architecture": Blueprint(
        "architectures", "architecture",
        "a small convolutional autoencoder (stride-2 convolutions down, transposed ones up)",
        extra_modules=("model",),
    ),
    "objective": Blueprint(
        "objectives", "training objective",
        "masked autoencoding, the model trained on images with a share of the pixels hidden",
    ),
    "source": Blueprint(
        "data_sources", "data source",
        "training images listed in a text file (.txt), one image path a line",
    ),
}
KINDS = tuple(BLUEPRINTS)

_NAME = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
MAX_NAME = 30
# Names the templates use at the top level of the package's module: a component named so would
# replace them.
_TAKEN = {"hookimpl", "get_schedule", "annotations", "torch", "aegen", "builtins"}


def check_name(name: str) -> None:
    """Refuse a component name that cannot also name the module `aegen_NAME` and the function
    the templates define, in one line that says what would do."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > MAX_NAME:
        raise UsageError(
            f"`name` must be a lower-case Python identifier of at most {MAX_NAME} characters "
            f"(letters, digits and single underscores, starting with a letter, e.g. momentum); "
            f"got {name!r}"
        )
    if keyword.iskeyword(name) or hasattr(builtins, name) or name in _TAKEN:
        raise UsageError(
            f"`name` {name!r} is a Python keyword or built-in name, or a name the plugin's "
            f"module uses; choose another, e.g. my_{name}"
        )
    if name.startswith("register"):
        raise UsageError(f"`name` {name!r} would look like an aegen hook; choose another")


ALIASES = {"data_source": "source", "data-source": "source"}  # as `aegen plugins` names it


def check_kind(kind: str) -> Blueprint:
    """The blueprint of `kind` ("data_source" as `aegen plugins` says it is "source"), or a
    UsageError listing the kinds."""
    kind = ALIASES.get(kind, kind)
    if kind not in BLUEPRINTS:
        raise UsageError(f"`kind` must be one of {', '.join(KINDS)}; got {kind!r}")
    return BLUEPRINTS[kind]


def check_not_builtin(name: str, kind: str) -> None:
    """Refuse the name of a built-in component of the same kind: the two would conflict, and
    aegen refuses to use a name two plugins register."""
    from .plugins import Registry

    registry = Registry()
    registry.load_entry_points(allowed=set())  # the built-ins only
    plural = BLUEPRINTS[kind].plural
    if name in registry.tables.get(plural, {}):
        builtin = registry.tables[plural][name]
        raise UsageError(
            f"`name` {name!r} is already the built-in {BLUEPRINTS[kind].words} of plugin "
            f"{builtin.plugin!r}; choose another"
        )


def _template(path: str) -> Template:
    """A template of `aegen/plugin_template/`, read as package data (a wheel may be zipped)."""
    return Template(resources.files("aegen").joinpath("plugin_template", path).read_text("utf-8"))


def render(name: str, kind: str) -> dict[str, str]:
    """The package's files, relative path -> text."""
    blueprint = check_kind(kind)
    module = f"aegen_{name}"
    values = {
        "name": name,
        "module": module,
        "distribution": distribution_of(name),
        "kind": kind,
        "kind_words": blueprint.words,
        "summary": blueprint.summary,
    }
    values["usage"] = _template(f"{kind}/usage.md.tmpl").substitute(values)
    files = {
        "pyproject.toml": _template("pyproject.toml.tmpl").substitute(values),
        "README.md": _template("README.md.tmpl").substitute(values),
        f"src/{module}/__init__.py": _template(f"{kind}/__init__.py.tmpl").substitute(values),
        f"tests/test_{name}.py": _template(f"{kind}/test.py.tmpl").substitute(values),
    }
    for extra in blueprint.extra_modules:
        files[f"src/{module}/{extra}.py"] = _template(f"{kind}/{extra}.py.tmpl").substitute(values)
    return files


def distribution_of(name: str) -> str:
    """The distribution's name, `aegen-NAME` (underscores as dashes, the normal form)."""
    return "aegen-" + name.replace("_", "-")


def _target(dest: str | os.PathLike | None, name: str, force: bool) -> Path:
    """The package folder to write, refusing an existing one that holds anything unless
    `force`."""
    parent = Path.cwd() if dest is None else Path(dest)
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"{parent} is a file; the package is written into a folder")
    folder = parent / distribution_of(name)
    if folder.exists() or folder.is_symlink():
        if not folder.is_dir():
            raise UsageError(f"{folder} exists and is not a folder; remove it or choose another")
        if any(folder.iterdir()) and not force:
            raise UsageError(
                f"{folder} already exists and is not empty; use `force` to overwrite the files "
                "the scaffold writes (other files there are kept)",
                parameters=["force"],
            )
    return folder.absolute()


def _write(folder: Path, files: dict[str, str]) -> None:
    """Write every file into a temporary sibling of `folder`, then move it into place: the
    whole folder when there is none yet, else file by file (each replaced atomically)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        package = staging / folder.name  # made by mkdir, so with the user's usual permissions
        for relative, text in files.items():
            path = package / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        if not folder.exists():
            os.replace(package, folder)
            return
        for relative in files:
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            os.replace(package / relative, folder / relative)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def new_plugin(
    name: str,
    kind: str = "sampler",
    dest: str | os.PathLike | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Write the plugin package `dest/aegen-NAME` for one component `name` of `kind`: a
    pyproject with the entry point, the module with the hook and a working example, tests that
    use only the documented harness, and a README. It installs with `aegen install -e` and
    passes its own tests as written."""
    check_name(name)
    check_kind(kind)
    kind = ALIASES.get(kind, kind)
    folder = _target(dest, name, force)
    check_not_builtin(name, kind)
    files = render(name, kind)
    _write(folder, files)
    return {
        "path": str(folder),
        "name": name,
        "kind": kind,
        "distribution": distribution_of(name),
        "module": f"aegen_{name}",
        "files": sorted(files),
    }
