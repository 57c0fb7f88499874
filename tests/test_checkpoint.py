"""Checkpoints: one safetensors file, validated completely before anything is built."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from aegen.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from aegen.errors import CheckpointError
from aegen.models import build_model, resolve_config

from .conftest import TINY, run_aegen


def metadata_of(path: Path) -> dict:
    with path.open("rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        return json.loads(json.loads(fh.read(length))["__metadata__"]["aegen"])


def rewrite(source: Path, target: Path, tensors=None, **metadata) -> Path:
    """Copy a checkpoint with some tensors or metadata changed."""
    state = load_file(str(source))
    meta = {**metadata_of(source), **metadata}
    save_file(
        tensors(state) if tensors else state, str(target), metadata={"aegen": json.dumps(meta)}
    )
    return target


def test_metadata_names_format_architecture_config_image_and_provenance(
    tiny_checkpoint, image_folder
):
    meta = metadata_of(tiny_checkpoint)
    assert meta["format"] == "aegen.checkpoint" and meta["format_version"] == 1
    assert meta["architecture"] == "unet"
    assert meta["config"] == {**TINY, "duplicate": False, "channels": 3, "size": 16}
    assert (meta["channels"], meta["size"]) == (3, 16)
    provenance = meta["provenance"]
    assert provenance["images"] == 24 and provenance["skipped"] == 1
    assert provenance["epochs"] == 2 and provenance["seed"] == 0
    assert provenance["data"] == str(image_folder.resolve())
    assert isinstance(provenance["final_loss"], float) and provenance["aegen_version"]


def test_round_trip_gives_the_same_weights(tiny_checkpoint, tmp_path):
    loaded = load_checkpoint(tiny_checkpoint)
    copy = save_checkpoint(
        tmp_path / "copy.safetensors", loaded.model, architecture="unet", config=loaded.info.config
    )
    again = load_checkpoint(copy).model.state_dict()
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, again[key])


def test_unknown_architecture_is_refused_naming_its_plugin(tiny_checkpoint, tmp_path):
    bad = rewrite(
        tiny_checkpoint, tmp_path / "x.safetensors", architecture="vit", plugin="aegen-vit"
    )
    with pytest.raises(CheckpointError, match="needs architecture 'vit'.*'aegen-vit'.*unet"):
        load_checkpoint(bad)


def test_missing_extra_and_misshaped_tensors_are_refused(tiny_checkpoint, tmp_path):
    def drop(state):
        state.pop("outc.weight")
        return state

    def add(state):
        state["surprise"] = torch.zeros(3)
        return state

    def reshape(state):
        state["outc.bias"] = torch.zeros(5)
        return state

    with pytest.raises(CheckpointError, match="lacks 1 tensor.*'outc.weight'"):
        load_checkpoint(rewrite(tiny_checkpoint, tmp_path / "a.safetensors", drop))
    with pytest.raises(CheckpointError, match="1 unexpected tensor.*'surprise'"):
        load_checkpoint(rewrite(tiny_checkpoint, tmp_path / "b.safetensors", add))
    with pytest.raises(CheckpointError, match=r"'outc.bias' has shape \[5\].*needs \[3\]"):
        load_checkpoint(rewrite(tiny_checkpoint, tmp_path / "c.safetensors", reshape))


def test_truncated_and_corrupt_files_are_refused(tiny_checkpoint, tmp_path):
    data = tiny_checkpoint.read_bytes()
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(truncated)
    short = tmp_path / "s.safetensors"
    short.write_bytes(data[:5])
    with pytest.raises(CheckpointError, match="truncated or not a safetensors"):
        load_checkpoint(short)
    garbled = tmp_path / "g.safetensors"
    garbled.write_bytes(data[:8] + b"#" * 20 + data[28:])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(garbled)
    plain = tmp_path / "p.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not an aegen checkpoint"):
        load_checkpoint(plain)
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "absent.safetensors")


@pytest.mark.parametrize("name", ["model.pt", "model.pth", "model.ckpt", "renamed.safetensors"])
def test_pickles_are_refused_without_unpickling(tmp_path, name):
    path = tmp_path / name
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="pickle; aegen never unpickles.*save_file"):
        load_checkpoint(path)


def test_newer_format_is_refused(tiny_checkpoint, tmp_path):
    newer = rewrite(tiny_checkpoint, tmp_path / "n.safetensors", format_version=99)
    with pytest.raises(CheckpointError, match="format 99.*upgrade aegen"):
        read_checkpoint_info(newer)


def test_writes_are_atomic(tiny_checkpoint, tmp_path, monkeypatch):
    """A failure while writing leaves the previous file intact and no temporary file behind."""
    from aegen import checkpoint

    target = tmp_path / "model.safetensors"
    target.write_bytes(tiny_checkpoint.read_bytes())
    before = target.read_bytes()

    def failing_save(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", failing_save)
    model = build_model("unet", resolve_config("unet", TINY, 3, 16))
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(
            target, model, architecture="unet", config=resolve_config("unet", TINY, 3, 16)
        )
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_info_command_reads_the_header(tiny_checkpoint, cli):
    code, out, _ = cli("info", tiny_checkpoint, "--json")
    assert code == 0
    info = json.loads(out)
    model = load_checkpoint(tiny_checkpoint).model
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert info["architecture"] == "unet" and info["config"]["width"] == 4
    assert info["image"] == {"channels": 3, "size": 16}
    assert info["provenance"]["epochs"] == 2 and info["resumable"] is True
    code, out, _ = cli("info", tiny_checkpoint)
    assert "parameters" in out and f"{info['parameters']:,}" in out


def test_info_script_refuses_a_pickle_in_one_line(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, path)
    result = run_aegen("info", path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "pickle" in result.stderr
    ok = run_aegen("info", "--json", tmp_path / "absent.safetensors")
    assert ok.returncode == 1 and "no such file" in ok.stderr


def forged(tmp_path, header: str, name: str = "forged.safetensors") -> Path:
    """A file with a hand-written safetensors header and no tensor data."""
    raw = header.encode()
    path = tmp_path / name
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    return path


@pytest.mark.parametrize(
    "header,message",
    [
        ('{"__metadata__": ["a", "b"]}', "metadata is not an object"),
        ('{"__metadata__": {"aegen": 5}}', "not an aegen checkpoint"),
        (
            '{"__metadata__": {"aegen": "{\\"format\\": \\"aegen.checkpoint\\", '
            '\\"format_version\\": \\"x\\"}"}}',
            "damaged aegen metadata",
        ),
        ('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 1e999]}}', "malformed"),
        ("[" * 100000 + "]" * 100000, "corrupt"),
        ('{"w": 3}', "malformed"),
    ],
)
def test_forged_headers_are_refused_in_one_clear_error(tmp_path, header, message):
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(forged(tmp_path, header))


def test_weights_only_copy_keeps_the_model_and_drops_resuming(tiny_checkpoint, tmp_path):
    from aegen.checkpoint import OPTIMIZER_PREFIX, weights_only

    slim = weights_only(tiny_checkpoint, tmp_path / "slim.safetensors")
    full, small = load_checkpoint(tiny_checkpoint), load_checkpoint(slim)
    assert slim.stat().st_size < tiny_checkpoint.stat().st_size / 2
    assert not any(k.startswith(OPTIMIZER_PREFIX) for k in small.info.tensors)
    assert small.info.training_state is None and full.info.training_state is not None
    assert small.info.objective == full.info.objective and small.info.config == full.info.config
    assert small.info.provenance["seed"] == full.info.provenance["seed"]
    for (name, a), (_, b) in zip(full.model.state_dict().items(), small.model.state_dict().items()):
        assert torch.equal(a, b), name
