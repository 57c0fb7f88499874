"""Data sources: image folders, NumPy arrays and IDX files, chosen by path or by --source."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from aegen.data import load_data
from aegen.errors import DataError, UsageError


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def pixels() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8)


def test_idx_files_plain_and_gzipped(tmp_path, pixels):
    plain = tmp_path / "train-images-idx3-ubyte"
    plain.write_bytes(idx_bytes(pixels))
    zipped = tmp_path / "train-images-idx3-ubyte.gz"
    zipped.write_bytes(gzip.compress(idx_bytes(pixels)))
    a, b = load_data(plain, 28), load_data(zipped, 28)
    assert a.source == b.source == "idx"
    assert a.images.shape == (20, 1, 28, 28)
    assert (a.images[:, 0].numpy() == pixels).all() and (b.images == a.images).all()
    assert load_data(plain, 32).images.shape == (20, 1, 32, 32)  # resized like any source
    assert load_data(plain, 16, channels=3).images.shape == (20, 3, 16, 16)


def test_numpy_arrays_grey_and_colour(tmp_path, pixels):
    grey = tmp_path / "grey.npy"
    np.save(grey, pixels)
    colour = tmp_path / "colour.npz"
    rgb = np.stack([pixels] * 3, axis=-1)
    np.savez(colour, labels=np.zeros(20), images=rgb)
    assert load_data(grey, 28).images.shape == (20, 1, 28, 28)
    loaded = load_data(colour, 28)
    assert loaded.source == "numpy" and loaded.images.shape == (20, 3, 28, 28)
    assert (loaded.images[:, 1].numpy() == pixels).all()


def test_bad_arrays_are_clear_errors(tmp_path, pixels):
    floats = tmp_path / "floats.npy"
    np.save(floats, pixels.astype(np.float32))
    with pytest.raises(DataError, match="expected uint8 pixels"):
        load_data(floats, 28)
    flat = tmp_path / "flat.npy"
    np.save(flat, pixels.reshape(20, -1))
    with pytest.raises(DataError, match="expected N x H x W"):
        load_data(flat, 28)
    short = tmp_path / "short-idx3-ubyte"
    short.write_bytes(idx_bytes(pixels)[:500])
    with pytest.raises(DataError, match="truncated"):
        load_data(short, 28)
    labels = tmp_path / "labels-idx1-ubyte"
    labels.write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 8)
    with pytest.raises(DataError, match="not an IDX file of unsigned bytes"):
        load_data(labels, 28)


def test_source_option_overrides_detection(tmp_path, pixels):
    odd = tmp_path / "pixels.bin"
    odd.write_bytes(idx_bytes(pixels))
    assert load_data(odd, 28, source="idx").images.shape == (20, 1, 28, 28)
    with pytest.raises(UsageError, match="unknown data source 'tar'"):
        load_data(odd, 28, source="tar")
    both = tmp_path / "images-idx.npy"
    np.save(both, pixels)
    with pytest.raises(DataError, match="several data sources.*--source"):
        load_data(both, 28)
    assert load_data(both, 28, source="numpy").source == "numpy"


def test_train_reads_idx_through_the_cli(tmp_path, pixels, cli):
    data = tmp_path / "t10k-images-idx3-ubyte.gz"
    data.write_bytes(gzip.compress(idx_bytes(pixels)))
    code, out, err = cli(
        "train",
        data,
        "--size",
        "16",
        "--set",
        "width=4",
        "--set",
        "depth=2",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--seed",
        "0",
        "--out",
        tmp_path / "m.safetensors",
        "--json",
        "-q",
    )
    assert code == 0, err
    assert json.loads(out)["images"] == 20
    code, out, _ = cli("info", tmp_path / "m.safetensors", "--json")
    info = json.loads(out)
    assert info["provenance"]["source"] == "idx" and info["image"]["channels"] == 1
