"""The command-line conventions of docs/cli.md: progress in logs, seeds, stdout and stderr,
counts, `info -c`, `python -m aegen` and examples/batch.sh."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from aegen import console
from aegen.console import Reporter

from .conftest import run_aegen

ROOT = Path(__file__).resolve().parents[1]
PROGRESS = re.compile(
    r"^sampling \(schedule\): (\d+)/(\d+) steps, [\d.]+ s elapsed, about [\d.]+ s left$"
)


class Clock:
    """A stand-in for time.monotonic that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(console, "_clock", fake)
    return fake


# --- progress when stderr is not a terminal ---------------------------------------------------


def test_progress_in_a_log_is_a_plain_line_per_interval_and_a_closing_line(
    tiny_checkpoint, tmp_path
):
    out = tmp_path / "g.png"
    args = ["generate", "-c", tiny_checkpoint, "--steps", "4", "-n", "2", "--seed", "0"]
    result = run_aegen(*args, "--out", out, env={"AEGEN_PROGRESS_INTERVAL": "0"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)  # progress never reaches stdout
    lines = result.stderr.splitlines()
    progress = [m.groups() for m in map(PROGRESS.match, lines) if m]
    assert progress == [("1", "4"), ("2", "4"), ("3", "4"), ("4", "4")], result.stderr
    assert re.search(r"^sampling \(schedule\): 4/4 steps in [\d.]+ s$", result.stderr, re.M)
    assert "\x1b[" not in result.stderr  # no bar, no colour, no cursor movement


def test_a_short_run_in_a_log_prints_no_progress_lines(tiny_checkpoint, tmp_path, cli, monkeypatch):
    """At the default interval (10 s) a run of a second prints only its log lines."""
    monkeypatch.delenv("AEGEN_PROGRESS_INTERVAL", raising=False)
    assert console.PLAIN_INTERVAL_S == 10
    args = ["generate", "-c", tiny_checkpoint, "--steps", "4", "-n", "2", "--seed", "0"]
    code, out, err = cli(*args, "--out", tmp_path / "g.png")
    assert code == 0, err
    assert "sampling 2 image(s)" in err and "sampling (schedule)" not in err, err


def test_quiet_silences_plain_progress(tiny_checkpoint, tmp_path, cli, monkeypatch):
    monkeypatch.setattr(console, "PLAIN_INTERVAL_S", 0.0)
    monkeypatch.delenv("AEGEN_PROGRESS_INTERVAL", raising=False)
    args = ["generate", "-c", tiny_checkpoint, "--steps", "3", "-n", "2", "--seed", "0"]
    code, out, err = cli(*args, "--out", tmp_path / "g.png", "--quiet")
    assert code == 0 and err == ""
    code, out, err = cli(*args, "--out", tmp_path / "h.png")
    assert code == 0 and "sampling (schedule): 3/3 steps in" in err  # the same run, not quiet


def test_training_in_a_log_shows_counts_without_estimate_and_the_loss(
    image_folder, tmp_path, cli, monkeypatch
):
    monkeypatch.setattr(console, "PLAIN_INTERVAL_S", 0.0)
    monkeypatch.delenv("AEGEN_PROGRESS_INTERVAL", raising=False)
    code, out, err = cli(
        "train", image_folder, "--size", "16", "--set", "width=4", "--set", "depth=2",
        "--epochs", "1", "--batch-size", "8", "--seed", "0", "--out", tmp_path / "m.safetensors",
        "--no-cache",  # decoding, so that there is reading to show (the cache may hold it)
    )  # fmt: skip
    assert code == 0, err
    reading = [line for line in err.splitlines() if line.startswith("reading images: ")]
    assert reading and all("left" not in line for line in reading), err
    assert re.search(r"^reading images: 25 done in [\d.]+ s$", err, re.M), err  # 24 + 1 damaged
    assert re.search(r"^epoch 1/1: 3/3 steps in [\d.]+ s, loss \d\.\d{5}$", err, re.M), err


def test_a_due_line_makes_the_task_active_once(clock):
    """Callers read a loss (a GPU sync) only when `active`: in a log, once per line."""
    stream = io.StringIO()
    with Reporter(stream=stream).task("sampling (schedule)", total=200) as task:
        assert not task.active
        clock.now += 9.0
        task.advance(119)
        assert stream.getvalue() == "" and not task.active
        clock.now += 1.2
        assert task.active
        task.advance()
        assert not task.active  # the next line is due in PLAIN_INTERVAL_S
        assert stream.getvalue() == (
            "sampling (schedule): 120/200 steps, 10.2 s elapsed, about 6.8 s left\n"
        )
        clock.now += 5.0
        task.advance(80)
    assert stream.getvalue().splitlines()[1:] == ["sampling (schedule): 200/200 steps in 15.2 s"]


def test_a_task_with_a_loss_prints_when_the_loss_comes_and_counts_every_step(clock):
    stream = io.StringIO()
    with Reporter(stream=stream).task("epoch 1/2", total=45, loss=True) as task:
        for _ in range(12):
            task.advance()
        clock.now += 61.0
        task.advance()  # due, but no loss yet: no line with a stale one
        assert stream.getvalue() == "" and task.active
        task.advance(1, loss="0.01234")
    assert stream.getvalue().splitlines() == [
        "epoch 1/2: 14/45 steps, 1 min 01 s elapsed, about 2 min 15 s left, loss 0.01234",
        "epoch 1/2: 14/45 steps in 1 min 01 s, loss 0.01234",
    ]


def test_a_quiet_or_terminal_reporter_prints_no_plain_lines(clock):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    quiet = io.StringIO()
    with Reporter(quiet=True, stream=quiet).task("sampling", total=2) as task:
        clock.now += 100
        task.advance(2)
        assert not task.active
    assert quiet.getvalue() == ""
    terminal = Terminal()
    with Reporter(stream=terminal).task("sampling", total=2) as task:
        clock.now += 100
        task.advance(2)
    assert "steps," not in terminal.getvalue()  # a rich bar there, not log lines


def test_a_bad_progress_interval_is_a_usage_error(tiny_checkpoint, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("AEGEN_PROGRESS_INTERVAL", "soon")
    code, out, err = cli("generate", "-c", tiny_checkpoint, "--out", tmp_path / "g.png")
    assert code == 2 and out == ""
    assert err.strip() == (
        "aegen: error: AEGEN_PROGRESS_INTERVAL must be a number of seconds >= 0, got 'soon'"
    )


# --- seeds ------------------------------------------------------------------------------------


def test_walk_logs_the_seed_it_drew_and_that_seed_repeats_the_walk(
    tiny_checkpoint, image_folder, tmp_path, cli
):
    args = ["walk", "-c", tiny_checkpoint, "-i", image_folder, "-n", "2", "--steps", "2"]
    code, out, err = cli(*args, "--out", tmp_path / "a.png", "--json")
    assert code == 0, err
    seed = json.loads(out)["seed"]
    assert f"seeds {seed}..{seed + 1}" in err
    code, _, err = cli(*args, "--out", tmp_path / "b.png", "--seed", seed)
    assert code == 0, err
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_represent_logs_the_seed_it_drew(tiny_checkpoint, image_folder, tmp_path, cli):
    image = image_folder / "img002.png"
    code, out, err = cli("represent", "-c", tiny_checkpoint, "-i", image, "--steps", "2", "--json")
    assert code == 0, err
    assert f"seed {json.loads(out)['seed']}" in err


# --- info -c ----------------------------------------------------------------------------------


def test_info_takes_the_checkpoint_as_c_like_every_other_command(tiny_checkpoint, tmp_path, cli):
    code, positional, err = cli("info", tiny_checkpoint, "--json")
    assert code == 0, err
    for args in (["-c", tiny_checkpoint], ["--checkpoint", tiny_checkpoint]):
        code, out, err = cli("info", *args, "--json")
        assert code == 0, err
        assert json.loads(out) == json.loads(positional)
    code, out, err = cli("info", tiny_checkpoint, "-c", tiny_checkpoint, "--json")  # the same file
    assert code == 0 and json.loads(out) == json.loads(positional)


def test_info_refuses_two_different_checkpoints(tiny_checkpoint, tmp_path, cli):
    other = tmp_path / "other.safetensors"
    code, out, err = cli("info", tiny_checkpoint, "-c", other)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "name different files" in err and "-c/--checkpoint" in err


# --- python -m aegen beside a folder named aegen ------------------------------------------------


def test_python_m_aegen_runs_beside_a_clone_named_aegen(tmp_path):
    """A clone's root (no __init__.py) would be taken as a namespace package `aegen`, and its
    plugins/ as aegen.plugins, ahead of an editable install's finder."""
    clone = tmp_path / "aegen"
    (clone / "plugins" / "aegen_builtins").mkdir(parents=True)
    (clone / "README.md").write_text("a clone\n")
    from aegen import __version__

    def python_m(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "aegen", *args],
            capture_output=True, text=True, cwd=tmp_path, timeout=300,
        )  # fmt: skip

    version = python_m("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"aegen {__version__}"
    listed = python_m("plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    builtins = [p for p in json.loads(listed.stdout)["plugins"] if p["builtin"]]
    assert builtins and all(p["status"] == "ok" for p in builtins)


# --- examples/batch.sh ------------------------------------------------------------------------


def batch_seeds(tmp_path: Path, **settings: str) -> list[list[int]]:
    """The seeds of each image of each grid examples/batch.sh asks for, read from the arguments
    it passes to a stand-in `aegen` first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "aegen"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "a = sys.argv[1:]\n"
        "seed, n = int(a[a.index('--seed') + 1]), int(a[a.index('--n') + 1])\n"
        "print(json.dumps({'seed': seed, 'seeds': list(range(seed, seed + n))}))\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {k: v for k, v in os.environ.items() if k not in ("N", "SEEDS", "GRIDS", "SCHEDULES")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", OUT=str(tmp_path / "out"), **settings)
    done = subprocess.run(
        ["bash", str(ROOT / "examples" / "batch.sh")], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    return [r["seeds"] for r in json.loads((tmp_path / "out" / "reports.json").read_text())]


def test_batch_script_grids_by_default_share_no_image(tmp_path):
    grids = batch_seeds(tmp_path, SCHEDULES="linear")
    assert [g[0] for g in grids] == [0, 16, 32]
    images = [s for g in grids for s in g]
    assert sorted(images) == list(range(48))  # each seed once: no grid repeats another


def test_batch_script_seeds_step_by_the_images_per_grid(tmp_path):
    grids = batch_seeds(tmp_path, N="4", GRIDS="2")
    assert [g[0] for g in grids] == [0, 4, 0, 4]  # linear, then cosine
    assert sorted({s for g in grids for s in g}) == list(range(8))


# --- counts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["generate", "walk"])
def test_batch_size_zero_is_a_usage_error(command, tiny_checkpoint, tmp_path, cli):
    code, out, err = cli(
        command, "-c", tiny_checkpoint, "--batch-size", "0", "--out", tmp_path / "g.png"
    )
    assert code == 2 and out == ""
    assert err.strip() == "aegen: error: --batch-size must be at least 1, got 0"
    assert not (tmp_path / "g.png").exists()


# --- what goes to stdout and what to stderr ---------------------------------------------------


def test_denoise_prints_its_table_on_stdout_and_logs_on_stderr(tiny_checkpoint, image_folder, cli):
    args = ["denoise", "-c", tiny_checkpoint, "-i", image_folder, "--alpha", "0.5", "--limit", "4"]
    code, out, err = cli(*args)
    assert code == 0, err
    for header in ("out dist", "PSNR out", "gaussian alpha=0.5"):
        assert header in out and header not in err
    assert "under 1 setting(s)" in err and "under 1 setting(s)" not in out
    code, out, err = cli(*args, "--json")
    assert code == 0, err
    assert json.loads(out)["settings"][0]["name"] == "gaussian alpha=0.5"
    assert "out dist" not in out + err


def test_walk_stats_prints_its_table_on_stdout_and_logs_on_stderr(
    tiny_checkpoint, image_folder, cli
):
    args = ["walk", "-c", tiny_checkpoint, "-i", image_folder, "-n", "2", "--steps", "3"]
    code, out, err = cli(*args, "--stats", "--seed", "0", "--precision", "fp32")
    assert code == 0, err
    assert out.startswith("chain  seed  mean change  final change  moving\n")
    assert re.search(r"^moving: \d/2 ", out, re.M)
    assert "chain  seed" not in err and "moving: " not in err
    assert "walking 2 chain(s)" in err and "walking" not in out
    code, out, err = cli(*args, "--stats", "--seed", "0", "--precision", "fp32", "--json")
    assert code == 0, err
    assert json.loads(out)["stats"]["total"] == 2 and "chain  seed" not in out + err
