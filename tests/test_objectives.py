"""Training objectives: `copy` (the seed's, the default) and `denoise` (the schedule sampler's
own corruption), stored in checkpoints, feeding sampler defaults, and open to plugins."""

from __future__ import annotations

import json

import pytest
import torch

from aegen.checkpoint import read_checkpoint_info
from aegen.plugins import get_registry
from aegen.training import train

from .conftest import SIZE, TINY, make_distribution, run_aegen


def objective(name):
    return get_registry().objective(name).fn


def clean_batch(n=64, seed=0):
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed)) * 0.5 + 0.5


def test_copy_gives_the_model_the_clean_batch_itself():
    x = clean_batch()
    assert objective("copy")(x, generator=torch.Generator()) is x


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_denoise_is_the_samplers_mix_at_a_step_of_its_schedule(schedule):
    """With sigma = 0 the noise is the constant mu, so input = c * clean + d * mu exactly, and
    (c, d) must be the schedule's weights at some step n of the 1000-step grid."""
    x = clean_batch()
    mu = 0.1
    given = objective("denoise")(
        x, generator=torch.Generator().manual_seed(3), schedule=schedule, mu=mu, sigma=0.0
    )
    c = ((given - mu) / (x - mu)).flatten(1)  # per image; constant across its pixels
    assert torch.allclose(c, c[:, :1].expand_as(c), atol=1e-5)
    weights = get_registry().schedule(schedule).fn
    grid = torch.tensor([weights(n, 1000) for n in range(1000)])
    for level, image, mixed in zip(c[:, 0], x, given):
        n = int(torch.argmin((grid[:, 0] - level).abs()))
        cn, dn = grid[n].tolist()
        assert torch.allclose(mixed, cn * image + dn * mu, atol=1e-5)
    assert 0 <= c.min() and c.max() < 1  # from pure noise (n = 0) up to nearly clean


def test_denoise_draws_levels_across_the_whole_schedule_and_noise_with_mu_and_sigma():
    """On black images the input is d * N(mu, sigma). The same seed with sigma = 0 gives d * mu,
    so d (= 1 - c for `linear`) and then the noise itself can be read back exactly."""
    x = torch.zeros(4000, 1, 4, 4)
    levels = objective("denoise")(x, generator=torch.Generator().manual_seed(0), sigma=0.0)
    mixed = objective("denoise")(x, generator=torch.Generator().manual_seed(0), sigma=0.2)
    d = levels[:, 0, 0, 0] / 0.7
    assert d.min() < 0.01 and d.max() == 1.0  # n = 0 is pure noise, as the sampler starts
    assert abs(d.mean().item() - 0.5) < 0.02  # linear: c uniform over the grid
    noise = mixed[d > 0.1] / d[d > 0.1].view(-1, 1, 1, 1)
    assert abs(noise.mean().item() - 0.7) < 0.01 and abs(noise.std().item() - 0.2) < 0.01


def test_denoise_draws_are_fixed_by_the_generator():
    x = clean_batch()
    first = objective("denoise")(x, generator=torch.Generator().manual_seed(5))
    again = objective("denoise")(x, generator=torch.Generator().manual_seed(5))
    other = objective("denoise")(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(first, again) and not torch.equal(first, other)


def train_tiny(folder, out, **kwargs):
    return train(folder, out, config=TINY, size=SIZE, batch_size=8, seed=0, device="cpu",
                 force=True, **kwargs)


def test_the_objective_and_its_options_round_trip_through_the_checkpoint(image_folder, tmp_path):
    result = train_tiny(image_folder, tmp_path / "d.safetensors", epochs=1, objective="denoise",
                        objective_options={"mu": "0.5", "sigma": 0.1})
    info = read_checkpoint_info(result.path)
    assert info.objective == {
        "name": "denoise",
        "options": {"schedule": "linear", "mu": 0.5, "sigma": 0.1},
        "plugin": "objectives",
    }
    assert info.as_json()["objective"]["options"]["mu"] == 0.5
    assert result.as_json()["objective"]["name"] == "denoise"


def test_copy_stays_the_default_and_older_checkpoints_read_as_copy(tiny_checkpoint):
    info = read_checkpoint_info(tiny_checkpoint)
    assert info.objective["name"] == "copy" and info.objective["options"] == {}
    assert info.as_json()["objective"]["name"] == "copy"


def test_denoise_training_is_deterministic_and_differs_from_copy(image_folder, tmp_path):
    a = train_tiny(image_folder, tmp_path / "a.safetensors", epochs=1, objective="denoise")
    b = train_tiny(image_folder, tmp_path / "b.safetensors", epochs=1, objective="denoise")
    c = train_tiny(image_folder, tmp_path / "c.safetensors", epochs=1)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.losses != c.losses


def test_resume_keeps_the_objective_and_equals_an_uninterrupted_run(image_folder, tmp_path):
    whole = train_tiny(image_folder, tmp_path / "whole.safetensors", epochs=2,
                       objective="denoise", objective_options={"sigma": 0.3})
    part = train_tiny(image_folder, tmp_path / "part.safetensors", epochs=1,
                      objective="denoise", objective_options={"sigma": 0.3})
    resumed = train(image_folder, part.path, epochs=2, resume=part.path, device="cpu")
    assert resumed.objective["options"]["sigma"] == 0.3
    assert resumed.losses == whole.losses
    assert part.path.read_bytes() == whole.path.read_bytes()  # weights, optimizer, metadata


def test_resume_refuses_another_objective(image_folder, tmp_path):
    from aegen.errors import UsageError

    part = train_tiny(image_folder, tmp_path / "part.safetensors", epochs=1, objective="denoise")
    with pytest.raises(UsageError, match="differs from the resumed run's denoise"):
        train(image_folder, part.path, epochs=2, resume=part.path, objective="copy")


@pytest.mark.slow
def test_the_cli_trains_with_denoise_shows_it_and_samples_with_its_mu_and_sigma(
    image_folder, tmp_path
):
    model = tmp_path / "m.safetensors"
    trained = run_aegen("train", image_folder, "--out", model, "--set", "width=4",
                        "--set", "depth=2", "--size", SIZE, "--epochs", "1", "--batch-size", "8",
                        "--seed", "0", "--objective", "denoise", "-O", "mu=0.4",
                        "-O", "sigma=0.1", "--json")
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["objective"]["options"]["mu"] == 0.4

    info = run_aegen("info", model)
    assert "objective     denoise (mu=0.4, schedule=linear, sigma=0.1)" in info.stdout

    made = run_aegen("generate", "-c", model, "--steps", "2", "--n", "2", "--seed", "0",
                     "--out", tmp_path / "g.png", "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["options"] == {"schedule": "linear", "mu": 0.4, "sigma": 0.1}
    assert "from the checkpoint's training objective" in made.stderr

    chosen = run_aegen("generate", "-c", model, "--steps", "2", "--n", "2", "--seed", "0",
                       "-O", "mu=0.6", "--out", tmp_path / "h.png", "--json", "--force")
    assert json.loads(chosen.stdout)["options"]["mu"] == 0.6  # what the user says wins


@pytest.mark.parametrize(
    "args, message",
    [
        (["--objective", "blur"], "unknown objective 'blur'"),
        (["--objective", "denoise", "-O", "eps=1"], "objective 'denoise' has no option 'eps'"),
        (["--objective", "denoise", "-O", "sigma=-1"], "must be at least 0.0"),
        (["-O", "mu=1"], "objective 'copy' has no option 'mu'"),
    ],
)
def test_bad_objectives_are_refused_in_one_line_before_training(
    cli, image_folder, tmp_path, args, message
):
    out = tmp_path / "never.safetensors"
    code, _, err = cli("train", image_folder, "--out", out, "--size", SIZE, *args)
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


COUNTING = '''
from aegen.api import Option, hookimpl
import os

def half(clean, *, generator, level=0.5):
    with open(os.environ["AEGEN_TEST_LOG"], "a") as log:
        log.write(f"{len(clean)}\\n")
    return clean * level

def wrong(clean, *, generator):
    return clean[:1]

@hookimpl
def register_objectives(register):
    register("half", half, description="dims the input", options={"level": Option(0.5)})
    register("wrong", wrong, description="returns the wrong shape")
'''


@pytest.mark.slow
def test_a_plugin_objective_is_used_when_named(image_folder, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "aegen-half", "aegen_half", COUNTING)
    log = tmp_path / "calls.log"
    env = {"PYTHONPATH": str(site), "AEGEN_TEST_LOG": str(log)}
    model = tmp_path / "half.safetensors"
    done = run_aegen("train", image_folder, "--out", model, "--set", "width=4", "--set",
                     "depth=2", "--size", SIZE, "--epochs", "2", "--batch-size", "8",
                     "--objective", "half", "-O", "level=0.25", "--seed", "0", env=env)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().split()
    assert calls == ["8"] * (2 * (24 // 8))  # every batch of both epochs (24 images)
    assert read_checkpoint_info(model).objective == {
        "name": "half", "options": {"level": 0.25}, "plugin": "aegen_half"
    }
    listed = run_aegen("plugins", "--json", env=env)
    kinds = {(c["kind"], c["name"]) for c in json.loads(listed.stdout)["components"]}
    assert ("objective", "half") in kinds and ("objective", "denoise") in kinds

    broken = run_aegen("train", image_folder, "--out", tmp_path / "w.safetensors", "--set",
                       "width=4", "--set", "depth=2", "--size", SIZE, "--epochs", "1",
                       "--batch-size", "8", "--objective", "wrong", env=env)
    assert broken.returncode == 1
    assert "objective 'wrong' (plugin 'aegen_half') must return a tensor of shape" in broken.stderr
    assert "Traceback" not in broken.stderr
    assert not (tmp_path / "w.safetensors").exists()
