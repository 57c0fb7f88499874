"""Data sources: image folders, NumPy arrays and IDX files, chosen by path or by --source, for
training and for the images commands read with --input."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from aegen.data import load_data, load_inputs
from aegen.errors import DataError, UsageError

from .conftest import make_images, run_aegen


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
    with pytest.raises(DataError, match="several data sources.*choose one with `source`") as caught:
        load_data(both, 28)
    assert caught.value.parameters == ("source",)
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


class Quiet:
    """A reporter that keeps its warnings."""

    def __init__(self):
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)


def test_inputs_read_files_a_data_source_claims(tmp_path, pixels):
    array = tmp_path / "images.npy"
    np.save(array, pixels[:3])
    idx = tmp_path / "t10k-images-idx3-ubyte.gz"
    idx.write_bytes(gzip.compress(idx_bytes(pixels[3:5])))
    single = make_images(tmp_path / "pictures", 1)[0]
    images, paths = load_inputs([array, single, idx], 16, 3, Quiet())
    assert images.shape == (6, 3, 16, 16) and images.dtype.is_floating_point
    assert 0 <= images.min() and images.max() <= 1
    assert paths == [f"{array}[0]", f"{array}[1]", f"{array}[2]", str(single), f"{idx}[0]",
                     f"{idx}[1]"]
    first = load_data(array, 16, channels=3).images[0].float() / 255
    assert (images[0] == first).all()  # read and fitted as training reads it
    images, paths = load_inputs([idx, array], 16, 1, Quiet(), limit=3)
    assert images.shape == (3, 1, 16, 16) and paths[-1] == f"{array}[0]"


def test_inputs_keep_folders_and_image_files(tmp_path, image_folder):
    reporter = Quiet()
    images, paths = load_inputs([image_folder], 16, 3, reporter, limit=5)
    assert images.shape == (5, 3, 16, 16) and all(p.endswith((".png", ".jpg")) for p in paths)
    with pytest.raises(UsageError, match="^`inputs`: no images found") as caught:
        load_inputs([tmp_path], 16, 3, reporter)  # an empty folder
    assert caught.value.parameters == ("inputs",)


def test_denoise_reads_a_numpy_file_in_a_subprocess(tiny_checkpoint, tmp_path, pixels):
    array = tmp_path / "x.npy"
    np.save(array, np.stack([pixels[:2]] * 3, axis=-1))  # two colour images, N x H x W x C
    result = run_aegen(
        "denoise", "-c", tiny_checkpoint, "--input", array, "--alpha", "0.5", "--json", "-q"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["images"] == 2
    assert [i["path"] for i in report["settings"][0]["per_image"]] == [
        f"{array}[0]",
        f"{array}[1]",
    ]


def test_walk_starts_from_an_idx_file_in_a_subprocess(tiny_checkpoint, tmp_path, pixels):
    idx = tmp_path / "t10k-images-idx3-ubyte"
    idx.write_bytes(idx_bytes(pixels[:3]))
    out = tmp_path / "w.png"
    result = run_aegen(
        "walk", "-c", tiny_checkpoint, "--input", idx, "--n", "3", "--steps", "2", "--seed", "0",
        "--out", out, "--json", "-q",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 3 and report["start"]["paths"] == [f"{idx}[{i}]" for i in range(3)]
    assert out.exists()


def test_inputs_nothing_can_read_are_one_line_errors(tiny_checkpoint, tmp_path, pixels, cli):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    floats = tmp_path / "floats.npy"
    np.save(floats, pixels.astype(np.float32))
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (empty, 2, "--input: no images found in"),  # the exit codes of before --input read
        (notes, 1, "none of the 1 image file(s) could be read"),  # through data sources
        (floats, 1, "expected uint8 pixels"),
        (tmp_path / "nothing", 1, "no such file or folder"),
    ]
    for path, code, message in cases:
        got, out, err = cli("denoise", "-c", tiny_checkpoint, "--input", path, "--json", "-q")
        lines = err.strip().splitlines()
        assert (got, len(lines), out) == (code, 1, ""), (path, got, err)
        assert lines[0].startswith("aegen: error: ") and message in lines[0], (path, err)
