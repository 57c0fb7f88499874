"""The `ddim` sampler: the schedule sampler's deterministic twin (docs/samplers.md)."""

from __future__ import annotations

import pytest
import torch

from aegen.api import Noise, get_schedule
from aegen.checkpoint import load_checkpoint
from aegen.errors import ConfigError
from aegen.sampling import generate, sample

from .conftest import run_aegen

SHAPE = (3, 16, 16)


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint).model


class Recorder(torch.nn.Module):
    """A perfect denoiser of one image: it always answers `image`, and keeps its inputs."""

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.image, self.inputs = image, []

    def forward(self, a):
        self.inputs.append(a.clone())
        return self.image.expand_as(a).clone()


def test_ddim_matches_a_hand_written_loop(model):
    """a_0 ~ N(mu, sigma) at level (c_0, d_0); g_n = model(a_n); the noise the input carried,
    e_n = (a_n - c_n g_n) / d_n, is reused: a_{n+1} = c_{n+1} g_n + d_{n+1} e_n."""
    steps, mu, sigma = 5, 0.6, 0.25
    frames = list(sample(model, "ddim", shape=SHAPE, n=3, steps=steps, seed=7,
                         options={"mu": mu, "sigma": sigma, "schedule": "cosine", "eta": 0.0}))
    assert len(frames) == steps
    weights = get_schedule("cosine")
    noise = Noise([7, 8, 9], SHAPE)
    with torch.inference_mode():
        from aegen.models import batch_statistics

        with batch_statistics(model):
            a = noise.normal(mu, sigma)
            for n in range(steps):
                g = model(a)
                # 1 / d amplifies a pass's rounding (the sampler may run channels-last, this
                # loop contiguous: 4e-7 a pass) into the next input; a wrong update is off by ~0.1.
                torch.testing.assert_close(frames[n], g, atol=2e-3, rtol=1e-3)
                c, d = weights(n, steps)
                e = (a - c * g) / d
                c, d = weights(n + 1, steps)
                a = c * g + d * e


def test_a_perfect_denoiser_walks_the_straight_path_from_its_first_noise():
    """With eta = 0 no noise is drawn after the first: every input is c_n x + d_n a_0."""
    image = torch.rand(1, *SHAPE)
    recorder = Recorder(image)
    list(sample(recorder, "ddim", shape=SHAPE, n=2, steps=6, seed=0, options={"eta": 0.0}))
    first = recorder.inputs[0]
    for n, a in enumerate(recorder.inputs):
        c, d = get_schedule("linear")(n, 6)
        torch.testing.assert_close(a, c * image + d * first, atol=1e-5, rtol=1e-5)


def test_eta_one_draws_fresh_noise_of_the_same_law():
    image = torch.zeros(1, 1, 64, 64)
    recorder = Recorder(image)
    list(sample(recorder, "ddim", shape=(1, 64, 64), n=4, steps=3, seed=0,
                options={"eta": 1.0, "mu": 0.7, "sigma": 0.2}))
    first, second = recorder.inputs[0], recorder.inputs[1] / get_schedule("linear")(1, 3)[1]
    assert not torch.allclose(first, second)
    assert abs(second.mean().item() - 0.7) < 0.01 and abs(second.std().item() - 0.2) < 0.01


def test_ddim_is_reproducible_and_checks_eta(model):
    one = generate(model, "ddim", shape=SHAPE, n=2, steps=4, seed=3).images
    two = generate(model, "ddim", shape=SHAPE, n=2, steps=4, seed=3).images
    assert torch.equal(one, two)
    with pytest.raises(ConfigError, match="option 'eta' of sampler 'ddim' must be at most 1"):
        generate(model, "ddim", shape=SHAPE, steps=1, options={"eta": 2})


def test_generate_with_ddim_through_the_console_script(tiny_checkpoint, tmp_path):
    out = tmp_path / "grid.png"
    done = run_aegen("generate", "-c", str(tiny_checkpoint), "--sampler", "ddim", "--steps", "3",
                     "-n", "4", "--seed", "0", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 0
    bad = run_aegen("generate", "-c", str(tiny_checkpoint), "--sampler", "ddim", "-O", "eta=-1",
                    "--out", str(tmp_path / "no.png"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "eta" in bad.stderr
    assert not (tmp_path / "no.png").exists()
