"""The decoded cache: training images decoded once (by worker processes) into a .npy file,
read back by later runs over the same files, rebuilt when they change, written atomically, and
read a batch at a time; `aegen data inspect`; corrupt files skipped and counted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as F

from aegen.data import find_images, load_data, load_images
from aegen.datacache import data_cache_dir, entries
from aegen.decoding import fit_square
from aegen.errors import DataError
from aegen.imagestore import ImageFile, npy_header
from aegen.trainingdata import read_training_data

from .conftest import SIZE, TINY, make_images, run_aegen

TRAIN = ["--arch", "unet", *[f"--set={k}={v}" for k, v in TINY.items()], "--size", str(SIZE),
         "--batch-size", "8", "--seed", "0", "--precision", "fp32", "--epochs", "1"]


@pytest.fixture
def own_cache(tmp_path, monkeypatch) -> Path:
    """A cache folder of this test's own, so entries made elsewhere cannot answer for it."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("AEGEN_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def eighty(tmp_path) -> Path:
    """80 images (more than the workers' threshold), two of them unreadable."""
    folder = tmp_path / "eighty"
    make_images(folder, 78)
    (folder / "broken.png").write_bytes(b"not a png")
    good = (folder / "img002.png").read_bytes()
    (folder / "cut.png").write_bytes(good[: len(good) // 2])
    return folder


def aegen(*args, env=None) -> subprocess.CompletedProcess:
    """The real `aegen` console script (conftest.run_aegen), with this process's environment."""
    return run_aegen(*args, env=env)


def test_resize_and_crop_are_torchvisions_pixel_for_pixel():
    rng = np.random.default_rng(0)
    for width, height in [(31, 40), (40, 31), (32, 32), (33, 32), (10, 300), (7, 9), (224, 200)]:
        img = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        for size in (8, 16, 32, 64):
            want = F.center_crop(F.resize(img, size, antialias=True), [size, size])
            assert np.array_equal(np.asarray(fit_square(img, size)), np.asarray(want))


def test_worker_processes_decode_exactly_what_one_process_decodes(eighty):
    files = find_images(eighty)
    alone, shared = load_images(files, SIZE, workers=1), load_images(files, SIZE, workers=2)
    assert torch.equal(alone.images, shared.images)
    assert alone.paths == shared.paths and len(alone.paths) == 78
    assert [p.name for p, _ in shared.skipped] == ["broken.png", "cut.png"]


def test_the_first_run_decodes_into_the_cache_and_later_runs_read_it(eighty, own_cache, tmp_path):
    runs = {}
    for name, extra in [("built", []), ("hit", []), ("off", ["--no-cache"])]:
        out = tmp_path / f"{name}.safetensors"
        done = aegen("train", eighty, *TRAIN, "--out", out, "--json", *extra)
        assert done.returncode == 0, done.stderr
        runs[name] = json.loads(done.stdout)
        assert runs[name]["data_cache"]["state"] == name
        assert runs[name]["images"] == 78 and runs[name]["skipped"] == 2
        assert "skipped 2 unreadable file(s) of 80" in done.stderr
    assert runs["built"]["data_cache"]["path"] == runs["hit"]["data_cache"]["path"]
    assert "decoded into the decoded cache" not in aegen(
        "train", eighty, *TRAIN, "--out", tmp_path / "again.safetensors", "--force").stderr
    weights = [load_weights(tmp_path / f"{name}.safetensors") for name in runs]
    assert all(torch.equal(weights[0][k], other[k]) for other in weights[1:] for k in weights[0])
    cached = np.load(runs["hit"]["data_cache"]["path"], mmap_mode="r")  # a plain .npy
    assert cached.shape == (78, 3, SIZE, SIZE) and cached.dtype == np.uint8


def load_weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_a_changed_file_rebuilds_the_entry_and_drops_the_old_one(eighty, own_cache):
    first = read_training_data(eighty, SIZE)
    assert first.cache["state"] == "built"
    assert read_training_data(eighty, SIZE).cache["state"] == "hit"
    picture = eighty / "img002.png"
    Image.new("RGB", (20, 24), (255, 0, 0)).save(picture)
    os.utime(picture, ns=(1, 1))  # a new modification time, whatever the clock's resolution
    changed = read_training_data(eighty, SIZE)
    assert changed.cache["state"] == "built" and changed.cache["path"] != first.cache["path"]
    row = [p.name for p in changed.paths].index("img002.png")
    assert changed.images[row][0].float().mean() > 200  # red now
    assert [key for key, _ in entries()] == [Path(changed.cache["path"]).stem]
    (eighty / "img007.png").unlink()
    assert len(read_training_data(eighty, SIZE).paths) == 77


def test_size_and_channels_have_entries_of_their_own(eighty, own_cache):
    colour = read_training_data(eighty, SIZE)
    grey = read_training_data(eighty, SIZE, channels=1)
    small = read_training_data(eighty, 8)
    assert colour.images.shape == (78, 3, SIZE, SIZE) and small.images.shape == (78, 3, 8, 8)
    assert grey.images.shape == (78, 1, SIZE, SIZE)
    in_memory = load_data(eighty, SIZE, channels=1)
    assert torch.equal(grey.images[:], in_memory.images)  # torchvision's luma, as in memory
    assert len(entries()) == 3


def test_grey_folders_are_cached_with_one_channel(tmp_path, own_cache):
    make_images(tmp_path / "grey", 70, grey=True)
    cached = read_training_data(tmp_path / "grey", SIZE, workers=2)
    assert cached.images.shape[1] == 1
    assert torch.equal(cached.images[:], load_data(tmp_path / "grey", SIZE).images)


def test_array_sources_are_cached_too(tmp_path, own_cache):
    pixels = np.random.default_rng(0).integers(0, 256, (40, 20, 20), dtype=np.uint8)
    np.save(tmp_path / "faces.npy", pixels)
    built = read_training_data(tmp_path / "faces.npy", SIZE)
    hit = read_training_data(tmp_path / "faces.npy", SIZE)
    assert (built.cache["state"], hit.cache["state"]) == ("built", "hit")
    assert torch.equal(hit.images[:], load_data(tmp_path / "faces.npy", SIZE).images)
    assert hit.source == "numpy" and len(hit.paths) == 40


def test_the_cache_file_reads_like_the_tensor_it_holds(tmp_path):
    data = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    path = tmp_path / "x.npy"
    path.write_bytes(npy_header(tuple(data.shape)) + data.numpy().tobytes())
    stored = ImageFile(path)
    assert len(stored) == 10 and stored.shape == (10, 3, 4, 4)
    assert torch.equal(stored[3], data[3]) and torch.equal(stored[-1], data[-1])
    assert torch.equal(stored[2:7], data[2:7]) and torch.equal(stored[::3], data[::3])
    index = torch.tensor([9, 0, 4, 4])
    assert torch.equal(stored[index], data[index])
    assert np.array_equal(np.load(path), data.numpy())
    with pytest.raises(IndexError):
        stored[torch.tensor([10])]


def test_a_failed_build_leaves_nothing_behind(eighty, own_cache, monkeypatch):
    import aegen.data as data

    def broken(paths, *args, **kwargs):
        for i, found in enumerate(real(paths, *args, **kwargs)):
            if i == 40:
                raise KeyboardInterrupt
            yield found

    real = data.decode_files
    monkeypatch.setattr(data, "decode_files", broken)
    with pytest.raises(KeyboardInterrupt):
        read_training_data(eighty, SIZE)
    assert list(data_cache_dir().iterdir()) == []  # no entry, no temporary folder


def test_no_cache_writes_nothing(eighty, own_cache, tmp_path):
    done = aegen("train", eighty, *TRAIN, "--out", tmp_path / "m.safetensors", "--no-cache")
    assert done.returncode == 0, done.stderr
    assert not own_cache.exists() or not any(own_cache.rglob("*.npy"))


def test_a_cache_that_cannot_be_written_reads_into_memory_and_says_why(eighty, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    env = {**os.environ, "AEGEN_CACHE_DIR": str(blocked)}
    done = aegen("train", eighty, *TRAIN, "--out", tmp_path / "m.safetensors", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["data_cache"]["state"] == "unavailable"
    assert "cannot write the decoded cache" in done.stderr
    assert "reading the images into memory" in done.stderr


def test_an_unreadable_folder_is_one_line_before_any_work(tmp_path, own_cache):
    folder = tmp_path / "bad"
    folder.mkdir()
    for i in range(3):
        (folder / f"x{i}.png").write_bytes(b"junk")
    done = aegen("train", folder, *TRAIN, "--out", tmp_path / "m.safetensors")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "aegen: error: none of the 3 image file(s) could be read")
    assert "Traceback" not in done.stderr and not (tmp_path / "m.safetensors").exists()
    assert not any(own_cache.rglob("*.npy"))
    with pytest.raises(DataError):
        read_training_data(folder, SIZE)


def test_data_inspect_counts_reads_and_says_the_cache_state(eighty, own_cache):
    done = aegen("data", "inspect", eighty, "--size", SIZE, "--json", "--workers", "2")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["files"], report["readable"], report["unreadable"]) == (80, 78, 2)
    assert {r["path"].rsplit("/", 1)[-1] for r in report["reasons"]} == {"broken.png", "cut.png"}
    assert report["sizes"] == [{"width": 24, "height": 20, "images": 78}]
    assert report["modes"] == {"RGB": 78}
    assert report["cache"]["cached"] is False
    read_training_data(eighty, SIZE)
    text = aegen("data", "inspect", eighty, "--size", SIZE).stdout
    assert "78 image(s) readable of 80" in text and "unreadable: 2" in text
    assert "24x20 (78)" in text and "cached at" in text
    missing = aegen("data", "inspect", eighty / "nowhere")
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1


def test_a_script_without_a_main_guard_can_decode_with_workers(eighty, own_cache, tmp_path):
    """Workers must not run the user's script again (multiprocessing's spawn and forkserver
    would, to find pickled functions): here that would train again in every worker."""
    script = tmp_path / "script.py"
    script.write_text(
        "from aegen.trainingdata import read_training_data\n"
        f"found = read_training_data({str(eighty)!r}, 16, workers=2)\n"
        "print('read', len(found.paths), found.cache['state'])\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["read 78 built"]


def test_a_killed_builds_leftovers_are_removed_by_the_next_build(eighty, own_cache):
    """A build killed with SIGKILL cannot clean up; its folder goes once its process is gone
    and its files have been still for 10 minutes. A live build's, or a fresh one's, stays."""
    import time

    folder = data_cache_dir()
    folder.mkdir(parents=True)
    dead, fresh, live = (folder / f".k.{pid}.x" for pid in (2**22 + 1, 2**22 + 2, os.getpid()))
    for tmp in (dead, fresh, live):
        tmp.mkdir()
        (tmp / "rgb.part").write_bytes(b"half")
    hour_ago = time.time() - 3600
    for path in (dead, dead / "rgb.part", live, live / "rgb.part"):
        os.utime(path, (hour_ago, hour_ago))
    read_training_data(eighty, SIZE)
    assert not dead.exists() and fresh.exists() and live.exists()
