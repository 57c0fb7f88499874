"""Manifold walks and the videos that show them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
import torch
from torch import nn

from aegen.api import Noise, sample
from aegen.checkpoint import load_checkpoint
from aegen.errors import ConfigError
from aegen.models import batch_statistics
from aegen.walkstats import WalkStats

from .conftest import aegen_script, as_foreground, make_images, run_aegen

SHAPE = (3, 16, 16)


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint).model


def mp4_facts(path: Path) -> dict:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    meta["count"] = sum(1 for _ in reader)
    return meta


def test_walk_is_encode_plus_noise_then_decode(model):
    start = torch.rand(2, *SHAPE)
    frames = list(
        sample(model, "walk", shape=SHAPE, n=2, steps=3, seed=4, start=start, options={"eps": 0.3})
    )
    noise = Noise([4, 5], SHAPE)
    g = start
    with torch.inference_mode(), batch_statistics(model):
        for frame in frames:
            h = model.encode(g)
            g = model.decode(h + noise.normal(0.0, 0.3, like=h))
            torch.testing.assert_close(frame, g)


def test_noiseless_walk_repeats_decode_of_encode(model):
    start = torch.rand(2, *SHAPE)
    frames = list(sample(model, "noiseless-walk", shape=SHAPE, n=2, steps=3, seed=0, start=start))
    g = start
    with torch.inference_mode(), batch_statistics(model):
        for frame in frames:
            g = model.decode(model.encode(g))
            torch.testing.assert_close(frame, g)


def test_walk_needs_starting_images(model):
    with pytest.raises(ConfigError, match="walks from starting images"):
        list(sample(model, "walk", shape=SHAPE, n=2, steps=1, seed=0))


class RollBrightImages(nn.Module):
    """encode = identity; decode shifts an image one pixel sideways if its mean is above 0.5,
    and leaves it alone otherwise: bright chains move forever, dark ones never move."""

    def encode(self, x):
        return x

    def decode(self, h):
        bright = (h.mean(dim=(1, 2, 3)) > 0.5).view(-1, 1, 1, 1)
        return torch.where(bright, h.roll(1, dims=3), h)

    def forward(self, x):
        return self.decode(self.encode(x))


def test_stats_on_a_model_whose_answer_is_known():
    torch.manual_seed(0)
    pattern = torch.rand(4, *SHAPE) * 0.2
    start = pattern + torch.tensor([0.7, 0.7, 0.1, 0.1]).view(4, 1, 1, 1)
    stats = WalkStats(start, steps=40)
    for frame in sample(
        RollBrightImages(), "noiseless-walk", shape=SHAPE, n=4, steps=40, seed=0, start=start
    ):
        stats.update(frame)
    summary = stats.summary([0, 1, 2, 3])
    assert [c["moving"] for c in summary["chains"]] == [True, True, False, False]
    assert summary["share_moving"] == 0.5 and summary["moving"] == 2
    assert summary["chains"][2]["mean_change"] == 0.0
    assert summary["chains"][0]["final_change"] > 0.05
    assert summary["window"] == 5 and "last 5 steps" in summary["criterion"]


def test_stats_see_a_chain_come_to_rest():
    class Halve(RollBrightImages):
        def decode(self, h):
            return h * 0.5

    stats = WalkStats(torch.ones(1, *SHAPE), steps=50)
    for frame in sample(
        Halve(), "noiseless-walk", shape=SHAPE, n=1, steps=50, seed=0, start=torch.ones(1, *SHAPE)
    ):
        stats.update(frame)
    chain = stats.summary([0])["chains"][0]
    assert chain["mean_change"] == pytest.approx(1 / 50, rel=1e-4)  # 1/2 + 1/4 + ... ~ 1
    assert not chain["moving"]


def test_walk_writes_mp4_gif_frames_and_last_grid(tiny_checkpoint, image_folder, tmp_path, cli):
    code, out, err = cli(
        "walk",
        "-c",
        tiny_checkpoint,
        "--input",
        image_folder,
        "--n",
        "4",
        "--steps",
        "7",
        "--seed",
        "1",
        "--video",
        tmp_path / "walk.mp4",
        "--gif",
        tmp_path / "walk.gif",
        "--fps",
        "12",
        "--frames",
        tmp_path / "frames",
        "--every",
        "3",
        "--out",
        tmp_path / "last.png",
        "--stats",
        "--json",
        "-q",
    )
    assert code == 0, err
    report = json.loads(out)
    facts = mp4_facts(tmp_path / "walk.mp4")
    side = (2 + 2 * 18) * 8  # 2x2 grid of 16 px images, padding 2, default scale 128 // 16
    assert facts["count"] == 7 and facts["size"] == (side, side)
    assert facts["codec"] == "h264" and facts["pix_fmt"].startswith("yuv420p")
    assert facts["fps"] == 12
    gif = iio.imread(tmp_path / "walk.gif", index=None)
    assert gif.shape[:3] == (7, side, side)
    assert report["frames"] == [str(tmp_path / "frames" / f"step-000{s}.png") for s in (3, 6, 7)]
    assert (tmp_path / "last.png").read_bytes() == (
        tmp_path / "frames" / "step-0007.png"
    ).read_bytes()
    assert report["start"]["from"] == "input" and len(report["start"]["paths"]) == 4
    assert report["stats"]["total"] == 4 and report["options"] == {"eps": 0.2}
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


def test_video_sides_are_even_and_scale_is_honoured(tiny_checkpoint, tmp_path, cli):
    code, _, err = cli(
        "generate",
        "-c",
        tiny_checkpoint,
        "--n",
        "3",
        "--steps",
        "4",
        "--seed",
        "0",
        "--out",
        tmp_path / "g.png",
        "--video",
        tmp_path / "v.mp4",
        "--scale",
        "3",
        "-q",
    )
    assert code == 0, err
    facts = mp4_facts(tmp_path / "v.mp4")
    assert facts["count"] == 4 and facts["size"] == (114, 114)  # 38 * 3, already even
    from aegen.recording import Recorder

    with Recorder(steps=2, count=1, size=15, video=tmp_path / "odd.mp4", scale=1) as record:
        for step in (1, 2):
            record(step, torch.rand(1, 3, 15, 15))
    assert mp4_facts(tmp_path / "odd.mp4")["size"] == (16, 16)  # padded to even sides


def test_a_grey_batch_is_recorded_as_a_grey_video_with_its_picture(tmp_path):
    from aegen.recording import Recorder

    batch = torch.zeros(4, 1, 8, 8)
    batch[0] = 1.0  # one white image among black ones
    with Recorder(steps=1, count=4, size=8, video=tmp_path / "g.mp4", scale=2) as record:
        record(1, batch)
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "g.mp4"))
    assert next(reader)["size"] == (44, 44)  # (2 + 2 * 10) * 2
    frame = np.frombuffer(next(reader), np.uint8).reshape(44, 44, 3).astype(int)
    reader.close()
    assert (frame.max(axis=2) - frame.min(axis=2)).max() <= 2  # no colour cast
    assert frame[4:20, 4:20].mean() > 240 and frame[4:20, 24:40].mean() < 15


def test_a_failing_encoder_is_one_clear_error_and_leaves_no_file(tmp_path, monkeypatch):
    import imageio_ffmpeg

    from aegen.errors import AegenError
    from aegen.recording import Recorder

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: "false")  # exits at once
    with pytest.raises(AegenError, match="video encoder"):
        with Recorder(steps=50, count=1, size=64, video=tmp_path / "v.mp4", scale=4) as record:
            for step in range(1, 51):
                record(step, torch.rand(1, 3, 64, 64))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: str(tmp_path / "no-ffmpeg"))
    with pytest.raises(AegenError, match="could not start the video encoder"):
        with Recorder(steps=1, count=1, size=8, video=tmp_path / "v.mp4") as record:
            record(1, torch.rand(1, 3, 8, 8))
    assert list(tmp_path.iterdir()) == []


def test_walk_inputs_are_resized_and_converted(tiny_checkpoint, grey_folder, tmp_path, cli):
    single = make_images(tmp_path / "one", 1)[0]
    code, out, err = cli(
        "walk",
        "-c",
        tiny_checkpoint,
        "-i",
        grey_folder,
        "-i",
        single,
        "--n",
        "20",
        "--steps",
        "2",
        "--seed",
        "0",
        "--out",
        tmp_path / "w.png",
        "--json",
        "-q",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["n"] == 17 and report["start"]["paths"][-1] == str(single)


def test_walk_refusals(tiny_checkpoint, tmp_path, cli):
    cases = [
        ([], 2, "nothing to write"),
        (["--stats", "--noiseless", "--sampler", "walk"], 2, "give one"),
        (["--video", tmp_path / "v.avi"], 2, "--video writes .mp4 files"),
        (["--stats", "--eps", "-1"], 2, "option 'eps' of sampler 'walk' must be at least"),
        (["--stats", "--noiseless", "--eps", "0.1"], 2, "has no option 'eps'"),
        (["--stats", "--input", tmp_path / "nothing"], 1, "no such file or folder"),
    ]
    for extra, code, message in cases:
        got, out, err = cli("walk", "-c", tiny_checkpoint, "--steps", "2", "--n", "2", "-q", *extra)
        assert got == code and message in err, (extra, got, err)


@pytest.mark.slow
def test_ctrl_c_closes_the_video_so_it_plays(tiny_checkpoint, tmp_path):
    video = tmp_path / "walk.mp4"
    proc = subprocess.Popen(
        [
            aegen_script(),
            "walk",
            "-c",
            str(tiny_checkpoint),
            "--steps",
            "1000000",
            "--n",
            "4",
            "--start-steps",
            "2",
            "--seed",
            "0",
            "--video",
            str(video),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_foreground,
    )
    deadline = time.time() + 120
    while not list(tmp_path.glob(".walk.mp4.*")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # let frames accumulate
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted after" in err and "Traceback" not in err
    facts = mp4_facts(video)
    assert facts["count"] >= 1 and facts["codec"] == "h264"
    assert not list(tmp_path.glob(".walk.mp4.*"))


@pytest.mark.slow
def test_ctrl_c_during_generate_exits_130_and_keeps_the_video(tiny_checkpoint, tmp_path):
    video = tmp_path / "gen.mp4"
    proc = subprocess.Popen(
        [
            aegen_script(),
            "generate",
            "-c",
            str(tiny_checkpoint),
            "--steps",
            "1000000",
            "--n",
            "2",
            "--seed",
            "0",
            "--video",
            str(video),
            "--out",
            str(tmp_path / "never.png"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_foreground,
    )
    deadline = time.time() + 120
    while not list(tmp_path.glob(".gen.mp4.*")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert mp4_facts(video)["count"] >= 1
    assert not (tmp_path / "never.png").exists()


PEAK = """
import resource, sys
from aegen.outputs import Outputs
from aegen.tasks import walk_files
walk_files(sys.argv[1], Outputs(video=sys.argv[2], force=True), steps=int(sys.argv[3]), n=16,
           seed=0, start_steps=2)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_number_of_steps(tiny_checkpoint, tmp_path):
    def peak(steps: int) -> int:
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                PEAK,
                str(tiny_checkpoint),
                str(tmp_path / f"{steps}.mp4"),
                str(steps),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return int(result.stdout.strip())

    short, long = peak(30), peak(600)
    assert mp4_facts(tmp_path / "600.mp4")["count"] == 600
    assert long <= 1.2 * short, (short, long)


@pytest.mark.slow
def test_walk_script_end_to_end(tiny_checkpoint, tmp_path):
    result = run_aegen(
        "walk",
        "-c",
        tiny_checkpoint,
        "--noiseless",
        "--steps",
        "20",
        "--n",
        "4",
        "--start-steps",
        "3",
        "--seed",
        "0",
        "--stats",
        "--video",
        tmp_path / "w.mp4",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{tmp_path / 'w.mp4'}\nchain  seed")
    assert "moving:" in result.stdout and mp4_facts(tmp_path / "w.mp4")["count"] == 20
