"""Shared fixtures: small real image folders, a tiny trained checkpoint, and ways to run aegen."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
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


def make_photos(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """JPEG photographs of made-up flowers, about 224 pixels a side as flowers17's are: a blurred
    two-colour background, petals around a centre, light and grain; each one different."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        h, w = int(rng.integers(200, 260)), int(rng.integers(200, 260))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        top, bottom = rng.uniform(0, 1, 3), rng.uniform(0, 0.6, 3)
        t = (yy / h)[..., None]
        coarse = rng.random((6, 6, 3))  # a blurred background: bilinear from a 6x6 grid
        gy, gx = yy / h * 5, xx / w * 5
        y0, x0 = gy.astype(int), gx.astype(int)
        fy, fx = (gy - y0)[..., None], (gx - x0)[..., None]
        blur = (
            coarse[y0, x0] * (1 - fy) * (1 - fx)
            + coarse[y0 + 1, x0] * fy * (1 - fx)
            + coarse[y0, x0 + 1] * (1 - fy) * fx
            + coarse[y0 + 1, x0 + 1] * fy * fx
        )
        pixels = 0.6 * (top * (1 - t) + bottom * t) + 0.4 * blur
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        radius = rng.uniform(0.15, 0.35) * min(h, w)
        petals, turn = int(rng.integers(4, 9)), rng.uniform(0, np.pi)
        angle, dist = np.arctan2(yy - cy, xx - cx), np.hypot(yy - cy, xx - cx)
        edge = radius * (0.55 + 0.45 * np.abs(np.cos(petals / 2 * (angle + turn))))
        petal = np.clip((edge - dist) / 3, 0, 1)[..., None]
        shade = (0.7 + 0.3 * np.clip(1 - dist / radius, 0, 1))[..., None]
        pixels = pixels * (1 - petal) + rng.uniform(0.3, 1, 3) * shade * petal
        middle = np.clip((0.18 * radius - dist) / 2, 0, 1)[..., None]
        pixels = pixels * (1 - middle) + rng.uniform(0, 0.5, 3) * middle
        light = 0.75 + 0.5 * rng.random() * (xx / w)[..., None]
        pixels = pixels * light + rng.normal(0, 0.03, pixels.shape)
        path = folder / f"photo{i:03d}.jpg"
        Image.fromarray((pixels.clip(0, 1) * 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def pytest_configure(config):
    """One CPU thread for torch (and for every aegen the tests start), unless OMP_NUM_THREADS says
    otherwise. The tests' models are tiny, so a second thread gains nothing; and on a machine
    whose cores are busy with anything else, OpenMP threads that wait for each other make each
    step up to a hundred times slower (measured: 1.3 ms against 220 ms a step, the quick tier
    1 minute against 8)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if "torch" in sys.modules:  # imported already (by a plugin): too late for the variable
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory) -> Path:
    """AEGEN_CACHE_DIR is a fresh folder for the whole session, inherited by every aegen the tests
    start, so no test writes into the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("aegen-cache")
    before = os.environ.get("AEGEN_CACHE_DIR")
    os.environ["AEGEN_CACHE_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("AEGEN_CACHE_DIR", None)
    else:
        os.environ["AEGEN_CACHE_DIR"] = before


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


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    """A folder on sys.path for distributions made by `make_distribution` (on PYTHONPATH too,
    for a subprocess); the in-process registry is loaded afresh on either side of the test."""
    from aegen import plugins

    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    plugins.reset_registry()
    yield folder
    plugins.reset_registry()


def make_distribution(site: Path, dist: str, module: str, code: str, version: str = "1.0") -> None:
    """Lay out a real installed distribution (dist-info with entry points) in `site`."""
    (site / f"{module}.py").write_text(textwrap.dedent(code))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[aegen]\n{module} = {module}\n")
    files = [f"{module}.py", *(f"{info.name}/{n}" for n in ("METADATA", "entry_points.txt"))]
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in [*files, f"{info.name}/RECORD"]))


def make_wheel(
    folder: Path, dist: str, module: str, code: str, version: str = "1.0", plugin: bool = True
) -> Path:
    """Build a real wheel of one module (an aegen plugin unless `plugin` is false) in `folder`:
    pip installs it without a build backend or an index."""
    stem = f"{dist.replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    files = {
        f"{module}.py": textwrap.dedent(code),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n",
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: aegen-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    if plugin:
        files[f"{info}/entry_points.txt"] = f"[aegen]\n{module} = {module}\n"

    def digest(text: str) -> str:
        raw = hashlib.sha256(text.encode()).digest()
        return "sha256=" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    record = "".join(f"{n},{digest(t)},{len(t.encode())}\n" for n, t in files.items())
    files[f"{info}/RECORD"] = record + f"{info}/RECORD,,\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel
