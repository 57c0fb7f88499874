"""`aegen train`: image folders in, a resumable checkpoint out after every epoch."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from aegen import fitting, training
from aegen.checkpoint import OPTIMIZER_PREFIX, read_checkpoint_info
from aegen.data import find_images, load_images
from aegen.errors import DataError, UsageError
from aegen.training import train

from .conftest import SIZE, TINY, as_foreground, make_images, run_aegen

FAST = dict(config=TINY, size=SIZE, batch_size=8, device="cpu")


def weights(path):
    return {k: v for k, v in load_file(str(path)).items()}


def test_images_are_found_recursively_and_unreadable_ones_skipped(image_folder):
    paths = find_images(image_folder)
    assert len(paths) == 25  # 24 images (a third nested, some JPEG) + broken.png; no .txt
    assert any(p.parent.name == "nested" for p in paths)
    images = load_images(paths, size=12)
    assert images.images.shape == (24, 3, 12, 12) and images.images.dtype == torch.uint8
    assert [p.name for p, _ in images.skipped] == ["broken.png"]


def test_channels_default_from_the_data(grey_folder, image_folder):
    assert load_images(find_images(grey_folder), 8).channels == 1
    assert load_images(find_images(image_folder), 8).channels == 3
    assert load_images(find_images(image_folder), 8, channels=1).channels == 1


def test_training_lowers_the_loss_and_records_provenance(tiny_checkpoint):
    info = read_checkpoint_info(tiny_checkpoint)
    state = info.training_state
    assert state["epochs_done"] == 2 and len(state["losses"]) == 2
    assert info.provenance["final_loss"] == state["losses"][-1]
    assert any(k.startswith(OPTIMIZER_PREFIX) for k in info.tensors)


def test_same_seed_gives_identical_checkpoints(image_folder, tmp_path):
    a = train(image_folder, tmp_path / "a.safetensors", epochs=1, seed=3, **FAST)
    b = train(image_folder, tmp_path / "b.safetensors", epochs=1, seed=3, **FAST)
    assert a.path.read_bytes() == b.path.read_bytes()
    c = train(image_folder, tmp_path / "c.safetensors", epochs=1, seed=4, **FAST)
    assert c.path.read_bytes() != a.path.read_bytes()


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(image_folder, tmp_path):
    whole = train(image_folder, tmp_path / "whole.safetensors", epochs=3, seed=5, **FAST)
    part = tmp_path / "part.safetensors"
    train(image_folder, part, epochs=1, seed=5, **FAST)
    resumed = train(image_folder, part, epochs=3, resume=part, device="cpu")
    assert resumed.losses == whole.losses
    expected, got = weights(whole.path), weights(part)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert read_checkpoint_info(part).config == read_checkpoint_info(whole.path).config
    from aegen.checkpoint import load_checkpoint

    load_checkpoint(part)  # the resumed file is a valid checkpoint of its own config


def test_cosine_schedule_falls_from_lr_to_zero_and_resumes_exactly(
    image_folder, tmp_path, monkeypatch
):
    assert fitting.learning_rate(1e-3, "cosine", 0, 4) == pytest.approx(1e-3)
    assert fitting.learning_rate(1e-3, "cosine", 2, 4) == pytest.approx(5e-4)
    assert fitting.learning_rate(1e-3, "cosine", 4, 4) == pytest.approx(0, abs=1e-12)
    assert fitting.learning_rate(1e-3, "constant", 3.5, 4) == 1e-3
    whole = train(
        image_folder, tmp_path / "whole.safetensors", epochs=3, seed=5, lr_schedule="cosine",
        **FAST,
    )
    part = tmp_path / "part.safetensors"
    real, calls = fitting.train_epoch, []

    def stop_in_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(fitting, "train_epoch", stop_in_second_epoch)
        train(image_folder, part, epochs=3, seed=5, lr_schedule="cosine", **FAST)
    with pytest.raises(UsageError, match="`lr_schedule` constant differs"):
        train(image_folder, part, epochs=3, resume=part, lr_schedule="constant")
    train(image_folder, part, epochs=3, resume=part)
    assert part.read_bytes() == whole.path.read_bytes()
    state = read_checkpoint_info(part).training_state
    assert state["lr_schedule"] == "cosine" and state["planned_epochs"] == 3
    constant = train(image_folder, tmp_path / "c.safetensors", epochs=3, seed=5, **FAST)
    assert constant.losses != whole.losses


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_each_training_precision_is_recorded_and_deterministic(image_folder, tmp_path, precision):
    first = train(
        image_folder, tmp_path / "a.safetensors", epochs=1, seed=3, precision=precision, **FAST
    )
    again = train(
        image_folder, tmp_path / "b.safetensors", epochs=1, seed=3, precision=precision, **FAST
    )
    assert first.path.read_bytes() == again.path.read_bytes()
    state = read_checkpoint_info(first.path).training_state
    assert state["precision"] == precision and state["channels_last"] is True  # a U-Net on CPU
    assert first.as_json()["fast_path"]["precision"] == precision
    assert all(math.isfinite(loss) for loss in first.losses)
    resumed = train(image_folder, first.path, epochs=2, resume=first.path)  # keeps precision
    assert read_checkpoint_info(resumed.path).training_state["precision"] == precision
    plain = train(image_folder, tmp_path / "nchw.safetensors", epochs=1, seed=3,
                  precision=precision, channels_last=False, **FAST)
    assert read_checkpoint_info(plain.path).training_state["channels_last"] is False
    again = train(image_folder, plain.path, epochs=2, resume=plain.path)  # keeps the layout
    assert read_checkpoint_info(again.path).training_state["channels_last"] is False


def test_ema_saves_the_average_as_the_model_and_resumes_exactly(
    image_folder, tmp_path, monkeypatch
):
    from aegen.checkpoint import RAW_PREFIX, load_checkpoint, weights_only

    whole = train(image_folder, tmp_path / "whole.safetensors", epochs=2, seed=5, ema=0.9,
                  **FAST)
    info = read_checkpoint_info(whole.path)
    assert info.training_state["ema"] == 0.9 and info.provenance["ema"] == 0.9
    saved = weights(whole.path)
    averaged = {k: v for k, v in saved.items() if not k.startswith(("optimizer/", RAW_PREFIX))}
    raw = {k[len(RAW_PREFIX):]: v for k, v in saved.items() if k.startswith(RAW_PREFIX)}
    assert raw.keys() == averaged.keys()
    moved = [k for k in raw if raw[k].is_floating_point() and not torch.equal(raw[k], averaged[k])]
    assert moved  # the model is the average, not the last step's weights
    model = load_checkpoint(whole.path).model  # the raw copies are not part of the model
    assert torch.equal(model.state_dict()[moved[0]], averaged[moved[0]])
    plain = train(image_folder, tmp_path / "plain.safetensors", epochs=2, seed=5, **FAST)
    assert plain.losses == whole.losses  # the average does not change training itself
    plain_weights = weights(plain.path)
    assert all(torch.equal(raw[k], plain_weights[k]) for k in raw)

    part = tmp_path / "part.safetensors"
    real, calls = fitting.train_epoch, []

    def stop_in_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(fitting, "train_epoch", stop_in_second_epoch)
        train(image_folder, part, epochs=2, seed=5, ema=0.9, **FAST)
    with pytest.raises(UsageError, match="`ema` 0.5 differs"):
        train(image_folder, part, epochs=2, resume=part, ema=0.5)
    train(image_folder, part, epochs=2, resume=part)
    assert part.read_bytes() == whole.path.read_bytes()
    slim = weights_only(whole.path, tmp_path / "slim.safetensors")
    assert not any(k.startswith(RAW_PREFIX) for k in weights(slim))
    with pytest.raises(UsageError, match="`ema` must be between 0 and 1"):
        train(image_folder, tmp_path / "x.safetensors", epochs=1, ema=1.5, **FAST)


def test_fp16_training_is_refused_in_words(image_folder, tmp_path):
    with pytest.raises(UsageError, match="fp16 training needs gradient scaling"):
        train(image_folder, tmp_path / "m.safetensors", epochs=1, precision="fp16", **FAST)


@pytest.mark.slow
def test_compiled_training_learns_what_eager_training_learns(image_folder, tmp_path):
    eager = train(image_folder, tmp_path / "e.safetensors", epochs=1, seed=3, precision="fp32",
                  **FAST)
    fast = train(image_folder, tmp_path / "c.safetensors", epochs=1, seed=3, precision="fp32",
                 compile=True, **FAST)
    assert fast.losses == pytest.approx(eager.losses, rel=1e-3)
    a, b = weights(eager.path), weights(fast.path)
    assert a.keys() == b.keys()  # saved from the model itself, not the compiled wrapper
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-3) for k in a)


def test_interrupted_training_keeps_the_last_finished_epoch(
    image_folder, tmp_path, monkeypatch, capsys
):
    real = fitting.train_epoch
    calls = []

    def interrupt_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(fitting, "train_epoch", interrupt_second_epoch)
    out = tmp_path / "m.safetensors"
    with pytest.raises(KeyboardInterrupt):
        train(image_folder, out, epochs=3, seed=1, reporter=training.Reporter(), **FAST)
    assert f"{out} holds epoch 1; continue with `resume`" in capsys.readouterr().err
    assert read_checkpoint_info(out).training_state["epochs_done"] == 1
    monkeypatch.setattr(fitting, "train_epoch", real)
    assert train(image_folder, out, epochs=2, resume=out, device="cpu").epochs == 2


def test_set_changes_the_config(image_folder, tmp_path, cli):
    out = tmp_path / "m.safetensors"
    code, stdout, err = cli(
        "train",
        image_folder,
        "--size",
        "16",
        "--set",
        "width=6",
        "--set",
        "depth=1",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--seed",
        "0",
        "--out",
        out,
        "-q",
    )
    assert code == 0, err
    assert stdout.strip() == str(out)
    config = read_checkpoint_info(out).config
    assert (config["width"], config["depth"]) == (6, 1)


def test_existing_output_is_not_overwritten_without_force(image_folder, tmp_path, cli):
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"precious")
    code, _, err = cli("train", image_folder, "--out", out, "--size", "16", "-q")
    assert code == 2 and "exists; use --force" in err
    assert out.read_bytes() == b"precious"
    code, _, err = cli(
        "train",
        image_folder,
        "--out",
        out,
        "--size",
        "16",
        "--set",
        "width=4",
        "--set",
        "depth=2",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--force",
        "-q",
    )
    assert code == 0, err
    assert out.read_bytes() != b"precious"


def test_refusals(tmp_path, image_folder, cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="no images found"):
        train(empty, tmp_path / "m.safetensors", **FAST)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_bytes(b"not a png")
    (junk / "b.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="none of the 2 image file"):
        train(junk, tmp_path / "m.safetensors", **FAST)
    few = tmp_path / "few"
    make_images(few, 3)
    with pytest.raises(UsageError, match="only 3 readable image.*`batch_size` 8"):
        train(few, tmp_path / "m.safetensors", **FAST)
    cases = [
        (["train", empty], 1, "no images found"),
        (["train", junk], 1, "none of the 2 image file"),
        (["train", tmp_path / "absent"], 1, "no such file or folder"),
        (["train", image_folder, "--size", "20", "--set", "depth=3"], 2, "divisible by 8"),
        (["train", image_folder, "--set", "bogus=1"], 2, "no config key 'bogus'"),
        (["train", image_folder, "--set", "width"], 2, "--set expects KEY=VALUE"),
        (["train", image_folder, "--arch", "nope"], 2, "unknown architecture 'nope'"),
        (["train", image_folder, "--channels", "2"], 2, "--channels must be 1 or 3"),
        (["train", image_folder, "--epochs", "0"], 2, "--epochs must be at least 1"),
        (
            [
                "train",
                image_folder,
                "--device",
                "cuda:0" if not torch.cuda.is_available() else "tpu",
            ],
            2,
            "--device" if not torch.cuda.is_available() else "unknown device",
        ),
    ]
    for args, code, message in cases:
        got, out, err = cli(*args, "--out", tmp_path / "never.safetensors", "-q")
        assert (got, message) == (code, message) and message in err, (args, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert not (tmp_path / "never.safetensors").exists()


def test_size_error_comes_before_reading_any_data(tmp_path, monkeypatch, image_folder):
    monkeypatch.setattr(training, "read_training_data", lambda *a, **k: pytest.fail("read data"))
    with pytest.raises(UsageError, match="divisible by 4"):
        train(image_folder, tmp_path / "m.safetensors", config=TINY, size=18)


def test_resume_refuses_conflicting_settings(tiny_checkpoint, image_folder, tmp_path):
    with pytest.raises(UsageError, match="`size` 32 differs"):
        train(image_folder, tmp_path / "m.safetensors", resume=tiny_checkpoint, size=32, epochs=3)
    with pytest.raises(UsageError, match="already has 2 epochs"):
        train(image_folder, tmp_path / "m.safetensors", resume=tiny_checkpoint, epochs=2)


@pytest.mark.slow
def test_train_script_end_to_end(image_folder, tmp_path):
    out = tmp_path / "model.safetensors"
    result = run_aegen(
        "train",
        image_folder,
        "--size",
        "16",
        "--set",
        "width=4",
        "--set",
        "depth=2",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--seed",
        "2",
        "--out",
        out,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["checkpoint"] == str(out) and report["epochs"] == 1 and report["images"] == 24
    assert report["skipped"] == 1 and report["seed"] == 2
    assert "epoch 1/1" in result.stderr and "skipped" in result.stderr
    assert "\x1b[" not in result.stderr  # no live bar or colour when stderr is not a terminal


@pytest.mark.slow
def test_ctrl_c_during_training_keeps_a_resumable_checkpoint(image_folder, tmp_path):
    import signal
    import subprocess

    from .conftest import aegen_script

    out = tmp_path / "m.safetensors"
    proc = subprocess.Popen(
        [
            aegen_script(),
            "train",
            str(image_folder),
            "--size",
            "16",
            "--set",
            "width=4",
            "--set",
            "depth=2",
            "--batch-size",
            "8",
            "--epochs",
            "100000",
            "--seed",
            "0",
            "--out",
            str(out),
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=as_foreground,
    )
    for line in proc.stderr:  # wait for the first finished epoch
        if line.startswith("epoch 1/"):
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in rest and "--resume" in rest and "Traceback" not in rest
    assert read_checkpoint_info(out).training_state["epochs_done"] >= 1
    assert not [p for p in tmp_path.iterdir() if p.name != "m.safetensors"]  # no temp files
