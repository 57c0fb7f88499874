"""A sampler's own step count (plugin API 1.1): a run that asks for no steps takes the count the
sampler registered, else the command's default (100 for generate and eval, 300 for walk);
`--steps` always wins, and the count taken is the one every report names."""

from __future__ import annotations

import json

import pytest

import aegen.api as api
from aegen.checkpoint import load_checkpoint
from aegen.plugins import Registry
from aegen.sampling import Draw, generate, sample

from .conftest import make_distribution, run_aegen

FEW = """
    from aegen.api import hookimpl

    AEGEN_API = ">=1.1,<2"

    def few(model, x, *, steps, noise):
        for _ in range(steps):
            yield model(noise.normal(0.5, 0.2))

    @hookimpl
    def register_samplers(register):
        register("few", few, description="three steps are its best", steps=3)
"""

BAD_COUNTS = """
    from aegen.api import hookimpl

    def good(model, x, *, steps, noise):
        for _ in range(steps):
            yield model(noise.normal(0.5, 0.2))

    @hookimpl
    def register_samplers(register):
        register("zero", good, steps=0)
        register("flag", good, steps=True)
        register("text", good, steps="25")
        register("fine", good, steps=7)
"""


@pytest.fixture
def few(site):
    make_distribution(site, "aegen-few", "aegen_few", FEW)
    return {"PYTHONPATH": str(site)}


def test_a_run_without_steps_takes_the_count_the_sampler_registered(few, tiny_checkpoint,
                                                                     tmp_path):
    common = ["generate", "-c", tiny_checkpoint, "--sampler", "few", "--n", "2", "--seed", "0",
              "--json"]
    own = run_aegen(*common, "--out", tmp_path / "own.png", "--frames", tmp_path / "own",
                    env=few)
    assert own.returncode == 0, own.stderr
    report = json.loads(own.stdout)
    assert report["steps"] == 3 and report["frames_recorded"] == 3
    assert "'few', 3 steps" in own.stderr
    given = run_aegen(*common, "--steps", "5", "--out", tmp_path / "given.png", env=few)
    assert given.returncode == 0, given.stderr
    assert json.loads(given.stdout)["steps"] == 5  # --steps wins


def test_the_python_api_takes_the_samplers_count_too(few, tiny_checkpoint):
    model = load_checkpoint(tiny_checkpoint).model
    shape = (3, 16, 16)
    assert len(list(sample(model, "few", shape=shape, n=2))) == 3
    assert generate(model, "few", shape=shape, n=2).steps == 3
    assert generate(model, "few", draw=Draw(shape, n=2, steps=4)).steps == 4
    assert api.get_component("sampler", "few").steps == 3
    assert api.get_component("sampler", "schedule").steps is None  # the article's: the command's
    assert generate(model, "schedule", shape=shape, n=2).steps == 100


def test_a_sampler_that_registers_no_count_takes_the_commands_default(cli, tiny_checkpoint,
                                                                      tmp_path):
    code, out, err = cli("generate", "-c", tiny_checkpoint, "--n", "2", "--seed", "0",
                         "--out", tmp_path / "g.png", "--json", "-q")
    assert code == 0, err
    assert json.loads(out)["steps"] == 100
    code, out, err = cli("walk", "-c", tiny_checkpoint, "--noiseless", "--n", "2", "--seed", "0",
                         "--start-steps", "2", "--out", tmp_path / "w.png", "--json", "-q")
    assert code == 0, err
    assert json.loads(out)["steps"] == 300


def test_ddim_registers_its_measured_count_and_schedule_keeps_the_articles(cli, tiny_checkpoint,
                                                                         tmp_path):
    ddim = api.get_component("sampler", "ddim").steps
    assert ddim is not None and ddim <= 25  # few-step sampling, chosen in docs/samplers.md
    code, out, err = cli("generate", "-c", tiny_checkpoint, "--sampler", "ddim", "--n", "2",
                         "--seed", "0", "--out", tmp_path / "d.png", "--json", "-q")
    assert code == 0, err
    assert json.loads(out)["steps"] == ddim
    code, out, err = cli("plugins", "show", "ddim", "--kind", "sampler", "--json")
    assert code == 0, err
    assert json.loads(out)["components"][0]["steps"] == ddim
    code, out, err = cli("plugins", "show", "ddim", "--kind", "sampler")
    assert code == 0, err
    assert "--steps" in out and "own step count" in out


def test_a_bad_count_is_a_warning_naming_the_plugin_and_the_rest_still_loads(site, capsys):
    make_distribution(site, "aegen-bad-counts", "aegen_bad_counts", BAD_COUNTS)
    registry = Registry()
    registry.load_entry_points(None, False)
    info = next(p for p in registry.plugins if p.name == "aegen_bad_counts")
    assert info.registered["samplers"] == ["fine"]
    said = "\n".join(info.warnings)
    for name, value in (("zero", "0"), ("flag", "True"), ("text", "'25'")):
        assert f"sampler {name!r}" in said and f"steps must be a whole number of at least 1 " \
            f"or None, got {value}" in said

