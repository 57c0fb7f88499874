"""Plugins installed and removed with aegen itself, and aegen driven from shell scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import make_distribution, make_wheel, run_aegen

ROOT = Path(__file__).resolve().parents[1]


BROKEN = "raise SystemExit(3)\n"  # a plugin that ends whatever imports it


@pytest.fixture
def venv(tmp_path) -> Path:
    """A virtual environment that sees this interpreter's packages (aegen, pip, torch), so that
    pip installs into and removes from a folder of the test's own, and applies a virtual
    environment's rule: nothing outside sys.prefix is removed. (Not --system-site-packages:
    run from a virtual environment, that would give the base interpreter's packages, without
    the aegen installed in this one.)"""
    import site

    folder = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / ("Scripts" if os.name == "nt" else "bin") / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
    lines = [f"import site; site.addsitedir({p!r})\n" for p in ours if os.path.isdir(p)]
    (Path(purelib) / "_outer_site.pth").write_text("".join(lines))  # runs their .pth files too
    return python


def in_venv(python: Path, *args, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m aegen ARGS` in the virtual environment."""
    return subprocess.run(
        [str(python), "-m", "aegen", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=python.parent,
        timeout=600,
    )


def plugin_status(listed: subprocess.CompletedProcess) -> dict[str, str]:
    assert listed.returncode == 0, listed.stderr  # a plugin calling exit() is only skipped
    return {p["name"]: p["status"] for p in json.loads(listed.stdout)["plugins"]}


def test_a_broken_plugin_never_blocks_its_own_uninstall(venv, tmp_path):
    wheel = make_wheel(tmp_path / "wheels", "aegen-broken", "aegen_broken", BROKEN)
    installed = in_venv(venv, "install", wheel, "--json")
    assert installed.returncode == 0, installed.stderr
    added = json.loads(installed.stdout)["added"]
    assert [(p["name"], p["status"]) for p in added] == [("aegen_broken", "failed")]
    site = venv.parents[1]
    assert [p.name for p in site.rglob("aegen_broken.py")] == ["aegen_broken.py"]
    assert plugin_status(in_venv(venv, "plugins", "--json"))["aegen_broken"] == "failed"
    result = in_venv(venv, "uninstall", "aegen-broken", "-y", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [p["name"] for p in report["removed"]] == ["aegen_broken"]
    assert not list(site.rglob("aegen_broken*"))
    assert "aegen_broken" not in plugin_status(in_venv(venv, "plugins", "--json"))


def test_uninstall_refuses_a_distribution_outside_the_environment(venv, tmp_path):
    """A distribution on PYTHONPATH: pip in a virtual environment skips it and exits 0, pip
    outside one would delete it from that folder; aegen refuses in both, with one line."""
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "aegen-broken", "aegen_broken", BROKEN)
    env = {"PYTHONPATH": str(site)}
    assert plugin_status(run_aegen("plugins", "--json", env=env))["aegen_broken"] == "failed"
    for result in (
        run_aegen("uninstall", "aegen-broken", "-y", "--json", env=env),  # the real script
        in_venv(venv, "uninstall", "aegen-broken", "-y", "--json", env=env),
    ):
        assert result.returncode == 1 and result.stdout == ""
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("aegen: error: cannot uninstall aegen-broken: it lies ")
        assert "outside this environment" in lines[0] and str(site.resolve()) in lines[0]
    assert (site / "aegen_broken.py").exists()
    assert plugin_status(run_aegen("plugins", "--json", env=env))["aegen_broken"] == "failed"


def test_uninstall_of_something_absent_fails_cleanly(cli):
    code, out, err = cli("uninstall", "aegen-no-such-plugin", "-y")
    assert (code, out) == (1, "")
    assert err == "aegen: error: cannot uninstall aegen-no-such-plugin: it is not installed\n"
    code, _, err = cli("uninstall", "aegen-no-such-plugin==1.0", "-y")
    assert code == 2 and len(err.splitlines()) == 1 and "distribution name" in err


@pytest.mark.slow
def test_batch_script_collects_json_and_stops_at_the_first_failure(tiny_checkpoint, tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "b"), "SEEDS": "0 1", "STEPS": "3", "N": "4"}
    script = str(ROOT / "examples" / "batch.sh")
    done = subprocess.run(
        ["bash", script, str(tiny_checkpoint)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    reports = json.loads((tmp_path / "b" / "reports.json").read_text())
    assert [(r["options"]["schedule"], r["seed"]) for r in reports] == [
        ("linear", 0),
        ("linear", 1),
        ("cosine", 0),
        ("cosine", 1),
    ]
    assert done.stdout.strip() == str(tmp_path / "b" / "reports.json")
    env.update(OUT=str(tmp_path / "c"), SCHEDULES="linear zigzag cosine", SEEDS="0")
    failed = subprocess.run(
        ["bash", script, str(tiny_checkpoint)], capture_output=True, text=True, env=env
    )
    assert failed.returncode != 0 and "unknown schedule 'zigzag'" in failed.stderr
    made = sorted(p.name for p in (tmp_path / "c").glob("*.png"))
    assert made == ["linear-0.png"]  # nothing after the failure


@pytest.mark.slow
def test_inputs_can_come_from_stdin(tiny_checkpoint, image_folder, tmp_path):
    paths = sorted(str(p) for p in image_folder.rglob("img*.png"))[:3]
    result = run_aegen(
        "denoise",
        "-c",
        tiny_checkpoint,
        "--input",
        "-",
        "--alpha",
        "0.5",
        "--json",
        "-q",
        input="\n".join(paths) + "\n",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [i["path"] for i in report["settings"][0]["per_image"]] == paths


def test_every_command_has_json_and_quiet(cli):
    for command in (
        "train",
        "generate",
        "walk",
        "denoise",
        "represent",
        "plugins",
        "info",
        "install",
        "uninstall",
    ):
        code, out, _ = cli(command, "--help")
        assert code == 0 and "--json" in out and "--quiet" in out, command
