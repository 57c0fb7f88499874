"""Plugins installed and removed with aegen itself, and aegen driven from shell scripts."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .conftest import make_distribution, run_aegen

ROOT = Path(__file__).resolve().parents[1]


def test_a_broken_plugin_never_blocks_its_own_uninstall(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "aegen-broken", "aegen_broken", "raise SystemExit(3)\n")
    env = {"PYTHONPATH": str(site)}
    listed = run_aegen("plugins", "--json", env=env)
    assert listed.returncode == 0, listed.stderr  # a plugin calling exit() is only skipped
    status = {p["name"]: p["status"] for p in json.loads(listed.stdout)["plugins"]}
    assert status["aegen_broken"] == "failed"
    result = run_aegen("uninstall", "aegen-broken", "-y", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert [p["name"] for p in json.loads(result.stdout)["removed"]] == ["aegen_broken"]
    assert not (site / "aegen_broken.py").exists()
    after = run_aegen("plugins", "--json", env=env)
    assert "aegen_broken" not in after.stdout


def test_uninstall_of_something_absent_fails_cleanly(tmp_path):
    result = run_aegen("uninstall", "aegen-no-such-plugin", "-y")
    assert result.returncode in (0, 1)  # pip only warns about what is not installed
    assert "Traceback" not in result.stderr


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
    env.update(OUT=str(tmp_path / "c"), SCHEDULES="linear zigzag cosine")
    failed = subprocess.run(
        ["bash", script, str(tiny_checkpoint)], capture_output=True, text=True, env=env
    )
    assert failed.returncode != 0 and "unknown schedule 'zigzag'" in failed.stderr
    made = sorted(p.name for p in (tmp_path / "c").glob("*.png"))
    assert made == ["linear-0.png", "linear-1.png"]  # nothing after the failure


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
