"""The seed's two measurements: denoising and input representation."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from aegen.checkpoint import load_checkpoint
from aegen.denoising import Corruption, distance, measure_denoising, psnr
from aegen.noise import Noise
from aegen.representation import activation_of, layer_names, represent

from .conftest import run_aegen
from .test_architectures import SMALL, arch_of, small

SHAPE = (3, 16, 16)


class Identity(nn.Module):
    def encode(self, x):
        return x

    def decode(self, h):
        return h

    def forward(self, x):
        return x


class Constant(Identity):
    def forward(self, x):
        return torch.full_like(x, 0.25)


def test_gaussian_corruption_is_the_seeds_formula():
    a = torch.rand(2, *SHAPE)
    got = Corruption("gaussian", alpha=0.3, mu=0.7, sigma=0.2).apply(a, Noise([5, 6], SHAPE))
    expected = 0.3 * a + 0.7 * Noise([5, 6], SHAPE).normal(0.7, 0.2)
    torch.testing.assert_close(got, expected)


def test_blur_and_additive_corruptions():
    a = torch.rand(2, *SHAPE)
    blurred = Corruption("blur", kernel=5, blur_sigma=2.0).apply(a, Noise([0, 1], SHAPE))
    torch.testing.assert_close(blurred, gaussian_blur(a, [5, 5], [2.0, 2.0]))
    noisy = Corruption("additive", sigma=0.5).apply(a, Noise([0, 1], SHAPE))
    expected = (a + Noise([0, 1], SHAPE).normal(0.0, 0.5)).clamp(0, 1)
    torch.testing.assert_close(noisy, expected)
    assert noisy.min() >= 0 and noisy.max() <= 1


def test_metrics_match_hand_computation():
    a = torch.zeros(1, *SHAPE)
    b = torch.full((1, *SHAPE), 0.5)
    pixels = 3 * 16 * 16
    assert distance(b, a).item() == pytest.approx(0.5 * math.sqrt(pixels))
    assert psnr(b, a).item() == pytest.approx(10 * math.log10(1 / 0.25))


def test_identity_model_gives_ratio_one():
    images = torch.rand(5, *SHAPE)
    (result,) = measure_denoising(Identity(), images, [Corruption("gaussian", alpha=0.5)])
    assert result.ratios == pytest.approx([1.0] * 5)
    assert result.closer == [False] * 5
    assert result.psnr_input == pytest.approx(result.psnr_output)


def test_constant_model_gives_the_expected_distance():
    images = torch.rand(4, *SHAPE)
    (result,) = measure_denoising(Constant(), images, [Corruption("additive", sigma=0.1)])
    expected = distance(torch.full_like(images, 0.25), images).tolist()
    assert result.output_distance == pytest.approx(expected)
    summary = result.summary()
    assert summary["share_closer"] == sum(result.closer) / 4
    assert summary["mean_output_distance"] == pytest.approx(sum(expected) / 4)


def test_bad_corruption_settings_are_refused():
    from aegen.errors import UsageError

    for bad, message in [
        (Corruption("salt"), "^`kind` must be one of"),
        (Corruption("gaussian", alpha=1.5), "^`alpha` values"),
        (Corruption("blur", kernel=4), "positive odd"),
    ]:
        with pytest.raises(UsageError, match=message):
            bad.check()


def test_denoise_command_reports_and_draws_rows(tiny_checkpoint, image_folder, tmp_path, cli):
    code, out, err = cli(
        "denoise",
        "-c",
        tiny_checkpoint,
        "--input",
        image_folder,
        "--alpha",
        "0.2,0.8",
        "--limit",
        "10",
        "--show",
        "4",
        "--out",
        tmp_path / "d.png",
        "--json",
        "-q",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["images"] == 10 and [s["alpha"] for s in report["settings"]] == [0.2, 0.8]
    setting = report["settings"][0]
    assert len(setting["per_image"]) == 10
    first = setting["per_image"][0]
    assert first["ratio"] == pytest.approx(first["output_distance"] / first["input_distance"])
    assert setting["share_closer"] == sum(i["closer"] for i in setting["per_image"]) / 10
    with Image.open(tmp_path / "d.png") as grid:  # rows: a, then a_hat and O(a_hat) x 2
        assert grid.size == (2 + 4 * 18, 2 + 5 * 18)


@pytest.mark.slow
def test_denoise_script_prints_a_table(tiny_checkpoint, image_folder):
    result = run_aegen(
        "denoise",
        "-c",
        tiny_checkpoint,
        "-i",
        image_folder,
        "--noise",
        "blur",
        "--kernel",
        "5",
        "--blur-sigma",
        "1.5",
        "--limit",
        "8",
    )
    assert result.returncode == 0, result.stderr
    assert "blur kernel=5 sigma=1.5" in result.stdout and "closer" in result.stdout
    bad = run_aegen("denoise", "-c", tiny_checkpoint, "-i", image_folder, "--alpha", "x")
    assert bad.returncode == 2 and "--alpha expects numbers" in bad.stderr


def test_representation_descent_lowers_its_loss(tiny_checkpoint):
    model = load_checkpoint(tiny_checkpoint).model
    image = torch.rand(*SHAPE)
    found = represent(model, image, layer="encoder", steps=60, lr=0.1, seed=0, record_every=10)
    assert found.losses[-1] < found.losses[0]
    assert found.x.shape == SHAPE
    again = represent(model, image, layer="encoder", steps=60, lr=0.1, seed=0, record_every=10)
    assert torch.equal(found.x, again.x)  # seeded start


@pytest.mark.parametrize("case", list(SMALL))
def test_layer_names_are_valid_for_every_architecture(case):
    model = small(case)
    names = layer_names(model)
    assert names[:2] == ["encoder", "output"]
    x = torch.rand(2, *SHAPE)
    from aegen.models import batch_statistics

    with torch.no_grad(), batch_statistics(model):
        for name in names:
            assert isinstance(activation_of(model, name)(x), torch.Tensor), (arch_of(case), name)


def test_represent_command(tiny_checkpoint, image_folder, tmp_path, cli):
    code, out, _ = cli("represent", "-c", tiny_checkpoint, "--list-layers")
    assert code == 0 and out.splitlines()[:2] == ["encoder", "output"] and "downs.0" in out
    code, out, err = cli(
        "represent",
        "-c",
        tiny_checkpoint,
        "-i",
        image_folder,
        "--limit",
        "2",
        "--steps",
        "20",
        "--seed",
        "1",
        "--compare",
        "--out",
        tmp_path / "r.png",
        "--json",
        "-q",
    )
    assert code == 0, err
    report = json.loads(out)
    assert set(report["results"]) == {"trained", "untrained"}
    assert len(report["results"]["trained"]) == 2
    assert report["results"]["trained"][0]["loss"] != report["results"]["untrained"][0]["loss"]
    with Image.open(tmp_path / "r.png") as grid:  # rows: images; columns: a, trained, untrained
        assert grid.size == (2 + 3 * 18, 2 + 2 * 18)
    code, _, err = cli(
        "represent", "-c", tiny_checkpoint, "-i", image_folder, "--layer", "nope", "-q"
    )
    assert code == 2 and "no layer 'nope'" in err
    result = run_aegen(
        "represent",
        "-c",
        tiny_checkpoint,
        "-i",
        image_folder,
        "--limit",
        "1",
        "--steps",
        "5",
        "--untrained",
        "--seed",
        "0",
        "--out",
        tmp_path / "u.png",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{tmp_path / 'u.png'}\nuntrained: ")
