"""README.md's picture is what its command makes: byte for byte on the machine that made it
(docs/images/readme-media.json names it), and on any machine the same on every run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from .conftest import run_aegen

ROOT = Path(__file__).resolve().parents[1]
RECIPE = json.loads((ROOT / "docs" / "images" / "readme-media.json").read_text())


def same_machine() -> bool:
    """Whether this is the CPU and torch build that made the files (the thread count is set for
    the run below; the tests themselves run torch on one thread)."""
    import torch

    from aegen.hardware import cpu

    here, made = cpu(), RECIPE["machine"]
    return (here.name, here.notable, torch.__version__) == (made["cpu"], made["flags"],
                                                           made["torch"])


def pinned(media: dict) -> list[str]:
    """The README's command with the fast path `auto` took when the file was made, so the test
    does not depend on what `auto` measures today."""
    fast = media["fast_path"]
    layout = "--channels-last" if fast["channels_last"] else "--contiguous"
    return ["--precision", fast["precision"], layout]


def test_the_readme_shows_the_recorded_commands():
    readme = (ROOT / "README.md").read_text()
    for media in RECIPE["media"].values():
        assert media["command"] in readme


@pytest.mark.slow
def test_the_readme_picture_is_what_its_command_makes(tmp_path):
    media = RECIPE["media"]["picture"]
    args = media["command"].split()[1:]
    out = tmp_path / "samples.png"
    args[args.index("--out") + 1] = str(out)
    threads = {"OMP_NUM_THREADS": str(RECIPE["machine"]["threads"])}
    done = run_aegen(*args, *pinned(media), "-q", env=threads)
    assert done.returncode == 0, done.stderr
    made = hashlib.sha256(out.read_bytes()).hexdigest()
    if same_machine():
        assert made == media["sha256"]
        assert made == hashlib.sha256(
            (ROOT / "docs" / "images" / "default-samples.png").read_bytes()).hexdigest()
    else:  # another CPU sums in another order (docs/cli.md): each run still repeats itself
        again = tmp_path / "again.png"
        args[args.index("--out") + 1] = str(again)
        done = run_aegen(*args, *pinned(media), "-q", env=threads)
        assert done.returncode == 0, done.stderr
        assert again.read_bytes() == out.read_bytes()
