"""Hostile values on the command line and in files (issue 20): each is one `aegen: error:` line
with the documented exit code before anything is allocated; strings from checkpoints, plugins
and file names never reach a terminal raw; library warnings are `aegen: warning:` lines."""

from __future__ import annotations

import io
import json
import os
import resource
import struct
import subprocess
import warnings
from pathlib import Path

import pytest

from aegen.console import Reporter, printable
from aegen.defaults import default_checkpoint
from aegen.errors import UsageError
from tests.conftest import aegen_script, make_images, run_aegen

ESC_TITLE = "\x1b]0;owned\x07"  # an OSC sequence: retitles the terminal
FORGED = "\naegen: error: forged"  # a newline that would start a line of aegen's own
HOSTILE = f"x{ESC_TITLE}\x1b[2J\u202eevil{FORGED}\r\x9b"


def hostile_checkpoint(path: Path, **aegen_fields) -> Path:
    """The shipped default model with `aegen_fields` merged into its metadata."""
    raw = default_checkpoint().read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + length])
    meta = json.loads(header["__metadata__"]["aegen"])
    for key, value in aegen_fields.items():
        meta[key] = {**meta[key], **value} if isinstance(value, dict) else value
    header["__metadata__"]["aegen"] = json.dumps(meta)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length :])
    return path


def assert_shown_safely(text: str) -> None:
    """No control character but newlines between lines, and no line that aegen did not write."""
    assert not any(ch in text for ch in "\x1b\x07\x9b\r\u202e"), repr(text)
    assert "forged" not in "".join(line[:20] for line in text.splitlines())


def limited_memory():
    """preexec_fn: a child that tried to allocate gigabytes fails at once instead of swapping."""
    resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, 8 * 2**30))


# --- point 4: strings from outside are printed escaped -------------------------------------


def test_printable_escapes_what_a_terminal_acts_on_and_keeps_the_rest():
    assert printable("a\nb\tc\r\x1b[31m\x07\x7f\x9b") == "a\\nb\\tc\\r\\x1b[31m\\x07\\x7f\\x9b"
    assert printable("\u202eevil\u2028\udcff") == "\\u202eevil\\u2028\\udcff"
    assert printable("naïve 日本 café ✓ C:\\path") == "naïve 日本 café ✓ C:\\path"


def test_info_escapes_checkpoint_strings_and_json_keeps_them_exact(tmp_path):
    ckpt = hostile_checkpoint(
        tmp_path / f"m{ESC_TITLE}.safetensors",
        provenance={"note": HOSTILE, f"key{ESC_TITLE}": "v"},
        objective={"name": "denoise", "options": {"schedule": HOSTILE}},
    )
    shown = run_aegen("info", ckpt)  # the real script: what a terminal would receive
    assert shown.returncode == 0, shown.stderr
    assert_shown_safely(shown.stdout)
    assert "note          x\\x1b]0;owned\\x07\\x1b[2J\\u202eevil\\naegen: error: forged" in (
        shown.stdout
    )
    exact = json.loads(run_aegen("info", ckpt, "--json").stdout)
    assert exact["provenance"]["note"] == HOSTILE and exact["path"] == str(ckpt)
    assert exact["objective"]["options"]["schedule"] == HOSTILE


def test_the_hand_off_line_escapes_the_checkpoints_option_values():
    from aegen.handoff import sampler_for_run
    from aegen.header import read_checkpoint_info

    info = read_checkpoint_info(default_checkpoint())
    info.objective = {"name": "denoise", "options": {"mu": 0.5, "schedule": HOSTILE}}
    stream = io.StringIO()
    with pytest.raises(UsageError):  # no such schedule: said after the hand-off line
        sampler_for_run("schedule", {}, info, Reporter(stream=stream))
    said = stream.getvalue()
    assert "from the checkpoint's training objective" in said
    assert "schedule=x\\x1b]0;owned\\x07" in said and said.count("\n") == 1
    assert_shown_safely(said)


def test_warnings_and_logs_of_the_reporter_and_of_plugins_are_escaped(capsys):
    from aegen.plugins import _warn

    stream = io.StringIO()
    reporter = Reporter(stream=stream)
    reporter.info(f"reading {HOSTILE}")
    reporter.warn(f"skipped {HOSTILE}")
    _warn(f"plugin {HOSTILE} failed")
    said = stream.getvalue() + capsys.readouterr().err
    assert said.count("\n") == 3 and said.count("aegen: warning: ") == 2
    assert_shown_safely(said)


def test_an_error_naming_a_hostile_file_is_one_escaped_line(cli, tmp_path):
    code, out, err = cli("info", tmp_path / f"no{HOSTILE}.safetensors")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("aegen: error: ")
    assert "\\x1b]0;owned\\x07" in err and "\\naegen: error: forged" in err
    assert_shown_safely(err)


def test_plugin_tables_show_a_plugins_text_escaped_and_without_markup():
    from rich.console import Console

    from aegen.catalog import component_tables, summary_tables

    component = {
        "kind": "sampler", "name": f"s{ESC_TITLE}", "plugin": "p", "call": "sampler(...)",
        "description": f"[red]red[/] [/]{HOSTILE}",
        "options": {"k": {"type": "str", "default": "a", "help": f"[bold]{HOSTILE}",
                          "choices": None, "min": None, "max": None, "check": None}},
    }
    plugin = {"name": f"p{ESC_TITLE}", "distribution": "d", "version": "1", "status": "ok",
              "error": None, "registered": {"samplers": [component["name"]]}, "warnings": []}
    stream = io.StringIO()
    console = Console(file=stream, width=200, color_system=None)
    for table in summary_tables({"plugins": [plugin], "components": [component]}):
        console.print(table)
    for table in component_tables([component]):
        console.print(table)
    shown = stream.getvalue()
    assert "[red]red[/] [/]x" in shown and "[bold]x" in shown  # markup shown, not applied
    assert_shown_safely(shown)


# --- point 3: a bad value on the command line is one line, exit 2, before any allocation ----


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--n", "1000000000"], "--n 1000000000: 1000000000 images of 1x32x32 need about"),
        (["--out-dir", "o", "--name", "{seed:>2000000000}"],
         "--name '{seed:>2000000000}': field {seed:>2000000000}: it would be wider than a file"),
    ],
)
def test_huge_requests_of_generate_are_refused_before_they_are_allocated(tmp_path, args, said):
    result = subprocess.run(  # the real script, as run_aegen runs it, with memory capped
        [aegen_script(), "generate", *args, "--device", "cpu"], capture_output=True, text=True,
        cwd=tmp_path, env=dict(os.environ), preexec_fn=limited_memory, timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"aegen: error: {said}"), result.stderr
    assert result.stderr.count("\n") == 1 and not list(tmp_path.iterdir())


def test_the_library_bounds_n_and_templates_as_the_cli_does(tmp_path):
    from aegen.api import Outputs, generate_files, walk_files

    for run in (generate_files, walk_files):
        with pytest.raises(UsageError, match=r"`n` 1000000000000: .* need about .* GiB"):
            run(None, Outputs(grid=str(tmp_path / "g.png")), n=10**12, steps=1, device="cpu")
        with pytest.raises(UsageError, match="it would be wider than a file name"):
            run(None, Outputs(out_dir=tmp_path, name="{seed:>2000000000}"), n=1, steps=1,
                device="cpu")
    assert not list(tmp_path.iterdir())


def test_templates_that_would_be_too_wide_or_hold_fields_are_usage_errors(cli, tmp_path):
    for flag, template in [("--out", "{seed:.999999f}.png"), ("--name", "{seed:>{index}}")]:
        extra = ["--out-dir", tmp_path / "o"] if flag == "--name" else []
        code, out, err = cli("walk", "--n", "2", *extra, flag, template)
        assert code == 2 and err.startswith(f"aegen: error: {flag} '{template}': field "), err
        assert err.count("\n") == 1 and out == ""


def test_a_device_number_that_is_no_number_is_a_usage_error(cli, tmp_path):
    code, _, err = cli("generate", "--n", "1", "--steps", "1", "--device", "cpu:abc",
                       "--out", tmp_path / "g.png", "-q")
    assert code == 2, err
    assert err == "aegen: error: --device 'cpu:abc': after cpu: comes a device number, e.g. cpu:0\n"
    assert not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("value", ["1" + "0" * 30, "9" * 5000])
def test_a_config_number_beyond_64_bits_is_a_usage_error_naming_the_key(cli, tmp_path, value):
    make_images(tmp_path / "imgs", 2)
    code, _, err = cli("train", tmp_path / "imgs", "--set", f"depth={value}", "--epochs", "1",
                       "--size", "8", "--device", "cpu", "-o", tmp_path / "m.safetensors")
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("aegen: error: config key 'depth' of 'unet' must be between -2**63 and")
    assert len(err) < 200 and not (tmp_path / "m.safetensors").exists()


# --- point 9: library warnings are aegen's warning lines --------------------------------------


def test_python_warnings_under_the_cli_are_one_aegen_warning_line_each(capsys):
    from PIL import Image

    from aegen.cli import _warnings_as_lines

    with _warnings_as_lines():
        warnings.warn(f"a library says {HOSTILE}", UserWarning, stacklevel=1)
        warnings.warn("Image size (480 pixels) exceeds limit of 300 pixels, could be "
                      "decompression bomb DOS attack.", Image.DecompressionBombWarning,
                      stacklevel=1)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 2 and all(line.startswith("aegen: warning: ") for line in lines), err
    assert lines[0].endswith("(UserWarning)")
    assert "480 pixels" in lines[1] and "read anyway" in lines[1]
    assert_shown_safely(err)


def test_pils_decompression_bomb_warning_reaches_the_user_as_an_aegen_line(tmp_path):
    """The real script, with PIL's pixel limit lowered (by a sitecustomize) so that a small
    image is a "bomb": the warning is one aegen line, the run goes on."""
    from PIL import Image

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import PIL.Image\nPIL.Image.MAX_IMAGE_PIXELS = 1100\n")
    image = tmp_path / "big.png"  # 1600 pixels: over the limit, under twice it; 32x32 after
    Image.new("L", (40, 40), 128).save(image)
    result = run_aegen("denoise", "--input", image, "--device", "cpu", "--json", "-q",
                       env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("aegen: warning: Image size (1600 pixels)"), (
        result.stderr
    )
    assert json.loads(result.stdout)["images"] == 1
