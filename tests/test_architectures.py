"""The seed's architecture family: each one trains, saves, loads and samples the same way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from aegen.checkpoint import load_checkpoint
from aegen.errors import ConfigError, UsageError
from aegen.models import batch_statistics, build_model, resolve_config
from aegen.plugins import get_registry
from aegen.sampling import generate
from aegen.training import train

from .conftest import make_photos

ROOT = Path(__file__).resolve().parents[1]
FLOWERS = ROOT.parent / "shared" / "data" / "flowers17" / "train"

# Small configs of every architecture, so each test runs in about a second.
SMALL = {
    "unet": {"width": 4, "depth": 2},
    "unet-wide": {"width": 4, "depth": 2},
    "unet-deep": {"width": 4, "depth": 2},
    "unet-deep-wide": {"width": 4, "depth": 2},
    "unet-hidden": {"width": 4, "depth": 2, "code": 8, "hidden": 16, "squeeze": 8},
    "unet-skip": {"width": 4, "depth": 2},
    "mlp": {},
    "attention-unet": {"width": 8, "depth": 2, "heads": 2, "dim": 8, "groups": 4},
    "attention": {"features": 8, "heads": 2, "dim": 8},
    "attention-dot": {"kind": "dot", "features": 8, "heads": 2, "dim": 8},
    "attention-dot-alone": {"kind": "dot", "convs": False, "heads": 2, "dim": 8},
}
LATENT = {  # latent shape at 16x16 RGB for the SMALL configs
    "unet": (16, 4, 4),
    "unet-hidden": (8,),
    "unet-skip": (4 * 16 * 16 + 8 * 8 * 8 + 16 * 4 * 4,),  # every level, flattened
    "mlp": (round(1.3 * 3 * 16 * 16),),
    "attention-unet": (32, 4, 4),
    "attention": (8, 16, 16),
    "attention-dot": (8, 16, 16),
    "attention-dot-alone": (3, 16, 16),
}


def arch_of(case: str) -> str:
    return "attention" if case.startswith("attention-dot") else case


def small(case: str, channels: int = 3, size: int = 16):
    arch = arch_of(case)
    return build_model(arch, resolve_config(arch, SMALL[case], channels, size))


@pytest.fixture(scope="module")
def few_flowers(tmp_path_factory) -> Path:
    """32 real flower photographs, linked (not copied) from ../shared/data where that folder is
    (CI); elsewhere (a fresh clone) 32 made-up flower photographs of the same size."""
    folder = tmp_path_factory.mktemp("flowers")
    if not FLOWERS.is_dir():
        make_photos(folder, 32)
        return folder
    photos = sorted(FLOWERS.rglob("*.jpg"))[::22][:32]
    assert len(photos) == 32, f"expected the flowers17 data under {FLOWERS}"
    for photo in photos:
        (folder / f"{photo.parent.name}-{photo.name}").symlink_to(photo)
    return folder


def test_every_registered_architecture_is_covered():
    assert set(get_registry().architectures) == {arch_of(c) for c in SMALL}


@pytest.mark.parametrize("case", list(SMALL))
@pytest.mark.parametrize("channels", [1, 3])
def test_encode_then_decode_equals_forward(case, channels):
    model = small(case, channels)
    x = torch.rand(4, channels, 16, 16)
    with torch.no_grad(), batch_statistics(model):
        h = model.encode(x)
        torch.testing.assert_close(model.decode(h), model(x))
    assert model(x).shape == x.shape
    if channels == 3 and case in LATENT:
        assert tuple(h.shape[1:]) == LATENT[case]


@pytest.mark.parametrize("case", list(SMALL))
def test_one_epoch_on_real_images_lowers_the_loss_and_round_trips(case, few_flowers, tmp_path):
    arch = arch_of(case)
    out = tmp_path / f"{case}.safetensors"
    result = train(
        few_flowers,
        out,
        architecture=arch,
        config=SMALL[case],
        size=16,
        epochs=1,
        batch_size=8,
        lr=3e-3,
        seed=0,
        device="cpu",
    )
    from aegen.data import find_images, load_images

    pixels = load_images(find_images(few_flowers), 16).images.float() / 255

    def loss(model):
        with torch.no_grad(), batch_statistics(model):
            return torch.nn.functional.mse_loss(model(pixels), pixels).item()

    with torch.random.fork_rng():
        torch.manual_seed(0)
        untrained = build_model(arch, result.config)
    trained = load_checkpoint(out).model
    assert loss(trained) < loss(untrained)
    again = tmp_path / "again.safetensors"
    from aegen.checkpoint import save_checkpoint

    save_checkpoint(again, trained, architecture=arch, config=result.config)
    reloaded = load_checkpoint(again).model.state_dict()
    assert all(torch.equal(v, reloaded[k]) for k, v in trained.state_dict().items())
    images = generate(trained, shape=(3, 16, 16), n=4, steps=3, seed=0).images
    assert images.shape == (4, 3, 16, 16) and torch.isfinite(images).all()


def test_presets_are_named_configs_of_unet():
    for preset, changes in [
        ("unet-wide", {"width": 128}),
        ("unet-deep", {"depth": 5}),
        ("unet-deep-wide", {"width": 128, "depth": 5}),
    ]:
        a = resolve_config(preset, {}, 3, 64)
        b = resolve_config("unet", changes, 3, 64)
        assert a == b
        with torch.device("meta"):
            shapes_a = {k: v.shape for k, v in build_model(preset, a).state_dict().items()}
            shapes_b = {k: v.shape for k, v in build_model("unet", b).state_dict().items()}
        assert shapes_a == shapes_b


def test_mlp_registers_and_saves_every_hidden_layer():
    model = small("mlp")
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 7  # input, 5 hidden, output
    width = round(1.3 * 3 * 16 * 16)
    assert sum(1 for m in linears if m.weight.shape == (width, width)) == 5
    assert len([k for k in model.state_dict() if k.endswith("weight")]) == 8  # + batch norm


def test_unet_hidden_sizes_follow_the_image_size():
    for size in (16, 32, 64):
        model = build_model(
            "unet-hidden", resolve_config("unet-hidden", SMALL["unet-hidden"], 3, size)
        )
        with torch.no_grad(), batch_statistics(model):
            assert model.encode(torch.rand(2, 3, size, size)).shape == (2, 8)


@pytest.mark.parametrize(
    "case,size,message",
    [
        ("unet", 18, "divisible by 4"),
        ("unet-hidden", 20, "divisible by 8"),
        ("attention-unet", 18, "divisible by 4"),
    ],
)
def test_sizes_an_architecture_cannot_take_are_clear_errors(case, size, message, cli, tmp_path):
    with pytest.raises(ConfigError, match=message):
        small(case, size=size)
    args = [f"{k}={v}" for k, v in SMALL[case].items()]
    sets = [x for a in args for x in ("--set", a)]
    code, _, err = cli(
        "train",
        tmp_path,
        "--arch",
        case,
        *sets,
        "--size",
        size,
        "--out",
        tmp_path / "m.safetensors",
    )
    assert code == 2 and message in err


def test_dot_attention_refuses_sizes_whose_attention_matrix_cannot_fit():
    with pytest.raises(
        ConfigError,
        match=r"dot-product attention on a 256x256 grid needs about "
        r".* GiB.*smaller `size` or `config` kind=linear",
    ):
        build_model("attention", resolve_config("attention", {"kind": "dot"}, 3, 256))
    build_model("attention", resolve_config("attention", {"kind": "linear"}, 3, 256))


def test_mlp_too_large_for_memory_is_refused():
    with pytest.raises(ConfigError, match="B parameters and needs about .* GiB to train"):
        build_model("mlp", resolve_config("mlp", {}, 3, 128))


def test_batchnorm1d_with_one_image_per_batch_is_a_clear_error():
    model = small("mlp")
    with pytest.raises(UsageError, match="BatchNorm1d.*batch_size.*running_stats"):
        generate(model, shape=(3, 16, 16), n=3, batch_size=2, steps=2)
    ok = generate(model, shape=(3, 16, 16), n=1, steps=2, running_stats=True)
    assert ok.images.shape == (1, 3, 16, 16)


def documented_counts() -> dict[tuple[str, int], int]:
    """Parameter counts from the table in docs/architectures.md."""
    text = (ROOT / "docs" / "architectures.md").read_text()
    counts = {}
    for row in re.finditer(r"^\| `([^`]+)` \| ([\d,]+)[^|]* \| ([\d,]+)[^|]* \|", text, re.M):
        for size, cell in ((32, row.group(2)), (64, row.group(3))):
            counts[(row.group(1), size)] = int(cell.replace(",", ""))
    return counts


def test_parameter_counts_match_the_documented_ones():
    counts = documented_counts()
    variants = {
        "attention kind=linear": ("attention", {}),
        "attention kind=dot": ("attention", {"kind": "dot"}),
        "attention kind=dot convs=false": ("attention", {"kind": "dot", "convs": False}),
    }
    names = [n for n in get_registry().architectures if n != "attention"] + list(variants)
    for name in names:
        arch, config = variants.get(name, (name, {}))
        for size in (32, 64):
            assert (name, size) in counts, f"docs/architectures.md lacks {name} at {size}"
            try:
                with torch.device("meta"):
                    model = build_model(arch, resolve_config(arch, config, 3, size))
                count = sum(p.numel() for p in model.parameters())
            except ConfigError:  # too large for this machine: the plugin's own formula
                from aegen_builtins.mlp import parameter_count

                assert arch == "mlp"
                inputs = 3 * size * size
                count = parameter_count(inputs, round(1.3 * inputs), 5)
            assert count == counts[(name, size)], (name, size)
