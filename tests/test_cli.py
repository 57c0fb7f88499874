"""Command-line conventions: results on stdout, logs on stderr, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import run_aegen


def test_help_lists_the_commands_with_examples(cli):
    code, out, _ = cli("--help")
    assert code == 0
    for command in ("train", "generate", "plugins", "info"):
        assert command in out
    for command in ("train", "generate"):
        code, out, _ = cli(command, "--help")
        assert code == 0 and "Examples:" in out and f"aegen {command} " in out


def test_version(cli):
    code, out, _ = cli("--version")
    assert code == 0 and out.startswith("aegen ")


def test_usage_errors_exit_2_with_one_line(cli):
    code, out, err = cli("generate", "--steps", "many")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Invalid value for '--steps'" in err
    code, _, err = cli("frobnicate")
    assert code == 2 and "No such command 'frobnicate'" in err


def test_runtime_errors_exit_1_without_traceback(tmp_path):
    result = run_aegen("info", tmp_path / "absent.safetensors")
    assert result.returncode == 1
    assert result.stderr.strip() == f"aegen: error: {tmp_path / 'absent.safetensors'}: no such file"
    assert "Traceback" not in result.stderr


def test_json_goes_to_stdout_and_logs_to_stderr(tiny_checkpoint, tmp_path, cli):
    code, out, err = cli(
        "generate",
        "-c",
        tiny_checkpoint,
        "--steps",
        "2",
        "--n",
        "2",
        "--seed",
        "0",
        "--out",
        tmp_path / "g.png",
        "--json",
    )
    assert code == 0
    assert json.loads(out)["grid"] == str(tmp_path / "g.png")
    assert "loaded" in err and "sampling" in err


def test_no_colour_when_not_a_terminal(tmp_path):
    result = run_aegen("plugins", env={"TERM": "xterm-256color", "FORCE_COLOR": ""})
    assert result.returncode == 0 and "\x1b[" not in result.stdout + result.stderr


NO_TORCH = """
import sys
from aegen.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "torchvision", "numpy", "safetensors") if m in sys.modules)
print(",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["plugins"],
        ["plugins", "--json"],
        ["generate", "--help"],
        ["walk", "--help"],
        ["train", "--help"],
        ["denoise", "--help"],
        ["represent", "--help"],
        ["install", "--help"],
    ],
)
def test_help_and_plugins_do_not_import_torch(args):
    result = subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True)
    assert result.stderr.strip().splitlines()[-1:] in ([], [""]), result.stderr


def test_info_does_not_import_torch(tiny_checkpoint):
    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH, "info", str(tiny_checkpoint)],
        capture_output=True,
        text=True,
    )
    assert result.stderr.strip() == "", result.stderr


def test_unwritable_output_is_a_one_line_runtime_error(tiny_checkpoint, tmp_path, cli):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    code, out, err = cli(
        "generate",
        "-c",
        tiny_checkpoint,
        "--steps",
        "1",
        "--n",
        "1",
        "--out",
        blocker / "grid.png",
        "-q",
    )
    assert code == 1 and out == ""
    assert err.startswith("aegen: error:") and err.count("\n") == 1 and "internal" not in err


def test_library_errors_name_parameters_and_the_cli_names_flags(tiny_checkpoint, tmp_path, cli):
    """The library says `n`, the shell user reads `--n`: one table (cli.FLAGS) between them."""
    from aegen.cli import shell_message
    from aegen.errors import UsageError
    from aegen.outputs import Outputs
    from aegen.tasks import generate_files

    with pytest.raises(UsageError, match="^`n` must be at least 1, got 0$") as caught:
        generate_files(tiny_checkpoint, Outputs(grid=str(tmp_path / "g.png")), n=0)
    assert shell_message(caught.value) == "--n must be at least 1, got 0"
    named = UsageError("`name` 'a.png' gives several images one file name", parameters=["name"])
    assert shell_message(named) == "--name 'a.png' gives several images one file name"
    grid = UsageError("`grid` '{x}' is not a valid template", parameters=["grid"])
    assert shell_message(grid) == "--out '{x}' is not a valid template"
    path = UsageError("/tmp/force/force.png exists; use `force` to overwrite it",
                      parameters=["force"])  # only the marked word is a parameter
    assert shell_message(path) == "/tmp/force/force.png exists; use --force to overwrite it"
    epochs = UsageError("m.safetensors already has 3 epochs; ask for more with `epochs`",
                        parameters=["epochs"])
    assert shell_message(epochs) == "m.safetensors already has 3 epochs; ask for more with --epochs"
    unlisted = UsageError("its config cannot be built: use a smaller `size`")
    assert shell_message(unlisted) == "its config cannot be built: use a smaller size"
    code, _, err = cli("generate", "-c", tiny_checkpoint, "--n", "0")
    assert code == 2 and err == "aegen: error: --n must be at least 1, got 0\n"
