"""aegen under torchrun: two CPU processes talking over gloo, launched as a user launches them.

torchrun gives each process one torch thread (OMP_NUM_THREADS=1) and CPU results depend on the
thread count, so the one-process runs compared with it use one thread too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from aegen.checkpoint import load_checkpoint, read_checkpoint_info
from aegen.sampling import shard_indices

from .conftest import SIZE, TINY, aegen_script

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="needs torch.distributed with gloo",
)
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
TRAIN = ["--set", f"width={TINY['width']}", "--set", f"depth={TINY['depth']}", "--size", SIZE]


def script() -> str:
    """The console script itself (torchrun runs it with Python, so not a shell shim)."""
    beside = Path(sys.executable).parent / "aegen"
    return str(beside) if beside.exists() else aegen_script()


def torchrun(*args, wait: bool = True, **kwargs):
    """`torchrun --standalone --nproc-per-node 2 aegen ARGS` (the rendezvous on a free port)."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        script(),
        *map(str, args),
    ]
    env = {**os.environ, **ONE_THREAD, "TERM": "dumb"}
    if not wait:
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kwargs
        )
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, **kwargs)


def one_process(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [script(), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **ONE_THREAD},
        timeout=300,
    )


def aegen_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("aegen: ")]


def same_files(a: Path, b: Path) -> list[str]:
    """Relative paths of every file under a, after checking b holds exactly the same bytes."""
    names = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    return names


def weights(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(path)).items() if not k.startswith("optimizer/")}


def test_batches_are_shared_out_whole_and_never_twice():
    for n, batch, world in [(10, 3, 2), (7, 7, 2), (64, 16, 3), (5, 1, 4)]:
        parts = [shard_indices(n, batch, r, world) for r in range(world)]
        assert sorted(i for p in parts for i in p) == list(range(n))
        for r, part in enumerate(parts):  # rank r: batches r, r + world, ...
            assert {i // batch % world for i in part} <= {r}


@pytest.mark.slow
def test_training_under_torchrun_checkpoints_resumes_and_lowers_the_loss(image_folder, tmp_path):
    whole, part = tmp_path / "whole.safetensors", tmp_path / "part.safetensors"
    common = [*TRAIN, "--batch-size", 4, "--seed", 0, "--lr", "3e-3"]
    done = torchrun("train", image_folder, *common, "--epochs", 3, "--out", whole, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # rank 0 alone prints: one JSON document
    assert report["losses"][-1] < report["losses"][0]
    assert report["data_cache"]["state"] in ("built", "hit")  # each rank reads its share of it
    lines = [line for line in done.stderr.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 3, done.stderr  # progress from rank 0 only

    loaded = load_checkpoint(whole)  # the one-process format, loaded by one process
    info = loaded.info
    assert info.training_state["epochs_done"] == 3
    assert info.provenance["processes"] == 2 and info.provenance["sync_bn"] is False
    assert set(info.tensors) == set(read_checkpoint_info(whole).tensors)

    first = torchrun("train", image_folder, *common, "--epochs", 2, "--out", part, "-q")
    assert first.returncode == 0, first.stderr
    more = torchrun("train", image_folder, "--resume", part, "--epochs", 3, "-q")
    assert more.returncode == 0, more.stderr
    resumed, straight = weights(part), weights(whole)
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)


@pytest.mark.slow
def test_sync_bn_trains_as_one_process_with_the_whole_batch(image_folder, tmp_path):
    """Rank r takes every other image of the epoch's order, so each step the two ranks hold
    exactly one process's batch of 8; with --sync-bn batch norm sees all 8 as well (in fp32:
    bf16 rounds the two halves' sums differently from the whole)."""
    from aegen.training import train

    out = tmp_path / "sync.safetensors"
    done = torchrun(
        "train",
        image_folder,
        *TRAIN,
        "--batch-size",
        4,
        "--seed",
        1,
        "--epochs",
        2,
        "--sync-bn",
        "--precision",
        "fp32",
        "--out",
        out,
        "-q",
    )
    assert done.returncode == 0, done.stderr
    alone = tmp_path / "alone.safetensors"
    train(
        image_folder, alone, config=TINY, size=SIZE, epochs=2, batch_size=8, seed=1,
        device="cpu", precision="fp32",
    )
    synced, single = weights(out), weights(alone)
    assert synced.keys() == single.keys()
    for key in single:
        assert torch.allclose(synced[key].float(), single[key].float(), atol=1e-5), key
    assert read_checkpoint_info(out).provenance["sync_bn"] is True


@pytest.mark.slow
def test_sharded_generation_writes_the_one_process_files(tiny_checkpoint, tmp_path):
    args = ["-c", tiny_checkpoint, "-n", 10, "--batch-size", 3, "--steps", 4, "--seed", 5, "--json"]

    def outputs(folder: Path) -> list:
        return [
            "--out-dir",
            folder,
            "--out",
            folder / "grid.png",
            "--frames",
            folder / "steps",
            "--gif",
            folder / "run.gif",
            "--video",
            folder / "run.mp4",
        ]

    shared = torchrun("generate", *args, *outputs(tmp_path / "two"))
    assert shared.returncode == 0, shared.stderr
    alone = one_process("generate", *args, *outputs(tmp_path / "one"))
    assert alone.returncode == 0, alone.stderr
    names = same_files(tmp_path / "one", tmp_path / "two")
    assert len([n for n in names if n.endswith(".png") and "/" not in n]) == 11  # 10 + grid
    report = json.loads(shared.stdout)
    assert [i["seed"] for i in report["images"]] == list(range(5, 15))
    assert all(Path(i["path"]).exists() for i in report["images"])


@pytest.mark.slow
def test_sharded_walk_with_stats_matches_one_process(tiny_checkpoint, tmp_path):
    args = [
        "-c",
        tiny_checkpoint,
        "-n",
        6,
        "--batch-size",
        2,
        "--steps",
        3,
        "--start-steps",
        3,
        "--seed",
        2,
        "--stats",
        "--json",
    ]
    shared = torchrun("walk", *args, "--out-dir", tmp_path / "two", "--out", tmp_path / "two.png")
    assert shared.returncode == 0, shared.stderr
    alone = one_process("walk", *args, "--out-dir", tmp_path / "one", "--out", tmp_path / "one.png")
    assert alone.returncode == 0, alone.stderr
    same_files(tmp_path / "one", tmp_path / "two")
    assert (tmp_path / "one.png").read_bytes() == (tmp_path / "two.png").read_bytes()
    assert json.loads(shared.stdout)["stats"] == json.loads(alone.stdout)["stats"]


def _rank_process(launcher: int, rank: int) -> int | None:
    """The pid of the worker torchrun started with RANK=rank (Linux /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = next(
            (line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), ""
        )
        if parent == str(launcher) and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds ranks through /proc")
def test_a_killed_rank_ends_the_run_and_keeps_the_last_checkpoint(image_folder, tmp_path):
    out = tmp_path / "model.safetensors"
    run = torchrun(
        "train",
        image_folder,
        *TRAIN,
        "--batch-size",
        4,
        "--seed",
        0,
        "--epochs",
        500,
        "--out",
        out,
        wait=False,
    )
    try:
        deadline = time.monotonic() + 120
        while not out.exists() and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.2)
        assert out.exists(), "no epoch finished"
        victim = _rank_process(run.pid, 1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        _, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode != 0
    errors = aegen_lines(stderr)
    assert any(
        line.startswith("aegen: error: rank 0 of 2:") and "--resume" in line for line in errors
    ), stderr
    info = load_checkpoint(out).info  # whole, and loadable by one process
    assert 1 <= info.training_state["epochs_done"] < 500


@pytest.mark.slow
def test_a_usage_error_is_said_once(image_folder, tmp_path):
    out = tmp_path / "taken.safetensors"
    out.write_bytes(b"keep me")
    done = torchrun("train", image_folder, *TRAIN, "--epochs", 1, "--out", out)
    assert done.returncode != 0
    assert aegen_lines(done.stderr) == [f"aegen: error: {out} exists; use --force to overwrite it"]
    assert out.read_bytes() == b"keep me"


def test_ranks_draw_their_own_objective_noise_and_rank_0_the_one_process_draws():
    from aegen.fitting import _objective_generator

    def draw(**kwargs):
        return torch.randn(4, generator=_objective_generator(3, 1, "cpu", **kwargs))

    assert torch.equal(draw(), draw(rank=0))
    assert not torch.equal(draw(rank=0), draw(rank=1))


def test_commands_that_cannot_be_shared_out_refuse_torchrun(cli, monkeypatch, tiny_checkpoint):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    code, out, err = cli("info", tiny_checkpoint)
    assert code == 2 and out == ""
    assert err.strip() == (
        "aegen: error: `aegen info` does not run under torchrun; only train, generate, walk do"
    )
