"""The fast path: each precision runs, stays within its tolerance of fp32, is deterministic, and
`auto` runs what measured fastest here, never bf16 where the machine lacks it natively."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aegen.checkpoint import load_checkpoint
from aegen.defaults import default_checkpoint
from aegen.errors import UsageError
from aegen.precision import TOLERANCE, accelerate, choose, native_bf16, prepare

from .conftest import run_aegen


@pytest.fixture(autouse=True)
def own_measurements(monkeypatch, tmp_path):
    """Each test measures afresh: no choice remembered from another test."""
    monkeypatch.setenv("AEGEN_CACHE_DIR", str(tmp_path / "cache"))


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
    with pytest.raises(UsageError, match="^`precision` must be one of auto, fp32, bf16, fp16"):
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
    assert fast.inner is trained


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_encode_and_decode_take_the_same_path(trained, precision):
    fast = accelerate(trained, choose(precision, "cpu"))
    x = noisy_batch(1)
    with torch.inference_mode():
        h = fast.encode(x)
        assert h.dtype == torch.float32
        assert torch.allclose(fast.decode(h), fast(x), atol=TOLERANCE[precision] + 1e-6)


@pytest.mark.slow
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


def timings(**ms):
    """A stand-in for the timing probe: each way (its label, underscores for spaces and
    dashes) takes the given milliseconds; records which ways were timed."""
    timed: list[list[str]] = []

    def time_paths(model, paths, *args):
        from aegen.precision import _label

        labels = [_label(p) for p in paths]
        timed.append(labels)
        return [[ms[label.replace(" ", "_").replace("-", "_")] / 1000] * 3 for label in labels]

    return time_paths, timed


def test_auto_never_tries_bf16_where_the_machine_lacks_it(trained, monkeypatch):
    from aegen import precision

    probe, timed = timings(fp32_NCHW=10, fp32_channels_last=12, bf16_NCHW=1, bf16_channels_last=1)
    monkeypatch.setattr(precision, "_time_paths", probe)
    monkeypatch.setattr(precision, "native_bf16", lambda device_type: (False, "emulated only"))
    _, fast = prepare(trained, "cpu", "auto", shape=(1, 32, 32), batch_size=4)
    assert timed == [["fp32 NCHW", "fp32 channels-last"]]
    assert (fast.precision, fast.channels_last) == ("fp32", False)
    assert fast.reason.startswith("auto: fp32 NCHW at batch 4, fastest here")
    assert "bf16 not tried: emulated only" in fast.reason


@pytest.mark.parametrize(
    "ms, expected",
    [
        # bf16 is native but measured slower here: the seed's fp32 NCHW stays
        ({"fp32_NCHW": 10, "fp32_channels_last": 11, "bf16_NCHW": 14, "bf16_channels_last": 12},
         ("fp32", False)),
        # faster, but by less than the margin: not worth leaving the plain way
        ({"fp32_NCHW": 10, "fp32_channels_last": 9.8, "bf16_NCHW": 14, "bf16_channels_last": 12},
         ("fp32", False)),
        ({"fp32_NCHW": 10, "fp32_channels_last": 7, "bf16_NCHW": 14, "bf16_channels_last": 12},
         ("fp32", True)),
        ({"fp32_NCHW": 10, "fp32_channels_last": 7, "bf16_NCHW": 9, "bf16_channels_last": 4},
         ("bf16", True)),
    ],
)
def test_auto_runs_what_measured_fastest_and_never_what_measured_slower(
        trained, monkeypatch, ms, expected):
    from aegen import precision

    probe, timed = timings(**ms)
    monkeypatch.setattr(precision, "_time_paths", probe)
    monkeypatch.setattr(precision, "native_bf16", lambda device_type: (True, "native"))
    _, fast = prepare(trained, "cpu", "auto", shape=(1, 32, 32), batch_size=8)
    assert timed == [["fp32 NCHW", "fp32 channels-last", "bf16 NCHW", "bf16 channels-last"]]
    assert (fast.precision, fast.channels_last) == expected
    assert "within bf16's tolerance" in fast.reason


def test_auto_remembers_what_it_measured_so_reruns_choose_alike(trained, monkeypatch, tmp_path):
    from aegen import precision

    probe, timed = timings(fp32_NCHW=10, fp32_channels_last=5)
    monkeypatch.setattr(precision, "_time_paths", probe)
    monkeypatch.setattr(precision, "native_bf16", lambda device_type: (False, "emulated"))
    _, first = prepare(trained, "cpu", "auto", shape=(1, 32, 32), batch_size=4)
    _, again = prepare(trained, "cpu", "auto", shape=(1, 32, 32), batch_size=4)
    assert len(timed) == 1 and first.channels_last and again.channels_last
    assert "measured now" in first.reason and f"kept in {tmp_path / 'cache'}" in again.reason
    _, other_batch = prepare(trained, "cpu", "auto", shape=(1, 32, 32), batch_size=64)
    assert len(timed) == 2  # another batch size is another measurement
    (tmp_path / "cache" / "fastpath.json").write_text("{not json")  # a damaged cache: measured anew
    _, anew = prepare(trained, "cpu", "auto", shape=(1, 32, 32), batch_size=4)
    assert len(timed) == 3 and "measured now" in anew.reason


def test_a_way_must_win_clearly_and_round_by_round_to_replace_the_plain_one():
    from aegen.speedprobe import fastest

    assert fastest([[1.0, 1.0, 1.0], [0.5, 0.5, 0.5]]) == 1
    assert fastest([[1.0, 1.0, 1.0], [0.97, 0.97, 0.97]]) == 0  # within the 5% margin
    # one lucky round is not enough: faster at best, but slower in two rounds of three
    assert fastest([[1.0, 1.0, 1.0], [0.8, 1.2, 1.1]]) == 0
    assert fastest([[1.0, 1.0, 1.0], [1.2, 1.1, 1.3]]) == 0
    assert fastest([[1.0] * 4, [1.5] * 4, [0.7, 0.7, 0.7, 1.1]]) == 2  # 3 wins of 4


def test_a_kept_baseline_says_why_when_another_way_had_the_lower_best_round(trained,
                                                                           monkeypatch):
    from aegen import precision

    def time_paths(model, paths, *args):  # channels-last: one lucky round, slower in the rest
        return [[0.010, 0.010, 0.010, 0.010], [0.008, 0.012, 0.011, 0.012]]

    monkeypatch.setattr(precision, "_time_paths", time_paths)
    monkeypatch.setattr(precision, "native_bf16", lambda device_type: (False, "emulated"))
    _, fast = prepare(trained, "cpu", "auto", shape=(1, 32, 32), batch_size=4)
    assert not fast.channels_last
    assert "fastest here" not in fast.reason
    assert "kept: no other way was clearly faster here (fp32 NCHW 10.00 ms, fp32 channels-last " \
           "8.00 ms, best rounds; another must be 5% faster and win 3 rounds of 4" in fast.reason


def test_the_real_probe_times_every_way_on_the_model():
    from aegen.precision import FastPath, _time_paths

    trained = load_checkpoint(default_checkpoint()).model
    ways = [FastPath("fp32", cl, False, "cpu", "") for cl in (False, True)]
    rounds = _time_paths(trained, ways, (1, 32, 32), "cpu", False, 2)
    assert len(rounds) == 2 and all(len(r) >= 3 and all(0 < s < 60 for s in r) for r in rounds)
    assert all(p.is_contiguous() for p in trained.parameters())  # the model itself untouched


def test_training_auto_measures_the_training_step(monkeypatch, image_folder, tmp_path):
    from aegen import precision
    from aegen.training import train

    calls = []

    def probe(make_model, paths, shape, device, batch):
        calls.append(([precision._label(p) for p in paths], shape, batch))
        return [[1.0] * 3, [0.5] * 3][: len(paths)]

    monkeypatch.setattr(precision, "_time_training", probe)
    monkeypatch.setattr(precision, "native_bf16", lambda device_type: (False, "emulated"))
    result = train(image_folder, tmp_path / "m.safetensors", config={"width": 4, "depth": 2},
                   size=16, epochs=1, batch_size=8, seed=0, device="cpu")
    assert calls == [(["fp32 NCHW", "fp32 channels-last"], (3, 16, 16), 8)]
    from aegen.checkpoint import read_checkpoint_info

    state = read_checkpoint_info(tmp_path / "m.safetensors").training_state
    assert state["precision"] == "fp32" and state["channels_last"] is True
    assert result is not None


def test_the_cpu_is_read_from_the_flags_the_system_lists():
    from aegen.hardware import Cpu, _cpuinfo

    text = "processor\t: 0\nmodel name\t: Some Xeon\nflags\t\t: fpu avx2 avx512f\n\n"
    name, flags = _cpuinfo(text)
    assert name == "Some Xeon" and {"avx2", "avx512f"} <= flags
    # AVX-512 alone only emulates bf16 (what torch's mkldnn probe also calls "supported")
    assert Cpu(name, "x86_64", flags).native_bf16()[0] is False
    assert Cpu(name, "x86_64", flags | {"avx512_bf16"}).native_bf16()[0] is True
    assert Cpu(name, "x86_64", flags | {"amx_bf16"}).native_bf16()[0] is True
    assert Cpu("Neoverse", "aarch64", frozenset({"asimd", "bf16"})).native_bf16()[0] is True
    assert Cpu("unknown", "x86_64", None).native_bf16()[0] is False


@pytest.mark.parametrize(
    "flags", [["--precision", "fp32"], ["--precision", "bf16"], ["--precision", "fp16"],
              pytest.param(["--precision", "auto", "--compile"], marks=pytest.mark.slow)]
)
def test_each_setting_generates_the_right_images_and_repeats_them(flags, tmp_path, cli):
    from PIL import Image

    args = ["generate", "--n", "4", "--steps", "5", "--seed", "3", "--json", "-q", *flags]
    code, out, err = cli(*args, "--out-dir", tmp_path / "a", "--out", tmp_path / "a.png")
    assert code == 0, err
    report = json.loads(out)
    if flags[1] == "auto":
        assert report["fast_path"]["reason"].startswith("auto: ")
        assert report["fast_path"]["precision"] in ("fp32", "bf16")
    else:
        assert report["fast_path"]["precision"] == flags[1]
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


@pytest.mark.slow
def test_info_device_tells_the_truth_about_the_cpu_and_what_auto_picks(tmp_path):
    from aegen.hardware import cpu

    done = run_aegen("info", "--device", "--batch-size", "4", "-q",
                     env={"AEGEN_CACHE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    native, why = native_bf16("cpu")
    assert f"cpu           {cpu().name} (flags: " in done.stdout
    assert f"native bf16   {'yes' if native else 'no'}: {why}" in done.stdout
    assert "auto picks    fp32 NCHW at batch 4" in done.stdout or \
        "auto picks    fp32 channels-last at batch 4" in done.stdout or native
    assert "bf16          max |diff| vs fp32" in done.stdout
    assert f"measurements  {tmp_path}" in done.stdout
    assert (tmp_path / "fastpath.json").exists()
    report = json.loads(run_aegen("info", "--device", "--json", "-q",
                                  env={"AEGEN_CACHE_DIR": str(tmp_path)}).stdout)
    assert report["batch"] == 16 and report["native_bf16"] is native
    assert report["auto"]["reason"].startswith("auto: ")


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
