"""The `unet` architecture: the seed's U-Net without skip connections, built from config."""

from __future__ import annotations

import pytest
import torch

from aegen.errors import ConfigError, UsageError
from aegen.models import build_model, resolve_config


def unet(channels=3, size=32, **overrides):
    return build_model("unet", resolve_config("unet", overrides, channels, size))


def test_defaults_are_the_seeds_width_and_depth():
    config = resolve_config("unet", {}, 3, 64)
    assert config == {"width": 64, "depth": 4, "duplicate": False, "channels": 3, "size": 64}


@pytest.mark.parametrize("channels", [1, 3])
def test_encode_decode_split_at_the_bottleneck(channels):
    model = unet(channels=channels, size=32, width=8, depth=3).eval()
    x = torch.rand(2, channels, 32, 32)
    h = model.encode(x)
    assert h.shape == (2, 8 * 2**3, 4, 4)
    assert model.decode(h).shape == x.shape
    torch.testing.assert_close(model(x), model.decode(h))


def test_has_no_skip_connections():
    """The decoder sees only the latent: changing the input while keeping h fixed changes
    nothing downstream of it."""
    model = unet(size=16, width=4, depth=2).eval()
    h = model.encode(torch.rand(1, 3, 16, 16))
    assert torch.equal(model.decode(h), model.decode(h.clone()))
    up_inputs = [m.conv[0].in_channels for m in model.ups]
    assert up_inputs == [8, 4]  # the upsampled tensor alone, no concatenated encoder tensor


def test_duplicate_reproduces_the_original_layer_shapes():
    with torch.device("meta"):
        model = unet(size=64, duplicate=True)
    params = sum(p.numel() for p in model.parameters())
    assert 30.9e6 < params < 31.1e6  # "about 31.0 M parameters", like the classic U-Net


@pytest.mark.parametrize("size", [8, 24, 48, 64])
def test_any_size_divisible_by_two_to_the_depth(size):
    model = unet(size=size, width=4, depth=3).eval()
    assert model(torch.rand(1, 3, size, size)).shape == (1, 3, size, size)


@pytest.mark.parametrize("size,message", [
    (20, "divisible by 8; got 20"),
    (4, "halves the image 3 times; a size of 4 allows at most 2"),
])
def test_sizes_it_cannot_take_are_clear_errors(size, message):
    with pytest.raises(ConfigError, match=message):
        unet(size=size, depth=3)


def test_a_depth_too_large_to_compute_is_refused_at_once():
    with pytest.raises(ConfigError, match="`config` depth must be from 1 to 10, got 1000000000"):
        unet(size=64, depth=10**9)  # the limits unet declares, checked before it builds
    from aegen.api import get_component

    build = get_component("architecture", "unet").build  # and its own check, without them
    with pytest.raises(ConfigError, match="depth 1000000000 halves the image 1000000000 times"):
        build({"width": 8, "depth": 10**9, "duplicate": False, "channels": 1, "size": 64})


def test_declared_limits_are_checked_before_building_and_shown():
    with pytest.raises(ConfigError, match="`config` width must be from 1 to 1024, got 5000"):
        resolve_config("unet", {"width": "5000"}, 1, 32)
    with pytest.raises(ConfigError, match="`config` hidden must be from 1 to 65536, got 0"):
        build_model("unet-hidden", {**resolve_config("unet-hidden", {}, 1, 32), "hidden": 0})
    from aegen.api import get_component

    config = get_component("architecture", "unet").as_json(verbose=True)["config"]
    assert config["width"] == {"type": "int", "default": 64, "min": 1, "max": 1024}


def test_config_keys_are_checked_and_typed():
    assert resolve_config("unet", {"width": "16", "depth": "3"}, 3, 32)["width"] == 16
    with pytest.raises(UsageError, match="no config key 'heads'.*depth, duplicate, width"):
        resolve_config("unet", {"heads": "2"}, 3, 32)
    with pytest.raises(ConfigError, match="'width' of 'unet' expects a whole number"):
        resolve_config("unet", {"width": "wide"}, 3, 32)
    with pytest.raises(UsageError, match="set channels with `channels`, not `config`") as caught:
        resolve_config("unet", {"channels": "1"}, 3, 32)
    assert caught.value.parameters == ("channels", "config")  # the CLI names --channels, --set
    with pytest.raises(ConfigError, match="1 or 3 channels"):
        unet(channels=2)


def test_the_skip_unet_concatenates_the_encoders_tensors():
    model = build_model("unet-skip", resolve_config("unet-skip", {"width": 4, "depth": 2}, 1, 16))
    twin = build_model("unet", resolve_config("unet", {"width": 4, "depth": 2, "duplicate": True},
                                              1, 16))
    assert [p.shape for p in model.parameters()] == [p.shape for p in twin.parameters()]
    model.eval()
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        h = model.encode(x)
        first = 4 * 16 * 16  # the full-resolution level: what the last up block concatenates
        changed = h.clone()
        changed[:, :first] += 1
        assert not torch.allclose(model.decode(changed), model.decode(h))  # the skip is used


@pytest.mark.parametrize(("objective", "warned"), [("copy", True), ("denoise", False)])
def test_train_warns_when_a_skip_unet_is_trained_to_copy(cli, tmp_path, objective, warned):
    code, _, err = cli("train", tmp_path / "no-data", "--arch", "unet-skip", "--objective",
                       objective, "--size", "16", "--set", "width=4", "--set", "depth=2",
                       "--device", "cpu", "-o", tmp_path / "m.safetensors")
    assert code == 1 and "no-data: no such file or folder" in err  # refused after the warning
    line = ("aegen: warning: architecture 'unet-skip' can pass its input straight through, "
            "and objective 'copy' trains it on uncorrupted inputs")
    assert (line in err) == warned, err
