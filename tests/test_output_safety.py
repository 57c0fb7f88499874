"""Outputs under attack and accident (issue 20): concurrent writers, `--name` leaving
`--out-dir`, dead runs' `.part` leftovers, and `train` checking `--out` before any work."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aegen import files
from aegen.errors import UsageError
from aegen.files import OutputConflict, atomic_output, refuse_overwrite, temporary_beside
from aegen.outputs import Outputs, plan

from .conftest import aegen_script, run_aegen

TRAIN = ["--size", "16", "--set", "width=4", "--set", "depth=2", "--batch-size", "8",
         "--device", "cpu"]


def dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if re.match(r"aegen( \w+)?: error: ", line)]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


def test_a_file_written_by_another_run_is_not_replaced(tmp_path):
    target = tmp_path / "out.bin"
    refuse_overwrite([target], force=False)  # the run starts: no file yet
    target.write_bytes(b"the other run's")  # another writer finishes first
    with pytest.raises(OutputConflict, match="was written by another run") as caught:
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"mine")
    assert target.read_bytes() == b"the other run's"
    kept = Path(str(caught.value).rsplit("kept as ", 1)[1])
    assert kept.parent == tmp_path and kept.suffix == ".bin" and kept.read_bytes() == b"mine"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_a_run_may_replace_its_own_file_and_one_it_was_allowed_to(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    refuse_overwrite([target], force=True)
    for data in (b"epoch 1", b"epoch 2"):  # the run replaces its own file each time
        with atomic_output(target) as tmp:
            tmp.write_bytes(data)
    assert target.read_bytes() == b"epoch 2"
    os.replace(tmp_path / "out.bin", tmp_path / "moved")  # then someone else's file appears
    (tmp_path / "out.bin").write_bytes(b"theirs")
    with pytest.raises(OutputConflict):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"epoch 3")
    assert target.read_bytes() == b"theirs"


@pytest.mark.slow
def test_two_concurrent_train_runs_never_both_claim_one_file(image_folder, tmp_path):
    out = tmp_path / "same.safetensors"
    args = [aegen_script(), "train", str(image_folder), *TRAIN, "--epochs", "2", "--out", str(out)]
    runs = [subprocess.Popen(args + ["--seed", str(seed)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    results = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 1], [0, 2]), results  # never both 0 with one result lost
    loser = next(err for code, err in results if code != 0)
    line = one_error_line(loser)
    assert str(out) in line
    if codes == [0, 1]:  # it lost at commit time: its result is kept under the name it prints
        kept = Path(line.rsplit("kept as ", 1)[1])
        assert kept.exists() and kept != out
    from aegen.checkpoint import read_checkpoint_info

    assert read_checkpoint_info(out).provenance["epochs"] == 2
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


@pytest.mark.parametrize(
    "name", ["../../x-{seed}.png", "/tmp/aegen-abs-{seed}.png", "a/../../x.png", "", "sub/"]
)
def test_name_cannot_leave_out_dir(tmp_path, name):
    with pytest.raises(UsageError, match="inside `out_dir`") as caught:
        plan(Outputs(out_dir=tmp_path / "d", name=name), [1, 2], steps=1, size=16)
    assert caught.value.parameters == ("name", "out_dir")


def test_name_may_use_a_subfolder(tmp_path):
    planned = plan(Outputs(out_dir=tmp_path, name="sub/{seed}.png"), [7], steps=1, size=16)
    assert planned.singles == [tmp_path / "sub" / "7.png"]


def test_generate_refuses_a_name_outside_out_dir(tiny_checkpoint, tmp_path, cli):
    code, _, err = cli("generate", "-c", tiny_checkpoint, "--out-dir", tmp_path / "d", "--name",
                       "../x-{seed}.png", "--n", "1", "--steps", "1", "--device", "cpu")
    assert code == 2
    line = one_error_line(err)
    assert "--name" in line and "--out-dir" in line
    assert list(tmp_path.iterdir()) == []


def test_temporary_names_carry_the_writer(tmp_path):
    tmp = temporary_beside(tmp_path / "x.png")
    assert files._PART.match(tmp.name)["pid"] == str(os.getpid())


def test_next_run_removes_only_dead_runs_leftovers(tiny_checkpoint, tmp_path):
    host = files._HOST
    dead = tmp_path / f".g.png.{dead_pid()}-{host}.ab12_x.part"
    dead_mp4 = tmp_path / f".v.mp4.{dead_pid()}-{host}.zz9.part.mp4"
    alive = tmp_path / f".g.png.{os.getpid()}-{host}.cd34.part"  # this test is alive
    other_host = tmp_path / f".g.png.{dead_pid()}-{'0' * 6 if host != '000000' else '1' * 6}.q.part"
    unrelated = tmp_path / ".g.png.notours.part"
    for path in (dead, dead_mp4, alive, other_host, unrelated):
        path.write_bytes(b"x")
    result = run_aegen("generate", "-c", tiny_checkpoint, "--out", tmp_path / "g.png", "--n", "1",
                       "--steps", "1", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert not dead.exists() and not dead_mp4.exists()
    assert alive.exists() and other_host.exists() and unrelated.exists()
    assert (tmp_path / "g.png").exists()


@pytest.mark.parametrize("out, why", [("", "must name a file, got ''"), (".", "is a folder"),
                                      ("file.txt/m.safetensors", "is not a folder")])
def test_train_checks_out_before_reading_data(tmp_path, cli, monkeypatch, out, why):
    (tmp_path / "file.txt").write_text("a file")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("train", tmp_path / "no-such-data", "--out", out, *TRAIN)
    assert code == 2
    line = one_error_line(err)
    assert "--out" in line and why in line and "no-such-data" not in line


def test_generate_refuses_an_empty_out(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("generate", "--out", "", "--n", "1", "--steps", "1", "--device", "cpu")
    assert code == 2 and one_error_line(err) == "aegen: error: --out must name a file, got ''"
    assert not list(tmp_path.iterdir())


def test_library_train_refuses_an_empty_out(tmp_path):
    from aegen.training import train

    with pytest.raises(UsageError, match="`out` must name a file"):
        train(tmp_path / "no-such-data", "", epochs=1, device="cpu")


def test_train_refuses_a_folder_it_cannot_write(tmp_path, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(UsageError, match="cannot write in .*Permission denied"):
        files.check_writable(tmp_path / "sub" / "m.safetensors", "out")
