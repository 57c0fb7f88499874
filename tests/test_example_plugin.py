"""The third-party example in examples/aegen-restart, installed with `aegen install` for real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import run_aegen

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "aegen-restart"


@pytest.mark.slow
def test_install_generate_its_own_tests_and_uninstall(tiny_checkpoint, tmp_path):
    installed = run_aegen("install", EXAMPLE, "--json")
    assert installed.returncode == 0, installed.stderr
    try:
        listed = json.loads(run_aegen("plugins", "--json").stdout)
        restart = next(p for p in listed["plugins"] if p["name"] == "restart")
        assert restart["distribution"] == "aegen-restart" and restart["status"] == "ok"
        assert restart["registered"]["samplers"] == ["restart"]
        made = run_aegen(
            "generate",
            "-c",
            tiny_checkpoint,
            "--sampler",
            "restart",
            "-O",
            "cycles=2",
            "--steps",
            "6",
            "--n",
            "4",
            "--seed",
            "0",
            "--out",
            tmp_path / "restart.png",
            "--json",
        )
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["options"]["cycles"] == 2
        tests = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                str(EXAMPLE / "tests"),
            ],
            capture_output=True,
            text=True,
            cwd=EXAMPLE,
        )
        assert tests.returncode == 0, tests.stdout[-2000:]
    finally:
        removed = run_aegen("uninstall", "aegen-restart", "-y", "--json")
    assert removed.returncode == 0, removed.stderr
    assert [p["name"] for p in json.loads(removed.stdout)["removed"]] == ["restart"]
    assert "restart" not in run_aegen("plugins", "--json").stdout
