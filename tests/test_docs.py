"""The documentation's examples run as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from aegen import plugins
from aegen.api import sample
from aegen.checkpoint import load_checkpoint

from .conftest import make_distribution, run_aegen

ROOT = Path(__file__).resolve().parents[1]


def worked_example() -> str:
    text = (ROOT / "docs" / "plugins.md").read_text()
    block = re.search(
        r"<!-- example:start -->\n```python\n(.*?)```\n<!-- example:end -->", text, re.S
    )
    assert block, "docs/plugins.md lost its worked example"
    return block.group(1)


def test_plugin_guide_worked_example_runs(tmp_path, monkeypatch, tiny_checkpoint):
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "aegen-example", "aegen_example", worked_example())
    monkeypatch.syspath_prepend(str(site))
    plugins.reset_registry()
    try:
        model = load_checkpoint(tiny_checkpoint).model

        def run():
            frames = sample(
                model,
                "renoise",
                shape=(3, 16, 16),
                n=2,
                steps=4,
                seed=5,
                options={"strength": "0.2"},
            )
            return list(frames)

        first, second = run(), run()
        assert len(first) == 4
        assert all(torch.equal(a, b) for a, b in zip(first, second))
    finally:
        plugins.reset_registry()
    result = run_aegen("plugins", "--json", env={"PYTHONPATH": str(site)})
    entry = next(p for p in json.loads(result.stdout)["plugins"] if p["name"] == "aegen_example")
    assert entry["registered"]["samplers"] == ["renoise"]
    assert entry["registered"]["schedules"] == ["quadratic"]


def test_readme_states_the_install_and_test_commands_that_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for command in ('pip install -e ".[test]"', "python -m pytest -q"):
        assert command in readme and command in ci


@pytest.mark.slow
def test_quickstart_example_runs(image_folder, tmp_path):
    import os
    import subprocess

    env = {**os.environ, "EPOCHS": "1", "SIZE": "16", "WIDTH": "4"}
    result = subprocess.run(
        ["bash", str(ROOT / "examples" / "quickstart.sh"), str(image_folder), str(tmp_path / "qs")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "qs" / "samples.json").read_text())
    assert len(report["images"]) == 16 and (tmp_path / "qs" / "grid.png").exists()
    assert all(Path(i["path"]).exists() for i in report["images"])
