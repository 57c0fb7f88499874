"""The default model shipped inside the package: every command works without -c."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aegen.checkpoint import load_checkpoint
from aegen.defaults import default_checkpoint

from .conftest import run_aegen

ROOT = Path(__file__).resolve().parents[1]


def test_default_model_is_shipped_small_and_valid():
    path = default_checkpoint()
    assert path.exists() and path.stat().st_size <= 8 * 2**20
    info = load_checkpoint(path).info
    assert (info.channels, info.size) == (1, 32)
    assert "fashion-mnist" in info.provenance["data"]
    assert info.provenance["source"] == "idx" and info.provenance["images"] == 60000


def test_recipe_script_matches_the_shipped_model():
    script = (ROOT / "examples" / "train-default-model.sh").read_text()
    provenance = load_checkpoint(default_checkpoint()).info.provenance
    config = load_checkpoint(default_checkpoint()).info.config
    flags = dict(re.findall(r"--([a-z-]+) (\S+)", script))
    assert int(flags["epochs"]) == provenance["epochs"]
    assert int(flags["seed"]) == provenance["seed"]
    assert int(flags["batch-size"]) == provenance["batch_size"]
    assert float(flags["lr"]) == provenance["lr"]
    assert int(flags["size"]) == config["size"]
    sets = dict(re.findall(r"--set (\w+)=(\S+)", script))
    assert {k: int(v) for k, v in sets.items()} == {k: config[k] for k in sets}
    objective = load_checkpoint(default_checkpoint()).info.objective
    assert flags["objective"] == objective["name"] == "denoise"
    assert not re.search(r"-O |--option ", script)  # the objective's defaults
    assert objective["options"] == {"schedule": "linear", "mu": 0.7, "sigma": 0.2}
    # The arithmetic it was trained with is pinned in the script, not left to --precision auto,
    # which could pick otherwise on another CPU.
    assert flags["precision"] == provenance.get("precision", "fp32")
    layout = "--channels-last" if provenance.get("channels_last", False) else "--contiguous"
    assert layout in script
    assert flags.get("lr-schedule", "constant") == provenance.get("lr_schedule", "constant")
    assert float(flags.get("ema", 0)) == provenance.get("ema", 0)


@pytest.mark.slow
def test_generate_without_a_checkpoint_uses_the_default_model(tmp_path):
    result = run_aegen(
        "generate",
        "--n",
        "4",
        "--steps",
        "5",
        "--seed",
        "0",
        "--out",
        "g.png",
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "using the default model" in result.stderr
    assert json.loads(result.stdout)["checkpoint"] == str(default_checkpoint())
    assert (tmp_path / "g.png").exists()


def test_every_command_that_takes_a_checkpoint_works_without_one(tmp_path, cli, image_folder):
    code, out, err = cli("info", "--json")
    assert code == 0 and json.loads(out)["image"] == {"channels": 1, "size": 32}
    assert "using the default model" in err
    code, _, err = cli(
        "walk",
        "--steps",
        "3",
        "--n",
        "4",
        "--start-steps",
        "2",
        "--seed",
        "0",
        "--out",
        tmp_path / "w.png",
        "-q",
    )
    assert code == 0, err
    code, out, err = cli(
        "denoise", "-i", image_folder, "--limit", "4", "--alpha", "0.5", "--json", "-q"
    )
    assert code == 0, err
    assert json.loads(out)["images"] == 4  # colour inputs converted to the model's grey
    code, out, err = cli(
        "represent",
        "-i",
        image_folder,
        "--limit",
        "1",
        "--steps",
        "3",
        "--seed",
        "0",
        "--json",
        "-q",
    )
    assert code == 0, err
