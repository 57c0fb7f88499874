"""The fast path: each precision runs, stays within its tolerance of fp32, is deterministic, and
`auto` only picks what the machine has natively."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aegen.checkpoint import load_checkpoint
from aegen.defaults import default_checkpoint
from aegen.errors import UsageError
from aegen.precision import TOLERANCE, accelerate, choose, native_bf16, prepare, unwrap

from .conftest import run_aegen


@pytest.fixture(scope="module")
def trained():
    return load_checkpoint(default_checkpoint()).model.train()


def noisy_batch(seed=0):
    return torch.randn(32, 1, 32, 32, generator=torch.Generator().manual_seed(seed)) * 0.2 + 0.7


def test_auto_takes_bf16_only_where_the_device_has_it_natively():
    fast = choose("auto", "cpu")
    native, why = native_bf16("cpu")
    assert fast.precision == ("bf16" if native else "fp32")
    assert why in fast.reason and fast.reason.startswith("auto:")
    assert fast.precision != "fp16"  # never chosen without a measured case for it


def test_unknown_precisions_are_usage_errors():
    with pytest.raises(UsageError, match="--precision must be one of auto, fp32, bf16, fp16"):
        choose("int8", "cpu")


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_each_precision_stays_within_its_tolerance_of_fp32(trained, precision):
    x = noisy_batch()
    with torch.inference_mode():
        reference = trained(x).clone()
        fast = accelerate(trained, choose(precision, "cpu"))
        out = fast(x)
        again = fast(x)
    assert out.shape == x.shape and out.dtype == torch.float32 and out.is_contiguous()
    assert torch.isfinite(out).all()
    assert (out - reference).abs().max().item() <= TOLERANCE[precision]
    assert torch.equal(out, again)  # deterministic per setting
    assert unwrap(fast) is trained


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_encode_and_decode_take_the_same_path(trained, precision):
    fast = accelerate(trained, choose(precision, "cpu"))
    x = noisy_batch(1)
    with torch.inference_mode():
        h = fast.encode(x)
        assert h.dtype == torch.float32
        assert torch.allclose(fast.decode(h), fast(x), atol=TOLERANCE[precision] + 1e-6)


def test_compile_gives_the_eager_result(trained):
    fast = accelerate(trained, choose("fp32", "cpu", compile=True))
    x = noisy_batch(2)
    with torch.inference_mode():
        assert torch.allclose(fast(x), trained(x), atol=1e-4)


class Amplifier(torch.nn.Module):
    """A model whose output turns bf16's rounding of a 1x1 convolution into large changes:
    the case `auto` must catch and run in fp32."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(300.0)
            self.conv.bias.fill_(-150.0)

    def forward(self, x):
        return torch.sigmoid(self.conv(x))


def test_auto_falls_back_to_fp32_for_a_model_that_bf16_would_change(monkeypatch):
    from aegen import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device_type: (True, "native, say"))
    model, fast = prepare(Amplifier(), "cpu", "auto", shape=(1, 8, 8))
    assert fast.precision == "fp32" and "over the tolerance 0.05" in fast.reason
    _, asked = prepare(Amplifier(), "cpu", "bf16", shape=(1, 8, 8))
    assert asked.precision == "bf16" and "OVER the tolerance" in asked.reason  # as asked
    x = torch.rand(4, 1, 8, 8)
    with torch.inference_mode():
        assert torch.allclose(model(x), Amplifier()(x), atol=1e-6)


def test_auto_never_picks_what_the_machine_lacks(trained, monkeypatch):
    from aegen import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device_type: (False, "emulated only"))
    _, fast = prepare(trained, "cpu", "auto", shape=(1, 32, 32))
    assert fast.precision == "fp32" and fast.reason == "auto: fp32, because emulated only"
    monkeypatch.setattr(precision, "native_bf16", lambda device_type: (True, "native"))
    _, fast = prepare(trained, "cpu", "auto", shape=(1, 32, 32))
    assert fast.precision == "bf16" and "within the tolerance" in fast.reason


@pytest.mark.parametrize(
    "flags", [["--precision", "fp32"], ["--precision", "bf16"], ["--precision", "fp16"],
              ["--precision", "auto", "--compile"]]
)
def test_each_setting_generates_the_right_images_and_repeats_them(flags, tmp_path, cli):
    from PIL import Image

    args = ["generate", "--n", "4", "--steps", "5", "--seed", "3", "--json", "-q", *flags]
    code, out, err = cli(*args, "--out-dir", tmp_path / "a", "--out", tmp_path / "a.png")
    assert code == 0, err
    report = json.loads(out)
    wanted = flags[1] if flags[1] != "auto" else choose("auto", "cpu").precision
    assert report["fast_path"]["precision"] == wanted
    assert report["fast_path"]["compile"] == ("--compile" in flags)
    pixels = np.stack([np.asarray(Image.open(i["path"]).convert("L")) for i in report["images"]])
    assert pixels.shape == (4, 32, 32) and pixels.dtype == np.uint8  # the model's 1x32x32
    assert 0 < pixels.std() and pixels.min() >= 0 and pixels.max() <= 255
    code, _, err = cli(*args, "--out-dir", tmp_path / "b", "--out", tmp_path / "b.png")
    assert code == 0, err
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_walk_and_denoise_take_the_fast_path(tmp_path, cli, grey_folder):
    code, out, err = cli("walk", "--n", "4", "--steps", "3", "--start-steps", "2", "--seed", "0",
                         "--precision", "bf16", "--out", tmp_path / "w.png", "--json", "-q")
    assert code == 0, err
    assert json.loads(out)["fast_path"]["precision"] == "bf16"
    code, out, err = cli("denoise", "-i", grey_folder, "--precision", "fp32", "--json", "-q")
    assert code == 0, err
    assert json.loads(out)["fast_path"]["precision"] == "fp32"
    code, _, err = cli("generate", "--precision", "int8", "--out", tmp_path / "x.png")
    assert code == 2 and "--precision must be one of auto, fp32, bf16, fp16" in err


def test_info_device_says_what_auto_picks_and_why():
    done = run_aegen("info", "--device")
    assert done.returncode == 0, done.stderr
    native, why = native_bf16("cpu")
    assert f"native bf16   {'yes' if native else 'no'}: {why}" in done.stdout
    assert f"auto picks    {choose('auto', 'cpu').precision}" in done.stdout
    assert "bf16          max |diff| vs fp32" in done.stdout


def test_walk_stats_run_in_fp32_under_auto_since_bf16_rounding_looks_like_motion(tmp_path, cli):
    args = ["walk", "--noiseless", "--n", "4", "--steps", "3", "--start-steps", "2", "--seed", "0",
            "--stats", "--json", "--out", tmp_path / "w.png", "--force"]
    code, out, err = cli(*args)
    assert code == 0, err
    fast = json.loads(out)["fast_path"]
    assert fast["precision"] == "fp32" and "--stats measures per-step changes" in fast["reason"]
    code, out, err = cli(*args, "--precision", "bf16")
    assert code == 0, err
    assert json.loads(out)["fast_path"]["precision"] == "bf16"
    assert "--stats under bf16" in err


def test_memory_format_can_be_forced_either_way(tmp_path, cli):
    for flag, expected in (("--contiguous", False), ("--channels-last", True)):
        code, out, err = cli("generate", "--n", "2", "--steps", "2", "--seed", "0", "--json",
                             "-q", "--precision", "fp32", flag, "--out", tmp_path / f"{flag}.png")
        assert code == 0, err
        assert json.loads(out)["fast_path"]["channels_last"] is expected
    assert choose("fp32", "cpu", channels_last=False).channels_last is False
    assert choose("bf16", "cpu").channels_last is True  # the measured-faster default


def test_the_probe_leaves_the_model_as_it_was_and_trainable():
    from aegen.precision import deviation

    model = load_checkpoint(default_checkpoint()).model
    deviation(model, choose("bf16", "cpu"), (1, 32, 32), "cpu")
    assert all(not p.is_inference() for p in model.parameters())
    assert all(p.is_contiguous() for p in model.parameters())
    x = noisy_batch()[:4]
    torch.nn.functional.mse_loss(model.train()(x), x).backward()  # still trainable


class FailsUnderAutocast(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 1)

    def forward(self, x):
        if torch.is_autocast_enabled("cpu"):
            raise RuntimeError("no bf16 kernel for this op")
        return self.conv(x)


def test_auto_runs_fp32_when_a_model_fails_at_reduced_precision(monkeypatch):
    from aegen import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device_type: (True, "native"))
    _, fast = prepare(FailsUnderAutocast(), "cpu", "auto", shape=(1, 4, 4))
    assert fast.precision == "fp32" and "no bf16 kernel for this op" in fast.reason
    with pytest.raises(RuntimeError, match="no bf16 kernel"):  # asked for by name: its error
        prepare(FailsUnderAutocast(), "cpu", "bf16", shape=(1, 4, 4))
