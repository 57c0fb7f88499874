"""Architecture plugins of the U-Net family: `unet`, its presets, `unet-hidden`, `unet-skip`.

The presets are named configs of `unet`: `--arch unet-wide` builds exactly what
`--arch unet --set width=128` builds.
"""

from aegen.api import ConfigError, hookimpl

DEFAULTS = {"width": 64, "depth": 4, "duplicate": False}
PRESETS = {
    "unet-wide": ({"width": 128}, "unet with every channel count doubled (more detail)"),
    "unet-deep": ({"depth": 5}, "unet with one more level (more global coherence)"),
    "unet-deep-wide": ({"width": 128, "depth": 5}, "unet-deep with channels doubled"),
}
HIDDEN_DEFAULTS = {"width": 64, "depth": 4, "code": 100, "hidden": 500, "squeeze": 256}
# What aegen checks before building (from a --set or a checkpoint): sizes far beyond any use,
# so that a few bytes of config never ask for gigabytes.
LIMITS = {"width": (1, 1024), "depth": (1, 10)}
SKIP_DEFAULTS = {"width": 64, "depth": 4}
HIDDEN_LIMITS = {**LIMITS, "code": (1, 65536), "hidden": (1, 65536), "squeeze": (1, 65536)}


def _check_unet(name: str, width: int, depth: int, channels: int, size: int, extra: int) -> None:
    """Refuse what cannot be built; each halving (`depth`, plus `extra`) needs an even size,
    checked before 2**depth is computed (a depth of 10**9 is refused, not computed)."""
    if channels not in (1, 3):
        raise ConfigError(f"{name} takes 1 or 3 channels, not {channels}")
    if width < 1 or depth < 1:
        raise ConfigError(f"{name} needs width >= 1 and depth >= 1, got {width} and {depth}")
    if depth + extra >= size.bit_length():
        raise ConfigError(
            f"{name} with depth {depth} halves the image {depth + extra} times; a size of "
            f"{size} allows at most {max(size.bit_length() - 1 - extra, 0)}"
        )
    step = 2 ** (depth + extra)
    if size % step:
        raise ConfigError(
            f"{name} with depth {depth} needs an image size divisible by {step}; got {size}"
        )


def build_unet(config: dict):
    """Build the U-Net from a config; torch is imported only here, when a model is needed."""
    width, depth, channels, size = (config[k] for k in ("width", "depth", "channels", "size"))
    _check_unet("unet", width, depth, channels, size, 0)
    from .unet_model import UNet

    return UNet(channels=channels, width=width, depth=depth, duplicate=config["duplicate"])


def build_unet_hidden(config: dict):
    """The U-Net with a purely linear MLP bottleneck whose sizes follow the image size."""
    width, depth, channels, size = (config[k] for k in ("width", "depth", "channels", "size"))
    _check_unet("unet-hidden", width, depth, channels, size, 1)
    for key in ("code", "hidden", "squeeze"):
        if config[key] < 1:
            raise ConfigError(f"unet-hidden needs {key} >= 1, got {config[key]}")
    from .unet_model import HiddenUNet

    return HiddenUNet(
        channels=channels,
        width=width,
        depth=depth,
        size=size,
        code=config["code"],
        hidden=config["hidden"],
        squeeze=config["squeeze"],
    )


def build_unet_skip(config: dict):
    """The U-Net with concatenated skips (DDPM-style, no time conditioning)."""
    width, depth, channels, size = (config[k] for k in ("width", "depth", "channels", "size"))
    _check_unet("unet-skip", width, depth, channels, size, 0)
    from .unet_model import SkipUNet

    return SkipUNet(channels=channels, width=width, depth=depth, size=size)


@hookimpl
def register_architectures(register):
    register(
        "unet",
        build_unet,
        description="U-Net without skip connections (the article's main model)",
        defaults=DEFAULTS,
        limits=LIMITS,
    )
    for name, (changes, description) in PRESETS.items():
        register(name, build_unet, description=description, defaults={**DEFAULTS, **changes},
                 limits=LIMITS)
    register(
        "unet-hidden",
        build_unet_hidden,
        description="unet with a linear hidden-MLP bottleneck; latent: the code vector",
        defaults=HIDDEN_DEFAULTS,
        limits=HIDDEN_LIMITS,
    )
    register(
        "unet-skip",
        build_unet_skip,
        description="U-Net with concatenated skips (DDPM-style): train it with --objective "
        "denoise; latent: every level",
        defaults=SKIP_DEFAULTS,
        limits=LIMITS,
        can_copy=True,
    )
