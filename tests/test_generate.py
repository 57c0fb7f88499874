"""`aegen generate` and the `schedule` sampler: the seed's iterated denoising, reproducible."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image

from aegen.api import Noise, get_schedule
from aegen.checkpoint import load_checkpoint
from aegen.errors import ConfigError, UsageError
from aegen.sampling import generate, sample

from .conftest import run_aegen


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint).model


SHAPE = (3, 16, 16)


def test_linear_schedule_is_the_seeds():
    linear = get_schedule("linear")
    assert [linear(n, 4) for n in range(4)] == [(0.0, 1.0), (0.25, 0.75), (0.5, 0.5), (0.75, 0.25)]


def test_cosine_schedule_rises_slowly_at_both_ends():
    cosine = get_schedule("cosine")
    cs = [cosine(n, 100)[0] for n in range(100)]
    assert cs[0] == 0.0 and all(b > a for a, b in zip(cs, cs[1:]))
    assert all(math.isclose(c + d, 1.0) for c, d in (cosine(n, 100) for n in range(100)))
    assert math.isclose(cosine(50, 100)[0], 0.5)
    assert cs[1] - cs[0] < 0.001 and cs[50] - cs[49] > 0.015


def test_schedule_sampler_matches_a_hand_written_loop(model):
    """a_0 ~ N(mu, sigma); g_n = model(a_n); a_{n+1} = c_n g_n + d_n N(mu, sigma)."""
    steps, seeds, mu, sigma = 5, [7, 8, 9], 0.6, 0.25
    frames = list(
        sample(
            model,
            "schedule",
            shape=SHAPE,
            n=3,
            steps=steps,
            seed=7,
            options={"mu": mu, "sigma": sigma},
        )
    )
    assert len(frames) == steps
    noise = Noise(seeds, SHAPE)
    with torch.inference_mode():
        from aegen.models import batch_statistics

        with batch_statistics(model):
            a = noise.normal(mu, sigma)
            for n in range(steps):
                g = model(a)
                torch.testing.assert_close(frames[n], g, atol=1e-4, rtol=1e-3)
                a = n / steps * g + (1 - n / steps) * noise.normal(mu, sigma)


def test_batch_norm_uses_batch_statistics_without_changing_running_ones(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    training_flags = [m.training for m in model.modules()]
    batch = generate(model, shape=SHAPE, n=4, steps=3, seed=0).images
    running = generate(model, shape=SHAPE, n=4, steps=3, seed=0, running_stats=True).images
    assert not torch.equal(batch, running)  # the two modes really differ
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert [m.training for m in model.modules()] == training_flags


def test_image_i_uses_seed_plus_i(model):
    both = generate(model, shape=SHAPE, n=2, steps=4, seed=10, batch_size=1)
    alone = generate(model, shape=SHAPE, n=1, steps=4, seed=11, batch_size=1)
    assert both.seeds == [10, 11]
    torch.testing.assert_close(both.images[1], alone.images[0])


def test_sub_batches_run_in_lockstep(model):
    frames = list(sample(model, shape=SHAPE, n=5, steps=2, seed=0, batch_size=2))
    assert [f.shape[0] for f in frames] == [5, 5]


def test_sampler_options_are_validated(model):
    with pytest.raises(ConfigError, match="option 'sigma' of sampler 'schedule' must be at least"):
        generate(model, shape=SHAPE, steps=1, options={"sigma": -1})
    with pytest.raises(ConfigError, match="option 'mu'.*expects a finite number, got 'abc'"):
        generate(model, shape=SHAPE, steps=1, options={"mu": "abc"})
    with pytest.raises(ConfigError, match="has no option 'eta'"):
        generate(model, shape=SHAPE, steps=1, options={"eta": 1})
    with pytest.raises(UsageError, match="unknown schedule 'zigzag'"):
        generate(model, shape=SHAPE, steps=1, options={"schedule": "zigzag"})
    with pytest.raises(UsageError, match="^`steps` must be at least 1") as caught:
        generate(model, shape=SHAPE, steps=0)
    assert caught.value.parameters == ("steps",)  # the CLI says --steps (tests/test_cli.py)


def test_same_seed_gives_byte_identical_pngs(tiny_checkpoint, tmp_path, cli):
    args = ["generate", "-c", tiny_checkpoint, "--steps", "6", "--n", "4", "--seed", "3", "-q"]
    assert cli(*args, "--out", tmp_path / "a.png")[0] == 0
    assert cli(*args, "--out", tmp_path / "b.png")[0] == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert cli(*args[:-2], "4", "-q", "--out", tmp_path / "c.png")[0] == 0
    assert (tmp_path / "c.png").read_bytes() != (tmp_path / "a.png").read_bytes()


def test_grid_single_images_and_frames(tiny_checkpoint, tmp_path, cli):
    code, out, err = cli(
        "generate",
        "-c",
        tiny_checkpoint,
        "--sampler",
        "schedule",
        "--schedule",
        "cosine",
        "--steps",
        "5",
        "--n",
        "3",
        "--seed",
        "20",
        "--out",
        tmp_path / "grid-{seed}.png",
        "--out-dir",
        tmp_path / "single",
        "--name",
        "{index:02d}-{seed}.png",
        "--every",
        "2",
        "--frames",
        tmp_path / "frames",
        "--json",
        "-q",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["grid"] == str(tmp_path / "grid-20.png")
    assert report["seeds"] == [20, 21, 22] and report["options"]["schedule"] == "cosine"
    assert [i["path"] for i in report["images"]] == [
        str(tmp_path / "single" / f"{i:02d}-{20 + i}.png") for i in range(3)
    ]
    assert [p.rsplit("/", 1)[1] for p in report["frames"]] == [
        "step-0002.png",
        "step-0004.png",
        "step-0005.png",
    ]
    with Image.open(tmp_path / "grid-20.png") as grid:
        assert grid.size == (2 + 2 * 18, 2 + 2 * 18)  # 2x2 grid of 16px images, padding 2
    with Image.open(tmp_path / "single" / "00-20.png") as one:
        assert one.size == (16, 16)
    for frame in report["frames"]:
        with Image.open(frame) as img:
            assert img.size == (38, 38)


def test_last_frame_is_the_saved_grid(tiny_checkpoint, tmp_path, cli):
    code, _, err = cli(
        "generate",
        "-c",
        tiny_checkpoint,
        "--steps",
        "3",
        "--n",
        "4",
        "--seed",
        "0",
        "--out",
        tmp_path / "g.png",
        "--frames",
        tmp_path / "f",
        "-q",
    )
    assert code == 0, err
    assert (tmp_path / "g.png").read_bytes() == (tmp_path / "f" / "step-0003.png").read_bytes()


def test_generate_refusals(tiny_checkpoint, tmp_path, cli):
    existing = tmp_path / "exists.png"
    existing.write_bytes(b"keep me")
    cases = [
        (["--out", existing], 2, "exists; use --force"),
        (["--sampler", "nope"], 2, "unknown sampler 'nope'"),
        (["--schedule", "zigzag"], 2, "unknown schedule 'zigzag'"),
        (["-O", "sigma=-2"], 2, "option 'sigma' of sampler 'schedule' must be at least"),
        (["-O", "mu"], 2, "--option expects KEY=VALUE"),
        (["--every", "2"], 2, "--every needs --frames"),
        (["--steps", "0"], 2, "--steps must be at least 1"),
        (["--out-dir", tmp_path / "d", "--name", "same.png"], 2, "one file name"),
        (["--out-dir", tmp_path / "d", "--name", "{nope}.png"], 2, "not a valid template"),
        (["--stepz", "3"], 2, "No such option: --stepz"),
    ]
    for extra, code, message in cases:
        got, out, err = cli(
            "generate", "-c", tiny_checkpoint, "--n", "2", "--steps", "2", "-q", *extra
        )
        assert got == code and message in err, (extra, got, err)
        assert out == "" and len(err.strip().splitlines()) == 1, err
    assert existing.read_bytes() == b"keep me"
    code, _, err = cli(
        "generate", "-c", tmp_path / "absent.safetensors", "--out", tmp_path / "y.png"
    )
    assert code == 1 and "no such file" in err and not (tmp_path / "y.png").exists()


@pytest.mark.slow
def test_generate_script_end_to_end(tiny_checkpoint, tmp_path):
    result = run_aegen(
        "generate",
        "-c",
        tiny_checkpoint,
        "--sampler",
        "schedule",
        "--schedule",
        "cosine",
        "--steps",
        "4",
        "--n",
        "4",
        "--seed",
        "0",
        "--out",
        "grid.png",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "grid.png\n"  # only results on stdout
    assert "loaded" in result.stderr and "\x1b[" not in result.stderr
    quiet = run_aegen(
        "generate",
        "-c",
        tiny_checkpoint,
        "--steps",
        "2",
        "--n",
        "1",
        "--seed",
        "0",
        "--out",
        "q.png",
        "--quiet",
        cwd=tmp_path,
    )
    assert quiet.returncode == 0 and quiet.stderr == ""
