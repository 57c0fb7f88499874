"""The core keeps one readable shape (docs/architecture.md): short functions with few
parameters, errors that name the library's own parameters, torch imported at the top of every
module that uses it, and a few named torch-free modules for the commands that must start fast."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aegen.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "aegen"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "data" not in p.relative_to(PACKAGE).parts)
MAX_BODY_LINES = 60
MAX_PARAMETERS = 10
# What `aegen --help`, `plugins`, `install` and `uninstall` import, and `aegen.header` (so that
# `aegen info` reads a checkpoint's header at once): these never import torch.
TORCH_FREE = {
    "aegen", "aegen.__main__", "aegen.api", "aegen.bounds", "aegen.builtin_names",
    "aegen.catalog", "aegen.cli",
    "aegen.console", "aegen.contracts", "aegen.defaults", "aegen.errors", "aegen.hardware",
    "aegen.header", "aegen.hookspecs", "aegen.installer", "aegen.scaffold", "aegen.schedules",
    "aegen.launcher", "aegen.options", "aegen.plugins", "aegen.settings",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def body_lines(node: ast.FunctionDef) -> int:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring does not count
    return body[-1].end_lineno - body[0].lineno + 1 if body else 0


def parameters(node: ast.FunctionDef) -> int:
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return len([n for n in names if n not in ("self", "cls")])


def is_command_signature(path: Path, node: ast.FunctionDef) -> bool:
    """cli.py's Typer commands take one parameter per flag, by design."""
    return path.name == "cli.py" and node.name.endswith("_command")


def test_no_function_in_the_package_is_long_or_takes_many_parameters():
    too_long, too_wide = [], []
    for path in MODULES:
        for node in functions(path):
            where = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
            if body_lines(node) > MAX_BODY_LINES:
                too_long.append(f"{where} ({body_lines(node)} lines)")
            if parameters(node) > MAX_PARAMETERS and not is_command_signature(path, node):
                too_wide.append(f"{where} ({parameters(node)} parameters)")
    assert not too_long, "split these into named steps: " + "; ".join(too_long)
    assert not too_wide, "give these a settings object: " + "; ".join(too_wide)


FLAG = re.compile(r"(?<![\w-])--[a-z]")


def raised_texts(path: Path):
    """Every string literal inside a `raise` statement of a module."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Raise) and node.exc is not None:
            for part in ast.walk(node.exc):
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    yield node.lineno, part.value


def test_library_errors_name_parameters_not_command_line_flags():
    """A Python caller is told about the arguments it passed; the CLI alone speaks of flags."""
    found = [
        f"{path.relative_to(ROOT)}:{line} {text!r}"
        for path in MODULES
        if path.name != "cli.py"
        for line, text in raised_texts(path)
        if FLAG.search(text)
    ]
    assert not found, "; ".join(found)


def marked_parameters(path: Path):
    """(line, listed names, the text around it) of every error built with `parameters=[...]`;
    the text is every string in the enclosing function (a message may be built in steps)."""
    for scope in functions(path):
        text = "".join(c.value for c in ast.walk(scope)
                       if isinstance(c, ast.Constant) and isinstance(c.value, str))
        for node in ast.walk(scope):
            listed = [k.value for k in getattr(node, "keywords", []) if k.arg == "parameters"]
            if isinstance(node, ast.Call) and listed and not isinstance(listed[0], ast.Call):
                names = [c.value for c in ast.walk(listed[0]) if isinstance(c, ast.Constant)]
                yield node.lineno, names, text


def test_every_parameter_an_error_lists_is_marked_in_its_message():
    """The CLI swaps exactly the marked names for flags, so a listed name must be marked."""
    unmarked = [
        f"{path.relative_to(ROOT)}:{line} {name!r}"
        for path in MODULES
        for line, names, text in marked_parameters(path)
        for name in names
        if f"`{name}`" not in text
    ]
    assert not unmarked, "; ".join(unmarked)


def test_a_library_error_names_its_parameter_and_the_cli_its_flag(tmp_path):
    from aegen.training import train

    with pytest.raises(UsageError) as caught:
        train(tmp_path, tmp_path / "m.safetensors", epochs=0)
    assert str(caught.value).startswith("`epochs` must be at least 1")
    assert caught.value.parameters == ("epochs",)
    result = subprocess.run(
        [sys.executable, "-m", "aegen", "train", str(tmp_path), "--epochs", "0"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("aegen: error: --epochs must be at least 1")


def imports_torch(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        return any(a.name.split(".")[0] == "torch" for a in node.names)
    return isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch"


def test_torch_is_imported_at_the_top_or_not_at_all():
    late, heavy = [], []
    for path in MODULES:
        name = module_name(path)
        for node in functions(path):
            if any(imports_torch(inner) for inner in ast.walk(node)):
                late.append(f"{name}.{node.name}")
        tree = ast.parse(path.read_text())
        if name in TORCH_FREE and any(imports_torch(n) for n in ast.walk(tree)):
            heavy.append(name)
    assert not late, "import torch at the top of the module: " + ", ".join(late)
    assert not heavy, "these must stay torch-free: " + ", ".join(heavy)


LOADED = """
import sys
from aegen.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(",".join(sorted(m for m in sys.modules if m == "aegen" or m.startswith("aegen."))))
"""


@pytest.mark.parametrize("args", [["--help"], ["plugins", "--json"], ["install", "--help"],
                                  ["uninstall", "--help"], ["train", "--help"],
                                  ["generate", "--help"], ["plugins", "show", "schedule"]])
def test_the_fast_commands_load_only_the_named_torch_free_modules(args):
    result = subprocess.run([sys.executable, "-c", LOADED, *args], capture_output=True,
                            text=True, env={"AEGEN_LOAD_PLUGINS": "", "PATH": "/usr/bin:/bin"})
    loaded = set(result.stdout.strip().splitlines()[-1].split(","))
    assert loaded <= TORCH_FREE, sorted(loaded - TORCH_FREE)


def test_the_contributor_map_names_only_modules_that_exist():
    text = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`(aegen/[\w/]+\.py)`", text))
    assert len(named) > 30
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, missing
    unmapped = sorted(str(p.relative_to(ROOT)) for p in MODULES
                      if p.name != "__init__.py" and str(p.relative_to(ROOT)) not in named)
    assert not unmapped, f"docs/architecture.md does not say what these do: {unmapped}"


def named_parameters() -> set[str]:
    """Every name a library error lists in `parameters=[...]`."""
    names = set()
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "parameters" and not isinstance(
                node.value, ast.Call
            ):
                names |= {c.value for c in ast.walk(node.value)
                          if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    return names


def test_every_parameter_an_error_names_becomes_a_real_flag():
    import typer

    from aegen.cli import FLAGS, build_app, flag_of

    group = typer.main.get_command(build_app())
    flags = {
        opt
        for command in group.commands.values()
        for param in command.params
        for opt in (*param.opts, *param.secondary_opts)
    }
    named = named_parameters()
    assert len(named) > 20

    def real(flag: str) -> bool:
        return all(part in flags for part in flag.split("/"))  # "-c/--checkpoint"

    assert all(real(flag) for flag in FLAGS.values()), FLAGS
    unknown = sorted(f"{p} -> {flag_of(p)}" for p in named if not real(flag_of(p)))
    assert not unknown, unknown
