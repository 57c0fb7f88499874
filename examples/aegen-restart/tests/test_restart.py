"""Tests of the installed plugin (run `pip install -e .` first)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from aegen.api import ConfigError, batch_statistics, build_model, generate, sample, save_checkpoint
from aegen.models import resolve_config
from aegen.plugins import Registry

SHAPE = (3, 16, 16)
CONFIG = {"width": 4, "depth": 2}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The model is tiny: more threads only wait on each other, slowly on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def config():
    return resolve_config("unet", CONFIG, SHAPE[0], SHAPE[1])


@pytest.fixture(scope="module")
def model(config):
    torch.manual_seed(0)
    return build_model("unet", config)


def same(xs, ys):
    """Two lists of frames are equal, frame by frame and bit for bit."""
    return len(xs) == len(ys) and all(torch.equal(x, y) for x, y in zip(xs, ys, strict=True))


def frames(model, sampler="restart", steps=6, n=3, seed=0, **options):
    return list(sample(model, sampler, shape=SHAPE, n=n, steps=steps, seed=seed, options=options))


def test_entry_point_registers_the_sampler_from_plugin_restart():
    registry = Registry()
    registry.load_entry_points(None)
    info = next(p for p in registry.plugins if p.name == "restart")
    assert (info.status, info.distribution, info.builtin) == ("ok", "aegen-restart", False)
    assert info.registered["samplers"] == ["restart"]
    spec = registry.sampler("restart")
    assert spec.plugin == "restart" and spec.description
    assert {k: o.default for k, o in spec.options.items()} == {
        "schedule": "cosine",
        "cycles": 3,
        "renoise": 0.5,
        "mu": 0.7,
        "sigma": 0.2,
    }


def test_importing_the_plugin_does_not_import_torch():
    code = "import sys, aegen_restart; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("steps, cycles", [(6, 3), (7, 3), (5, 5), (4, 1)])
def test_yields_exactly_steps_frames_of_the_batch_shape(model, steps, cycles):
    out = frames(model, steps=steps, n=3, cycles=cycles)
    assert len(out) == steps
    assert all(f.shape == (3, *SHAPE) for f in out)
    assert all(torch.isfinite(f).all() for f in out)


def test_same_seed_same_frames_other_seed_other_frames(model):
    first, again = frames(model, seed=3), frames(model, seed=3)
    assert same(first, again)
    other = frames(model, seed=4)
    assert not torch.equal(first[-1], other[-1])


@pytest.mark.parametrize("schedule, renoise", [("cosine", 0.5), ("linear", 0.0), ("cosine", 1.0)])
def test_one_cycle_is_the_schedule_sampler(model, schedule, renoise):
    mine = frames(model, steps=7, seed=5, cycles=1, renoise=renoise, schedule=schedule)
    seed = frames(model, "schedule", steps=7, seed=5, schedule=schedule)
    assert len(mine) == len(seed) == 7
    assert same(mine, seed)


def test_cycles_restart_from_the_re_noised_sample(model):
    one = frames(model, steps=6, seed=1, cycles=1)
    two = frames(model, steps=6, seed=1, cycles=2, renoise=0.5)
    # The first cycle is the schedule sampler over its 3 steps, so only its first mixes agree
    # with the 6-step run; the cycles change the result.
    assert torch.equal(one[0], two[0])
    assert not torch.equal(one[-1], two[-1])
    # renoise sets how much of the first cycle's result the second keeps: 0 keeps all of it
    # (re-applying the model with no noise), so the result differs from renoise 1 (fresh noise).
    keep = frames(model, steps=6, seed=1, cycles=2, renoise=0.0)
    fresh = frames(model, steps=6, seed=1, cycles=2, renoise=1.0)
    assert same(keep[:3], fresh[:3])
    assert not torch.equal(keep[-1], fresh[-1])
    assert not torch.equal(two[-1], fresh[-1])


def test_renoise_zero_iterates_the_model_on_its_output(model):
    out = frames(model, steps=4, n=2, seed=2, cycles=2, renoise=0.0)
    with batch_statistics(model), torch.inference_mode():  # as the sampling runner does
        assert torch.allclose(out[2], model(out[1]), atol=1e-6)
        assert torch.allclose(out[3], model(out[2]), atol=1e-6)


def test_more_cycles_than_steps_is_a_config_error(model):
    with pytest.raises(ConfigError, match=r"cycles \(4\) must not exceed steps \(3\)"):
        frames(model, steps=3, cycles=4)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"renoise": 1.5}, "option 'renoise' of sampler 'restart' must be at most 1"),
        ({"renoise": -0.1}, "option 'renoise' of sampler 'restart' must be at least 0"),
        ({"cycles": 0}, "option 'cycles' of sampler 'restart' must be at least 1"),
        ({"cycles": "two"}, "option 'cycles' of sampler 'restart' expects a whole number"),
        ({"sigma": -1}, "option 'sigma' of sampler 'restart' must be at least 0"),
    ],
)
def test_bad_option_values_are_config_errors(model, options, message):
    with pytest.raises(ConfigError, match=message):
        frames(model, **options)


def test_unknown_schedule_is_refused(model):
    with pytest.raises(Exception, match="unknown schedule 'nope'"):
        frames(model, schedule="nope")


def test_generate_returns_the_last_frame(model):
    options = {"cycles": "2", "renoise": "0.25"}  # strings, as from the command line
    result = generate(model, "restart", shape=SHAPE, n=2, steps=4, seed=0, options=options)
    assert result.steps == 4 and result.options["cycles"] == 2
    last = frames(model, steps=4, n=2, seed=0, cycles=2, renoise=0.25)[-1]
    assert torch.equal(result.images, last)


def aegen(*args, cwd):
    script = shutil.which("aegen") or str(Path(sys.executable).parent / "aegen")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [script, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def test_plugins_json_lists_restart(tmp_path):
    result = aegen("plugins", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    assert plugins["restart"]["status"] == "ok"
    assert plugins["restart"]["registered"]["samplers"] == ["restart"]


def test_aegen_generate_with_the_restart_sampler(tmp_path, model, config):
    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(ckpt, model, architecture="unet", config=config)
    args = [
        "generate",
        "--sampler",
        "restart",
        "-O",
        "cycles=2",
        "--n",
        "4",
        "--seed",
        "0",
        "-c",
        ckpt,
    ]
    result = aegen(*args, "--steps", "6", "--out", "grid.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert "grid.png" in result.stdout
    bad = aegen(*args, "--steps", "1", "--out", "bad.png", cwd=tmp_path)
    assert bad.returncode == 2
    assert "cycles (2) must not exceed steps (1)" in bad.stderr
    assert not (tmp_path / "bad.png").exists()
