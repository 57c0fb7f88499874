"""Shared fixtures: small real image folders, a tiny trained checkpoint, and ways to run aegen."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TINY = {"width": 4, "depth": 2}  # a U-Net small enough to train in about a second
SIZE = 16


def make_images(folder: Path, count: int, grey: bool = False, seed: int = 0) -> list[Path]:
    """Real PNG/JPEG files of smooth random blobs, 20x24 so resizing and cropping matter."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    yy, xx = np.mgrid[0:20, 0:24]
    for i in range(count):
        cy, cx, r = rng.uniform(4, 16), rng.uniform(4, 20), rng.uniform(3, 8)
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2 < r**2).astype(np.float32)
        colour = rng.uniform(0.2, 1.0, size=3)
        pixels = (blob[..., None] * colour + 0.1 * rng.random((20, 24, 3))) * 255
        img = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
        if grey:
            img = img.convert("L")
        sub = folder / ("nested" if i % 3 == 0 else "")
        sub.mkdir(exist_ok=True)
        path = sub / (f"img{i:03d}.jpg" if i % 4 == 1 else f"img{i:03d}.png")
        img.save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """24 colour images (some nested, some JPEG), one damaged file and one non-image."""
    folder = tmp_path_factory.mktemp("photos")
    make_images(folder, 24)
    (folder / "broken.png").write_bytes(b"\x89PNG this is not really an image")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="session")
def grey_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("grey")
    make_images(folder, 16, grey=True)
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, image_folder) -> Path:
    """A tiny U-Net trained for two epochs on `image_folder`."""
    from aegen.training import train

    out = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    train(image_folder, out, config=TINY, size=SIZE, epochs=2, batch_size=8, seed=0, device="cpu")
    return out


@pytest.fixture
def cli(capsys):
    """Run the CLI in this process: returns (exit code, stdout, stderr)."""
    from aegen.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run


def aegen_script() -> str:
    """The installed console script, as a user runs it."""
    found = shutil.which("aegen") or str(Path(sys.executable).parent / "aegen")
    assert Path(found).exists(), "the aegen console script is not installed"
    return found


def run_aegen(
    *args, env: dict | None = None, cwd: Path | None = None, input: str | None = None
) -> subprocess.CompletedProcess:
    """Run the real `aegen` script in a subprocess (stdout/stderr captured, not a terminal)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [aegen_script(), *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        input=input,
        timeout=600,
    )


def as_foreground() -> None:
    """preexec_fn for a child that a test will Ctrl-C: a shell starts background jobs (a CI
    runner under `nohup ... &`) with SIGINT ignored, and the child would inherit that."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def make_distribution(site: Path, dist: str, module: str, code: str, version: str = "1.0") -> None:
    """Lay out a real installed distribution (dist-info with entry points) in `site`."""
    (site / f"{module}.py").write_text(textwrap.dedent(code))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[aegen]\n{module} = {module}\n")
    files = [f"{module}.py", *(f"{info.name}/{n}" for n in ("METADATA", "entry_points.txt"))]
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in [*files, f"{info.name}/RECORD"]))
