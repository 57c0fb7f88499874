"""Architecture plugins `attention-unet` and `attention`: the article's attention models."""

from aegen.api import ConfigError, hookimpl

from .memory import gib, physical_memory

UNET_DEFAULTS = {"width": 64, "depth": 3, "heads": 4, "dim": 32, "groups": 8}
AE_DEFAULTS = {"kind": "linear", "convs": True, "features": 64, "heads": 4, "dim": 32}
_HEADS = {"heads": (1, 64), "dim": (1, 1024)}
UNET_LIMITS = {"width": (1, 1024), "depth": (1, 10), "groups": (1, 1024), **_HEADS}
AE_LIMITS = {"features": (1, 1024), **_HEADS}


def _check_channels(name: str, channels: int) -> None:
    if channels not in (1, 3):
        raise ConfigError(f"{name} takes 1 or 3 channels, not {channels}")


def _check_dot_memory(name: str, side: int, heads: int) -> None:
    """Refuse sizes whose dot-product attention matrices cannot fit this machine's memory."""
    from .attention_layers import dot_attention_bytes

    needed = dot_attention_bytes(side, heads)
    available = physical_memory() * 3 // 4
    if needed > available:
        raise ConfigError(
            f"{name}: dot-product attention on a {side}x{side} grid needs about {gib(needed)} "
            f"for a batch of 16; this machine allows {gib(available)}: use a smaller `size`"
            + (" or `config` kind=linear" if name == "attention" else ""),
            parameters=["size", "config"],
        )


def build_attention_unet(config: dict):
    width, depth, channels, size = (config[k] for k in ("width", "depth", "channels", "size"))
    _check_channels("attention-unet", channels)
    if width < 1 or depth < 1 or width % config["groups"]:
        raise ConfigError(
            f"attention-unet needs depth >= 1 and a width divisible by groups "
            f"({config['groups']}); got width {width}, depth {depth}"
        )
    if depth >= size.bit_length():  # refused before 2**depth is computed
        raise ConfigError(
            f"attention-unet with depth {depth} halves the image {depth} times; a size of "
            f"{size} allows at most {size.bit_length() - 1}"
        )
    if size % 2**depth:
        raise ConfigError(
            f"attention-unet with depth {depth} needs an image size divisible by "
            f"{2**depth}; got {size}"
        )
    _check_dot_memory("attention-unet", size // 2**depth, config["heads"])
    from .attention_model import AttentionUNet

    return AttentionUNet(channels, width, depth, config["heads"], config["dim"], config["groups"])


def build_attention(config: dict):
    channels, size, kind = config["channels"], config["size"], config["kind"]
    _check_channels("attention", channels)
    if kind not in ("linear", "dot"):
        raise ConfigError(f"attention: kind must be linear or dot, not {kind!r}")
    if kind == "dot":
        _check_dot_memory("attention", size, config["heads"])
    from .attention_model import AttentionAutoencoder

    return AttentionAutoencoder(
        channels, kind, config["convs"], config["features"], config["heads"], config["dim"]
    )


@hookimpl
def register_architectures(register):
    register(
        "attention-unet",
        build_attention_unet,
        description="U-Net with linear and dot-product attention, no skips or residuals",
        defaults=UNET_DEFAULTS,
        limits=UNET_LIMITS,
    )
    register(
        "attention",
        build_attention,
        description="one attention layer between convs: kind=linear|dot, convs=true|false",
        defaults=AE_DEFAULTS,
        limits=AE_LIMITS,
    )
