"""Untrusted data files (issue 20): the built-in `idx` and `numpy` sources check what a file's
header declares against the file and the data budget before allocating anything, then decode a
few MB at a time; no input file under 1 MB makes aegen use more than 1 GiB before refusing it.
Special files (FIFOs, devices, sockets) given as data are refused without being opened, and
skipped inside folders."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import socket
import subprocess
import sys
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from aegen.data import data_budget, fit_images, load_data, load_inputs
from aegen.errors import DataError, UsageError

from .conftest import aegen_script

GIB = 2**30
ZEROS = 16 << 20  # zero bytes per gzip member: about 16 KB compressed


def idx_header(shape) -> bytes:
    return bytes([0, 0, 0x08, len(shape)]) + b"".join(int(d).to_bytes(4, "big") for d in shape)


def gzipped_zeros(header: bytes, count: int) -> bytes:
    """`header` then `count` zero bytes (a multiple of ZEROS), gzipped about 1000:1 in
    concatenated members, as gzip allows: 1 GiB of zeros in 1 MiB, in a fraction of a second."""
    member = gzip.compress(bytes(ZEROS), compresslevel=9)
    return gzip.compress(header) + member * (count // ZEROS)


def npy_header(shape, fortran: bool = False) -> bytes:
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        stream, {"descr": "|u1", "fortran_order": fortran, "shape": tuple(shape)})
    return stream.getvalue()


def one_line(error: Exception) -> str:
    text = str(error)
    assert "\n" not in text, text
    return text


@contextmanager
def must_not_block(seconds: int = 10):
    """A blocking open would hang the test: the alarm interrupts it and fails instead."""
    def blocked(*_):
        raise TimeoutError("blocked on a special file")

    previous = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def peak_of(*command: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, int]:
    """Run `command` under a fresh Python that reports its child's peak resident memory."""
    watcher = (
        "import json, resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=300)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
        "print(json.dumps([done.returncode, done.stdout, done.stderr, peak]))\n"
    )
    done = subprocess.run([sys.executable, "-c", watcher, *command], capture_output=True,
                          text=True, timeout=360, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    code, out, err, peak = json.loads(done.stdout)
    return subprocess.CompletedProcess(command, code, out, err), peak


# The case: a 1 MiB gzip IDX file whose header claims 60000 images of 4096 x 4096.
# Before, `aegen train` inflated all of it (1 GiB), then went for 4 GiB.


def test_a_1_mib_gzip_idx_claiming_a_terabyte_is_refused_in_one_line_under_1_gib(tmp_path):
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    bomb.write_bytes(gzipped_zeros(idx_header((60000, 4096, 4096)), 64 * ZEROS))
    assert bomb.stat().st_size < 1.1 * 2**20
    done, peak = peak_of(aegen_script(), "train", str(bomb), "--size", "32", "--epochs", "1",
                         "--out", str(tmp_path / "m.safetensors"))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith("aegen: error: ") and "is truncated" in lines[0]
    assert "more than a gzip file of" in lines[0]
    assert peak < GIB, peak  # the command's own floor (torch, torchvision) is most of it
    assert not (tmp_path / "m.safetensors").exists()


def test_an_honest_gzip_idx_within_the_budget_is_read_a_chunk_at_a_time(tmp_path):
    """256 MiB of pixels in 256 KB: accepted, and never held whole (nor as floats)."""
    honest = tmp_path / "big-idx3-ubyte.gz"
    honest.write_bytes(gzipped_zeros(idx_header((64, 2048, 2048)), 16 * ZEROS))
    code = (
        "import resource, sys\nfrom aegen.data import load_data\n"
        "from aegen.plugins import get_registry\nget_registry().data_source('idx')\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "images = load_data(sys.argv[1], 16).images\n"
        "assert images.shape == (64, 1, 16, 16) and not images.any(), images.shape\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(honest)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 64 * 2**20, int(done.stdout)  # whole, it would be 256 MiB + floats


# Declared sizes are checked against the file.


def npz_with(path: Path, member: bytes, name: str = "images.npy", deflated: bool = True):
    method = zipfile.ZIP_DEFLATED if deflated else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as archive:
        archive.writestr(name, member)
    return path


def damaged_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Each damaged file, and what its one-line error says."""
    pixels = np.arange(20 * 28 * 28, dtype=np.uint8).tobytes()
    idx = idx_header((20, 28, 28)) + pixels
    npy = npy_header((20, 28, 28)) + pixels
    files = {
        "idx, truncated": ("a-idx3-ubyte", idx[:-5], "is truncated: 15675 of 15680 bytes"),
        "idx, with bytes after": ("b-idx3-ubyte", idx + b"xx",
                                  "holds 15682 bytes of data, more than the 15680 bytes its"),
        "idx, header cut": ("c-idx3-ubyte", idx[:9], "is truncated: its header holds 5 of 12"),
        "idx, no images": ("d-idx3-ubyte", idx_header((0, 28, 28)), "holds no images"),
        "gzip idx, truncated": ("e-idx3-ubyte.gz", gzip.compress(idx[:-5]),
                                "is truncated: 15675 of 15680 bytes"),
        "gzip idx, longer": ("f-idx3-ubyte.gz", gzip.compress(idx + b"xx"),
                             "holds more than the 15680 bytes its header declares"),
        "gzip idx, stream cut": ("g-idx3-ubyte.gz", gzip.compress(idx)[:-20],
                                 "not a readable gzip file"),
        "npy, truncated": ("h.npy", npy[:-3], "is truncated: 15677 of 15680 bytes"),
        "npy, with bytes after": ("i.npy", npy + b"zz", "holds 15682 bytes of data"),
        "npy, header cut": ("j.npy", npy[:30], "not a readable NumPy file"),
        "npy, not NumPy": ("k.npy", b"hello" * 20, "not a readable NumPy file"),
    }
    cases = {}
    for case, (name, data, message) in files.items():
        (folder / name).write_bytes(data)
        cases[case] = (folder / name, message)
    cases["npz, member truncated"] = (npz_with(folder / "l.npz", npy[:-3]),
                                      "is truncated: 15677 of 15680 bytes")
    stored = npz_with(folder / "m.npz", npy, deflated=False)
    damaged = bytearray(stored.read_bytes())
    damaged[damaged.index(pixels[:64]) + 100] ^= 0xFF
    stored.write_bytes(bytes(damaged))  # found by the counting pass: zipfile checks the CRC
    cases["npz, member damaged"] = (stored, "Bad CRC-32")
    objects = folder / "n.npy"
    np.save(objects, np.array([{"x": 1}] * 3, dtype=object), allow_pickle=True)
    cases["npy of objects"] = (objects, "expected uint8 pixels, got object")  # never unpickled
    return cases


def test_files_shorter_or_longer_than_their_header_says_are_one_line_errors(tmp_path):
    for case, (path, message) in damaged_files(tmp_path).items():
        with pytest.raises(DataError) as caught:
            load_data(path, 28)
        assert message in one_line(caught.value), (case, str(caught.value))


def test_an_npz_zip_bomb_is_refused_from_its_declared_sizes_before_inflating(
    tmp_path, monkeypatch
):
    """A member that inflates a thousandfold past its array header, and a header that claims
    more than a small member can hold: both refused without reading the member's data."""
    import aegen_builtins.sources as sources

    def never(*_):
        raise AssertionError("the member's data was read")

    monkeypatch.setattr(sources, "_count", never)
    monkeypatch.setattr(sources, "_decode", never)
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("images.npy", "w", force_zip64=True) as member:
            member.write(npy_header((2, 28, 28)))
            for _ in range(4):
                member.write(bytes(ZEROS))
    assert bomb.stat().st_size < 2**17
    with pytest.raises(DataError, match="holds 67108864 bytes of data, more than the 1568 bytes"):
        load_data(bomb, 28)
    claims = npz_with(tmp_path / "claims.npz", npy_header((60000, 4096, 4096)) + bytes(2**20))
    with pytest.raises(DataError, match="is truncated: 1048576 of 1006632960000 bytes"):
        load_data(claims, 28)


# The data budget.


def test_the_budget_is_half_of_the_memory_or_aegen_data_budget(monkeypatch):
    monkeypatch.delenv("AEGEN_DATA_BUDGET", raising=False)
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < data_budget() <= physical // 2  # less under a container's lower limit
    for text, value in [("512", 512), ("64K", 64 << 10), ("3 MiB", 3 << 20), ("2g", 2 << 30),
                        ("1TiB", 1 << 40)]:
        monkeypatch.setenv("AEGEN_DATA_BUDGET", text)
        assert data_budget() == value, text
    for text in ["0", "-1", "4GB", "lots", "1e9", "9" * 40]:
        monkeypatch.setenv("AEGEN_DATA_BUDGET", text)
        with pytest.raises(UsageError, match="^AEGEN_DATA_BUDGET must be a number of bytes"):
            data_budget()


def test_a_small_budget_refuses_a_normal_data_set_naming_the_budget_and_the_variable(
    tmp_path, monkeypatch, image_folder, cli
):
    pixels = np.zeros((20, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "x.npy", pixels)
    (tmp_path / "x-idx3-ubyte").write_bytes(idx_header(pixels.shape) + pixels.tobytes())
    monkeypatch.setenv("AEGEN_DATA_BUDGET", "10K")
    for path, kept in [(tmp_path / "x.npy", "20 images of 1 x 28 x 28"),
                       (tmp_path / "x-idx3-ubyte", "20 images of 1 x 28 x 28"),
                       (image_folder, "25 images of 3 x 28 x 28")]:  # files; decoded as RGB
        with pytest.raises(DataError) as caught:
            load_data(path, 28)
        assert f"{kept} would take " in one_line(caught.value), str(caught.value)
        assert str(caught.value).endswith(
            "more than the data budget of 10.0 KiB (set AEGEN_DATA_BUDGET to change it)")
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (100, 100)).save(photos / "big.png")  # 8 bytes a pixel to decode: 78 KiB
    Image.new("RGB", (20, 20)).save(photos / "small.png")
    read = load_data(photos, 8)
    assert read.paths == [photos / "small.png"] and read.skipped == [(
        photos / "big.png", "decoding its 100 x 100 pixels would take 78.1 KiB, more than the "
        "data budget of 10.0 KiB (set AEGEN_DATA_BUDGET to change it)")]
    code, out, err = cli("train", tmp_path / "x.npy", "--size", "32", "--epochs", "1",
                         "--out", tmp_path / "m.safetensors")
    assert (code, out, err.count("\n")) == (1, "", 1) and "data budget of 10.0 KiB" in err, err
    monkeypatch.setenv("AEGEN_DATA_BUDGET", "lots")
    code, out, err = cli("train", tmp_path / "x.npy", "--out", tmp_path / "m.safetensors")
    assert (code, out) == (2, "") and err.startswith("aegen: error: AEGEN_DATA_BUDGET must"), err


# Decoding a chunk at a time gives what decoding the whole array gave.


def whole_array(array: np.ndarray, size: int, channels):
    """The images as aegen read arrays before: the whole array fitted at once."""
    nchw = array[:, None] if array.ndim == 3 else array[..., :3].transpose(0, 3, 1, 2)
    return fit_images(torch.from_numpy(np.ascontiguousarray(nchw)), size, channels)


@pytest.mark.parametrize("chunk", [1, 30000])  # one image a chunk; a few, the last one short
def test_chunked_decoding_is_byte_identical_to_the_whole_array(tmp_path, monkeypatch, chunk):
    import aegen_builtins.sources as sources

    monkeypatch.setattr(sources, "CHUNK_BYTES", chunk)
    rng = np.random.default_rng(0)
    for shape in [(11, 20, 37), (7, 9, 13, 4)]:  # grey, not square; colour with alpha
        array = rng.integers(0, 256, size=shape, dtype=np.uint8)
        np.save(tmp_path / "c.npy", array)
        np.save(tmp_path / "f.npy", np.asfortranarray(array))  # column-major: read whole
        np.savez_compressed(tmp_path / "z.npz", labels=np.zeros(3), images=array)
        raw = idx_header(shape) + array.tobytes()
        (tmp_path / "p-idx3-ubyte").write_bytes(raw)
        (tmp_path / "g-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
        for size, channels in [(16, None), (33, 1), (9, 3)]:
            expected = whole_array(array, size, channels)
            for name in ["c.npy", "f.npy", "z.npz", "p-idx3-ubyte", "g-idx3-ubyte.gz"]:
                got = load_data(tmp_path / name, size, channels).images
                assert got.dtype == torch.uint8 and torch.equal(got, expected), (shape, name)


# Special files.


def test_special_files_given_as_data_are_refused_without_blocking(tmp_path, cli):
    fifo = tmp_path / "train-images-idx3-ubyte"
    os.mkfifo(fifo)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "images.npy"))
    try:
        with must_not_block():
            for path, kind, source in [(fifo, "a FIFO", None), (fifo, "a FIFO", "idx"),
                                       (tmp_path / "images.npy", "a socket", "numpy"),
                                       (Path("/dev/zero"), "a character device", "idx")]:
                with pytest.raises(DataError) as caught:
                    load_data(path, 16, source=source)
                assert one_line(caught.value) == f"{path} is {kind}, not a regular file or folder"
            with pytest.raises(DataError, match="is a FIFO, not a regular file or folder"):
                load_inputs([fifo], 16, 3, reporter=None)
            code, out, err = cli("denoise", "--input", fifo, "--json", "-q")
            assert (code, out) == (1, ""), err
            assert err == f"aegen: error: {fifo} is a FIFO, not a regular file or folder\n"
    finally:
        server.close()
    done = subprocess.run([aegen_script(), "train", str(fifo), "--out",
                           str(tmp_path / "m.safetensors")], capture_output=True, text=True,
                          timeout=120)  # the real command: a blocking open hangs till then
    assert done.returncode == 1, done.stderr
    assert done.stderr == f"aegen: error: {fifo} is a FIFO, not a regular file or folder\n"


def test_special_files_inside_a_folder_are_skipped_unopened(tmp_path):
    from PIL import Image

    Image.new("RGB", (20, 20), "red").save(tmp_path / "a.png")
    os.mkfifo(tmp_path / "b.png")
    with must_not_block():
        found = load_data(tmp_path, 16)
        assert found.paths == [tmp_path / "a.png"] and found.skipped == []
        from aegen.data import load_images

        named = load_images([tmp_path / "b.png", tmp_path / "a.png"], 16)  # named, not found
        assert named.skipped == [(tmp_path / "b.png", "a FIFO, not an image file")]
